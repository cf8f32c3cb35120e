// One blade's agent: registers with the controller, heartbeats, executes plan steps
// through its driver and reports results and observed domains. Socket-agnostic (frames
// in through onFrame, out through Send) and single-threaded: AgentHost runs one of
// these per real blade, or thousands on one thread for --simulate.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "drivers/Driver.h"
#include "protocol/Dispatcher.h"
#include "protocol/Messages.h"

namespace loom::agent {

inline constexpr const char* kAgentVersion = "0.1.0";

struct AgentConfig {
  std::string blade;
  protocol::BladeInventory inventory;
  // Where the simulated hypervisor keeps its domains so they outlive the agent process,
  // as real Xen/KVM domains do; empty: nothing persisted (real drivers need nothing).
  std::string simStatePath;
  std::int64_t registerRetryMs = 1000;
};

class Agent {
 public:
  using Send = std::function<void(const protocol::Json& frame)>;

  Agent(AgentConfig config, std::unique_ptr<drivers::Driver> driver, Send send);

  // Adopts what the hypervisor already runs (after an agent restart) and registers.
  void start(std::int64_t now);
  void onFrame(std::string_view bytes, std::int64_t now);
  // Heartbeats, registration retries, lease bookkeeping.
  void tick(std::int64_t now);
  std::int64_t nextTickAt() const { return nextTick_; }

  const std::string& blade() const { return config_.blade; }
  bool registered() const { return registered_; }
  std::uint64_t rejected() const { return dispatcher_.rejectedTotal(); }

 private:
  void sendRegister(std::int64_t now);
  void onRegistered(const protocol::Json& frame);
  void onLeaseRenewed(const protocol::Json& frame);
  void onPlan(const protocol::Json& frame);
  protocol::StepResult execute(const protocol::PlanStep& step);
  std::vector<protocol::ObservedDomain> observe();
  void restoreSimState();
  void saveSimState();

  AgentConfig config_;
  std::unique_ptr<drivers::Driver> driver_;
  Send send_;
  protocol::Dispatcher<int> dispatcher_;

  bool registered_ = false;
  bool warnedSilence_ = false;
  std::int64_t now_ = 0;
  std::int64_t heartbeatMs_ = 1000;
  std::int64_t leaseMs_ = 5000;
  std::int64_t lastRegisterSent_ = -1'000'000'000;
  std::int64_t lastHeardFromController_ = 0;
  std::int64_t leaseDeadline_ = 0;
  std::int64_t nextHeartbeat_ = 0;
  std::int64_t nextTick_ = 0;
  std::uint64_t seq_ = 0;
  std::uint64_t heartbeatsSinceFull_ = 0;
  bool domainsChanged_ = true;
  std::vector<protocol::ObservedDomain> lastReported_;
  std::map<std::string, drivers::DomainSpec> specs_;  // what was defined, for the sim state
  // Recent results by operation id: a resent step is answered, not redone.
  std::unordered_map<std::uint64_t, protocol::StepResult> recent_;
  std::deque<std::uint64_t> recentOrder_;
};

}  // namespace loom::agent
