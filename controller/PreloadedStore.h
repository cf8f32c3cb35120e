// A store whose first load() answers with a state already read, then is `inner` for
// everything else: how a replica's term starts from its warm copy (controller/WarmCopy.h)
// instead of reading every record from etcd again (seconds at 100,000 servers).
//
// Why the copy may stand in for load(): a term's epoch is the revision at which its
// leader key was created, and every commit of an earlier term required that term's own
// leader key (EtcdStateStore::setGuard), which was gone before this one could be created.
// So no record changes between revision epoch - 1 and this term's first commit: a copy
// that holds every change up to the epoch is the store as the term begins.
#pragma once

#include <optional>
#include <utility>

#include "controller/StateStore.h"

namespace loom::controller {

class PreloadedStore final : public StateStore {
 public:
  // Without a state, a plain pass-through.
  PreloadedStore(StateStore& inner, std::optional<StoredState> first) : inner_(inner), first_(std::move(first)) {}

  Result<StoredState> load() override {
    if (first_) {
      StoredState s = std::move(*first_);
      first_.reset();
      return s;
    }
    return inner_.load();
  }
  Status commit(const Change& change) override { return inner_.commit(change); }
  Result<std::vector<EventRecord>> events(std::uint64_t sinceId, std::size_t limit) override {
    return inner_.events(sinceId, limit);
  }
  Result<std::vector<AuditRecord>> audit(std::uint64_t sinceId, std::size_t limit) override {
    return inner_.audit(sinceId, limit);
  }

 private:
  StateStore& inner_;
  std::optional<StoredState> first_;
};

}  // namespace loom::controller
