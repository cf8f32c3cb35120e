// What the etcd store adds to the StateStore contract (StateStoreTest runs that on both
// backends): a change past etcd's default limits is still one transaction, a cluster
// left at those defaults is refused with the flag to set, the leadership guard, commits
// through the loss and return of etcd members, one key per server (a writer with a stale
// copy of it loses no part) and the older key layout moved at open. Real etcd
// (tools/etcd.sh).
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <set>
#include <thread>

#include "controller/StateStore.h"
#include "controller/etcd/EtcdClient.h"
#include "tests/support/EtcdCluster.h"

namespace loom::controller {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using etcd::Compare;
using etcd::EtcdClient;
using etcd::Op;

#define LOOM_START_ETCD(var, members, ...)                                            \
  do {                                                                                \
    std::string why_;                                                                 \
    var = test::EtcdCluster::start(members, why_, ##__VA_ARGS__);                     \
    if (!var) {                                                                       \
      if (test::EtcdCluster::mustRun()) FAIL() << "etcd is required on CI: " << why_; \
      GTEST_SKIP() << "no etcd here: " << why_;                                       \
    }                                                                                 \
  } while (0)

std::unique_ptr<EtcdStateStore> openStore(const test::EtcdCluster& c, const std::string& prefix,
                                          std::chrono::milliseconds timeout = 2000ms) {
  EtcdStoreOptions o;
  o.endpoints = c.endpoints();
  o.prefix = prefix;
  o.timeout = timeout;
  auto s = openEtcdStateStore(o);
  EXPECT_TRUE(s) << s.error().message;
  return s ? std::move(*s) : nullptr;
}

// `servers` servers' worth of records: declaration, binding, home, identity.
Change serversChange(int servers, const std::string& tag) {
  Change c;
  const std::string padding(200, 'p');
  for (int i = 0; i < servers; ++i) {
    const std::string name = "s" + std::to_string(i);
    c.putDeclarations.push_back({"Server", name, R"({"name":")" + name + R"(","tag":")" + tag + padding + R"("})"});
    c.putBindings[name] = "b" + std::to_string(i % 100);
    c.putPlacement[{"home", name}] = "b" + std::to_string(i % 100);
    c.putIdentities.push_back({name, "default", {"uuid-" + std::to_string(i), {"52:54:00:00:00:01"}}});
  }
  return c;
}

TEST(EtcdStateStore, AChangeFarPastEtcdsDefaultLimitsIsOneTransaction) {
  std::unique_ptr<test::EtcdCluster> cluster;
  LOOM_START_ETCD(cluster, 3);
  auto store = openStore(*cluster, "/big", 10000ms);  // atomicity, not speed: room for a busy machine
  ASSERT_TRUE(store);
  // 20,000 writes, ~6 MiB: etcd's defaults are 128 ops and 1.5 MiB.
  const Change c = serversChange(5000, "first");
  auto s = store->commit(c);
  ASSERT_TRUE(s) << s.error().message;
  auto st = store->load();
  ASSERT_TRUE(st) << st.error().message;
  EXPECT_EQ(st->declarations.size(), 5000u);
  EXPECT_EQ(st->bindings.size(), 5000u);
  EXPECT_EQ(st->identities.size(), 5000u);
  EXPECT_EQ(st->placementMaps["home"].size(), 5000u);
  // One transaction is one revision: every key of it has the same mod revision, so no
  // reader (a standby's watch, a load) can have seen part of it.
  EtcdClient client(cluster->endpoints());
  client.setTimeout(10000ms);
  auto all = client.rangePrefix("/big/");
  ASSERT_TRUE(all) << all.error().message;
  // Two keys a server: its declaration, and server/NAME with identity, binding and home.
  ASSERT_EQ(all->kvs.size(), 10000u);
  std::set<std::int64_t> revisions;
  for (const auto& kv : all->kvs) revisions.insert(kv.modRevision);
  EXPECT_EQ(revisions.size(), 1u);

  // A store that takes answers of 1 MiB at most reads it all in smaller pages.
  EtcdStoreOptions small;
  small.endpoints = cluster->endpoints();
  small.prefix = "/big";
  small.maxRangeBytes = 1 << 20;
  small.timeout = 10000ms;
  auto bounded = openEtcdStateStore(small);
  ASSERT_TRUE(bounded) << bounded.error().message;
  auto again = (*bounded)->load();
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(again->declarations.size(), 5000u);
  EXPECT_EQ(again->identities.size(), 5000u);
}

// The store does not grow with history: a finished operation leaves no key, and the
// events past the retention go in the commit that appends newer ones.
TEST(EtcdStateStore, FinishedOperationsAndEventsPastTheRetentionLeaveNoKeys) {
  std::unique_ptr<test::EtcdCluster> cluster;
  LOOM_START_ETCD(cluster, 1);
  auto store = openStore(*cluster, "/history");
  ASSERT_TRUE(store);
  Change run;
  for (std::uint64_t id = 1; id <= 50; ++id) {
    run.putOperations.push_back({id, "b", "s" + std::to_string(id), "define", "pending", 0, ""});
    run.appendEvents.push_back({id, 1, "info", "", "", "e"});
  }
  ASSERT_TRUE(store->commit(run));
  Change done;
  for (std::uint64_t id = 1; id <= 50; ++id)
    done.putOperations.push_back({id, "b", "s" + std::to_string(id), "define", id % 2 ? "done" : "failed", 1, ""});
  done.appendEvents.push_back({51, 2, "info", "", "", "newest"});
  done.dropEventsThrough = 41;
  ASSERT_TRUE(store->commit(done));
  EtcdClient client(cluster->endpoints());
  auto ops = client.rangePrefix("/history/op/");
  ASSERT_TRUE(ops) << ops.error().message;
  EXPECT_TRUE(ops->kvs.empty()) << ops->kvs.size() << " operation keys left, the first " << ops->kvs.front().key;
  auto events = client.rangePrefix("/history/event/");
  ASSERT_TRUE(events) << events.error().message;
  EXPECT_EQ(events->kvs.size(), 10u);  // 42..51
  auto st = store->load();
  ASSERT_TRUE(st) << st.error().message;
  EXPECT_EQ(st->lastOperationId, 50u);
  EXPECT_EQ(st->lastEventId, 51u);
}

TEST(EtcdStateStore, AClusterAtEtcdsDefaultLimitsIsRefusedAtOpenNamingTheFlag) {
  std::unique_ptr<test::EtcdCluster> cluster;
  LOOM_START_ETCD(cluster, 1, "--max-txn-ops 128 --max-request-bytes 1572864");
  EtcdStoreOptions o;
  o.endpoints = cluster->endpoints();
  auto refused = openEtcdStateStore(o);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("--max-txn-ops 1024 or more"), std::string::npos) << refused.error().message;

  // Unchecked at open, a change etcd refuses says which flag and how much, and writes nothing.
  o.requiredTxnOps = 0;
  o.prefix = "/small";
  auto opened = openEtcdStateStore(o);
  ASSERT_TRUE(opened) << opened.error().message;
  auto& store = **opened;
  auto tooMany = store.commit(serversChange(100, "x"));  // 200 writes: a declaration and a server key each
  ASSERT_FALSE(tooMany);
  EXPECT_NE(tooMany.error().message.find("--max-txn-ops 200 or more"), std::string::npos) << tooMany.error().message;
  EXPECT_NE(tooMany.error().message.find("nothing was written"), std::string::npos);
  Change large;  // 20 writes, 2 MiB
  for (int i = 0; i < 20; ++i) large.putDeclarations.push_back({"Server", std::to_string(i), std::string(100000, 'x')});
  auto tooLarge = store.commit(large);
  ASSERT_FALSE(tooLarge);
  EXPECT_NE(tooLarge.error().message.find("--max-request-bytes"), std::string::npos) << tooLarge.error().message;
  auto st = store.load();
  ASSERT_TRUE(st);
  EXPECT_TRUE(st->declarations.empty());
  EXPECT_TRUE(st->bindings.empty());
}

TEST(EtcdStateStore, ACommitUnderALostLeadershipGuardFailsAndWritesNothing) {
  std::unique_ptr<test::EtcdCluster> cluster;
  LOOM_START_ETCD(cluster, 1);
  EtcdClient election(cluster->endpoints());
  const std::string leaderKey = "/election/leader";
  auto campaign = [&](const std::string& me) -> std::pair<std::int64_t, std::int64_t> {  // (lease, create rev)
    auto lease = election.leaseGrant(1);
    EXPECT_TRUE(lease);
    auto won = election.txn({Compare::createRevision(leaderKey, Compare::Result::Equal, 0)},
                            {Op::put(leaderKey, me, lease->id)});
    EXPECT_TRUE(won && won->succeeded);
    return {lease->id, won->revision};
  };
  auto [lease, epoch] = campaign("loomd-a");
  auto store = openStore(*cluster, "/guarded");
  ASSERT_TRUE(store);
  store->setGuard(leaderKey, epoch);
  Change first;
  first.putBindings["web-01"] = "c1-s1";
  auto committed = store->commit(first);
  ASSERT_TRUE(committed) << committed.error().message;

  // The lease is gone (a paused leader woke up after it expired): nothing more is written.
  ASSERT_TRUE(election.leaseRevoke(lease));
  Change stale;
  stale.putBindings["web-01"] = "c9-s9";
  stale.appendEvents.push_back({1, 1, "info", "", "", "written by a stale leader"});
  auto s = store->commit(stale);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, Errc::Conflict);
  EXPECT_NE(s.error().message.find("no longer the leader"), std::string::npos) << s.error().message;
  // Nor once another loomd holds the key: it has another create revision.
  auto [lease2, epoch2] = campaign("loomd-b");
  EXPECT_NE(epoch2, epoch);
  ASSERT_FALSE(store->commit(stale));
  auto st = store->load();
  ASSERT_TRUE(st);
  EXPECT_EQ(st->bindings.at("web-01"), "c1-s1");
  EXPECT_EQ(st->lastEventId, 0u);
  // The new leader, guarded by its own epoch, writes.
  store->setGuard(leaderKey, epoch2);
  ASSERT_TRUE(store->commit(stale));
  (void)election.leaseRevoke(lease2);
}

// A server's identity, binding and home are one key (server/NAME), rewritten whole from
// the writer's copy of it. A writer whose copy is stale (another wrote the key since it
// loaded: a previous term, a commit whose answer was lost) must not put back the parts it
// did not change: its txn requires the key's revision as copied, fails, reads the key
// back and is built again.
TEST(EtcdStateStore, AWriterWithAStaleCopyOfAServerKeyLosesNoPartOfIt) {
  std::unique_ptr<test::EtcdCluster> cluster;
  LOOM_START_ETCD(cluster, 1);
  auto a = openStore(*cluster, "/stale");
  auto b = openStore(*cluster, "/stale");
  ASSERT_TRUE(a && b);
  Change first;
  first.putDeclarations.push_back({"Server", "web-01", R"({"name":"web-01"})"});
  first.putIdentities.push_back({"web-01", "default", {"uuid-1", {"52:54:00:00:00:01"}}});
  first.putBindings["web-01"] = "c1-s1";
  first.putPlacement[{"home", "web-01"}] = "c1-s1";
  ASSERT_TRUE(a->commit(first));
  ASSERT_TRUE(b->load());  // b's copy: web-01 bound to c1-s1

  Change moved;  // a moves it, and binds a server b has never seen
  moved.putBindings["web-01"] = "c1-s2";
  moved.putIdentities.push_back({"web-02", "default", {"uuid-2", {"52:54:00:00:00:02"}}});
  moved.putBindings["web-02"] = "c1-s2";
  ASSERT_TRUE(a->commit(moved));

  Change stale;  // b, from its copy: a new home for web-01, web-02 unbound
  stale.putPlacement[{"home", "web-01"}] = "c1-s3";
  stale.deleteBindings.push_back("web-02");
  auto s = b->commit(stale);
  ASSERT_TRUE(s) << s.error().message;

  auto fresh = openStore(*cluster, "/stale");
  ASSERT_TRUE(fresh);
  auto st = fresh->load();
  ASSERT_TRUE(st) << st.error().message;
  EXPECT_EQ(st->bindings, (std::map<std::string, std::string>{{"web-01", "c1-s2"}}))
      << "a's move of web-01 was lost, or b's unbinding of web-02";
  EXPECT_EQ(st->placementMaps["home"], (std::map<std::string, std::string>{{"web-01", "c1-s3"}}));
  ASSERT_EQ(st->identities.size(), 2u);
  EXPECT_EQ(st->identities[0].identity.uuid, "uuid-1");
  EXPECT_EQ(st->identities[1].identity.uuid, "uuid-2");

  // Under a lost leadership guard a stale copy changes nothing either, and says why.
  b->setGuard("/stale/leader", 12345);
  Change late;
  late.putBindings["web-01"] = "c9-s9";
  auto refused = b->commit(late);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("no longer the leader"), std::string::npos) << refused.error().message;

  // Every part gone (a's copy of web-01 is behind b's new home for it): so is the key.
  Change gone;
  gone.deleteBindings.push_back("web-01");
  gone.deletePlacement.emplace_back("home", "web-01");
  pool::IdentityRecord released{"web-01", "default", {"uuid-1", {"52:54:00:00:00:01"}}};
  released.released = true;
  gone.putIdentities.push_back(released);
  ASSERT_TRUE(a->commit(gone));
  EtcdClient client(cluster->endpoints());
  auto keys = client.rangePrefix("/stale/");
  ASSERT_TRUE(keys) << keys.error().message;
  std::set<std::string> names;
  for (const auto& kv : keys->kvs) names.insert(kv.key);
  EXPECT_EQ(names, (std::set<std::string>{"/stale/decl/Server/web-01", "/stale/identity-released/uuid-1",
                                          "/stale/server/web-02"}));
}

// A store written by a loomd of the older layout (identity/S, binding/S, placement/home/S,
// a key per part) is moved to server/NAME at open, in one transaction; not while a loomd
// leads (an older one would go on writing keys this version does not read).
TEST(EtcdStateStore, AStoreInTheOlderKeyLayoutIsMovedToOneKeyPerServerAtOpen) {
  std::unique_ptr<test::EtcdCluster> cluster;
  LOOM_START_ETCD(cluster, 1);
  EtcdClient client(cluster->endpoints());
  const std::string p = "/older";
  const std::map<std::string, std::string> older = {
      {p + "/decl/Server/web-01", R"({"name":"web-01"})"},
      {p + "/decl/Server/web-02", R"({"name":"web-02"})"},
      {p + "/identity/web-01",
       R"({"pool":"default","uuid":"uuid-1","macs":["52:54:00:00:00:01","52:54:00:00:01:01"]})"},
      {p + "/binding/web-01", "c1-s1"},
      {p + "/placement/home/web-01", "c1-s1"},
      {p + "/identity/web-02", R"({"pool":"lab","uuid":"uuid-2","macs":["52:54:00:00:00:02"]})"},
      {p + "/placement/held/web-02", ""},
      {p + "/binding/web%2F03", "c1-s2"},
      {p + "/identity-released/uuid-3", R"({"pool":"default","uuid":"uuid-3","macs":["52:54:00:00:00:03"]})"},
  };
  for (const auto& [k, v] : older) ASSERT_TRUE(client.put(k, v));

  ASSERT_TRUE(client.put(p + "/leader", "an older loomd"));
  EtcdStoreOptions o;
  o.endpoints = cluster->endpoints();
  o.prefix = p;
  auto refused = openEtcdStateStore(o);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("stop every loomd of the older version"), std::string::npos)
      << refused.error().message;
  ASSERT_TRUE(client.range(p + "/binding/web-01")->kvs.size() == 1u) << "moved while a loomd leads";
  ASSERT_TRUE(client.deleteRange(p + "/leader"));

  auto store = openStore(*cluster, p);
  ASSERT_TRUE(store);
  auto st = store->load();
  ASSERT_TRUE(st) << st.error().message;
  EXPECT_EQ(st->declarations.size(), 2u);
  EXPECT_EQ(st->bindings, (std::map<std::string, std::string>{{"web-01", "c1-s1"}, {"web/03", "c1-s2"}}));
  EXPECT_EQ(st->placementMaps["home"], (std::map<std::string, std::string>{{"web-01", "c1-s1"}}));
  EXPECT_EQ(st->placementMaps["held"], (std::map<std::string, std::string>{{"web-02", ""}}));
  ASSERT_EQ(st->identities.size(), 3u);
  EXPECT_EQ(st->identities[0].server, "web-01");
  EXPECT_EQ(st->identities[0].identity.macs, (std::vector<std::string>{"52:54:00:00:00:01", "52:54:00:00:01:01"}));
  EXPECT_EQ(st->identities[1].server, "web-02");
  EXPECT_EQ(st->identities[1].identityPool, "lab");
  EXPECT_TRUE(st->identities[2].released);
  EXPECT_EQ(st->identities[2].identity.uuid, "uuid-3");
  for (const char* family : {"/identity/", "/binding/", "/placement/home/"}) {
    auto left = client.rangePrefix(p + family);
    ASSERT_TRUE(left);
    EXPECT_TRUE(left->kvs.empty()) << left->kvs.size() << " keys left under " << family;
  }
  EXPECT_EQ(client.rangePrefix(p + "/server/")->kvs.size(), 3u);

  // The moved records are the writer's copy: a change of one part keeps the others.
  Change moved;
  moved.putBindings["web-01"] = "c1-s4";
  ASSERT_TRUE(store->commit(moved));
  auto again = openStore(*cluster, p);  // nothing left to move
  ASSERT_TRUE(again);
  st = again->load();
  ASSERT_TRUE(st);
  EXPECT_EQ(st->bindings.at("web-01"), "c1-s4");
  EXPECT_EQ(st->placementMaps["home"].at("web-01"), "c1-s1");
  EXPECT_EQ(st->identities[0].identity.uuid, "uuid-1");
}

TEST(EtcdStateStore, CommitsWithAMemberLostFailWithinTheTimeoutWithoutQuorumAndRecoverWhenItReturns) {
  std::unique_ptr<test::EtcdCluster> cluster;
  LOOM_START_ETCD(cluster, 3);
  auto store = openStore(*cluster, "/members");  // 2 s a commit
  ASSERT_TRUE(store);
  Change c;
  c.putBindings["a"] = "1";
  auto s = store->commit(c);
  ASSERT_TRUE(s) << s.error().message;

  // One of three killed (the one the store talks to first; the leader, maybe): 2/3 is a
  // quorum, and a commit waits out the election of a new leader if need be.
  ASSERT_TRUE(cluster->killMember(0));
  c.putBindings["a"] = "2";
  s = store->commit(c);
  ASSERT_TRUE(s) << s.error().message;
  auto st = store->load();
  ASSERT_TRUE(st) << st.error().message;
  EXPECT_EQ(st->bindings.at("a"), "2");

  // Two of three: no quorum. The commit fails within its 2 s and says so.
  ASSERT_TRUE(cluster->killMember(1));
  c.putBindings["a"] = "3";
  const auto t0 = Clock::now();
  s = store->commit(c);
  const auto took = Clock::now() - t0;
  ASSERT_FALSE(s);
  EXPECT_LT(took, 2500ms);
  EXPECT_NE(s.error().message.find("etcd"), std::string::npos) << s.error().message;
  EXPECT_TRUE(s.error().code == Errc::Timeout || s.error().code == Errc::Unavailable) << s.error().message;

  // Both back: commits go through again (a leader is elected within about a second).
  ASSERT_TRUE(cluster->startMember(0));
  ASSERT_TRUE(cluster->startMember(1));
  const auto deadline = Clock::now() + 15s;
  c.putBindings["a"] = "4";
  do {
    s = store->commit(c);
  } while (!s && Clock::now() < deadline);
  ASSERT_TRUE(s) << s.error().message;
  st = store->load();
  ASSERT_TRUE(st) << st.error().message;
  EXPECT_EQ(st->bindings.at("a"), "4");
}

}  // namespace
}  // namespace loom::controller
