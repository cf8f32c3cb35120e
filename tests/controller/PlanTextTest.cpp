// The plan as the API shows it (apply, delete and their dry runs) is written as text
// (controller/Replanner.h, planText): the same JSON the nlohmann tree used to make, every
// field of every kind of entry.
#include <gtest/gtest.h>

#include "controller/Replanner.h"

namespace loom::controller {
namespace {

using protocol::Json;

TEST(PlanText, WritesEveryFieldOfThePlanAsJson) {
  pool::Plan p;
  p.placements = {{"web-0", "c1-s1", ""}, {"web-1", "c1-s2", "c1-s3"}};
  p.unplaceable = {{"db-0", "pool db: no blade with 8 free cores \"quoted\""}};
  pool::Step prepare;
  prepare.kind = pool::StepKind::PrepareHypervisor;
  prepare.blade = "c1-s2";
  prepare.hypervisor = pool::Hypervisor::Xen;
  pool::Step define;
  define.kind = pool::StepKind::Define;
  define.blade = "c1-s2";
  define.server = "web-1";
  define.after = {0};
  pool::Step start = define;
  start.kind = pool::StepKind::Start;
  start.after = {0, 1};
  p.steps = {prepare, define, start};
  p.warnings = {"a warning with a newline\nin it"};

  const Json got = Json::parse(planText(p));
  const Json want = Json::parse(R"({
    "placements": [{"blade": "c1-s1", "server": "web-0"}, {"blade": "c1-s2", "from": "c1-s3", "server": "web-1"}],
    "steps": [{"after": [], "blade": "c1-s2", "hypervisor": "xen", "kind": "prepare-hypervisor"},
              {"after": [0], "blade": "c1-s2", "kind": "define", "server": "web-1"},
              {"after": [0, 1], "blade": "c1-s2", "kind": "start", "server": "web-1"}],
    "unplaceable": [{"reason": "pool db: no blade with 8 free cores \"quoted\"", "server": "db-0"}],
    "warnings": ["a warning with a newline\nin it"]})");
  EXPECT_EQ(got, want) << got.dump(2);
  EXPECT_EQ(Json::parse(planText(pool::Plan{})),
            Json::parse(R"({"placements": [], "steps": [], "unplaceable": [], "warnings": []})"));
}

}  // namespace
}  // namespace loom::controller
