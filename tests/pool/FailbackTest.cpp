#include <gtest/gtest.h>

#include "tests/pool/PoolBuilders.h"

namespace loom::pool {
namespace {
using namespace loom::pool::testing;

// web: c1-s1, c1-s2 working, c1-s3 its spare; global-spares: c2-s7. web-01 and web-02
// share an anti-affinity group, so they never land on one blade.
Fixture web(FailbackPolicy failback = FailbackPolicy::Auto, std::uint32_t spares = 1) {
  Fixture f;
  f.observed.blades = {blade("c1-s1", 8), blade("c1-s2", 8), blade("c1-s3", 8), blade("c2-s7", 8)};
  f.desired.pools = {borrowingFrom(withFailback(withSpares(pool("web", {"c1-s1", "c1-s2", "c1-s3"}), spares), failback),
                                   "global-spares"),
                     sparePool("global-spares", {"c2-s7"})};
  f.desired.servers = {antiAffinity(server("web-01", "web", 4), "web"),
                       antiAffinity(server("web-02", "web", 4), "web")};
  f.current.bindings = {{"web-01", "c1-s1"}, {"web-02", "c1-s2"}};
  return f;
}

// web-01 failed over from c1-s1 (fenced) to the spare c1-s3, and the plan was applied.
Fixture failedOver(FailbackPolicy failback = FailbackPolicy::Auto) {
  Fixture f = web(failback);
  f.setState("c1-s1", BladeState::Fenced);
  f.apply();
  return f;
}

using Homes = std::map<std::string, std::string>;

TEST(Failback, FailoverFromAFencedBladeRecordsTheHome) {
  Fixture f = web();
  f.setState("c1-s1", BladeState::Fenced);
  const Plan p = f.plan();
  EXPECT_EQ(bladeOf(p, "web-01"), "c1-s3");
  EXPECT_EQ(p.next.home, (Homes{{"web-01", "c1-s1"}}));
}

TEST(Failback, AutoMovesTheServerHomeWithStopBeforeStart) {
  Fixture f = failedOver();
  f.setState("c1-s1", BladeState::Available);
  const Plan p = f.plan();
  EXPECT_EQ(bladeOf(p, "web-01"), "c1-s1");
  EXPECT_EQ(stepsFor(p.steps, "web-01"),
            (std::vector<std::string>{"stop@c1-s3", "undefine@c1-s3", "define@c1-s1", "start@c1-s1"}));
  const std::size_t stop = indexOf(p.steps, StepKind::Stop, "c1-s3", "web-01");
  const std::size_t define = indexOf(p.steps, StepKind::Define, "c1-s1", "web-01");
  ASSERT_LT(define, p.steps.size());
  EXPECT_EQ(p.steps[define].after, (std::vector<std::size_t>{stop}));
  EXPECT_TRUE(stepsFor(p.steps, "web-02").empty());
  EXPECT_TRUE(p.next.home.empty());
  const auto& moved =
      *std::find_if(p.placements.begin(), p.placements.end(), [](auto& x) { return x.server == "web-01"; });
  EXPECT_EQ(moved.from, "c1-s3");
}

TEST(Failback, ManualMovesNothingAndKeepsTheHome) {
  Fixture f = failedOver(FailbackPolicy::Manual);
  EXPECT_EQ(f.current.home, (Homes{{"web-01", "c1-s1"}}));
  f.setState("c1-s1", BladeState::Available);
  const Plan p = f.apply();
  EXPECT_EQ(bladeOf(p, "web-01"), "c1-s3");
  EXPECT_TRUE(p.steps.empty());
  EXPECT_EQ(p.next.home, (Homes{{"web-01", "c1-s1"}}));
  EXPECT_EQ(assignment(p, "c1-s1").role, BladeRole::Spare);  // the returned blade is the spare
  // Still there on the next plan: only an operator's move ends it.
  EXPECT_EQ(f.plan().next.home, (Homes{{"web-01", "c1-s1"}}));
}

TEST(Failback, NothingMovesWhileTheHomeIsStillDown) {
  for (BladeState s :
       {BladeState::Fenced, BladeState::Suspect, BladeState::Failed, BladeState::Maintenance, BladeState::Discovered}) {
    Fixture f = failedOver();
    f.setState("c1-s1", s);
    const Plan p = f.plan();
    EXPECT_EQ(bladeOf(p, "web-01"), "c1-s3") << toString(s);
    EXPECT_TRUE(p.steps.empty()) << toString(s);
    EXPECT_EQ(p.next.home, (Homes{{"web-01", "c1-s1"}})) << toString(s);
  }
}

TEST(Failback, TheBladeItLeavesIsASpareAgain) {
  Fixture f = failedOver();
  for (const auto& a : f.plan().blades) EXPECT_FALSE(a.role == BladeRole::Spare && a.pool == "web") << a.blade;
  f.setState("c1-s1", BladeState::Available);
  const Plan back = f.apply();
  EXPECT_EQ(assignment(back, "c1-s1").role, BladeRole::Member);
  EXPECT_EQ(assignment(back, "c1-s3").role, BladeRole::Spare);
  // spares: 1 is honoured again: the next failure lands on the pool's own spare, not a
  // borrowed blade.
  f.setState("c1-s2", BladeState::Fenced);
  const Plan again = f.plan();
  EXPECT_EQ(bladeOf(again, "web-02"), "c1-s3");
  EXPECT_TRUE(again.next.borrowed.empty());
  EXPECT_EQ(again.next.home, (Homes{{"web-02", "c1-s2"}}));
}

TEST(Failback, HomeSurvivesASecondFailover) {
  Fixture f = failedOver();
  f.setState("c1-s3", BladeState::Fenced);  // its refuge dies too, home still down
  const Plan second = f.apply();
  EXPECT_EQ(bladeOf(second, "web-01"), "c2-s7");  // borrowed
  EXPECT_EQ(second.next.home, (Homes{{"web-01", "c1-s1"}}));
  f.setState("c1-s1", BladeState::Available);
  const Plan back = f.plan();
  EXPECT_EQ(bladeOf(back, "web-01"), "c1-s1");
  EXPECT_EQ(stepsFor(back.steps, "web-01"),
            (std::vector<std::string>{"stop@c2-s7", "undefine@c2-s7", "define@c1-s1", "start@c1-s1"}));
  EXPECT_TRUE(back.next.home.empty());
  // The borrowed blade is empty again and goes back to its spare pool.
  EXPECT_TRUE(back.next.borrowed.empty());
  EXPECT_EQ(assignment(back, "c2-s7").pool, "global-spares");
}

TEST(Failback, ASecondFailoverGoesHomeWhenHomeIsBack) {
  Fixture f = failedOver(FailbackPolicy::Manual);
  f.setState("c1-s1", BladeState::Available);
  f.setState("c1-s3", BladeState::Fenced);
  f.desired.pools[0].failback = FailbackPolicy::Auto;
  const Plan p = f.plan();
  EXPECT_EQ(bladeOf(p, "web-01"), "c1-s1");
  EXPECT_EQ(stepsFor(p.steps, "web-01"), (std::vector<std::string>{"define@c1-s1", "start@c1-s1"}));
  EXPECT_TRUE(p.next.home.empty());
}

TEST(Failback, StaysWhenTheHomeIsFullAndRetriesLater) {
  Fixture f = failedOver();
  // Meanwhile something else took the whole home blade.
  f.desired.servers.push_back(server("big", "web", 8));
  f.current.bindings["big"] = "c1-s1";
  f.setState("c1-s1", BladeState::Available);
  const Plan full = f.apply();
  EXPECT_EQ(bladeOf(full, "web-01"), "c1-s3");
  EXPECT_TRUE(full.steps.empty());
  EXPECT_EQ(full.next.home, (Homes{{"web-01", "c1-s1"}}));
  // The room comes back: a later plan moves it home.
  f.desired.servers.back() = poweredOff(f.desired.servers.back());
  const Plan later = f.plan();
  EXPECT_EQ(bladeOf(later, "web-01"), "c1-s1");
  EXPECT_TRUE(later.next.home.empty());
}

TEST(Failback, RespectsAntiAffinityAtHome) {
  Fixture f = failedOver();
  f.current.bindings["web-02"] = "c1-s1";  // an operator moved web-02 there meanwhile
  f.setState("c1-s1", BladeState::Available);
  const Plan p = f.plan();
  EXPECT_EQ(bladeOf(p, "web-01"), "c1-s3");
  EXPECT_TRUE(stepsFor(p.steps, "web-01").empty());
  EXPECT_EQ(p.next.home, (Homes{{"web-01", "c1-s1"}}));
}

TEST(Failback, HigherPriorityGoesHomeFirst) {
  Fixture f;
  f.observed.blades = {blade("c1-s1", 8), blade("c1-s2", 8), blade("c1-s3", 8)};
  f.desired.pools = {withFailback(pool("web", {"c1-s1", "c1-s2", "c1-s3"}), FailbackPolicy::Auto)};
  // Declared first, so only the priority puts "high" ahead.
  f.desired.servers = {priority(server("low", "web", 4), 1), priority(server("high", "web", 4), 100),
                       server("filler", "web", 4)};
  f.current.bindings = {{"low", "c1-s2"}, {"high", "c1-s3"}, {"filler", "c1-s1"}};
  f.current.home = {{"low", "c1-s1"}, {"high", "c1-s1"}};
  const Plan p = f.plan();
  EXPECT_EQ(bladeOf(p, "high"), "c1-s1");
  EXPECT_EQ(bladeOf(p, "low"), "c1-s2");
  EXPECT_EQ(p.next.home, (Homes{{"low", "c1-s1"}}));
}

TEST(Failback, FailoverComesBeforeFailbackInOneRound) {
  Fixture f = failedOver();
  f.setState("c1-s1", BladeState::Available);
  f.setState("c1-s2", BladeState::Fenced);
  const Plan p = f.plan();
  // The returned blade is the pool's spare; the dead blade's server needs it more than a
  // running server needs to go home (and anti-affinity keeps web-01 out now).
  EXPECT_EQ(bladeOf(p, "web-02"), "c1-s1");
  EXPECT_EQ(bladeOf(p, "web-01"), "c1-s3");
  EXPECT_EQ(p.next.home, (Homes{{"web-01", "c1-s1"}, {"web-02", "c1-s2"}}));
}

TEST(Failback, RetiredOrVanishedHomeIsForgotten) {
  Fixture retired = failedOver();
  retired.setState("c1-s1", BladeState::Retired);
  EXPECT_TRUE(retired.apply().next.home.empty());
  retired.setState("c1-s1", BladeState::Available);  // even if it shows up again
  EXPECT_EQ(bladeOf(retired.plan(), "web-01"), "c1-s3");

  Fixture vanished = failedOver();
  vanished.observed.blades.erase(vanished.observed.blades.begin());
  EXPECT_TRUE(vanished.plan().next.home.empty());
}

TEST(Failback, NoHomeForEvacuationRetirementOrAVanishedBlade) {
  Fixture drained = web(FailbackPolicy::Auto, 0);
  drained.setState("c1-s1", BladeState::Maintenance);
  const Plan d = drained.plan();
  EXPECT_EQ(bladeOf(d, "web-01"), "c1-s3");
  EXPECT_TRUE(d.next.home.empty());

  Fixture retired = web();
  retired.setState("c1-s1", BladeState::Retired);
  const Plan r = retired.plan();
  EXPECT_EQ(bladeOf(r, "web-01"), "c1-s3");
  EXPECT_TRUE(r.next.home.empty());

  Fixture vanished = web();
  vanished.observed.blades.erase(vanished.observed.blades.begin());
  const Plan v = vanished.plan();
  EXPECT_EQ(bladeOf(v, "web-01"), "c1-s3");
  EXPECT_TRUE(v.next.home.empty());
}

TEST(Failback, DeletedPoweredOffOrMovedServerDropsItsHome) {
  Fixture deleted = failedOver();
  deleted.desired.servers.erase(deleted.desired.servers.begin());
  EXPECT_TRUE(deleted.plan().next.home.empty());

  Fixture off = failedOver();
  off.desired.servers[0] = poweredOff(off.desired.servers[0]);
  EXPECT_TRUE(off.plan().next.home.empty());

  Fixture otherPool = failedOver();
  otherPool.observed.blades.push_back(blade("c3-s1", 8));
  otherPool.desired.pools.push_back(pool("db", {"c3-s1"}));
  otherPool.desired.servers[0].pool = "db";
  const Plan p = otherPool.plan();
  EXPECT_EQ(bladeOf(p, "web-01"), "c3-s1");
  EXPECT_TRUE(p.next.home.empty());
}

TEST(Failback, AServerHeldByFailoverNoneHasNoHome) {
  Fixture none = web();
  none.desired.pools[0].failover = FailoverPolicy::None;
  none.setState("c1-s1", BladeState::Fenced);
  const Plan p = none.plan();
  EXPECT_TRUE(p.next.home.empty());
  EXPECT_TRUE(p.next.displaced.empty());
}

TEST(Failback, ADisplacedServerKeepsItsHome) {
  Fixture nowhere = web(FailbackPolicy::Auto, 0);
  nowhere.desired.pools[0].borrowFrom.clear();
  nowhere.setState("c1-s1", BladeState::Fenced);
  const Plan p = nowhere.plan();
  ASSERT_NE(unplaceable(p, "web-01"), nullptr);
  EXPECT_EQ(p.next.home, (Homes{{"web-01", "c1-s1"}}));
  EXPECT_EQ(p.next.displaced, (std::set<std::string>{"web-01"}));

  // A second failover that finds nothing keeps the first home.
  Fixture second = failedOver();
  second.desired.pools[0].borrowFrom.clear();
  second.setState("c1-s3", BladeState::Fenced);
  const Plan q = second.plan();
  ASSERT_NE(unplaceable(q, "web-01"), nullptr);
  EXPECT_EQ(q.next.home, (Homes{{"web-01", "c1-s1"}}));
  EXPECT_EQ(q.next.displaced, (std::set<std::string>{"web-01"}));
}

TEST(Failback, ABorrowedBladeIsNobodysHome) {
  Fixture f = web();
  f.current.bindings["web-01"] = "c2-s7";
  f.current.borrowed = {{"c2-s7", "web"}};
  f.setState("c2-s7", BladeState::Fenced);
  const Plan p = f.plan();
  EXPECT_EQ(bladeOf(p, "web-01"), "c1-s3");
  // The lent blade went back to its spare pool once empty: it is not where web-01 belongs.
  EXPECT_TRUE(p.next.borrowed.empty());
  EXPECT_TRUE(p.next.home.empty());

  Fixture g = web();
  g.current.bindings["web-01"] = "c2-s7";
  g.current.borrowed = {{"c2-s7", "web"}};
  Planner planner(g.desired, g.observed, g.current);
  (void)planner.plan(0);
  (void)planner.bladeStateChanged("c2-s7", BladeState::Fenced, 1);
  EXPECT_EQ(planner.bladeOf("web-01"), "c1-s3");
  EXPECT_TRUE(planner.state().borrowed.empty());
  EXPECT_TRUE(planner.state().home.empty());
}

// --- incremental: Planner::bladeStateChanged applies the same rule.

TEST(FailbackIncremental, BladeReturningMovesItsServersHome) {
  Fixture f = web();
  Planner planner(f.desired, f.observed, f.current);
  (void)planner.plan(0);
  (void)planner.bladeStateChanged("c1-s1", BladeState::Fenced, 1);
  EXPECT_EQ(planner.bladeOf("web-01"), "c1-s3");
  EXPECT_EQ(planner.state().home, (Homes{{"web-01", "c1-s1"}}));

  const PlanDelta back = planner.bladeStateChanged("c1-s1", BladeState::Available, 2);
  EXPECT_EQ(planner.bladeOf("web-01"), "c1-s1");
  EXPECT_TRUE(planner.state().home.empty());
  ASSERT_EQ(back.placements.size(), 1u);
  EXPECT_EQ(back.placements[0].from, "c1-s3");
  EXPECT_EQ(stepsFor(back.steps, "web-01"),
            (std::vector<std::string>{"stop@c1-s3", "undefine@c1-s3", "define@c1-s1", "start@c1-s1"}));
  const std::size_t stop = indexOf(back.steps, StepKind::Stop, "c1-s3", "web-01");
  const std::size_t define = indexOf(back.steps, StepKind::Define, "c1-s1", "web-01");
  ASSERT_LT(define, back.steps.size());
  EXPECT_EQ(back.steps[define].after, (std::vector<std::size_t>{stop}));
  bool spareAgain = false;
  for (const auto& b : back.blades) spareAgain |= b.blade == "c1-s3" && b.role == BladeRole::Spare;
  EXPECT_TRUE(spareAgain);
}

TEST(FailbackIncremental, ManualMovesNothing) {
  Fixture f = web(FailbackPolicy::Manual);
  Planner planner(f.desired, f.observed, f.current);
  (void)planner.plan(0);
  (void)planner.bladeStateChanged("c1-s1", BladeState::Fenced, 1);
  const PlanDelta back = planner.bladeStateChanged("c1-s1", BladeState::Available, 2);
  EXPECT_TRUE(back.placements.empty());
  EXPECT_TRUE(back.steps.empty());
  EXPECT_EQ(planner.bladeOf("web-01"), "c1-s3");
  EXPECT_EQ(planner.state().home, (Homes{{"web-01", "c1-s1"}}));
}

TEST(FailbackIncremental, RetiringTheHomeForgetsIt) {
  Fixture f = web();
  Planner planner(f.desired, f.observed, f.current);
  (void)planner.plan(0);
  (void)planner.bladeStateChanged("c1-s1", BladeState::Fenced, 1);
  (void)planner.bladeStateChanged("c1-s1", BladeState::Retired, 2);
  EXPECT_TRUE(planner.state().home.empty());
  const PlanDelta back = planner.bladeStateChanged("c1-s1", BladeState::Available, 3);
  EXPECT_TRUE(back.steps.empty());
  EXPECT_EQ(planner.bladeOf("web-01"), "c1-s3");
}

TEST(FailbackIncremental, RoundTripThroughABorrowedBladeMatchesAFullReplan) {
  Fixture f = web();
  Planner planner(f.desired, f.observed, f.current);
  f.current = planner.plan(0).next;
  // Two failures, then both blades return one after the other; after each change the
  // incremental answer must be what a full plan of the same snapshot says.
  const std::vector<std::pair<std::string, BladeState>> changes = {{"c1-s1", BladeState::Fenced},
                                                                   {"c1-s3", BladeState::Fenced},
                                                                   {"c1-s1", BladeState::Available},
                                                                   {"c1-s3", BladeState::Available}};
  for (const auto& [name, state] : changes) {
    const PlanDelta delta = planner.bladeStateChanged(name, state, 1);
    f.setState(name, state);
    const Plan full = f.apply();
    const std::string at = name + " " + toString(state);
    EXPECT_EQ(planner.state().bindings, full.next.bindings) << at;
    EXPECT_EQ(planner.state().borrowed, full.next.borrowed) << at;
    EXPECT_EQ(planner.state().home, full.next.home) << at;
    EXPECT_EQ(delta.steps.size(), full.steps.size()) << at;
  }
  EXPECT_EQ(planner.bladeOf("web-01"), "c1-s1");
  EXPECT_TRUE(planner.state().home.empty());
  EXPECT_TRUE(planner.state().borrowed.empty());
}

}  // namespace
}  // namespace loom::pool
