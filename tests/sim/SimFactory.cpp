#include "tests/sim/SimFactory.h"

#include "tests/support/TestToken.h"

namespace loom::sim {

std::unique_ptr<drivers::test::TestDriver> makeHypervisor(const BladeSpec& blade,
                                                          std::shared_ptr<drivers::test::ManualClock> clock) {
  drivers::test::TestDriverConfig config;
  config.blade = blade.name;
  config.cores = blade.cores;
  config.memory = blade.memoryMib;
  auto made = drivers::test::TestDriver::create(std::move(config), std::move(clock));
  // In memory, no files: creating it cannot fail.
  return std::move(made).value();
}

std::unique_ptr<agent::Agent> makeAgent(const BladeSpec& blade, drivers::test::TestDriver& hypervisor,
                                        std::map<std::string, EndCause>& endings, AgentWiring wiring) {
  agent::AgentConfig config;
  config.blade = blade.name;
  config.inventory.chassis = blade.chassis;
  config.inventory.slot = blade.slot;
  config.inventory.sockets = 1;
  config.inventory.cores = blade.cores;
  config.inventory.memoryMib = blade.memoryMib;
  config.inventory.cpuModel = "Loom Test CPU";
  config.inventory.hypervisors = {"kvm"};
  // The personality a real blade keeps in its hypervisor install: every simulated blade is
  // a KVM blade from the start, so an agent restart loses nothing.
  config.inventory.personality = "kvm";
  config.inventory.driver = "test";
  config.inventory.hostname = blade.name;
  // It listens on the peer channel (the simulator's network routes it by blade name).
  config.inventory.peerEndpoint = "sim://" + blade.name;
  config.driverThread = false;  // one thread, deterministic
  config.policyPath = wiring.policyPath;
  config.epochPath = wiring.epochPath;
  auto agent = std::make_unique<agent::Agent>(std::move(config), std::make_unique<BladeDriver>(hypervisor, endings),
                                              std::move(wiring.fabricSend),
                                              std::make_unique<SimLeaseGuard>(std::move(wiring.armWatchdog)));
  agent->setPeerSend([send = std::move(wiring.peerSend)](const protocol::PeerAddress& to, const protocol::Json& frame) {
    return send(to.blade, frame.dump());
  });
  return agent;
}

controller::ControllerOptions controllerOptions(std::int64_t leaseMs, std::int64_t heartbeatMs) {
  controller::ControllerOptions o;
  o.leaseMs = leaseMs;
  o.heartbeatMs = heartbeatMs;
  o.fabricRenewsLeases = false;
  return ::loom::testing::withTestAdmin(std::move(o));
}

std::unique_ptr<controller::Controller> makeController(controller::StateStore& store,
                                                       const controller::ControllerOptions& options,
                                                       controller::Controller::Send send,
                                                       controller::Controller::WallClock wallClock,
                                                       const controller::Leadership& leadership) {
  return std::make_unique<controller::Controller>(store, options, std::move(send), std::move(wallClock), leadership);
}

std::optional<std::string> deliverToAgent(agent::Agent& agent, Channel channel, const std::string& /*fromBlade*/,
                                          std::string_view bytes, std::int64_t now) {
  if (channel == Channel::Fabric) {
    agent.onFrame(bytes, now);
    return std::nullopt;
  }
  // The peer channel: an ask is answered on the connection it came on.
  if (auto answer = agent.onPeerFrame(bytes, now)) return answer->dump();
  return std::nullopt;
}

void deliverToController(controller::Controller& controller, const std::string& fromBlade, std::string_view bytes,
                         std::int64_t now) {
  controller.onFrame(fromBlade, bytes, now);
}

}  // namespace loom::sim
