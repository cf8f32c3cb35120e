// loomd's state store in memory, for the simulator: it outlives the Controller objects of
// a simulated loomd, so a "crash" (the Controller destroyed) and a restart (a new one,
// recover()) see exactly what was committed, as with SQLite on disk. It honours the
// StateStore contract: commit() is atomic and, once it returned, durable (nothing is
// buffered); load() returns what SqliteStateStore would (declarations and blades in
// insertion order, pending operations by id, the largest event and operation ids).
//
// A failing store (a full disk) can be switched on: every commit then fails with an Io
// error and applies nothing.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "controller/StateStore.h"

namespace loom::sim {

class MemoryStateStore final : public controller::StateStore {
 public:
  Result<controller::StoredState> load() override;
  Status commit(const controller::Change& change) override;
  Result<std::vector<controller::EventRecord>> events(std::uint64_t sinceId, std::size_t limit) override;
  Result<std::vector<controller::AuditRecord>> audit(std::uint64_t sinceId, std::size_t limit) override;

  void setFailing(bool failing) { failing_ = failing; }
  bool failing() const { return failing_; }
  std::size_t commits() const { return commits_; }

 private:
  // Rows of a table keyed by K, in insertion order like SQLite's rowid (an upsert that
  // keeps the row keeps its place; a replace moves it to the end).
  template <class K, class V>
  struct Table {
    std::vector<std::pair<K, V>> rows;
    V* find(const K& k) {
      for (auto& r : rows)
        if (r.first == k) return &r.second;
      return nullptr;
    }
    void erase(const K& k) {
      for (auto it = rows.begin(); it != rows.end(); ++it)
        if (it->first == k) {
          rows.erase(it);
          return;
        }
    }
  };

  Table<std::pair<std::string, std::string>, std::string> declarations_;  // (kind, name) -> body
  std::map<std::string, std::string> bindings_;
  std::map<std::string, std::string> borrowed_;
  std::map<std::pair<std::string, std::string>, std::string> placement_;
  Table<std::string, pool::IdentityRecord> identities_;  // server, or "~released~UUID"
  Table<std::string, controller::BladeRecord> blades_;
  std::map<std::uint64_t, std::string> quorumVersions_;  // the outage rule's retained versions
  std::map<std::uint64_t, controller::OperationRecord> operations_;
  std::map<std::uint64_t, controller::EventRecord> events_;
  Table<std::string, controller::TokenRecord> tokens_;
  std::map<std::uint64_t, controller::AuditRecord> audit_;
  bool failing_ = false;
  std::size_t commits_ = 0;
};

}  // namespace loom::sim
