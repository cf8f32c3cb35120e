// Runs agents on one thread: one DEALER socket per blade (routing id = blade name), all
// polled together, no thread per blade, so --simulate can carry 10,000 blades in one
// process. A single real agent is the same with one entry.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "loom/Result.h"
#include "node-agent/Agent.h"

namespace loom::agent {

struct FabricOptions {
  std::string controller = "tcp://127.0.0.1:7700";
  bool insecure = false;
  std::string secretKey;   // this agent's (Z85); its public key is derived
  std::string serverKey;   // the controller's public key (Z85)
};

class AgentHost {
 public:
  explicit AgentHost(FabricOptions options);
  ~AgentHost();
  AgentHost(const AgentHost&) = delete;
  AgentHost& operator=(const AgentHost&) = delete;

  // Creates the blade's socket and agent; call before run(). `guard`: see Agent.
  Status add(AgentConfig config, std::unique_ptr<drivers::Driver> driver, std::unique_ptr<LeaseGuard> guard = nullptr);
  // Runs until stop(). Blocks the calling thread.
  void run();
  void stop() { stop_ = true; }  // async-signal-safe
  std::size_t size() const;

  static std::int64_t monotonicMs();

 private:
  // Raises RLIMIT_NOFILE for `blades` agents; false when it stays too low.
  static bool liftFdLimit(std::size_t blades);
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::atomic<bool> stop_{false};
};

}  // namespace loom::agent
