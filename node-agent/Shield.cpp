#include "node-agent/Shield.h"

#include <algorithm>
#include <functional>
#include <limits>

#include "protocol/Fencing.h"

namespace loom::agent {
namespace {

constexpr std::int64_t kNoTime = std::numeric_limits<std::int64_t>::max();
// An ask that got no answer is sent again after this long (a lost frame, a peer restarting).
constexpr std::int64_t kResendMs = 500;
// A refusal's retry is kept within these bounds: a peer's clock is not ours.
constexpr std::int64_t kMinRetryMs = 50;
constexpr std::int64_t kMaxRetryMs = 2000;
// Unanswered asks remembered per member (answers to older ones are ignored).
constexpr std::size_t kAsksKept = 8;

}  // namespace

Shield::Shield(std::string self, std::int64_t processStart)
    : self_(std::move(self)), processStart_(processStart), noAttestUntil_(processStart), lastStamp_(processStart) {}

bool Shield::setPolicy(QuorumPolicy policy) {
  if (policy.version <= policy_.version) return false;
  const bool first = policy_.version == 0;
  policy_ = std::move(policy);
  if (first) {
    // A previous process of this agent may have promised until its last stamp + C, and
    // attested until its end + V: both before this process started.
    noAttestUntil_ = std::max(noAttestUntil_, processStart_ + policy_.commitMs);
    attestUntil_ = std::max(attestUntil_, processStart_ + policy_.attestMs);
  }
  std::map<std::string, Peer> peers;
  for (const auto& m : policy_.members) {
    auto it = peers_.find(m);
    peers.emplace(m, it == peers_.end() ? Peer{} : std::move(it->second));
  }
  peers_ = std::move(peers);
  recompute();
  return true;
}

void Shield::heardController(std::int64_t now) {
  lastStamp_ = std::max(lastStamp_, now);
  // Before the first policy the commit window is not known: the first policy covers this
  // process's start, and every stamp since was received after it.
  noAttestUntil_ = std::max(noAttestUntil_, now + policy_.commitMs);
}

PeerAnswer Shield::answer(std::int64_t now) {
  if (policy_.version == 0) return {false, 0, kMaxRetryMs};
  if (now < noAttestUntil_) return {false, 0, noAttestUntil_ - now};
  attestUntil_ = std::max(attestUntil_, now + policy_.attestMs);
  return {true, policy_.attestMs, 0};
}

void Shield::leaseEndsAt(std::int64_t deadline, std::int64_t leaseMs, std::int64_t heartbeatMs) {
  leaseEnd_ = deadline;
  leaseMs_ = leaseMs;
  heartbeatMs_ = heartbeatMs;
}

std::int64_t Shield::shortLeaseAt() const {
  if (leaseEnd_ == 0) return kNoTime;
  return leaseEnd_ - std::max<std::int64_t>(0, leaseMs_ - policy_.commitMs - heartbeatMs_);
}

bool Shield::quiet(std::int64_t now) const {
  return policy_.version != 0 && !policy_.powerFenced && !peers_.empty() &&
         (now - lastStamp_ >= policy_.commitMs || now >= shortLeaseAt());
}

std::vector<Shield::Ask> Shield::asksDue(std::int64_t now) {
  std::vector<Ask> asks;
  if (!quiet(now)) return asks;
  bool changed = false;
  for (auto& [member, p] : peers_) {
    if (now < p.nextAskAt) continue;
    if (member == self_) {
      // Its own attestation follows the same rule as any member's, without a message.
      const PeerAnswer a = answer(now);
      if (a.attest) {
        p.credit = std::max(p.credit, now + a.validMs);
        p.nextAskAt = p.credit - policy_.attestMs / 2;
        changed = true;
      } else {
        p.nextAskAt = now + std::clamp(a.retryMs, kMinRetryMs, kMaxRetryMs);
      }
      continue;
    }
    const std::uint64_t seq = ++seq_;
    p.asked.emplace_back(seq, now);
    if (p.asked.size() > kAsksKept) p.asked.pop_front();
    p.nextAskAt = now + kResendMs;
    asks.push_back({member, seq});
  }
  if (changed) recompute();
  return asks;
}

void Shield::onAnswer(const std::string& member, std::uint64_t seq, const PeerAnswer& answer, std::int64_t now) {
  auto it = peers_.find(member);
  if (it == peers_.end() || member == self_) return;
  Peer& p = it->second;
  auto ask = std::find_if(p.asked.begin(), p.asked.end(), [&](const auto& a) { return a.first == seq; });
  if (ask == p.asked.end()) return;
  const std::int64_t askedAt = ask->second;
  p.asked.erase(p.asked.begin(), ask + 1);  // older asks are answered by this one, or lost
  if (answer.attest) {
    // The peer attested after our ask: counting from the ask, and less than it promised, is
    // on the safe side.
    p.credit = std::max(p.credit, askedAt + protocol::fencing::credit(answer.validMs));
    p.nextAskAt = std::max(now, p.credit - policy_.attestMs / 2);
    recompute();
  } else {
    p.nextAskAt = now + std::clamp(answer.retryMs, kMinRetryMs, kMaxRetryMs);
  }
}

void Shield::recompute() {
  const std::size_t need = peers_.size() / 2 + 1;
  std::vector<std::int64_t> credits;
  credits.reserve(peers_.size());
  for (const auto& [_, p] : peers_)
    if (p.credit > 0) credits.push_back(p.credit);
  if (peers_.empty() || credits.size() < need) {
    shieldEnd_ = 0;
    return;
  }
  std::nth_element(credits.begin(), credits.begin() + static_cast<std::ptrdiff_t>(need - 1), credits.end(),
                   std::greater<>());
  shieldEnd_ = credits[need - 1];
}

std::int64_t Shield::nextDueAt() const {
  if (policy_.version == 0 || policy_.powerFenced || peers_.empty()) return kNoTime;
  const std::int64_t quietAt = std::min(lastStamp_ + policy_.commitMs, shortLeaseAt());
  std::int64_t next = kNoTime;
  for (const auto& [_, p] : peers_) next = std::min(next, p.nextAskAt);
  return std::max(next, quietAt);
}

std::pair<std::size_t, std::size_t> Shield::support(std::int64_t now) const {
  std::size_t live = 0;
  for (const auto& [_, p] : peers_) live += p.credit > now ? 1 : 0;
  return {live, peers_.size()};
}

void Shield::drop() {
  for (auto& [_, p] : peers_) p = Peer{};
  shieldEnd_ = 0;
  leaseEnd_ = 0;  // the lease went with the servers
}

}  // namespace loom::agent
