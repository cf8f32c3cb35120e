// The StateStore contract, for each backend: what is committed is what a reopened store
// loads. SQLite in a temporary file; etcd on a real 3-member cluster (tools/etcd.sh,
// skipped without etcd, failed on CI), each test under a prefix of its own.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "controller/StateStore.h"
#include "tests/support/EtcdCluster.h"

namespace loom::controller {
namespace {

std::string freshPath(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() / ("loom-store-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto path = dir / name;
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path.string() + suffix);
  return path.string();
}

class StateStoreContract : public ::testing::TestWithParam<std::string> {
 protected:
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }
  void SetUp() override {
    const std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    // "ReopenedStore.../etcd" -> "ReopenedStore..."
    base_ = name.substr(0, name.find('/'));
    if (GetParam() == "sqlite") {
      path_ = freshPath(base_ + ".db");
      return;
    }
    if (!cluster_ && !tried_) {
      tried_ = true;
      std::string why;
      cluster_ = test::EtcdCluster::start(3, why).release();
      why_ = why;
    }
    if (!cluster_) {
      if (test::EtcdCluster::mustRun()) FAIL() << "etcd is required on CI: " << why_;
      GTEST_SKIP() << "no etcd here: " << why_;
    }
  }

  // Opens the test's store: the same one each time (a reopen).
  std::unique_ptr<StateStore> open() {
    if (GetParam() == "sqlite") {
      auto s = openSqliteStateStore(path_);
      EXPECT_TRUE(s) << s.error().message;
      return s ? std::move(*s) : nullptr;
    }
    EtcdStoreOptions o;
    o.endpoints = cluster_->endpoints();
    o.prefix = "/contract/" + base_;
    auto s = openEtcdStateStore(o);
    EXPECT_TRUE(s) << s.error().message;
    return s ? std::unique_ptr<StateStore>(std::move(*s)) : nullptr;
  }

  static test::EtcdCluster* cluster_;
  static bool tried_;
  static std::string why_;
  std::string base_;
  std::string path_;
};
test::EtcdCluster* StateStoreContract::cluster_ = nullptr;
bool StateStoreContract::tried_ = false;
std::string StateStoreContract::why_;

TEST_P(StateStoreContract, ReopenedStoreLoadsWhatWasCommitted) {
  {
    auto store = open();
    ASSERT_TRUE(store);
    Change c;
    c.putDeclarations.push_back({"Server", "web-01", R"({"name":"web-01"})"});
    c.putDeclarations.push_back({"Pool", "web", R"({"name":"web"})"});
    c.putBindings["web-01"] = "c1-s1";
    c.putBindings["web-02"] = "c1-s2";
    c.putBorrowed["c2-s7"] = "web";
    c.putIdentities.push_back(
        {"web-01", "default", {"4c4f4f4d-0000-0000-0000-000000000001", {"52:54:00:10:00:01", "52:54:00:10:00:02"}}});
    c.putBlades.push_back({"c1-s1", R"({"cores":16,"memory_mib":1024})", "maintenance", 42});
    c.putOperations.push_back({7, "c1-s1", "web-01", "start", "pending", 1, ""});
    c.putOperations.push_back({8, "c1-s1", "web-01", "define", "done", 1, ""});
    c.appendEvents.push_back({1, 100, "info", "c1-s1", "", "hello"});
    c.appendEvents.push_back({2, 101, "error", "", "web-01", "boom"});
    ASSERT_TRUE(store->commit(c));
    Change d;
    d.deleteBindings.push_back("web-02");
    d.putDeclarations.push_back({"Server", "web-01", R"({"name":"web-01","vcpus":4})"});
    ASSERT_TRUE(store->commit(d));
  }
  auto store = open();
  ASSERT_TRUE(store);
  auto st = store->load();
  ASSERT_TRUE(st) << st.error().message;
  ASSERT_EQ(st->declarations.size(), 2u);
  // (The order within one commit is the backend's: SQLite's is the change's, etcd's by key.)
  const auto server = std::find_if(st->declarations.begin(), st->declarations.end(),
                                   [](const DeclarationRecord& d) { return d.kind == "Server"; });
  ASSERT_NE(server, st->declarations.end());
  EXPECT_EQ(server->body, R"({"name":"web-01","vcpus":4})");
  EXPECT_EQ(st->bindings, (std::map<std::string, std::string>{{"web-01", "c1-s1"}}));
  EXPECT_EQ(st->borrowed.at("c2-s7"), "web");
  ASSERT_EQ(st->identities.size(), 1u);
  EXPECT_EQ(st->identities[0].identity.macs.size(), 2u);
  EXPECT_EQ(st->identities[0].identity.uuid, "4c4f4f4d-0000-0000-0000-000000000001");
  ASSERT_EQ(st->blades.size(), 1u);
  EXPECT_EQ(st->blades[0].adminState, "maintenance");
  EXPECT_EQ(st->blades[0].firstSeenMs, 42);
  ASSERT_EQ(st->pendingOperations.size(), 1u);  // finished ones are history, not work
  EXPECT_EQ(st->pendingOperations[0].id, 7u);
  EXPECT_EQ(st->lastOperationId, 8u);
  EXPECT_EQ(st->lastEventId, 2u);
  auto ev = store->events(1, 10);
  ASSERT_TRUE(ev);
  ASSERT_EQ(ev->size(), 1u);
  EXPECT_EQ((*ev)[0].message, "boom");
  EXPECT_EQ((*ev)[0].server, "web-01");
  EXPECT_EQ((*ev)[0].timeMs, 101);
}

TEST_P(StateStoreContract, AnEmptyStoreLoadsEmpty) {
  auto store = open();
  ASSERT_TRUE(store);
  auto st = store->load();
  ASSERT_TRUE(st) << st.error().message;
  EXPECT_TRUE(st->declarations.empty());
  EXPECT_TRUE(st->bindings.empty());
  EXPECT_EQ(st->lastEventId, 0u);
  EXPECT_EQ(st->lastOperationId, 0u);
  auto ev = store->events(0, 10);
  ASSERT_TRUE(ev);
  EXPECT_TRUE(ev->empty());
}

TEST_P(StateStoreContract, DeclarationsComeBackInTheOrderTheyWereFirstApplied) {
  auto store = open();
  ASSERT_TRUE(store);
  for (const char* name : {"zeta", "alpha", "mid"}) {
    Change c;
    c.putDeclarations.push_back({"Server", name, "{}"});
    ASSERT_TRUE(store->commit(c));
  }
  Change update;  // an update keeps a declaration's place
  update.putDeclarations.push_back({"Server", "zeta", R"({"v":2})"});
  update.deleteDeclarations.push_back({"Server", "alpha"});
  ASSERT_TRUE(store->commit(update));
  auto st = store->load();
  ASSERT_TRUE(st);
  ASSERT_EQ(st->declarations.size(), 2u);
  EXPECT_EQ(st->declarations[0].name, "zeta");
  EXPECT_EQ(st->declarations[0].body, R"({"v":2})");
  EXPECT_EQ(st->declarations[1].name, "mid");
}

TEST_P(StateStoreContract, AKeyWrittenTwiceInOneChangeEndsAsTheLaterWriteSays) {
  auto store = open();
  ASSERT_TRUE(store);
  Change first;
  first.putBindings["a"] = "b1";
  first.putPlacement[{"home", "a"}] = "b1";
  ASSERT_TRUE(store->commit(first));
  // Journal::commitNow merges batches: an operation upserted twice, and a delete with a
  // put of the same key (deletes apply before puts, as in SQLite).
  Change c;
  c.putOperations.push_back({5, "b1", "a", "define", "pending", 1, ""});
  c.putOperations.push_back({5, "b1", "a", "define", "done", 1, ""});
  c.putOperations.push_back({6, "b1", "a", "start", "pending", 1, ""});
  c.deleteBindings.push_back("a");
  c.putBindings["a"] = "b2";
  c.deletePlacement.push_back({"home", "a"});
  c.putDeclarations.push_back({"Server", "s", R"({"v":1})"});
  c.putDeclarations.push_back({"Server", "s", R"({"v":2})"});
  c.putBlades.push_back({"b1", "{}", "", 10});
  c.putBlades.push_back({"b1", "{}", "maintenance", 20});
  ASSERT_TRUE(store->commit(c));
  auto st = store->load();
  ASSERT_TRUE(st) << st.error().message;
  EXPECT_EQ(st->bindings.at("a"), "b2");
  EXPECT_FALSE(st->placementMaps["home"].count("a"));
  ASSERT_EQ(st->pendingOperations.size(), 1u);
  EXPECT_EQ(st->pendingOperations[0].id, 6u);
  EXPECT_EQ(st->lastOperationId, 6u);
  ASSERT_EQ(st->declarations.size(), 1u);
  EXPECT_EQ(st->declarations[0].body, R"({"v":2})");
  ASSERT_EQ(st->blades.size(), 1u);
  EXPECT_EQ(st->blades[0].adminState, "maintenance");
  EXPECT_EQ(st->blades[0].firstSeenMs, 10);  // the first sighting stays
}

// A server's identity, binding and home change one at a time (a plan moves it, a
// rebalance sends it home, a delete releases its identity), each keeping the others.
TEST_P(StateStoreContract, AServersIdentityBindingAndHomeChangeOneAtATime) {
  auto store = open();
  ASSERT_TRUE(store);
  Change c;
  c.putIdentities.push_back({"a", "p", {"uuid-a", {"52:54:00:00:00:0a"}}});
  c.putIdentities.push_back({"b", "p", {"uuid-b", {"52:54:00:00:00:0b"}}});
  c.putBindings["a"] = "b1";
  c.putPlacement[{"home", "a"}] = "b1";
  c.putPlacement[{"home", "b"}] = "b2";
  ASSERT_TRUE(store->commit(c));
  Change move;
  move.putBindings["a"] = "b2";
  ASSERT_TRUE(store->commit(move));
  Change home;
  home.deletePlacement.emplace_back("home", "a");
  home.putBindings["b"] = "b2";
  ASSERT_TRUE(store->commit(home));
  auto reopened = open();  // and another writer, from what it loads
  ASSERT_TRUE(reopened);
  ASSERT_TRUE(reopened->load());
  Change release;
  pool::IdentityRecord r{"b", "p", {"uuid-b", {"52:54:00:00:00:0b"}}};
  r.released = true;
  release.putIdentities.push_back(r);
  ASSERT_TRUE(reopened->commit(release));
  auto st = open()->load();
  ASSERT_TRUE(st) << st.error().message;
  EXPECT_EQ(st->bindings, (std::map<std::string, std::string>{{"a", "b2"}, {"b", "b2"}}));
  EXPECT_EQ(st->placementMaps["home"], (std::map<std::string, std::string>{{"b", "b2"}}));
  ASSERT_EQ(st->identities.size(), 2u);
  std::sort(st->identities.begin(), st->identities.end(),
            [](const auto& x, const auto& y) { return x.identity.uuid < y.identity.uuid; });
  EXPECT_EQ(st->identities[0].server, "a");
  EXPECT_FALSE(st->identities[0].released);
  EXPECT_EQ(st->identities[0].identity.macs, std::vector<std::string>{"52:54:00:00:00:0a"});
  EXPECT_TRUE(st->identities[1].released);
}

TEST_P(StateStoreContract, OperationsLeaveThePendingListWhenFinishedAndIdsNeverGoBack) {
  auto store = open();
  ASSERT_TRUE(store);
  Change c;
  c.putOperations.push_back({10, "b", "s", "define", "pending", 0, ""});
  c.appendEvents.push_back({30, 1, "info", "", "", "x"});
  ASSERT_TRUE(store->commit(c));
  Change done;
  done.putOperations.push_back({10, "b", "s", "define", "failed", 3, "no such image"});
  done.putOperations.push_back({4, "b", "s", "stop", "done", 1, ""});  // an old id, updated late
  ASSERT_TRUE(store->commit(done));
  auto st = store->load();
  ASSERT_TRUE(st);
  EXPECT_TRUE(st->pendingOperations.empty());
  EXPECT_EQ(st->lastOperationId, 10u);
  EXPECT_EQ(st->lastEventId, 30u);
  Change later;
  later.appendEvents.push_back({31, 2, "info", "", "", "y"});
  ASSERT_TRUE(store->commit(later));
  st = store->load();
  ASSERT_TRUE(st);
  EXPECT_EQ(st->lastEventId, 31u);
}

TEST_P(StateStoreContract, ReleasedIdentitiesAndQuorumVersionsSurvive) {
  auto store = open();
  ASSERT_TRUE(store);
  Change c;
  c.putIdentities.push_back({"web-01", "p", {"4c4f4f4d-0000-0000-0000-000000000001", {"52:54:00:00:00:01"}}});
  c.putQuorumVersions[1] = R"({"v":1})";
  c.putQuorumVersions[2] = R"({"v":2})";
  c.putPlacement[{"held", "web-01"}] = "";
  ASSERT_TRUE(store->commit(c));
  Change r;
  pool::IdentityRecord released{"web-01", "p", {"4c4f4f4d-0000-0000-0000-000000000001", {"52:54:00:00:00:01"}}};
  released.released = true;
  r.putIdentities.push_back(released);
  r.deleteQuorumVersions.push_back(1);
  ASSERT_TRUE(store->commit(r));
  auto st = store->load();
  ASSERT_TRUE(st) << st.error().message;
  ASSERT_EQ(st->identities.size(), 1u);
  EXPECT_TRUE(st->identities[0].released);
  EXPECT_TRUE(st->identities[0].server.empty());
  EXPECT_EQ(st->identities[0].identity.macs, std::vector<std::string>{"52:54:00:00:00:01"});
  EXPECT_EQ(st->quorumVersions, (std::map<std::uint64_t, std::string>{{2, R"({"v":2})"}}));
  EXPECT_EQ(st->placementMaps.at("held").at("web-01"), "");
}

TEST_P(StateStoreContract, EventsArePagedOldestFirst) {
  auto store = open();
  ASSERT_TRUE(store);
  Change c;
  for (std::uint64_t id = 1; id <= 25; ++id)
    c.appendEvents.push_back({id, static_cast<std::int64_t>(id), "info", "", "", "e" + std::to_string(id)});
  ASSERT_TRUE(store->commit(c));
  auto page = store->events(9, 10);
  ASSERT_TRUE(page);
  ASSERT_EQ(page->size(), 10u);
  EXPECT_EQ(page->front().id, 10u);
  EXPECT_EQ(page->back().id, 19u);
  auto tail = store->events(19, 100);
  ASSERT_TRUE(tail);
  EXPECT_EQ(tail->size(), 6u);
}

// The retention (EventLog, --event-retention): the store drops the events the change
// names, in the commit that appends newer ones, and numbering goes on after a reopen.
TEST_P(StateStoreContract, EventsPastTheRetentionAreDeletedAndNumberingGoesOn) {
  auto store = open();
  ASSERT_TRUE(store);
  Change c;
  for (std::uint64_t id = 1; id <= 10; ++id) c.appendEvents.push_back({id, 1, "info", "", "", "e"});
  ASSERT_TRUE(store->commit(c));
  Change more;
  more.appendEvents.push_back({11, 2, "info", "", "", "newest"});
  more.dropEventsThrough = 8;
  ASSERT_TRUE(store->commit(more));
  store = open();
  ASSERT_TRUE(store);
  auto kept = store->events(0, 100);
  ASSERT_TRUE(kept) << kept.error().message;
  ASSERT_EQ(kept->size(), 3u);
  EXPECT_EQ(kept->front().id, 9u);
  EXPECT_EQ(kept->back().message, "newest");
  auto st = store->load();
  ASSERT_TRUE(st);
  EXPECT_EQ(st->lastEventId, 11u);
}

TEST_P(StateStoreContract, TokensAreUpsertedByIdAndComeBackWithTheirRevocation) {
  {
    auto store = open();
    ASSERT_TRUE(store);
    Change c;
    c.putTokens.push_back({"aaaaaaaaaaaa", "h1", "admin", "", "first", 10, 0, 0});
    c.putTokens.push_back({"bbbbbbbbbbbb", "h2", "partition-reader", "prod", "a/b%c", 11, 99, 0});
    ASSERT_TRUE(store->commit(c));
    Change revoke;
    revoke.putTokens.push_back({"bbbbbbbbbbbb", "h2", "partition-reader", "prod", "a/b%c", 11, 99, 12});
    ASSERT_TRUE(store->commit(revoke));
  }
  auto st = open()->load();
  ASSERT_TRUE(st);
  ASSERT_EQ(st->tokens.size(), 2u);
  auto b = std::find_if(st->tokens.begin(), st->tokens.end(), [](const auto& t) { return t.id == "bbbbbbbbbbbb"; });
  ASSERT_NE(b, st->tokens.end());
  EXPECT_EQ(b->hash, "h2");
  EXPECT_EQ(b->partition, "prod");
  EXPECT_EQ(b->description, "a/b%c");
  EXPECT_EQ(b->expiresMs, 99);
  EXPECT_EQ(b->revokedMs, 12);
}

TEST_P(StateStoreContract, AuditRecordsArePagedAndTheOldestDeletedForRetention) {
  auto store = open();
  ASSERT_TRUE(store);
  Change c;
  for (std::uint64_t id = 1; id <= 8; ++id) {
    AuditRecord a;
    a.id = id;
    a.timeMs = static_cast<std::int64_t>(id);
    a.tokenId = "t";
    a.method = "POST";
    a.path = "/v1/apply";
    a.status = 200;
    a.outcome = "applied";
    c.appendAudit.push_back(a);
  }
  ASSERT_TRUE(store->commit(c));
  // Two more, and everything up to 5 goes in the same commit (a retention of 5).
  Change more;
  for (std::uint64_t id = 9; id <= 10; ++id) {
    AuditRecord a;
    a.id = id;
    a.status = 401;
    a.count = 3;
    more.appendAudit.push_back(a);
  }
  more.deleteAuditThrough = 5;
  ASSERT_TRUE(store->commit(more));
  auto all = store->audit(0, 100);
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 5u);
  EXPECT_EQ(all->front().id, 6u);
  EXPECT_EQ(all->front().outcome, "applied");
  EXPECT_EQ(all->back().id, 10u);
  EXPECT_EQ(all->back().count, 3u);
  auto page = store->audit(6, 2);
  ASSERT_TRUE(page);
  ASSERT_EQ(page->size(), 2u);
  EXPECT_EQ(page->front().id, 7u);
  auto st = open()->load();
  ASSERT_TRUE(st);
  EXPECT_EQ(st->lastAuditId, 10u);
}

TEST_P(StateStoreContract, NamesWithSlashesAndPercentSignsRoundTrip) {
  auto store = open();
  ASSERT_TRUE(store);
  Change c;
  c.putDeclarations.push_back({"Ki/nd", "a/b%2Fc", "{}"});
  c.putPlacement[{"m/ap", "k%/ey"}] = "v";
  c.putBindings["s/1"] = "b/1";
  ASSERT_TRUE(store->commit(c));
  auto st = store->load();
  ASSERT_TRUE(st);
  ASSERT_EQ(st->declarations.size(), 1u);
  EXPECT_EQ(st->declarations[0].kind, "Ki/nd");
  EXPECT_EQ(st->declarations[0].name, "a/b%2Fc");
  EXPECT_EQ(st->placementMaps.at("m/ap").at("k%/ey"), "v");
  EXPECT_EQ(st->bindings.at("s/1"), "b/1");
}

INSTANTIATE_TEST_SUITE_P(Backends, StateStoreContract, ::testing::Values("sqlite", "etcd"),
                         [](const auto& info) { return info.param; });

TEST(StateStore, UnopenablePathIsAnError) {
  auto store = openSqliteStateStore("/nonexistent-dir/sub/state.db");
  ASSERT_FALSE(store);
  EXPECT_NE(store.error().message.find("/nonexistent-dir/sub/state.db"), std::string::npos);
}

TEST(StateStore, EtcdStoreUrlsParseOrSayWhatIsWrong) {
  auto o = parseEtcdStoreUrl("etcd://127.0.0.1:2379,10.0.0.2:2379/fabric/a");
  ASSERT_TRUE(o) << o.error().message;
  EXPECT_EQ(o->endpoints, (std::vector<std::string>{"127.0.0.1:2379", "10.0.0.2:2379"}));
  EXPECT_EQ(o->prefix, "/fabric/a");
  auto d = parseEtcdStoreUrl("etcd://etcd1:2379");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->prefix, "/loom");
  for (const char* bad : {"http://127.0.0.1:2379", "etcd://", "etcd://host", "etcd://h:1/", "etcd://h:1,/x"}) {
    auto r = parseEtcdStoreUrl(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_NE(r.error().message.find(bad), std::string::npos) << r.error().message;
  }
}

}  // namespace
}  // namespace loom::controller
