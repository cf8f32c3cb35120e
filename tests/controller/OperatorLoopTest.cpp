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
  EXPECT_TRUE(Json::parse(retired.body)["pool"].is_null()) << "a retired blade serves no pool: " << retired.body;
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

std::size_t countEvents(Harness& h, const std::string& part) {
  std::size_t n = 0;
  for (auto& e : Json::parse(h.api("GET", "/v1/events", "", {{"limit", "10000"}}).body))
    if (e["message"].get<std::string>().find(part) != std::string::npos) ++n;
  return n;
}

// Every move is an event: off a drained blade, back home by failback; an operator's move
// is said once (by the move itself, not again by the plan that carries it out).
TEST(OperatorLoop, EveryMoveIsAnEvent) {
  FailoverFixture f("move-events.db", {}, failback(pool::FailbackPolicy::Auto));
  Harness& h = f.h;
  h.registerBlade("b4");  // room for a drained blade's server besides the spare kept free
  h.seq["b4"] = 0;
  h.run(1000);
  ASSERT_EQ(h.api("POST", "/v1/blades/" + f.victim + "/drain").status, 200);
  h.run(2000);
  const std::string to = h.server("web-0")["blade"];
  ASSERT_NE(to, f.victim);
  EXPECT_TRUE(h.hasEvent("moved: web-0 from drained blade " + f.victim + " to " + to)) << "drain";

  // Failback: web-0 goes home once its home blade is back after a failover.
  ASSERT_EQ(h.api("POST", "/v1/blades/" + f.victim + "/undrain").status, 200);
  h.run(2000);
  ASSERT_EQ(h.api("POST", "/v1/servers/web-0/move", Json{{"to", f.victim}}.dump()).status, 200);
  h.run(2000);
  ASSERT_EQ(h.server("web-0")["blade"], f.victim);
  EXPECT_EQ(countEvents(h, "moved: web-0 from blade " + to), 0u) << "the operator's move is not said twice";
  EXPECT_TRUE(h.hasEvent("server moved by the operator from " + to + " to " + f.victim));
  h.run(7000, {f.victim});
  ASSERT_EQ(h.blade(f.victim)["state"], "fenced");
  const std::string spare = h.server("web-0")["blade"];
  ASSERT_NE(spare, f.victim);
  h.registerBlade(f.victim);
  h.run(3000);
  ASSERT_EQ(h.server("web-0")["blade"], f.victim);
  EXPECT_TRUE(h.hasEvent("failback: web-0 from " + spare + " back to its home blade " + f.victim));
}

// Deleting a pool that servers still use: one line per server naming what it refers
// to, and no "did you mean" for a name deleted on purpose.
TEST(OperatorLoop, DeletingAPoolInUseNamesEachServerThatUsesIt) {
  Harness h("delete-in-use.db");
  ASSERT_EQ(h.api("POST", "/v1/apply", yaml(web())).status, 200);
  auto r = h.api("POST", "/v1/delete", "kind: Pool\nname: web\n");
  ASSERT_EQ(r.status, 409) << r.body;
  const Json body = Json::parse(r.body);
  EXPECT_EQ(body["error"], "still referenced: Server 'web-0': pool: refers to Pool 'web' (and 1 more)") << r.body;
  ASSERT_EQ(body["diagnostics"].size(), 2u) << r.body;
  EXPECT_EQ(body["diagnostics"][1], "Server 'web-1': pool: refers to Pool 'web'");
  EXPECT_EQ(r.body.find("did you mean"), std::string::npos) << r.body;
}

}  // namespace
}  // namespace loom::controller::testing

namespace loom::controller::testing {
namespace {

// An apply (and its dry run) says when a pool's spares promise would not be kept after
// it: pool::capacity on the placement the change leads to.
TEST(OperatorLoop, AnApplyThatBreaksASparesPromiseSaysSo) {
  FailoverFixture f("spares-warning.db");  // three blades, two servers apart, one spare
  Harness& h = f.h;
  auto kept = h.api("POST", "/v1/apply", yaml(web(2, spares(1))), {{"dry_run", "1"}});
  ASSERT_EQ(kept.status, 200) << kept.body;
  EXPECT_TRUE(Json::parse(kept.body)["capacity_warnings"].empty()) << kept.body;

  // Two spares of three blades, with two servers kept apart: the promise cannot be kept.
  auto broken = h.api("POST", "/v1/apply", yaml(web(2, spares(2))), {{"dry_run", "1"}});
  ASSERT_EQ(broken.status, 200) << broken.body;
  const Json warnings = Json::parse(broken.body)["capacity_warnings"];
  ASSERT_EQ(warnings.size(), 1u) << broken.body;
  EXPECT_EQ(warnings[0].get<std::string>().rfind("pool web: spares: 2 promised", 0), 0u) << warnings[0];
  // Applied, the capacity report says it (loomctl reads it after an apply from a script).
  ASSERT_EQ(h.api("POST", "/v1/apply", yaml(web(2, spares(2)))).status, 200);
  bool unmet = false;
  for (const auto& c : Json::parse(h.api("GET", "/v1/capacity").body))
    if (c["pool"] == "web") unmet = !c["spares_promise_met"].get<bool>();
  EXPECT_TRUE(unmet);
}

}  // namespace
}  // namespace loom::controller::testing

namespace loom::controller::testing {
namespace {

// `pool show` and `server show` have what was declared: a pool's rules (named blades,
// match, failback, identity pool), a server's NICs with their MACs and its disks.
TEST(OperatorLoop, PoolAndServerViewsCarryTheirDeclaredRules) {
  FailoverFixture f("declared-rules.db", {}, failback(pool::FailbackPolicy::Auto));
  Harness& h = f.h;
  const Json pool = Json::parse(h.api("GET", "/v1/pools/web").body);
  EXPECT_EQ(pool["failback"], "auto") << pool.dump();
  ASSERT_TRUE(pool.contains("blade_names") && pool.contains("match") && pool.contains("identity_pool")) << pool.dump();
  const Json server = h.server("web-0");
  ASSERT_TRUE(server.contains("nics") && server.contains("disks")) << server.dump();
  ASSERT_EQ(server["nics"].size(), server["macs"].size()) << server.dump();
  for (std::size_t i = 0; i < server["nics"].size(); ++i) {
    EXPECT_FALSE(server["nics"][i]["network"].get<std::string>().empty());
    EXPECT_EQ(server["nics"][i]["mac"], server["macs"][i]) << "the MAC it was handed out";
  }
}

}  // namespace
}  // namespace loom::controller::testing
