// Following the leader with real ZeroMQ (docs/FENCING.md, "Replicas: the epoch"): an agent
// (or a relay) whose --controller lists three endpoints reaches the one a leader has bound,
// follows a new leader of a higher epoch to another, keeps its lease and its servers, and
// refuses what the old leader still sends. Each loomd here is the real core and fabric
// loop on a SQLite file of its own, under a Leadership the test grants; the agent is the
// real AgentHost over a test driver whose journal shows whether a server ever stopped. A
// frozen leader is a child process stopped with SIGSTOP, its TCP connections left up.
//
// The timings measured are printed ("[ measure ]") and kept in node-agent/README.md.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <iostream>
#include <mutex>
#include <regex>
#include <thread>
#include <zmq.hpp>

#include "controller/Controller.h"
#include "controller/ControllerLoop.h"
#include "controller/Leadership.h"
#include "drivers/test/TestDriver.h"
#include "node-agent/AgentHost.h"
#include "node-agent/FabricRelay.h"
#include "protocol/Messages.h"
#include "tests/support/TestToken.h"
#include "tests/support/ZmqTestSupport.h"

namespace loom::agent {
namespace {

using controller::ControllerLoop;
using controller::Leadership;
using protocol::Json;

std::int64_t nowMs() { return ControllerLoop::monotonicMs(); }

std::filesystem::path scratch() {
  auto dir = std::filesystem::temp_directory_path() / ("loom-follow-" + std::to_string(::getpid()) + "-" +
                                                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// Three loopback ports free right now (bound together, so distinct, then released).
std::vector<int> freePorts(std::size_t n) {
  zmq::context_t ctx;
  std::vector<zmq::socket_t> held;
  std::vector<int> ports;
  for (std::size_t i = 0; i < n; ++i) {
    held.emplace_back(ctx, zmq::socket_type::router);
    held.back().set(zmq::sockopt::linger, 0);
    held.back().bind("tcp://127.0.0.1:*");
    const std::string ep = held.back().get(zmq::sockopt::last_endpoint);
    ports.push_back(std::stoi(ep.substr(ep.rfind(':') + 1)));
  }
  for (auto& s : held) s.close();
  return ports;
}

std::string endpoint(int port) { return "tcp://127.0.0.1:" + std::to_string(port); }

// One loomd replica leading under `epoch` (granted for an hour unless the test says
// otherwise), its fabric bound to `bindTo`.
struct Replica {
  Leadership leadership{Leadership::Mode::Replica};
  std::unique_ptr<controller::StateStore> store;
  std::unique_ptr<controller::Controller> core;
  std::unique_ptr<ControllerLoop> loop;
  std::thread thread;

  Replica(const std::string& db, const std::string& bindTo, std::uint64_t epoch) {
    leadership.grant(epoch, nowMs() + 3600000);
    store = std::move(controller::openSqliteStateStore(db)).value();
    controller::ControllerOptions options;  // heartbeat 1 s, lease 5 s: loomd's defaults
    options.fabricRenewsLeases = true;
    core = std::make_unique<controller::Controller>(
        *store, ::loom::testing::withTestAdmin(options),
        [this](const std::string& b, std::string f) { loop->send(b, std::move(f)); }, [] { return 1; }, leadership);
    EXPECT_TRUE(core->recover(nowMs()));
    controller::FabricOptions fabric;
    fabric.endpoint = bindTo;
    fabric.insecure = true;
    fabric.leaseMs = options.leaseMs;
    fabric.heartbeatMs = options.heartbeatMs;
    loop = std::make_unique<ControllerLoop>(*core, fabric);
    EXPECT_TRUE(loop->bind());
    thread = std::thread([this] { loop->run(); });
  }
  ~Replica() { stop(); }
  // The term over and the process gone: its socket closes, its connections with it.
  void stop() {
    if (!thread.joinable()) return;
    loop->stop();
    thread.join();
    loop.reset();
  }
  Json blade(const std::string& name) {
    auto answer = std::make_shared<std::promise<std::string>>();
    auto body = answer->get_future();
    loop->post([this, name, answer] {
      core->handleApi(::loom::testing::asAdmin({"GET", "/v1/blades/" + name, {}, ""}), nowMs(),
                      [answer](controller::ApiResponse r) { answer->set_value(r.body); });
    });
    if (body.wait_for(std::chrono::seconds(2)) != std::future_status::ready) return Json();
    return Json::parse(body.get());
  }
  bool online(const std::string& name) {
    const Json b = blade(name);
    return b.is_object() && b.value("online", false);
  }
  // Waits up to `ms` for the blade to be online here; the time it took, or -1.
  std::int64_t waitOnline(const std::string& name, std::int64_t ms) {
    const std::int64_t from = nowMs();
    while (nowMs() - from < ms) {
      if (online(name)) return nowMs() - from;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return -1;
  }
};

// The blade: one real agent on a test driver already running `vm1` (a server it adopted),
// journaled to a file so the test can tell whether it ever stopped.
struct Blade {
  std::string journal;
  std::unique_ptr<AgentHost> host;
  std::thread thread;

  Blade(const std::filesystem::path& dir, const std::string& controllers) : journal((dir / "journal").string()) {
    drivers::test::TestDriverConfig cfg;
    cfg.blade = "c1-s1";
    cfg.journalPath = journal;
    auto driver = std::move(drivers::test::TestDriver::create(cfg)).value();
    drivers::DomainSpec vm;
    vm.name = "vm1";
    vm.uuid = "4c4f4f4d-0000-0000-0000-0000000000a1";
    EXPECT_TRUE(driver->define(vm));
    EXPECT_TRUE(driver->start("vm1"));
    FabricOptions fabric;
    fabric.controller = controllers;
    fabric.insecure = true;
    host = std::make_unique<AgentHost>(fabric);
    AgentConfig config;
    config.blade = "c1-s1";
    config.inventory.chassis = "c1";
    config.inventory.cores = 8;
    config.inventory.memoryMib = 16384;
    config.inventory.hypervisors = {"kvm"};
    config.epochPath = (dir / "c1-s1.epoch").string();
    auto added = host->add(config, std::move(driver));
    EXPECT_TRUE(added) << (added ? "" : added.error().message);
    thread = std::thread([this] { host->run(); });
  }
  ~Blade() {
    host->stop();
    if (thread.joinable()) thread.join();
  }
  // What ended vm1's run, if anything did ("" while it ran all along).
  std::string vmEnded() {
    auto entries = drivers::test::readJournal(journal);
    if (!entries) return "unreadable journal: " + entries.error().message;
    int starts = 0;
    for (const auto& e : *entries) {
      if (e.domain != "vm1") continue;
      if (e.event == drivers::test::JournalEvent::Start) {
        ++starts;
        continue;
      }
      return drivers::test::toString(e.event);
    }
    return starts == 1 ? "" : std::to_string(starts) + " starts";
  }
};

// Counts the agent's log lines saying it refused a frame of `epoch`.
class RefusalSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  std::atomic<int> refused{0};
  std::atomic<std::int64_t> registeredAt{-1};  // the agent's latest "registered" line (monotonic ms)

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    const std::string_view text(msg.payload.data(), msg.payload.size());
    if (text.find("refused a '") != std::string_view::npos) ++refused;
    if (text.find("c1-s1: registered (") != std::string_view::npos) registeredAt = nowMs();
  }
  void flush_() override {}
};

std::shared_ptr<RefusalSink> watchLog() {
  auto sink = std::make_shared<RefusalSink>();
  spdlog::default_logger()->sinks().push_back(sink);
  return sink;
}
void unwatchLog() { spdlog::default_logger()->sinks().pop_back(); }

void measure(const std::string& what) { std::cout << "[ measure ] " << what << std::endl; }

TEST(LeaderFollow, AnAgentFollowsANewerLeaderToAnotherEndpointKeepsItsServerAndRefusesTheOldOne) {
  const auto dir = scratch();
  const auto ports = freePorts(3);
  auto a = std::make_unique<Replica>((dir / "a.db").string(), endpoint(ports[0]), 5);
  Blade blade(dir, endpoint(ports[0]) + "," + endpoint(ports[1]) + "," + endpoint(ports[2]));
  ASSERT_GE(a->waitOnline("c1-s1", 5000), 0) << "the agent reaches the one endpoint bound";

  // The leader dies (its connections close); a new one wins a second later, elsewhere.
  const std::int64_t t0 = nowMs();
  a->stop();
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  Replica b((dir / "b.db").string(), endpoint(ports[1]), 6);
  const std::int64_t bound = nowMs();
  const std::int64_t took = b.waitOnline("c1-s1", 4000);
  ASSERT_GE(took, 0) << "the agent registers with the new leader";
  measure("direct agent: registered with the new leader " + std::to_string(took) + " ms after it bound, " +
          std::to_string(nowMs() - t0) + " ms after the old one died (lease 5000 ms)");
  EXPECT_LT(bound + took - t0, 4000) << "well inside the lease (a tenth before its end the agent fences)";

  // A frame the old leader sent before it died, arriving now: a stop of vm1 under epoch 5.
  // A ROUTER on the third endpoint plays it; the agent's DEALER connects there too.
  zmq::context_t ctx;
  zmq::socket_t stale(ctx, zmq::socket_type::router);
  stale.set(zmq::sockopt::linger, 0);
  stale.bind(endpoint(ports[2]));
  bool connected = false;
  for (const std::int64_t until = nowMs() + 4000; !connected && nowMs() < until;)
    connected = !loom::testing::receiveParts(stale, 200).empty();  // one of its beats, round-robin
  ASSERT_TRUE(connected);
  protocol::PlanMsg stop;
  stop.epoch = 5;
  stop.steps.push_back({900, pool::StepKind::Stop, "vm1", "", std::nullopt});
  stale.send(zmq::buffer(std::string("c1-s1")), zmq::send_flags::sndmore);
  stale.send(zmq::buffer(protocol::encode(stop).dump()));
  for (const std::int64_t until = nowMs() + 1500; nowMs() < until;) {
    auto m = loom::testing::receiveParts(stale, 100);
    if (m.size() == 2) {
      EXPECT_EQ(Json::parse(m[1])["type"], "heartbeat") << "no step-result: " << m[1];
    }
  }
  stale.close();

  // Longer than a lease: still the new leader's, and vm1 never stopped.
  std::this_thread::sleep_for(std::chrono::milliseconds(6000));
  EXPECT_TRUE(b.online("c1-s1"));
  EXPECT_EQ(blade.vmEnded(), "") << "the server ran all along";
  EXPECT_EQ(b.blade("c1-s1")["state"], "available");
}

TEST(LeaderFollow, ARelayFollowsANewerLeaderAndItsBladesKeepTheirLeases) {
  const auto dir = scratch();
  const auto ports = freePorts(4);
  auto a = std::make_unique<Replica>((dir / "a.db").string(), endpoint(ports[0]), 5);
  RelayOptions ro;
  ro.name = "c1";
  ro.listen = endpoint(ports[3]);
  ro.controller = endpoint(ports[0]) + "," + endpoint(ports[1]) + "," + endpoint(ports[2]);
  ro.insecure = true;
  FabricRelay relay(ro);
  ASSERT_TRUE(relay.start());
  std::thread relayThread([&] { relay.run(); });
  {
    Blade blade(dir, endpoint(ports[3]));
    ASSERT_GE(a->waitOnline("c1-s1", 5000), 0);
    EXPECT_EQ(a->blade("c1-s1")["relay"], "c1");

    const std::int64_t t0 = nowMs();
    a->stop();
    std::this_thread::sleep_for(std::chrono::milliseconds(1000));
    Replica b((dir / "b.db").string(), endpoint(ports[2]), 6);
    const std::int64_t took = b.waitOnline("c1-s1", 4000);
    ASSERT_GE(took, 0) << "the relay carries the blade to the new leader";
    measure("agent through a relay: registered with the new leader " + std::to_string(took) + " ms after it bound, " +
            std::to_string(nowMs() - t0) + " ms after the old one died (lease 5000 ms)");
    EXPECT_LT(nowMs() - t0, 4000);
    std::this_thread::sleep_for(std::chrono::milliseconds(6000));
    EXPECT_TRUE(b.online("c1-s1"));
    EXPECT_EQ(b.blade("c1-s1")["relay"], "c1");
    EXPECT_EQ(blade.vmEnded(), "");
  }
  relay.stop();
  relayThread.join();
}

// The frozen leader, in a child process (this test program run again, see main()): leads
// under epoch 5 while its (simulated) etcd lease is renewed, every 100 ms, for 2 s, acting
// until 0.5 s before that lease could expire. Frozen, it renews nothing; woken, its renewer
// finds the lease gone and revokes, and 1 s later (main noticing) it closes its socket. It
// writes "r" on `ready` once the blade registered with it, and on `report` what its fabric
// did: "<frames read and dropped> <frames not sent> <when its renewer found the lease gone>".
int frozenLeader(const std::filesystem::path& dir, int port, int ready, int report) {
  {
    Replica a((dir / "a.db").string(), endpoint(port), 5);
    std::atomic<bool> lost{false};
    std::thread renewer([&] {
      std::int64_t leaseExpiry = nowMs() + 2000;
      while (true) {
        const std::int64_t now = nowMs();
        if (now > leaseExpiry) {
          a.leadership.revoke();
          lost = true;
          return;
        }
        leaseExpiry = now + 2000;
        a.leadership.grant(5, leaseExpiry - 500);
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    });
    if (a.waitOnline("c1-s1", 10000) < 0) {
      a.leadership.revoke();
      renewer.join();
      return 1;
    }
    (void)!::write(ready, "r", 1);
    // Bounded: the parent wakes it within seconds, or kills it.
    for (const std::int64_t until = nowMs() + 60000; !lost && nowMs() < until;)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    const std::int64_t woke = nowMs();
    std::this_thread::sleep_for(std::chrono::milliseconds(1000));
    const auto dropped = a.loop->notActing();
    a.stop();
    renewer.join();
    const std::string line =
        std::to_string(dropped.received) + " " + std::to_string(dropped.unsent) + " " + std::to_string(woke) + "\n";
    (void)!::write(report, line.data(), line.size());
  }
  return 0;
}

constexpr const char* kChildEnv = "LOOM_TEST_FROZEN_LEADER";  // "DIR PORT READY_FD REPORT_FD"

// Reads what the child writes on `fd` within `ms`.
std::string readFrom(int fd, int ms) {
  std::string out;
  for (const std::int64_t until = nowMs() + ms; nowMs() < until;) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    char buf[256];
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
    if (out.back() == '\n' || out == "r") break;
  }
  return out;
}

// A relay on its own thread (or none), stopped and joined on the way out.
struct MaybeRelay {
  std::unique_ptr<FabricRelay> relay;
  std::thread thread;
  MaybeRelay(bool wanted, int listen, const std::string& controllers) {
    if (!wanted) return;
    RelayOptions ro;
    ro.name = "c1";
    ro.listen = endpoint(listen);
    ro.controller = controllers;
    ro.insecure = true;
    relay = std::make_unique<FabricRelay>(ro);
    EXPECT_TRUE(relay->start());
    thread = std::thread([this] { relay->run(); });
  }
  ~MaybeRelay() {
    if (!relay) return;
    relay->stop();
    thread.join();
  }
};

// Whether every thread of process `pid` is stopped (SIGSTOP is asynchronous: kill() returns
// before the threads stop, and a thread running then may still read and answer a frame).
bool allThreadsStopped(pid_t pid) {
  const std::filesystem::path tasks = "/proc/" + std::to_string(pid) + "/task";
  std::error_code ec;
  for (const auto& t : std::filesystem::directory_iterator(tasks, ec)) {
    std::ifstream in(t.path() / "stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const auto close = stat.rfind(')');
    if (close == std::string::npos || close + 2 >= stat.size() || stat[close + 2] != 'T') return false;
  }
  return !ec;
}

// The leader is frozen with its connections up, a new one binds another endpoint 1 s
// later (sooner than an etcd lease would let it: the frozen one then keeps its share of
// the frames longer, which is harder for the blade, not easier), and the old one is woken
// 6 s after the freeze, long past its term.
void frozenLeaderScenario(bool viaRelay) {
  const auto dir = scratch();
  const auto ports = freePorts(4);
  const std::string replicas = endpoint(ports[0]) + "," + endpoint(ports[1]) + "," + endpoint(ports[2]);
  int ready[2], report[2];
  ASSERT_EQ(::pipe(ready), 0);
  ASSERT_EQ(::pipe(report), 0);
  // A fresh process (this program again, see main()), so nothing of this one's threads is
  // copied into it; the pipes' write ends are inherited.
  const std::string spec =
      dir.string() + " " + std::to_string(ports[0]) + " " + std::to_string(ready[1]) + " " + std::to_string(report[1]);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::setenv(kChildEnv, spec.c_str(), 1);
    ::execl("/proc/self/exe", "leader_follow_tests", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(ready[1]);
  ::close(report[1]);
  struct Reap {
    pid_t pid;
    ~Reap() {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  } reap{child};

  const std::string how = viaRelay ? "agent through a relay" : "direct agent";
  auto log = watchLog();
  {
    MaybeRelay relay(viaRelay, ports[3], replicas);
    Blade blade(dir, viaRelay ? endpoint(ports[3]) : replicas);
    ASSERT_EQ(readFrom(ready[0], 10000), "r") << "the child leads and the blade registered there";
    const std::int64_t registeredWithA = log->registeredAt.load();
    // A probe connected to the old leader alone: answered while it leads.
    zmq::context_t ctx;
    zmq::socket_t probe(ctx, zmq::socket_type::dealer);
    probe.set(zmq::sockopt::routing_id, std::string("c9-s9"));
    probe.set(zmq::sockopt::linger, 0);
    probe.connect(endpoint(ports[0]));
    protocol::Register hello;
    hello.blade = "c9-s9";
    hello.inventory.cores = 1;
    hello.inventory.memoryMib = 1024;
    probe.send(zmq::buffer(protocol::encode(hello).dump()));
    auto answer = loom::testing::receiveParts(probe, 3000);
    ASSERT_EQ(answer.size(), 1u);
    EXPECT_EQ(Json::parse(answer[0])["epoch"], 5);
    // ... and the policy its core sends after a register: everything, before the freeze.
    for (int i = 0; i < 20 && !loom::testing::receiveParts(probe, 500).empty(); ++i) {
    }

    const std::int64_t t0 = nowMs();
    ASSERT_EQ(::kill(child, SIGSTOP), 0);
    // Frozen for sure before the register below is sent: one answered by a thread that had
    // not stopped yet would be an answer of its term, not of a woken loomd (it sat in the
    // probe's queue and failed this test about once in ten runs on a loaded machine).
    for (int i = 0; i < 500 && !allThreadsStopped(child); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    ASSERT_TRUE(allThreadsStopped(child)) << "the child's threads stopped within 0.5 s of SIGSTOP";
    // Waiting in its socket when it wakes: a register, which a loomd that acts answers.
    probe.send(zmq::buffer(protocol::encode(hello).dump()));
    std::this_thread::sleep_for(std::chrono::milliseconds(1000));
    Replica b((dir / "b.db").string(), endpoint(ports[1]), 6);
    const std::int64_t took = b.waitOnline("c1-s1", 4000);
    ASSERT_GE(took, 0) << "the blade follows the new leader while the old one is frozen";
    const std::int64_t switched = nowMs() - t0;
    measure(how + ", frozen leader (TCP up): registered with the new leader " + std::to_string(took) +
            " ms after it bound, " + std::to_string(switched) +
            " ms after the freeze (lease 5000 ms, fenced 500 ms before its end; the agent's last lease from the " +
            "old leader began " + std::to_string(t0 - registeredWithA) + " ms or less before the freeze)");
    EXPECT_LT(switched, 3500) << "inside the lease, with room to spare";

    std::this_thread::sleep_for(std::chrono::milliseconds(std::max<std::int64_t>(0, t0 + 6000 - nowMs())));
    const int refusedBeforeWake = log->refused.load();
    ASSERT_EQ(::kill(child, SIGCONT), 0);
    const auto late = loom::testing::receiveParts(probe, 1500);
    EXPECT_TRUE(late.empty()) << "woken after its term, it answers nothing; got " << (late.empty() ? "" : late[0]);
    probe.close();
    const std::string line = readFrom(report[0], 10000);
    unsigned long long received = 0, unsent = 0;
    long long woke = 0;
    ASSERT_EQ(std::sscanf(line.c_str(), "%llu %llu %lld", &received, &unsent, &woke), 3) << "'" << line << "'";
    measure(how + ", the frozen leader woken: " + std::to_string(received) +
            " frames read and dropped (sent to it while frozen, and in the second before it closed its socket), " +
            std::to_string(unsent) + " not sent; its renewer found the lease gone " + std::to_string(woke - t0 - 6000) +
            " ms after the wake");
    EXPECT_GE(received, 1u) << "it did have frames to answer: the probe's at least";
    EXPECT_EQ(log->refused.load(), refusedBeforeWake) << "and answered none: no frame of epoch 5 reached the blade";

    // Past another lease: the blade stays with the new leader, vm1 never stopped.
    std::this_thread::sleep_for(std::chrono::milliseconds(6000));
    EXPECT_TRUE(b.online("c1-s1"));
    EXPECT_EQ(b.blade("c1-s1")["state"], "available");
    EXPECT_EQ(blade.vmEnded(), "") << "the server ran all along";
  }
  unwatchLog();
}

TEST(LeaderFollow, AFrozenLeaderWokenAfterItsTermAnswersNothingAndTheBladeKeepsItsLease) {
  frozenLeaderScenario(false);
}

TEST(LeaderFollow, ARelayFollowsANewLeaderPastAFrozenOneAndTheBladeKeepsItsLease) { frozenLeaderScenario(true); }

}  // namespace
}  // namespace loom::agent

int main(int argc, char** argv) {
  if (const char* spec = std::getenv(loom::agent::kChildEnv)) {
    char dir[4096];
    int port = 0, ready = -1, report = -1;
    if (std::sscanf(spec, "%4095s %d %d %d", dir, &port, &ready, &report) != 4) return 2;
    return loom::agent::frozenLeader(dir, port, ready, report);
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
