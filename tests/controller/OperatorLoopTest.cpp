// What an operator sees after acting (issue 18, "the operator's loop"): a view that says
// what is true after the action, and an event for every move.
#include <gtest/gtest.h>

#include "tests/controller/FailoverFixture.h"

namespace loom::controller::testing {
namespace {

// A dead blade retired stays offline: retiring it does not make it heard.
TEST(OperatorLoop, AFencedBladeRetiredStaysOffline) {
  FailoverFixture f("retire-fenced.db");
  Harness& h = f.h;
  h.run(8000, {f.victim});
  ASSERT_EQ(h.blade(f.victim)["state"], "fenced");
  ASSERT_NE(h.server("web-0")["blade"], f.victim) << "its server failed over";
  auto retired = h.api("POST", "/v1/blades/" + f.victim + "/retire");
  ASSERT_EQ(retired.status, 200) << retired.body;
  EXPECT_EQ(Json::parse(retired.body)["state"], "retired");
  EXPECT_EQ(Json::parse(retired.body)["online"], false) << retired.body;
  h.run(2000, {f.victim});
  EXPECT_EQ(h.blade(f.victim)["online"], false);

  // A live blade retired is online while it is heard.
  const std::string idle = "b4";
  h.registerBlade(idle);
  h.seq[idle] = 0;
  h.run(2000, {f.victim});
  ASSERT_TRUE(h.blade(idle)["servers"].empty());
  ASSERT_EQ(h.api("POST", "/v1/blades/" + idle + "/retire").status, 200);
  h.run(2000, {f.victim});
  EXPECT_EQ(h.blade(idle)["online"], true);
  h.run(4000, {f.victim, idle});
  EXPECT_EQ(h.blade(idle)["online"], false) << "silent past suspectMs";
}

}  // namespace
}  // namespace loom::controller::testing
