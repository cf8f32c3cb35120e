#include "node-agent/ControllerLink.h"

#include "loom/CommaList.h"

namespace loom::agent {

void ControllerLink::configure(zmq::socket_t& dealer, Side side, bool heartbeats) {
  dealer.set(zmq::sockopt::linger, 0);
  // Do not queue frames for a controller that is not connected: stale heartbeats and
  // registrations are worthless; the agent retries on its own schedule (a relay holds
  // each blade's latest for a moment instead: FabricRelay.h). With several
  // endpoints this is also what sends every frame to the ones that are up.
  dealer.set(zmq::sockopt::immediate, 1);
  // Back soon after a controller restart, or once a new leader binds: the lease runs while
  // we are disconnected.
  const bool relay = side == Side::Relay;
  dealer.set(zmq::sockopt::reconnect_ivl, kReconnectMs);
  dealer.set(zmq::sockopt::reconnect_ivl_max, relay ? kReconnectMs : kReconnectMaxMs);
  // A connection that a partition silently broke, or whose peer is frozen, is noticed
  // within seconds and made anew, rather than left to TCP's retransmission backoff (27 s
  // after a 30 s cut, tests/e2e/partition_e2e.py): a blade holding under a shield hears
  // loomd again at once, and a frozen leader stops taking a share of the frames.
  // (Off only for big simulations: see the header.)
  if (heartbeats) {
    dealer.set(zmq::sockopt::heartbeat_ivl, relay ? kRelayHeartbeatMs : kAgentHeartbeatMs);
    dealer.set(zmq::sockopt::heartbeat_timeout, relay ? kRelayHeartbeatTimeoutMs : kAgentHeartbeatTimeoutMs);
  }
  // A connect whose SYNs a partition drops is given up after a second and tried afresh,
  // rather than left to the kernel's SYN backoff (1, 3, 7, 15 s): after a heal the blade
  // is back within about a second.
  dealer.set(zmq::sockopt::connect_timeout, kConnectTimeoutMs);
}

Status ControllerLink::connect(zmq::socket_t& dealer, const std::string& list) {
  const auto all = splitCommaList(list);
  if (all.empty()) return makeError(Errc::Invalid, "no controller endpoint in '" + list + "'");
  for (const auto& one : all) {
    try {
      dealer.connect(one);
    } catch (const zmq::error_t& e) {
      return makeError(Errc::Io, "cannot connect to '" + one + "': " + e.what());
    }
  }
  return okStatus();
}

}  // namespace loom::agent
