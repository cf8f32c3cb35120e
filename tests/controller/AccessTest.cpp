// Access (controller/access/, DESIGN.md section 8): the policy table, tokens, the one
// access check as the API answers it (a partition-scoped token's view, 401/403/404), the
// first start's admin token, a standby's check from its copy, and the audit log
// (durable with its change, coalesced refusals, bounded retention).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "controller/Journal.h"
#include "controller/access/AdminTokenFile.h"
#include "controller/access/AuditLog.h"
#include "controller/access/Policy.h"
#include "controller/access/TokenTable.h"
#include "controller/api/StandbyViews.h"
#include "tests/controller/ControllerHarness.h"

namespace loom::controller {
namespace {

using access::Access;
using access::Role;
using access::TokenTable;
using testing::Harness;

// ---- The policy table: each role x each route class. --------------------------------

TEST(Policy, EachRoleMayUseExactlyItsRouteClasses) {
  const Access classes[] = {Access::Open,         Access::Read,   Access::ReadFabric, Access::OperateServer,
                            Access::OperateBlade, Access::Change, Access::Admin};
  // Rows: admin, operator, reader, partition-admin, partition-reader; columns as above.
  const std::pair<Role, std::vector<bool>> table[] = {
      {Role::Admin, {true, true, true, true, true, true, true}},
      {Role::Operator, {true, true, true, true, true, false, false}},
      {Role::Reader, {true, true, true, false, false, false, false}},
      {Role::PartitionAdmin, {true, true, false, true, false, true, false}},
      {Role::PartitionReader, {true, true, false, false, false, false, false}},
  };
  for (const auto& [role, allowed] : table)
    for (std::size_t i = 0; i < std::size(classes); ++i)
      EXPECT_EQ(access::allows(role, classes[i]), allowed[i])
          << access::roleName(role) << " x " << access::accessName(classes[i]) << " (column " << i << ")";
}

TEST(Policy, RoleNamesRoundTripAndOnlyPartitionRolesAreScoped) {
  for (Role r : {Role::Admin, Role::Operator, Role::Reader, Role::PartitionAdmin, Role::PartitionReader}) {
    EXPECT_EQ(access::parseRole(access::roleName(r)), r);
    EXPECT_EQ(access::scoped(r), r == Role::PartitionAdmin || r == Role::PartitionReader);
  }
  EXPECT_FALSE(access::parseRole("root"));
  EXPECT_FALSE(access::parseRole("Admin"));
}

// ---- Tokens: hash, expiry, revocation. ----------------------------------------------

TEST(Tokens, AMintedTokenAuthenticatesAndTheStoreKeepsOnlyTheHashOfItsSecret) {
  auto m = TokenTable::mint(Role::Operator, "", "ops", 1000, 0);
  ASSERT_TRUE(m) << m.error().message;
  const auto parts = TokenTable::parse(m->token);
  ASSERT_TRUE(parts);
  EXPECT_EQ(parts->id, m->record.id);
  EXPECT_EQ(parts->secret.size(), 64u);  // 256 bits, hex
  EXPECT_EQ(m->record.hash, TokenTable::hashSecret(parts->secret));
  EXPECT_EQ(m->record.hash.size(), 64u);  // SHA-256, hex
  EXPECT_EQ(m->record.hash.find(parts->secret), std::string::npos);
  EXPECT_EQ(TokenTable::hashSecret("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  TokenTable t;
  t.put(m->record);
  auto p = t.authenticate("Bearer " + m->token, 2000);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->tokenId, m->record.id);
  EXPECT_EQ(p->role, Role::Operator);
  EXPECT_TRUE(t.authenticate("bearer  " + m->token + " ", 2000));  // scheme case, spaces
  // Two tokens never share an id or a secret.
  auto other = TokenTable::mint(Role::Operator, "", "", 1000, 0);
  EXPECT_NE(other->token, m->token);
  EXPECT_NE(other->record.id, m->record.id);
}

TEST(Tokens, AWrongSecretARevokedOrExpiredTokenAndAnythingMalformedAreAllRefused) {
  auto m = TokenTable::mint(Role::Reader, "", "", 1000, 5000);  // expires at 5000
  ASSERT_TRUE(m);
  TokenTable t;
  t.put(m->record);
  EXPECT_TRUE(t.authenticate("Bearer " + m->token, 4999));
  EXPECT_FALSE(t.authenticate("Bearer " + m->token, 5000)) << "expired";
  std::string wrong = m->token;
  wrong.back() = wrong.back() == '0' ? '1' : '0';
  EXPECT_FALSE(t.authenticate("Bearer " + wrong, 2000)) << "wrong secret";
  for (const std::string bad :
       {std::string(), std::string("Bearer"), std::string("Bearer "), "Basic " + m->token, m->token,
        "Bearer " + m->token.substr(1), "Bearer " + m->token + "0", "Bearer LOOM_" + m->token.substr(5)})
    EXPECT_FALSE(t.authenticate(bad, 2000)) << "'" << bad << "'";
  TokenRecord revoked = m->record;
  revoked.revokedMs = 3000;
  t.put(revoked);
  EXPECT_FALSE(t.authenticate("Bearer " + m->token, 2000)) << "revoked";
  // A token nobody made, well-formed.
  EXPECT_FALSE(t.authenticate("Bearer " + TokenTable::newToken(), 2000));
}

TEST(Tokens, PartitionRolesNeedAPartitionAndTheOthersMayNotHaveOne) {
  EXPECT_FALSE(TokenTable::mint(Role::PartitionAdmin, "", "", 1, 0));
  EXPECT_FALSE(TokenTable::mint(Role::Reader, "prod", "", 1, 0));
  auto m = TokenTable::mint(Role::PartitionReader, "prod", "", 1, 0);
  ASSERT_TRUE(m);
  TokenTable t;
  t.put(m->record);
  auto p = t.authenticate("Bearer " + m->token, 2);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->partition, "prod");
}

// ---- The first start's admin token on disk. ------------------------------------------

TEST(AdminTokenFile, TheFirstStartWritesItOwnerOnlyAndLaterStartsReadItBack) {
  auto dir = std::filesystem::temp_directory_path() / ("loom-admin-token-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string path = access::adminTokenPathBeside((dir / "state.db").string());
  EXPECT_EQ(path, (dir / "admin.token").string());
  auto made = access::readOrWriteAdminToken(path);
  ASSERT_TRUE(made) << made.error().message;
  EXPECT_TRUE(TokenTable::parse(*made));
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto again = access::readOrWriteAdminToken(path);
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, *made);
  // Readable by others: refused, naming the file and the fix.
  ::chmod(path.c_str(), 0644);
  auto open = access::readOrWriteAdminToken(path);
  ASSERT_FALSE(open);
  EXPECT_NE(open.error().message.find("chmod 600 " + path), std::string::npos) << open.error().message;
  std::filesystem::remove_all(dir);
}

// ---- The access check, as the API answers. -------------------------------------------

// Two partitions: prod (pool web on blade b1, server web-0) and dev (pool lab on blade
// b2, server lab-0).
const char* kTwoPartitions = R"(kind: Partition
name: prod
---
kind: Partition
name: dev
---
kind: IdentityPool
name: default
macs: 52:54:00:10:00:00-52:54:00:10:ff:ff
uuids: 4c4f4f4d-0000-0000-0000-000000000000/16
---
kind: Network
name: front
partition: prod
---
kind: Network
name: devnet
partition: dev
---
kind: Pool
name: web
partition: prod
hypervisor: kvm
blades: {names: [b1]}
---
kind: Pool
name: lab
partition: dev
hypervisor: kvm
blades: {names: [b2]}
---
kind: Server
name: web-0
partition: prod
pool: web
vcpus: 1
memory: 512MiB
nics: [{network: front}]
---
kind: Server
name: lab-0
partition: dev
pool: lab
vcpus: 1
memory: 512MiB
nics: [{network: devnet}]
)";

struct Access2 : ::testing::Test {
  Harness h{"access-" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + ".db"};

  void SetUp() override {
    h.registerBlade("b1");
    h.registerBlade("b2");
    ASSERT_EQ(h.api("POST", "/v1/apply", kTwoPartitions).status, 200);
    h.run(3000);
  }
  // A token made through the API by the admin.
  std::string token(const std::string& role, const std::string& partition = "") {
    api::Json body{{"role", role}};
    if (!partition.empty()) body["partition"] = partition;
    auto r = h.api("POST", "/v1/tokens", body.dump());
    EXPECT_EQ(r.status, 201) << r.body;
    return api::Json::parse(r.body)["token"].get<std::string>();
  }
  ApiResponse as(const std::string& token, const std::string& method, const std::string& path,
                 const std::string& body = "", std::map<std::string, std::string> query = {}) {
    ApiResponse out{0, "", ""};
    ApiRequest req{method, path, std::move(query), body};
    if (!token.empty()) req.authorization = "Bearer " + token;
    req.peer = "192.0.2.7:4242";
    h.controller->handleApi(std::move(req), h.now, [&](ApiResponse r) { out = std::move(r); });
    return out;
  }
  static std::vector<std::string> names(const ApiResponse& r) {
    std::vector<std::string> out;
    for (const auto& o : api::Json::parse(r.body)) out.push_back(o.value("name", ""));
    return out;
  }
  api::Json audit() { return api::Json::parse(h.api("GET", "/v1/audit").body); }
};

TEST_F(Access2, WithoutAValidTokenEveryEndpointButHealthIs401) {
  const std::pair<const char*, const char*> endpoints[] = {
      {"GET", "/v1/blades"},  {"GET", "/v1/blades/b1"},     {"POST", "/v1/blades/b1/drain"},
      {"GET", "/v1/servers"}, {"GET", "/v1/servers/web-0"}, {"POST", "/v1/servers/web-0/stop"},
      {"GET", "/v1/pools"},   {"GET", "/v1/partitions"},    {"GET", "/v1/capacity"},
      {"GET", "/v1/events"},  {"GET", "/metrics"},          {"POST", "/v1/apply"},
      {"POST", "/v1/delete"}, {"GET", "/v1/tokens"},        {"POST", "/v1/tokens"},
      {"GET", "/v1/audit"},   {"GET", "/v1/whoami"}};
  for (const auto& [method, path] : endpoints) {
    EXPECT_EQ(as("", method, path).status, 401) << method << " " << path;
    EXPECT_EQ(as(TokenTable::newToken(), method, path).status, 401) << method << " " << path << " (unknown token)";
  }
  EXPECT_EQ(as("", "GET", "/v1/health").status, 200);
  // Nothing was drained or stopped.
  EXPECT_EQ(api::Json::parse(h.api("GET", "/v1/servers/web-0").body)["power"], "on");
}

TEST_F(Access2, APartitionReaderSeesOnlyItsPartitionAndAnotherPartitionsObjectIsUnknown) {
  const std::string t = token("partition-reader", "prod");
  EXPECT_EQ(names(as(t, "GET", "/v1/servers")), std::vector<std::string>{"web-0"});
  EXPECT_EQ(names(as(t, "GET", "/v1/pools")), std::vector<std::string>{"web"});
  EXPECT_EQ(names(as(t, "GET", "/v1/partitions")), std::vector<std::string>{"prod"});
  EXPECT_EQ(names(as(t, "GET", "/v1/blades")), std::vector<std::string>{"b1"});
  const auto capacity = api::Json::parse(as(t, "GET", "/v1/capacity").body);
  ASSERT_EQ(capacity.size(), 1u);
  EXPECT_EQ(capacity[0]["pool"], "web");
  EXPECT_EQ(as(t, "GET", "/v1/servers/web-0").status, 200);
  // dev's: the same 404 as a name nobody declared.
  const auto lab = as(t, "GET", "/v1/servers/lab-0");
  EXPECT_EQ(lab.status, 404);
  EXPECT_EQ(api::Json::parse(lab.body)["error"], "unknown server 'lab-0'");
  EXPECT_EQ(as(t, "GET", "/v1/pools/lab").status, 404);
  EXPECT_EQ(as(t, "GET", "/v1/blades/b2").status, 404);
  // Its events: only prod's servers' and blades'.
  for (const auto& e : api::Json::parse(as(t, "GET", "/v1/events").body)) {
    EXPECT_NE(e.value("server", ""), "lab-0") << e.dump();
    EXPECT_NE(e.value("blade", ""), "b2") << e.dump();
    EXPECT_TRUE(!e.value("server", "").empty() || !e.value("blade", "").empty()) << e.dump();
  }
  // Read only; and nothing fabric-wide.
  EXPECT_EQ(as(t, "POST", "/v1/servers/web-0/stop").status, 403);
  EXPECT_EQ(as(t, "GET", "/metrics").status, 403);
  EXPECT_EQ(as(t, "GET", "/v1/status").status, 404);  // no status route in a bare core
}

TEST_F(Access2, APartitionAdminChangesItsPartitionOnlyAndAFabricWideKindIsForbidden) {
  const std::string t = token("partition-admin", "dev");
  EXPECT_EQ(as(t, "POST", "/v1/servers/lab-0/stop").status, 200);
  EXPECT_EQ(api::Json::parse(h.api("GET", "/v1/servers/lab-0").body)["power"], "off");
  EXPECT_EQ(as(t, "POST", "/v1/servers/web-0/stop").status, 404);  // prod's: unseen
  EXPECT_EQ(as(t, "POST", "/v1/blades/b2/drain").status, 403);     // blades are the fabric's
  // An apply of its own server: fine.
  const std::string lab1 =
      "kind: Server\nname: lab-1\npartition: dev\npool: lab\nvcpus: 1\nmemory: 512MiB\nnics: [{network: devnet}]\n";
  EXPECT_EQ(as(t, "POST", "/v1/apply", lab1).status, 200);
  // prod's pool, changed: 403 naming it.
  const auto pool = as(t, "POST", "/v1/apply",
                       "kind: Pool\nname: web\npartition: prod\nhypervisor: kvm\nblades: {names: [b1, b2]}\n");
  EXPECT_EQ(pool.status, 403);
  EXPECT_NE(pool.body.find("Pool 'web'"), std::string::npos) << pool.body;
  // Moving prod's server into dev is touching prod's server.
  const auto steal = as(t, "POST", "/v1/apply",
                        "kind: Server\nname: web-0\npartition: dev\npool: lab\nvcpus: 1\nmemory: 512MiB\n"
                        "nics: [{network: devnet}]\n");
  EXPECT_EQ(steal.status, 403);
  EXPECT_NE(steal.body.find("partition 'prod'"), std::string::npos) << steal.body;
  const auto partition = as(t, "POST", "/v1/apply", "kind: Partition\nname: qa\n");
  EXPECT_EQ(partition.status, 403);
  EXPECT_NE(partition.body.find("fabric-wide"), std::string::npos) << partition.body;
  EXPECT_EQ(as(t, "POST", "/v1/delete", "kind: Server\nname: web-0\n").status, 403);
  EXPECT_EQ(as(t, "GET", "/v1/tokens").status, 403);
}

TEST_F(Access2, AnOperatorDrainsAndStopsButCannotApplyOrAdminister) {
  const std::string t = token("operator");
  EXPECT_EQ(as(t, "POST", "/v1/blades/b1/drain").status, 200);
  EXPECT_EQ(as(t, "POST", "/v1/blades/b1/undrain").status, 200);
  EXPECT_EQ(as(t, "POST", "/v1/servers/web-0/stop").status, 200);
  EXPECT_EQ(as(t, "GET", "/metrics").status, 200);
  const auto apply = as(t, "POST", "/v1/apply", kTwoPartitions);
  EXPECT_EQ(apply.status, 403);
  EXPECT_NE(apply.body.find("operator"), std::string::npos) << apply.body;
  EXPECT_EQ(as(t, "POST", "/v1/blades/b1/retire").status, 403);
  EXPECT_EQ(as(t, "POST", "/v1/tokens", R"({"role":"admin"})").status, 403);
  const std::string reader = token("reader");
  EXPECT_EQ(as(reader, "GET", "/v1/servers").status, 200);
  EXPECT_EQ(as(reader, "POST", "/v1/blades/b1/drain").status, 403);
}

TEST_F(Access2, ARevokedTokenIsRefusedFromTheNextRequestAndTheRevocationSurvivesARestart) {
  const std::string t = token("reader");
  const std::string id = TokenTable::parse(t)->id;
  EXPECT_EQ(as(t, "GET", "/v1/servers").status, 200);
  EXPECT_EQ(h.api("POST", "/v1/tokens/" + id + "/revoke").status, 200);
  EXPECT_EQ(as(t, "GET", "/v1/servers").status, 401);
  h.reopen();
  EXPECT_EQ(as(t, "GET", "/v1/servers").status, 401);
  EXPECT_EQ(h.api("GET", "/v1/servers").status, 200) << "the first start's admin token still works";
  const auto list = api::Json::parse(h.api("GET", "/v1/tokens").body);
  ASSERT_EQ(list.size(), 2u);  // the first start's and this one: one admin token, made once
  for (const auto& k : list) {
    EXPECT_FALSE(k.contains("hash")) << k.dump();
    if (k["id"] == id) EXPECT_EQ(k["state"], "revoked");
  }
}

TEST_F(Access2, TheAuditLogSaysWhoDidWhatFromWhereAndEveryRefusal) {
  const std::string op = token("operator");
  const std::string opId = TokenTable::parse(op)->id;
  ASSERT_EQ(as(op, "POST", "/v1/blades/b1/drain").status, 200);
  ASSERT_EQ(as(op, "POST", "/v1/apply", kTwoPartitions).status, 403);
  ASSERT_EQ(as("", "GET", "/v1/servers").status, 401);
  const auto records = audit();
  auto find = [&](const std::string& path, int status) {
    for (const auto& r : records)
      if (r["path"] == path && r["status"] == status) return r;
    return api::Json();
  };
  const auto drain = find("/v1/blades/b1/drain", 200);
  ASSERT_TRUE(drain.is_object()) << records.dump(1);
  EXPECT_EQ(drain["token"], opId);
  EXPECT_EQ(drain["role"], "operator");
  EXPECT_EQ(drain["source"], "192.0.2.7:4242");
  EXPECT_EQ(drain["targets"], "blade/b1");
  EXPECT_EQ(drain["outcome"], "applied");
  const auto apply = find("/v1/apply", 403);
  ASSERT_TRUE(apply.is_object()) << records.dump(1);
  EXPECT_EQ(apply["token"], opId);
  const auto anon = find("/v1/servers", 401);
  ASSERT_TRUE(anon.is_object()) << records.dump(1);
  EXPECT_EQ(anon["token"], "");
  // The admin's apply names what it created.
  const auto first = find("/v1/apply", 200);
  ASSERT_TRUE(first.is_object()) << records.dump(1);
  EXPECT_NE(first["targets"].get<std::string>().find("Server/lab-0"), std::string::npos) << first.dump();
  // ?token= filters.
  const auto mine = api::Json::parse(h.api("GET", "/v1/audit", "", {{"token", opId}}).body);
  EXPECT_EQ(mine.size(), 2u) << mine.dump(1);
}

// ---- The audit log's own rules, on a store (SQLite) with a clock of the test's. -------

struct AuditFixture : ::testing::Test {
  std::string path;
  std::unique_ptr<StateStore> store;
  std::unique_ptr<Journal> journal;
  std::int64_t wall = 1'000'000;
  std::unique_ptr<access::AuditLog> log;
  void SetUp() override {
    auto dir = std::filesystem::temp_directory_path() / ("loom-audit-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    path = (dir / (std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + ".db")).string();
    for (const char* s : {"", "-wal", "-shm"}) std::filesystem::remove(path + s);
    store = std::move(openSqliteStateStore(path)).value();
    journal = std::make_unique<Journal>(*store);
    log = std::make_unique<access::AuditLog>(
        *journal, [this] { return wall; }, access::AuditOptions{5, 10000, 3});
  }
  std::vector<AuditRecord> all() {
    journal->flush();
    return std::move(store->audit(0, 1000)).value();
  }
  static ApiRequest request(const std::string& peer) { return {"GET", "/v1/servers", {}, "", "", peer}; }
  static access::Verdict refusal() {
    access::Verdict v;
    v.reason = "no token";
    v.refusal = ApiResponse{401, "application/json", "{}"};
    return v;
  }
};

TEST_F(AuditFixture, RefusalsBeyondTheBurstAreCountedAndWrittenOnceAWindow) {
  for (int i = 0; i < 1000; ++i) log->refused(request("198.51.100." + std::to_string(i % 50) + ":1"), refusal());
  EXPECT_EQ(all().size(), 3u) << "the burst, one by one";
  wall += 10000;
  log->tick(0);
  const auto records = all();
  ASSERT_EQ(records.size(), 4u) << "then one record for the rest";
  EXPECT_EQ(records.back().count, 997u);
  EXPECT_EQ(records.back().status, 401);
  EXPECT_NE(records.back().outcome.find("from 50 sources"), std::string::npos) << records.back().outcome;
}

TEST_F(AuditFixture, TheStoreKeepsTheLatestRecordsOnly) {
  for (int i = 0; i < 12; ++i) {
    log->refused(request("a:1"), refusal());
    wall += 10000;  // a window each: every one recorded
  }
  const auto records = all();
  ASSERT_EQ(records.size(), 5u);
  EXPECT_EQ(records.front().id, 8u);
  EXPECT_EQ(records.back().id, 12u);
}

TEST_F(AuditFixture, AChangesRecordRidesWithItsCommitAndIsNotKeptWhenTheCommitFails) {
  access::Verdict ok;
  ok.caller = {"abc", "admin", ""};
  ok.targets = "blade/b1";
  log->changing({"POST", "/v1/blades/b1/drain", {}, "", "", "p:1"}, ok);
  Change c;
  c.putBlades.push_back({"b1", "{}", "maintenance", 1});
  ASSERT_TRUE(journal->commitNow(std::move(c)));
  log->changed(ApiResponse{200, "application/json", "{}"});
  auto records = all();
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].outcome, "applied");
  EXPECT_EQ(records[0].tokenId, "abc");
  // A commit that fails: the change's record is not written as applied; its failure is.
  store.reset();
  journal.reset();
  std::filesystem::remove(path + "-wal");
  // A store whose every commit fails.
  struct Failing final : StateStore {
    StateStore& inner;
    explicit Failing(StateStore& s) : inner(s) {}
    Result<StoredState> load() override { return inner.load(); }
    Status commit(const Change&) override { return makeError(Errc::Io, "disk full"); }
    Result<std::vector<EventRecord>> events(std::uint64_t s, std::size_t l) override { return inner.events(s, l); }
  };
  auto real = std::move(openSqliteStateStore(path)).value();
  Failing failing(*real);
  Journal j(failing);
  access::AuditLog l(
      j, [this] { return wall; }, access::AuditOptions{});
  l.restore(1);
  l.changing({"POST", "/v1/blades/b1/undrain", {}, "", "", "p:1"}, ok);
  Change undrain;
  undrain.putBlades.push_back({"b1", "{}", "", 1});
  EXPECT_FALSE(j.commitNow(std::move(undrain)));
  l.changed(ApiResponse{503, "application/json", R"({"error":"not changed, the state store failed"})"});
  ASSERT_EQ(j.pending().appendAudit.size(), 1u);
  EXPECT_EQ(j.pending().appendAudit[0].id, 2u);
  EXPECT_EQ(j.pending().appendAudit[0].status, 503);
  EXPECT_EQ(j.pending().appendAudit[0].outcome, "failed: not changed, the state store failed");
  EXPECT_EQ(std::move(real->audit(0, 10)).value().size(), 1u);
}

// ---- A standby's check, from its copy's tokens. ---------------------------------------

TEST(StandbyAccess, AStandbyChecksTokensFromItsCopyAndScopesWhatItShows) {
  Harness h("access-standby.db");
  h.registerBlade("b1");
  h.registerBlade("b2");
  ASSERT_EQ(h.api("POST", "/v1/apply", kTwoPartitions).status, 200);
  h.run(2000);
  auto reader = api::Json::parse(h.api("POST", "/v1/tokens", R"({"role":"partition-reader","partition":"dev"})").body);
  auto revoked = api::Json::parse(h.api("POST", "/v1/tokens", R"({"role":"reader"})").body);
  ASSERT_EQ(h.api("POST", "/v1/tokens/" + revoked["id"].get<std::string>() + "/revoke").status, 200);
  auto state = std::move(h.store->load()).value();
  api::StandbyViews views(std::move(state), [] { return 1; });
  auto get = [&](const std::string& token, const std::string& path) {
    ApiRequest r{"GET", path, {}, ""};
    if (!token.empty()) r.authorization = "Bearer " + token;
    return views.answer(r);
  };
  EXPECT_EQ(get("", "/v1/servers").status, 401);
  EXPECT_EQ(get(revoked["token"], "/v1/servers").status, 401);
  EXPECT_EQ(get(::loom::testing::kTestAdminToken, "/v1/servers").status, 200);
  const auto mine = get(reader["token"], "/v1/servers");
  ASSERT_EQ(mine.status, 200);
  const auto list = api::Json::parse(mine.body);
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["name"], "lab-0");
  EXPECT_EQ(get(reader["token"], "/v1/servers/web-0").status, 404);
  EXPECT_EQ(get(reader["token"], "/v1/blades/b1").status, 404);
  EXPECT_EQ(get(reader["token"], "/v1/blades/b2").status, 200);
  // Its declarations read back from the copy, scoped alike (loomctl get -o yaml).
  const auto declared = get(reader["token"], "/v1/declarations");
  ASSERT_EQ(declared.status, 200) << declared.body;
  EXPECT_EQ(api::Json::parse(declared.body).size(), 4u) << declared.body;
  EXPECT_EQ(get(::loom::testing::kTestAdminToken, "/v1/declarations").body, h.api("GET", "/v1/declarations").body)
      << "the standby's answer is the leader's";
  EXPECT_EQ(views
                .check(ApiRequest{"GET", "/v1/status", {}, "", "Bearer " + reader["token"].get<std::string>()},
                       Access::ReadFabric)
                .refusal->status,
            403);
}

}  // namespace
}  // namespace loom::controller

namespace loom::controller {
namespace {

// GET /v1/declarations (loomctl get): a partition's token reads its partition's
// declarations back and nothing of another's or of the fabric's.
TEST_F(Access2, APartitionTokenReadsBackOnlyItsPartitionsDeclarations) {
  const std::string dev = token("partition-reader", "dev");
  auto r = as(dev, "GET", "/v1/declarations");
  ASSERT_EQ(r.status, 200) << r.body;
  std::set<std::string> seen;
  for (const auto& d : api::Json::parse(r.body))
    seen.insert(d["kind"].get<std::string>() + "/" + d["name"].get<std::string>());
  EXPECT_EQ(seen, (std::set<std::string>{"Partition/dev", "Network/devnet", "Pool/lab", "Server/lab-0"}));
  EXPECT_EQ(as(dev, "GET", "/v1/declarations", "", {{"kind", "Pool"}, {"name", "web"}}).status, 404)
      << "another partition's pool is not there for it";
  // The admin reads everything, the identity pool included, each as its document.
  auto all = api::Json::parse(h.api("GET", "/v1/declarations").body);
  EXPECT_EQ(all.size(), 9u);
  auto pool = h.api("GET", "/v1/declarations", "", {{"kind", "Pool"}, {"name", "web"}});
  ASSERT_EQ(pool.status, 200);
  EXPECT_EQ(api::Json::parse(pool.body)[0]["yaml"].get<std::string>(),
            "kind: Pool\nname: web\npartition: prod\nhypervisor: kvm\nblades:\n  names: [b1]\nspares: 0\n"
            "failover: spare\nfailback: manual\n");
  auto bogus = h.api("GET", "/v1/declarations", "", {{"kind", "Pools"}});
  EXPECT_EQ(bogus.status, 400);
  EXPECT_NE(bogus.body.find("known: Partition, Network"), std::string::npos) << bogus.body;
}

// Apply and delete events say which files and whose token (issue 18: "who changed this?").
TEST_F(Access2, ApplyAndDeleteEventsNameTheFilesAndTheToken) {
  const std::string admin = token("admin");
  const std::string id = TokenTable::parse(admin)->id;
  const char* extra = "kind: Network\nname: extra\npartition: prod\n";
  ASSERT_EQ(as(admin, "POST", "/v1/apply", extra, {{"source", "request"}, {"files", "nets.yaml, more.yaml"}}).status,
            200);
  EXPECT_TRUE(h.hasEvent("applied nets.yaml, more.yaml (token " + id + ", admin): 1 created")) << id;
  ASSERT_EQ(as(admin, "POST", "/v1/delete", extra, {{"source", "nets.yaml"}}).status, 200);
  EXPECT_TRUE(h.hasEvent("deleted nets.yaml (token " + id + ", admin): 1 objects"));
}

}  // namespace
}  // namespace loom::controller
