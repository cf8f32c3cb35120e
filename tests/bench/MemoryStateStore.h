// A StateStore in memory, for benchmarks that measure the controller's own work: the
// SQLite store's fsync is the disk's time, not loomd's CPU. It keeps the contract of
// controller/StateStore.h — commit() is atomic (it cannot fail half-way), load() returns
// what was committed, operations in a final state are not returned, events come back by
// id — but nothing survives the process.
#pragma once

#include <algorithm>
#include <map>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "controller/StateStore.h"

namespace loom::bench {

class MemoryStateStore final : public controller::StateStore {
 public:
  Result<controller::StoredState> load() override {
    controller::StoredState st;
    for (const auto& [key, r] : declarations_) st.declarations.push_back(r);
    st.bindings.insert(bindings_.begin(), bindings_.end());
    st.borrowed = borrowed_;
    st.placementMaps = placement_;
    for (const auto& [key, r] : identities_) st.identities.push_back(r);
    for (const auto& name : bladeOrder_) st.blades.push_back(blades_.at(name));
    for (const auto& [id, o] : operations_)
      if (o.state == "pending") st.pendingOperations.push_back(o);
    for (const auto& [id, t] : tokens_) st.tokens.push_back(t);
    st.lastEventId = events_.empty() ? 0 : events_.back().id;
    st.lastOperationId = lastOperationId_;
    return st;
  }

  Status commit(const controller::Change& c) override {
    for (const auto& r : c.putDeclarations) declarations_[{r.kind, r.name}] = r;
    for (const auto& k : c.deleteDeclarations) declarations_.erase(k);
    for (const auto& s : c.deleteBindings) bindings_.erase(s);
    for (const auto& [s, b] : c.putBindings) bindings_[s] = b;
    for (const auto& b : c.deleteBorrowed) borrowed_.erase(b);
    for (const auto& [b, p] : c.putBorrowed) borrowed_[b] = p;
    for (const auto& [m, k] : c.deletePlacement) placement_[m].erase(k);
    for (const auto& [mk, v] : c.putPlacement) placement_[mk.first][mk.second] = v;
    for (const auto& r : c.putIdentities) {
      // A released identity stays used forever under a key no server takes.
      if (r.released) identities_.erase(r.server);
      identities_[r.released ? "~released~" + r.identity.uuid : r.server] = r;
    }
    for (const auto& b : c.putBlades) {
      auto [it, added] = blades_.try_emplace(b.name, b);
      if (added)
        bladeOrder_.push_back(b.name);
      else {
        it->second.inventory = b.inventory;
        it->second.adminState = b.adminState;
      }
    }
    for (const auto& o : c.putOperations) {
      // Operations in a final state are only history: the SQLite store keeps them, load()
      // skips them; here they are dropped.
      if (o.state == "pending")
        operations_[o.id] = o;
      else
        operations_.erase(o.id);
      lastOperationId_ = std::max(lastOperationId_, o.id);
    }
    events_.insert(events_.end(), c.appendEvents.begin(), c.appendEvents.end());
    for (const auto& t : c.putTokens) tokens_[t.id] = t;
    ++commits_;
    return okStatus();
  }

  Result<std::vector<controller::EventRecord>> events(std::uint64_t sinceId, std::size_t limit) override {
    std::vector<controller::EventRecord> out;
    auto it = std::upper_bound(events_.begin(), events_.end(), sinceId,
                               [](std::uint64_t id, const controller::EventRecord& e) { return id < e.id; });
    for (; it != events_.end() && out.size() < limit; ++it) out.push_back(*it);
    return out;
  }

  std::size_t commits() const { return commits_; }

 private:
  std::map<std::pair<std::string, std::string>, controller::DeclarationRecord> declarations_;
  std::unordered_map<std::string, std::string> bindings_;  // the big one: 100,000 entries
  std::map<std::string, std::string> borrowed_;
  std::map<std::string, std::map<std::string, std::string>> placement_;
  std::map<std::string, pool::IdentityRecord> identities_;
  std::map<std::string, controller::BladeRecord> blades_;
  std::vector<std::string> bladeOrder_;
  std::map<std::string, controller::TokenRecord> tokens_;
  std::map<std::uint64_t, controller::OperationRecord> operations_;
  std::uint64_t lastOperationId_ = 0;
  std::vector<controller::EventRecord> events_;
  std::size_t commits_ = 0;
};

}  // namespace loom::bench
