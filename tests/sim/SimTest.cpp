// The simulator's own parts: its store keeps loomd's contract, its clocks convert both
// ways, its network cuts and holds, its judges see what they must on histories made by
// hand (so a judge that cannot fail would show here), and a seed replays bit for bit.
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include "tests/sim/Invariants.h"
#include "tests/sim/MemoryStateStore.h"
#include "tests/sim/ProcessClock.h"
#include "tests/sim/Simulation.h"

namespace loom::sim {
namespace {

TEST(MemoryStateStore, LoadsWhatWasCommittedAsSqliteWould) {
  MemoryStateStore store;
  controller::Change c;
  c.putDeclarations.push_back({"Server", "web-01", R"({"name":"web-01"})"});
  c.putDeclarations.push_back({"Pool", "web", R"({"name":"web"})"});
  c.putBindings["web-01"] = "c1-s1";
  c.putBindings["web-02"] = "c1-s2";
  c.putIdentities.push_back({"web-01", "default", {"4c4f4f4d-0000-0000-0000-000000000001", {"52:54:00:10:00:01"}}});
  c.putBlades.push_back({"c1-s1", R"({"cores":16})", "maintenance", 42});
  c.putOperations.push_back({7, "c1-s1", "web-01", "start", "pending", 1, ""});
  c.putOperations.push_back({8, "c1-s1", "web-01", "define", "done", 1, ""});
  c.appendEvents.push_back({1, 100, "info", "c1-s1", "", "hello"});
  c.appendEvents.push_back({2, 101, "error", "", "web-01", "boom"});
  ASSERT_TRUE(store.commit(c));
  controller::Change d;
  d.deleteBindings.push_back("web-02");
  d.putDeclarations.push_back({"Server", "web-01", R"({"name":"web-01","vcpus":4})"});
  d.putBlades.push_back({"c1-s1", R"({"cores":8})", "", 99});
  ASSERT_TRUE(store.commit(d));

  auto st = store.load();
  ASSERT_TRUE(st);
  ASSERT_EQ(st->declarations.size(), 2u);
  EXPECT_EQ(st->declarations[0].body,
            R"({"name":"web-01","vcpus":4})");  // an upsert keeps its place
  EXPECT_EQ(st->bindings, (std::map<std::string, std::string>{{"web-01", "c1-s1"}}));
  ASSERT_EQ(st->blades.size(), 1u);
  EXPECT_EQ(st->blades[0].adminState, "");
  EXPECT_EQ(st->blades[0].firstSeenMs, 42);  // first seen stays
  ASSERT_EQ(st->pendingOperations.size(), 1u);
  EXPECT_EQ(st->pendingOperations[0].id, 7u);
  EXPECT_EQ(st->lastOperationId, 8u);
  EXPECT_EQ(st->lastEventId, 2u);
  auto ev = store.events(1, 10);
  ASSERT_TRUE(ev);
  ASSERT_EQ(ev->size(), 1u);
  EXPECT_EQ((*ev)[0].message, "boom");
}

TEST(MemoryStateStore, AFailingCommitAppliesNothing) {
  MemoryStateStore store;
  store.setFailing(true);
  controller::Change c;
  c.putBindings["web-01"] = "c1-s1";
  EXPECT_FALSE(store.commit(c));
  store.setFailing(false);
  EXPECT_TRUE(store.load()->bindings.empty());
}

TEST(ProcessClock, RealAtIsTheFirstMillisecondTheLocalClockReachesIt) {
  for (std::int64_t ppm : {-5000, -1234, 0, 777, 5000}) {
    ProcessClock c(123'456'789, ppm);
    for (std::int64_t t : {0, 1, 999, 5000, 86'400'000}) {
      const std::int64_t l = c.local(t);
      const std::int64_t r = c.realAt(l);
      EXPECT_LE(r, t) << ppm;
      EXPECT_GE(c.local(r), l);
      if (r > 0) {
        EXPECT_LT(c.local(r - 1), l);
      }
    }
  }
  ProcessClock fast(0, 5000);
  EXPECT_EQ(fast.local(10'000), 10'050);  // 0.5 % fast
  EXPECT_EQ(fast.realAt(10'050), 10'000);
}

TEST(Network, CutDropsOrHoldsAndFifoKeepsOrder) {
  std::vector<std::pair<std::int64_t, std::uint64_t>> delivered;
  NetworkProfile profile;
  profile.fifo = true;
  Network net(3, profile, Rng(7), [&](std::int64_t at, Packet p) { delivered.emplace_back(at, p.id); });
  for (std::uint64_t i = 1; i <= 50; ++i)
    net.send(Packet{i, 1, 0, Channel::Fabric, "x", 0, 0, false}, static_cast<std::int64_t>(i));
  ASSERT_EQ(delivered.size(), 50u);
  for (std::size_t i = 1; i < delivered.size(); ++i) EXPECT_LE(delivered[i - 1].first, delivered[i].first);
  delivered.clear();
  net.cut(0, 1, /*hold=*/false, 100);
  net.send(Packet{60, 1, 0, Channel::Fabric, "x", 0, 0, false}, 100);
  EXPECT_TRUE(delivered.empty());
  net.uncut(0, 1, false, 200);
  EXPECT_TRUE(delivered.empty());  // lost, not held
  net.cut(0, 1, /*hold=*/true, 300);
  net.send(Packet{61, 1, 0, Channel::Fabric, "x", 0, 0, false}, 300);
  EXPECT_TRUE(delivered.empty());
  EXPECT_EQ(net.state(1, 0), LinkState::Cut);
  net.uncut(0, 1, true, 5000);
  ASSERT_EQ(delivered.size(), 1u);  // retransmitted once healed
  EXPECT_GE(delivered[0].first, 5000);
  EXPECT_EQ(net.state(0, 1), LinkState::Up);
}

std::vector<std::string> names(int blades) {
  std::vector<std::string> n{"loomd"};
  for (int i = 1; i <= blades; ++i) n.push_back("b" + std::to_string(i));
  return n;
}

// Five blades, all running since 0, every link up since 0.
OutageJudge healthyFabric(int blades = 5) {
  OutageJudge j(blades, Windows::forLease(5000, 50));
  for (int n = 0; n <= blades; ++n) j.setRunning(n, true, 0);
  // Every blade holds a policy whose quorum set is the whole fabric.
  std::vector<int> all;
  for (int n = 1; n <= blades; ++n) all.push_back(n);
  for (int n = 1; n <= blades; ++n) j.setMembers(n, all);
  return j;
}

TEST(OutageJudge, ASelfFenceWhileLoomdIsFrozenIsAViolation) {
  auto j = healthyFabric();
  j.setRunning(0, false, 60'000);              // loomd SIGSTOPped
  EXPECT_FALSE(j.judge(1, 61'000, names(5)));  // too early: no peer may attest yet
  auto v = j.judge(1, 60'000 + j.windows().controllerOutMs, names(5));
  ASSERT_TRUE(v);
  EXPECT_NE(v->find("5 of the 5 blades of its quorum set could shield it"), std::string::npos) << *v;
}

TEST(OutageJudge, CountsTheQuorumSetOfTheBladesPolicy) {
  auto j = healthyFabric(7);
  for (int b : {1, 2, 3}) j.setLink(0, b, LinkState::Cut, 60'000);  // loomd keeps b4..b7
  EXPECT_FALSE(j.judge(1, 70'000, names(7)));                       // 3 of 7: no shield, it must fence itself
  j.setMembers(1, {1, 2, 3, 4, 5});                                 // loomd fenced b6 and b7 earlier: 3 of 5
  EXPECT_TRUE(j.judge(1, 70'000, names(7)));
  j.setMembers(1, {});  // never told who its peers are: it could ask no one
  EXPECT_FALSE(j.judge(1, 70'000, names(7)));
}

TEST(OutageJudge, ABladeCutOffAloneMayFenceItself) {
  auto j = healthyFabric();
  for (int n = 0; n <= 5; ++n)
    if (n != 3) j.setLink(3, n, LinkState::Cut, 60'000);
  EXPECT_FALSE(j.judge(3, 70'000, names(5)));
}

TEST(OutageJudge, AChassisCutFromLoomdWhosePeersStillHearItMayFence) {
  auto j = healthyFabric();
  j.setLink(0, 1, LinkState::Cut, 60'000);  // b1 and b2 lost their relay pair
  j.setLink(0, 2, LinkState::Cut, 60'000);
  EXPECT_FALSE(j.judge(1, 70'000, names(5)));  // b3..b5 hear loomd: no shield for b1
}

TEST(OutageJudge, AMajorityThatLostLoomdShieldsEachOther) {
  auto j = healthyFabric();
  for (int a : {0, 4, 5})  // loomd left with a minority {b4, b5}
    for (int b : {1, 2, 3}) j.setLink(a, b, LinkState::Cut, 60'000);
  EXPECT_TRUE(j.judge(2, 70'000, names(5)));
  EXPECT_FALSE(j.judge(4, 70'000, names(5)));  // b4 is on loomd's side: no peer of it lost loomd
}

TEST(OutageJudge, AnEvenSplitShieldsNeitherHalf) {
  auto j = healthyFabric(4);
  for (int a : {0, 1, 2})
    for (int b : {3, 4}) j.setLink(a, b, LinkState::Cut, 60'000);
  EXPECT_FALSE(j.judge(3, 70'000, names(4)));
}

TEST(OutageJudge, AFrozenOrRecentlyRestartedBladeIsNotJudged) {
  auto j = healthyFabric();
  j.setRunning(0, false, 60'000);
  j.setRunning(2, false, 61'000);
  j.setRunning(2, true, 64'000);
  EXPECT_FALSE(j.judge(2, 66'000, names(5)));
  // Nor counted as a shield: 4 of 5 remain, still a majority for b1.
  EXPECT_TRUE(j.judge(1, 66'000, names(5)));
}

TEST(OutageJudge, RecentlyHealedLinksDoNotCount) {
  auto j = healthyFabric();
  j.setRunning(0, false, 60'000);
  for (int b : {2, 3, 4}) {
    j.setLink(1, b, LinkState::Cut, 10'000);
    j.setLink(1, b, LinkState::Up, 59'000);  // up again, but for less than W at 66 s
  }
  EXPECT_FALSE(j.judge(1, 66'000, names(5)));
}

TEST(DoubleRunJudge, ServerOnTwoBladesAtOnce) {
  DoubleRunJudge j;
  EXPECT_FALSE(j.update("b1", {{"u1", "web-0"}}, 10));
  EXPECT_FALSE(j.update("b2", {{"u2", "web-1"}}, 11));
  EXPECT_FALSE(j.update("b1", {}, 12));
  EXPECT_FALSE(j.update("b2", {{"u2", "web-1"}, {"u1", "web-0"}}, 13));  // moved: stopped first
  auto v = j.update("b1", {{"u1", "web-0"}}, 14);
  ASSERT_TRUE(v);
  EXPECT_NE(v->find("web-0"), std::string::npos);
}

class Simulator : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { spdlog::set_level(spdlog::level::off); }
  static RunResult run(const std::string& scenario, std::uint64_t seed, SimOptions options = {}) {
    ScenarioPlan plan;
    std::string error;
    EXPECT_TRUE(makeScenario(scenario, seed, plan, error)) << error;
    options.traceTail = 20;
    return runSimulation(plan, seed, options);
  }
};

TEST_F(Simulator, ASeedReplaysBitForBit) {
  for (std::uint64_t seed : {3u, 4u}) {
    auto a = run("chaos", seed), b = run("chaos", seed);
    EXPECT_EQ(a.traceHash, b.traceHash) << "seed " << seed;
    EXPECT_EQ(a.stats.events, b.stats.events);
    EXPECT_EQ(a.violations.size(), b.violations.size());
  }
  EXPECT_NE(run("chaos", 3).traceHash, run("chaos", 5).traceHash);
}

TEST_F(Simulator, AQuietFabricConvergesWithNothingEndedByItsOwnHand) {
  // blade-frozen's freeze left out: nothing happens but the declarations.
  SimOptions options;
  options.disabledFaults = {0};
  auto r = run("blade-frozen", 11, options);
  EXPECT_TRUE(r.violations.empty()) << (r.violations.empty() ? "" : r.violations[0].what);
  EXPECT_GE(r.convergedAt, 0);
  EXPECT_EQ(r.stats.selfFencedDomains + r.stats.watchdogDomains, 0u);
  EXPECT_GT(r.stats.starts, 4u);
}

}  // namespace
}  // namespace loom::sim
