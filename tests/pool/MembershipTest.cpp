#include <gtest/gtest.h>

#include "tests/pool/PoolBuilders.h"

namespace loom::pool {
namespace {
using namespace loom::pool::testing;

BladeMatch chassis(std::string c) {
  BladeMatch m;
  m.chassis = std::move(c);
  return m;
}

TEST(Membership, ExplicitNamesClaimBeforeMatchRules) {
  Fixture f;
  f.observed.blades = {blade("c1-s1"), blade("c1-s2")};
  f.desired.pools = {matching(pool("web"), chassis("c1")), pool("db", {"c1-s2"})};
  const Plan p = f.plan();
  EXPECT_EQ(assignment(p, "c1-s1").pool, "web");
  EXPECT_EQ(assignment(p, "c1-s2").pool, "db");
  EXPECT_EQ(assignment(p, "c1-s2").role, BladeRole::Member);
  EXPECT_TRUE(p.warnings.empty());
}

TEST(Membership, ReportsConflictWhenTwoMatchRulesSelectOneBlade) {
  Fixture f;
  f.observed.blades = {blade("c1-s1", 32)};
  BladeMatch big;
  big.minCores = 16;
  f.desired.pools = {matching(pool("web"), chassis("c1")), matching(pool("db"), big)};
  f.desired.servers = {server("web-01", "web")};
  const Plan p = f.plan();
  const auto& a = assignment(p, "c1-s1");
  EXPECT_EQ(a.role, BladeRole::Conflict);
  EXPECT_EQ(a.pool, "");
  EXPECT_EQ(a.reason, "selected by pools 'web' and 'db'");
  ASSERT_EQ(p.warnings.size(), 1u);
  EXPECT_NE(p.warnings[0].find("c1-s1"), std::string::npos);
  // A conflicted blade is left unassigned: nothing lands on it.
  ASSERT_NE(unplaceable(p, "web-01"), nullptr);
  EXPECT_EQ(unplaceable(p, "web-01")->reason, "pool web: pool has no blades");
}

TEST(Membership, ReportsConflictWhenTwoPoolsNameOneBlade) {
  Fixture f;
  f.observed.blades = {blade("c1-s1")};
  f.desired.pools = {pool("web", {"c1-s1"}), pool("db", {"c1-s1"})};
  const Plan p = f.plan();
  EXPECT_EQ(assignment(p, "c1-s1").role, BladeRole::Conflict);
  EXPECT_EQ(assignment(p, "c1-s1").reason, "named by pools 'web' and 'db'");
}

TEST(Membership, MatchRuleChecksEveryField) {
  Fixture f;
  Blade small = blade("c1-s1", 4, 8_GiB);
  Blade xenOnly = blade("c1-s2", 32, 128_GiB);
  xenOnly.hypervisors = HypervisorSet::of(Hypervisor::Xen);
  Blade amd = blade("c1-s3", 32, 128_GiB);
  amd.model = "EPYC 7543";
  Blade right = blade("c1-s4", 32, 128_GiB);
  Blade otherChassis = blade("c2-s1", 32, 128_GiB);
  f.observed.blades = {small, xenOnly, amd, right, otherChassis};
  BladeMatch m;
  m.chassis = "c1";
  m.minCores = 8;
  m.minMemory = 16_GiB;
  m.model = "Xeon";
  m.hypervisor = Hypervisor::Kvm;
  f.desired.pools = {matching(pool("web"), m)};
  const Plan p = f.plan();
  for (auto name : {"c1-s1", "c1-s2", "c1-s3", "c2-s1"}) {
    EXPECT_EQ(assignment(p, name).role, BladeRole::Unassigned) << name;
  }
  EXPECT_EQ(assignment(p, "c1-s4").pool, "web");
}

TEST(Membership, BladesInNoPoolAreUnassigned) {
  Fixture f;
  f.observed.blades = {blade("c1-s1"), blade("c1-s2")};
  f.desired.pools = {pool("web", {"c1-s1"})};
  const Plan p = f.plan();
  ASSERT_EQ(p.blades.size(), 2u);
  EXPECT_EQ(p.blades[1].blade, "c1-s2");  // inventory order
  EXPECT_EQ(p.blades[1].role, BladeRole::Unassigned);
}

TEST(Membership, WarnsAboutNamedBladesMissingFromTheInventory) {
  Fixture f;
  f.observed.blades = {blade("c1-s1")};
  f.desired.pools = {pool("web", {"c1-s1", "c9-s9"})};
  const Plan p = f.plan();
  ASSERT_EQ(p.warnings.size(), 1u);
  EXPECT_EQ(p.warnings[0], "pool web: blade 'c9-s9' is not in the inventory");
}

TEST(Membership, SparePoolBladesAreSpares) {
  Fixture f;
  f.observed.blades = {blade("c2-s7"), blade("c2-s8")};
  f.desired.pools = {sparePool("global-spares", {"c2-s7", "c2-s8"})};
  const Plan p = f.plan();
  EXPECT_EQ(assignment(p, "c2-s7").role, BladeRole::Spare);
  EXPECT_EQ(assignment(p, "c2-s7").pool, "global-spares");
}

TEST(Membership, BorrowedBladesStayWithTheirBorrower) {
  Fixture f;
  f.observed.blades = {blade("c1-s1"), blade("c2-s7")};
  f.desired.pools = {borrowingFrom(pool("web", {"c1-s1"}), "global-spares"), sparePool("global-spares", {"c2-s7"})};
  f.desired.servers = {server("web-01", "web")};
  f.current.bindings = {{"web-01", "c2-s7"}};
  f.current.borrowed = {{"c2-s7", "web"}};
  const Plan p = f.plan();
  EXPECT_EQ(assignment(p, "c2-s7").role, BladeRole::Borrowed);
  EXPECT_EQ(assignment(p, "c2-s7").pool, "web");
  EXPECT_EQ(bladeOf(p, "web-01"), "c2-s7");  // kept, not moved back
  EXPECT_EQ(p.next.borrowed.at("c2-s7"), "web");
}

TEST(Membership, AnEmptyBorrowedBladeGoesBackToItsSparePool) {
  Fixture f;
  f.observed.blades = {blade("c1-s1"), blade("c2-s7")};
  f.desired.pools = {borrowingFrom(pool("web", {"c1-s1"}), "global-spares"), sparePool("global-spares", {"c2-s7"})};
  f.current.borrowed = {{"c2-s7", "web"}};
  const Plan p = f.plan();
  EXPECT_EQ(assignment(p, "c2-s7").role, BladeRole::Spare);
  EXPECT_EQ(assignment(p, "c2-s7").pool, "global-spares");
  EXPECT_TRUE(p.next.borrowed.empty());
}

}  // namespace
}  // namespace loom::pool
