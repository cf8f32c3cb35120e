// The fabric relay with real ZeroMQ sockets on loopback: a stand-in controller (a ROUTER)
// on one side, agents (DEALERs named after their blades) on the other.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <thread>
#include <zmq.hpp>

#include "node-agent/FabricRelay.h"
#include "protocol/CurveKeys.h"
#include "protocol/RelayEnvelope.h"
#include "tests/support/ZmqTestSupport.h"

namespace loom::agent {
namespace {

zmq::context_t& context() {
  static zmq::context_t ctx;
  return ctx;
}

std::vector<std::string> receiveFrom(zmq::socket_t& s, int ms = 3000) { return loom::testing::receiveParts(s, ms); }

void sendTo(zmq::socket_t& s, const std::vector<std::string>& parts) {
  for (std::size_t i = 0; i < parts.size(); ++i)
    s.send(zmq::buffer(parts[i]), i + 1 < parts.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
}

// The controller's side: a ROUTER on a free port.
struct FakeController {
  zmq::socket_t router{context(), zmq::socket_type::router};
  std::string endpoint;
  explicit FakeController(const protocol::CurveKeyPair* keys = nullptr) {
    router.set(zmq::sockopt::linger, 0);
    if (keys) {
      router.set(zmq::sockopt::curve_server, 1);
      router.set(zmq::sockopt::curve_secretkey, keys->secretKey);
    }
    router.bind("tcp://127.0.0.1:*");
    endpoint = router.get(zmq::sockopt::last_endpoint);
  }
  // (blade, payload) pairs of envelopes from `relayId` until `want` have arrived (or 3 s).
  std::vector<std::pair<std::string, std::string>> collect(std::size_t want, const std::string& relayId = "relay/c1") {
    std::vector<std::pair<std::string, std::string>> out;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
    while (out.size() < want && std::chrono::steady_clock::now() < deadline) {
      auto m = receiveFrom(router, 200);
      if (m.empty()) continue;
      EXPECT_EQ(m[0], relayId);
      EXPECT_EQ(m[1], protocol::kRelayMarker);
      for (std::size_t i = 2; i + 1 < m.size(); i += 2) out.emplace_back(m[i], m[i + 1]);
    }
    return out;
  }
};

struct Agent {
  zmq::socket_t socket{context(), zmq::socket_type::dealer};
  Agent(const std::string& blade, const std::string& endpoint, const protocol::CurveKeyPair* keys = nullptr,
        const std::string& serverKey = "") {
    socket.set(zmq::sockopt::routing_id, blade);
    socket.set(zmq::sockopt::linger, 0);
    if (keys) {
      socket.set(zmq::sockopt::curve_serverkey, serverKey);
      socket.set(zmq::sockopt::curve_publickey, keys->publicKey);
      socket.set(zmq::sockopt::curve_secretkey, keys->secretKey);
    }
    socket.connect(endpoint);
  }
};

// A relay on its own thread, stopped and joined on the way out.
struct RunningRelay {
  FabricRelay relay;
  std::thread thread;
  std::string endpoint;
  explicit RunningRelay(RelayOptions o) : relay(std::move(o)) {
    auto started = relay.start();
    EXPECT_TRUE(started) << (started ? "" : started.error().message);
    endpoint = "tcp://127.0.0.1:" + std::to_string(relay.boundPort());
    thread = std::thread([this] { relay.run(); });
  }
  ~RunningRelay() {
    relay.stop();
    thread.join();
  }
  // Sends `payload` from `agent` until the relay carried it up. Right after the start its
  // own connection to loomd may not be up yet: it holds the frame until it is, for its
  // hold (2 s), then drops it (a stale frame is worse than none); an agent's timer would
  // send again.
  void carry(zmq::socket_t& agent, const std::string& payload) {
    for (int attempt = 0; attempt < 50; ++attempt) {
      const RelayStats before = relay.stats();
      agent.send(zmq::buffer(payload));
      bool dropped = false;
      for (int i = 0; i < 300 && !dropped; ++i) {  // sent again only once it was dropped
        const RelayStats now = relay.stats();
        if (now.up > before.up) return;
        dropped = now.droppedUp > before.droppedUp;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      if (!dropped) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ADD_FAILURE() << "the relay never carried '" << payload << "' up";
  }
};

RelayOptions insecureRelay(const std::string& controller) {
  RelayOptions o;
  o.name = "c1";
  o.listen = "tcp://127.0.0.1:*";
  o.controller = controller;
  o.insecure = true;
  return o;
}

TEST(FabricRelay, CarriesAgentsFramesUpInEnvelopesAndTheAnswersDownToEachBlade) {
  FakeController loomd;
  RunningRelay relay(insecureRelay(loomd.endpoint));
  Agent a("c1-s1", relay.endpoint), b("c1-s2", relay.endpoint);
  relay.carry(a.socket, "from s1");
  relay.carry(b.socket, "from s2");
  auto up = loomd.collect(2);
  std::sort(up.begin(), up.end());
  EXPECT_EQ(up, (std::vector<std::pair<std::string, std::string>>{{"c1-s1", "from s1"}, {"c1-s2", "from s2"}}));

  sendTo(loomd.router,
         {"relay/c1", std::string(protocol::kRelayMarker), "c1-s2", "to s2", "c1-s1", "to s1", "c1-s1", "again s1"});
  EXPECT_EQ(receiveFrom(b.socket), std::vector<std::string>{"to s2"});
  EXPECT_EQ(receiveFrom(a.socket), std::vector<std::string>{"to s1"});
  EXPECT_EQ(receiveFrom(a.socket), std::vector<std::string>{"again s1"});
  EXPECT_EQ(relay.relay.stats().up, 2u);
  EXPECT_EQ(relay.relay.stats().down, 3u);
}

TEST(FabricRelay, OneAgentsBadMessageDoesNotSpoilTheOthers) {
  FakeController loomd;
  RunningRelay relay(insecureRelay(loomd.endpoint));
  Agent bad("c1-s1", relay.endpoint), good("c1-s2", relay.endpoint), badName("relay/c7", relay.endpoint);
  sendTo(bad.socket, {"two", "frames"});
  badName.socket.send(zmq::buffer(std::string("posing as a relay")));
  relay.carry(good.socket, "fine");
  EXPECT_EQ(loomd.collect(1), (std::vector<std::pair<std::string, std::string>>{{"c1-s2", "fine"}}));
  EXPECT_TRUE(receiveFrom(loomd.router, 300).empty());
  EXPECT_EQ(relay.relay.stats().refused, 2u);
}

TEST(FabricRelay, DropsWhatTheControllerSendsThatIsNoEnvelopeAndKeepsGoing) {
  FakeController loomd;
  RunningRelay relay(insecureRelay(loomd.endpoint));
  Agent a("c1-s1", relay.endpoint);
  relay.carry(a.socket, "hello");
  ASSERT_EQ(loomd.collect(1).size(), 1u);
  sendTo(loomd.router, {"relay/c1", "not an envelope"});
  sendTo(loomd.router, {"relay/c1", "loom-relay/9", "c1-s1", "x"});
  sendTo(loomd.router,
         {"relay/c1", std::string(protocol::kRelayMarker), "nobody-here", "lost"});  // not connected: dropped
  sendTo(loomd.router, {"relay/c1", std::string(protocol::kRelayMarker), "c1-s1", "after"});
  EXPECT_EQ(receiveFrom(a.socket), std::vector<std::string>{"after"});
  EXPECT_EQ(relay.relay.stats().refused, 2u);
}

// A controller that is not there yet: an IPC path of this test's own, which nothing else
// can take meanwhile (a TCP port reserved and freed could be, by a test running beside
// this one: the relay then connected to it and the frame went "up").
std::string absentController() {
  // (An IPC path is at most 107 bytes: numbered, not named after the test.)
  static int n = 0;
  const auto path = (std::filesystem::temp_directory_path() /
                     ("loom-relay-away-" + std::to_string(::getpid()) + "-" + std::to_string(++n)))
                        .string();
  std::filesystem::remove(path);
  return "ipc://" + path;
}

TEST(FabricRelay, DropsAFrameHeldLongerThanItsHoldWhileTheControllerIsAwayAndCarriesTheNextOnceItIsBack) {
  const std::string endpoint = absentController();
  RelayOptions o = insecureRelay(endpoint);
  o.holdMs = 200;
  RunningRelay relay(o);
  Agent a("c1-s1", relay.endpoint);
  a.socket.send(zmq::buffer(std::string("into the void")));
  // Bounded at 5 s: on a loaded machine the agent's connection to the relay alone can take
  // a second (the full suite under -j2 failed at 1 s).
  for (int i = 0; i < 250 && relay.relay.stats().droppedUp == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(relay.relay.stats().droppedUp, 1u)
      << "held no longer than its hold: older, it would be stale (carried up: " << relay.relay.stats().up << ")";

  zmq::socket_t router{context(), zmq::socket_type::router};
  router.set(zmq::sockopt::linger, 0);
  router.bind(endpoint);
  // The relay reconnects within its 100 ms reconnect interval; the agent's next beat goes through.
  std::vector<std::string> m;
  for (int i = 0; i < 30 && m.empty(); ++i) {
    a.socket.send(zmq::buffer(std::string("beat")));
    m = receiveFrom(router, 200);
  }
  ASSERT_EQ(m.size(), 4u);
  EXPECT_EQ(m[2], "c1-s1");
  EXPECT_EQ(m[3], "beat") << "the frame held past its hold is not carried";
}

TEST(FabricRelay, HoldsEachBladesLatestFrameWhileNoControllerIsReachableAndCarriesItTheMomentOneIs) {
  // A leader killed, the next not bound yet: a blade behind the relay cannot tell (its send
  // to the relay went), so without the hold its next frame would be a heartbeat later.
  const std::string endpoint = absentController();
  RelayOptions o = insecureRelay(endpoint);
  o.holdMs = 30000;
  RunningRelay relay(o);
  Agent a("c1-s1", relay.endpoint), b("c1-s2", relay.endpoint);
  a.socket.send(zmq::buffer(std::string("a: older")));
  a.socket.send(zmq::buffer(std::string("a: latest")));
  b.socket.send(zmq::buffer(std::string("b: latest")));
  // Both of a's frames reached the relay once the older was superseded (counted dropped).
  for (int i = 0; i < 250 && relay.relay.stats().droppedUp == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_EQ(relay.relay.stats().droppedUp, 1u);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // b's too, on a slow machine
  EXPECT_EQ(relay.relay.stats().up, 0u);

  zmq::socket_t router{context(), zmq::socket_type::router};
  router.set(zmq::sockopt::linger, 0);
  router.bind(endpoint);
  // Nothing more is sent by the agents: what arrives is what the relay held.
  std::vector<std::pair<std::string, std::string>> up;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (up.size() < 2 && std::chrono::steady_clock::now() < deadline) {
    auto m = receiveFrom(router, 200);
    if (m.empty()) continue;
    ASSERT_GE(m.size(), 4u);
    EXPECT_EQ(m[0], "relay/c1");
    for (std::size_t i = 2; i + 1 < m.size(); i += 2) up.emplace_back(m[i], m[i + 1]);
  }
  std::sort(up.begin(), up.end());
  EXPECT_EQ(up, (std::vector<std::pair<std::string, std::string>>{{"c1-s1", "a: latest"}, {"c1-s2", "b: latest"}}));
  EXPECT_TRUE(receiveFrom(router, 300).empty()) << "each blade's latest, once";
  EXPECT_EQ(relay.relay.stats().carriedLate, 2u);
  EXPECT_EQ(relay.relay.stats().up, 2u);
}

TEST(FabricRelay, AdmitsOnlyAllowedAgentKeysAndAuthenticatesItselfToTheController) {
  auto controllerKeys = protocol::generateCurveKeyPair().value();
  auto relayKeys = protocol::generateCurveKeyPair().value();
  auto allowed = protocol::generateCurveKeyPair().value();
  auto stranger = protocol::generateCurveKeyPair().value();
  FakeController loomd(&controllerKeys);
  RelayOptions o = insecureRelay(loomd.endpoint);
  o.insecure = false;
  o.secretKey = relayKeys.secretKey;
  o.serverKey = controllerKeys.publicKey;
  o.allowedKeys = {allowed.publicKey};
  RunningRelay relay(o);
  Agent good("c1-s1", relay.endpoint, &allowed, relayKeys.publicKey);
  Agent bad("c1-s2", relay.endpoint, &stranger, relayKeys.publicKey);
  bad.socket.send(zmq::buffer(std::string("let me in")));
  relay.carry(good.socket, "hello");
  EXPECT_EQ(loomd.collect(1), (std::vector<std::pair<std::string, std::string>>{{"c1-s1", "hello"}}));
  EXPECT_TRUE(receiveFrom(loomd.router, 300).empty());
  EXPECT_GE(relay.relay.stats().refused, 1u);
}

TEST(FabricRelay, RefusesANameThatIsNoBladeName) {
  RelayOptions o = insecureRelay("tcp://127.0.0.1:1");
  o.name = "a/b";
  FabricRelay relay(o);
  auto s = relay.start();
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("'a/b'"), std::string::npos);
}

}  // namespace
}  // namespace loom::agent
