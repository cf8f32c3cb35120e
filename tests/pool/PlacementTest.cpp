#include <gtest/gtest.h>

#include <map>
#include <set>

#include "tests/pool/PoolBuilders.h"

namespace loom::pool {
namespace {
using namespace loom::pool::testing;

TEST(Placement, PlacesServersWithinBladeCapacity) {
  Fixture f;
  f.observed.blades = {blade("c1-s1", 4, 16_GiB), blade("c1-s2", 4, 16_GiB)};
  f.desired.pools = {pool("web", {"c1-s1", "c1-s2"})};
  f.desired.servers = {server("a", "web", 3), server("b", "web", 3), server("c", "web", 1)};
  const Plan p = f.plan();
  EXPECT_TRUE(p.unplaceable.empty());
  EXPECT_NE(bladeOf(p, "a"), bladeOf(p, "b"));  // 3 + 3 cores do not fit on 4
  EXPECT_EQ(p.placements.size(), 3u);
}

TEST(Placement, ReportsTheCoresItCouldNotFind) {
  Fixture f;
  f.observed.blades = {blade("c1-s1", 4, 64_GiB)};
  f.desired.pools = {pool("web", {"c1-s1"})};
  f.desired.servers = {server("big", "web", 8, 4_GiB)};
  const Plan p = f.plan();
  ASSERT_NE(unplaceable(p, "big"), nullptr);
  EXPECT_EQ(unplaceable(p, "big")->reason, "pool web: no blade with 8 free cores");
  EXPECT_TRUE(p.next.bindings.empty());
}

TEST(Placement, ReportsTheMemoryItCouldNotFind) {
  Fixture f;
  f.observed.blades = {blade("c1-s1", 16, 8_GiB)};
  f.desired.pools = {pool("web", {"c1-s1"})};
  f.desired.servers = {server("fat", "web", 2, 16_GiB)};
  const Plan p = f.plan();
  EXPECT_EQ(unplaceable(p, "fat")->reason, "pool web: no blade with 16GiB free memory");
}

TEST(Placement, NeverPutsTwoOfAnAntiAffinityGroupOnOneBlade) {
  Fixture f;
  f.observed.blades = {blade("c1-s1", 16), blade("c1-s2", 16), blade("c1-s3", 16)};
  f.desired.pools = {pool("web", {"c1-s1", "c1-s2", "c1-s3"})};
  for (int i = 0; i < 3; ++i)
    f.desired.servers.push_back(antiAffinity(server("web-" + std::to_string(i), "web"), "web"));
  const Plan p = f.plan();
  std::set<std::string> used;
  for (int i = 0; i < 3; ++i) used.insert(bladeOf(p, "web-" + std::to_string(i)));
  EXPECT_EQ(used.size(), 3u);
}

TEST(Placement, ExplainsAntiAffinityWhenItIsWhatBlocks) {
  Fixture f;
  f.observed.blades = {blade("c1-s1", 16), blade("c1-s2", 16)};
  f.desired.pools = {pool("web", {"c1-s1", "c1-s2"})};
  for (int i = 0; i < 3; ++i)
    f.desired.servers.push_back(antiAffinity(server("web-" + std::to_string(i), "web", 8, 4_GiB), "web"));
  const Plan p = f.plan();
  ASSERT_EQ(p.unplaceable.size(), 1u);
  EXPECT_EQ(p.unplaceable[0].server, "web-2");  // declaration order breaks the tie
  EXPECT_EQ(p.unplaceable[0].reason, "pool web: no blade with 8 free cores outside anti-affinity group web");
}

TEST(Placement, PlacesHigherPriorityFirst) {
  Fixture f;
  f.observed.blades = {blade("c1-s1", 4)};
  f.desired.pools = {pool("web", {"c1-s1"})};
  f.desired.servers = {priority(server("low", "web", 4), 1), priority(server("high", "web", 4), 100)};
  const Plan p = f.plan();
  EXPECT_EQ(bladeOf(p, "high"), "c1-s1");
  ASSERT_NE(unplaceable(p, "low"), nullptr);
}

TEST(Placement, DedicatedServerTakesAWholeBlade) {
  Fixture f;
  f.observed.blades = {blade("c1-s1", 16), blade("c1-s2", 16)};
  f.desired.pools = {pool("db", {"c1-s1", "c1-s2"})};
  f.desired.servers = {dedicated(server("db-01", "db", 2)), server("db-02", "db", 2), server("db-03", "db", 2)};
  const Plan p = f.plan();
  const std::string ded = bladeOf(p, "db-01");
  ASSERT_FALSE(ded.empty());
  EXPECT_NE(bladeOf(p, "db-02"), ded);
  EXPECT_NE(bladeOf(p, "db-03"), ded);
  EXPECT_TRUE(p.unplaceable.empty());
}

TEST(Placement, DedicatedServerNeedsAnEmptyBlade) {
  Fixture f;
  f.observed.blades = {blade("c1-s1", 16)};
  f.desired.pools = {pool("db", {"c1-s1"})};
  f.desired.servers = {server("small", "db", 1)};
  f.current = f.plan().next;
  f.desired.servers.push_back(dedicated(server("db-01", "db", 2, 4_GiB)));
  const Plan p = f.plan();
  EXPECT_EQ(bladeOf(p, "small"), "c1-s1");
  EXPECT_EQ(unplaceable(p, "db-01")->reason, "pool db: every blade is held by a dedicated server or busy");
}

TEST(Placement, OnlyUsesBladesThatCanRunThePoolsHypervisor) {
  Fixture f;
  Blade xen = blade("c1-s1");
  xen.hypervisors = HypervisorSet::of(Hypervisor::Xen);
  f.observed.blades = {xen};
  f.desired.pools = {pool("web", {"c1-s1"})};
  f.desired.servers = {server("web-01", "web")};
  const Plan p = f.plan();
  EXPECT_EQ(unplaceable(p, "web-01")->reason, "pool web: no blade can run kvm");
}

TEST(Placement, OnlyHealthyBladesTakeNewServers) {
  Fixture f;
  f.observed.blades = {blade("c1-s1", 16, 64_GiB, BladeState::Maintenance),
                       blade("c1-s2", 16, 64_GiB, BladeState::Suspect),
                       blade("c1-s3", 16, 64_GiB, BladeState::Discovered)};
  f.desired.pools = {pool("web", {"c1-s1", "c1-s2", "c1-s3"})};
  f.desired.servers = {server("web-01", "web")};
  const Plan p = f.plan();
  EXPECT_EQ(unplaceable(p, "web-01")->reason,
            "pool web: no blade takes servers (1 discovered, 1 suspect, 1 maintenance)");
}

TEST(Placement, ReportsAnUnknownPool) {
  Fixture f;
  f.desired.servers = {server("web-01", "web")};
  EXPECT_EQ(unplaceable(f.plan(), "web-01")->reason, "pool 'web' unknown");
}

TEST(Placement, ReportsAPoolWithoutBlades) {
  Fixture f;
  f.desired.pools = {pool("web")};
  f.desired.servers = {server("web-01", "web")};
  EXPECT_EQ(unplaceable(f.plan(), "web-01")->reason, "pool web: pool has no blades");
}

TEST(Placement, KeepsSparesFree) {
  Fixture f;
  f.observed.blades = {blade("c1-s1", 4), blade("c1-s2", 4), blade("c1-s3", 4)};
  f.desired.pools = {withSpares(pool("web", {"c1-s1", "c1-s2", "c1-s3"}), 1)};
  f.desired.servers = {server("a", "web", 4), server("b", "web", 4), server("c", "web", 4)};
  const Plan p = f.plan();
  // The last empty blade in inventory order is the spare; nothing lands there.
  EXPECT_EQ(assignment(p, "c1-s3").role, BladeRole::Spare);
  for (auto s : {"a", "b", "c"}) EXPECT_NE(bladeOf(p, s), "c1-s3") << s;
  ASSERT_NE(unplaceable(p, "c"), nullptr);
  EXPECT_EQ(unplaceable(p, "c")->reason, "pool web: no blade with 4 free cores (1 spare blade kept free)");
}

TEST(Placement, PrefersBladesAlreadyEmptyAsSpares) {
  Fixture f;
  f.observed.blades = {blade("c1-s1", 8), blade("c1-s2", 8), blade("c1-s3", 8)};
  f.desired.pools = {withSpares(pool("web", {"c1-s1", "c1-s2", "c1-s3"}), 1)};
  f.desired.servers = {server("a", "web", 2)};
  f.current.bindings = {{"a", "c1-s3"}};
  const Plan p = f.plan();
  EXPECT_EQ(bladeOf(p, "a"), "c1-s3");                       // not moved to make room
  EXPECT_EQ(assignment(p, "c1-s2").role, BladeRole::Spare);  // the last *empty* blade
  EXPECT_EQ(assignment(p, "c1-s3").role, BladeRole::Member);
}

TEST(Placement, ReplanningDoesNotShuffle) {
  Fixture f;
  f.observed.blades = {blade("c1-s1", 8), blade("c1-s2", 8), blade("c1-s3", 8), blade("c1-s4", 8)};
  f.desired.pools = {withSpares(pool("web", {"c1-s1", "c1-s2", "c1-s3", "c1-s4"}), 1)};
  for (int i = 0; i < 8; ++i)
    f.desired.servers.push_back(
        antiAffinity(server("web-" + std::to_string(i), "web", 1 + i % 3), i % 2 ? "odd" : "even"));
  const Plan first = f.apply();
  const Plan second = f.plan();
  EXPECT_EQ(second.next.bindings, first.next.bindings);
  EXPECT_TRUE(second.steps.empty());
  for (const auto& a : first.blades) EXPECT_EQ(assignment(second, a.blade).role, a.role) << a.blade;
}

TEST(Placement, NewServersGetDefineThenStart) {
  Fixture f;
  f.observed.blades = {blade("c1-s1")};
  f.desired.pools = {pool("web", {"c1-s1"})};
  f.desired.servers = {server("web-01", "web")};
  const Plan p = f.plan();
  ASSERT_EQ(p.steps.size(), 2u);
  EXPECT_EQ(stepsFor(p.steps, "web-01"), (std::vector<std::string>{"define@c1-s1", "start@c1-s1"}));
  EXPECT_EQ(p.steps[1].after, (std::vector<std::size_t>{0}));
  EXPECT_EQ(p.steps[0].hypervisor, Hypervisor::Kvm);
}

TEST(Placement, PreparesABladeWhosePersonalityDiffers) {
  Fixture f;
  f.observed.blades = {runningNothing(blade("c1-s1"))};
  f.desired.pools = {pool("web", {"c1-s1"})};
  f.desired.servers = {server("a", "web"), server("b", "web")};
  const Plan p = f.plan();
  const std::size_t prep = indexOf(p.steps, StepKind::PrepareHypervisor, "c1-s1");
  ASSERT_LT(prep, p.steps.size());
  EXPECT_EQ(p.steps[prep].hypervisor, Hypervisor::Kvm);
  std::size_t prepares = 0;
  for (const auto& s : p.steps) {
    prepares += s.kind == StepKind::PrepareHypervisor;
    if (s.kind == StepKind::Define) {
      EXPECT_EQ(s.after, (std::vector<std::size_t>{prep}));
    }
  }
  EXPECT_EQ(prepares, 1u);  // once per blade
}

TEST(Placement, PowerOffServersHoldNoBlade) {
  Fixture f;
  f.observed.blades = {blade("c1-s1")};
  f.desired.pools = {pool("web", {"c1-s1"})};
  f.desired.servers = {poweredOff(server("idle", "web"))};
  const Plan p = f.plan();
  EXPECT_TRUE(p.next.bindings.empty());
  EXPECT_TRUE(p.unplaceable.empty());
  EXPECT_TRUE(p.steps.empty());
}

TEST(Placement, PoweringOffABoundServerStopsItAndKeepsItsDefinition) {
  // What loomd always did (`server stop` leaves the domain "shut off"); the plan says so.
  Fixture f;
  f.observed.blades = {blade("c1-s1")};
  f.desired.pools = {pool("web", {"c1-s1"})};
  f.desired.servers = {poweredOff(server("web-01", "web"))};
  f.current.bindings = {{"web-01", "c1-s1"}};
  const Plan p = f.plan();
  EXPECT_TRUE(p.next.bindings.empty());
  EXPECT_EQ(stepsFor(p.steps, "web-01"), (std::vector<std::string>{"stop@c1-s1"}));
}

TEST(Placement, ServersNoLongerDeclaredAreStoppedAndUndefined) {
  Fixture f;
  f.observed.blades = {blade("c1-s1")};
  f.desired.pools = {pool("web", {"c1-s1"})};
  f.current.bindings = {{"old", "c1-s1"}};
  const Plan p = f.plan();
  EXPECT_TRUE(p.next.bindings.empty());
  EXPECT_EQ(stepsFor(p.steps, "old"), (std::vector<std::string>{"stop@c1-s1", "undefine@c1-s1"}));
}

TEST(Placement, KeepsServersOnHealthyBladesEvenWhenTheyWouldFitBetterElsewhere) {
  Fixture f;
  f.observed.blades = {blade("c1-s1", 16), blade("c1-s2", 16)};
  f.desired.pools = {pool("web", {"c1-s1", "c1-s2"})};
  f.desired.servers = {server("a", "web", 2), server("b", "web", 2)};
  f.current.bindings = {{"a", "c1-s1"}, {"b", "c1-s2"}};  // best fit would pack them
  const Plan p = f.plan();
  EXPECT_EQ(bladeOf(p, "a"), "c1-s1");
  EXPECT_EQ(bladeOf(p, "b"), "c1-s2");
  EXPECT_TRUE(p.steps.empty());
}

TEST(Placement, BestFitPacksBusyBladesBeforeOpeningEmptyOnes) {
  Fixture f;
  f.observed.blades = {blade("c1-s1", 16), blade("c1-s2", 16)};
  f.desired.pools = {pool("web", {"c1-s1", "c1-s2"})};
  f.desired.servers = {server("a", "web", 2), server("b", "web", 2)};
  f.current.bindings = {{"a", "c1-s2"}};
  const Plan p = f.plan();
  EXPECT_EQ(bladeOf(p, "b"), "c1-s2");
}

TEST(Placement, MovesServersOffBladesThatLeftTheirPool) {
  Fixture f;
  f.observed.blades = {blade("c1-s1"), blade("c1-s2")};
  f.desired.pools = {pool("web", {"c1-s2"}), pool("db", {"c1-s1"})};
  f.desired.servers = {server("web-01", "web")};
  f.current.bindings = {{"web-01", "c1-s1"}};
  const Plan p = f.plan();
  EXPECT_EQ(bladeOf(p, "web-01"), "c1-s2");
  EXPECT_EQ(stepsFor(p.steps, "web-01"),
            (std::vector<std::string>{"stop@c1-s1", "undefine@c1-s1", "define@c1-s2", "start@c1-s2"}));
}

TEST(Placement, PlacementsListEveryBoundServerAndWhereItCameFrom) {
  Fixture f;
  f.observed.blades = {blade("c1-s1"), blade("c1-s2", 16, 64_GiB, BladeState::Maintenance)};
  f.desired.pools = {pool("web", {"c1-s1", "c1-s2"})};
  f.desired.servers = {server("kept", "web"), server("moved", "web"), server("new", "web")};
  f.current.bindings = {{"kept", "c1-s1"}, {"moved", "c1-s2"}};
  const Plan p = f.plan();
  ASSERT_EQ(p.placements.size(), 3u);
  EXPECT_EQ(p.placements[0].from, "");
  EXPECT_EQ(p.placements[1].server, "moved");
  EXPECT_EQ(p.placements[1].from, "c1-s2");
  EXPECT_EQ(p.placements[1].blade, "c1-s1");
  EXPECT_EQ(p.placements[2].from, "");
}

TEST(Placement, SparePoolsHoldNoServers) {
  Fixture f;
  f.observed.blades = {blade("c2-s7")};
  f.desired.pools = {sparePool("global-spares", {"c2-s7"})};
  f.desired.servers = {server("x", "global-spares")};
  EXPECT_EQ(unplaceable(f.plan(), "x")->reason,
            "pool global-spares: a spare pool holds no servers, it only lends blades");
}

}  // namespace
}  // namespace loom::pool

namespace loom::pool {
namespace {
using namespace loom::pool::testing;

// Property check on a generated fabric: whatever the planner decides, no blade is
// overcommitted, no anti-affinity group shares a blade, spares hold nothing, and every
// server is either bound or listed unplaceable — also after a blade fails.
TEST(Placement, GeneratedFabricRespectsEveryHardRule) {
  Fixture f;
  unsigned seed = 12345;
  auto next = [&] {
    seed = seed * 1103515245u + 12345u;
    return (seed >> 16) & 0x7fff;
  };
  std::vector<std::string> names;
  for (int i = 0; i < 40; ++i) {
    f.observed.blades.push_back(blade("c1-s" + std::to_string(i), 8 + 8 * (next() % 3), 32_GiB));
    names.push_back(f.observed.blades.back().name);
  }
  f.desired.pools = {withFailover(withSpares(pool("web", names), 3), FailoverPolicy::Pack)};
  for (int i = 0; i < 150; ++i) {
    Server s = server("s" + std::to_string(i), "web", 1 + next() % 6, (1 + next() % 6) * 1_GiB);
    s.priority = static_cast<int>(next() % 4);
    if (next() % 2) s.antiAffinity = "g" + std::to_string(next() % 12);
    if (next() % 40 == 0) s.dedicated = true;
    f.desired.servers.push_back(s);
  }
  auto check = [&](const Plan& p) {
    std::map<std::string, std::pair<std::int64_t, std::int64_t>> used;
    std::map<std::string, std::set<std::string>> groups;
    std::map<std::string, int> count, dedicatedOn;
    for (const auto& s : f.desired.servers) {
      const std::string b = bladeOf(p, s.name);
      if (b.empty()) {
        EXPECT_NE(unplaceable(p, s.name), nullptr) << s.name;
        continue;
      }
      used[b].first += s.vcpus;
      used[b].second += static_cast<std::int64_t>(s.memory);
      ++count[b];
      dedicatedOn[b] += s.dedicated;
      if (!s.antiAffinity.empty()) {
        EXPECT_TRUE(groups[b].insert(s.antiAffinity).second) << s.name << " on " << b;
      }
    }
    for (const auto& bl : f.observed.blades) {
      EXPECT_LE(used[bl.name].first, static_cast<std::int64_t>(bl.cores)) << bl.name;
      EXPECT_LE(used[bl.name].second, static_cast<std::int64_t>(bl.memory)) << bl.name;
      if (dedicatedOn[bl.name]) {
        EXPECT_EQ(count[bl.name], 1) << bl.name;
      }
      if (assignment(p, bl.name).role == BladeRole::Spare) {
        EXPECT_EQ(count[bl.name], 0) << bl.name;
      }
      if (bl.state == BladeState::Fenced) {
        EXPECT_EQ(count[bl.name], 0) << bl.name;
      }
    }
  };
  const Plan first = f.apply();
  check(first);
  f.setState(bladeOf(first, "s0").empty() ? "c1-s0" : bladeOf(first, "s0"), BladeState::Fenced);
  check(f.plan());
}

}  // namespace
}  // namespace loom::pool
