// The controller's one core thread: owns the Controller, the agent-facing ZeroMQ
// ROUTER socket and the ZAP authenticator, and a task queue through which other
// threads (the HTTP server) reach the Controller. Nothing else touches either.
#pragma once

#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "controller/Controller.h"
#include "loom/Result.h"

namespace loom::controller {

struct FabricOptions {
  std::string endpoint = "tcp://127.0.0.1:7700";
  bool insecure = false;
  std::string secretKey;               // Z85; required unless insecure
  std::set<std::string> allowedKeys;   // agent public keys (Z85)
};

class ControllerLoop {
 public:
  ControllerLoop(Controller& controller, FabricOptions options);
  ~ControllerLoop();
  ControllerLoop(const ControllerLoop&) = delete;
  ControllerLoop& operator=(const ControllerLoop&) = delete;

  // Creates and binds the sockets (before the thread starts, so errors reach main()).
  Status bind();
  // Runs until stop() is called. Call from the core thread only.
  void run();
  // Thread-safe.
  void stop();
  // Thread-safe: runs `task` on the core thread, soon.
  void post(std::function<void()> task);

  // Sends one frame to the agent of `blade`; dropped if it is not connected (it will
  // re-register and be re-planned). Core thread only: this is the Controller's Send.
  void send(const std::string& blade, const protocol::Json& frame);

  // Milliseconds on the monotonic clock every component of loomd shares.
  static std::int64_t monotonicMs();

 private:
  struct Sockets;
  void drainTasks();
  void handleZap();
  void receiveFrames(std::int64_t now);

  Controller& controller_;
  FabricOptions options_;
  std::unique_ptr<Sockets> sockets_;
  int wakeFd_ = -1;
  std::mutex mutex_;
  std::deque<std::function<void()>> tasks_;
  std::atomic<bool> stop_{false};
};

}  // namespace loom::controller
