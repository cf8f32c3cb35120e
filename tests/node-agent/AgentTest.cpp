// The agent without sockets: plan steps go through a real test driver.
#include <gtest/gtest.h>

#include <set>

#include "drivers/test/TestDriver.h"
#include "node-agent/Agent.h"
#include "node-agent/LeaseGuard.h"

namespace loom::agent {
namespace {

using protocol::Json;

// A blade whose driver is one hypervisor, as the real ones are: the test driver underneath,
// offering only KVM.
class KvmOnlyDriver final : public drivers::Driver {
 public:
  explicit KvmOnlyDriver(std::unique_ptr<drivers::test::TestDriver> d) : d_(std::move(d)) {}
  std::string name() const override { return "kvm"; }
  drivers::Capabilities capabilities() const override {
    auto c = d_->capabilities();
    c.personalities = pool::HypervisorSet::of(pool::Hypervisor::Kvm);
    c.watchdog = false;
    return c;
  }
  drivers::ProbeResult probe() override { return d_->probe(); }
  Result<drivers::NodeInfo> nodeInfo() override { return d_->nodeInfo(); }
  Status define(const drivers::DomainSpec& s) override { return d_->define(s); }
  Status start(const std::string& n) override { return d_->start(n); }
  Status stop(const std::string& n, int t) override { return d_->stop(n, t); }
  Status destroy(const std::string& n) override { return d_->destroy(n); }
  Status undefine(const std::string& n) override { return d_->undefine(n); }
  Result<std::vector<drivers::DomainInfo>> list() override { return d_->list(); }
  Result<drivers::DomainInfo> info(const std::string& n) override { return d_->info(n); }
  Status subscribe(drivers::EventCallback cb) override { return d_->subscribe(std::move(cb)); }

 private:
  std::unique_ptr<drivers::test::TestDriver> d_;
};

struct HarnessOptions {
  std::string blade = "b1";
  std::shared_ptr<drivers::test::Clock> clock = drivers::test::systemClock();
  bool driverWatchdog = false;  // the agent's lease guard is the driver's watchdog
  bool kvmOnly = false;         // the driver offers one personality (KvmOnlyDriver)
  std::int64_t start = 0;       // the monotonic clock at start (a real one is far from 0)
};

struct Harness {
  std::vector<Json> sent;
  bool connected = true;  // false: frames find no connection and are dropped
  std::unique_ptr<Agent> agent;
  drivers::test::TestDriver* driver = nullptr;  // owned by the agent
  std::int64_t now = 0;
  explicit Harness(const std::string& blade = "b1") : Harness(HarnessOptions{blade}) {}
  explicit Harness(HarnessOptions o) {
    drivers::test::TestDriverConfig cfg;
    cfg.blade = o.blade;
    auto made = drivers::test::TestDriver::create(cfg, o.clock);
    this->driver = made->get();
    now = o.start;
    std::unique_ptr<drivers::Driver> driver;
    if (o.kvmOnly)
      driver = std::make_unique<KvmOnlyDriver>(std::move(*made));
    else
      driver = std::move(*made);
    auto guard = o.driverWatchdog ? makeDriverWatchdogGuard(*driver) : nullptr;
    AgentConfig ac;
    ac.blade = o.blade;
    ac.inventory.cores = 8;
    ac.inventory.memoryMib = 16384;
    agent = std::make_unique<Agent>(
        ac, std::move(driver),
        [this](const Json& f) {
          if (connected) sent.push_back(f);
          return connected;
        },
        std::move(guard));
    agent->start(now);
  }
  void frame(const Json& f) { agent->onFrame(f.dump(), now); }
};

protocol::PlanMsg definesAndStarts(std::uint64_t firstOp) {
  protocol::ServerSpec spec;
  spec.name = "web-0";
  spec.uuid = "4c4f4f4d-0000-0000-0000-000000000001";
  spec.memoryMib = 1024;
  protocol::PlanMsg plan;
  plan.steps.push_back({firstOp, pool::StepKind::Define, "web-0", "", spec});
  plan.steps.push_back({firstOp + 1, pool::StepKind::Start, "web-0", "", std::nullopt});
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

std::string stateOf(drivers::test::TestDriver& d, const std::string& name) {
  auto info = d.info(name);
  return info ? pool::toString(info->state) : "absent";
}

std::vector<Json> ofType(const std::vector<Json>& frames, const std::string& type) {
  std::vector<Json> out;
  for (const auto& f : frames)
    if (f["type"] == type) out.push_back(f);
  return out;
}

// Ticks the agent every 100 ms from the harness's now + 100 until `until`: the seqs of
// the frames of `type` it sent on the way.
std::vector<std::uint64_t> seqsSentUntil(Harness& h, std::int64_t until, const std::string& type) {
  std::vector<std::uint64_t> out;
  for (h.now += 100; h.now <= until; h.now += 100) {
    h.sent.clear();
    h.agent->tick(h.now);
    for (const auto& f : ofType(h.sent, type)) out.push_back(f["seq"].get<std::uint64_t>());
  }
  h.now = until;
  return out;
}

TEST(Agent, DestroysItsDomainsBeforeAnUnrenewedLeaseRunsOutThenRegistersAgain) {
  Harness h;
  h.frame(protocol::encode(protocol::Registered{5000, 1000}));  // lease until 5000 (register sent at 0)
  h.frame(protocol::encode(definesAndStarts(1)));
  ASSERT_EQ(stateOf(*h.driver, "web-0"), "running");
  ASSERT_TRUE(h.agent->leased());
  // The controller is gone: heartbeats go out, nothing comes back.
  for (h.now = 100; h.now < 4400; h.now += 100) h.agent->tick(h.now);
  EXPECT_EQ(stateOf(*h.driver, "web-0"), "running") << "fenced too early, at " << h.now;
  h.sent.clear();
  // A tenth of the lease ahead of its end: destroyed, and registering again.
  h.agent->tick(h.now = 4500);
  EXPECT_EQ(stateOf(*h.driver, "web-0"), "shutoff");
  EXPECT_FALSE(h.agent->leased());
  auto registers = ofType(h.sent, "register");
  ASSERT_EQ(registers.size(), 1u);
  EXPECT_EQ(registers[0]["domains"][0]["state"], "shutoff");
  // A late plan from before cannot start it again without a new lease.
  h.sent.clear();
  h.frame(protocol::encode(definesAndStarts(10)));
  auto results = ofType(h.sent, "step-result");
  ASSERT_EQ(results.size(), 2u);
  EXPECT_TRUE(results[0]["ok"].get<bool>());   // define: harmless
  EXPECT_FALSE(results[1]["ok"].get<bool>());  // start: refused
  EXPECT_NE(results[1]["error"].get<std::string>().find("no lease"), std::string::npos) << results[1].dump();
  EXPECT_EQ(stateOf(*h.driver, "web-0"), "shutoff");
  // Registered again: a new lease, and the same start works.
  h.frame(protocol::encode(protocol::Registered{5000, 1000}));
  EXPECT_TRUE(h.agent->leased());
  h.sent.clear();
  h.frame(protocol::encode(definesAndStarts(20)));
  EXPECT_EQ(stateOf(*h.driver, "web-0"), "running");
}

TEST(Agent, ALeaseCountsFromWhenTheAnsweredHeartbeatWasSentNotFromItsAnswer) {
  Harness h;
  h.frame(protocol::encode(protocol::Registered{5000, 1000}));
  h.frame(protocol::encode(definesAndStarts(1)));
  // Heartbeats until one goes out at t >= 1000.
  std::uint64_t seq = 0;
  std::int64_t sentAt = 0;
  for (h.now = 0; h.now <= 2000 && seq == 0; h.now += 10) {
    h.sent.clear();
    h.agent->tick(h.now);
    for (auto& f : ofType(h.sent, "heartbeat")) {
      seq = f["seq"].get<std::uint64_t>();
      sentAt = h.now;
    }
  }
  ASSERT_NE(seq, 0u);
  // Its answer arrives 900 ms late: the lease still ends 5000 ms after the heartbeat left.
  h.now = sentAt + 900;
  h.frame(protocol::encode(protocol::LeaseRenewed{seq, 5000}));
  // No further answers: fenced a tenth of the lease before sentAt + 5000, not 900 ms later.
  h.agent->tick(h.now = sentAt + 4499);
  EXPECT_EQ(stateOf(*h.driver, "web-0"), "running");
  h.agent->tick(h.now = sentAt + 4500);
  EXPECT_EQ(stateOf(*h.driver, "web-0"), "shutoff");
}

TEST(Agent, AsksForALeaseAnswerOnlyOnceTheLeaseRanDownAndOnEveryBeatAfterALostOne) {
  Harness h;
  h.frame(protocol::encode(protocol::Registered{5000, 1000}));
  h.frame(protocol::encode(definesAndStarts(1)));
  // The controller answers every heartbeat that asks, at once, for 20 s.
  int beats = 0, asked = 0;
  for (h.now = 0; h.now < 20000; h.now += 10) {
    h.sent.clear();
    h.agent->tick(h.now);
    for (auto& f : ofType(h.sent, "heartbeat")) {
      ++beats;
      if (f.value("ack", true)) {
        ++asked;
        h.frame(protocol::encode(protocol::LeaseRenewed{f["seq"].get<std::uint64_t>(), 5000}));
      }
    }
  }
  EXPECT_GE(beats, 19);
  EXPECT_LE(asked, beats / 2 + 1) << "every other beat at 1 s / 5 s";
  EXPECT_GE(asked, beats / 2 - 1);
  EXPECT_EQ(stateOf(*h.driver, "web-0"), "running") << "answered as asked: the lease never ran out";
  // Then the answers stop: after the beat that follows the last answer, every beat asks,
  // until the agent fences itself.
  int beatsSince = 0, askedInARow = 0;
  for (; h.now < 30000 && h.agent->leased(); h.now += 10) {
    h.sent.clear();
    h.agent->tick(h.now);
    for (auto& f : ofType(h.sent, "heartbeat")) {
      if (++beatsSince == 1) continue;
      EXPECT_TRUE(f.value("ack", true)) << "a beat that did not ask while the lease runs down, at " << h.now;
      ++askedInARow;
    }
  }
  EXPECT_FALSE(h.agent->leased());
  EXPECT_GE(askedInARow, 2) << "at least two more chances to be answered before fencing";
  EXPECT_EQ(stateOf(*h.driver, "web-0"), "shutoff");
}

TEST(Agent, WithALeaseOfFewerThanThreeBeatsEveryBeatAsksForAnAnswer) {
  Harness h;
  h.frame(protocol::encode(protocol::Registered{2000, 1000}));
  int beats = 0;
  for (h.now = 0; h.now < 10000; h.now += 10) {
    h.sent.clear();
    h.agent->tick(h.now);
    for (auto& f : ofType(h.sent, "heartbeat")) {
      ++beats;
      EXPECT_TRUE(f.value("ack", true)) << "beat " << f["seq"] << " did not ask";
      h.frame(protocol::encode(protocol::LeaseRenewed{f["seq"].get<std::uint64_t>(), 2000}));
    }
  }
  EXPECT_GE(beats, 9);
  EXPECT_TRUE(h.agent->leased());
}

TEST(Agent, AHeartbeatThatFoundNoConnectionIsTriedAgainWithinATenthOfABeat) {
  Harness h;
  h.frame(protocol::encode(protocol::Registered{5000, 1000}));
  h.frame(protocol::encode(definesAndStarts(1)));
  // The controller goes away (restarting) for 2.5 s; it was last heard at 0.
  h.connected = false;
  for (h.now = 0; h.now < 2500; h.now += 10) h.agent->tick(h.now);
  // It is back: the next beat goes out within 100 ms, not up to a beat later, asks for an
  // answer, and carries the domain lists that could not be delivered.
  h.connected = true;
  std::vector<Json> beats;
  const std::int64_t back = h.now;
  for (; h.now < back + 1000 && beats.empty(); h.now += 10) {
    h.sent.clear();
    h.agent->tick(h.now);
    beats = ofType(h.sent, "heartbeat");
  }
  ASSERT_EQ(beats.size(), 1u);
  EXPECT_LE(h.now - back, 110);
  EXPECT_TRUE(beats[0].value("ack", true)) << "absent means asked";
  ASSERT_TRUE(beats[0].contains("domains"));
  EXPECT_EQ(beats[0]["domains"][0]["name"], "web-0");
  // Its answer holds the lease (it counts from that beat), and nothing was fenced.
  h.frame(protocol::encode(protocol::LeaseRenewed{beats[0]["seq"].get<std::uint64_t>(), 5000}));
  h.agent->tick(h.now = 5500);
  EXPECT_TRUE(h.agent->leased());
  EXPECT_EQ(stateOf(*h.driver, "web-0"), "running");
}

TEST(Agent, ARenewalForAnUnknownOrLateHeartbeatExtendsNothing) {
  Harness h;
  h.frame(protocol::encode(protocol::Registered{5000, 1000}));
  h.frame(protocol::encode(definesAndStarts(1)));
  h.now = 3000;
  h.frame(protocol::encode(protocol::LeaseRenewed{777, 5000}));  // never sent
  h.agent->tick(h.now = 4500);
  EXPECT_EQ(stateOf(*h.driver, "web-0"), "shutoff");
  // After the lease ran out, a renewal does not bring it back: only registering does.
  h.frame(protocol::encode(protocol::LeaseRenewed{1, 5000}));
  EXPECT_FALSE(h.agent->leased());
}

TEST(Agent, ARegistrationAnsweredTooLateForItsLeaseIsAskedForAgain) {
  Harness h;  // register seq 1 sent at 0
  h.sent.clear();
  h.now = 4800;  // the controller was busy: past the point the agent would fence at
  h.frame(protocol::encode(protocol::Registered{5000, 1000, 1}));
  EXPECT_FALSE(h.agent->registered()) << "registered without a lease would refuse every start";
  auto registers = ofType(h.sent, "register");
  ASSERT_EQ(registers.size(), 1u);
  const auto seq = registers[0]["seq"].get<std::uint64_t>();
  EXPECT_GT(seq, 1u);
  // The answer to that one, in time: leased until 4800 + 5000.
  h.now = 4900;
  h.frame(protocol::encode(protocol::Registered{5000, 1000, seq}));
  EXPECT_TRUE(h.agent->registered());
  EXPECT_TRUE(h.agent->leased());
}

// Times (ms) at which `h` sent a register while ticking every 100 ms up to `until`.
std::vector<std::int64_t> registerTimes(Harness& h, std::int64_t until) {
  std::vector<std::int64_t> at;
  for (; h.now <= until; h.now += 100) {
    h.sent.clear();
    h.agent->tick(h.now);
    for (const auto& f : h.sent)
      if (f["type"] == "register") at.push_back(h.now);
  }
  return at;
}

TEST(Agent, KeepsBeatingRatherThanRegisteringWhenTheControllerGoesQuiet) {
  Harness h;
  h.frame(protocol::encode(protocol::Registered{5000, 1000}));
  h.sent.clear();
  // Nothing comes back for 4.3 s (an overloaded or restarting controller).
  for (h.now = 100; h.now < 4400; h.now += 100) h.agent->tick(h.now);
  EXPECT_TRUE(ofType(h.sent, "register").empty()) << "a register costs the controller far more than a beat";
  auto beats = ofType(h.sent, "heartbeat");
  ASSERT_GE(beats.size(), 4u);
  EXPECT_TRUE(beats.back().value("ack", true)) << "a quiet controller is asked for an answer on every beat";
  EXPECT_TRUE(h.agent->registered());
  // A restarted controller that does not know us says so; then we register at once.
  h.sent.clear();
  h.frame(protocol::encode(protocol::Reregister{}));
  EXPECT_EQ(ofType(h.sent, "register").size(), 1u);
}

TEST(Agent, BacksOffUnansweredRegistrations) {
  Harness h;  // register 1 at 0, never answered
  auto at = registerTimes(h, 30000);
  ASSERT_GE(at.size(), 5u);
  std::vector<std::int64_t> gaps{at[0]};
  for (std::size_t i = 1; i < at.size(); ++i) gaps.push_back(at[i] - at[i - 1]);
  EXPECT_GE(gaps[0], 1000);
  EXPECT_LE(gaps[0], 1600);
  EXPECT_GE(gaps[1], 2000);
  EXPECT_LE(gaps[1], 3100);
  for (std::size_t i = 2; i < gaps.size(); ++i) {
    EXPECT_GE(gaps[i], 4000) << "gap " << i;
    EXPECT_LE(gaps[i], 6100) << "gap " << i << ": the back-off stops doubling at four times the first";
  }
}

// "No answer from the controller yet" means five retries unanswered, counted from the
// first register: not a warning at every start whose first register crossed a slow answer
// (the agent's clock is far from 0 there, as a monotonic clock is).
TEST(Agent, WarnsOfASilentControllerOnlyAfterFiveUnansweredRetries) {
  HarnessOptions o;
  o.start = 5'000'000;
  Harness quick(o);
  for (int i = 0; i < 20; ++i) quick.agent->tick(quick.now += 100);  // its second register goes out
  EXPECT_EQ(ofType(quick.sent, "register").size(), 2u);
  quick.frame(protocol::encode(protocol::Registered{5000, 1000}));
  for (int i = 0; i < 20; ++i) quick.agent->tick(quick.now += 100);
  EXPECT_FALSE(quick.agent->warnedControllerSilent());
  Harness silent(o);
  for (int i = 0; i < 40; ++i) silent.agent->tick(silent.now += 100);
  EXPECT_FALSE(silent.agent->warnedControllerSilent()) << "4 s: not yet five retries' worth";
  for (int i = 0; i < 600; ++i) silent.agent->tick(silent.now += 100);
  EXPECT_TRUE(silent.agent->warnedControllerSilent()) << "a minute of silence is said";
}

TEST(Agent, BladesThatLostTheControllerTogetherDoNotRetryInLockstep) {
  std::set<std::int64_t> secondRegister;
  for (int i = 0; i < 20; ++i) {
    Harness h("c1-s" + std::to_string(i));
    auto at = registerTimes(h, 3000);
    ASSERT_FALSE(at.empty());
    secondRegister.insert(at[0]);
  }
  EXPECT_GE(secondRegister.size(), 3u) << "20 blades retried at the same moment";
}

TEST(Agent, AReregisterThatCrossedAnOutstandingRegisterIsNotAnsweredTwice) {
  Harness h;  // register 1 at 0, on its way
  h.sent.clear();
  h.now = 200;
  h.frame(protocol::encode(protocol::Reregister{}));  // answers a beat sent before it
  EXPECT_TRUE(ofType(h.sent, "register").empty());
  h.frame(protocol::encode(protocol::Registered{5000, 1000, 1}));
  EXPECT_TRUE(h.agent->registered());
}

TEST(Agent, AfterAControllerRestartOnlyTheFirstAskRegistersNotOneAskPerQueuedBeat) {
  Harness h;
  h.frame(protocol::encode(protocol::Registered{5000, 1000, 1}));
  const auto beats = seqsSentUntil(h, 3000, "heartbeat");
  ASSERT_GE(beats.size(), 3u);
  // A restarted controller, slow while it recovers, finds every beat it had queued unknown
  // and asks once per beat. The first ask registers; the asks for beats sent before
  // that register are already answered by it, before and after its answer arrives.
  h.sent.clear();
  h.frame(protocol::encode(protocol::Reregister{beats[0]}));
  const auto registers = ofType(h.sent, "register");
  ASSERT_EQ(registers.size(), 1u);
  h.frame(protocol::encode(protocol::Reregister{beats[1]}));
  h.frame(protocol::encode(protocol::Registered{5000, 1000, registers[0]["seq"].get<std::uint64_t>()}));
  h.frame(protocol::encode(protocol::Reregister{beats.back()}));
  EXPECT_EQ(ofType(h.sent, "register").size(), 1u);
  EXPECT_TRUE(h.agent->registered());
  // A beat sent after that register, found unknown (the controller restarted again): register.
  h.sent.clear();
  h.now += 1000;
  h.agent->tick(h.now);
  const auto later = ofType(h.sent, "heartbeat");
  ASSERT_EQ(later.size(), 1u);
  h.frame(protocol::encode(protocol::Reregister{later[0]["seq"].get<std::uint64_t>()}));
  EXPECT_EQ(ofType(h.sent, "register").size(), 1u);
  EXPECT_FALSE(h.agent->registered());
}

TEST(Agent, LateRegistrationAnswersInABurstBringOneNewRegisterNotOneEach) {
  Harness h;
  std::vector<std::uint64_t> seqs{1};
  for (auto seq : seqsSentUntil(h, 4000, "register")) seqs.push_back(seq);
  ASSERT_GE(seqs.size(), 2u);
  h.sent.clear();
  h.now = 9000;  // an overloaded controller answers all of them at once, too late for each
  for (auto seq : seqs) h.frame(protocol::encode(protocol::Registered{5000, 1000, seq}));
  EXPECT_EQ(ofType(h.sent, "register").size(), 1u);
  EXPECT_FALSE(h.agent->registered());
}

protocol::PlanMsg prepare(std::uint64_t op, const std::string& hypervisor) {
  protocol::PlanMsg plan;
  plan.steps.push_back({op, pool::StepKind::PrepareHypervisor, "", hypervisor, std::nullopt});
  return plan;
}

TEST(Agent, PrepareHypervisorGivesTheBladeAPersonalityItRegistersWithFromThenOn) {
  Harness h;
  h.frame(protocol::encode(protocol::Registered{5000, 1000}));
  h.sent.clear();
  h.frame(protocol::encode(prepare(1, "xen")));
  ASSERT_EQ(h.sent.size(), 1u);
  EXPECT_TRUE(h.sent[0]["ok"].get<bool>()) << h.sent[0].dump();
  EXPECT_EQ(h.driver->nodeInfo()->personality, pool::Hypervisor::Xen) << "kept by the driver, for the next agent";
  h.sent.clear();
  h.frame(protocol::encode(protocol::Reregister{}));
  ASSERT_EQ(ofType(h.sent, "register").size(), 1u);
  EXPECT_EQ(ofType(h.sent, "register")[0]["inventory"]["personality"], "xen");
}

TEST(Agent, PrepareHypervisorForAPersonalityItsDriverLacksIsRefusedNamingTheBlade) {
  Harness h(HarnessOptions{.kvmOnly = true});
  h.frame(protocol::encode(protocol::Registered{5000, 1000}));
  h.sent.clear();
  h.frame(protocol::encode(prepare(1, "xen")));
  ASSERT_EQ(h.sent.size(), 1u);
  EXPECT_FALSE(h.sent[0]["ok"].get<bool>());
  EXPECT_EQ(h.sent[0]["error"], "blade 'b1' runs the kvm driver and cannot become a xen blade in place");
  h.sent.clear();
  h.frame(protocol::encode(prepare(2, "kvm")));
  ASSERT_EQ(h.sent.size(), 1u);
  EXPECT_TRUE(h.sent[0]["ok"].get<bool>()) << h.sent[0].dump();
}

// A frozen agent cannot fence: its lease guard must. With a driver that models the blade's
// watchdog, each lease renews it, and when renewals stop the domains end at the lease's end
// without the agent doing anything.
TEST(Agent, TheDriversWatchdogGuardsTheLeaseWhenTheAgentFreezes) {
  auto clock = std::make_shared<drivers::test::ManualClock>();
  Harness h(HarnessOptions{.clock = clock, .driverWatchdog = true});
  h.frame(protocol::encode(protocol::Registered{5000, 1000}));  // lease until 5000 (register sent at 0)
  h.frame(protocol::encode(definesAndStarts(1)));
  ASSERT_EQ(stateOf(*h.driver, "web-0"), "running");
  // The agent freezes: no tick, no frame. Its blade's clock runs on.
  clock->advance(4999);
  EXPECT_EQ(stateOf(*h.driver, "web-0"), "running");
  clock->advance(1);
  EXPECT_EQ(stateOf(*h.driver, "web-0"), "shutoff");
  EXPECT_TRUE(h.driver->watchdogFired());
}

}  // namespace
}  // namespace loom::agent
