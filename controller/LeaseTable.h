// The leases loomd has granted, shared by the fabric thread (which renews a lease the
// moment a heartbeat arrives, so a busy core thread — a big apply, a slow disk — never
// lets healthy blades' leases run out and fence themselves) and the core thread (which
// decides to fence). Both sides go through one mutex, which is what makes fencing safe:
// fenceIfExpired() and renew() are atomic with respect to each other, so either the
// renewal happened first and the blade is not fenced, or the blade was fenced first and
// the renewal is refused (the agent then runs out its lease and fences itself).
#pragma once

#include <algorithm>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

namespace loom::controller {

class LeaseTable {
 public:
  // A heartbeat from `blade` at `now`: renews its lease unless the blade is fenced.
  // Returns whether it was renewed (then, and only then, send lease-renewed).
  bool renew(const std::string& blade, std::int64_t now) {
    std::lock_guard lock(mu_);
    Entry& e = entries_[blade];
    if (e.fenced) return false;
    e.lastRenewal = std::max(e.lastRenewal, now);
    return true;
  }
  // A registration accepted at `now`: a new lease, whatever happened before.
  void grant(const std::string& blade, std::int64_t now) {
    std::lock_guard lock(mu_);
    Entry& e = entries_[blade];
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

 private:
  static constexpr std::int64_t kNever = INT64_MIN / 2;
  struct Entry {
    std::int64_t lastRenewal = kNever;
    bool fenced = false;
  };
  mutable std::mutex mu_;
  std::unordered_map<std::string, Entry> entries_;
};

}  // namespace loom::controller
