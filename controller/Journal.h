// The core's writes to the StateStore. A change someone waits on (an apply, a drain, a
// placement before any agent hears of it) is committed at once, together with everything
// batched before it, and is durable when commitNow() returns. What nobody waits on
// (operation records, events) is batched and written by flush(), every tick.
//
// Core thread only.
#pragma once

#include "controller/StateStore.h"
#include "loom/Result.h"

namespace loom::controller {

class Journal {
 public:
  explicit Journal(StateStore& store) : store_(store) {}

  // The batch written by the next flush() or commitNow(). Append to it freely.
  Change& pending() { return pending_; }

  // Commits the batch and `change` in one transaction; durable on success. On failure the
  // batched part (events, operations) is kept for the next flush and the rest dropped:
  // the caller reports it as not acknowledged.
  Status commitNow(Change change);
  // Writes the batch; on failure it is kept and retried by the next call.
  void flush();

  StateStore& store() { return store_; }

 private:
  StateStore& store_;
  Change pending_;
};

}  // namespace loom::controller
