// loomd's fabric thread with real ZeroMQ sockets on loopback: direct agents and fabric
// relays, CurveZMQ roles, and what it does with envelopes it must refuse. And a loomd that
// does not act (controller/Leadership.h): what its fabric thread and its core leave undone.
#include <gtest/gtest.h>

#include <filesystem>
#include <future>
#include <sstream>
#include <thread>
#include <zmq.hpp>

#include "controller/Controller.h"
#include "controller/ControllerLoop.h"
#include "protocol/CurveKeys.h"
#include "protocol/Messages.h"
#include "protocol/RelayEnvelope.h"
#include "tests/controller/ControllerBuilders.h"
#include "tests/support/TestToken.h"
#include "tests/support/ZmqTestSupport.h"

namespace loom::controller {
namespace {

using protocol::Json;

// A loomd without HTTP: the controller core on a SQLite file, its loop on its own thread,
// the fabric bound to a free loopback port.
struct Loomd {
  std::string path;
  std::unique_ptr<StateStore> store;
  std::unique_ptr<Controller> controller;
  std::unique_ptr<ControllerLoop> loop;
  std::thread core;
  std::string endpoint;

  // `leadership`: solo when null.
  explicit Loomd(FabricOptions fabric = {}, ControllerOptions options = {}, const Leadership* leadership = nullptr) {
    auto dir = std::filesystem::temp_directory_path() / ("loom-fabric-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    path = (dir / ::testing::UnitTest::GetInstance()->current_test_info()->name()).string();
    for (const char* s : {"", "-wal", "-shm"}) std::filesystem::remove(path + s);
    store = std::move(openSqliteStateStore(path)).value();
    options.fabricRenewsLeases = true;
    options = ::loom::testing::withTestAdmin(std::move(options));
    controller = std::make_unique<Controller>(
        *store, options, [this](const std::string& b, std::string f) { loop->send(b, std::move(f)); }, [] { return 1; },
        leadership ? *leadership : Leadership::soloDefault());
    EXPECT_TRUE(controller->recover(ControllerLoop::monotonicMs()));
    fabric.endpoint = "tcp://127.0.0.1:*";
    fabric.leaseMs = options.leaseMs;
    fabric.heartbeatMs = options.heartbeatMs;
    loop = std::make_unique<ControllerLoop>(*controller, fabric);
    EXPECT_TRUE(loop->bind());
    endpoint = loop->boundEndpoint();
    core = std::thread([this] { loop->run(); });
  }
  ~Loomd() { stop(); }
  // Stops the threads; after this the controller may be read from the test's thread.
  void stop() {
    if (!core.joinable()) return;
    loop->stop();
    core.join();
  }
  // An API answer's body: on the core thread while it runs, else here.
  std::string get(const std::string& path) {
    std::promise<std::string> answer;
    auto ask = [&] {
      controller->handleApi(::loom::testing::asAdmin({"GET", path, {}, ""}), ControllerLoop::monotonicMs(),
                            [&](ApiResponse r) { answer.set_value(r.body); });
    };
    if (core.joinable())
      loop->post(ask);
    else
      ask();
    return answer.get_future().get();
  }
  Json blade(const std::string& name) { return Json::parse(get("/v1/blades/" + name)); }
  double metric(const std::string& name) {
    std::istringstream in(get("/metrics"));
    for (std::string line; std::getline(in, line);)
      if (line.rfind(name + " ", 0) == 0) return std::stod(line.substr(name.size() + 1));
    return -1;
  }
};

zmq::context_t& context() {
  static zmq::context_t ctx;
  return ctx;
}

// A DEALER on loopback: an agent (routing id = blade) or a relay (routing id relay/NAME).
struct Peer {
  zmq::socket_t socket{context(), zmq::socket_type::dealer};
  Peer(const std::string& routingId, const std::string& endpoint, const protocol::CurveKeyPair* keys = nullptr,
       const std::string& serverKey = "") {
    socket.set(zmq::sockopt::routing_id, routingId);
    socket.set(zmq::sockopt::linger, 0);
    if (keys) {
      socket.set(zmq::sockopt::curve_serverkey, serverKey);
      socket.set(zmq::sockopt::curve_publickey, keys->publicKey);
      socket.set(zmq::sockopt::curve_secretkey, keys->secretKey);
    }
    socket.connect(endpoint);
  }
  void send(const std::vector<std::string>& parts) {
    for (std::size_t i = 0; i < parts.size(); ++i)
      socket.send(zmq::buffer(parts[i]), i + 1 < parts.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
  }
  // One whole message, or nothing within `ms`.
  std::vector<std::string> receive(int ms = 3000) { return loom::testing::receiveParts(socket, ms); }
};

std::string registerFrame(const std::string& blade) {
  protocol::Register r;
  r.blade = blade;
  r.inventory.chassis = "c1";
  r.inventory.cores = 8;
  r.inventory.memoryMib = 16384;
  r.inventory.hypervisors = {"kvm"};
  r.seq = 1;
  return protocol::encode(r).dump();
}

std::string heartbeatFrame(std::uint64_t seq) {
  protocol::Heartbeat hb;
  hb.seq = seq;
  return protocol::encode(hb).dump();
}

// (blade, type) of every frame of a relay envelope; empty when it is not one.
std::vector<std::pair<std::string, std::string>> envelopeTypes(const std::vector<std::string>& message) {
  std::vector<std::pair<std::string, std::string>> out;
  if (message.empty() || message[0] != protocol::kRelayMarker || message.size() % 2 == 0) return out;
  for (std::size_t i = 1; i + 1 < message.size(); i += 2)
    out.emplace_back(message[i], Json::parse(message[i + 1])["type"]);
  return out;
}

TEST(FabricLoop, AnswersARelayedBladeThroughItsRelayAndADirectOneDirectly) {
  FabricOptions insecure;
  insecure.insecure = true;
  Loomd loomd(insecure);
  Peer relay("relay/c1", loomd.endpoint);
  Peer direct("c2-s1", loomd.endpoint);

  relay.send({std::string(protocol::kRelayMarker), "c1-s1", registerFrame("c1-s1")});
  auto answer = relay.receive();
  ASSERT_EQ(envelopeTypes(answer), (std::vector<std::pair<std::string, std::string>>{{"c1-s1", "registered"}}));

  direct.send({registerFrame("c2-s1")});
  auto directAnswer = direct.receive();
  ASSERT_EQ(directAnswer.size(), 1u) << "a direct agent gets bare frames, no envelope";
  EXPECT_EQ(Json::parse(directAnswer[0])["type"], "registered");

  // The operator sees which relay carries a blade.
  EXPECT_EQ(loomd.blade("c1-s1")["relay"], "c1");
  EXPECT_TRUE(loomd.blade("c2-s1")["relay"].is_null());
}

TEST(FabricLoop, AnswersTheHeartbeatsOfOneEnvelopeInOneEnvelope) {
  FabricOptions insecure;
  insecure.insecure = true;
  Loomd loomd(insecure);
  Peer relay("relay/c1", loomd.endpoint);
  relay.send({std::string(protocol::kRelayMarker), "c1-s1", registerFrame("c1-s1"), "c1-s2", registerFrame("c1-s2"),
              "c1-s3", registerFrame("c1-s3")});
  ASSERT_EQ(envelopeTypes(relay.receive()).size(), 3u);
  relay.send({std::string(protocol::kRelayMarker), "c1-s1", heartbeatFrame(1), "c1-s2", heartbeatFrame(1), "c1-s3",
              heartbeatFrame(1)});
  auto answers = envelopeTypes(relay.receive());
  EXPECT_EQ(answers, (std::vector<std::pair<std::string, std::string>>{
                         {"c1-s1", "lease-renewed"}, {"c1-s2", "lease-renewed"}, {"c1-s3", "lease-renewed"}}));
}

TEST(FabricLoop, ABladeThatMovesFromARelayToADirectConnectionIsAnsweredDirectly) {
  FabricOptions insecure;
  insecure.insecure = true;
  Loomd loomd(insecure);
  Peer relay("relay/c1", loomd.endpoint);
  relay.send({std::string(protocol::kRelayMarker), "c1-s1", registerFrame("c1-s1")});
  ASSERT_EQ(envelopeTypes(relay.receive()).size(), 1u);
  Peer direct("c1-s1", loomd.endpoint);
  direct.send({registerFrame("c1-s1")});
  auto answer = direct.receive();
  ASSERT_EQ(answer.size(), 1u);
  EXPECT_EQ(Json::parse(answer[0])["type"], "registered");
  EXPECT_TRUE(relay.receive(300).empty()) << "nothing more through the relay";
  EXPECT_TRUE(loomd.blade("c1-s1")["relay"].is_null());
}

TEST(FabricLoop, RefusesBadEnvelopesWholeAndKeepsServing) {
  FabricOptions insecure;
  insecure.insecure = true;
  Loomd loomd(insecure);
  Peer relay("relay/c1", loomd.endpoint);
  Peer notARelay("c9-s9", loomd.endpoint);
  relay.send({std::string(protocol::kRelayMarker), "c1-s1", registerFrame("c1-s1"), "c1-s2"});  // unpaired
  relay.send({"loom-relay/7", "c1-s1", registerFrame("c1-s1")});                                // another version
  relay.send({std::string(protocol::kRelayMarker), "relay/x", registerFrame("relay/x")});       // not a blade name
  notARelay.send({std::string(protocol::kRelayMarker), "c1-s1", registerFrame("c1-s1")});  // routing id is no relay's
  EXPECT_TRUE(relay.receive(500).empty());
  EXPECT_TRUE(notARelay.receive(100).empty());
  // Still serving.
  relay.send({std::string(protocol::kRelayMarker), "c1-s1", registerFrame("c1-s1")});
  EXPECT_EQ(envelopeTypes(relay.receive()).size(), 1u);
  loomd.stop();
  EXPECT_EQ(loomd.controller->rejectedTotal(), 4u);
  EXPECT_EQ(loomd.controller->placement().bindings.size(), 0u);
}

TEST(FabricLoop, OnlyARelayKeyMaySpeakForOtherBlades) {
  auto server = protocol::generateCurveKeyPair().value();
  auto agentKey = protocol::generateCurveKeyPair().value();
  auto relayKey = protocol::generateCurveKeyPair().value();
  FabricOptions secure;
  secure.secretKey = server.secretKey;
  secure.allowedKeys = {agentKey.publicKey};
  secure.relayKeys = {relayKey.publicKey};
  Loomd loomd(secure);

  // An agent's key, even under a relay's routing id, cannot carry other blades' frames.
  Peer impostor("relay/c1", loomd.endpoint, &agentKey, server.publicKey);
  impostor.send({std::string(protocol::kRelayMarker), "c1-s1", registerFrame("c1-s1")});
  EXPECT_TRUE(impostor.receive(800).empty());

  Peer relay("relay/c2", loomd.endpoint, &relayKey, server.publicKey);
  relay.send({std::string(protocol::kRelayMarker), "c2-s1", registerFrame("c2-s1")});
  EXPECT_EQ(envelopeTypes(relay.receive()),
            (std::vector<std::pair<std::string, std::string>>{{"c2-s1", "registered"}}));

  // The agent's key still works for its own blade.
  Peer agent("c3-s1", loomd.endpoint, &agentKey, server.publicKey);
  agent.send({registerFrame("c3-s1")});
  EXPECT_EQ(agent.receive().size(), 1u);

  loomd.stop();
  EXPECT_EQ(loomd.controller->rejectedTotal(), 1u);
  EXPECT_TRUE(loomd.blade("c1-s1").contains("error")) << "the impostor's blade was never registered";
}

TEST(FabricLoop, AHealthyBladeStaysOnlineOnPlainBeatsAndASilentOneTurnsSuspectThenComesBack) {
  FabricOptions insecure;
  insecure.insecure = true;
  ControllerOptions fast;
  fast.heartbeatMs = 100;
  fast.suspectMs = 400;
  fast.deadMs = 5000;
  fast.leaseMs = 10000;
  Loomd loomd(insecure, fast);
  Peer agent("c1-s1", loomd.endpoint);
  agent.send({registerFrame("c1-s1")});
  ASSERT_EQ(agent.receive().size(), 1u);
  std::uint64_t seq = 0;
  auto beatFor = [&](int ms) {
    for (int t = 0; t < ms; t += 100) {
      agent.send({heartbeatFrame(++seq)});
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  };
  // Plain beats for three times the suspect limit: the fabric thread keeps most of them,
  // and the blade must stay online all along.
  for (int i = 0; i < 6; ++i) {
    beatFor(200);
    auto b = loomd.blade("c1-s1");
    ASSERT_EQ(b["state"], "available") << "after " << (i + 1) * 200 << " ms of beats: " << b.dump();
    EXPECT_LT(b["heartbeat_age_ms"].get<std::int64_t>(), 400);
  }
  EXPECT_GE(loomd.metric("loom_heartbeats_total"), 10) << "kept beats are counted too";
  // Silence: suspect.
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  EXPECT_EQ(loomd.blade("c1-s1")["state"], "suspect");
  // Heard again: back at once.
  beatFor(200);
  EXPECT_EQ(loomd.blade("c1-s1")["state"], "available");
  // And again quiet-handled for a while.
  beatFor(800);
  EXPECT_EQ(loomd.blade("c1-s1")["state"], "available");
}

// --- a loomd that does not act (controller/Leadership.h) ----------------------------------

FabricOptions insecureFabric() {
  FabricOptions f;
  f.insecure = true;
  return f;
}

TEST(FabricLoop, AStandbyAnswersNothingAndOnceGrantedAnswersUnderItsEpoch) {
  auto leadership = Leadership::replica();
  Loomd loomd(insecureFabric(), {}, &leadership);
  Peer agent("c1-s1", loomd.endpoint);
  agent.send({registerFrame("c1-s1")});
  agent.send({heartbeatFrame(1)});
  EXPECT_TRUE(agent.receive(600).empty()) << "no registered, no reregister, no lease-renewed";
  EXPECT_GE(loomd.loop->notActing().received, 2u);
  EXPECT_TRUE(loomd.blade("c1-s1").contains("error")) << "nothing reached the core";

  leadership.grant(5, ControllerLoop::monotonicMs() + 60000);
  agent.send({registerFrame("c1-s1")});
  auto answer = agent.receive();
  ASSERT_EQ(answer.size(), 1u);
  EXPECT_EQ(Json::parse(answer[0])["type"], "registered");
  EXPECT_EQ(Json::parse(answer[0])["epoch"], 5);
  agent.send({heartbeatFrame(2)});
  answer = agent.receive();
  ASSERT_EQ(answer.size(), 1u);
  EXPECT_EQ(Json::parse(answer[0])["type"], "lease-renewed");
  EXPECT_EQ(Json::parse(answer[0])["epoch"], 5);
}

TEST(FabricLoop, ALoomdWhoseTermRanOutSendsNothingNotEvenWhatWasQueuedBefore) {
  auto leadership = Leadership::replica();
  leadership.grant(3, ControllerLoop::monotonicMs() + 60000);
  Loomd loomd(insecureFabric(), {}, &leadership);
  Peer direct("c1-s1", loomd.endpoint);
  Peer relay("relay/c2", loomd.endpoint);
  direct.send({registerFrame("c1-s1")});
  ASSERT_EQ(direct.receive().size(), 1u);
  relay.send({std::string(protocol::kRelayMarker), "c2-s1", registerFrame("c2-s1")});
  ASSERT_EQ(envelopeTypes(relay.receive()).size(), 1u);

  // The term ends (the election thread has not noticed yet: nobody revoked anything).
  leadership.grant(3, ControllerLoop::monotonicMs() - 1);
  // What the core had queued for both, and what the agents send now: nothing goes out.
  loomd.loop->send("c1-s1", protocol::encode(protocol::Reregister{0, 3}));
  loomd.loop->send("c2-s1", protocol::encode(protocol::Reregister{0, 3}));
  direct.send({heartbeatFrame(1)});
  relay.send({std::string(protocol::kRelayMarker), "c2-s1", heartbeatFrame(1)});
  EXPECT_TRUE(direct.receive(600).empty());
  EXPECT_TRUE(relay.receive(100).empty());
  const auto dropped = loomd.loop->notActing();
  EXPECT_EQ(dropped.unsent, 2u) << "both queued frames dropped, counted";
  EXPECT_EQ(dropped.received, 2u) << "both heartbeats read and dropped, counted";
}

// The core without sockets, under a replica Leadership whose clock the test holds: the
// tick's `now` and the Leadership's clock are the same unless a test parts them (a loomd
// frozen in the middle of a tick).
struct ReplicaCore {
  std::string path;
  std::int64_t now = 1000;
  std::int64_t leaderClock = 1000;
  Leadership leadership{Leadership::Mode::Replica, [this] { return leaderClock; }};
  std::unique_ptr<StateStore> store;
  std::unique_ptr<Controller> controller;
  std::vector<std::pair<std::string, Json>> sent;
  std::vector<std::pair<std::string, std::string>> ran;  // fence commands started
  std::uint64_t seq = 0;

  // `epoch`: a term granted before the core recovers, as a replica's term starts.
  explicit ReplicaCore(ControllerOptions options = {}, std::uint64_t epoch = 0) {
    if (epoch) leadership.grant(epoch, leaderClock + 3600000);
    auto dir = std::filesystem::temp_directory_path() / ("loom-fabric-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    path = (dir / ("core-" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()))).string();
    for (const char* s : {"", "-wal", "-shm"}) std::filesystem::remove(path + s);
    store = std::move(openSqliteStateStore(path)).value();
    controller = std::make_unique<Controller>(
        *store, ::loom::testing::withTestAdmin(options),
        [this](const std::string& b, std::string f) { sent.emplace_back(b, Json::parse(f)); }, [] { return 1; },
        leadership);
    controller->setFenceRunner([this](const std::string& b, const std::string& c) { ran.emplace_back(b, c); });
    EXPECT_TRUE(controller->recover(now));
  }
  void frame(const std::string& blade, const Json& f) { controller->onFrame(blade, f.dump(), now); }
  void registerBlade(const std::string& blade) { frame(blade, Json::parse(registerFrame(blade))); }
  ApiResponse api(const std::string& method, const std::string& target, const std::string& body = "",
                  std::map<std::string, std::string> query = {}) {
    ApiResponse out{0, "", ""};
    controller->handleApi(::loom::testing::asAdmin({method, target, std::move(query), body}), now,
                          [&](ApiResponse r) { out = std::move(r); });
    return out;
  }
  // `ms` of 100 ms ticks; the blade beats each second unless silent, and answers its steps.
  void run(std::int64_t ms, bool silent = false) {
    for (std::int64_t t = 0; t < ms; t += 100) {
      now += 100;
      leaderClock += 100;
      if (!silent) {
        for (auto& [blade, f] : std::exchange(sent, {}))
          if (f["type"] == "plan")
            for (auto& step : f["steps"])
              frame(blade, protocol::encode(protocol::StepResult{step["op"].get<std::uint64_t>(), true, ""}));
        if (now % 1000 == 0) frame("c1-s1", Json::parse(heartbeatFrame(++seq)));
      }
      controller->tick(now);
    }
  }
  std::vector<Json> plans() {
    std::vector<Json> out;
    for (auto& [blade, f] : sent)
      if (f["type"] == "plan") out.push_back(f);
    return out;
  }
  bool hasEvent(const std::string& part) {
    for (auto& e : Json::parse(api("GET", "/v1/events", "", {{"limit", "10000"}}).body))
      if (e["message"].get<std::string>().find(part) != std::string::npos) return true;
    return false;
  }
};

TEST(ControllerLeadership, StepsLeaveOnlyWhileItActsAndCarryTheEpochTheyLeftUnder) {
  ReplicaCore c;
  c.leadership.grant(4, c.now + 3600000);
  c.registerBlade("c1-s1");
  ASSERT_FALSE(c.sent.empty());
  EXPECT_EQ(c.sent[0].second["type"], "registered");
  EXPECT_EQ(c.sent[0].second["epoch"], 4);
  ASSERT_EQ(c.api("POST", "/v1/apply", testing::yaml(testing::web(1))).status, 200);
  c.controller->tick(c.now);
  ASSERT_FALSE(c.plans().empty());
  for (const auto& p : c.plans()) EXPECT_EQ(p["epoch"], 4) << p.dump();
  c.run(2000);

  // Stepped down: an operator's stop is planned, but no step leaves, and no frame is taken.
  c.leadership.revoke();
  c.sent.clear();
  ASSERT_EQ(c.api("POST", "/v1/servers/web-0/stop").status, 200);
  c.run(1000);
  EXPECT_TRUE(c.sent.empty()) << c.sent.front().second.dump();
  EXPECT_GE(c.controller->droppedNotActing(), 1u) << "the blade's heartbeat was dropped";

  // Leading again, under a newer epoch: the stop leaves, stamped with it.
  c.leadership.grant(9, c.leaderClock + 3600000);
  c.controller->tick(c.now);
  auto plans = c.plans();
  ASSERT_EQ(plans.size(), 1u);
  EXPECT_EQ(plans[0]["epoch"], 9);
  EXPECT_EQ(plans[0]["steps"][0]["kind"], "stop");
}

TEST(ControllerLeadership, ATermNumbersItsOperationsAboveEveryIdAnEarlierTermCouldHaveUsed) {
  // The previous leader's last ids may never have reached the store: an agent's late answer
  // to one must not match an operation of this term.
  ReplicaCore c({}, 7);
  c.registerBlade("c1-s1");
  ASSERT_EQ(c.api("POST", "/v1/apply", testing::yaml(testing::web(1))).status, 200);
  c.controller->tick(c.now);
  const auto plans = c.plans();
  ASSERT_FALSE(plans.empty());
  for (const auto& p : plans)
    for (const auto& step : p["steps"]) EXPECT_GT(step["op"].get<std::uint64_t>(), std::uint64_t{7} << 32) << p.dump();
}

TEST(ControllerLeadership, NothingIsFencedWhileItDoesNotActAndSilenceCountsFromWhenItActsAgain) {
  ControllerOptions o;  // lease 5 s, suspect 2.5 s, dead 4 s
  o.fenceCommand.clear();
  ReplicaCore c(o);
  c.leadership.grant(1, c.now + 3600000);
  c.registerBlade("c1-s1");
  c.run(2000);
  c.leadership.revoke();
  c.run(20000, /*silent=*/true);
  EXPECT_FALSE(c.hasEvent("suspect"));
  EXPECT_FALSE(c.hasEvent("blade fenced"));

  // Leading again: the blade was not heard because nothing was listening; it is given the
  // usual time from now, and fenced (its lease long gone) only if it stays silent.
  c.leadership.grant(2, c.leaderClock + 3600000);
  c.run(2000, true);
  EXPECT_FALSE(c.hasEvent("suspect")) << "silence counts from when it acts again";
  c.run(3000, true);
  EXPECT_TRUE(c.hasEvent("suspect"));
  EXPECT_TRUE(c.hasEvent("blade failed"));
  EXPECT_FALSE(c.hasEvent("blade fenced"))
      << "a new term fences nothing by lease before a whole lease and the margin: the previous leader may have "
         "renewed it just before it stopped";
  c.run(400, true);
  EXPECT_TRUE(c.hasEvent("blade fenced")) << "a lease that ran out while nobody led still fences, once it leads";
}

TEST(ControllerLeadership, AFenceCommandIsNotRunByALoomdWhoseTermEndedInTheMiddleOfATick) {
  ControllerOptions o;
  o.fenceCommand = "fence_ipmilan --plug {blade}";
  o.leaseMs = 20000;  // no lease fence gets in the way: only the command fences here
  ReplicaCore c(o);
  c.leadership.grant(1, c.now + 3600000);
  c.registerBlade("c1-s1");
  c.run(1000);  // last heard at 2000
  // The blade goes silent and turns failed on the tick at 6100 (dead after 4 s). The term
  // ends at 6150, and the loomd is frozen for 5 s just after that tick read the clock: the
  // tick's `now` is in the term, the clock at the moment of the fence command is not.
  c.leadership.grant(1, 6150);
  for (int i = 0; i < 40; ++i) {
    c.now += 100;
    c.leaderClock += 100;
    c.controller->tick(c.now);
  }
  ASSERT_EQ(c.now, 6000);
  c.now += 100;
  c.leaderClock = c.now + 5000;
  c.controller->tick(c.now);
  EXPECT_TRUE(c.hasEvent("blade failed"));
  EXPECT_TRUE(c.ran.empty()) << "the power-off is a leader's act";

  // A fence command's success reported after the term ended fences nothing either.
  c.leadership.grant(2, c.leaderClock + 3600000);
  c.run(1200, true);
  ASSERT_EQ(c.ran.size(), 1u) << "run once it leads again";
  c.leadership.revoke();
  c.controller->onFenceResult("c1-s1", true, "exit 0", c.now);
  EXPECT_FALSE(c.hasEvent("blade fenced"));
  c.leadership.grant(2, c.leaderClock + 3600000);
  c.run(1200, true);
  EXPECT_EQ(c.ran.size(), 2u) << "its leader runs it again";
  c.controller->onFenceResult("c1-s1", true, "exit 0", c.now);
  EXPECT_TRUE(c.hasEvent("blade fenced"));
}

}  // namespace
}  // namespace loom::controller
