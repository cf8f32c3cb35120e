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
// The relay is transparent: it reads no agent frame (it only checks the envelope), so
// leases, registration and fencing are exactly as without it. A frame for a blade that is
// not connected is dropped, as a direct connection would drop it; the agents' timers
// resend what matters. A frame that finds loomd unreachable (none bound: a leader killed,
// the next not elected yet) is held, the blade's latest only, for up to `holdMs`, and
// carried up the moment a loomd is reachable: a direct agent, whose send fails then,
// sends its beat again 100 ms later, but a blade behind a relay cannot tell (its send to
// the relay went) and would wait a whole heartbeat. A new leader thus hears every blade
// within milliseconds of its bind (docs/PERFORMANCE.md, "Takeover"). A held frame is a
// frame delayed, as a network may delay one: the protocol takes it as such. If the relay
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
  // Each blade's latest frame that found loomd unreachable waits this long at most for it
  // (a blade beats every second by default: its latest frame is younger than that).
  std::int64_t holdMs = 2000;
};

struct RelayStats {
  std::uint64_t up = 0;           // agent frames carried to loomd
  std::uint64_t down = 0;         // loomd's frames handed to agents
  std::uint64_t droppedUp = 0;    // agent frames lost: loomd not connected, or behind (a held
                                  // frame counts once superseded, or held past holdMs)
  std::uint64_t refused = 0;      // bad envelopes, from either side, and refused keys
  std::uint64_t carriedLate = 0;  // of `up`: held until loomd was reachable, then carried
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
