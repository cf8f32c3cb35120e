// A changed server takes effect (docs/SERVERS.md, "What a change to a server does"): an
// apply that changes what a running server's domain holds names the fields, marks the
// server `restart_pending` with why, and its plan — the one `--dry-run` shows and the
// agents receive — stops, redefines and starts it where it runs, one server of an
// anti-affinity group at a time; the next once the previous runs again.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "controller/api/StandbyViews.h"
#include "tests/controller/ControllerBuilders.h"
#include "tests/controller/ControllerHarness.h"

namespace loom::controller {
namespace {

using namespace loom::controller::testing;
using Chains = std::map<std::string, std::vector<std::string>>;  // "server@blade" -> kinds in order

Chains planned(const ApiResponse& r) {
  Chains out;
  const Json body = Json::parse(r.body);
  for (const auto& s : body["plan"]["steps"])
    out[s.value("server", std::string()) + "@" + s["blade"].get<std::string>()].push_back(s["kind"]);
  return out;
}

// The plans sent since history[from], not answered.
Chains sentSince(const Harness& h, std::size_t from) {
  Chains out;
  for (std::size_t i = from; i < h.history.size(); ++i) {
    const auto& [blade, frame] = h.history[i];
    if (frame["type"] != "plan") continue;
    for (const auto& s : frame["steps"]) out[s.value("server", std::string()) + "@" + blade].push_back(s["kind"]);
  }
  return out;
}

// The agents answer what they were sent, one round, and heartbeat (no blade goes
// suspect); what that unlocks is sent, unanswered.
void answerOnce(Harness& h) {
  auto batch = std::move(h.sent);
  h.sent.clear();
  for (auto& [blade, f] : batch) {
    if (f["type"] != "plan") continue;
    for (auto& step : f["steps"])
      h.frame(blade, protocol::encode(protocol::StepResult{step["op"].get<std::uint64_t>(), true, ""}));
  }
  for (auto& [blade, n] : h.seq) h.frame(blade, protocol::encode(protocol::Heartbeat{++n, std::nullopt}));
  h.now += 200;
  h.controller->tick(h.now);
}

bool plansSent(const Harness& h) {
  return std::any_of(h.sent.begin(), h.sent.end(), [](const auto& f) { return f.second["type"] == "plan"; });
}

// Rounds of answerOnce until no plan is sent (bounded).
void settle(Harness& h) {
  for (int round = 0; round < 40; ++round) {
    answerOnce(h);
    if (!plansSent(h)) {
      answerOnce(h);
      if (!plansSent(h)) return;
    }
  }
  ADD_FAILURE() << "the fabric did not settle in 40 rounds";
}

TEST(Restart, AResizedRunningServerIsStoppedRedefinedAndStartedOneOfItsGroupAtATime) {
  Harness h("restart.db");
  for (const std::string b : {"b1", "b2", "b3"}) {
    h.registerBlade(b);
    h.seq[b] = 0;
  }
  pool::Declarations d = web(3);
  d.servers[2] = priority(d.servers[2], 100);  // web-2 goes first
  ASSERT_EQ(h.api("POST", "/v1/apply", yaml(d)).status, 200);
  settle(h);
  for (const std::string s : {"web-0", "web-1", "web-2"}) ASSERT_EQ(h.server(s)["state"], "running") << s;
  std::map<std::string, std::string> where;
  for (const std::string s : {"web-0", "web-1", "web-2"}) where[s] = h.server(s)["blade"];

  for (auto& s : d.servers) s.memory = 4_GiB;
  const std::string resized = yaml(d, Only::Servers);
  auto dry = h.api("POST", "/v1/apply", resized, {{"dry_run", "1"}});
  ASSERT_EQ(dry.status, 200) << dry.body;
  const Json dryBody = Json::parse(dry.body);
  const Json& fields = dryBody["diff"]["fields"]["Server/web-0"];
  ASSERT_EQ(fields.size(), 1u) << dry.body;
  EXPECT_EQ(fields[0]["field"], "memory");
  EXPECT_EQ(fields[0]["from"], "2GiB");
  EXPECT_EQ(fields[0]["to"], "4GiB");
  EXPECT_EQ(fields[0]["effect"], "restart");
  EXPECT_EQ(dryBody["diff"]["restarts"]["web-1"], "memory 2GiB → 4GiB");
  const Chains first{{"web-2@" + where["web-2"], {"stop", "define", "start"}}};
  EXPECT_EQ(planned(dry), first) << "one of the group, the highest priority first";
  EXPECT_FALSE(h.server("web-0").contains("restart_pending")) << "a dry run changes nothing";

  std::size_t mark = h.history.size();
  const auto applied = h.api("POST", "/v1/apply", resized);
  ASSERT_EQ(applied.status, 200) << applied.body;
  EXPECT_EQ(planned(applied), first);
  EXPECT_EQ(h.server("web-0")["restart_pending"], "memory 2GiB → 4GiB");
  EXPECT_EQ(h.server("web-0")["state"], "running") << "it still runs, with its old definition";

  // The agents carry out web-2's steps one at a time (one step per server at a time);
  // nobody else of the group gets a step until web-2 runs again.
  h.now += 100;
  h.controller->tick(h.now);
  auto restarted = [&] {
    const Json s = h.server("web-2");
    return s["state"] == "running" && !s.contains("restart_pending");
  };
  for (int round = 0; round < 10 && !restarted(); ++round) {
    if (round == 1) {
      EXPECT_EQ(h.server("web-2")["state"], "starting") << "stopped: its define is out";
      EXPECT_TRUE(h.server("web-2").contains("restart_pending")) << "until its define is answered";
    }
    answerOnce(h);
  }
  ASSERT_EQ(h.server("web-2")["state"], "running");
  EXPECT_FALSE(h.server("web-2").contains("restart_pending"));
  Chains sent = sentSince(h, mark);
  ASSERT_TRUE(sent.count("web-0@" + where["web-0"])) << "web-0's turn came once web-2 ran again";
  EXPECT_EQ(sent["web-0@" + where["web-0"]], std::vector<std::string>{"stop"}) << "its stop, not answered yet";
  sent.erase("web-0@" + where["web-0"]);
  EXPECT_EQ(sent, first) << "the plan made is the plan that runs";
  EXPECT_FALSE(sentSince(h, mark).count("web-1@" + where["web-1"])) << "web-1 waits its turn";

  settle(h);
  for (const std::string s : {"web-0", "web-1", "web-2"}) {
    EXPECT_EQ(h.server(s)["state"], "running") << s;
    EXPECT_EQ(h.server(s)["blade"], where[s]) << s << " restarted where it ran";
    EXPECT_FALSE(h.server(s).contains("restart_pending")) << s;
  }

  // What the blades defined last carried the new memory.
  std::map<std::string, std::uint64_t> definedMemory;
  for (const auto& [blade, frame] : h.history)
    if (frame["type"] == "plan")
      for (const auto& s : frame["steps"])
        if (s["kind"] == "define") definedMemory[s["server"]] = s["spec"]["memory_mib"];
  EXPECT_EQ(definedMemory, (std::map<std::string, std::uint64_t>{{"web-0", 4096}, {"web-1", 4096}, {"web-2", 4096}}));

  // Nothing left to do: another apply of the same changes nothing.
  EXPECT_TRUE(planned(h.api("POST", "/v1/apply", resized)).empty());
}

TEST(Restart, APendingRestartSurvivesAControllerRestartShowsOnAStandbyAndAPriorityChangeRestartsNothing) {
  Harness h("restart-recover.db");
  h.registerBlade("b1");
  h.seq["b1"] = 0;
  pool::Declarations d = web(1);
  ASSERT_EQ(h.api("POST", "/v1/apply", yaml(d)).status, 200);
  settle(h);
  ASSERT_EQ(h.server("web-0")["state"], "running");

  d.servers[0].priority = 7;  // not in the domain: nothing to restart
  auto r = h.api("POST", "/v1/apply", yaml(d, Only::Servers));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Json::parse(r.body)["diff"]["fields"]["Server/web-0"][0]["effect"], "live");
  EXPECT_TRUE(planned(r).empty());
  EXPECT_FALSE(h.server("web-0").contains("restart_pending"));

  d.servers[0].vcpus = 4;
  h.sent.clear();
  ASSERT_EQ(h.api("POST", "/v1/apply", yaml(d, Only::Servers)).status, 200);
  // A standby replica's copy of the store says so too.
  {
    api::StandbyViews standby(std::move(h.store->load()).value(), [] { return 1; });
    ApiRequest get{"GET", "/v1/servers/web-0", {}, ""};
    get.authorization = std::string("Bearer ") + ::loom::testing::kTestAdminToken;
    const auto r = standby.answer(get);
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(Json::parse(r.body)["restart_pending"], "vcpus 2 → 4");
  }
  // The controller restarts before any agent answered: the restart is still pending.
  h.reopen();
  h.sent.clear();
  EXPECT_EQ(h.server("web-0")["restart_pending"], "vcpus 2 → 4");
  h.registerBlade("b1", {{"web-0", "", pool::DomainState::Running}});
  settle(h);
  EXPECT_FALSE(h.server("web-0").contains("restart_pending"));
  EXPECT_EQ(h.server("web-0")["state"], "running");
}

TEST(Restart, ANetworksNewVlanRestartsTheRunningServersOnIt) {
  Harness h("restart-vlan.db");
  h.registerBlade("b1");
  h.seq["b1"] = 0;
  pool::Declarations d = web(1);
  ASSERT_EQ(h.api("POST", "/v1/apply", yaml(d)).status, 200);
  settle(h);
  ASSERT_EQ(h.server("web-0")["state"], "running");

  d.networks[0].vlan = 200;
  const auto r = h.api("POST", "/v1/apply", yaml(d, Only::AllButServers));
  ASSERT_EQ(r.status, 200) << r.body;
  const Json body = Json::parse(r.body);
  EXPECT_EQ(body["diff"]["restarts"]["web-0"], "nics front (no vlan) → front (vlan 200)") << r.body;
  EXPECT_EQ(planned(r), (Chains{{"web-0@b1", {"stop", "define", "start"}}}));
  EXPECT_EQ(h.server("web-0")["restart_pending"], "nics front (no vlan) → front (vlan 200)");
  settle(h);
  EXPECT_FALSE(h.server("web-0").contains("restart_pending"));
  std::optional<int> vlan;
  for (const auto& [blade, frame] : h.history)
    if (frame["type"] == "plan")
      for (const auto& s : frame["steps"])
        if (s["kind"] == "define") vlan = s["spec"]["nics"][0].value("vlan", -1);
  EXPECT_EQ(vlan, 200) << "its last define carried the new VLAN";
}

// `loomctl server reset NAME`: a restart the operator asks for, carried by the same plan.
TEST(Restart, AResetStopsDefinesAndStartsTheServerWhereItRunsAndIsRefusedWhereNothingRuns) {
  Harness h("restart-reset.db");
  for (const std::string b : {"b1", "b2"}) {
    h.registerBlade(b);
    h.seq[b] = 0;
  }
  const pool::Declarations d = web(3);  // web-2: the group's third, no blade left for it
  ASSERT_EQ(h.api("POST", "/v1/apply", yaml(d)).status, 200);
  settle(h);
  ASSERT_EQ(h.server("web-0")["state"], "running");
  ASSERT_EQ(h.server("web-1")["state"], "running");
  ASSERT_EQ(h.server("web-2")["state"], "unplaceable");
  const std::string blade = h.server("web-0")["blade"];

  auto r = h.api("POST", "/v1/servers/web-2/reset");
  EXPECT_EQ(r.status, 409) << r.body;
  EXPECT_NE(r.body.find("not placed"), std::string::npos) << r.body;
  EXPECT_FALSE(h.server("web-2").contains("restart_pending")) << "a refused reset changes nothing";
  EXPECT_EQ(h.api("POST", "/v1/servers/nosuch/reset").status, 404);

  const std::size_t mark = h.history.size();
  r = h.api("POST", "/v1/servers/web-0/reset");
  ASSERT_EQ(r.status, 200) << r.body;
  const std::string why = "reset by token 0000000000a1 (admin)";  // the test admin token's id
  EXPECT_EQ(Json::parse(r.body)["restart_pending"], why) << r.body;
  ASSERT_EQ(h.api("POST", "/v1/servers/web-0/reset").status, 200) << "asked twice before it happened";
  EXPECT_EQ(h.server("web-0")["restart_pending"], why) << "one reset, not two";
  settle(h);
  const Json after = h.server("web-0");
  EXPECT_EQ(after["state"], "running");
  EXPECT_EQ(after["blade"], blade) << "reset where it runs";
  EXPECT_FALSE(after.contains("restart_pending"));
  EXPECT_EQ(sentSince(h, mark), (Chains{{"web-0@" + blade, {"stop", "define", "start"}}}))
      << "only web-0, stopped, defined afresh and started once";
  EXPECT_TRUE(h.hasEvent("server " + why + ": it stops, is defined afresh and starts on " + blade));

  ASSERT_EQ(h.api("POST", "/v1/servers/web-1/stop").status, 200);
  settle(h);
  r = h.api("POST", "/v1/servers/web-1/reset");
  EXPECT_EQ(r.status, 409) << r.body;
  EXPECT_NE(r.body.find("powered off"), std::string::npos) << r.body;
}

}  // namespace
}  // namespace loom::controller
