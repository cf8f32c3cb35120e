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
//
// And the outage rule's half that must be atomic with renewals (docs/FENCING.md): every
// blade's promises, taken from its heartbeats by the thread that reads them, the stamps the
// answers carry, and the quorum test a lease fence must pass.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "controller/Quorum.h"
#include "protocol/Fencing.h"

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
  // What a heartbeat says about the outage rule (protocol::Heartbeat's fields).
  struct Promised {
    std::uint64_t echo = 0;
    std::uint64_t policyVersion = 0;
    std::int64_t shieldMs = 0;
    bool holding = false;
  };
  // renew() for the fabric thread, which also learns whether to hand the beat on. A beat
  // that changes what the core knows of the blade's policy or hold is news.
  Beat heartbeat(const std::string& blade, std::int64_t now, bool news, std::string_view via = {}) {
    return heartbeat(blade, now, news, via, Promised{0, 0, 0, false});
  }
  Beat heartbeat(const std::string& blade, std::int64_t now, bool news, std::string_view via, const Promised& p) {
    std::lock_guard lock(mu_);
    Entry& e = entries_[blade];
    e.lastHeard = std::max(e.lastHeard, now);
    if (e.via != via) e.via = via;
    takePromises(e, now, p);
    // The core sends the policy to a blade whose beats show another than the current one,
    // and shows a hold as it begins and ends. The first echo of a version is news too: it
    // raises the blade's floor, which is what lets the core drop an older version whose
    // members could otherwise hold its lease fences back (an even split then counted "6 of
    // 12" and fenced nobody, because a one-member version 1 was still retained).
    const std::uint64_t current = retained_ && !retained_->empty() ? retained_->back().version : 0;
    news = news || p.policyVersion != current || p.policyVersion != e.policyVersion || p.holding != e.holding;
    e.policyVersion = p.policyVersion;
    e.holding = p.holding;
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
  // What the API shows of `blade`, under one lock (a list of 10,000 blades would take the
  // lock three times a blade otherwise): the route, when it was last heard and renewed.
  struct Seen {
    std::string via;
    std::int64_t heard = kNever;
    std::optional<std::int64_t> renewal;
  };
  Seen seen(const std::string& blade) const {
    std::lock_guard lock(mu_);
    auto it = entries_.find(blade);
    if (it == entries_.end()) return {};
    const Entry& e = it->second;
    return {e.via, e.lastHeard, e.lastRenewal == kNever ? std::nullopt : std::optional(e.lastRenewal)};
  }
  // Heartbeats the fabric thread kept (never handed to the core), since the start.
  std::uint64_t kept() const {
    std::lock_guard lock(mu_);
    return kept_;
  }
  // A registration accepted at `now`: a new lease, whatever happened before.
  // `via`: the route it registered through (the fabric thread knows it; the core does not).
  // `uptimeMs`: how long its agent process has run (-1: not said), for the outage rule.
  void grant(const std::string& blade, std::int64_t now, std::optional<std::string_view> via = std::nullopt,
             std::int64_t uptimeMs = -1) {
    std::lock_guard lock(mu_);
    Entry& e = entries_[blade];
    e.lastHeard = std::max(e.lastHeard, now);
    if (via && e.via != *via) e.via = *via;
    e.fenced = false;
    e.lastRenewal = std::max(e.lastRenewal, now);
    if (uptimeMs >= 0) e.promises.onRegister(now, uptimeMs, timing_);
  }
  enum class Fence {
    Fenced,     // its lease had run out and we count a quorum: fenced now (or it was already)
    LeaseLive,  // a lease granted to it still runs
    NoQuorum,   // its lease ran out, but we do not count a quorum: it may hold a shield
  };
  // Fences `blade` if no lease granted to it lasts beyond `now - validMs` (validMs: the
  // lease plus the safety margin) and we count a quorum of every retained version at `now`
  // (docs/FENCING.md; `now` must be read right before the call); from then on renew()
  // refuses it.
  Fence fenceIfExpired(const std::string& blade, std::int64_t now, std::int64_t validMs) {
    std::lock_guard lock(mu_);
    Entry& e = entries_[blade];
    if (e.fenced) return Fence::Fenced;
    if (e.lastRenewal + validMs > now) return Fence::LeaseLive;
    if (!countsQuorumLocked(now)) return Fence::NoQuorum;
    e.fenced = true;
    return Fence::Fenced;
  }

  // --- the outage rule (docs/FENCING.md) ---
  // Once, before the fabric thread runs: this process's stamp tag and start, and C and V.
  void configureQuorum(std::uint32_t tag, std::int64_t startMs, QuorumTiming timing) {
    std::lock_guard lock(mu_);
    tag_ = tag;
    start_ = startMs;
    timing_ = timing;
  }
  // The stamp an answer sent at `now` carries.
  std::uint64_t stamp(std::int64_t now) const {
    std::lock_guard lock(mu_);
    return protocol::fencing::makeStamp(tag_, now - start_);
  }
  // The core's quorum sets changed: the retained versions the fence test uses; the last is
  // the current one (a beat showing another is news for the core).
  void publishQuorum(std::shared_ptr<const std::vector<QuorumVersion>> retained) {
    std::lock_guard lock(mu_);
    retained_ = std::move(retained);
  }
  // Whether we count a quorum of every retained version at `now`, and how many of the
  // current version's members are counted.
  struct QuorumCount {
    bool held = true;
    std::size_t counted = 0;
    std::size_t members = 0;
  };
  QuorumCount countQuorum(std::int64_t now) const {
    std::lock_guard lock(mu_);
    QuorumCount c;
    c.held = countsQuorumLocked(now);
    if (retained_ && !retained_->empty())
      for (const auto& m : retained_->back().members) {
        ++c.members;
        c.counted += countedLocked(m.blade, now);
      }
    return c;
  }
  // The blade is counted at `now` (committed, shielding no one), and what it last said.
  bool counted(const std::string& blade, std::int64_t now) const {
    std::lock_guard lock(mu_);
    return countedLocked(blade, now);
  }
  bool holding(const std::string& blade) const {
    std::lock_guard lock(mu_);
    auto it = entries_.find(blade);
    return it != entries_.end() && it->second.holding;
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
    Promises promises;
    std::uint64_t policyVersion = 0;  // as its latest beat said
    bool holding = false;
  };
  void takePromises(Entry& e, std::int64_t now, const Promised& p) {
    std::optional<std::int64_t> sentAt;
    if (p.echo)
      if (auto t = protocol::fencing::stampTime(p.echo, tag_)) sentAt = *t + start_;
    e.promises.onHeartbeat(now, sentAt, p.shieldMs, timing_);
  }
  bool countedLocked(const std::string& blade, std::int64_t now) const {
    auto it = entries_.find(blade);
    return it != entries_.end() && it->second.promises.counted(now);
  }
  bool countsQuorumLocked(std::int64_t now) const {
    if (!retained_) return true;
    return countsQuorum(*retained_, [&](const std::string& b) { return countedLocked(b, now); });
  }

  mutable std::mutex mu_;
  std::unordered_map<std::string, Entry> entries_;
  std::uint64_t kept_ = 0;
  std::uint32_t tag_ = 0;
  std::int64_t start_ = 0;
  QuorumTiming timing_;
  std::shared_ptr<const std::vector<QuorumVersion>> retained_;
};

}  // namespace loom::controller
