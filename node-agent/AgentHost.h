// Runs agents on one thread: one DEALER socket per blade (routing id = blade name), all
// polled together, no thread per blade, so --simulate can carry 10,000 blades in one
// process. A single real agent is the same with one entry.
//
// With a peer endpoint (FabricOptions::peerListen), each blade also listens on its own
// ROUTER for its peers' asks and connects a DEALER to each peer it asks (the peer channel
// of docs/FENCING.md), in the same poll set.
#pragma once

#include <atomic>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "loom/Result.h"
#include "node-agent/Agent.h"

namespace loom::agent {

struct FabricOptions {
  std::string controller = "tcp://127.0.0.1:7700";
  bool insecure = false;
  std::string secretKey;  // this agent's (Z85); its public key is derived
  std::string serverKey;  // the controller's public key (Z85)
  // The peer channel: where each blade listens (`tcp://ADDR:PORT`; port 0: each blade picks
  // a free one), as its peers will dial it; empty: no peer channel. ADDR must be an address
  // the peers can reach (not 0.0.0.0): it is what the blade reports.
  std::string peerListen;
  // Public keys (Z85) allowed to ask on the peer channel (CurveZMQ); empty with --insecure.
  std::set<std::string> peerAllow;
  // ZeroMQ heartbeats on each blade's connection to loomd (a connection a partition broke is
  // made anew within seconds). Off for a host of thousands of simulated blades: libzmq 4.3
  // cancels a timer by walking every timer of its I/O thread, once per heartbeat answered,
  // so 5,000 connections in one process cost ~30 % of a core and starve the simulation
  // (docs/PERFORMANCE.md, "Issue 14: before and after").
  bool connectionHeartbeats = true;
};

class AgentHost {
 public:
  explicit AgentHost(FabricOptions options);
  ~AgentHost();
  AgentHost(const AgentHost&) = delete;
  AgentHost& operator=(const AgentHost&) = delete;

  // Creates the blade's sockets and agent; call before run(). `guard`: see Agent. Fails
  // when the peer endpoint cannot be bound.
  Status add(AgentConfig config, std::unique_ptr<drivers::Driver> driver, std::unique_ptr<LeaseGuard> guard = nullptr);
  // Runs until stop(). Blocks the calling thread.
  void run();
  void stop() { stop_ = true; }  // async-signal-safe
  std::size_t size() const;

  static std::int64_t monotonicMs();

 private:
  // Raises RLIMIT_NOFILE for `sockets` sockets; false when it stays too low.
  static bool liftFdLimit(std::size_t sockets);
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::atomic<bool> stop_{false};
};

}  // namespace loom::agent
