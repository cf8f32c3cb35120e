#include "controller/WarmCopy.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "controller/etcd/EtcdClient.h"

namespace loom::controller {

WarmCopy::WarmCopy(WarmCopyOptions options, Clock clock)
    : options_(std::move(options)), clock_(std::move(clock)), base_(options_.store.prefix + "/") {}

WarmCopy::~WarmCopy() {
  stop();
  if (watchThread_.joinable()) watchThread_.join();
  if (checkThread_.joinable()) checkThread_.join();
}

void WarmCopy::start() {
  {
    std::lock_guard lock(mutex_);
    if (state_.running) return;
  }
  // The threads of the last run were told to stop: they end within a watch poll and one
  // etcd call.
  if (watchThread_.joinable()) watchThread_.join();
  if (checkThread_.joinable()) checkThread_.join();
  {
    std::lock_guard lock(mutex_);
    image_ = EtcdStateImage();
    const WarmCopyState last = state_;
    state_ = WarmCopyState();
    state_.running = true;
    state_.generation = last.generation + 1;
    state_.loads = last.loads;
    state_.watches = last.watches;
    state_.changes = last.changes;
    state_.badRecords = last.badRecords;
  }
  stop_ = false;
  watchThread_ = std::thread([this] { runWatch(); });
  checkThread_ = std::thread([this] { runCheck(); });
}

void WarmCopy::stop() {
  stop_ = true;
  std::lock_guard lock(mutex_);
  state_.running = false;
  state_.loaded = false;  // nobody answers from a copy that no longer follows etcd
  changed_.notify_all();
}

WarmCopyState WarmCopy::state() const {
  std::lock_guard lock(mutex_);
  return state_;
}

std::optional<std::pair<StoredState, WarmCopyState>> WarmCopy::snapshot() const {
  std::lock_guard lock(mutex_);
  if (!state_.loaded) return std::nullopt;
  return std::make_pair(image_.state(), state_);
}

bool WarmCopy::waitForRevision(std::int64_t revision, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, timeout, [&] { return state_.loaded && state_.revision >= revision; });
}

bool WarmCopy::pause(std::chrono::milliseconds d) {
  std::unique_lock lock(mutex_);
  changed_.wait_for(lock, d, [this] { return stop_.load(); });
  return !stop_;
}

void WarmCopy::runWatch() {
  // Its own store for the loads (one connection per loader) and its own client for the
  // watch: an EtcdClient serves one thread.
  EtcdStoreOptions so = options_.store;
  so.requiredTxnOps = 0;  // reads only: nothing to check
  so.upgradeLayout = false;
  auto opened = openEtcdStateStore(so);
  if (!opened) {
    std::lock_guard lock(mutex_);
    state_.error = opened.error().message;
    spdlog::error("warm copy: {}", state_.error);
    return;
  }
  std::unique_ptr<EtcdStateStore> store = std::move(*opened);
  etcd::EtcdClient::Options co;
  co.timeout = options_.store.timeout;
  co.maxRangeBytes = options_.store.maxRangeBytes;
  co.maxWatchMessageBytes = options_.store.maxRangeBytes;  // one txn's events, as large as a load's page
  etcd::EtcdClient watcher(options_.store.endpoints, co);

  std::chrono::milliseconds backoff = options_.backoffMin;
  bool haveCopy = false;
  bool failing = false;  // a failure was logged; the next success says so
  auto failed = [&](const std::string& what, const Error& e) {
    {
      std::lock_guard lock(mutex_);
      state_.error = what + ": " + e.message;
    }
    if (!failing)
      spdlog::warn("warm copy: {}: {} (retrying every {} ms at most)", what, e.message, options_.backoffMax.count());
    else
      spdlog::debug("warm copy: {}: {}", what, e.message);
    failing = true;
    pause(backoff);
    backoff = std::min(backoff * 2, options_.backoffMax);
  };

  while (!stop_) {
    if (!haveCopy) {
      const std::int64_t started = clock_();
      auto snap = store->loadSnapshot();
      if (stop_) break;
      if (!snap) {
        failed("load", snap.error());
        continue;
      }
      std::size_t records = snap->image.size();
      {
        std::lock_guard lock(mutex_);
        image_ = std::move(snap->image);
        state_.revision = snap->revision;
        state_.loaded = true;
        // What it read was the store no earlier than when the load began.
        state_.heardAtMs = std::max(state_.heardAtMs, started);
        ++state_.loads;
        ++state_.generation;
        state_.error.clear();
        changed_.notify_all();
      }
      spdlog::info("warm copy: loaded {} records at etcd revision {} in {} ms", records, snap->revision,
                   clock_() - started);
      haveCopy = true;
    }
    std::int64_t from = 0;
    {
      std::lock_guard lock(mutex_);
      from = state_.revision + 1;
      ++state_.watches;
    }
    bool delivered = false;
    auto onBatch = [&](const etcd::WatchBatch& batch) {
      std::lock_guard lock(mutex_);
      const std::uint64_t before = state_.changes;
      // The copy's revision comes from the events, not from the answer's header: etcd
      // answers a watch that is catching up on more than 1,000 revisions with part of the
      // events and the store's current revision in the header (mvcc's syncWatchers,
      // moreRev), so the header can run ahead of what was delivered. Events come in
      // revision order without gaps, so the last one applied bounds what the copy holds.
      for (const auto& ev : batch.events) {
        state_.revision = std::max(state_.revision, ev.kv.modRevision);
        if (ev.kv.key.compare(0, base_.size(), base_) != 0) continue;
        const std::string_view key = std::string_view(ev.kv.key).substr(base_.size());
        if (ev.type == etcd::EventType::Delete) {
          state_.changes += image_.erase(key) ? 1 : 0;
          continue;
        }
        auto put = image_.put(key, ev.kv.value, ev.kv.createRevision, ev.kv.modRevision);
        if (!put) {
          // The copy keeps what it had for that key; a load would refuse the whole store.
          ++state_.badRecords;
          spdlog::error("warm copy: {} (kept the previous value)", put.error().message);
        } else if (*put) {
          ++state_.changes;
        }
      }
      state_.heardAtMs = clock_();
      // Events, finished operations, presence: not in the copy, nothing to rebuild.
      if (state_.changes != before) ++state_.generation;
      state_.error.clear();
      changed_.notify_all();
      delivered = true;
    };
    auto watched = watcher.watch(base_, etcd::EtcdClient::prefixEnd(base_), from, onBatch, stop_);
    if (stop_) break;
    if (delivered) {
      backoff = options_.backoffMin;
      if (failing) spdlog::info("warm copy: following etcd again at revision {}", state().revision);
      failing = false;
    }
    const Error why = watched ? makeError(Errc::Unavailable, "the stream ended") : watched.error();
    // The history since the copy's revision is gone (compacted), or a message was past
    // the bound: one reload, then a watch from its revision. Otherwise the history is
    // still there: watch again from where the copy is.
    const bool reload = why.code == Errc::Conflict || why.code == Errc::Io || why.code == Errc::Internal;
    if (reload) {
      haveCopy = false;
      spdlog::info("warm copy: {}; reloading", why.message);
    }
    failed(reload ? "watch (reloading)" : "watch", why);
  }
}

void WarmCopy::runCheck() {
  etcd::EtcdClient client(options_.store.endpoints, etcd::EtcdClient::Options{options_.store.timeout});
  const std::string leaderKey = base_ + "leader";  // Election::leaderKey(): small, read anyway
  while (!stop_) {
    const std::int64_t started = clock_();
    // A linearizable read: its revision is the store's at some moment after `started`.
    if (auto r = client.range(leaderKey)) {
      std::unique_lock lock(mutex_);
      state_.storeRevision = r->revision;
      // The watch delivers a change within milliseconds of its commit: a little time to
      // catch up with what was committed just before the read.
      const auto grace = std::min(options_.checkEvery / 2, std::chrono::milliseconds(250));
      changed_.wait_for(lock, grace, [&] { return stop_.load() || (state_.loaded && state_.revision >= r->revision); });
      if (state_.loaded && state_.revision >= r->revision) state_.heardAtMs = std::max(state_.heardAtMs, started);
    }
    const auto spent = std::chrono::milliseconds(clock_() - started);
    if (!pause(std::max(options_.checkEvery - spent, std::chrono::milliseconds(10)))) break;
  }
}

}  // namespace loom::controller
