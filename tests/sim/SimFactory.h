// Every construction of a real Loom part the simulator runs — the test driver (a blade's
// hypervisor), the Agent, the Controller core — and every call that hands them a frame,
// in one small file, so a change of their constructors or of the protocol's entry points
// (a driver-supplied lease guard, a peer channel) is adapted here and nowhere else.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "controller/Controller.h"
#include "drivers/test/TestDriver.h"
#include "node-agent/Agent.h"
#include "node-agent/LeaseGuard.h"
#include "tests/sim/SimNetwork.h"

namespace loom::sim {

// Why a domain stopped running, as far as the Agent's calls tell: a controller's step
// (stop, undefine) or the agent's own fencing (destroy is only ever called by it).
// A domain that ends with no call at all was ended by the blade's watchdog.
enum class EndCause : std::uint8_t { ControllerStep, SelfFence };

// What the Agent sees of its blade's hypervisor: every call forwarded to the test driver
// the simulator owns (which outlives any one Agent, as a hypervisor outlives loom-agent),
// noting which call ended which domain.
class BladeDriver final : public drivers::Driver {
 public:
  BladeDriver(drivers::test::TestDriver& hypervisor, std::map<std::string, EndCause>& endings)
      : hv_(hypervisor), endings_(endings) {}
  std::string name() const override { return hv_.name(); }
  drivers::Capabilities capabilities() const override { return hv_.capabilities(); }
  drivers::ProbeResult probe() override { return hv_.probe(); }
  Result<drivers::NodeInfo> nodeInfo() override { return hv_.nodeInfo(); }
  Status define(const drivers::DomainSpec& spec) override { return hv_.define(spec); }
  Status start(const std::string& domain) override { return hv_.start(domain); }
  Status stop(const std::string& domain, int timeoutMs) override {
    endings_[domain] = EndCause::ControllerStep;
    return hv_.stop(domain, timeoutMs);
  }
  Status destroy(const std::string& domain) override {
    endings_[domain] = EndCause::SelfFence;
    return hv_.destroy(domain);
  }
  Status undefine(const std::string& domain) override {
    endings_[domain] = EndCause::ControllerStep;
    return hv_.undefine(domain);
  }
  Result<std::vector<drivers::DomainInfo>> list() override { return hv_.list(); }
  Result<drivers::DomainInfo> info(const std::string& domain) override { return hv_.info(domain); }
  Status subscribe(drivers::EventCallback callback) override { return hv_.subscribe(std::move(callback)); }

 private:
  drivers::test::TestDriver& hv_;
  std::map<std::string, EndCause>& endings_;
};

// The blade's hardware watchdog as the Agent arms it: `arm` gets the lease left, in ms
// of the blade's own clock, and converts (see Simulation::armWatchdog).
class SimLeaseGuard final : public agent::LeaseGuard {
 public:
  explicit SimLeaseGuard(std::function<void(std::int64_t remainingMs)> arm) : arm_(std::move(arm)) {}
  std::string describe() const override { return "simulated blade watchdog"; }
  void renew(std::int64_t remainingMs) override { arm_(remainingMs); }
  // A power-fenced blade's: it fires in ten years, which no run reaches.
  void disarm() override { arm_(std::int64_t{10} * 365 * 24 * 3600 * 1000); }

 private:
  std::function<void(std::int64_t)> arm_;
};

struct BladeSpec {
  std::string name;
  std::string chassis;
  int slot = 0;
  std::uint32_t cores = 8;
  std::uint64_t memoryMib = 16384;
};

// The blade's hypervisor, on the simulator's shared virtual clock (journal stamps are
// virtual real time).
std::unique_ptr<drivers::test::TestDriver> makeHypervisor(const BladeSpec& blade,
                                                          std::shared_ptr<drivers::test::ManualClock> clock);

struct AgentWiring {
  agent::Agent::Send fabricSend;
  // The peer channel (docs/FENCING.md): agent -> agent.
  std::function<bool(const std::string& toBlade, const std::string& bytes)> peerSend;
  std::function<void(std::int64_t remainingMs)> armWatchdog;
  std::string policyPath;  // where it keeps its outage policy (loom-agent --state-dir)
  std::string epochPath;   // and the highest leader epoch it has seen
};

std::unique_ptr<agent::Agent> makeAgent(const BladeSpec& blade, drivers::test::TestDriver& hypervisor,
                                        std::map<std::string, EndCause>& endings, AgentWiring wiring);

// Options as loomd's defaults, with `leaseMs`/`heartbeatMs`, and the core answering
// heartbeats and registers itself (no fabric thread in the simulator).
controller::ControllerOptions controllerOptions(std::int64_t leaseMs, std::int64_t heartbeatMs);
// `leadership`: a replica's (it must outlive the Controller); solo when not given.
std::unique_ptr<controller::Controller> makeController(
    controller::StateStore& store, const controller::ControllerOptions& options, controller::Controller::Send send,
    controller::Controller::WallClock wallClock,
    const controller::Leadership& leadership = controller::Leadership::soloDefault());

// Frames in. `now` is the receiving process's own clock. On the peer channel an ask gets
// the answer to send back to `fromBlade`.
std::optional<std::string> deliverToAgent(agent::Agent& agent, Channel channel, const std::string& fromBlade,
                                          std::string_view bytes, std::int64_t now);
void deliverToController(controller::Controller& controller, const std::string& fromBlade, std::string_view bytes,
                         std::int64_t now);

}  // namespace loom::sim
