#include <gtest/gtest.h>

#include "tests/pool/PoolBuilders.h"

namespace loom::pool {
namespace {
using namespace loom::pool::testing;

Fixture mediumFabric() {
  Fixture f;
  for (int i = 0; i < 12; ++i) f.observed.blades.push_back(blade("c1-s" + std::to_string(i), 8, 32_GiB));
  f.observed.blades.push_back(blade("c2-s7", 8, 32_GiB));
  std::vector<std::string> web, db;
  for (int i = 0; i < 8; ++i) web.push_back("c1-s" + std::to_string(i));
  for (int i = 8; i < 12; ++i) db.push_back("c1-s" + std::to_string(i));
  f.desired.pools = {borrowingFrom(withSpares(pool("web", web), 2), "global-spares"),
                     withFailover(withSpares(pool("db", db), 1), FailoverPolicy::Pack),
                     sparePool("global-spares", {"c2-s7"})};
  for (int i = 0; i < 14; ++i)
    f.desired.servers.push_back(priority(antiAffinity(server("web-" + std::to_string(i), "web", 1 + i % 4), "g" + std::to_string(i % 3)), i));
  for (int i = 0; i < 6; ++i) f.desired.servers.push_back(server("db-" + std::to_string(i), "db", 2));
  return f;
}

TEST(PlannerIncremental, BladeFailureMatchesAFullReplan) {
  Fixture f = mediumFabric();
  Planner planner(f.desired, f.observed, f.current);
  const Plan placed = planner.plan(0);
  f.current = placed.next;
  const std::string victim = f.current.bindings.at("web-13");

  const PlanDelta delta = planner.bladeStateChanged(victim, BladeState::Fenced, 1);
  f.setState(victim, BladeState::Fenced);
  const Plan full = f.plan();

  EXPECT_EQ(planner.state().bindings, full.next.bindings);
  EXPECT_EQ(planner.state().borrowed, full.next.borrowed);
  EXPECT_FALSE(delta.placements.empty());
  for (const auto& pl : delta.placements) EXPECT_EQ(pl.from, victim);
  std::size_t fullMoves = 0;
  for (const auto& pl : full.placements) fullMoves += !pl.from.empty();
  EXPECT_EQ(delta.placements.size(), fullMoves);
  EXPECT_EQ(delta.steps.size(), full.steps.size());
}

TEST(PlannerIncremental, FailoverAndFailbackMatchAFullReplan) {
  Fixture f = mediumFabric();
  for (auto& p : f.desired.pools) p.failback = FailbackPolicy::Auto;
  Planner planner(f.desired, f.observed, f.current);
  const Plan placed = planner.plan(0);
  f.current = placed.next;
  const std::string victim = f.current.bindings.at("web-13");
  std::vector<std::string> onVictim;
  for (const auto& [s, b] : placed.next.bindings) {
    if (b == victim) onVictim.push_back(s);
  }
  ASSERT_GE(onVictim.size(), 2u);

  (void)planner.bladeStateChanged(victim, BladeState::Fenced, 1);
  f.setState(victim, BladeState::Fenced);
  const Plan down = f.apply();
  EXPECT_EQ(planner.state().bindings, down.next.bindings);
  EXPECT_EQ(planner.state().home, down.next.home);
  for (const auto& s : onVictim) EXPECT_EQ(down.next.home.at(s), victim) << s;

  const PlanDelta delta = planner.bladeStateChanged(victim, BladeState::Available, 2);
  f.setState(victim, BladeState::Available);
  const Plan back = f.plan();
  EXPECT_EQ(planner.state().bindings, back.next.bindings);
  EXPECT_EQ(planner.state().borrowed, back.next.borrowed);
  EXPECT_EQ(planner.state().home, back.next.home);
  EXPECT_TRUE(back.next.home.empty());
  for (const auto& s : onVictim) EXPECT_EQ(planner.bladeOf(s), victim) << s;
  EXPECT_EQ(delta.placements.size(), onVictim.size());
  EXPECT_EQ(delta.steps.size(), back.steps.size());
  // The round trip restores the placement and the pools' spare counts (which empty blade
  // is the spare may differ: designated spares are not reshuffled).
  EXPECT_EQ(back.next.bindings, placed.next.bindings);
  auto spares = [](const Plan& p, const std::string& pool) {
    return std::count_if(p.blades.begin(), p.blades.end(),
                         [&](const BladeAssignment& a) { return a.pool == pool && a.role == BladeRole::Spare; });
  };
  EXPECT_EQ(spares(back, "web"), 2);
  EXPECT_EQ(spares(back, "db"), 1);
  // And the incremental planner sees the same roles as the full plan.
  const Plan again = planner.plan(3);
  EXPECT_TRUE(again.steps.empty());
  for (const auto& a : back.blades) {
    EXPECT_EQ(assignment(again, a.blade).role, a.role) << a.blade;
    EXPECT_EQ(assignment(again, a.blade).pool, a.pool) << a.blade;
  }
}

TEST(PlannerIncremental, StrandedServersRestartOnReturningBladesLikeAFullReplan) {
  for (FailbackPolicy failback : {FailbackPolicy::Manual, FailbackPolicy::Auto}) {
    Fixture f = mediumFabric();
    for (auto& p : f.desired.pools) p.failback = failback;
    Planner planner(f.desired, f.observed, f.current);
    f.current = planner.plan(0).next;
    // Web loses blades until its spares and the borrowed blade are gone and servers are
    // stranded (displaced); then the blades come back one by one, in another order.
    std::vector<std::pair<std::string, BladeState>> changes;
    for (int i : {0, 1, 2, 3, 4, 5}) changes.emplace_back("c1-s" + std::to_string(i), BladeState::Fenced);
    for (int i : {3, 0, 5, 1, 4, 2}) changes.emplace_back("c1-s" + std::to_string(i), BladeState::Available);
    bool stranded = false;
    for (std::size_t i = 0; i < changes.size(); ++i) {
      const auto& [name, state] = changes[i];
      const PlanDelta delta = planner.bladeStateChanged(name, state, static_cast<TimeMs>(i + 1));
      f.setState(name, state);
      const Plan full = f.apply();
      const std::string at = std::string(failback == FailbackPolicy::Auto ? "auto " : "manual ") + name + " " +
                             toString(state);
      const PlacementState st = planner.state();
      EXPECT_EQ(st.bindings, full.next.bindings) << at;
      EXPECT_EQ(st.borrowed, full.next.borrowed) << at;
      EXPECT_EQ(st.home, full.next.home) << at;
      EXPECT_EQ(st.displaced, full.next.displaced) << at;
      EXPECT_EQ(delta.steps.size(), full.steps.size()) << at;
      stranded |= !full.next.displaced.empty();
    }
    EXPECT_TRUE(stranded);  // the sequence did exercise displaced servers
    EXPECT_TRUE(planner.state().displaced.empty());
    EXPECT_EQ(planner.state().bindings.size(), f.desired.servers.size());
  }
}

TEST(PlannerIncremental, ReportsRoleChangesOfConsumedSpares) {
  Fixture f = mediumFabric();
  Planner planner(f.desired, f.observed, f.current);
  const Plan placed = planner.plan(0);
  const std::string victim = placed.next.bindings.at("web-13");
  const PlanDelta delta = planner.bladeStateChanged(victim, BladeState::Fenced, 1);
  bool sawMember = false;
  for (const auto& b : delta.blades) sawMember |= b.role == BladeRole::Member && b.pool == "web";
  EXPECT_TRUE(sawMember);
}

TEST(PlannerIncremental, SuspectBladeMovesNothing) {
  Fixture f = mediumFabric();
  Planner planner(f.desired, f.observed, f.current);
  const Plan placed = planner.plan(0);
  const PlanDelta delta = planner.bladeStateChanged(placed.next.bindings.at("web-0"), BladeState::Suspect, 1);
  EXPECT_TRUE(delta.placements.empty());
  EXPECT_TRUE(delta.steps.empty());
  EXPECT_EQ(planner.state().bindings, placed.next.bindings);
}

TEST(PlannerIncremental, RetriesWaitingServersWhenABladeReturns) {
  Fixture f;
  f.observed.blades = {blade("c1-s1", 4, 16_GiB, BladeState::Maintenance)};
  f.desired.pools = {pool("web", {"c1-s1"})};
  f.desired.servers = {server("web-01", "web", 2)};
  Planner planner(f.desired, f.observed, f.current);
  const Plan p = planner.plan(0);
  ASSERT_EQ(p.unplaceable.size(), 1u);
  const PlanDelta delta = planner.bladeStateChanged("c1-s1", BladeState::Available, 1);
  ASSERT_EQ(delta.placements.size(), 1u);
  EXPECT_EQ(delta.placements[0].blade, "c1-s1");
  EXPECT_EQ(planner.bladeOf("web-01"), "c1-s1");
}

TEST(PlannerIncremental, UnknownBladeIsAWarningAndChangesNothing) {
  Fixture f = mediumFabric();
  Planner planner(f.desired, f.observed, f.current);
  (void)planner.plan(0);
  const auto before = planner.state().bindings;
  const PlanDelta delta = planner.bladeStateChanged("nope", BladeState::Fenced, 1);
  ASSERT_EQ(delta.warnings.size(), 1u);
  EXPECT_EQ(delta.warnings[0], "blade 'nope' unknown");
  EXPECT_EQ(planner.state().bindings, before);
}

TEST(PlannerIncremental, CopiesAreIndependent) {
  Fixture f = mediumFabric();
  Planner planner(f.desired, f.observed, f.current);
  const Plan placed = planner.plan(0);
  Planner copy = planner;
  (void)copy.bladeStateChanged(placed.next.bindings.at("web-13"), BladeState::Fenced, 1);
  EXPECT_EQ(planner.state().bindings, placed.next.bindings);
  EXPECT_NE(copy.state().bindings, placed.next.bindings);
}

TEST(PlannerIncremental, PlanIsTheFreeFunction) {
  Fixture f = mediumFabric();
  Planner planner(f.desired, f.observed, f.current);
  EXPECT_EQ(planner.plan(0).next.bindings, f.plan().next.bindings);
}

}  // namespace
}  // namespace loom::pool
