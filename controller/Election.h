// Leader election for loomd replicas on etcd (DESIGN.md §7; controller/README "Replicas").
//
// Several loomd share one etcd cluster; the one whose key PREFIX/leader exists under its
// own etcd lease leads. Its epoch is the key's create revision: etcd revisions only grow,
// so every later leader has a larger epoch, and agents refuse frames of an epoch older
// than one they have seen (node-agent/EpochGuard.h). A replica campaigns with one txn
// (create the key if absent, under a fresh lease); it keeps its term by renewing that
// lease every ttl/4, and it acts only while, by its own monotonic clock, the lease
// cannot yet have expired at etcd:
//
//   actUntil = sent + ttl * (1 - clockRate) - margin
//
// where `sent` is when the last renewal that etcd answered was sent (etcd counts the
// renewed TTL from when it received it, which is later). Past actUntil the Leadership
// says "not acting" whatever this thread is doing (a paused process that wakes up is
// past it), and the term is torn down; a standby can win only once etcd expired the
// lease, after that. Stopping hands over at once: the lease is revoked. Each renewal also
// reads the key: one deleted by hand (`etcdctl del`) ends the term at the next renewal
// (a standby may win up to a renewal before that; the store's guard and the agents'
// EpochGuard refuse what the old leader does meanwhile).
//
// Threads: two of its own (etcd calls block): the election (campaign, renewals), and the
// status (this replica's presence key, the members' health, every ~1 s), so a slow or
// dead etcd member never delays a renewal. campaign() and resign() are called from loomd's
// main thread; the lost-term callback comes from the election's thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "controller/Leadership.h"
#include "loom/Result.h"

namespace loom::controller {

// What a replica says of itself in etcd (the leader key's value, and its presence key).
struct ReplicaInfo {
  std::string name;         // --name; unique among the replicas
  std::string api;          // http://HOST:PORT, where loomctl reaches it
  std::string agents;       // its agents' endpoint (tcp://HOST:PORT)
  std::uint64_t epoch = 0;  // in the leader key: the term's epoch (its create revision)
};

struct ElectionOptions {
  std::vector<std::string> endpoints;  // etcd members, HOST:PORT
  std::string prefix = "/loom";
  ReplicaInfo self;
  std::int64_t ttlSeconds = 1;  // asked of etcd; it may grant more (its minimum lease)
  double clockRate = 0.01;      // how much faster our clock may run than etcd's (ρ)
  std::int64_t marginMs = 100;  // and the rest: scheduling, a slow renewal answer
  std::int64_t pollMs = 100;    // a standby looks for a vacant leader key this often
};

// What loomctl status shows of the replicas and the store (refreshed about once a second).
struct ReplicaStatus {
  std::string role;  // "leader" | "standby"
  std::optional<ReplicaInfo> leader;
  std::vector<ReplicaInfo> replicas;  // every replica present in etcd, this one included
  struct Member {
    std::string endpoint;
    bool healthy = false;
    bool leader = false;
    std::uint64_t raftTerm = 0;
    std::int64_t dbSize = 0;
    std::string version;
    std::string error;
  };
  std::vector<Member> members;
  std::int64_t grantedTtlMs = 0;
  std::int64_t refreshedAtMs = 0;  // monotonic
};

class Election {
 public:
  using Clock = std::function<std::int64_t()>;  // monotonic ms (ControllerLoop::monotonicMs)

  Election(ElectionOptions options, Leadership& leadership, Clock clock);
  ~Election();  // stop()
  Election(const Election&) = delete;
  Election& operator=(const Election&) = delete;

  // Starts the election's thread (standby: watching for a vacant leader key; presence).
  Status start();
  // Blocks until this replica leads (its epoch; the Leadership is granted) or stop().
  // `lost` is called once, from the election's thread, when that term ends without
  // resign(): it could not renew in time, or the lease is gone.
  std::optional<std::uint64_t> campaign(std::function<void()> lost);
  // Ends the current term at once and revokes its lease, so a standby takes over
  // without waiting for the TTL (a graceful stop).
  void resign();
  // Thread-safe and async-signal-safe; campaign() returns nullopt soon after.
  void stop();
  // PREFIX/leader: the key whose create revision is the epoch (the store's guard).
  std::string leaderKey() const;

  // Thread-safe snapshots for the API.
  std::optional<ReplicaInfo> leader() const;
  ReplicaStatus status() const;
  const ElectionOptions& options() const { return options_; }

 private:
  struct Etcd;
  // The election's thread; each step is called with mutex_ held and may release it
  // around etcd calls.
  void run();
  void tryToWin(Etcd& etcd, std::unique_lock<std::mutex>& lock);
  void renew(Etcd& etcd, std::unique_lock<std::mutex>& lock);
  void endTerm(const char* why, bool revoke, Etcd& etcd, std::unique_lock<std::mutex>& lock);
  std::int64_t actingDeadline(std::int64_t sent) const;
  // The status thread.
  void runStatus();

  ElectionOptions options_;
  Leadership& leadership_;
  Clock clock_;
  std::thread thread_;
  std::thread statusThread_;
  std::atomic<bool> stopRequested_{false};
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  bool stopping_ = false;    // the election's thread saw stopRequested_
  bool wantToLead_ = false;  // main asks (campaign) until it leads
  bool resignAsked_ = false;
  std::function<void()> lost_;
  // The term, when leading (election thread; `epoch_` also read under mutex_).
  std::int64_t leaseId_ = 0;
  std::uint64_t epoch_ = 0;
  std::int64_t grantedTtlMs_ = 0;
  std::int64_t renewEveryMs_ = 0;
  std::int64_t nextRenewAt_ = 0;
  std::int64_t actUntil_ = 0;
  std::optional<ReplicaInfo> leader_;
  ReplicaStatus status_;
};

}  // namespace loom::controller
