#include "controller/Journal.h"

#include <spdlog/spdlog.h>

namespace loom::controller {

namespace {
Error behindError() {
  return Error{Errc::Conflict,
               "this controller's term is ending: an earlier change may have reached the state store unanswered, so "
               "the next term loads the store first; nothing was written"};
}
}  // namespace

Status Journal::commitNow(Change change) {
  if (behind_) return behindError();
  Change all = std::move(pending_);
  pending_ = Change{};
  all.merge(std::move(change));
  const std::size_t batchedAudit = all.appendAudit.size();
  if (rider_) rider_->ride(all);
  auto s = store_.commit(all);
  if (rider_) rider_->landed(static_cast<bool>(s));
  if (!s) {
    pending_.appendEvents = std::move(all.appendEvents);
    pending_.putOperations = std::move(all.putOperations);
    // The batched audit records are kept; the rider's (its change's) is not: it was not made.
    all.appendAudit.resize(batchedAudit);
    pending_.appendAudit = std::move(all.appendAudit);
    pending_.deleteAuditThrough = all.deleteAuditThrough;
    if (s.error().code == Errc::Timeout) {
      behind_ = true;
      spdlog::error("state store: a change's outcome is unknown ({}); ending this term", s.error().message);
      if (onBehind_) onBehind_(s.error());
    }
  }
  return s;
}

void Journal::flush() {
  // Events and operation records are idempotent puts, so an unknown outcome here is
  // harmless; but once behind, the term's writes stop altogether.
  if (pending_.empty() || behind_) return;
  Change c = std::move(pending_);
  pending_ = Change{};
  if (auto s = store_.commit(c); !s) {
    spdlog::error("state store write failed (will retry): {}", s.error().message);
    pending_ = std::move(c);
  }
}

}  // namespace loom::controller
