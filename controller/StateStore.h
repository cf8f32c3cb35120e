// The controller's durable state behind a narrow interface. Nothing above it knows the
// backend: today embedded SQLite (SqliteStateStore), later etcd shared by several
// controllers. So the interface speaks in records and atomic change sets (an etcd txn
// maps onto commit()), never in SQL, rows or cursors.
//
// Threading: one owner (the controller core thread) calls every method.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "loom/Result.h"
#include "pool/IdentityAllocator.h"

namespace loom::controller {

// One applied declaration (kind "Server", "Pool", ...), serialized as JSON text so the
// store never depends on the model's layout.
struct DeclarationRecord {
  std::string kind;
  std::string name;
  std::string body;  // JSON text (controller/ModelJson.h)
};

// A blade the controller has seen register: its inventory and its administrative
// state (drained, retired), which survive restarts; liveness does not.
struct BladeRecord {
  std::string name;
  std::string inventory;         // JSON text of protocol BladeInventory
  std::string adminState;        // "" | "maintenance" | "retired"
  std::int64_t firstSeenMs = 0;  // wall clock, ms since epoch
};

// An operation dispatched to an agent (a plan step with its id).
struct OperationRecord {
  std::uint64_t id = 0;
  std::string blade;
  std::string server;
  std::string kind;   // wire step kind
  std::string state;  // "pending" | "done" | "failed"
  int attempts = 0;
  std::string error;
};

struct EventRecord {
  std::uint64_t id = 0;     // assigned by the caller, strictly increasing
  std::int64_t timeMs = 0;  // wall clock, ms since epoch
  std::string level;        // "info" | "warning" | "error"
  std::string blade;
  std::string server;
  std::string message;
};

// Everything the controller needs to carry on after a restart.
struct StoredState {
  std::vector<DeclarationRecord> declarations;
  std::map<std::string, std::string> bindings;  // server -> blade
  std::map<std::string, std::string> borrowed;  // blade -> pool
  // The rest of pool::PlacementState, by name ("home": server -> blade; "held":
  // server -> ""), so a new planner field needs no new table.
  std::map<std::string, std::map<std::string, std::string>> placementMaps;
  std::vector<pool::IdentityRecord> identities;
  std::vector<BladeRecord> blades;
  std::vector<OperationRecord> pendingOperations;
  // The retained versions of the outage rule's quorum set (docs/FENCING.md): version ->
  // JSON text (controller/QuorumKeeper.h), so a restarted controller knows what a blade
  // it has not heard from yet may hold.
  std::map<std::uint64_t, std::string> quorumVersions;
  std::uint64_t lastEventId = 0;
  std::uint64_t lastOperationId = 0;
};

// One atomic, durable change: either all of it is committed or none.
struct Change {
  std::vector<DeclarationRecord> putDeclarations;
  std::vector<std::pair<std::string, std::string>> deleteDeclarations;  // (kind, name)
  std::map<std::string, std::string> putBindings;                       // server -> blade
  std::vector<std::string> deleteBindings;
  std::map<std::string, std::string> putBorrowed;
  std::vector<std::string> deleteBorrowed;
  std::map<std::pair<std::string, std::string>, std::string> putPlacement;  // (map, key) -> value
  std::vector<std::pair<std::string, std::string>> deletePlacement;         // (map, key)
  std::vector<pool::IdentityRecord> putIdentities;
  std::vector<BladeRecord> putBlades;
  std::vector<OperationRecord> putOperations;  // upsert by id
  std::vector<EventRecord> appendEvents;
  std::map<std::uint64_t, std::string> putQuorumVersions;
  std::vector<std::uint64_t> deleteQuorumVersions;

  bool empty() const {
    return putDeclarations.empty() && deleteDeclarations.empty() && putBindings.empty() && deleteBindings.empty() &&
           putBorrowed.empty() && deleteBorrowed.empty() && putPlacement.empty() && deletePlacement.empty() &&
           putIdentities.empty() && putBlades.empty() && putOperations.empty() && appendEvents.empty() &&
           putQuorumVersions.empty() && deleteQuorumVersions.empty();
  }
  // Appends `other` (later writes win on the same key when committed in order).
  void merge(Change&& other);
};

class StateStore {
 public:
  virtual ~StateStore() = default;

  // Reads everything back. Operations in a final state are not returned.
  virtual Result<StoredState> load() = 0;

  // Applies `change` atomically; returns only once it is durable (a crash after the
  // return loses nothing). On error nothing of it was applied.
  virtual Status commit(const Change& change) = 0;

  // Events with id > sinceId, oldest first, at most `limit`.
  virtual Result<std::vector<EventRecord>> events(std::uint64_t sinceId, std::size_t limit) = 0;
};

// Opens (creating if needed) the embedded SQLite store at `path`.
Result<std::unique_ptr<StateStore>> openSqliteStateStore(const std::string& path);

}  // namespace loom::controller
