#include <gtest/gtest.h>

#include "tests/pool/PoolBuilders.h"

namespace loom::pool {
namespace {
using namespace loom::pool::testing;

// web: c1-s1, c1-s2 working, c1-s3 its spare; global-spares: c2-s7.
Fixture webWithSpare(FailoverPolicy policy = FailoverPolicy::Spare, std::uint32_t spares = 1) {
  Fixture f;
  f.observed.blades = {blade("c1-s1", 8), blade("c1-s2", 8), blade("c1-s3", 8), blade("c2-s7", 8)};
  f.desired.pools = {borrowingFrom(withFailover(withSpares(pool("web", {"c1-s1", "c1-s2", "c1-s3"}), spares), policy),
                                   "global-spares"),
                     sparePool("global-spares", {"c2-s7"})};
  f.desired.servers = {antiAffinity(server("web-01", "web", 4), "web"),
                       antiAffinity(server("web-02", "web", 4), "web")};
  f.current.bindings = {{"web-01", "c1-s1"}, {"web-02", "c1-s2"}};
  return f;
}

TEST(Failover, MovesServersOfAFencedBladeToAPoolSpare) {
  Fixture f = webWithSpare();
  f.setState("c1-s1", BladeState::Fenced);
  const Plan p = f.plan();
  EXPECT_EQ(bladeOf(p, "web-01"), "c1-s3");
  EXPECT_EQ(bladeOf(p, "web-02"), "c1-s2");
  // No step waits on the dead blade.
  EXPECT_EQ(stepsFor(p.steps, "web-01"), (std::vector<std::string>{"define@c1-s3", "start@c1-s3"}));
  EXPECT_EQ(assignment(p, "c1-s3").role, BladeRole::Member);
  EXPECT_TRUE(p.next.borrowed.empty());
  const auto& moved =
      *std::find_if(p.placements.begin(), p.placements.end(), [](auto& x) { return x.server == "web-01"; });
  EXPECT_EQ(moved.from, "c1-s1");
}

TEST(Failover, RetiredAndVanishedBladesFailOverToo) {
  Fixture retired = webWithSpare();
  retired.setState("c1-s1", BladeState::Retired);
  EXPECT_EQ(bladeOf(retired.plan(), "web-01"), "c1-s3");

  Fixture vanished = webWithSpare();
  vanished.observed.blades.erase(vanished.observed.blades.begin());
  EXPECT_EQ(bladeOf(vanished.plan(), "web-01"), "c1-s3");
}

TEST(Failover, SuspectAndFailedBladesKeepTheirServers) {
  for (BladeState s : {BladeState::Suspect, BladeState::Failed}) {
    Fixture f = webWithSpare();
    f.setState("c1-s1", s);
    const Plan p = f.plan();
    EXPECT_EQ(bladeOf(p, "web-01"), "c1-s1") << toString(s);
    EXPECT_TRUE(p.steps.empty()) << toString(s);
    EXPECT_EQ(assignment(p, "c1-s3").role, BladeRole::Spare) << toString(s);
  }
}

TEST(Failover, BorrowsFromTheSparePoolWhenThePoolHasNoSpare) {
  Fixture f = webWithSpare(FailoverPolicy::Spare, 0);
  f.bladeNamed("c2-s7").personality = Hypervisor::Xen;  // must be repurposed
  f.setState("c1-s1", BladeState::Fenced);
  f.setState("c1-s3", BladeState::Maintenance);
  const Plan p = f.plan();
  EXPECT_EQ(bladeOf(p, "web-01"), "c2-s7");
  EXPECT_EQ(p.next.borrowed.at("c2-s7"), "web");
  EXPECT_EQ(assignment(p, "c2-s7").role, BladeRole::Borrowed);
  EXPECT_EQ(assignment(p, "c2-s7").pool, "web");
  const std::size_t prep = indexOf(p.steps, StepKind::PrepareHypervisor, "c2-s7");
  ASSERT_LT(prep, p.steps.size());
  EXPECT_EQ(p.steps[prep].hypervisor, Hypervisor::Kvm);
  const std::size_t define = indexOf(p.steps, StepKind::Define, "c2-s7", "web-01");
  ASSERT_LT(define, p.steps.size());
  EXPECT_EQ(p.steps[define].after, (std::vector<std::size_t>{prep}));
}

TEST(Failover, BorrowedBladeWithTheRightPersonalityNeedsNoRepurpose) {
  Fixture f = webWithSpare(FailoverPolicy::Spare, 0);
  f.setState("c1-s1", BladeState::Fenced);
  f.setState("c1-s3", BladeState::Maintenance);
  const Plan p = f.plan();
  EXPECT_EQ(bladeOf(p, "web-01"), "c2-s7");
  EXPECT_EQ(indexOf(p.steps, StepKind::PrepareHypervisor, "c2-s7"), p.steps.size());
}

TEST(Failover, UsesPoolSparesBeforeBorrowing) {
  Fixture f = webWithSpare();
  f.setState("c1-s1", BladeState::Fenced);
  f.setState("c1-s2", BladeState::Fenced);
  const Plan p = f.plan();
  // Both fit on the spare... except anti-affinity: the second must go elsewhere.
  EXPECT_EQ(bladeOf(p, "web-01"), "c1-s3");
  EXPECT_EQ(bladeOf(p, "web-02"), "c2-s7");
  EXPECT_EQ(p.next.borrowed.size(), 1u);
}

TEST(Failover, FillsAnOpenedSpareBeforeTakingAnother) {
  Fixture f;
  f.observed.blades = {blade("c1-s1", 8), blade("c1-s2", 8), blade("c1-s3", 8)};
  f.desired.pools = {withSpares(pool("web", {"c1-s1", "c1-s2", "c1-s3"}), 2)};
  f.desired.servers = {server("a", "web", 2), server("b", "web", 2)};
  f.current.bindings = {{"a", "c1-s1"}, {"b", "c1-s1"}};
  f.setState("c1-s1", BladeState::Fenced);
  const Plan p = f.plan();
  EXPECT_EQ(bladeOf(p, "a"), bladeOf(p, "b"));
  EXPECT_FALSE(bladeOf(p, "a").empty());
}

TEST(Failover, MovesHighestPriorityServersFirst) {
  Fixture f;
  f.observed.blades = {blade("c1-s1", 8), blade("c1-s2", 4)};
  f.desired.pools = {withSpares(pool("web", {"c1-s1", "c1-s2"}), 1)};
  f.desired.servers = {priority(server("low", "web", 4), 1), priority(server("high", "web", 4), 100)};
  f.current.bindings = {{"low", "c1-s1"}, {"high", "c1-s1"}};
  f.setState("c1-s1", BladeState::Fenced);
  const Plan p = f.plan();
  EXPECT_EQ(bladeOf(p, "high"), "c1-s2");
  ASSERT_NE(unplaceable(p, "low"), nullptr);
  EXPECT_EQ(unplaceable(p, "low")->reason,
            "pool web: failover found no spare blade left, no borrow_from pool, and failover: spare does "
            "not pack onto busy blades");
}

TEST(Failover, SparePolicyDoesNotPackOntoBusyMembers) {
  Fixture f = webWithSpare(FailoverPolicy::Spare, 0);
  f.desired.pools[0].borrowFrom.clear();
  f.setState("c1-s1", BladeState::Fenced);
  const Plan p = f.plan();
  // c1-s3 has room, but it is a busy-or-not member, not a spare.
  EXPECT_EQ(bladeOf(p, "web-01"), "");
  ASSERT_NE(unplaceable(p, "web-01"), nullptr);
}

TEST(Failover, PackPolicyPacksOntoFreeCapacityWhenSparesAndBorrowingAreExhausted) {
  Fixture f = webWithSpare(FailoverPolicy::Pack, 0);
  f.desired.pools[0].borrowFrom.clear();
  f.desired.servers = {server("web-01", "web", 4), server("web-02", "web", 4)};
  f.setState("c1-s1", BladeState::Fenced);
  f.setState("c1-s3", BladeState::Maintenance);
  const Plan p = f.plan();
  EXPECT_EQ(bladeOf(p, "web-01"), "c1-s2");  // packed next to web-02
}

TEST(Failover, PackPolicyExplainsWhatItCouldNotFind) {
  Fixture f = webWithSpare(FailoverPolicy::Pack, 0);
  f.setState("c1-s1", BladeState::Fenced);
  f.setState("c1-s3", BladeState::Maintenance);
  f.setState("c2-s7", BladeState::Maintenance);
  const Plan p = f.plan();
  ASSERT_NE(unplaceable(p, "web-01"), nullptr);
  EXPECT_EQ(unplaceable(p, "web-01")->reason,
            "pool web: failover found no spare blade left, nothing to borrow from 'global-spares', and no "
            "blade with 4 free cores outside anti-affinity group web to pack onto");
}

TEST(Failover, NoneLeavesServersUnboundAndStopped) {
  Fixture f = webWithSpare(FailoverPolicy::None);
  f.setState("c1-s1", BladeState::Fenced);
  const Plan p = f.plan();
  EXPECT_EQ(bladeOf(p, "web-01"), "");
  ASSERT_NE(unplaceable(p, "web-01"), nullptr);
  EXPECT_EQ(unplaceable(p, "web-01")->reason, "failover: none");
  EXPECT_TRUE(stepsFor(p.steps, "web-01").empty());
  EXPECT_EQ(p.next.held.count("web-01"), 1u);
}

TEST(Failover, NoneIsNotUndoneByTheNextPlan) {
  Fixture f = webWithSpare(FailoverPolicy::None);
  f.setState("c1-s1", BladeState::Fenced);
  f.apply();
  f.setState("c1-s1", BladeState::Available);  // even with room again
  const Plan p = f.plan();
  EXPECT_EQ(bladeOf(p, "web-01"), "");
  EXPECT_EQ(unplaceable(p, "web-01")->reason, "failover: none");
  f.current.held.clear();  // the operator starts it
  EXPECT_FALSE(bladeOf(f.plan(), "web-01").empty());
}

TEST(Failover, MaintenanceEvacuatesWithStopBeforeStart) {
  Fixture f = webWithSpare(FailoverPolicy::Spare, 0);
  f.setState("c1-s1", BladeState::Maintenance);
  const Plan p = f.plan();
  EXPECT_EQ(bladeOf(p, "web-01"), "c1-s3");
  EXPECT_EQ(stepsFor(p.steps, "web-01"),
            (std::vector<std::string>{"stop@c1-s1", "undefine@c1-s1", "define@c1-s3", "start@c1-s3"}));
  const std::size_t stop = indexOf(p.steps, StepKind::Stop, "c1-s1", "web-01");
  const std::size_t define = indexOf(p.steps, StepKind::Define, "c1-s3", "web-01");
  EXPECT_EQ(p.steps[define].after, (std::vector<std::size_t>{stop}));
}

TEST(Failover, MaintenanceEvacuationRespectsSpares) {
  Fixture f = webWithSpare(FailoverPolicy::Spare, 1);
  f.setState("c1-s1", BladeState::Maintenance);
  const Plan p = f.plan();
  // The only free blade is the spare: the server stays and the operator is told.
  EXPECT_EQ(bladeOf(p, "web-01"), "c1-s1");
  ASSERT_EQ(p.warnings.size(), 1u);
  EXPECT_EQ(p.warnings[0],
            "server web-01 stays on c1-s1 (maintenance): pool web: no blade with 4 free cores outside "
            "anti-affinity group web (1 spare blade kept free)");
  EXPECT_TRUE(p.steps.empty());
}

TEST(Failover, AfterASpareIsConsumedThePoolHasFewerSpares) {
  Fixture f = webWithSpare();
  f.setState("c1-s1", BladeState::Fenced);
  const Plan p = f.apply();
  EXPECT_EQ(assignment(p, "c1-s3").role, BladeRole::Member);
  for (const auto& a : p.blades) EXPECT_NE(a.role == BladeRole::Spare && a.pool == "web", true) << a.blade;
  // When the dead blade comes back empty it becomes the spare.
  f.setState("c1-s1", BladeState::Available);
  const Plan back = f.plan();
  EXPECT_EQ(assignment(back, "c1-s1").role, BladeRole::Spare);
  EXPECT_EQ(bladeOf(back, "web-01"), "c1-s3");  // no failback by itself
}

}  // namespace
}  // namespace loom::pool
