// The controller's durable state behind a narrow interface. Nothing above it knows the
// backend: embedded SQLite (SqliteStateStore, the default), or etcd shared by several
// controllers (EtcdStateStore). So the interface speaks in records and atomic change sets (an etcd txn
// maps onto commit()), never in SQL, rows or cursors.
//
// Threading: one owner (the controller core thread) calls every method.
#pragma once

#include <chrono>
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

// An API token (controller/access/TokenTable.h): only the SHA-256 of its secret is kept.
// Revoking keeps the record (revokedMs set), so a revoked id is never taken for a new one
// and the first start's admin token is written only once in the store's life.
struct TokenRecord {
  std::string id;         // public: loom_<id>_<secret>
  std::string hash;       // hex SHA-256 of the secret
  std::string role;       // admin | operator | reader | partition-admin | partition-reader
  std::string partition;  // the partition-scoped roles' partition; "" otherwise
  std::string description;
  std::int64_t createdMs = 0;  // wall clock, ms since epoch
  std::int64_t expiresMs = 0;  // 0: never
  std::int64_t revokedMs = 0;  // 0: not revoked
};

// One line of the audit log (controller/access/AuditLog.h): a change made or refused, or
// a request refused (401, 403), with who asked (token id and role), from where, what.
struct AuditRecord {
  std::uint64_t id = 0;     // assigned by the caller, strictly increasing
  std::int64_t timeMs = 0;  // wall clock, ms since epoch
  std::string tokenId;      // "" when no valid token was shown
  std::string role;
  std::string source;  // the peer's address
  std::string method;
  std::string path;
  std::string targets;      // the objects named, "kind/name" comma-separated
  int status = 0;           // the HTTP status answered
  std::string outcome;      // what happened, or why it was refused
  std::uint64_t count = 1;  // refusals coalesced into this record
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
  std::vector<TokenRecord> tokens;  // revoked ones too
  std::uint64_t lastEventId = 0;
  std::uint64_t lastAuditId = 0;
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
  // The events' retention (EventLog): events with an id up to this one are deleted, so
  // the log is bounded in every backend (0: none).
  std::uint64_t dropEventsThrough = 0;
  std::map<std::uint64_t, std::string> putQuorumVersions;
  std::vector<std::uint64_t> deleteQuorumVersions;
  std::vector<TokenRecord> putTokens;  // upsert by id
  std::vector<AuditRecord> appendAudit;
  std::uint64_t deleteAuditThrough = 0;  // audit records with id <= this go (retention); 0: none

  bool empty() const {
    return putDeclarations.empty() && deleteDeclarations.empty() && putBindings.empty() && deleteBindings.empty() &&
           putBorrowed.empty() && deleteBorrowed.empty() && putPlacement.empty() && deletePlacement.empty() &&
           putIdentities.empty() && putBlades.empty() && putOperations.empty() && appendEvents.empty() &&
           dropEventsThrough == 0 && putQuorumVersions.empty() && deleteQuorumVersions.empty() && putTokens.empty() &&
           appendAudit.empty() && deleteAuditThrough == 0;
  }
  // Appends `other` (later writes win on the same key when committed in order).
  void merge(Change&& other);
};

class StateStore {
 public:
  virtual ~StateStore() = default;

  // Reads everything back. Operations in a final state are not returned, and a backend
  // keeps at most a bounded window of them (no reader needs them: the events say what
  // happened), so the store does not grow with every step ever run.
  virtual Result<StoredState> load() = 0;

  // Applies `change` atomically; returns only once it is durable (a crash after the
  // return loses nothing). On error nothing of it was applied.
  virtual Status commit(const Change& change) = 0;

  // Events with id > sinceId, oldest first, at most `limit`.
  virtual Result<std::vector<EventRecord>> events(std::uint64_t sinceId, std::size_t limit) = 0;

  // Audit records with id > sinceId, oldest first, at most `limit`. The default is a
  // store that keeps no audit history (test doubles); loomd's stores keep it.
  virtual Result<std::vector<AuditRecord>> audit(std::uint64_t /*sinceId*/, std::size_t /*limit*/) {
    return std::vector<AuditRecord>{};
  }
};

// Opens (creating if needed) the embedded SQLite store at `path`.
Result<std::unique_ptr<StateStore>> openSqliteStateStore(const std::string& path);

// ---- The store on etcd (EtcdStateStore.cpp; controller/README.md, "etcd"), shared by
// several loomd: one key per record under a prefix, one etcd txn per commit().

struct EtcdStoreOptions {
  std::vector<std::string> endpoints;  // every member's HOST:PORT
  std::string prefix = "/loom";        // no trailing '/'
  // Each etcd call's bound; a commit gets one more second per 8 MiB it writes.
  std::chrono::milliseconds timeout{2000};
  // Checked at open: etcd takes a txn of this many operations (--max-txn-ops), so a cluster
  // left at etcd's default (128) is refused at start, not at the first big apply. What a
  // change really needs is its own size (an apply of 10,000 servers commits 10,000 keys twice):
  // a commit etcd refuses says which flag and how much. 0: not checked. (Probing costs
  // etcd ~15 us per op: 100,000 would add 1.5 s to every start.)
  std::size_t requiredTxnOps = 1024;
  // The largest etcd answer read (no unbounded allocation on network input); load()
  // reads in smaller pages when a page would be larger.
  std::size_t maxRangeBytes = std::size_t{256} << 20;
  // At open, move the records of the older key layout (identity/, binding/,
  // placement/home/) to server/NAME, in one txn (controller/README.md, "etcd"). Off for the
  // stores that only read (a warm copy, a standby's events).
  bool upgradeLayout = true;
};

// `etcd://HOST:PORT[,HOST:PORT...][/PREFIX]` -> options (Errc::Invalid naming the fault).
Result<EtcdStoreOptions> parseEtcdStoreUrl(const std::string& url);

struct EtcdSnapshot;  // controller/EtcdStateImage.h

class EtcdStateStore : public StateStore {
 public:
  // What load() reads, as the image of the records it decoded and the etcd revision it
  // read them at: a standby's warm copy (controller/WarmCopy.h) starts from it and
  // watches from the next revision. Same retries as load().
  virtual Result<EtcdSnapshot> loadSnapshot() = 0;
  // The leadership guard: from now on every commit's txn also requires that `key` exists
  // with this create revision (the leader key the election created, its epoch), and a
  // commit that finds otherwise writes nothing and fails with Errc::Conflict ("no longer
  // the leader"). A woken stale leader therefore cannot write. Thread-safe (the election
  // runs on its own thread); takes effect from the next commit.
  virtual void setGuard(const std::string& key, std::int64_t createRevision) = 0;
  virtual void clearGuard() = 0;
};

// Connects, and checks that etcd answers with a quorum and takes a txn of
// `requiredTxnOps` operations (else an error naming --max-txn-ops). Writes nothing.
Result<std::unique_ptr<EtcdStateStore>> openEtcdStateStore(const EtcdStoreOptions& options);

}  // namespace loom::controller
