// Runs fence commands (IPMI/Redfish power-off scripts) for loomd, each on its own
// thread so a slow BMC never holds up the core thread. The outcome is handed to a
// callback on that thread; loomd posts it back to the core (Controller::onFenceResult).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace loom::controller {

class FenceRunner {
 public:
  // ok: the command exited 0 within the timeout. detail: "exit 0 in 120 ms", or why not
  // ("exit 3: <last output line>", "killed after 20000 ms timeout").
  using Done = std::function<void(bool ok, std::string detail)>;

  explicit FenceRunner(std::int64_t timeoutMs) : timeoutMs_(timeoutMs) {}
  // Kills the commands still running (their callbacks report it) and joins the threads.
  ~FenceRunner();
  FenceRunner(const FenceRunner&) = delete;
  FenceRunner& operator=(const FenceRunner&) = delete;

  // Thread-safe. `command` runs as `/bin/sh -c command` in its own process group, stdin
  // from /dev/null, stdout and stderr captured (the tail goes into the detail).
  void run(const std::string& command, Done done);

 private:
  std::int64_t timeoutMs_;
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::vector<std::thread> threads_;
};

}  // namespace loom::controller
