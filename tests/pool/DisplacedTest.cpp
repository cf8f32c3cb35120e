// Displaced servers: a failover that found no blade leaves the server with a claim
// (PlacementState::displaced) — every later plan retries it as the failover it is, home
// first, then spares, borrowing, packing. Spares are kept free from new placements only.
#include <gtest/gtest.h>

#include "tests/pool/PoolBuilders.h"

namespace loom::pool {
namespace {
using namespace loom::pool::testing;

using Homes = std::map<std::string, std::string>;
using Names = std::set<std::string>;

// The fabric seen for real: web has 4 blades and `spares: 1`, failover: spare, 3 servers
// in one anti-affinity group. c1-s4 is the spare.
Fixture web(FailbackPolicy failback = FailbackPolicy::Manual) {
  Fixture f;
  f.observed.blades = {blade("c1-s1", 8), blade("c1-s2", 8), blade("c1-s3", 8), blade("c1-s4", 8)};
  f.desired.pools = {withFailback(withSpares(pool("web", {"c1-s1", "c1-s2", "c1-s3", "c1-s4"}), 1), failback)};
  f.desired.servers = {antiAffinity(server("web-0", "web", 2), "web"), antiAffinity(server("web-1", "web", 2), "web"),
                       antiAffinity(server("web-2", "web", 2), "web")};
  f.current.bindings = {{"web-0", "c1-s1"}, {"web-1", "c1-s2"}, {"web-2", "c1-s3"}};
  return f;
}

// c1-s3 died (web-2 took the spare c1-s4), then c1-s1 died: web-0 found nothing.
Fixture stranded(FailbackPolicy failback = FailbackPolicy::Manual) {
  Fixture f = web(failback);
  f.setState("c1-s3", BladeState::Fenced);
  f.apply();
  f.setState("c1-s1", BladeState::Fenced);
  f.apply();
  return f;
}

std::size_t webSpares(const Plan& p) {
  return static_cast<std::size_t>(std::count_if(p.blades.begin(), p.blades.end(), [](const BladeAssignment& a) {
    return a.pool == "web" && a.role == BladeRole::Spare;
  }));
}

TEST(Displaced, AFailoverThatFindsNothingLeavesAClaimThatSurvivesPlans) {
  Fixture f = web();
  f.setState("c1-s3", BladeState::Fenced);
  EXPECT_EQ(bladeOf(f.apply(), "web-2"), "c1-s4");
  f.setState("c1-s1", BladeState::Fenced);
  const Plan p = f.apply();
  EXPECT_EQ(bladeOf(p, "web-0"), "");
  ASSERT_NE(unplaceable(p, "web-0"), nullptr);
  EXPECT_EQ(unplaceable(p, "web-0")->reason.rfind("pool web: failover found no spare blade left", 0), 0u)
      << unplaceable(p, "web-0")->reason;
  EXPECT_EQ(p.next.displaced, (Names{"web-0"}));
  EXPECT_EQ(p.next.home, (Homes{{"web-0", "c1-s1"}, {"web-2", "c1-s3"}}));
  // Nothing changed: the same answer, no steps, the claim still there.
  const Plan again = f.plan();
  EXPECT_TRUE(again.steps.empty());
  ASSERT_NE(unplaceable(again, "web-0"), nullptr);
  EXPECT_EQ(again.next.displaced, (Names{"web-0"}));
  EXPECT_EQ(again.next.home, p.next.home);
}

TEST(Displaced, ARepairedBladeRestartsTheStrandedServerBeforeAnySpareIsKept) {
  Fixture f = stranded();
  f.setState("c1-s1", BladeState::Available);  // repaired, back empty
  const Plan p = f.plan();
  EXPECT_EQ(bladeOf(p, "web-0"), "c1-s1");
  EXPECT_EQ(unplaceable(p, "web-0"), nullptr);
  EXPECT_EQ(stepsFor(p.steps, "web-0"), (std::vector<std::string>{"define@c1-s1", "start@c1-s1"}));
  EXPECT_EQ(assignment(p, "c1-s1").role, BladeRole::Member);
  EXPECT_EQ(webSpares(p), 0u);  // the pool is short of its spare: capacity says so
  EXPECT_TRUE(p.next.displaced.empty());
  EXPECT_EQ(p.next.home, (Homes{{"web-2", "c1-s3"}}));  // web-0 is home
}

TEST(Displaced, TakesASpareWhileItsHomeIsDownAndFailsBackLater) {
  Fixture f = stranded(FailbackPolicy::Auto);
  f.setState("c1-s3", BladeState::Available);  // web-2's home, not web-0's
  const Plan p = f.apply();
  // c1-s3 would be the pool's spare; a server down by a failure comes first.
  EXPECT_EQ(bladeOf(p, "web-0"), "c1-s3");
  EXPECT_EQ(stepsFor(p.steps, "web-0"), (std::vector<std::string>{"define@c1-s3", "start@c1-s3"}));
  EXPECT_EQ(bladeOf(p, "web-2"), "c1-s4");  // anti-affinity keeps it from its home now
  EXPECT_TRUE(p.next.displaced.empty());
  EXPECT_EQ(p.next.home, (Homes{{"web-0", "c1-s1"}, {"web-2", "c1-s3"}}));

  // web-0's home comes back: it is an ordinary failed-over server now (failback: auto),
  // and web-2 follows it home; the blade both leave is the spare again.
  f.setState("c1-s1", BladeState::Available);
  const Plan back = f.plan();
  EXPECT_EQ(back.next.bindings, (Homes{{"web-0", "c1-s1"}, {"web-1", "c1-s2"}, {"web-2", "c1-s3"}}));
  EXPECT_TRUE(back.next.home.empty());
  EXPECT_EQ(assignment(back, "c1-s4").role, BladeRole::Spare);
}

TEST(Displaced, PrefersItsRepairedHomeOverAnotherSpare) {
  for (FailbackPolicy failback : {FailbackPolicy::Manual, FailbackPolicy::Auto}) {
    // Two spares kept: c1-s4 and c1-s3, in that order; c1-s3 is web-0's home.
    Fixture f = web(failback);
    f.desired.pools[0].spares = 2;
    f.current.bindings = {{"web-1", "c1-s1"}, {"web-2", "c1-s2"}};
    f.current.displaced = {"web-0"};
    f.current.home = {{"web-0", "c1-s3"}};
    const Plan p = f.plan();
    const std::string at = failback == FailbackPolicy::Auto ? "auto" : "manual";
    EXPECT_EQ(bladeOf(p, "web-0"), "c1-s3") << at;
    EXPECT_EQ(assignment(p, "c1-s4").role, BladeRole::Spare) << at;
    EXPECT_TRUE(p.next.home.empty()) << at;
    EXPECT_TRUE(p.next.displaced.empty()) << at;
  }
}

TEST(Displaced, ANewServerStillDoesNotTakeTheSpare) {
  Fixture f = stranded();
  f.setState("c1-s3", BladeState::Available);  // the spare again
  // Placed first (higher priority), but new: the spare is kept from it.
  f.desired.servers.push_back(priority(antiAffinity(server("extra", "web", 2), "web"), 100));
  const Plan p = f.plan();
  EXPECT_EQ(bladeOf(p, "extra"), "");
  ASSERT_NE(unplaceable(p, "extra"), nullptr);
  EXPECT_NE(unplaceable(p, "extra")->reason.find("(1 spare blade kept free)"), std::string::npos)
      << unplaceable(p, "extra")->reason;
  EXPECT_EQ(bladeOf(p, "web-0"), "c1-s3");
  EXPECT_FALSE(p.next.displaced.contains("extra"));
}

TEST(Displaced, BorrowsWhenTheSparePoolHasABladeAgain) {
  Fixture f = web();
  f.observed.blades.push_back(inState(blade("c2-s7", 8), BladeState::Maintenance));
  f.desired.pools[0] = borrowingFrom(f.desired.pools[0], "global-spares");
  f.desired.pools.push_back(sparePool("global-spares", {"c2-s7"}));
  f.setState("c1-s3", BladeState::Fenced);
  f.apply();
  f.setState("c1-s1", BladeState::Fenced);
  ASSERT_EQ(f.apply().next.displaced, (Names{"web-0"}));
  f.setState("c2-s7", BladeState::Available);
  const Plan p = f.plan();
  EXPECT_EQ(bladeOf(p, "web-0"), "c2-s7");
  EXPECT_EQ(p.next.borrowed, (Homes{{"c2-s7", "web"}}));
  EXPECT_EQ(p.next.home, (Homes{{"web-0", "c1-s1"}, {"web-2", "c1-s3"}}));
}

TEST(Displaced, PowerOffDeletionOrAMoveEndsTheClaim) {
  Fixture off = stranded();
  ASSERT_EQ(off.current.displaced, (Names{"web-0"}));
  off.desired.servers[0] = poweredOff(off.desired.servers[0]);
  const Plan o = off.apply();
  EXPECT_TRUE(o.next.displaced.empty());
  EXPECT_FALSE(o.next.home.contains("web-0"));
  // Started again, it is a new server: the returned blade stays the spare.
  off.desired.servers[0].power = PowerState::On;
  off.setState("c1-s1", BladeState::Available);
  const Plan on = off.plan();
  EXPECT_EQ(bladeOf(on, "web-0"), "");
  EXPECT_EQ(assignment(on, "c1-s1").role, BladeRole::Spare);

  Fixture deleted = stranded();
  ASSERT_EQ(deleted.current.displaced, (Names{"web-0"}));
  deleted.desired.servers.erase(deleted.desired.servers.begin());
  EXPECT_TRUE(deleted.plan().next.displaced.empty());

  // An operator's move binds it (the controller also drops the entry): the binding wins.
  Fixture moved = stranded();
  ASSERT_EQ(moved.current.displaced, (Names{"web-0"}));
  moved.setState("c1-s3", BladeState::Available);
  moved.current.bindings["web-0"] = "c1-s3";
  const Plan m = moved.plan();
  EXPECT_EQ(bladeOf(m, "web-0"), "c1-s3");
  EXPECT_TRUE(m.next.displaced.empty());
}

TEST(Displaced, FailoverNoneNowHoldsIt) {
  Fixture f = stranded();
  f.desired.pools[0].failover = FailoverPolicy::None;
  f.setState("c1-s1", BladeState::Available);
  const Plan p = f.plan();
  EXPECT_EQ(bladeOf(p, "web-0"), "");
  ASSERT_NE(unplaceable(p, "web-0"), nullptr);
  EXPECT_EQ(unplaceable(p, "web-0")->reason, "failover: none");
  EXPECT_EQ(p.next.held, (Names{"web-0"}));
  EXPECT_TRUE(p.next.displaced.empty());
  EXPECT_FALSE(p.next.home.contains("web-0"));
}

// --- incremental: Planner::bladeStateChanged gives what a full plan gives.

void expectSameAsFullPlan(const Planner& planner, const Plan& full, const std::string& at) {
  const PlacementState st = planner.state();
  EXPECT_EQ(st.bindings, full.next.bindings) << at;
  EXPECT_EQ(st.borrowed, full.next.borrowed) << at;
  EXPECT_EQ(st.home, full.next.home) << at;
  EXPECT_EQ(st.displaced, full.next.displaced) << at;
  EXPECT_EQ(st.held, full.next.held) << at;
}

TEST(DisplacedIncremental, TheFabricSeenForRealMatchesAFullReplan) {
  Fixture f = web();
  Planner planner(f.desired, f.observed, f.current);
  f.current = planner.plan(0).next;
  const std::vector<std::pair<std::string, BladeState>> changes = {{"c1-s3", BladeState::Fenced},
                                                                   {"c1-s1", BladeState::Fenced},
                                                                   {"c1-s1", BladeState::Available},
                                                                   {"c1-s3", BladeState::Available}};
  for (std::size_t i = 0; i < changes.size(); ++i) {
    const auto& [name, state] = changes[i];
    const PlanDelta delta = planner.bladeStateChanged(name, state, static_cast<TimeMs>(i + 1));
    f.setState(name, state);
    const Plan full = f.apply();
    const std::string at = name + " " + toString(state);
    expectSameAsFullPlan(planner, full, at);
    EXPECT_EQ(delta.steps.size(), full.steps.size()) << at;
    if (i == 1) {
      EXPECT_EQ(planner.state().displaced, (Names{"web-0"}));
    }
    if (i == 2) {
      ASSERT_EQ(delta.placements.size(), 1u);
      EXPECT_EQ(delta.placements[0].server, "web-0");
      EXPECT_EQ(delta.placements[0].blade, "c1-s1");
      EXPECT_EQ(stepsFor(delta.steps, "web-0"), (std::vector<std::string>{"define@c1-s1", "start@c1-s1"}));
    }
  }
  EXPECT_EQ(planner.bladeOf("web-0"), "c1-s1");
  EXPECT_EQ(planner.bladeOf("web-2"), "c1-s4");  // failback: manual
  EXPECT_TRUE(planner.state().displaced.empty());
}

TEST(DisplacedIncremental, FailbackFollowsTheDisplacedServerOffAnotherHome) {
  // web-0 waits on web-2's home c1-s3; when c1-s1 returns, web-0 goes home, and web-2 can
  // then go home too — in the same change, as in the full plan.
  Fixture f = web(FailbackPolicy::Auto);
  Planner planner(f.desired, f.observed, f.current);
  f.current = planner.plan(0).next;
  const std::vector<std::pair<std::string, BladeState>> changes = {{"c1-s3", BladeState::Fenced},
                                                                   {"c1-s1", BladeState::Fenced},
                                                                   {"c1-s3", BladeState::Available},
                                                                   {"c1-s1", BladeState::Available}};
  for (std::size_t i = 0; i < changes.size(); ++i) {
    const auto& [name, state] = changes[i];
    const PlanDelta delta = planner.bladeStateChanged(name, state, static_cast<TimeMs>(i + 1));
    f.setState(name, state);
    const Plan full = f.apply();
    const std::string at = name + " " + toString(state);
    expectSameAsFullPlan(planner, full, at);
    EXPECT_EQ(delta.steps.size(), full.steps.size()) << at;
  }
  EXPECT_EQ(planner.state().bindings, (Homes{{"web-0", "c1-s1"}, {"web-1", "c1-s2"}, {"web-2", "c1-s3"}}));
  EXPECT_TRUE(planner.state().home.empty());
}

TEST(DisplacedIncremental, TheClaimSurvivesARestartOfThePlanner) {
  Fixture f = stranded();
  // A restarted controller builds its planner from the persisted state.
  Planner planner(f.desired, f.observed, f.current);
  const Plan p = planner.plan(0);
  ASSERT_NE(unplaceable(p, "web-0"), nullptr);
  const PlanDelta delta = planner.bladeStateChanged("c1-s3", BladeState::Available, 1);
  EXPECT_EQ(planner.bladeOf("web-0"), "c1-s3");
  ASSERT_EQ(delta.placements.size(), 1u);
  EXPECT_EQ(delta.placements[0].server, "web-0");
  f.setState("c1-s3", BladeState::Available);
  expectSameAsFullPlan(planner, f.plan(), "c1-s3 available");
}

}  // namespace
}  // namespace loom::pool
