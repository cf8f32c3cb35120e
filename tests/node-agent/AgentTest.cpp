// The agent without sockets: plan steps go through a real test driver.
#include <gtest/gtest.h>

#include "drivers/test/TestDriver.h"
#include "node-agent/Agent.h"

namespace loom::agent {
namespace {

using protocol::Json;

struct Harness {
  std::vector<Json> sent;
  std::unique_ptr<Agent> agent;
  std::int64_t now = 0;
  Harness() {
    drivers::test::TestDriverConfig cfg;
    cfg.blade = "b1";
    auto driver = drivers::test::TestDriver::create(cfg);
    AgentConfig ac;
    ac.blade = "b1";
    ac.inventory.cores = 8;
    ac.inventory.memoryMib = 16384;
    agent = std::make_unique<Agent>(ac, std::move(*driver), [this](const Json& f) { sent.push_back(f); });
    agent->start(now);
  }
  void frame(const Json& f) { agent->onFrame(f.dump(), now); }
};

protocol::PlanMsg definesAndStarts(std::uint64_t firstOp) {
  drivers::DomainSpec spec;
  spec.name = "web-0";
  spec.uuid = "4c4f4f4d-0000-0000-0000-000000000001";
  spec.memory = 1024;
  protocol::PlanMsg plan;
  plan.steps.push_back({firstOp, "define", "web-0", "", spec});
  plan.steps.push_back({firstOp + 1, "start", "web-0", "", std::nullopt});
  return plan;
}

TEST(Agent, RegistersThenHeartbeatsWithDomains) {
  Harness h;
  ASSERT_EQ(h.sent.size(), 1u);
  EXPECT_EQ(h.sent[0]["type"], "register");
  h.frame(protocol::encode(protocol::Registered{5000, 1000}));
  h.frame(protocol::encode(definesAndStarts(1)));
  h.sent.clear();
  h.now += 1000;
  h.agent->tick(h.now);
  ASSERT_EQ(h.sent.size(), 1u);
  EXPECT_EQ(h.sent[0]["type"], "heartbeat");
  ASSERT_TRUE(h.sent[0].contains("domains"));
  EXPECT_EQ(h.sent[0]["domains"][0]["state"], "running");
  // Unchanged: the next heartbeat carries no domain list.
  h.sent.clear();
  h.frame(protocol::encode(protocol::LeaseRenewed{1, 5000}));
  h.now += 1000;
  h.agent->tick(h.now);
  ASSERT_EQ(h.sent.size(), 1u);
  EXPECT_FALSE(h.sent[0].contains("domains"));
}

TEST(Agent, StepsAreIdempotentAndAResentOperationIsAnsweredAgain) {
  Harness h;
  h.frame(protocol::encode(protocol::Registered{5000, 1000}));
  h.sent.clear();
  h.frame(protocol::encode(definesAndStarts(1)));
  h.frame(protocol::encode(definesAndStarts(1)));  // the same ops resent
  h.frame(protocol::encode(definesAndStarts(3)));  // new ops, same effect
  ASSERT_EQ(h.sent.size(), 6u);
  for (auto& f : h.sent) {
    EXPECT_EQ(f["type"], "step-result");
    EXPECT_TRUE(f["ok"].get<bool>()) << f.dump();
  }
}

TEST(Agent, UnknownStepKindsAndGarbageAreRefusedNotExecuted) {
  Harness h;
  h.sent.clear();
  h.agent->onFrame("not json", h.now);
  h.agent->onFrame(R"({"type":"plan","v":1,"steps":[{"op":1,"kind":"wipe","server":"x"}]})", h.now);
  h.agent->onFrame(R"({"type":"heartbeat","v":1,"seq":1})", h.now);  // agent-bound only
  EXPECT_TRUE(h.sent.empty());
  EXPECT_EQ(h.agent->rejected(), 3u);
}

TEST(Agent, ReregistersWhenTheControllerAsks) {
  Harness h;
  h.frame(protocol::encode(protocol::Registered{5000, 1000}));
  h.sent.clear();
  h.frame(protocol::encode(protocol::Reregister{}));
  ASSERT_EQ(h.sent.size(), 1u);
  EXPECT_EQ(h.sent[0]["type"], "register");
}

}  // namespace
}  // namespace loom::agent
