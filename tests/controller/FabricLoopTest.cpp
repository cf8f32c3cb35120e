// loomd's fabric thread with real ZeroMQ sockets on loopback: direct agents and fabric
// relays, CurveZMQ roles, and what it does with envelopes it must refuse.
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

  explicit Loomd(FabricOptions fabric = {}, ControllerOptions options = {}) {
    auto dir = std::filesystem::temp_directory_path() / ("loom-fabric-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    path = (dir / ::testing::UnitTest::GetInstance()->current_test_info()->name()).string();
    for (const char* s : {"", "-wal", "-shm"}) std::filesystem::remove(path + s);
    store = std::move(openSqliteStateStore(path)).value();
    options.fabricRenewsLeases = true;
    controller = std::make_unique<Controller>(
        *store, options, [this](const std::string& b, std::string f) { loop->send(b, std::move(f)); },
        [] { return 1; });
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
      controller->handleApi({"GET", path, {}, ""}, ControllerLoop::monotonicMs(),
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

}  // namespace
}  // namespace loom::controller
