// etcd as loomd's replicas use it, for the simulator: one shared state every replica's term
// commits to, etcd's revision counter, leases whose TTL runs on the store's own clock, the
// leader key (created under a lease; its create revision is the epoch), and the guard on
// commits (controller/Election.h; EtcdStateStore::setGuard). It only answers requests;
// the World delivers them over the simulated network and decides when, and whether, an
// answer gets back.
//
// What is kept of etcd 3.4's semantics:
// - The revision grows by one with every txn that writes (a commit, a won campaign) and
//   with every revoked or expired lease that deleted the leader key. A lease grant or a
//   keep-alive writes nothing.
// - A lease expires ttl after the last keep-alive the store received, by its own clock,
//   never earlier (here: exactly then, the tightest etcd allows). Without quorum nothing is
//   applied and nothing expires; when quorum returns every lease gets a full ttl from then
//   (etcd's lessor "promote" on a new raft leader).
// - A lease is granted at least `minTtlSeconds` (etcd's minimum: 1.5 election timeouts).
// - A campaign is one txn: create_revision(leader key) == 0, then put it under the lease.
//   A lease that is gone fails the txn with NotFound; the key goes with its lease.
// - A guarded commit requires create_revision(leader key) == its epoch, else it writes
//   nothing and fails with Conflict ("no longer the leader"). The guard can be switched
//   off (setGuardEnforced(false)) to show that the judge of past-term commits can fail.
//
// The records themselves are a MemoryStateStore: atomic, as an etcd txn is.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "loom/Result.h"
#include "tests/sim/MemoryStateStore.h"

namespace loom::sim {

class SimStore {
 public:
  explicit SimStore(std::int64_t minTtlSeconds) : minTtlSeconds_(minTtlSeconds) {}

  // Every time below is the store's own clock (ms).
  struct Lease {
    std::int64_t id = 0;
    std::int64_t ttlSeconds = 0;
  };
  Lease grant(std::int64_t ttlSeconds, std::int64_t now);
  // The lease's ttl, counted again from now; NotFound once it expired or was revoked.
  Result<std::int64_t> keepAlive(std::int64_t id, std::int64_t now);
  // Idempotent; deletes the leader key if it was under this lease.
  void revoke(std::int64_t id, std::int64_t now);

  struct Leader {
    std::string holder;               // the replica's name (the key's value)
    std::int64_t createRevision = 0;  // the epoch
    std::int64_t lease = 0;
  };
  std::optional<Leader> leader(std::int64_t now);
  // The txn: if the leader key is absent, put it under `lease`. On success the new
  // revision is the key's create revision: the winner's epoch.
  struct Campaign {
    bool succeeded = false;
    std::int64_t revision = 0;
  };
  Result<Campaign> campaign(const std::string& holder, std::int64_t lease, std::int64_t now);

  // A term's commit: applied atomically iff the leader key's create revision is `epoch`.
  Status commit(const controller::Change& change, std::uint64_t epoch, std::int64_t now);
  Result<controller::StoredState> load(std::int64_t now);
  Result<std::vector<controller::EventRecord>> events(std::uint64_t sinceId, std::size_t limit);

  // Quorum lost (no request is applied, no lease expires) or back (every lease renewed).
  void setQuorum(bool up, std::int64_t now);
  bool hasQuorum() const { return quorum_; }
  std::int64_t revision() const { return revision_; }

  // Called for every commit applied: the epoch it was sent under, and the leader key's
  // create revision at that moment (0: no key). Equal unless the guard is off.
  std::function<void(std::uint64_t epoch, std::int64_t keyRevision)> onCommitApplied;
  void setGuardEnforced(bool on) { guardEnforced_ = on; }
  std::uint64_t commitsApplied() const { return commitsApplied_; }
  std::uint64_t commitsRefused() const { return commitsRefused_; }

 private:
  struct LeaseRecord {
    std::int64_t ttlMs = 0;
    std::int64_t expiresAt = 0;
  };
  void expire(std::int64_t now);
  void dropLease(std::int64_t id);

  std::int64_t minTtlSeconds_;
  MemoryStateStore records_;
  std::int64_t revision_ = 1;  // etcd starts at 1
  std::int64_t nextLease_ = 0x694d0000;
  std::map<std::int64_t, LeaseRecord> leases_;
  std::optional<Leader> leader_;
  bool quorum_ = true;
  bool guardEnforced_ = true;
  std::uint64_t commitsApplied_ = 0, commitsRefused_ = 0;
};

}  // namespace loom::sim
