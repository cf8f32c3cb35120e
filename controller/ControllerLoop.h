// loomd's two fabric-side threads. The fabric thread owns the agent-facing ZeroMQ
// ROUTER socket and the ZAP authenticator: it receives frames, answers each heartbeat
// with lease-renewed and each register with registered at once (through the
// Controller's LeaseTable, so a busy core — or one that just restarted and has 10,000
// registrations to take in — never lets healthy blades' leases run out), hands every
// frame to the core, and sends what the core queues. Agents connect directly, or through
// a fabric relay (`loom-agent relay`) that carries many blades' frames over one
// connection in relay envelopes (protocol/RelayEnvelope.h); the fabric thread remembers
// the way each blade was last heard from and answers it the same way, so the core never
// knows the difference. The core thread (run()) owns the Controller: frames, tasks
// posted by other threads (HTTP requests, fence command results) and timers. Nothing
// else touches either.
//
// Replicas (docs/FENCING.md, "Replicas: the epoch"): the loop acts under the Controller's
// Leadership (Controller::leadership(), given to the Controller's constructor). A standby
// has no ControllerLoop bound at all, so agents listing every replica in --controller reach
// only the leader; main binds one when a term starts and stops and destroys it when the
// term ends. While the Leadership does not act — between the end of its term and that
// moment, or a frozen loomd woken up — the fabric thread reads and drops every frame
// (no lease-renewed, registered or reregister, nothing handed to the core) and drops what
// the core queued instead of sending it, each check made against the clock right before
// the socket call. What it sends carries the Leadership's epoch.
#pragma once

#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "controller/Controller.h"
#include "loom/Result.h"

namespace loom::controller {

struct FabricOptions {
  std::string endpoint = "tcp://127.0.0.1:7700";
  bool insecure = false;
  std::string secretKey;              // Z85; required unless insecure
  std::set<std::string> allowedKeys;  // agent public keys (Z85)
  std::set<std::string> relayKeys;    // relay public keys (Z85): these may speak for other blades
  std::int64_t leaseMs = 5000;        // told in each lease-renewed and registered
  std::int64_t heartbeatMs = 1000;    // told in each registered
  // Frames are read in batches at most this often: 10,000 blades beating once a second
  // would otherwise wake the fabric thread, the core and ZeroMQ's I/O thread for nearly
  // every frame. A lease answer waits at most this long.
  std::int64_t batchMs = 5;
};

class ControllerLoop {
 public:
  // Acts under controller.leadership() (solo unless the Controller was given another).
  ControllerLoop(Controller& controller, FabricOptions options);
  ~ControllerLoop();
  ControllerLoop(const ControllerLoop&) = delete;
  ControllerLoop& operator=(const ControllerLoop&) = delete;

  // Creates and binds the sockets (before the threads start, so errors reach main()).
  Status bind();
  // The endpoint bound, with the port ZeroMQ chose for "tcp://HOST:*".
  std::string boundEndpoint() const;
  // Starts the fabric thread: leases are answered from here on, even while the core is
  // still recovering its state (its frames wait for run()). Call after bind().
  void startFabric();
  // Runs the core until stop() (starting the fabric thread if not yet). Call from the
  // core thread.
  void run();
  // Thread-safe and async-signal-safe (an atomic and an eventfd write).
  void stop();
  // Runs the tasks posted and not yet run (call after run() returned, on the same thread):
  // an API request that arrived just before the end is answered, not left hanging.
  void runPendingTasks() { runTasks(); }
  // Thread-safe: runs `task` on the core thread, soon.
  void post(std::function<void()> task);
  // Called on the core thread at every turn of its loop (at least every 100 ms while it
  // turns), with the monotonic time: a liveness ping. Set before run().
  void onTurn(std::function<void(std::int64_t)> hook) { turnHook_ = std::move(hook); }

  // Thread-safe: the allow-lists from now on (loomd re-reads its files on SIGHUP). The
  // fabric thread takes them before it reads its next frame: a handshake with a key in
  // neither list is refused, and every frame from a connection whose key is in neither
  // is dropped (its blade falls silent; the fencing rules take it from there), as are
  // relay envelopes from a key no longer a relay's. A no-op with Curve off.
  void setAllowedKeys(std::set<std::string> agentKeys, std::set<std::string> relayKeys);
  // Frames dropped because their connection's key is no longer allowed. Thread-safe.
  std::uint64_t cutOffFrames() const { return cutOff_.load(); }

  // Queues one frame to the agent of `blade`; dropped if it is not connected (it will
  // re-register and be re-planned). Thread-safe; the Controller's Send.
  void send(const std::string& blade, const protocol::Json& frame);
  // The same for a frame already written (the Controller's Send).
  void send(const std::string& blade, std::string bytes);

  // Milliseconds on the monotonic clock every component of loomd shares.
  static std::int64_t monotonicMs();

  // Frames dropped because the Leadership did not act: agents' frames read and not
  // answered, and frames not sent (the core's, and answers). Thread-safe.
  struct NotActing {
    std::uint64_t received = 0;
    std::uint64_t unsent = 0;
  };
  NotActing notActing() const { return {notActingIn_.load(), notActingOut_.load()}; }

 private:
  struct Sockets;
  struct Inbound {
    std::string peer;
    protocol::Json frame;  // parsed once, here; null when it did not parse
    std::string bytes;     // only when it did not parse (the core counts the refusal)
    std::int64_t at;
  };
  void runFabric();
  // Fabric thread: the lists setAllowedKeys() left, into the authenticator.
  void takeNewKeys();
  void receiveFrames();
  // One agent frame (direct, or out of a relay envelope): the lease answer, then the inbox.
  void takeFrame(std::string blade, std::string_view bytes, const std::string& via, std::int64_t now,
                 std::deque<Inbound>& batch);
  void sendQueued();
  // Fabric thread: a frame to `blade` through relay `via` (routing id; empty: directly).
  // Relays' frames wait in their envelope until flushRelays().
  void sendVia(const std::string& via, const std::string& blade, std::string_view bytes);
  void flushRelays();
  void drainCore();
  // Fabric thread: whether it may answer or send now; notes the start and end of a spell
  // of not acting in the log.
  bool acting();
  void runTasks();
  void wake(int fd);

  Controller& controller_;
  FabricOptions options_;
  std::unique_ptr<Sockets> sockets_;
  std::thread fabricThread_;
  int coreWakeFd_ = -1;    // frames or tasks for the core
  int fabricWakeFd_ = -1;  // frames to send, or stop
  std::mutex mutex_;
  std::deque<std::function<void()>> tasks_;
  std::function<void(std::int64_t)> turnHook_;
  std::deque<Inbound> inbox_;
  std::deque<std::pair<std::string, std::string>> outbox_;  // (blade, bytes)
  std::atomic<bool> stop_{false};
  const Leadership& leadership_;
  bool wasActing_ = true;  // fabric thread
  std::atomic<std::uint64_t> notActingIn_{0};
  std::atomic<std::uint64_t> cutOff_{0};
  // setAllowedKeys() -> the fabric thread (under mutex_).
  std::optional<std::pair<std::set<std::string>, std::set<std::string>>> newKeys_;
  std::atomic<bool> keysChanged_{false};
  std::atomic<std::uint64_t> notActingOut_{0};
};

}  // namespace loom::controller
