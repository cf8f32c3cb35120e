// A standby's warm copy of the etcd store (controller/WarmCopy.h) against a real etcd
// cluster (tools/etcd.sh): what the leader's store commits shows up in the copy within a
// bounded wait, applied change by change (no reload); a watch whose history was
// compacted, or whose message is past the bound, falls back to one reload; a stopped
// copy (the replica leads) follows etcd no more, and a restarted one loads afresh.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <thread>

#include "controller/ControllerLoop.h"
#include "controller/StateStore.h"
#include "controller/WarmCopy.h"
#include "controller/etcd/EtcdClient.h"
#include "tests/support/EtcdCluster.h"

namespace loom::controller {
namespace {

using namespace std::chrono_literals;

#define START_ETCD_OR_SKIP(var, members)                                                      \
  do {                                                                                        \
    std::string why_;                                                                         \
    var = ::loom::test::EtcdCluster::start(members, why_);                                    \
    if (!var) {                                                                               \
      if (::loom::test::EtcdCluster::mustRun()) FAIL() << "etcd is required on CI: " << why_; \
      GTEST_SKIP() << "no etcd here: " << why_;                                               \
    }                                                                                         \
  } while (0)

const std::string kPrefix = "/loom-warm-test";

EtcdStoreOptions storeOptions(const std::vector<std::string>& endpoints) {
  EtcdStoreOptions o;
  o.endpoints = endpoints;
  o.prefix = kPrefix;
  o.timeout = 3000ms;  // a loaded test machine
  return o;
}

std::unique_ptr<EtcdStateStore> openStore(const std::vector<std::string>& endpoints) {
  auto s = openEtcdStateStore(storeOptions(endpoints));
  EXPECT_TRUE(s) << s.error().message;
  return s ? std::move(*s) : nullptr;
}

WarmCopyOptions copyOptions(const std::vector<std::string>& endpoints) {
  WarmCopyOptions o;
  o.store = storeOptions(endpoints);
  o.checkEvery = 200ms;
  return o;
}

// The store's revision now (a linearizable read): a commit that returned is at or below it.
std::int64_t revisionNow(const std::vector<std::string>& endpoints) {
  etcd::EtcdClient c(endpoints);
  c.setTimeout(3000ms);
  auto r = c.range(kPrefix + "/leader");
  EXPECT_TRUE(r) << r.error().message;
  return r ? r->revision : 0;
}

Change servers(int from, int to, const std::string& blade) {
  Change c;
  for (int i = from; i < to; ++i) {
    const std::string name = "s" + std::to_string(i);
    c.putDeclarations.push_back({"Server", name, R"({"name":")" + name + R"("})"});
    c.putBindings[name] = blade;
    c.putPlacement[{"home", name}] = blade;
    c.putIdentities.push_back({name, "default", {"uuid-" + std::to_string(i), {"52:54:00:00:00:01"}}});
  }
  return c;
}

// What a copy holds, compared with what the store's load() gives.
void expectSameState(const StoredState& copy, const StoredState& loaded) {
  ASSERT_EQ(copy.declarations.size(), loaded.declarations.size());
  for (std::size_t i = 0; i < copy.declarations.size(); ++i) {
    EXPECT_EQ(copy.declarations[i].kind, loaded.declarations[i].kind);
    EXPECT_EQ(copy.declarations[i].name, loaded.declarations[i].name) << "declaration " << i;
    EXPECT_EQ(copy.declarations[i].body, loaded.declarations[i].body);
  }
  EXPECT_EQ(copy.bindings, loaded.bindings);
  EXPECT_EQ(copy.borrowed, loaded.borrowed);
  EXPECT_EQ(copy.placementMaps, loaded.placementMaps);
  ASSERT_EQ(copy.identities.size(), loaded.identities.size());
  for (std::size_t i = 0; i < copy.identities.size(); ++i) {
    EXPECT_EQ(copy.identities[i].server, loaded.identities[i].server);
    EXPECT_EQ(copy.identities[i].identity.uuid, loaded.identities[i].identity.uuid);
    EXPECT_EQ(copy.identities[i].released, loaded.identities[i].released);
  }
  ASSERT_EQ(copy.blades.size(), loaded.blades.size());
  for (std::size_t i = 0; i < copy.blades.size(); ++i) {
    EXPECT_EQ(copy.blades[i].name, loaded.blades[i].name);
    EXPECT_EQ(copy.blades[i].adminState, loaded.blades[i].adminState);
    EXPECT_EQ(copy.blades[i].firstSeenMs, loaded.blades[i].firstSeenMs);
  }
  EXPECT_EQ(copy.pendingOperations.size(), loaded.pendingOperations.size());
  EXPECT_EQ(copy.quorumVersions, loaded.quorumVersions);
  EXPECT_EQ(copy.lastEventId, loaded.lastEventId);
  EXPECT_EQ(copy.lastOperationId, loaded.lastOperationId);
}

TEST(EtcdWarmCopy, WhatTheLeadersStoreCommitsShowsUpInTheCopyChangeByChange) {
  std::unique_ptr<test::EtcdCluster> etcd;
  START_ETCD_OR_SKIP(etcd, 3);
  auto leader = openStore(etcd->endpoints());
  ASSERT_TRUE(leader);
  ASSERT_TRUE(leader->commit(servers(0, 20, "b1")));

  WarmCopy copy(copyOptions(etcd->endpoints()), ControllerLoop::monotonicMs);
  copy.start();
  ASSERT_TRUE(copy.waitForRevision(revisionNow(etcd->endpoints()), 10s)) << copy.state().error;
  EXPECT_EQ(copy.snapshot()->first.declarations.size(), 20u);

  // A change of every kind the copy keeps, one commit each: puts, rewrites, deletes.
  Change blades;
  blades.putBlades.push_back({"b1", R"({"name":"b1"})", "", 1000});
  blades.putBlades.push_back({"b2", R"({"name":"b2"})", "maintenance", 2000});
  blades.putBorrowed["b2"] = "spares";
  blades.putOperations.push_back({7, "b1", "s1", "define", "pending", 1, ""});
  blades.appendEvents.push_back({3, 1, "info", "b1", "", "hello"});
  blades.putQuorumVersions[1] = R"({"members":["b1"]})";
  ASSERT_TRUE(leader->commit(blades));
  Change moves = servers(20, 25, "b2");
  moves.deleteBindings.push_back("s3");
  moves.deletePlacement.emplace_back("home", "s3");
  moves.putBindings["s4"] = "b2";
  moves.deleteDeclarations.emplace_back("Server", "s5");
  moves.putIdentities.push_back({"s5", "default", {"uuid-5", {"52:54:00:00:00:01"}}, true});
  moves.putOperations.push_back({7, "b1", "s1", "define", "done", 1, ""});  // finished: no longer loaded
  ASSERT_TRUE(leader->commit(moves));
  const auto committed = std::chrono::steady_clock::now();
  ASSERT_TRUE(copy.waitForRevision(revisionNow(etcd->endpoints()), 5s)) << copy.state().error;
  std::printf("  commit -> in the copy: %.1f ms (the revision read included)\n",
              std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - committed).count());

  auto snap = copy.snapshot();
  ASSERT_TRUE(snap);
  auto loaded = leader->load();
  ASSERT_TRUE(loaded) << loaded.error().message;
  expectSameState(snap->first, *loaded);
  EXPECT_EQ(snap->first.bindings.count("s3"), 0u);
  EXPECT_EQ(snap->first.bindings.at("s4"), "b2");
  EXPECT_TRUE(snap->first.pendingOperations.empty());
  EXPECT_EQ(snap->first.lastEventId, 3u);
  // Incremental: one load at the start, then only the watch.
  const WarmCopyState st = copy.state();
  EXPECT_EQ(st.loads, 1u);
  EXPECT_GE(st.changes, 10u);
  EXPECT_EQ(st.badRecords, 0u);
  // And known current: a check confirmed it (every 200 ms here).
  std::this_thread::sleep_for(500ms);
  const WarmCopyState later = copy.state();
  EXPECT_EQ(later.storeRevision, later.revision);
  EXPECT_LT(ControllerLoop::monotonicMs() - later.heardAtMs, 1500) << "a quiet copy is confirmed by its checks";
}

// A server's identity, binding and home are one key (server/NAME): a change of one part
// rewrites it, and the copy takes the new part with the others as they were; a server
// with no part left is a deleted key, gone from the copy.
TEST(EtcdWarmCopy, AChangeOfOnePartOfAServerReachesTheCopyWithTheOthersKept) {
  std::unique_ptr<test::EtcdCluster> etcd;
  START_ETCD_OR_SKIP(etcd, 1);
  auto leader = openStore(etcd->endpoints());
  ASSERT_TRUE(leader);
  ASSERT_TRUE(leader->commit(servers(0, 3, "b1")));
  WarmCopy copy(copyOptions(etcd->endpoints()), ControllerLoop::monotonicMs);
  copy.start();
  ASSERT_TRUE(copy.waitForRevision(revisionNow(etcd->endpoints()), 10s)) << copy.state().error;

  Change moved;
  moved.putBindings["s1"] = "b2";
  ASSERT_TRUE(leader->commit(moved));
  ASSERT_TRUE(copy.waitForRevision(revisionNow(etcd->endpoints()), 5s)) << copy.state().error;
  auto snap = copy.snapshot();
  ASSERT_TRUE(snap);
  EXPECT_EQ(snap->first.bindings.at("s1"), "b2");
  EXPECT_EQ(snap->first.placementMaps.at("home").at("s1"), "b1");
  ASSERT_EQ(snap->first.identities.size(), 3u);
  EXPECT_EQ(snap->first.identities[1].server, "s1");
  EXPECT_EQ(snap->first.identities[1].identity.uuid, "uuid-1");

  Change gone;  // s2 deleted: unbound, no home, its identity released
  gone.deleteBindings.push_back("s2");
  gone.deletePlacement.emplace_back("home", "s2");
  gone.putIdentities.push_back({"s2", "default", {"uuid-2", {"52:54:00:00:00:01"}}, true});
  ASSERT_TRUE(leader->commit(gone));
  ASSERT_TRUE(copy.waitForRevision(revisionNow(etcd->endpoints()), 5s)) << copy.state().error;
  snap = copy.snapshot();
  ASSERT_TRUE(snap);
  EXPECT_EQ(snap->first.bindings.count("s2"), 0u);
  EXPECT_EQ(snap->first.placementMaps.at("home").count("s2"), 0u);
  auto loaded = leader->load();
  ASSERT_TRUE(loaded) << loaded.error().message;
  expectSameState(snap->first, *loaded);
  EXPECT_EQ(copy.state().loads, 1u);  // the watch, not a reload
}

TEST(EtcdWarmCopy, AWatchPastTheMessageBoundFallsBackToOneReload) {
  std::unique_ptr<test::EtcdCluster> etcd;
  START_ETCD_OR_SKIP(etcd, 1);
  auto leader = openStore(etcd->endpoints());
  ASSERT_TRUE(leader);
  ASSERT_TRUE(leader->commit(servers(0, 5, "b1")));
  WarmCopyOptions o = copyOptions(etcd->endpoints());
  o.store.maxRangeBytes = 64 << 10;  // the copy reads answers of 64 KiB at most
  WarmCopy copy(o, ControllerLoop::monotonicMs);
  copy.start();
  ASSERT_TRUE(copy.waitForRevision(revisionNow(etcd->endpoints()), 10s)) << copy.state().error;
  ASSERT_EQ(copy.state().loads, 1u);
  // One commit of three 30 KiB declarations: its watch message is past 64 KiB; a load
  // reads them in pages that fit.
  Change big;
  for (int i = 0; i < 3; ++i)
    big.putDeclarations.push_back(
        {"Server", "big" + std::to_string(i), "{\"pad\":\"" + std::string(30 << 10, 'x') + "\"}"});
  ASSERT_TRUE(leader->commit(big));
  ASSERT_TRUE(copy.waitForRevision(revisionNow(etcd->endpoints()), 10s)) << copy.state().error;
  EXPECT_EQ(copy.state().loads, 2u) << "one reload";
  auto loaded = leader->load();
  ASSERT_TRUE(loaded);
  expectSameState(copy.snapshot()->first, *loaded);
}

TEST(EtcdWarmCopy, ACompactedHistoryFallsBackToOneReload) {
  std::unique_ptr<test::EtcdCluster> etcd;
  START_ETCD_OR_SKIP(etcd, 3);
  auto leader = openStore(etcd->endpoints());
  ASSERT_TRUE(leader);
  ASSERT_TRUE(leader->commit(servers(0, 5, "b1")));
  // The copy knows only member 0: while it is down, the store moves on and compacts its
  // history, so the copy's next watch (from its revision + 1) is refused.
  WarmCopy copy(copyOptions({etcd->endpoints()[0]}), ControllerLoop::monotonicMs);
  copy.start();
  ASSERT_TRUE(copy.waitForRevision(revisionNow(etcd->endpoints()), 10s)) << copy.state().error;
  ASSERT_EQ(copy.state().loads, 1u);
  ASSERT_TRUE(etcd->killMember(0));
  const std::vector<std::string> others(etcd->endpoints().begin() + 1, etcd->endpoints().end());
  auto other = openStore(others);
  ASSERT_TRUE(other);
  ASSERT_TRUE(other->commit(servers(5, 10, "b2")));
  ASSERT_TRUE(other->commit(servers(10, 12, "b3")));
  const std::int64_t now = revisionNow(others);
  const std::string compact =
      "ETCDCTL_API=3 etcdctl --endpoints " + others[0] + " compact " + std::to_string(now) + " >/dev/null 2>&1";
  ASSERT_EQ(std::system(compact.c_str()), 0) << compact;
  ASSERT_TRUE(etcd->startMember(0));
  ASSERT_TRUE(copy.waitForRevision(now, 20s)) << copy.state().error;
  EXPECT_EQ(copy.state().loads, 2u) << "one reload: " << copy.state().error;
  auto loaded = other->load();
  ASSERT_TRUE(loaded);
  expectSameState(copy.snapshot()->first, *loaded);
}

TEST(EtcdWarmCopy, AStoppedCopyFollowsNoMoreAndARestartedOneLoadsAfresh) {
  std::unique_ptr<test::EtcdCluster> etcd;
  START_ETCD_OR_SKIP(etcd, 1);
  auto leader = openStore(etcd->endpoints());
  ASSERT_TRUE(leader);
  ASSERT_TRUE(leader->commit(servers(0, 3, "b1")));
  WarmCopy copy(copyOptions(etcd->endpoints()), ControllerLoop::monotonicMs);
  copy.start();
  ASSERT_TRUE(copy.waitForRevision(revisionNow(etcd->endpoints()), 10s)) << copy.state().error;
  const std::int64_t before = copy.state().revision;
  // This replica leads: the copy stops, and answers nothing.
  copy.stop();
  EXPECT_FALSE(copy.state().running);
  EXPECT_FALSE(copy.snapshot()) << "a stopped copy is not served";
  ASSERT_TRUE(leader->commit(servers(3, 6, "b1")));
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(copy.state().revision, before) << "nothing applied after stop()";
  // The term ended: it follows again, from a fresh load.
  copy.start();
  ASSERT_TRUE(copy.waitForRevision(revisionNow(etcd->endpoints()), 10s)) << copy.state().error;
  EXPECT_EQ(copy.state().loads, 2u);
  EXPECT_EQ(copy.snapshot()->first.declarations.size(), 6u);
}

}  // namespace
}  // namespace loom::controller
