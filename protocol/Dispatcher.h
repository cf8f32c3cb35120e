// The one dispatch table of an endpoint: message type -> handler. Every frame goes
// parse -> validate (pure, protocol/Validation.h) -> handler. A frame that fails any
// stage is counted by kind, logged once per (kind, peer) with the peer's text made safe
// for a log line (loom/LogSafe.h), and dropped: a handler never
// sees it and nothing else changes. Used from one thread (its owner's).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "loom/LogSafe.h"
#include "protocol/Validation.h"

namespace loom::protocol {

template <class Peer>
class Dispatcher {
 public:
  using Handler = std::function<void(const Peer&, const Json&)>;
  using Logger = std::function<void(const std::string&)>;

  explicit Dispatcher(Logger log = {}) : log_(std::move(log)) {}

  // Installs the handler for `type`; one handler per type.
  void on(const std::string& type, Handler handler) { handlers_[type] = std::move(handler); }

  // Returns true when a handler ran. `peerName` names the sender in the log.
  bool dispatch(const Peer& peer, const std::string& peerName, std::string_view bytes) {
    Json frame;
    if (auto bad = parseFrame(bytes, frame)) return reject(peerName, *bad);
    return dispatchParsed(peer, peerName, frame);
  }

  // The same for a frame parseFrame() already accepted (a reader thread parsed it).
  bool dispatchParsed(const Peer& peer, const std::string& peerName, const Json& frame) {
    if (auto bad = validate(frame)) return reject(peerName, *bad);
    const auto& type = frame["type"].template get_ref<const std::string&>();
    auto it = handlers_.find(type);
    // A valid message meant for the other side is unknown *here*.
    if (it == handlers_.end()) return reject(peerName, {"unknown-type", "unexpected message type '" + type + "'"});
    it->second(peer, frame);
    ++accepted_;
    return true;
  }

  // Counts a refusal found outside the frame itself (e.g. a bad envelope).
  bool reject(const std::string& peerName, const Rejection& why) {
    ++rejected_[why.kind];
    // Log once: a flood of garbage must not become a flood of log lines.
    if (log_ && logged_.size() < kMaxLogged && logged_.insert(why.kind + '\0' + peerName).second)
      log_("dropped frame from '" + logSafe(peerName, 64) + "': " + why.kind + ": " + logSafe(why.message) +
           " (further ones counted, not logged)");
    return false;
  }

  const std::map<std::string, std::uint64_t>& rejected() const { return rejected_; }
  std::uint64_t rejectedTotal() const {
    std::uint64_t n = 0;
    for (const auto& [kind, count] : rejected_) n += count;
    return n;
  }
  std::uint64_t accepted() const { return accepted_; }

 private:
  static constexpr std::size_t kMaxLogged = 4096;
  Logger log_;
  std::unordered_map<std::string, Handler> handlers_;
  std::map<std::string, std::uint64_t> rejected_;
  std::set<std::string> logged_;
  std::uint64_t accepted_ = 0;
};

}  // namespace loom::protocol
