#include "controller/Journal.h"

#include <spdlog/spdlog.h>

namespace loom::controller {

Status Journal::commitNow(Change change) {
  Change all = std::move(pending_);
  pending_ = Change{};
  all.merge(std::move(change));
  auto s = store_.commit(all);
  if (!s) {
    pending_.appendEvents = std::move(all.appendEvents);
    pending_.putOperations = std::move(all.putOperations);
  }
  return s;
}

void Journal::flush() {
  if (pending_.empty()) return;
  Change c = std::move(pending_);
  pending_ = Change{};
  if (auto s = store_.commit(c); !s) {
    spdlog::error("state store write failed (will retry): {}", s.error().message);
    pending_ = std::move(c);
  }
}

}  // namespace loom::controller
