// The leases loomd has granted, shared by the fabric thread (which renews a lease the
// moment a heartbeat arrives, so a busy core thread — a big apply, a slow disk — never
// lets healthy blades' leases run out and fence themselves) and the core thread (which
// decides to fence). Both sides go through one mutex, which is what makes fencing safe:
// fenceIfExpired() and renew() are atomic with respect to each other, so either the
// renewal happened first and the blade is not fenced, or the blade was fenced first and
// the renewal is refused (the agent then runs out its lease and fences itself).
//
// It is also where the core learns that a blade was heard without being handed each
// heartbeat: for a blade the core marks routine (registered, healthy, trusted), the
// fabric thread keeps heartbeats that carry no news (no domain list) to itself and only
// notes when it heard them (heard()). At 10,000 blades that is 10,000 frames a second the
// core does not handle. Marking a blade not routine returns when it was last heard, under
// the same mutex, so no beat falls between the core's look and its decision.
//
// And it holds each blade's route: the fabric relay it was last heard through (heartbeat,
// registration), or none when it connects directly. The fabric thread answers a frame
// the way it came and looks the route up for what the core sends; the API shows it.
#pragma once

#include <algorithm>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace loom::controller {

class LeaseTable {
 public:
  // A heartbeat from `blade` at `now`: renews its lease unless the blade is fenced.
  // Returns whether it was renewed (then, and only then, send lease-renewed).
  bool renew(const std::string& blade, std::int64_t now) {
    std::lock_guard lock(mu_);
    Entry& e = entries_[blade];
    e.lastHeard = std::max(e.lastHeard, now);
    if (e.fenced) return false;
    e.lastRenewal = std::max(e.lastRenewal, now);
    return true;
  }
  struct Beat {
    bool renewed = false;  // answer it (lease-renewed), if it asked
    bool keep = false;     // the core need not see it: the blade is routine and it carries no news
  };
  // renew() for the fabric thread, which also learns whether to hand the beat on.
  Beat heartbeat(const std::string& blade, std::int64_t now, bool news, std::string_view via = {}) {
    std::lock_guard lock(mu_);
    Entry& e = entries_[blade];
    e.lastHeard = std::max(e.lastHeard, now);
    if (e.via != via) e.via = via;
    if (e.fenced) return {false, false};
    e.lastRenewal = std::max(e.lastRenewal, now);
    const bool keep = e.routine && !news;
    if (keep) ++kept_;
    return {true, keep};
  }
  // Core: whether plain heartbeats of `blade` may stay in the fabric thread. Returns when
  // it was last heard (kNever when never), as of the change.
  std::int64_t setRoutine(const std::string& blade, bool routine) {
    std::lock_guard lock(mu_);
    Entry& e = entries_[blade];
    e.routine = routine;
    return e.lastHeard;
  }
  // When a heartbeat or registration of `blade` last arrived (kNever when never).
  std::int64_t heard(const std::string& blade) const {
    std::lock_guard lock(mu_);
    auto it = entries_.find(blade);
    return it == entries_.end() ? kNever : it->second.lastHeard;
  }
  // The routing id of the relay `blade` was last heard through; empty: directly, or never.
  std::string route(const std::string& blade) const {
    std::lock_guard lock(mu_);
    auto it = entries_.find(blade);
    return it == entries_.end() ? std::string() : it->second.via;
  }
  // Heartbeats the fabric thread kept (never handed to the core), since the start.
  std::uint64_t kept() const {
    std::lock_guard lock(mu_);
    return kept_;
  }
  // A registration accepted at `now`: a new lease, whatever happened before.
  // `via`: the route it registered through (the fabric thread knows it; the core does not).
  void grant(const std::string& blade, std::int64_t now, std::optional<std::string_view> via = std::nullopt) {
    std::lock_guard lock(mu_);
    Entry& e = entries_[blade];
    e.lastHeard = std::max(e.lastHeard, now);
    if (via && e.via != *via) e.via = *via;
    e.fenced = false;
    e.lastRenewal = std::max(e.lastRenewal, now);
  }
  // Fences `blade` if no lease granted to it lasts beyond `now - validMs` (validMs: the
  // lease plus the safety margin); from then on renew() refuses it. Returns whether it is
  // fenced now.
  bool fenceIfExpired(const std::string& blade, std::int64_t now, std::int64_t validMs) {
    std::lock_guard lock(mu_);
    Entry& e = entries_[blade];
    if (!e.fenced && e.lastRenewal + validMs > now) return false;
    e.fenced = true;
    return true;
  }
  // Confirmed off by other means (a fence command).
  void fence(const std::string& blade) {
    std::lock_guard lock(mu_);
    entries_[blade].fenced = true;
  }
  // Trusted again: renewals resume.
  void unfence(const std::string& blade) {
    std::lock_guard lock(mu_);
    entries_[blade].fenced = false;
  }
  std::optional<std::int64_t> lastRenewal(const std::string& blade) const {
    std::lock_guard lock(mu_);
    auto it = entries_.find(blade);
    if (it == entries_.end() || it->second.lastRenewal == kNever) return std::nullopt;
    return it->second.lastRenewal;
  }

  static constexpr std::int64_t kNever = INT64_MIN / 2;

 private:
  struct Entry {
    std::int64_t lastRenewal = kNever;
    std::int64_t lastHeard = kNever;
    bool fenced = false;
    bool routine = false;
    std::string via;
  };
  mutable std::mutex mu_;
  std::unordered_map<std::string, Entry> entries_;
  std::uint64_t kept_ = 0;
};

}  // namespace loom::controller
