// The core's writes to the StateStore. A change someone waits on (an apply, a drain, a
// placement before any agent hears of it) is committed at once, together with everything
// batched before it, and is durable when commitNow() returns. What nobody waits on
// (operation records, events) is batched and written by flush(), every tick.
//
// A commit whose outcome is unknown (Errc::Timeout: etcd may have applied it and lost the
// answer) leaves the core's memory possibly behind the store. Every later change is diffed
// against that memory, so one could "change nothing" where the store still holds the
// unacknowledged value, answer 200, and the next leader would load the store's value: an
// acknowledged change undone (found by loom-sim, seed 10851 replicas-chaos). So after one
// the journal refuses every commit and tells its owner once (setBehind): the term ends and
// the next one starts from what the store says.
//
// Core thread only.
#pragma once

#include <functional>

#include "controller/StateStore.h"
#include "loom/Result.h"

namespace loom::controller {

class Journal {
 public:
  // What rides with every commitNow() (not flush()): the audit record of the change being
  // made (controller/access/AuditLog.h), so that the change and its record are durable
  // together or not at all. ride() appends to the change about to be committed; landed()
  // says whether that commit succeeded.
  class Rider {
   public:
    virtual ~Rider() = default;
    virtual void ride(Change& change) = 0;
    virtual void landed(bool ok) = 0;
  };

  explicit Journal(StateStore& store) : store_(store) {}

  void setRider(Rider* rider) { rider_ = rider; }

  // Called once, on the core thread, when a commit's outcome is unknown (above).
  void setBehind(std::function<void(const Error&)> onBehind) { onBehind_ = std::move(onBehind); }
  // True once a commit's outcome was unknown: nothing more is committed.
  bool behind() const { return behind_; }

  // The batch written by the next flush() or commitNow(). Append to it freely.
  Change& pending() { return pending_; }

  // Commits the batch and `change` in one transaction; durable on success. On failure the
  // batched part (events, operations) is kept for the next flush and the rest dropped:
  // the caller reports it as not acknowledged (with Errc::Timeout: perhaps applied all the
  // same, never in part; the journal is then behind()).
  Status commitNow(Change change);
  // Writes the batch; on failure it is kept and retried by the next call.
  void flush();

  StateStore& store() { return store_; }

 private:
  StateStore& store_;
  Change pending_;
  Rider* rider_ = nullptr;
  std::function<void(const Error&)> onBehind_;
  bool behind_ = false;
};

}  // namespace loom::controller
