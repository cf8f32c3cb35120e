#include <gtest/gtest.h>

#include "tests/pool/PoolBuilders.h"

namespace loom::pool {
namespace {
using namespace loom::pool::testing;

const PoolCapacity& of(const std::vector<PoolCapacity>& all, const std::string& name) {
  return *std::find_if(all.begin(), all.end(), [&](const PoolCapacity& c) { return c.pool == name; });
}

Fixture threeBladesOneSpare(FailoverPolicy policy = FailoverPolicy::Spare) {
  Fixture f;
  f.observed.blades = {blade("c1-s1", 8, 32_GiB), blade("c1-s2", 8, 32_GiB), blade("c1-s3", 8, 32_GiB)};
  f.desired.pools = {withFailover(withSpares(pool("web", {"c1-s1", "c1-s2", "c1-s3"}), 1), policy)};
  f.desired.servers = {server("a", "web", 6, 8_GiB), server("b", "web", 2, 4_GiB)};
  f.current.bindings = {{"a", "c1-s1"}, {"b", "c1-s2"}};
  return f;
}

TEST(Capacity, CountsUsedAndFreeResourcesPerPool) {
  Fixture f = threeBladesOneSpare();
  const auto c = of(capacity(f.desired, f.observed, f.current), "web");
  EXPECT_EQ(c.blades, 3u);
  EXPECT_EQ(c.spares, 1u);
  EXPECT_EQ(c.sparesDeclared, 1u);
  EXPECT_EQ(c.coresTotal, 24u);
  EXPECT_EQ(c.coresUsed, 8u);
  EXPECT_EQ(c.memoryTotal, 96_GiB);
  EXPECT_EQ(c.memoryUsed, 12_GiB);
  EXPECT_EQ(c.servers, 2u);
}

TEST(Capacity, SurvivesAsManyFailuresAsSparesCanAbsorb) {
  Fixture f = threeBladesOneSpare();
  const auto c = of(capacity(f.desired, f.observed, f.current), "web");
  // The spare absorbs the fullest blade (a); the next worst failure is the spare itself
  // now holding a, and nothing is left to take it.
  EXPECT_EQ(c.survivableFailures, 1u);
  EXPECT_TRUE(c.sparesPromiseMet);
  EXPECT_TRUE(c.warning.empty());
}

TEST(Capacity, PackingRoomCountsForPackPools) {
  Fixture f = threeBladesOneSpare(FailoverPolicy::Pack);
  f.observed.blades.push_back(blade("c1-s4", 8, 32_GiB));
  f.desired.pools[0].bladeNames.push_back("c1-s4");
  const auto c = of(capacity(f.desired, f.observed, f.current), "web");
  EXPECT_GE(c.survivableFailures, 2u);
}

TEST(Capacity, WarnsWhenSparesPromiseNotMet) {
  Fixture f = threeBladesOneSpare();
  f.desired.pools[0].spares = 2;  // asks for two, only one blade is empty
  const auto c = of(capacity(f.desired, f.observed, f.current), "web");
  EXPECT_EQ(c.spares, 1u);
  EXPECT_EQ(c.survivableFailures, 1u);
  EXPECT_FALSE(c.sparesPromiseMet);
  EXPECT_NE(c.warning.find("pool web: spares: 2 promised but it survives 1 blade failure"), std::string::npos)
      << c.warning;
  EXPECT_NE(c.warning.find("unplaced"), std::string::npos) << c.warning;
}

TEST(Capacity, BorrowableBladesCount) {
  Fixture f = threeBladesOneSpare();
  f.observed.blades.push_back(blade("c2-s7", 8, 32_GiB));
  f.desired.pools[0].borrowFrom = "global-spares";
  f.desired.pools.push_back(sparePool("global-spares", {"c2-s7"}));
  const auto c = of(capacity(f.desired, f.observed, f.current), "web");
  EXPECT_EQ(c.survivableFailures, 2u);
}

TEST(Capacity, FailoverNoneSurvivesNothing) {
  Fixture f = threeBladesOneSpare(FailoverPolicy::None);
  const auto c = of(capacity(f.desired, f.observed, f.current), "web");
  EXPECT_EQ(c.survivableFailures, 0u);
  EXPECT_FALSE(c.sparesPromiseMet);
  EXPECT_NE(c.warning.find("failover: none"), std::string::npos);
}

TEST(Capacity, ServersNotRunningNowBreakThePromise) {
  Fixture f = threeBladesOneSpare();
  f.desired.servers.push_back(server("c", "web", 2));
  const auto c = of(capacity(f.desired, f.observed, f.current), "web");
  EXPECT_EQ(c.survivableFailures, 0u);
  EXPECT_NE(c.warning.find("1 server is not running now"), std::string::npos) << c.warning;
}

TEST(Capacity, AnEmptyPoolSurvivesEverything) {
  Fixture f;
  f.observed.blades = {blade("c1-s1"), blade("c1-s2")};
  f.desired.pools = {withSpares(pool("web", {"c1-s1", "c1-s2"}), 1)};
  const auto c = of(capacity(f.desired, f.observed, f.current), "web");
  EXPECT_EQ(c.survivableFailures, 2u);
  EXPECT_TRUE(c.sparesPromiseMet);
}

TEST(Capacity, DoesNotChangeTheInputs) {
  Fixture f = threeBladesOneSpare();
  const PlacementState before = f.current;
  (void)capacity(f.desired, f.observed, f.current);
  EXPECT_EQ(f.current.bindings, before.bindings);
}

}  // namespace
}  // namespace loom::pool
