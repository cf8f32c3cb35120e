// The steps come from the placement against what blades report (pool/README.md, "Steps"):
// the rules loomd's reconciler used to apply by itself, now in the plan it executes.
#include <gtest/gtest.h>

#include "tests/pool/PoolBuilders.h"

namespace loom::pool {
namespace {
using namespace loom::pool::testing;
using Names = std::vector<std::string>;

Fixture twoBlades() {
  Fixture f;
  f.observed.blades = {reporting(blade("c1-s1")), reporting(blade("c1-s2"))};
  f.desired.pools = {pool("web", {"c1-s1", "c1-s2"})};
  f.desired.servers = {server("web-01", "web")};
  return f;
}

TEST(Steps, ABoundServerThatDoesNotRunWhereItIsBoundIsDefinedAndStartedThere) {
  // Its agent restarted and lost it: no binding changes, the steps still follow.
  Fixture f = twoBlades();
  f.current.bindings = {{"web-01", "c1-s1"}};
  f.bladeNamed("c1-s1").domains = {{shutOff("web-01")}};
  EXPECT_EQ(stepNames(f.plan().steps), (Names{"define:web-01@c1-s1", "start:web-01@c1-s1"}));
}

TEST(Steps, AServerReportedRunningWhereItIsBoundIsLeftAlone) {
  Fixture f = twoBlades();
  f.current.bindings = {{"web-01", "c1-s1"}};
  f.bladeNamed("c1-s1").domains = {{running("web-01")}};
  EXPECT_TRUE(f.plan().steps.empty());
}

TEST(Steps, AStartWaitsForTheStopOnTheBladeThatStillRunsIt) {
  Fixture f = twoBlades();
  f.current.bindings = {{"web-01", "c1-s2"}};  // an operator's move from c1-s1
  f.bladeNamed("c1-s1").domains = {{running("web-01")}};
  const Plan p = f.plan();
  EXPECT_EQ(stepNames(p.steps),
            (Names{"stop:web-01@c1-s1", "undefine:web-01@c1-s1", "define:web-01@c1-s2", "start:web-01@c1-s2"}));
  EXPECT_EQ(p.steps[1].after, (std::vector<std::size_t>{0}));
  EXPECT_EQ(p.steps[2].after, (std::vector<std::size_t>{0}));
  EXPECT_EQ(p.steps[3].after, (std::vector<std::size_t>{2}));
}

TEST(Steps, NothingStartsWhileASilentBladeReportsTheServerRunning) {
  Fixture f = twoBlades();
  f.current.bindings = {{"web-01", "c1-s2"}};
  f.bladeNamed("c1-s1") = unreachable(inState(reporting(blade("c1-s1"), {running("web-01")}), BladeState::Suspect));
  const Plan p = f.plan();
  EXPECT_TRUE(p.steps.empty()) << ::testing::PrintToString(stepNames(p.steps));
  ASSERT_EQ(p.waiting.size(), 1u);
  EXPECT_EQ(p.waiting[0].server, "web-01");
  EXPECT_NE(p.waiting[0].reason.find("runs on c1-s1 (suspect)"), std::string::npos) << p.waiting[0].reason;
  // Once it is fenced out of reach, what it ran is over: the start goes ahead.
  f.bladeNamed("c1-s1").state = BladeState::Fenced;
  EXPECT_EQ(stepNames(f.plan().steps), (Names{"define:web-01@c1-s2", "start:web-01@c1-s2"}));
}

TEST(Steps, DeletedServersAreStoppedAndUndefinedAndForeignDomainsLeftAlone) {
  Fixture f = twoBlades();
  f.desired.servers.clear();
  f.desired.deleted = {"gone"};
  f.bladeNamed("c1-s1").domains = {{running("gone"), running("not-ours")}};
  const Plan p = f.plan();
  EXPECT_EQ(stepNames(p.steps), (Names{"stop:gone@c1-s1", "undefine:gone@c1-s1"}));
  ASSERT_EQ(p.foreign.size(), 1u);
  EXPECT_EQ(p.foreign[0].blade, "c1-s1");
  EXPECT_EQ(p.foreign[0].domain, "not-ours");
}

TEST(Steps, AReturnedFencedBladeOnlyStops) {
  // Fenced, heard again still running web-01 (a broken agent); web-01 runs on c1-s2 now.
  Fixture f = twoBlades();
  f.current.bindings = {{"web-01", "c1-s2"}};
  f.desired.servers.push_back(server("web-02", "web"));
  f.bladeNamed("c1-s1") = inState(reporting(blade("c1-s1"), {running("web-01")}), BladeState::Fenced);
  f.bladeNamed("c1-s2").domains = {{running("web-01")}};
  const Plan p = f.plan();
  EXPECT_EQ(stepsFor(p.steps, "web-01"), (Names{"stop@c1-s1", "undefine@c1-s1"}));
  EXPECT_EQ(stepsFor(p.steps, "web-02"), (Names{"define@c1-s2", "start@c1-s2"})) << "nothing new on the fenced blade";
}

TEST(Steps, AnUnreachableBladeGetsNoSteps) {
  Fixture f = twoBlades();
  f.observed.blades = {unreachable(reporting(blade("c1-s1"))), unreachable(reporting(blade("c1-s2")))};
  const Plan p = f.plan();
  EXPECT_EQ(bladeOf(p, "web-01"), "c1-s1") << "it is placed all the same";
  EXPECT_TRUE(p.steps.empty());
}

TEST(Steps, StepsAreOrderedPreparesThenLeavingThenArriving) {
  Fixture f;
  f.observed.blades = {reporting(runningNothing(blade("c1-s1"))), reporting(blade("c1-s2"))};
  f.desired.pools = {pool("web", {"c1-s1", "c1-s2"})};
  f.desired.servers = {server("a", "web"), server("b", "web")};
  f.desired.deleted = {"old"};
  f.current.bindings = {{"a", "c1-s1"}, {"b", "c1-s1"}};
  f.bladeNamed("c1-s2").domains = {{running("old")}};
  const Plan p = f.plan();
  EXPECT_EQ(stepNames(p.steps), (Names{"prepare-hypervisor@c1-s1", "stop:old@c1-s2", "undefine:old@c1-s2",
                                       "define:a@c1-s1", "start:a@c1-s1", "define:b@c1-s1", "start:b@c1-s1"}));
  for (std::size_t i = 0; i < p.steps.size(); ++i)
    for (auto a : p.steps[i].after) EXPECT_LT(a, i) << "after names earlier steps only";
}

TEST(Steps, ObservationsMarkTheBladesWhoseStepsChange) {
  Fixture f = twoBlades();
  f.current.bindings = {{"web-01", "c1-s2"}};
  f.bladeNamed("c1-s1").domains = {{running("web-01")}};
  Planner planner(f.desired, f.observed, f.current);
  (void)planner.plan(0);
  // The stop on c1-s1 ran: its report frees the start on c1-s2.
  planner.observeDomain("c1-s1", "web-01", DomainState::Shutoff);
  const PlanDelta d = planner.refresh(1);
  EXPECT_EQ(d.stepBlades, (Names{"c1-s1", "c1-s2"}));
  EXPECT_EQ(stepNames(d.steps), (Names{"undefine:web-01@c1-s1", "define:web-01@c1-s2", "start:web-01@c1-s2"}));
  EXPECT_TRUE(d.steps[1].after.empty());
  // Then it started: nothing is left to do, and a refresh with nothing marked names nobody.
  planner.observeDomain("c1-s1", "web-01", std::nullopt);
  planner.observeDomain("c1-s2", "web-01", DomainState::Running);
  const PlanDelta done = planner.refresh(2);
  EXPECT_TRUE(done.steps.empty());
  EXPECT_EQ(done.stepBlades, (Names{"c1-s1", "c1-s2"}));
  EXPECT_TRUE(planner.refresh(3).stepBlades.empty());
}

TEST(Steps, ABladeThatBecomesUnreachableHoldsTheStartsWaitingForIt) {
  Fixture f = twoBlades();
  f.current.bindings = {{"web-01", "c1-s2"}};
  f.bladeNamed("c1-s1").domains = {{running("web-01")}};
  Planner planner(f.desired, f.observed, f.current);
  (void)planner.plan(0);
  planner.observeReachable("c1-s1", false);
  const PlanDelta d = planner.bladeStateChanged("c1-s1", BladeState::Suspect, 1);
  EXPECT_TRUE(d.steps.empty());
  EXPECT_EQ(d.stepBlades, (Names{"c1-s1", "c1-s2"}));
  ASSERT_EQ(d.waiting.size(), 1u);
}

}  // namespace
}  // namespace loom::pool
