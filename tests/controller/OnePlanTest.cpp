// One plan: what `apply --dry-run` prints is what the agents then receive.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "tests/controller/ControllerBuilders.h"
#include "tests/controller/ControllerHarness.h"

namespace loom::controller {
namespace {

using namespace loom::controller::testing;
using Chains = std::map<std::string, std::map<std::string, std::vector<std::string>>>;  // blade -> server -> kinds

// Per blade and server, the kinds of the steps in order; per blade, the order in which
// servers first appear.
struct Steps {
  Chains chains;
  std::map<std::string, std::vector<std::string>> firstSeen;
  void add(const std::string& blade, const std::string& kind, const std::string& server) {
    auto& chain = chains[blade][server];
    if (chain.empty()) firstSeen[blade].push_back(server);
    chain.push_back(kind);
  }
};

Steps planned(const ApiResponse& r) {
  Steps out;
  const Json body = Json::parse(r.body);
  for (const auto& s : body["plan"]["steps"]) out.add(s["blade"], s["kind"], s.value("server", std::string()));
  return out;
}

// What the agents received from history[from...], the agents carrying out every step.
Steps received(Harness& h, std::size_t from) {
  h.answerAll();
  Steps out;
  for (std::size_t i = from; i < h.history.size(); ++i) {
    const auto& [blade, frame] = h.history[i];
    if (frame["type"] != "plan") continue;
    for (const auto& s : frame["steps"]) out.add(blade, s["kind"], s.value("server", std::string()));
  }
  return out;
}

void expectSame(const Steps& dry, const Steps& sent, const std::string& what) {
  EXPECT_EQ(sent.chains, dry.chains) << what << ": each blade's steps, per server in order";
  EXPECT_EQ(sent.firstSeen, dry.firstSeen) << what << ": the order of servers on each blade";
}

TEST(OnePlan, ADryRunsStepsAreTheStepsTheAgentsReceive) {
  Harness h("one-plan.db");
  for (const std::string b : {"b1", "b2", "b3", "b4"}) h.registerBlade(b);
  h.registerBlade("b5", {{"not-ours", "", pool::DomainState::Running}});  // left alone, in the plan and on the blade

  // A new fabric: defines and starts.
  pool::Declarations d = web(4, spares(1));
  const std::string first = yaml(d);
  auto dry = h.api("POST", "/v1/apply", first, {{"dry_run", "1"}});
  ASSERT_EQ(dry.status, 200) << dry.body;
  std::size_t mark = h.history.size();
  ASSERT_EQ(h.api("POST", "/v1/apply", first).status, 200);
  const Steps dryFirst = planned(dry);
  EXPECT_EQ(dryFirst.chains.size(), 4u) << "four servers kept apart on four blades, the fifth the spare";
  expectSame(dryFirst, received(h, mark), "first apply");

  // A server powered off (it stops and keeps its definition), a new one placed.
  d.servers[1] = poweredOff(d.servers[1]);
  d.servers.push_back(antiAffinity(server("web-4", "web", 2, 2_GiB), "other"));
  const std::string second = yaml(d);
  dry = h.api("POST", "/v1/apply", second, {{"dry_run", "1"}});
  ASSERT_EQ(dry.status, 200) << dry.body;
  mark = h.history.size();
  ASSERT_EQ(h.api("POST", "/v1/apply", second).status, 200);
  const Steps drySecond = planned(dry);
  bool stops = false;
  for (const auto& [blade, servers] : drySecond.chains)
    stops |= servers.count("web-1") && servers.at("web-1") == std::vector<std::string>{"stop"};
  EXPECT_TRUE(stops) << "web-1 is stopped where it ran, and keeps its definition";
  expectSame(drySecond, received(h, mark), "second apply");

  // A deletion: the server stops and its definition goes.
  const std::string gone = yaml(web(1), Only::Servers);
  dry = h.api("POST", "/v1/delete", gone, {{"dry_run", "1"}});
  ASSERT_EQ(dry.status, 200) << dry.body;
  mark = h.history.size();
  ASSERT_EQ(h.api("POST", "/v1/delete", gone).status, 200);
  expectSame(planned(dry), received(h, mark), "delete");
  EXPECT_EQ(h.server("web-2")["state"], "running");
}

}  // namespace
}  // namespace loom::controller
