// What `server start|stop|move --wait` and `apply` count as "the fabric got there"
// (tools/loomctl/Waiting.h), judged on the controller's server objects.
#include <gtest/gtest.h>

#include "tools/loomctl/Waiting.h"

namespace loom::loomctl {
namespace {

Json server(const std::string& state, const std::string& blade, const std::string& power = "on",
            const std::string& reason = "") {
  Json s{{"name", "web-0"}, {"state", state}, {"blade", blade.empty() ? Json() : Json(blade)}, {"power", power}};
  if (!reason.empty()) s["reason"] = reason;
  return s;
}

TEST(ServerWait, AStartIsDoneOnlyOnceTheServerRuns) {
  const ServerGoal start{"web-0", true, ""};
  EXPECT_EQ(judge(server("pending", ""), start).progress, Progress::Waiting);
  EXPECT_EQ(judge(server("starting", "c1-s1"), start).progress, Progress::Waiting);
  EXPECT_EQ(judge(server("starting", "c1-s1"), start).why, "starting on c1-s1");
  EXPECT_EQ(judge(server("running", "c1-s1"), start).progress, Progress::Reached);
}

TEST(ServerWait, AStartThatCannotPlaceTheServerFailsWithTheReason) {
  const Verdict v =
      judge(server("unplaceable", "", "on", "no blade with 16GiB free memory"), ServerGoal{"web-0", true, ""});
  EXPECT_EQ(v.progress, Progress::Failed);
  EXPECT_EQ(v.why, "unplaceable: no blade with 16GiB free memory");
  EXPECT_EQ(judge(server("failed", "c1-s1", "on", "define: no such image"), ServerGoal{"web-0", true, ""}).progress,
            Progress::Failed);
}

TEST(ServerWait, AStopIsDoneOnceStoppedAndAStartMeanwhileEndsTheWait) {
  const ServerGoal stop{"web-0", false, ""};
  EXPECT_EQ(judge(server("stopping", "c1-s1", "off"), stop).progress, Progress::Waiting);
  EXPECT_EQ(judge(server("stopped", "c1-s1", "off"), stop).progress, Progress::Reached);
  // Someone started it again: waiting for it to stop would wait for nothing.
  const Verdict v = judge(server("running", "c1-s1", "on"), stop);
  EXPECT_EQ(v.progress, Progress::Failed);
  EXPECT_NE(v.why.find("was started meanwhile"), std::string::npos) << v.why;
}

TEST(ServerWait, AMoveIsDoneOnlyWhenItRunsOnTheTarget) {
  const ServerGoal move{"web-0", true, "c1-s2"};
  EXPECT_EQ(judge(server("running", "c1-s1"), move).progress, Progress::Waiting);
  EXPECT_EQ(judge(server("moving", "c1-s2"), move).progress, Progress::Waiting);
  EXPECT_EQ(judge(server("running", "c1-s2"), move).progress, Progress::Reached);
}

TEST(ServerWait, AnApplyWaitsForWhatEachServerIsDeclaredToBe) {
  const ServerGoal apply{"web-0", std::nullopt, ""};
  EXPECT_EQ(judge(server("stopped", "", "off"), apply).progress, Progress::Reached);
  EXPECT_EQ(judge(server("stopped", "c1-s1", "on"), apply).progress, Progress::Waiting);
  EXPECT_EQ(judge(server("running", "c1-s1", "on"), apply).progress, Progress::Reached);
}

TEST(ServerWait, AServerNoLongerDeclaredCannotGetThere) {
  const Verdict v = judge(Json(), ServerGoal{"web-0", true, ""});
  EXPECT_EQ(v.progress, Progress::Failed);
  EXPECT_EQ(v.why, "is not declared any more");
}

}  // namespace
}  // namespace loom::loomctl
