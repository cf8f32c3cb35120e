// The DEALER an agent, or a fabric relay, speaks to loomd on: how it is set up, and its
// connections to every endpoint of `--controller A,B,C`.
//
// Several endpoints are a chassis's relay pair, or the loomd replicas (docs/FENCING.md,
// "Replicas: the epoch"). A DEALER sends each frame to one of its connected peers in turn
// and, with `immediate`, only to peers whose connection is complete; a standby loomd binds
// nothing and the others refuse the connection, so every frame reaches the one that leads
// (or one of the relays that are up). When the leader dies its connection closes and its
// share goes to the others at once; when it is frozen (SIGSTOP) its TCP connection stays
// up, and only ZeroMQ's heartbeat notices: frames sent to it meanwhile are lost. Its
// reconnects then stall in the handshake, so it gets nothing more until it answers again.
// The figures and the choice of intervals are in node-agent/README.md.
#pragma once

#include <cstdint>
#include <string>
#include <zmq.hpp>

#include "loom/Result.h"

namespace loom::agent {

struct ControllerLink {
  // Who holds the DEALER: an agent (thousands of them may face one loomd directly), or a
  // relay (a few dozen face loomd, each for a chassis of agents).
  enum class Side { Agent, Relay };

  // A refused connect is tried again after this, doubling up to the max (an agent's), or
  // after this every time (a relay's). A standby binds nothing, so the connects to it are
  // refused all along: at the max, a new leader was reached up to 500 ms after its bind,
  // and its restart gate waits for every blade (docs/PERFORMANCE.md, "Takeover"). A few
  // dozen relays can afford the 100 ms; 10,000 direct agents' refused connects to each
  // standby would be 100,000 a second.
  static constexpr int kReconnectMs = 100;
  static constexpr int kReconnectMaxMs = 500;
  // ZMTP PING this often; a connection with no traffic this long after a PING is dropped.
  // A frozen leader keeps its share of an agent's frames until then (node-agent/README.md:
  // with 1 s / 3 s a blade took 3.8 s to reach a leader elected 1 s after the freeze, and
  // fenced itself when the election took 2 s). Each PING costs loomd a TCP round trip per
  // connection: twice a second for a direct agent, four times for a relay (few of them).
  static constexpr int kAgentHeartbeatMs = 500;
  static constexpr int kAgentHeartbeatTimeoutMs = 1500;
  static constexpr int kRelayHeartbeatMs = 250;
  static constexpr int kRelayHeartbeatTimeoutMs = 1000;
  // A connect whose SYNs go unanswered is given up and tried afresh after this.
  static constexpr int kConnectTimeoutMs = 1000;

  // Sets the options above for `side` (and `immediate`, `linger` 0) on a DEALER. Throws
  // zmq::error_t. `heartbeats` false leaves the connection heartbeats off: for a process
  // simulating many blades, where libzmq 4.3's timer bookkeeping (a walk of every timer of
  // the I/O thread per cancel) would starve it (docs/PERFORMANCE.md, "Issue 14").
  static void configure(zmq::socket_t& dealer, Side side, bool heartbeats = true);
  // Connects `dealer` to every endpoint of `list`; the error names the one that failed.
  static Status connect(zmq::socket_t& dealer, const std::string& list);
};

}  // namespace loom::agent
