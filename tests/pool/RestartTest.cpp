// A changed server takes effect (docs/SERVERS.md, "What a change to a server does"): the
// fields an apply changes are named with their old and new values, and a server whose
// definition changed while it runs is stopped, defined anew and started where it is —
// one server of an anti-affinity group at a time, higher priority first — or moved when
// it no longer fits there.
#include <gtest/gtest.h>

#include "pool/ServerChange.h"
#include "tests/pool/PoolBuilders.h"

namespace loom::pool {
namespace {
using namespace loom::pool::testing;
using Names = std::vector<std::string>;

TEST(ServerChange, NamesEachChangedFieldWithOldAndNewValuesAndWhatItTakes) {
  Server before = server("big", "web", 4, 28_GiB);
  Server after = before;
  after.memory = 20_GiB;
  after.priority = 50;
  after.nics.push_back(Nic{"back", ""});
  const auto changes = diffServer(before, after);
  ASSERT_EQ(changes.size(), 3u);
  EXPECT_EQ(changes[0].field, "memory");
  EXPECT_EQ(changes[0].from, "28GiB");
  EXPECT_EQ(changes[0].to, "20GiB");
  EXPECT_EQ(changes[0].effect, ChangeEffect::Restart);
  EXPECT_EQ(changes[1].field, "nics");
  EXPECT_EQ(changes[1].to, "front, back");
  EXPECT_EQ(changes[1].effect, ChangeEffect::Restart);
  EXPECT_EQ(changes[2].field, "priority");
  EXPECT_EQ(changes[2].effect, ChangeEffect::Live);
  EXPECT_EQ(restartReason(changes), "memory 28GiB → 20GiB, nics front → front, back");
  EXPECT_TRUE(diffServer(before, before).empty());
  Server moved = before;
  moved.pool = "db";
  EXPECT_EQ(diffServer(before, moved).at(0).effect, ChangeEffect::Move);
  EXPECT_EQ(restartReason(diffServer(before, moved)), "");
}

Fixture running(std::vector<Server> servers, std::vector<std::pair<std::string, std::string>> where) {
  Fixture f;
  f.observed.blades = {reporting(blade("c1-s1")), reporting(blade("c1-s2")), reporting(blade("c1-s3"))};
  f.desired.pools = {pool("web", {"c1-s1", "c1-s2", "c1-s3"})};
  f.desired.servers = std::move(servers);
  for (const auto& [s, b] : where) {
    f.current.bindings[s] = b;
    f.bladeNamed(b).domains->push_back(testing::running(s));
  }
  return f;
}

TEST(Restart, ARunningServerWithAChangedDefinitionIsStoppedRedefinedAndStartedWhereItRuns) {
  Fixture f = running({server("big", "web", 4, 20_GiB)}, {{"big", "c1-s1"}});
  // Without a pending restart, a running server is left alone: the old behaviour.
  EXPECT_TRUE(f.plan().steps.empty());
  f.current.restart = {{"big", "memory 28GiB → 20GiB"}};
  const Plan p = f.plan();
  EXPECT_EQ(stepNames(p.steps), (Names{"stop:big@c1-s1", "define:big@c1-s1", "start:big@c1-s1"}));
  EXPECT_EQ(p.steps[1].after, (std::vector<std::size_t>{0}));
  EXPECT_EQ(p.steps[2].after, (std::vector<std::size_t>{1}));
  EXPECT_EQ(bladeOf(p, "big"), "c1-s1");
  // Still pending in the placement: the controller ends it when the blade defined it.
  EXPECT_EQ(p.next.restart.at("big"), "memory 28GiB → 20GiB");
}

TEST(Restart, AStoppedServerIsOnlyRedefinedAndAMovedOneForgetsIt) {
  Fixture f = running({server("big", "web")}, {});
  f.current.bindings = {{"big", "c1-s1"}};
  f.bladeNamed("c1-s1").domains = {{shutOff("big")}};
  f.current.restart = {{"big", "vcpus 2 → 4"}};
  EXPECT_EQ(stepNames(f.plan().steps), (Names{"define:big@c1-s1", "start:big@c1-s1"}));
  // Drained: it moves, and the new blade defines it afresh; nothing is pending any more.
  f.bladeNamed("c1-s1").domains = {{testing::running("big")}};
  f.setState("c1-s1", BladeState::Maintenance);
  const Plan p = f.plan();
  EXPECT_EQ(stepsFor(p.steps, "big"), (Names{"stop@c1-s1", "undefine@c1-s1", "define@c1-s2", "start@c1-s2"}));
  EXPECT_TRUE(p.next.restart.empty());
}

TEST(Restart, OneServerOfAnAntiAffinityGroupAtATimeHigherPriorityFirst) {
  Fixture f = running({antiAffinity(priority(server("web-0", "web"), 10), "web"),
                       antiAffinity(priority(server("web-1", "web"), 90), "web"),
                       antiAffinity(priority(server("web-2", "web"), 50), "web")},
                      {{"web-0", "c1-s1"}, {"web-1", "c1-s2"}, {"web-2", "c1-s3"}});
  f.current.restart = {
      {"web-0", "memory 4GiB → 8GiB"}, {"web-1", "memory 4GiB → 8GiB"}, {"web-2", "memory 4GiB → 8GiB"}};
  Plan p = f.plan();
  EXPECT_EQ(stepNames(p.steps), (Names{"stop:web-1@c1-s2", "define:web-1@c1-s2", "start:web-1@c1-s2"}));
  ASSERT_EQ(p.waiting.size(), 2u);
  EXPECT_NE(p.waiting[0].reason.find("waits for web-1 of anti-affinity group web"), std::string::npos)
      << p.waiting[0].reason;

  // web-1 stopped: the group is down one server, the others still wait.
  f.bladeNamed("c1-s2").domains = {{shutOff("web-1")}};
  p = f.plan();
  EXPECT_EQ(stepNames(p.steps), (Names{"define:web-1@c1-s2", "start:web-1@c1-s2"}));
  // Redefined (the controller ends its entry), but not running yet: still nobody else.
  f.current.restart.erase("web-1");
  p = f.plan();
  EXPECT_EQ(stepNames(p.steps), (Names{"define:web-1@c1-s2", "start:web-1@c1-s2"}));
  ASSERT_EQ(p.waiting.size(), 2u);
  EXPECT_NE(p.waiting[0].reason.find("waits for web-1 of anti-affinity group web to run again"), std::string::npos)
      << p.waiting[0].reason;
  // web-1 runs again: next is web-2 (priority 50), then web-0.
  f.bladeNamed("c1-s2").domains = {{testing::running("web-1")}};
  p = f.plan();
  EXPECT_EQ(stepNames(p.steps), (Names{"stop:web-2@c1-s3", "define:web-2@c1-s3", "start:web-2@c1-s3"}));
}

TEST(Restart, ServersOutsideAGroupRestartTogetherInPriorityOrder) {
  Fixture f = running({priority(server("low", "web"), 1), priority(server("high", "web"), 100)},
                      {{"low", "c1-s1"}, {"high", "c1-s1"}});
  f.current.restart = {{"low", "vcpus 2 → 3"}, {"high", "vcpus 2 → 3"}};
  EXPECT_EQ(stepNames(f.plan().steps), (Names{"stop:high@c1-s1", "stop:low@c1-s1", "define:high@c1-s1",
                                              "start:high@c1-s1", "define:low@c1-s1", "start:low@c1-s1"}));
}

TEST(Restart, AServerThatNoLongerFitsItsBladeIsMovedAndDefinedAnewThere) {
  // c1-s1 has 64 GiB: big grew from 40 GiB to 48 GiB next to a 20 GiB neighbour.
  Fixture f = running({server("big", "web", 4, 48_GiB), server("other", "web", 2, 20_GiB)},
                      {{"big", "c1-s1"}, {"other", "c1-s1"}});
  f.current.restart = {{"big", "memory 40GiB → 48GiB"}};
  const Plan p = f.plan();
  EXPECT_NE(bladeOf(p, "big"), "c1-s1");
  EXPECT_EQ(stepsFor(p.steps, "big"),
            (Names{"stop@c1-s1", "undefine@c1-s1", "define@" + bladeOf(p, "big"), "start@" + bladeOf(p, "big")}));
  EXPECT_TRUE(stepsFor(p.steps, "other").empty());
  EXPECT_TRUE(p.next.restart.empty());
}

TEST(Restart, TheIncrementalPlannerGivesTheNextServerItsTurnWhenThePreviousRunsAgain) {
  Fixture f = running({antiAffinity(server("web-0", "web"), "web"), antiAffinity(server("web-1", "web"), "web")},
                      {{"web-0", "c1-s1"}, {"web-1", "c1-s2"}});
  f.current.restart = {{"web-0", "memory 4GiB → 8GiB"}, {"web-1", "memory 4GiB → 8GiB"}};
  Planner planner(f.desired, f.observed, f.current);
  Plan p = planner.plan(0);
  EXPECT_EQ(stepNames(p.steps), (Names{"stop:web-0@c1-s1", "define:web-0@c1-s1", "start:web-0@c1-s1"}));
  planner.observeDomain("c1-s1", "web-0", DomainState::Shutoff);
  PlanDelta d = planner.refresh(0);
  EXPECT_EQ(stepNames(d.steps), (Names{"define:web-0@c1-s1", "start:web-0@c1-s1"}));
  planner.redefined("web-0");
  d = planner.refresh(0);
  ASSERT_EQ(d.servers.size(), 1u);
  EXPECT_EQ(d.servers[0].server, "web-0");
  EXPECT_EQ(d.servers[0].restart, "");
  EXPECT_EQ(planner.state().restart.count("web-0"), 0u);
  planner.observeDomain("c1-s1", "web-0", DomainState::Running);
  d = planner.refresh(0);
  // web-1's blade is named, though nothing happened there: its turn came.
  EXPECT_EQ(stepNames(d.steps), (Names{"stop:web-1@c1-s2", "define:web-1@c1-s2", "start:web-1@c1-s2"}));
}

TEST(Restart, OfflineTheStepsAreAssumedToRunAndTheRestartEnds) {
  Fixture f;
  f.observed.blades = {blade("c1-s1")};  // no report: assumed to run what it is bound to
  f.desired.pools = {pool("web", {"c1-s1"})};
  f.desired.servers = {server("big", "web")};
  f.current.bindings = {{"big", "c1-s1"}};
  f.current.restart = {{"big", "memory 2GiB → 4GiB"}};
  Planner planner(f.desired, f.observed, f.current);
  EXPECT_EQ(stepNames(planner.plan(0).steps), (Names{"stop:big@c1-s1", "define:big@c1-s1", "start:big@c1-s1"}));
  EXPECT_TRUE(planner.state().restart.empty());
  EXPECT_TRUE(planner.refresh(0).steps.empty());
}

}  // namespace
}  // namespace loom::pool
