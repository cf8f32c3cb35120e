// A standby's warm copy of the etcd store (controller/README.md, "Replicas: the warm
// copy"): loaded once (the store's snapshot at revision R, EtcdStateStore::loadSnapshot),
// then kept up to date by an etcd watch of the prefix from R+1, each change applied to
// the copy as it comes (EtcdStateImage::put/erase, the store's own decoder), never a
// reload per change. A watch that breaks is opened again from the copy's revision + 1;
// one whose history etcd compacted meanwhile (or whose message is past the bound) falls
// back to one reload. Failures are retried with a backoff (100 ms doubling to 2 s), each
// attempt bounded by the store's timeout.
//
// How fresh: the copy's revision (every change up to it applied) and when it was last
// known current. It is known current at the moment a watch message arrives, and at the
// moment a check starts (a linearizable read, every `checkEvery`) whose answer's store
// revision the copy has reached. A copy that has not been confirmed for a while says so
// (its age grows); it never says it is fresher than it is. On an etcd shared with other
// applications, their writes raise the store's revision without a change under the
// prefix: the age then grows until the next change of loom's.
//
// Threads: two of its own while running (the watch and the check), each with its own
// etcd connections. Every method is thread-safe. start() and stop() are called by
// loomd's main thread: the copy runs while the replica stands by, and stops when it
// leads (the term recovers from the store itself).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "controller/EtcdStateImage.h"
#include "controller/StateStore.h"

namespace loom::controller {

struct WarmCopyOptions {
  EtcdStoreOptions store;  // endpoints, prefix, each call's timeout, the answers' bound
  std::chrono::milliseconds checkEvery{1000};
  std::chrono::milliseconds backoffMin{100};
  std::chrono::milliseconds backoffMax{2000};
};

// What the copy is, at one moment.
struct WarmCopyState {
  bool running = false;
  bool loaded = false;             // holds a snapshot (and the changes since) of this run
  std::int64_t revision = 0;       // etcd's revision: every change up to it is in the copy
  std::int64_t heardAtMs = -1;     // monotonic: when the copy was last known current; -1: never
  std::int64_t storeRevision = 0;  // the store's revision at the last check
  std::uint64_t generation = 0;    // moves when what the copy holds changes (across runs): views rebuild
  std::uint64_t loads = 0;         // full loads (the first of each run, and each fallback)
  std::uint64_t watches = 0;       // watches opened
  std::uint64_t changes = 0;       // keys applied from watches
  std::uint64_t badRecords = 0;    // watched records that did not parse (skipped, logged)
  std::string error;               // the last failure; "" once a watch answers again
};

class WarmCopy {
 public:
  using Clock = std::function<std::int64_t()>;  // monotonic ms (ControllerLoop::monotonicMs)

  WarmCopy(WarmCopyOptions options, Clock clock);
  ~WarmCopy();  // stops and joins
  WarmCopy(const WarmCopy&) = delete;
  WarmCopy& operator=(const WarmCopy&) = delete;

  // Starts loading and watching; a no-op while running. The copy of a previous run is
  // dropped (a term came between: the store moved on), so it loads afresh.
  void start();
  // Asks the threads to end and returns at once (they end within ~100 ms plus one etcd
  // call); start() and the destructor join them. The copy is no longer `running`.
  void stop();

  WarmCopyState state() const;
  // The copy as the store's load() would give it, with the state it is at; nullopt
  // while nothing is loaded.
  std::optional<std::pair<StoredState, WarmCopyState>> snapshot() const;
  // Waits (at most `timeout`) until the copy holds every change up to `revision`.
  bool waitForRevision(std::int64_t revision, std::chrono::milliseconds timeout) const;

 private:
  void runWatch();
  void runCheck();
  // Sleeps up to `d` unless stopping; false when stopping.
  bool pause(std::chrono::milliseconds d);

  WarmCopyOptions options_;
  Clock clock_;
  std::string base_;  // PREFIX/
  std::thread watchThread_, checkThread_;
  std::atomic<bool> stop_{true};
  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;
  EtcdStateImage image_;
  WarmCopyState state_;
};

}  // namespace loom::controller
