// A fabric relay (`loom-agent relay`): the agents of a chassis (or a rack) connect to it
// as they would to loomd, and it carries all their frames to loomd over one connection,
// in relay envelopes (protocol/RelayEnvelope.h), and loomd's answers back. loomd then
// holds one connection per relay instead of one per blade: at 10,000 blades that is what
// keeps its memory and CPU within the fabric targets (docs/PERFORMANCE.md), and a
// controller restart is 20 reconnects, not 10,000.
//
//   agents ──DEALER(blade)──► ROUTER  relay  DEALER("relay/NAME") ──► loomd's ROUTER
//          ◄── [blade][frame] ──┘      └── "loom-relay/1" [blade][frame]... ──┘
//
// The relay is stateless and transparent: it reads no agent frame (it only checks the
// envelope), so leases, registration and fencing are exactly as without it. A frame
// that finds no way on (loomd unreachable, a blade not connected) is dropped, as a
// direct connection would drop it; the agents' timers resend what matters. If the relay
// dies, its blades' leases run out and they fence themselves: the relay shares the fate
// of the chassis it serves, like its power and its switch.
//
// Single-threaded; run() until stop().
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <string>

#include "loom/Result.h"

namespace loom::agent {

struct RelayOptions {
  std::string name;                             // unique per fabric; loomd sees "relay/NAME"
  std::string listen = "tcp://127.0.0.1:7701";  // where the agents connect
  std::string controller = "tcp://127.0.0.1:7700";
  bool insecure = false;
  std::string secretKey;              // the relay's (Z85): agents' --server-key is its public key
  std::string serverKey;              // loomd's public key (Z85)
  std::set<std::string> allowedKeys;  // agent public keys (Z85) this relay admits
  // Reads the allow-list again (`loom-agent relay` re-reads --allow on SIGHUP); empty:
  // requestReload() does nothing.
  std::function<Result<std::set<std::string>>()> reloadAllowedKeys;
  // Agents' frames are gathered this long at most before they go on in one envelope.
  std::int64_t batchMs = 50;
};

struct RelayStats {
  std::uint64_t up = 0;         // agent frames carried to loomd
  std::uint64_t down = 0;       // loomd's frames handed to agents
  std::uint64_t droppedUp = 0;  // agent frames lost: loomd not connected, or behind
  std::uint64_t refused = 0;    // bad envelopes, from either side, and refused keys
};

class FabricRelay {
 public:
  explicit FabricRelay(RelayOptions options);
  ~FabricRelay();
  FabricRelay(const FabricRelay&) = delete;
  FabricRelay& operator=(const FabricRelay&) = delete;

  // Binds the agents' endpoint and connects to loomd; errors name the endpoint.
  Status start();
  // Carries frames until stop(). Call after start().
  void run();
  void stop() { stop_ = true; }  // async-signal-safe
  // Async-signal-safe: run() takes RelayOptions::reloadAllowedKeys' list soon. Handshakes
  // from then on follow it, and an agent whose key it no longer holds is cut off: its
  // frames are dropped (counted as refused), so its blade falls silent at loomd. A list
  // that does not read keeps the one in force, with the error logged.
  void requestReload() { reload_ = true; }
  // The port the agents' endpoint is bound to (for tcp://...:0).
  int boundPort() const;
  RelayStats stats() const;

 private:
  void forwardUp();
  void forwardDown();
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> reload_{false};
};

}  // namespace loom::agent
