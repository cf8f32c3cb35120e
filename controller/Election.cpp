#include "controller/Election.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>

#include "controller/etcd/EtcdClient.h"

namespace loom::controller {
namespace {

using Json = nlohmann::json;

std::string encodeInfo(const ReplicaInfo& r) {
  Json j{{"name", r.name}, {"api", r.api}, {"agents", r.agents}};
  if (r.epoch) j["epoch"] = r.epoch;
  return j.dump();
}

std::optional<ReplicaInfo> decodeInfo(const std::string& text, std::uint64_t epoch) {
  const Json j = Json::parse(text, nullptr, false);
  if (!j.is_object()) return std::nullopt;
  ReplicaInfo r;
  r.name = j.value("name", "");
  r.api = j.value("api", "");
  r.agents = j.value("agents", "");
  r.epoch = epoch;
  if (r.name.empty()) return std::nullopt;
  return r;
}

// How long a replica's presence key outlives it (loomctl status lists the live ones).
constexpr std::int64_t kPresenceTtlSeconds = 10;
constexpr std::int64_t kStatusEveryMs = 1000;

}  // namespace

// The etcd calls the election makes, in the election's words. Each thread has its own
// (the client is one connection, used by one thread).
struct Election::Etcd {
  Etcd(const std::vector<std::string>& endpoints, std::chrono::milliseconds timeout)
      : client(endpoints, etcd::EtcdClient::Options{timeout}) {}
  etcd::EtcdClient client;
};

Election::Election(ElectionOptions options, Leadership& leadership, Clock clock)
    : options_(std::move(options)), leadership_(leadership), clock_(std::move(clock)) {
  status_.role = "standby";
}

Election::~Election() {
  stop();
  if (thread_.joinable()) thread_.join();
  if (statusThread_.joinable()) statusThread_.join();
}

std::string Election::leaderKey() const { return options_.prefix + "/leader"; }

Status Election::start() {
  if (options_.endpoints.empty()) return makeError(Errc::Invalid, "no etcd endpoints");
  // One answer from etcd before standing by: a typo in --store is said at once.
  Etcd probe(options_.endpoints, std::chrono::milliseconds(2000));
  auto first = probe.client.range(leaderKey());
  if (!first) return makeError(first.error().code, "etcd: " + first.error().message);
  thread_ = std::thread([this] { run(); });
  statusThread_ = std::thread([this] { runStatus(); });
  return okStatus();
}

std::optional<std::uint64_t> Election::campaign(std::function<void()> lost) {
  std::unique_lock lock(mutex_);
  wantToLead_ = true;
  lost_ = std::move(lost);
  changed_.notify_all();
  changed_.wait(lock, [this] { return stopping_ || epoch_ != 0; });
  wantToLead_ = false;
  if (stopping_) return std::nullopt;
  return epoch_;
}

void Election::resign() {
  std::unique_lock lock(mutex_);
  if (epoch_ == 0) return;
  resignAsked_ = true;
  changed_.notify_all();
  // The election's thread revokes (bounded by the client's timeout); acting stops now.
  leadership_.revoke();
  changed_.wait_for(lock, std::chrono::seconds(3), [this] { return epoch_ == 0 || stopping_; });
}

void Election::stop() {
  // Called from a signal handler too: only an atomic. Every wait of the election's
  // threads is bounded (pollMs, a renewal, a second for the status), so they see it soon.
  stopRequested_ = true;
}

std::optional<ReplicaInfo> Election::leader() const {
  std::lock_guard lock(mutex_);
  return leader_;
}

ReplicaStatus Election::status() const {
  std::lock_guard lock(mutex_);
  ReplicaStatus s = status_;
  s.role = epoch_ ? "leader" : "standby";
  s.leader = leader_;
  s.grantedTtlMs = grantedTtlMs_;
  return s;
}

void Election::run() {
  Etcd etcd(options_.endpoints, std::chrono::milliseconds(std::max<std::int64_t>(100, options_.ttlSeconds * 250)));
  std::unique_lock lock(mutex_);
  while (true) {
    if (stopRequested_ && !stopping_) {
      stopping_ = true;
      changed_.notify_all();
    }
    if (stopping_ && epoch_ == 0) break;
    const std::int64_t now = clock_();
    if (epoch_ != 0) {
      if (resignAsked_ || stopping_) {
        endTerm("resigned", true, etcd, lock);
        continue;
      }
      if (now >= actUntil_) {
        endTerm("its lease could not be renewed in time", false, etcd, lock);
        continue;
      }
      if (now >= nextRenewAt_) renew(etcd, lock);
    } else if (!stopping_) {
      tryToWin(etcd, lock);
    }
    const std::int64_t wakeAt = epoch_ ? std::min(nextRenewAt_, actUntil_) : now + options_.pollMs;
    const std::int64_t wait = std::clamp<std::int64_t>(wakeAt - clock_(), 1, options_.pollMs);
    changed_.wait_for(lock, std::chrono::milliseconds(wait));
  }
}

void Election::tryToWin(Etcd& etcd, std::unique_lock<std::mutex>& lock) {
  const bool want = wantToLead_;
  lock.unlock();
  // Who leads now, for standbys' answers; and whether the key is vacant.
  auto current = etcd.client.range(leaderKey());
  std::optional<ReplicaInfo> seen;
  bool vacant = false;
  if (current) {
    if (current->kvs.empty())
      vacant = true;
    else
      seen = decodeInfo(current->kvs.front().value, static_cast<std::uint64_t>(current->kvs.front().createRevision));
  }
  if (!want || !vacant) {
    lock.lock();
    if (current) leader_ = seen;
    return;
  }
  // Vacant: campaign. The lease's clock starts before the grant is sent.
  const std::int64_t sent = clock_();
  auto lease = etcd.client.leaseGrant(options_.ttlSeconds);
  if (!lease) {
    spdlog::warn("election: cannot get an etcd lease: {}", lease.error().message);
    lock.lock();
    return;
  }
  etcd::TxnRequest txn;
  txn.compare.push_back(etcd::Compare::createRevision(leaderKey(), etcd::Compare::Result::Equal, 0));
  ReplicaInfo self = options_.self;
  txn.success.push_back(etcd::Op::put(leaderKey(), encodeInfo(self), lease->id));
  txn.failure.push_back(etcd::Op::range(leaderKey()));
  auto won = etcd.client.txn(txn);
  if (!won || !won->succeeded) {
    (void)etcd.client.leaseRevoke(lease->id);
    lock.lock();
    if (!won) spdlog::warn("election: campaign failed: {}", won.error().message);
    return;
  }
  const auto epoch = static_cast<std::uint64_t>(won->revision);
  lock.lock();
  leaseId_ = lease->id;
  grantedTtlMs_ = lease->ttlSeconds * 1000;
  renewEveryMs_ = std::max<std::int64_t>(50, grantedTtlMs_ / 4);
  actUntil_ = actingDeadline(sent);
  nextRenewAt_ = sent + renewEveryMs_;
  if (clock_() >= actUntil_) {
    // The campaign took longer than the lease is safe for: give it back.
    lock.unlock();
    (void)etcd.client.leaseRevoke(lease->id);
    lock.lock();
    leaseId_ = 0;
    return;
  }
  self.epoch = epoch;
  leader_ = self;
  epoch_ = epoch;
  leadership_.grant(epoch, actUntil_);
  spdlog::info("election: won epoch {} (etcd lease {} s; acting at most {} ms past each renewal)", epoch,
               lease->ttlSeconds, actUntil_ - sent);
  changed_.notify_all();
}

std::int64_t Election::actingDeadline(std::int64_t sent) const {
  return sent + static_cast<std::int64_t>(static_cast<double>(grantedTtlMs_) * (1.0 - options_.clockRate)) -
         options_.marginMs;
}

void Election::renew(Etcd& etcd, std::unique_lock<std::mutex>& lock) {
  const std::int64_t id = leaseId_;
  lock.unlock();
  const std::int64_t sent = clock_();
  auto ttl = etcd.client.leaseKeepAliveOnce(id);
  // The lease alive is not enough: the key must still be this term's (an operator's
  // `etcdctl del` would otherwise let a standby win while this one renews on).
  Result<etcd::RangeResult> key = makeError(Errc::Unavailable, "not read");
  if (ttl) key = etcd.client.range(leaderKey());
  const std::uint64_t epoch = epoch_;  // written only by this thread
  const bool ours = key && !key->kvs.empty() && static_cast<std::uint64_t>(key->kvs.front().createRevision) == epoch;
  lock.lock();
  // A resign() that came meanwhile has revoked acting: a renewal must not grant it back.
  if (epoch_ == 0 || leaseId_ != id || resignAsked_) return;
  if (!ttl && ttl.error().code == Errc::NotFound) {
    endTerm("etcd says its lease is gone", false, etcd, lock);
    return;
  }
  if (key && !ours) {
    endTerm("the leader key is gone or another's", false, etcd, lock);
    return;
  }
  if (ttl && !key) ttl = key.error();  // not shown to be ours: no extension, tried again
  if (!ttl) {
    // Tried again at the next turn, until actUntil passes.
    nextRenewAt_ = clock_() + std::max<std::int64_t>(20, renewEveryMs_ / 4);
    spdlog::warn("election: renewing epoch {} failed ({} ms of the term left): {}", epoch_, actUntil_ - clock_(),
                 ttl.error().message);
    return;
  }
  actUntil_ = std::max(actUntil_, actingDeadline(sent));
  nextRenewAt_ = sent + renewEveryMs_;
  leadership_.grant(epoch_, actUntil_);
}

void Election::endTerm(const char* why, bool revoke, Etcd& etcd, std::unique_lock<std::mutex>& lock) {
  // Acting stops first, before anything else can happen.
  leadership_.revoke();
  const std::uint64_t epoch = epoch_;
  const std::int64_t id = leaseId_;
  auto lost = revoke ? std::function<void()>() : lost_;
  epoch_ = 0;
  leaseId_ = 0;
  resignAsked_ = false;
  leader_.reset();
  // When acting ended, on the wall clock (tests compare it with another replica's win).
  const std::int64_t now = clock_();
  const std::int64_t wall =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count() -
      (now - std::min(now, actUntil_));
  spdlog::log(revoke ? spdlog::level::info : spdlog::level::warn, "election: term {} ended: {} (acting ended at {} ms)",
              epoch, why, wall);
  lock.unlock();
  if (lost) lost();
  if (revoke && id) {
    if (auto s = etcd.client.leaseRevoke(id); !s)
      spdlog::warn("election: revoking the lease of term {} failed (it expires on its own): {}", epoch,
                   s.error().message);
  }
  lock.lock();
  changed_.notify_all();
}

void Election::runStatus() {
  Etcd etcd(options_.endpoints, std::chrono::milliseconds(500));
  std::int64_t presenceLease = 0;
  const std::string presenceKey = options_.prefix + "/replicas/" + options_.self.name;
  while (!stopRequested_) {
    const std::int64_t started = clock_();
    // Presence: a key under a lease of its own, renewed here (loomctl status lists them).
    if (presenceLease == 0 || !etcd.client.leaseKeepAliveOnce(presenceLease).ok()) {
      if (auto lease = etcd.client.leaseGrant(kPresenceTtlSeconds)) {
        presenceLease = lease->id;
        (void)etcd.client.put(presenceKey, encodeInfo(options_.self), presenceLease);
      }
    }
    std::vector<ReplicaInfo> replicas;
    if (auto present = etcd.client.rangePrefix(options_.prefix + "/replicas/"))
      for (const auto& kv : present->kvs)
        if (auto r = decodeInfo(kv.value, 0)) replicas.push_back(*r);
    std::vector<ReplicaStatus::Member> members;
    for (const auto& st : etcd.client.status()) {
      ReplicaStatus::Member m;
      m.endpoint = st.endpoint;
      m.healthy = st.reachable && st.leaderId != 0;
      m.leader = st.isLeader();
      m.raftTerm = st.raftTerm;
      m.dbSize = st.dbSize;
      m.version = st.version;
      m.error = st.reachable ? (st.leaderId ? "" : "no raft leader") : st.error;
      members.push_back(std::move(m));
    }
    {
      std::lock_guard lock(mutex_);
      status_.replicas = std::move(replicas);
      status_.members = std::move(members);
      status_.refreshedAtMs = clock_();
    }
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock,
                      std::chrono::milliseconds(std::max<std::int64_t>(10, kStatusEveryMs - (clock_() - started))),
                      [this] { return stopRequested_.load(); });
  }
  if (presenceLease) (void)etcd.client.leaseRevoke(presenceLease);
}

}  // namespace loom::controller
