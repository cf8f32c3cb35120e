// The leader's epoch on the agent's side (node-agent/EpochGuard.h, docs/FENCING.md
// "Replicas: the epoch"): a replaced leader's frames are refused, a new leader's followed,
// and the bar outlives an agent restart. No sockets: the real Agent and test driver.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "drivers/test/TestDriver.h"
#include "node-agent/Agent.h"
#include "node-agent/EpochGuard.h"

namespace loom::agent {
namespace {

using protocol::Json;

std::string tempPath(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() / ("loom-epoch-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto path = dir / (::testing::UnitTest::GetInstance()->current_test_info()->name() + ("-" + name));
  std::filesystem::remove(path);
  return path.string();
}

// One blade: the real Agent over a test driver, frames out into `sent`.
struct Blade {
  std::vector<Json> sent;
  std::unique_ptr<Agent> agent;
  drivers::test::TestDriver* driver = nullptr;  // owned by the agent
  std::int64_t now = 0;

  // `startLatencyMs` > 0: driver calls run on the agent's worker thread (as a real
  // driver's do), and each start takes that long.
  explicit Blade(std::string epochPath = {}, std::int64_t start = 0, std::int64_t startLatencyMs = 0) : now(start) {
    drivers::test::TestDriverConfig cfg;
    cfg.blade = "b1";
    cfg.startLatencyMs = startLatencyMs;
    auto made = drivers::test::TestDriver::create(cfg);
    driver = made->get();
    AgentConfig config;
    config.blade = "b1";
    config.inventory.cores = 8;
    config.inventory.memoryMib = 16384;
    config.epochPath = std::move(epochPath);
    config.driverThread = startLatencyMs > 0;
    agent = std::make_unique<Agent>(config, std::move(*made), [this](const Json& f) {
      sent.push_back(f);
      return true;
    });
    agent->start(now);
  }
  void frame(const Json& f) { agent->onFrame(f.dump(), now); }
  std::vector<Json> take(const std::string& type) {
    std::vector<Json> out;
    for (auto& f : sent)
      if (f["type"] == type) out.push_back(f);
    sent.clear();
    return out;
  }
  bool running(const std::string& domain) {
    auto info = driver->info(domain);
    return info && info->state == pool::DomainState::Running;
  }
};

protocol::PlanMsg plan(std::uint64_t epoch, std::uint64_t op, pool::StepKind kind) {
  protocol::PlanMsg p;
  p.epoch = epoch;
  std::optional<protocol::ServerSpec> spec;
  if (kind == pool::StepKind::Define) {
    spec.emplace();
    spec->name = "web-0";
    spec->uuid = "4c4f4f4d-0000-0000-0000-000000000001";
    spec->memoryMib = 1024;
  }
  p.steps.push_back({op, kind, "web-0", "", spec});
  return p;
}

Json registered(std::uint64_t epoch) { return protocol::encode(protocol::Registered{5000, 1000, 0, 0, epoch}); }

TEST(EpochGuard, RefusesOlderEpochsFollowsNewerOnesAndLetsASoloLoomdThrough) {
  EpochGuard g("b1", "");
  EXPECT_EQ(g.admit(0, "plan"), EpochGuard::Verdict::Accept) << "a solo loomd, before any replica";
  EXPECT_EQ(g.admit(5, "registered"), EpochGuard::Verdict::Raise);
  EXPECT_EQ(g.admit(5, "plan"), EpochGuard::Verdict::Accept);
  EXPECT_EQ(g.admit(4, "plan"), EpochGuard::Verdict::Refuse);
  EXPECT_EQ(g.admit(9, "lease-renewed"), EpochGuard::Verdict::Raise);
  EXPECT_EQ(g.admit(5, "plan"), EpochGuard::Verdict::Refuse);
  EXPECT_EQ(g.admit(8, "policy"), EpochGuard::Verdict::Refuse);
  EXPECT_EQ(g.admit(0, "registered"), EpochGuard::Verdict::Accept)
      << "no replica sends 0: only a loomd alone on its store, with no rival to be fenced from";
  EXPECT_EQ(g.highest(), 9u) << "0 does not lower the bar";
  EXPECT_EQ(g.refused(), 3u);
}

TEST(EpochGuard, KeepsItsBarAcrossARestartAndIgnoresAnUnreadableFile) {
  const std::string path = tempPath("b1.epoch");
  {
    EpochGuard g("b1", path);
    g.load();
    EXPECT_EQ(g.highest(), 0u) << "no file yet";
    EXPECT_EQ(g.admit(12, "registered"), EpochGuard::Verdict::Raise);
  }
  EpochGuard again("b1", path);
  again.load();
  EXPECT_EQ(again.highest(), 12u);
  EXPECT_EQ(again.admit(11, "plan"), EpochGuard::Verdict::Refuse);
  for (const char* bad : {"twelve\n", "-3\n", "12x\n", "\n"}) {
    std::ofstream(path) << bad;
    EpochGuard g("b1", path);
    g.load();
    EXPECT_EQ(g.highest(), 0u) << "'" << bad << "' is no epoch";
  }
}

TEST(AgentEpoch, AReplacedLeadersPlanRunsNothingAndGetsNoAnswer) {
  Blade b;
  b.frame(registered(5));
  ASSERT_TRUE(b.agent->leased());
  b.frame(protocol::encode(plan(5, 1, pool::StepKind::Define)));
  b.frame(protocol::encode(plan(5, 2, pool::StepKind::Start)));
  ASSERT_EQ(b.take("step-result").size(), 2u);
  ASSERT_TRUE(b.running("web-0"));

  // A new leader (epoch 6) is heard; then a stop the old one sent before it was replaced.
  b.frame(protocol::encode(protocol::LeaseRenewed{0, 5000, 0, 6}));
  EXPECT_EQ(b.agent->epoch(), 6u);
  b.frame(protocol::encode(plan(5, 3, pool::StepKind::Stop)));
  EXPECT_TRUE(b.running("web-0")) << "a replaced leader's stop must not run";
  EXPECT_TRUE(b.take("step-result").empty()) << "and gets no step-result: the new leader plans from the reports";
  // A resend of a step done under epoch 5 is not answered from the cache either.
  b.frame(protocol::encode(plan(5, 2, pool::StepKind::Start)));
  EXPECT_TRUE(b.take("step-result").empty());
  EXPECT_EQ(b.agent->refusedStale(), 2u);

  // The new leader's own stop runs.
  b.frame(protocol::encode(plan(6, 4, pool::StepKind::Stop)));
  EXPECT_FALSE(b.running("web-0"));
  EXPECT_EQ(b.take("step-result").size(), 1u);
}

TEST(AgentEpoch, AReplacedLeadersRegisteredReregisterAndPolicyChangeNothing) {
  Blade b;
  b.frame(registered(7));
  ASSERT_TRUE(b.agent->registered());
  b.sent.clear();
  // reregister from the old leader: not obeyed (no register goes out).
  b.frame(protocol::encode(protocol::Reregister{0, 6}));
  EXPECT_TRUE(b.take("register").empty());
  EXPECT_TRUE(b.agent->registered());
  // ... from the current one: obeyed at once.
  b.frame(protocol::encode(protocol::Reregister{0, 7}));
  EXPECT_EQ(b.take("register").size(), 1u);
  EXPECT_FALSE(b.agent->registered());
  // registered from the old leader: no lease from it.
  b.frame(registered(6));
  EXPECT_FALSE(b.agent->registered());
  b.frame(registered(7));
  EXPECT_TRUE(b.agent->registered());
  // policy from the old leader: not taken.
  protocol::Policy old{3, true, 2000, 10000, {}, 6};
  b.frame(protocol::encode(old));
  EXPECT_EQ(b.agent->shield().policy().version, 0u);
  protocol::Policy current{3, false, 2000, 10000, {}, 7};
  b.frame(protocol::encode(current));
  EXPECT_EQ(b.agent->shield().policy().version, 3u);
  EXPECT_EQ(b.agent->refusedStale(), 3u);
}

TEST(AgentEpoch, ALeaseRenewedByANewLeaderIsAnsweredWithARegisterAtOnce) {
  // A new term knows no blade's registration and starts nothing until every blade it knows
  // has registered (the restart gate); its fabric thread renews leases while its core
  // loads the store. The blade registers on that first renewal, not a heartbeat later.
  Blade b;
  b.frame(registered(5));
  ASSERT_TRUE(b.agent->registered());
  // Two beats, each answered: one by the leader of epoch 5, the next by a new one.
  std::vector<std::uint64_t> beats;
  for (int i = 0; i < 25 && beats.size() < 2; ++i) {
    b.now += 100;
    b.agent->tick(b.now);
    for (const auto& hb : b.take("heartbeat")) beats.push_back(hb["seq"].get<std::uint64_t>());
  }
  ASSERT_EQ(beats.size(), 2u);
  b.sent.clear();
  b.frame(protocol::encode(protocol::LeaseRenewed{beats[0], 5000, 0, 5}));
  EXPECT_TRUE(b.take("register").empty()) << "the same leader's renewal asks nothing";
  b.frame(protocol::encode(protocol::LeaseRenewed{beats[1], 5000, 0, 6}));
  const auto regs = b.take("register");
  ASSERT_EQ(regs.size(), 1u) << "a renewal of epoch 6 is a new leader: register with it now";
  EXPECT_FALSE(b.agent->registered());
  EXPECT_TRUE(b.agent->leased()) << "the lease it held runs on meanwhile";
  // Its core's ask, for the beat sent before that register, is answered already (past the
  // register's retry delay, so an obeyed ask would send one).
  b.now += 2000;
  b.frame(protocol::encode(protocol::Reregister{beats[1], 6}));
  EXPECT_TRUE(b.take("register").empty());
  b.frame(protocol::encode(protocol::Registered{5000, 1000, regs[0]["seq"].get<std::uint64_t>(), 0, 6}));
  EXPECT_TRUE(b.agent->registered());
  // Registered with it: its renewals ask nothing more.
  b.frame(protocol::encode(protocol::LeaseRenewed{0, 5000, 0, 6}));
  EXPECT_TRUE(b.take("register").empty());
  EXPECT_TRUE(b.agent->registered());
}

TEST(AgentEpoch, ANewLeaderReusingAnOperationIdGetsItsStepRunNotAnOldAnswer) {
  // The old leader's last operation ids may never have reached the store: the new one
  // can hand out the same id for another step.
  Blade b;
  b.frame(registered(5));
  b.frame(protocol::encode(plan(5, 1, pool::StepKind::Define)));
  b.frame(protocol::encode(plan(5, 2, pool::StepKind::Start)));
  b.frame(protocol::encode(plan(5, 3, pool::StepKind::Stop)));
  ASSERT_FALSE(b.running("web-0"));
  b.sent.clear();
  b.frame(registered(6));
  b.frame(protocol::encode(plan(6, 3, pool::StepKind::Start)));
  EXPECT_TRUE(b.running("web-0")) << "op 3 of epoch 6 is a start, whatever op 3 of epoch 5 was";
}

TEST(AgentEpoch, AStepOfAReplacedLeaderStillRunningIsNotAnsweredToTheNewOne) {
  // A real driver's steps run on the agent's worker: a start can outlast its leader.
  Blade b({}, 0, 300);
  b.frame(registered(5));
  b.frame(protocol::encode(plan(5, 1, pool::StepKind::Define)));
  b.frame(protocol::encode(plan(5, 2, pool::StepKind::Start)));
  b.frame(registered(6));  // a new leader, while the start runs
  // It hands out op 2 for another step: refused while the old one runs, not mixed up with it.
  b.frame(protocol::encode(plan(6, 2, pool::StepKind::Stop)));
  auto early = b.take("step-result");
  ASSERT_EQ(early.size(), 1u);
  EXPECT_EQ(early[0]["op"], 2);
  EXPECT_FALSE(early[0]["ok"].get<bool>());
  EXPECT_NE(early[0]["error"].get<std::string>().find("replaced leader"), std::string::npos) << early[0].dump();
  // The old start ends; its result (and the define's) are not sent to the new leader.
  for (int i = 0; i < 100 && !b.running("web-0"); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_TRUE(b.running("web-0"));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  b.now += 20;
  b.agent->tick(b.now);
  EXPECT_TRUE(b.take("step-result").empty()) << "results of a replaced leader's steps are not the new one's";
  // Now the new leader's op 2 is taken.
  b.frame(protocol::encode(plan(6, 2, pool::StepKind::Stop)));
  for (int i = 0; i < 100 && b.running("web-0"); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    b.now += 10;
    b.agent->tick(b.now);
  }
  EXPECT_FALSE(b.running("web-0"));
  // The domain is gone before the worker reports the step: its result follows on a tick.
  auto done = b.take("step-result");
  for (int i = 0; i < 200 && done.empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    b.now += 10;
    b.agent->tick(b.now);
    done = b.take("step-result");
  }
  ASSERT_EQ(done.size(), 1u);
  EXPECT_TRUE(done[0]["ok"].get<bool>());
}

TEST(AgentEpoch, ARestartedAgentStillRefusesWhatItRefusedBefore) {
  const std::string path = tempPath("b1.epoch");
  {
    Blade b(path);
    b.frame(registered(9));
    EXPECT_EQ(b.agent->epoch(), 9u);
  }
  Blade restarted(path, 100000);
  EXPECT_EQ(restarted.agent->epoch(), 9u);
  restarted.frame(registered(8));
  EXPECT_FALSE(restarted.agent->registered()) << "epoch 8 was replaced before the restart";
  restarted.frame(registered(9));
  EXPECT_TRUE(restarted.agent->registered());
}

TEST(AgentEpoch, ASoloLoomdsFramesAreTakenAsAlways) {
  Blade b;
  b.frame(registered(0));
  EXPECT_TRUE(b.agent->leased());
  b.frame(protocol::encode(plan(0, 1, pool::StepKind::Define)));
  EXPECT_EQ(b.take("step-result").size(), 1u);
  EXPECT_EQ(b.agent->epoch(), 0u);
  EXPECT_EQ(b.agent->refusedStale(), 0u);
}

}  // namespace
}  // namespace loom::agent
