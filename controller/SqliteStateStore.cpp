// StateStore on embedded SQLite: WAL journal, synchronous=FULL, one transaction per
// commit(). Only this file knows SQL.
#include <rapidjson/document.h>
#include <sqlite3.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "controller/AccessRecords.h"
#include "controller/StateStore.h"

namespace loom::controller {
namespace {
// Key of a released identity's row: no server name contains '~'.
constexpr const char* kReleasedPrefix = "~released~";
// Finished operations kept (for an operator with sqlite3 at hand; nothing reads them):
// the newest ones, so the table is bounded.
constexpr std::int64_t kFinishedOperationsKept = 10000;
}  // namespace

void Change::merge(Change&& o) {
  // Into an empty part (commitNow's batch is mostly empty) the other's moves whole: a
  // failover's change names every server moved.
  auto append = [](auto& into, auto& from) {
    if (into.empty())
      into = std::move(from);
    else
      into.insert(into.end(), std::make_move_iterator(from.begin()), std::make_move_iterator(from.end()));
  };
  auto upsert = [](auto& into, auto& from) {
    if (into.empty())
      into = std::move(from);
    else
      for (auto& [k, v] : from) into[k] = std::move(v);
  };
  append(putDeclarations, o.putDeclarations);
  append(deleteDeclarations, o.deleteDeclarations);
  for (auto& s : o.deleteBindings) putBindings.erase(s);
  upsert(putBindings, o.putBindings);
  append(deleteBindings, o.deleteBindings);
  for (auto& s : o.deleteBorrowed) putBorrowed.erase(s);
  upsert(putBorrowed, o.putBorrowed);
  append(deleteBorrowed, o.deleteBorrowed);
  for (auto& k : o.deletePlacement) putPlacement.erase(k);
  upsert(putPlacement, o.putPlacement);
  append(deletePlacement, o.deletePlacement);
  append(putIdentities, o.putIdentities);
  append(putBlades, o.putBlades);
  append(putOperations, o.putOperations);
  append(appendEvents, o.appendEvents);
  dropEventsThrough = std::max(dropEventsThrough, o.dropEventsThrough);
  for (auto v : o.deleteQuorumVersions) putQuorumVersions.erase(v);
  upsert(putQuorumVersions, o.putQuorumVersions);
  append(deleteQuorumVersions, o.deleteQuorumVersions);
  append(putTokens, o.putTokens);
  append(appendAudit, o.appendAudit);
  deleteAuditThrough = std::max(deleteAuditThrough, o.deleteAuditThrough);
}

namespace {

const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS declarations(kind TEXT NOT NULL, name TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY(kind, name));
CREATE TABLE IF NOT EXISTS bindings(server TEXT PRIMARY KEY, blade TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS borrowed(blade TEXT PRIMARY KEY, pool TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS placement(map TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY(map, key));
CREATE TABLE IF NOT EXISTS identities(server TEXT PRIMARY KEY, pool TEXT NOT NULL, uuid TEXT NOT NULL, macs TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blades(name TEXT PRIMARY KEY, inventory TEXT NOT NULL, admin_state TEXT NOT NULL, first_seen_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS operations(id INTEGER PRIMARY KEY, blade TEXT NOT NULL, server TEXT NOT NULL, kind TEXT NOT NULL,
  state TEXT NOT NULL, attempts INTEGER NOT NULL, error TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS operations_state ON operations(state);
CREATE TABLE IF NOT EXISTS events(id INTEGER PRIMARY KEY, time_ms INTEGER NOT NULL, level TEXT NOT NULL, blade TEXT NOT NULL,
  server TEXT NOT NULL, message TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS quorum_versions(version INTEGER PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tokens(id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS audit(id INTEGER PRIMARY KEY, body TEXT NOT NULL);
)sql";

class Statement {
 public:
  Statement(sqlite3* db, const char* sql) { ok_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) == SQLITE_OK; }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  bool ok() const { return ok_; }
  Statement& bind(int i, const std::string& s) {
    sqlite3_bind_text(stmt_, i, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Statement& bind(int i, std::int64_t v) {
    sqlite3_bind_int64(stmt_, i, v);
    return *this;
  }
  // Runs a write; resets for reuse. Returns the sqlite result code.
  int run() {
    int rc = sqlite3_step(stmt_);
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
  }
  bool next() { return sqlite3_step(stmt_) == SQLITE_ROW; }
  std::string text(int col) const {
    auto p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
    return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col))) : std::string();
  }
  std::int64_t integer(int col) const { return sqlite3_column_int64(stmt_, col); }

 private:
  sqlite3_stmt* stmt_ = nullptr;
  bool ok_ = false;
};

class SqliteStateStore final : public StateStore {
 public:
  explicit SqliteStateStore(sqlite3* db) : db_(db) {}
  ~SqliteStateStore() override { sqlite3_close(db_); }

  Status init() {
    for (const char* pragma : {"PRAGMA journal_mode=WAL;", "PRAGMA synchronous=FULL;", "PRAGMA foreign_keys=OFF;"})
      if (auto s = exec(pragma); !s) return s;
    return exec(kSchema);
  }

  Result<StoredState> load() override {
    StoredState st;
    {
      Statement q(db_, "SELECT kind, name, body FROM declarations ORDER BY rowid");
      while (q.next()) st.declarations.push_back({q.text(0), q.text(1), q.text(2)});
    }
    {
      Statement q(db_, "SELECT server, blade FROM bindings");
      while (q.next()) st.bindings.emplace(q.text(0), q.text(1));
    }
    {
      Statement q(db_, "SELECT blade, pool FROM borrowed");
      while (q.next()) st.borrowed.emplace(q.text(0), q.text(1));
    }
    {
      Statement q(db_, "SELECT map, key, value FROM placement");
      while (q.next()) st.placementMaps[q.text(0)].emplace(q.text(1), q.text(2));
    }
    {
      Statement q(db_, "SELECT server, pool, uuid, macs FROM identities");
      while (q.next()) {
        pool::IdentityRecord r;
        r.server = q.text(0);
        if (r.server.rfind(kReleasedPrefix, 0) == 0) {
          r.released = true;
          r.server.clear();
        }
        r.identityPool = q.text(1);
        r.identity.uuid = q.text(2);
        // 100,000 of these on a restart: RapidJSON, no nlohmann tree for a list of one MAC.
        rapidjson::Document macs;
        const std::string text = q.text(3);
        macs.Parse(text.data(), text.size());
        if (!macs.HasParseError() && macs.IsArray())
          for (const auto& m : macs.GetArray())
            if (m.IsString()) r.identity.macs.emplace_back(m.GetString(), m.GetStringLength());
        st.identities.push_back(std::move(r));
      }
    }
    {
      Statement q(db_, "SELECT name, inventory, admin_state, first_seen_ms FROM blades ORDER BY rowid");
      while (q.next()) st.blades.push_back({q.text(0), q.text(1), q.text(2), q.integer(3)});
    }
    {
      Statement q(
          db_,
          "SELECT id, blade, server, kind, state, attempts, error FROM operations WHERE state='pending' ORDER BY id");
      while (q.next())
        st.pendingOperations.push_back({static_cast<std::uint64_t>(q.integer(0)), q.text(1), q.text(2), q.text(3),
                                        q.text(4), static_cast<int>(q.integer(5)), q.text(6)});
    }
    {
      Statement q(db_, "SELECT version, body FROM quorum_versions");
      while (q.next()) st.quorumVersions.emplace(static_cast<std::uint64_t>(q.integer(0)), q.text(1));
    }
    {
      Statement q(db_, "SELECT body FROM tokens ORDER BY rowid");
      while (q.next())
        if (auto t = tokenFromJson(q.text(0))) st.tokens.push_back(std::move(*t));
    }
    {
      Statement q(db_, "SELECT COALESCE(MAX(id),0) FROM audit");
      if (q.next()) st.lastAuditId = static_cast<std::uint64_t>(q.integer(0));
    }
    {
      Statement q(db_, "SELECT COALESCE(MAX(id),0) FROM events");
      if (q.next()) st.lastEventId = static_cast<std::uint64_t>(q.integer(0));
    }
    {
      Statement q(db_, "SELECT COALESCE(MAX(id),0) FROM operations");
      if (q.next()) st.lastOperationId = static_cast<std::uint64_t>(q.integer(0));
    }
    return st;
  }

  Status commit(const Change& c) override {
    if (c.empty()) return okStatus();
    if (auto s = exec("BEGIN IMMEDIATE;"); !s) return s;
    Status s = apply(c);
    if (!s) {
      (void)exec("ROLLBACK;");
      return s;
    }
    // With synchronous=FULL in WAL mode, COMMIT returns after the WAL is fsynced.
    return exec("COMMIT;");
  }

  Result<std::vector<EventRecord>> events(std::uint64_t sinceId, std::size_t limit) override {
    Statement q(db_, "SELECT id, time_ms, level, blade, server, message FROM events WHERE id > ? ORDER BY id LIMIT ?");
    if (!q.ok()) return error("select events");
    q.bind(1, static_cast<std::int64_t>(sinceId)).bind(2, static_cast<std::int64_t>(limit));
    std::vector<EventRecord> out;
    while (q.next())
      out.push_back(
          {static_cast<std::uint64_t>(q.integer(0)), q.integer(1), q.text(2), q.text(3), q.text(4), q.text(5)});
    return out;
  }

  Result<std::vector<AuditRecord>> audit(std::uint64_t sinceId, std::size_t limit) override {
    Statement q(db_, "SELECT id, body FROM audit WHERE id > ? ORDER BY id LIMIT ?");
    if (!q.ok()) return error("select audit");
    q.bind(1, static_cast<std::int64_t>(sinceId)).bind(2, static_cast<std::int64_t>(limit));
    std::vector<AuditRecord> out;
    while (q.next()) {
      auto r = auditFromJson(static_cast<std::uint64_t>(q.integer(0)), q.text(1));
      if (!r)
        return makeError(Errc::Internal,
                         "state store: audit record " + std::to_string(q.integer(0)) + " does not parse");
      out.push_back(std::move(*r));
    }
    return out;
  }

 private:
  Error error(const std::string& what) const {
    return makeError(Errc::Io, "state store: " + what + ": " + sqlite3_errmsg(db_));
  }

  Status exec(const char* sql) {
    char* msg = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &msg) != SQLITE_OK) {
      std::string m = msg ? msg : "unknown error";
      sqlite3_free(msg);
      return makeError(Errc::Io, std::string("state store: ") + m);
    }
    return okStatus();
  }

  Status apply(const Change& c) {
    auto check = [&](int rc, const char* what) -> Status { return rc == SQLITE_OK ? okStatus() : Status(error(what)); };
#define LOOM_TRY(expr) \
  if (auto st = (expr); !st) return st
    if (!c.putDeclarations.empty()) {
      Statement q(db_,
                  "INSERT INTO declarations(kind,name,body) VALUES(?,?,?) ON CONFLICT(kind,name) DO UPDATE SET "
                  "body=excluded.body");
      for (const auto& d : c.putDeclarations)
        LOOM_TRY(check(q.bind(1, d.kind).bind(2, d.name).bind(3, d.body).run(), "put declaration"));
    }
    if (!c.deleteDeclarations.empty()) {
      Statement q(db_, "DELETE FROM declarations WHERE kind=? AND name=?");
      for (const auto& [k, n] : c.deleteDeclarations)
        LOOM_TRY(check(q.bind(1, k).bind(2, n).run(), "delete declaration"));
    }
    if (!c.deleteBindings.empty()) {
      Statement q(db_, "DELETE FROM bindings WHERE server=?");
      for (const auto& s : c.deleteBindings) LOOM_TRY(check(q.bind(1, s).run(), "delete binding"));
    }
    if (!c.putBindings.empty()) {
      Statement q(db_, "INSERT OR REPLACE INTO bindings(server,blade) VALUES(?,?)");
      for (const auto& [s, b] : c.putBindings) LOOM_TRY(check(q.bind(1, s).bind(2, b).run(), "put binding"));
    }
    if (!c.deleteBorrowed.empty()) {
      Statement q(db_, "DELETE FROM borrowed WHERE blade=?");
      for (const auto& b : c.deleteBorrowed) LOOM_TRY(check(q.bind(1, b).run(), "delete borrowed"));
    }
    if (!c.putBorrowed.empty()) {
      Statement q(db_, "INSERT OR REPLACE INTO borrowed(blade,pool) VALUES(?,?)");
      for (const auto& [b, p] : c.putBorrowed) LOOM_TRY(check(q.bind(1, b).bind(2, p).run(), "put borrowed"));
    }
    if (!c.deletePlacement.empty()) {
      Statement q(db_, "DELETE FROM placement WHERE map=? AND key=?");
      for (const auto& [m, k] : c.deletePlacement) LOOM_TRY(check(q.bind(1, m).bind(2, k).run(), "delete placement"));
    }
    if (!c.putPlacement.empty()) {
      Statement q(db_, "INSERT OR REPLACE INTO placement(map,key,value) VALUES(?,?,?)");
      for (const auto& [mk, v] : c.putPlacement)
        LOOM_TRY(check(q.bind(1, mk.first).bind(2, mk.second).bind(3, v).run(), "put placement"));
    }
    if (!c.putIdentities.empty()) {
      Statement q(db_, "INSERT OR REPLACE INTO identities(server,pool,uuid,macs) VALUES(?,?,?,?)");
      Statement drop(db_, "DELETE FROM identities WHERE server=?");
      for (const auto& r : c.putIdentities) {
        // A released identity (its server was deleted) no longer belongs to the name: the
        // row moves to a key no server name can take, so a new server of the same name
        // gets new values and the old ones stay used forever (invariant 2).
        std::string key = r.server;
        if (r.released) {
          if (!r.server.empty()) LOOM_TRY(check(drop.bind(1, r.server).run(), "release identity"));
          key = kReleasedPrefix + r.identity.uuid;
        }
        LOOM_TRY(check(q.bind(1, key)
                           .bind(2, r.identityPool)
                           .bind(3, r.identity.uuid)
                           .bind(4, nlohmann::json(r.identity.macs).dump())
                           .run(),
                       "put identity"));
      }
    }
    if (!c.putBlades.empty()) {
      Statement q(
          db_,
          "INSERT INTO blades(name,inventory,admin_state,first_seen_ms) VALUES(?,?,?,?) ON CONFLICT(name) DO UPDATE "
          "SET inventory=excluded.inventory, admin_state=excluded.admin_state");
      for (const auto& b : c.putBlades)
        LOOM_TRY(check(q.bind(1, b.name).bind(2, b.inventory).bind(3, b.adminState).bind(4, b.firstSeenMs).run(),
                       "put blade"));
    }
    if (!c.putOperations.empty()) {
      Statement q(db_,
                  "INSERT OR REPLACE INTO operations(id,blade,server,kind,state,attempts,error) VALUES(?,?,?,?,?,?,?)");
      for (const auto& o : c.putOperations)
        LOOM_TRY(check(q.bind(1, static_cast<std::int64_t>(o.id))
                           .bind(2, o.blade)
                           .bind(3, o.server)
                           .bind(4, o.kind)
                           .bind(5, o.state)
                           .bind(6, o.attempts)
                           .bind(7, o.error)
                           .run(),
                       "put operation"));
      std::uint64_t newest = 0;
      for (const auto& o : c.putOperations) newest = std::max(newest, o.id);
      // The newest row stays, so MAX(id) (where numbering goes on after a restart) does too.
      if (static_cast<std::int64_t>(newest) > kFinishedOperationsKept) {
        Statement drop(db_, "DELETE FROM operations WHERE state <> 'pending' AND id <= ?");
        LOOM_TRY(check(drop.bind(1, static_cast<std::int64_t>(newest) - kFinishedOperationsKept).run(),
                       "drop finished operations"));
      }
    }
    if (!c.appendEvents.empty()) {
      Statement q(db_, "INSERT OR REPLACE INTO events(id,time_ms,level,blade,server,message) VALUES(?,?,?,?,?,?)");
      for (const auto& e : c.appendEvents)
        LOOM_TRY(check(q.bind(1, static_cast<std::int64_t>(e.id))
                           .bind(2, e.timeMs)
                           .bind(3, e.level)
                           .bind(4, e.blade)
                           .bind(5, e.server)
                           .bind(6, e.message)
                           .run(),
                       "append event"));
    }
    if (c.dropEventsThrough) {
      // Never the newest event: MAX(id) is where numbering goes on after a restart.
      Statement q(db_, "DELETE FROM events WHERE id <= ? AND id < (SELECT MAX(id) FROM events)");
      LOOM_TRY(check(q.bind(1, static_cast<std::int64_t>(c.dropEventsThrough)).run(), "drop old events"));
    }
    if (!c.deleteQuorumVersions.empty()) {
      Statement q(db_, "DELETE FROM quorum_versions WHERE version=?");
      for (auto v : c.deleteQuorumVersions)
        LOOM_TRY(check(q.bind(1, static_cast<std::int64_t>(v)).run(), "delete quorum version"));
    }
    if (!c.putQuorumVersions.empty()) {
      Statement q(db_, "INSERT OR REPLACE INTO quorum_versions(version,body) VALUES(?,?)");
      for (const auto& [v, body] : c.putQuorumVersions)
        LOOM_TRY(check(q.bind(1, static_cast<std::int64_t>(v)).bind(2, body).run(), "put quorum version"));
    }
    if (!c.putTokens.empty()) {
      Statement q(db_, "INSERT INTO tokens(id,body) VALUES(?,?) ON CONFLICT(id) DO UPDATE SET body=excluded.body");
      for (const auto& t : c.putTokens) LOOM_TRY(check(q.bind(1, t.id).bind(2, tokenJson(t)).run(), "put token"));
    }
    if (!c.appendAudit.empty()) {
      Statement q(db_, "INSERT OR REPLACE INTO audit(id,body) VALUES(?,?)");
      for (const auto& a : c.appendAudit)
        LOOM_TRY(check(q.bind(1, static_cast<std::int64_t>(a.id)).bind(2, auditJson(a)).run(), "append audit"));
    }
    if (c.deleteAuditThrough) {
      Statement q(db_, "DELETE FROM audit WHERE id <= ?");
      LOOM_TRY(check(q.bind(1, static_cast<std::int64_t>(c.deleteAuditThrough)).run(), "drop old audit"));
    }
#undef LOOM_TRY
    return okStatus();
  }

  sqlite3* db_;
};

}  // namespace

Result<std::unique_ptr<StateStore>> openSqliteStateStore(const std::string& path) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr) !=
      SQLITE_OK) {
    std::string m = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return makeError(Errc::Io, "cannot open state store '" + path + "': " + m);
  }
  sqlite3_busy_timeout(db, 5000);
  auto store = std::make_unique<SqliteStateStore>(db);
  if (auto s = store->init(); !s) return makeError(Errc::Io, "state store '" + path + "': " + s.error().message);
  return std::unique_ptr<StateStore>(std::move(store));
}

}  // namespace loom::controller
