#include "tests/sim/SimStore.h"

#include <algorithm>

namespace loom::sim {

void SimStore::dropLease(std::int64_t id) {
  leases_.erase(id);
  if (leader_ && leader_->lease == id) {
    leader_.reset();
    ++revision_;  // the key's deletion is a write
  }
}

// etcd's lessor revokes an expired lease on the raft leader; without quorum it cannot.
void SimStore::expire(std::int64_t now) {
  if (!quorum_) return;
  std::vector<std::int64_t> gone;
  for (const auto& [id, l] : leases_)
    if (now >= l.expiresAt) gone.push_back(id);
  for (auto id : gone) dropLease(id);
}

SimStore::Lease SimStore::grant(std::int64_t ttlSeconds, std::int64_t now) {
  expire(now);
  const std::int64_t ttl = std::max(ttlSeconds, minTtlSeconds_);
  const std::int64_t id = ++nextLease_;
  leases_[id] = {ttl * 1000, now + ttl * 1000};
  return {id, ttl};
}

Result<std::int64_t> SimStore::keepAlive(std::int64_t id, std::int64_t now) {
  expire(now);
  auto it = leases_.find(id);
  if (it == leases_.end()) return makeError(Errc::NotFound, "etcd: lease " + std::to_string(id) + " not found");
  it->second.expiresAt = now + it->second.ttlMs;
  return it->second.ttlMs / 1000;
}

void SimStore::revoke(std::int64_t id, std::int64_t now) {
  expire(now);
  dropLease(id);
}

std::optional<SimStore::Leader> SimStore::leader(std::int64_t now) {
  expire(now);
  return leader_;
}

Result<SimStore::Campaign> SimStore::campaign(const std::string& holder, std::int64_t lease, std::int64_t now) {
  expire(now);
  if (leader_) return Campaign{false, revision_};
  if (!leases_.count(lease))
    return makeError(Errc::NotFound, "etcd: requested lease " + std::to_string(lease) + " not found");
  ++revision_;
  leader_ = Leader{holder, revision_, lease};
  return Campaign{true, revision_};
}

Status SimStore::commit(const controller::Change& change, std::uint64_t epoch, std::int64_t now) {
  expire(now);
  const std::int64_t key = leader_ ? leader_->createRevision : 0;
  if (guardEnforced_ && key != static_cast<std::int64_t>(epoch)) {
    ++commitsRefused_;
    return makeError(Errc::Conflict,
                     "etcd store: this loomd is no longer the leader: its leader key (created at "
                     "revision " +
                         std::to_string(epoch) + ") is " +
                         (key ? "now of revision " + std::to_string(key) : std::string("gone")));
  }
  if (change.empty()) return okStatus();
  if (auto s = records_.commit(change); !s) return s;
  ++revision_;
  ++commitsApplied_;
  if (onCommitApplied) onCommitApplied(epoch, key);
  return okStatus();
}

Result<controller::StoredState> SimStore::load(std::int64_t now) {
  expire(now);
  return records_.load();
}

Result<std::vector<controller::EventRecord>> SimStore::events(std::uint64_t sinceId, std::size_t limit) {
  return records_.events(sinceId, limit);
}

void SimStore::setQuorum(bool up, std::int64_t now) {
  if (up == quorum_) return;
  expire(now);  // what ran out before the loss is gone, not revived by the promote below
  quorum_ = up;
  if (!up) return;
  // A new raft leader's lessor: every lease lives a full ttl from now.
  for (auto& [id, l] : leases_) l.expiresAt = std::max(l.expiresAt, now + l.ttlMs);
}

}  // namespace loom::sim
