#include "tests/sim/MemoryStateStore.h"

namespace loom::sim {

using controller::Change;
using controller::StoredState;

Result<StoredState> MemoryStateStore::load() {
  StoredState st;
  for (const auto& [key, body] : declarations_.rows) st.declarations.push_back({key.first, key.second, body});
  st.bindings = bindings_;
  st.borrowed = borrowed_;
  for (const auto& [key, value] : placement_) st.placementMaps[key.first].emplace(key.second, value);
  for (const auto& [_, r] : identities_.rows) st.identities.push_back(r);
  for (const auto& [_, b] : blades_.rows) st.blades.push_back(b);
  st.quorumVersions = quorumVersions_;
  for (const auto& [_, o] : operations_)
    if (o.state == "pending") st.pendingOperations.push_back(o);
  for (const auto& [_, t] : tokens_.rows) st.tokens.push_back(t);
  st.lastAuditId = audit_.empty() ? 0 : audit_.rbegin()->first;
  st.lastEventId = events_.empty() ? 0 : events_.rbegin()->first;
  st.lastOperationId = operations_.empty() ? 0 : operations_.rbegin()->first;
  return st;
}

// In the order SqliteStateStore applies a change, so a change that puts and deletes the
// same key ends the same way in both stores.
Status MemoryStateStore::commit(const Change& c) {
  if (c.empty()) return okStatus();
  if (failing_) return makeError(Errc::Io, "state store: disk full (simulated)");
  ++commits_;
  for (const auto& d : c.putDeclarations) {
    if (auto* body = declarations_.find({d.kind, d.name}))
      *body = d.body;
    else
      declarations_.rows.push_back({{d.kind, d.name}, d.body});
  }
  for (const auto& [kind, name] : c.deleteDeclarations) declarations_.erase({kind, name});
  for (const auto& s : c.deleteBindings) bindings_.erase(s);
  for (const auto& [s, b] : c.putBindings) bindings_[s] = b;
  for (const auto& b : c.deleteBorrowed) borrowed_.erase(b);
  for (const auto& [b, p] : c.putBorrowed) borrowed_[b] = p;
  for (const auto& k : c.deletePlacement) placement_.erase(k);
  for (const auto& [k, v] : c.putPlacement) placement_[k] = v;
  for (const auto& r : c.putIdentities) {
    std::string key = r.server;
    pool::IdentityRecord stored = r;
    if (r.released) {
      if (!r.server.empty()) identities_.erase(r.server);
      key = "~released~" + r.identity.uuid;
      stored.server.clear();
    }
    identities_.erase(key);  // INSERT OR REPLACE: the row moves to the end
    identities_.rows.push_back({key, std::move(stored)});
  }
  for (const auto& b : c.putBlades) {
    if (auto* row = blades_.find(b.name)) {
      row->inventory = b.inventory;  // ON CONFLICT: first_seen_ms stays
      row->adminState = b.adminState;
    } else {
      blades_.rows.push_back({b.name, b});
    }
  }
  for (auto v : c.deleteQuorumVersions) quorumVersions_.erase(v);
  for (const auto& [v, body] : c.putQuorumVersions) quorumVersions_[v] = body;
  for (const auto& o : c.putOperations) operations_[o.id] = o;
  for (const auto& e : c.appendEvents) events_[e.id] = e;
  if (c.dropEventsThrough) events_.erase(events_.begin(), events_.upper_bound(c.dropEventsThrough));
  for (const auto& t : c.putTokens) {
    if (auto* row = tokens_.find(t.id))
      *row = t;
    else
      tokens_.rows.push_back({t.id, t});
  }
  for (const auto& a : c.appendAudit) audit_[a.id] = a;
  if (c.deleteAuditThrough) audit_.erase(audit_.begin(), audit_.upper_bound(c.deleteAuditThrough));
  return okStatus();
}

Result<std::vector<controller::AuditRecord>> MemoryStateStore::audit(std::uint64_t sinceId, std::size_t limit) {
  std::vector<controller::AuditRecord> out;
  for (auto it = audit_.upper_bound(sinceId); it != audit_.end() && out.size() < limit; ++it) out.push_back(it->second);
  return out;
}

Result<std::vector<controller::EventRecord>> MemoryStateStore::events(std::uint64_t sinceId, std::size_t limit) {
  std::vector<controller::EventRecord> out;
  for (auto it = events_.upper_bound(sinceId); it != events_.end() && out.size() < limit; ++it)
    out.push_back(it->second);
  return out;
}

}  // namespace loom::sim
