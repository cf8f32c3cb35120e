// The test driver's knobs: fail_start, crash_after_ms, start latency, the journal (and
// its double-run checker), the lease watchdog. A ManualClock makes time explicit.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <thread>

#include "drivers/test/TestDriver.h"

namespace loom::drivers::test {
namespace {

constexpr TimeMs kT0 = 1'700'000'000'000;

DomainSpec server(const std::string& name, int n = 1, MiB memory = 512) {
  DomainSpec s;
  s.name = name;
  char uuid[40];
  std::snprintf(uuid, sizeof uuid, "4c4f4f4d-0000-0000-0000-%012x", n);
  s.uuid = uuid;
  char mac[20];
  std::snprintf(mac, sizeof mac, "52:54:00:10:00:%02x", n);
  s.nics.push_back(NicSpec{mac, "front", "", std::nullopt});
  s.memory = memory;
  return s;
}

using Params = std::map<std::string, std::string>;

struct Fixture {
  std::shared_ptr<ManualClock> clock = std::make_shared<ManualClock>(kT0);
  std::unique_ptr<TestDriver> driver;

  explicit Fixture(Params params = {}, std::shared_ptr<ManualClock> at = nullptr) {
    if (at) clock = std::move(at);
    auto config = parseTestDriverConfig({"", std::move(params)});
    EXPECT_TRUE(config.ok()) << config.error().message;
    auto made = TestDriver::create(*config, clock);
    EXPECT_TRUE(made.ok()) << made.error().message;
    driver = std::move(*made);
  }
  DomainState state(const std::string& name) { return driver->info(name)->state; }
};

std::string tempPath(const std::string& tag) {
  return (std::filesystem::temp_directory_path() / ("loom-" + tag + "-" + std::to_string(::getpid()))).string();
}

TEST(TestDriver, FailStartFailsOnlyTheNamedDomains) {
  Fixture f(Params{{"fail_start", "web-02, web-03"}});
  ASSERT_TRUE(f.driver->define(server("web-01", 1)).ok());
  ASSERT_TRUE(f.driver->define(server("web-02", 2)).ok());
  EXPECT_TRUE(f.driver->start("web-01").ok());
  auto failed = f.driver->start("web-02");
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.error().code, Errc::Io);
  EXPECT_NE(failed.error().message.find("'web-02'"), std::string::npos) << failed.error().message;
  EXPECT_NE(f.state("web-02"), DomainState::Running);
}

TEST(TestDriver, FailStartStarFailsEveryStart) {
  Fixture f(Params{{"fail_start", "*"}});
  ASSERT_TRUE(f.driver->define(server("web-01")).ok());
  EXPECT_FALSE(f.driver->start("web-01").ok());
  EXPECT_TRUE(f.driver->journal().empty());
}

TEST(TestDriver, CrashAfterCrashesAtTheExactDueTime) {
  Fixture f(Params{{"crash_after_ms", "1000"}, {"blade", "c1-s1"}});
  ASSERT_TRUE(f.driver->define(server("web-01")).ok());
  ASSERT_TRUE(f.driver->start("web-01").ok());
  f.clock->advance(999);
  EXPECT_EQ(f.state("web-01"), DomainState::Running);
  f.clock->advance(4000);  // noticed late, stamped on time
  EXPECT_EQ(f.state("web-01"), DomainState::Crashed);
  const auto journal = f.driver->journal();
  ASSERT_EQ(journal.size(), 2u);
  EXPECT_EQ(journal[1], (JournalEntry{kT0 + 1000, "c1-s1", JournalEvent::Crash, "web-01", server("web-01").uuid}));
  // A crashed domain can be started again.
  EXPECT_TRUE(f.driver->start("web-01").ok());
  EXPECT_EQ(f.state("web-01"), DomainState::Running);
}

TEST(TestDriver, StartLatencyPassesOnTheDriversClock) {
  Fixture f(Params{{"start_latency_ms", "250"}});
  ASSERT_TRUE(f.driver->define(server("web-01")).ok());
  ASSERT_TRUE(f.driver->start("web-01").ok());
  EXPECT_EQ(f.clock->nowMs(), kT0 + 250);
  EXPECT_EQ(f.driver->journal().at(0).timeMs, kT0 + 250);
}

TEST(TestDriver, StartBeyondTheNodesMemoryIsAConflict) {
  Fixture f(Params{{"memory_mib", "1024"}});
  ASSERT_TRUE(f.driver->define(server("big-01", 1, 768)).ok());
  ASSERT_TRUE(f.driver->define(server("big-02", 2, 768)).ok());
  ASSERT_TRUE(f.driver->start("big-01").ok());
  auto second = f.driver->start("big-02");
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code, Errc::Conflict);
  EXPECT_NE(second.error().message.find("'big-02'"), std::string::npos);
}

TEST(TestDriver, NodeInfoReportsTheConfiguredSize) {
  Fixture f(Params{{"cores", "16"}, {"memory_mib", "65536"}, {"cpu_model", "Xeon Gold"}});
  auto node = f.driver->nodeInfo();
  ASSERT_TRUE(node.ok());
  EXPECT_EQ(node->cores, 16u);
  EXPECT_EQ(node->memory, 65536u);
  EXPECT_EQ(node->cpuModel, "Xeon Gold");
  EXPECT_EQ(node->hypervisor, "test");
}

TEST(TestDriver, MalformedParamIsRejectedNamingIt) {
  auto config = parseTestDriverConfig({"", {{"cores", "many"}}});
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.error().code, Errc::Invalid);
  EXPECT_NE(config.error().message.find("cores='many'"), std::string::npos) << config.error().message;
}

TEST(TestDriver, AUuidBelongsToOneDomain) {
  Fixture f;
  ASSERT_TRUE(f.driver->define(server("web-01", 1)).ok());
  auto clash = f.driver->define(server("web-99", 1));
  ASSERT_FALSE(clash.ok());
  EXPECT_EQ(clash.error().code, Errc::Conflict);
  EXPECT_NE(clash.error().message.find("'web-01'"), std::string::npos);
}

TEST(TestDriver, JournalFileHasOneLinePerStartAndEnd) {
  const std::string path = tempPath("journal");
  std::remove(path.c_str());
  {
    Fixture f(Params{{"journal", path}, {"blade", "c1-s1"}});
    ASSERT_TRUE(f.driver->define(server("web-01")).ok());
    ASSERT_TRUE(f.driver->start("web-01").ok());
    f.clock->advance(10);
    ASSERT_TRUE(f.driver->stop("web-01", 1000).ok());
    ASSERT_TRUE(f.driver->start("web-01").ok());
    f.clock->advance(10);
    ASSERT_TRUE(f.driver->undefine("web-01").ok());
    auto fromFile = readJournal(path);
    ASSERT_TRUE(fromFile.ok()) << fromFile.error().message;
    EXPECT_EQ(*fromFile, f.driver->journal());
    ASSERT_EQ(fromFile->size(), 4u);
    EXPECT_EQ((*fromFile)[1].event, JournalEvent::Stop);
    EXPECT_EQ((*fromFile)[3].event, JournalEvent::Destroy);
    EXPECT_EQ((*fromFile)[3].timeMs, kT0 + 20);
  }
  std::remove(path.c_str());
}

TEST(TestDriver, UnopenableJournalFailsCreationNamingThePath) {
  auto made = makeTestDriver({"", {{"journal", "/nonexistent-dir/j.log"}}});
  ASSERT_FALSE(made.ok());
  EXPECT_NE(made.error().message.find("/nonexistent-dir/j.log"), std::string::npos);
}

TEST(TestDriver, TwoBladesSharingAJournalProveAMoveWasClean) {
  const std::string path = tempPath("shared-journal");
  std::remove(path.c_str());
  auto clock = std::make_shared<ManualClock>(kT0);
  auto a = TestDriver::create(*parseTestDriverConfig({"", {{"journal", path}, {"blade", "c1-s1"}}}), clock);
  auto b = TestDriver::create(*parseTestDriverConfig({"", {{"journal", path}, {"blade", "c1-s2"}}}), clock);
  ASSERT_TRUE(a.ok() && b.ok());
  const DomainSpec s = server("web-01");
  ASSERT_TRUE((*a)->define(s).ok() && (*b)->define(s).ok());
  ASSERT_TRUE((*a)->start(s.name).ok());
  clock->advance(100);
  ASSERT_TRUE((*a)->destroy(s.name).ok());
  ASSERT_TRUE((*b)->start(s.name).ok());  // same instant as the destroy: no overlap
  auto journal = readJournal(path);
  ASSERT_TRUE(journal.ok());
  EXPECT_EQ(findDoubleRun(*journal), std::nullopt);

  clock->advance(100);
  ASSERT_TRUE((*a)->start(s.name).ok());  // the bug invariant 1 forbids
  journal = readJournal(path);
  ASSERT_TRUE(journal.ok());
  auto overlap = findDoubleRun(*journal);
  ASSERT_TRUE(overlap.has_value());
  EXPECT_NE(overlap->find("'web-01'"), std::string::npos) << *overlap;
  EXPECT_NE(overlap->find("c1-s1"), std::string::npos) << *overlap;
  EXPECT_NE(overlap->find("c1-s2"), std::string::npos) << *overlap;
  std::remove(path.c_str());
}

TEST(TestDriver, JournalLinesRoundTrip) {
  JournalEntry e{kT0, "c1 \"s1\"", JournalEvent::Watchdog, "web\\01", "4c4f4f4d-0000-0000-0000-000000000001"};
  auto parsed = parseJournalLine(formatJournalLine(e));
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  EXPECT_EQ(*parsed, e);
  EXPECT_FALSE(parseJournalLine("garbage").ok());
}

TEST(TestDriver, WatchdogDestroysEveryRunningDomainAtTheDeadline) {
  Fixture f(Params{{"blade", "c1-s1"}});
  f.driver->armWatchdog(kT0 + 1000);
  ASSERT_TRUE(f.driver->define(server("web-01", 1)).ok());
  ASSERT_TRUE(f.driver->define(server("web-02", 2)).ok());
  ASSERT_TRUE(f.driver->define(server("idle-03", 3)).ok());
  ASSERT_TRUE(f.driver->start("web-01").ok());
  ASSERT_TRUE(f.driver->start("web-02").ok());
  f.clock->advance(5000);  // the agent was silent long past its lease
  EXPECT_NE(f.state("web-01"), DomainState::Running);
  EXPECT_NE(f.state("web-02"), DomainState::Running);
  EXPECT_TRUE(f.driver->watchdogFired());
  const auto journal = f.driver->journal();
  ASSERT_EQ(journal.size(), 4u);
  for (size_t i = 2; i < 4; ++i) {
    EXPECT_EQ(journal[i].event, JournalEvent::Watchdog);
    EXPECT_EQ(journal[i].timeMs, kT0 + 1000);
  }
  // Fenced: nothing starts until the lease is renewed.
  auto refused = f.driver->start("web-01");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, Errc::Unavailable);
  EXPECT_NE(refused.error().message.find("'web-01'"), std::string::npos);
  f.driver->armWatchdog(f.clock->nowMs() + 1000);
  EXPECT_TRUE(f.driver->start("web-01").ok());
}

TEST(TestDriver, StateFileRestoresDomainsAsTheyWereWithoutAStart) {
  const std::string path = tempPath("state") + ".json";
  std::filesystem::remove(path);
  {
    Fixture f(Params{{"state_file", path}});
    auto spec = server("web-01", 1);
    spec.nics[0].vlan = 100;
    ASSERT_TRUE(f.driver->define(spec).ok());
    ASSERT_TRUE(f.driver->define(server("web-02", 2)).ok());
    ASSERT_TRUE(f.driver->start("web-01").ok());
    EXPECT_EQ(f.driver->journal().size(), 1u);
  }  // the "agent" dies; the simulated hypervisor keeps its domains
  Fixture g(Params{{"state_file", path}});
  EXPECT_EQ(g.state("web-01"), DomainState::Running);
  EXPECT_EQ(g.state("web-02"), DomainState::Defined);
  EXPECT_EQ(g.driver->info("web-01")->uuid, server("web-01", 1).uuid);
  EXPECT_EQ(g.driver->info("web-01")->macs, std::vector<std::string>{"52:54:00:10:00:01"});
  EXPECT_TRUE(g.driver->journal().empty()) << "a restored domain never stopped, so it is not started again";
  EXPECT_TRUE(g.driver->start("web-01").ok());
  EXPECT_TRUE(g.driver->journal().empty()) << "starting a running domain is a no-op";
  ASSERT_TRUE(g.driver->undefine("web-02").ok());
  Fixture h(Params{{"state_file", path}});
  EXPECT_FALSE(h.driver->info("web-02").ok());
  EXPECT_EQ(h.state("web-01"), DomainState::Running);
  std::filesystem::remove(path);
}

// A state file exactly as the test driver wrote it before 0.2 (xen_type and state as
// numbers) still loads: simulated blades keep their domains across an upgrade.
TEST(TestDriver, StateFileWrittenBeforeTheSharedCodecLoads) {
  const std::string path = tempPath("oldstate") + ".json";
  {
    std::ofstream(path)
        << R"({"blade":"c1-s1","domains":[{"spec":{"cmdline":"console=hvc0","disks":[{"format":"qcow2","path":"/img/web.qcow2",)"
           R"("read_only":false}],"initrd":"","kernel":"/boot/vmlinuz","memory_mib":1024,"name":"web-01","nics":[{"bridge":"",)"
           R"("mac":"52:54:00:10:00:01","network":"front","vlan":100}],"uuid":"4c4f4f4d-0000-0000-0000-000000000001","vcpus":2,)"
           R"("xen_type":2},"state":1},{"spec":{"cmdline":"","disks":[{"format":"qcow2","path":"/img/web.qcow2","read_only":false}],)"
           R"("initrd":"","kernel":"","memory_mib":1024,"name":"web-02","nics":[{"bridge":"","mac":"52:54:00:10:00:02","network":)"
           R"("front"}],"uuid":"4c4f4f4d-0000-0000-0000-000000000002","vcpus":2,"xen_type":0},"state":0}],"watchdog":)"
           R"({"deadline_ms":1700000005000}})";
  }
  {
    Fixture f(Params{{"blade", "c1-s1"}, {"state_file", path}});
    EXPECT_EQ(f.state("web-01"), DomainState::Running);
    EXPECT_EQ(f.state("web-02"), DomainState::Defined);
    EXPECT_EQ(f.driver->info("web-01")->macs, std::vector<std::string>{"52:54:00:10:00:01"});
    EXPECT_TRUE(f.driver->journal().empty());
    EXPECT_EQ(f.driver->nodeInfo()->personality, std::nullopt) << "the agent kept it then, in a file of its own";
    // The watchdog came back too: at its deadline the running domain ends.
    f.clock->advance(5000);
    EXPECT_EQ(f.state("web-01"), DomainState::Shutoff);
    ASSERT_TRUE(f.driver->undefine("web-02").ok());  // rewrites the file, in today's form
  }
  std::ifstream in(path);
  const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  EXPECT_NE(text.find(R"("xen_type":"pvh")"), std::string::npos) << text;
  EXPECT_NE(text.find(R"("state":"shutoff")"), std::string::npos) << text;
  Fixture g(Params{{"blade", "c1-s1"}, {"state_file", path}});
  EXPECT_EQ(g.state("web-01"), DomainState::Shutoff);
  EXPECT_FALSE(g.driver->info("web-02").ok());
  std::filesystem::remove(path);
}

// A simulated blade keeps the personality it was given, as a real blade keeps its
// hypervisor install: the next agent reads it from nodeInfo and registers with it.
TEST(TestDriver, PersonalityIsKeptInTheStateFile) {
  const std::string path = tempPath("personality") + ".json";
  std::filesystem::remove(path);
  {
    Fixture f(Params{{"state_file", path}});
    EXPECT_EQ(f.driver->nodeInfo()->personality, std::nullopt) << "never prepared";
    ASSERT_TRUE(f.driver->preparePersonality(pool::Hypervisor::Xen).ok());
    EXPECT_EQ(f.driver->nodeInfo()->personality, pool::Hypervisor::Xen);
  }
  Fixture g(Params{{"state_file", path}});
  EXPECT_EQ(g.driver->nodeInfo()->personality, pool::Hypervisor::Xen);
  ASSERT_TRUE(g.driver->preparePersonality(pool::Hypervisor::Kvm).ok());  // repurposed again
  Fixture h(Params{{"state_file", path}});
  EXPECT_EQ(h.driver->nodeInfo()->personality, pool::Hypervisor::Kvm);
  std::filesystem::remove(path);
}

// The lease guard's interface: a renewal arms the watchdog that far ahead on the
// driver's clock.
TEST(TestDriver, RenewingTheWatchdogArmsItThatFarAhead) {
  Fixture f;
  ASSERT_TRUE(f.driver->capabilities().watchdog);
  ASSERT_TRUE(f.driver->define(server("web-01", 1)).ok());
  ASSERT_TRUE(f.driver->start("web-01").ok());
  ASSERT_TRUE(f.driver->renewWatchdog(1000).ok());
  f.clock->advance(999);
  EXPECT_EQ(f.state("web-01"), DomainState::Running);
  ASSERT_TRUE(f.driver->renewWatchdog(1000).ok());  // renewed: now due at 1999
  f.clock->advance(999);
  EXPECT_EQ(f.state("web-01"), DomainState::Running);
  f.clock->advance(1);
  EXPECT_EQ(f.state("web-01"), DomainState::Shutoff);
  ASSERT_FALSE(f.driver->journal().empty());
  EXPECT_EQ(f.driver->journal().back().timeMs, kT0 + 1999);
}

TEST(TestDriver, UnreadableStateFileIsAnError) {
  const std::string path = tempPath("badstate") + ".json";
  { std::ofstream(path) << "{not json"; }
  auto config = parseTestDriverConfig({"", Params{{"state_file", path}}});
  ASSERT_TRUE(config.ok());
  auto made = TestDriver::create(*config, std::make_shared<ManualClock>(kT0));
  ASSERT_FALSE(made.ok());
  EXPECT_NE(made.error().message.find(path), std::string::npos) << made.error().message;
  std::filesystem::remove(path);
}

TEST(TestDriver, RenewedWatchdogKeepsDomainsRunning) {
  Fixture f;
  f.driver->armWatchdog(kT0 + 1000);
  ASSERT_TRUE(f.driver->define(server("web-01")).ok());
  ASSERT_TRUE(f.driver->start("web-01").ok());
  for (int i = 0; i < 10; ++i) {
    f.clock->advance(900);
    f.driver->armWatchdog(f.clock->nowMs() + 1000);
  }
  EXPECT_EQ(f.state("web-01"), DomainState::Running);
  f.driver->disarmWatchdog();
  f.clock->advance(100000);
  EXPECT_EQ(f.state("web-01"), DomainState::Running);
}

TEST(TestDriver, CrashBeforeTheWatchdogDeadlineIsJournaledFirst) {
  Fixture f(Params{{"crash_after_ms", "300"}});
  ASSERT_TRUE(f.driver->define(server("web-01", 1)).ok());
  ASSERT_TRUE(f.driver->start("web-01").ok());
  f.driver->armWatchdog(kT0 + 1000);
  f.clock->advance(2000);
  const auto journal = f.driver->journal();
  ASSERT_EQ(journal.size(), 2u);  // crashed at +300; nothing left running for the watchdog
  EXPECT_EQ(journal[1].event, JournalEvent::Crash);
  EXPECT_EQ(journal[1].timeMs, kT0 + 300);
}

TEST(TestDriver, WatchdogFiresOnTheRealClockWithoutAnyCall) {
  auto made = makeTestDriver({"", {{"blade", "c1-s1"}}});
  ASSERT_TRUE(made.ok());
  auto* driver = static_cast<TestDriver*>(made->get());
  auto state = std::make_shared<std::pair<std::mutex, std::condition_variable>>();
  auto fired = std::make_shared<std::vector<DomainEvent>>();
  ASSERT_TRUE(driver
                  ->subscribe([state, fired](const DomainEvent& e) {
                    std::lock_guard lock(state->first);
                    fired->push_back(e);
                    state->second.notify_all();
                  })
                  .ok());
  ASSERT_TRUE(driver->define(server("web-01")).ok());
  ASSERT_TRUE(driver->start("web-01").ok());
  const TimeMs deadline = systemClock()->nowMs() + 100;
  driver->armWatchdog(deadline);
  {
    std::unique_lock lock(state->first);
    ASSERT_TRUE(state->second.wait_for(lock, std::chrono::seconds(5), [&] { return fired->size() >= 2; }))
        << "the timer thread did not fire the watchdog";
    EXPECT_EQ(fired->back().state, DomainState::Shutoff);
  }
  const auto journal = driver->journal();
  ASSERT_EQ(journal.size(), 2u);
  EXPECT_EQ(journal[1].event, JournalEvent::Watchdog);
  EXPECT_EQ(journal[1].timeMs, deadline);
}

// The "deadline_ms" the state file holds for the watchdog, or -1.
TimeMs savedDeadline(const std::string& path) {
  std::ifstream in(path);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto pos = text.find("\"deadline_ms\":");
  return pos == std::string::npos ? -1 : std::stoll(text.substr(pos + 14));
}

// kill -9 of an agent on a real host: the hardware watchdog still fires at the lease.
TEST(TestDriver, WatchdogInTheStateFileFiresAtTheSavedDeadlineAfterTheAgentDied) {
  const std::string path = tempPath("wd-expired") + ".json";
  const std::string journalPath = tempPath("wd-expired") + ".journal";
  std::filesystem::remove(path);
  std::filesystem::remove(journalPath);
  {
    Fixture f(Params{{"blade", "c1-s1"}, {"state_file", path}, {"journal", journalPath}});
    ASSERT_TRUE(f.driver->define(server("web-01", 1)).ok());
    ASSERT_TRUE(f.driver->define(server("web-02", 2)).ok());
    ASSERT_TRUE(f.driver->start("web-01").ok());
    ASSERT_TRUE(f.driver->start("web-02").ok());
    f.driver->armWatchdog(kT0 + 1000);  // only the watchdog changes: it must be saved anyway
  }                                     // the agent is killed -9; nobody renews
  Fixture g(Params{{"blade", "c1-s1"}, {"state_file", path}, {"journal", journalPath}},
            std::make_shared<ManualClock>(kT0 + 60'000));  // a new agent, a minute later
  EXPECT_EQ(g.state("web-01"), DomainState::Shutoff);
  EXPECT_EQ(g.state("web-02"), DomainState::Shutoff);
  EXPECT_TRUE(g.driver->watchdogFired());
  const auto journal = readJournal(journalPath);
  ASSERT_TRUE(journal.ok()) << journal.error().message;
  ASSERT_EQ(journal->size(), 4u);
  for (size_t i = 2; i < 4; ++i) {
    EXPECT_EQ((*journal)[i].event, JournalEvent::Watchdog);
    EXPECT_EQ((*journal)[i].timeMs, kT0 + 1000) << "stamped with the saved deadline, not the load time";
  }
  auto refused = g.driver->start("web-01");
  ASSERT_FALSE(refused.ok()) << "a fenced blade starts nothing until its watchdog is re-armed";
  EXPECT_EQ(refused.error().code, Errc::Unavailable);
  g.driver->armWatchdog(g.clock->nowMs() + 1000);
  EXPECT_TRUE(g.driver->start("web-01").ok());
  std::filesystem::remove(path);
  std::filesystem::remove(journalPath);
}

TEST(TestDriver, WatchdogReloadedBeforeItsDeadlineStaysArmed) {
  const std::string path = tempPath("wd-armed") + ".json";
  std::filesystem::remove(path);
  {
    Fixture f(Params{{"state_file", path}});
    ASSERT_TRUE(f.driver->define(server("web-01", 1)).ok());
    ASSERT_TRUE(f.driver->start("web-01").ok());
    f.driver->armWatchdog(kT0 + 1000);
  }
  auto clock = std::make_shared<ManualClock>(kT0 + 400);  // restarted quickly
  Fixture g(Params{{"state_file", path}}, clock);
  EXPECT_EQ(g.state("web-01"), DomainState::Running);
  EXPECT_FALSE(g.driver->watchdogFired());
  clock->advance(700);  // ... but it never renewed the lease
  EXPECT_EQ(g.state("web-01"), DomainState::Shutoff);
  const auto journal = g.driver->journal();
  ASSERT_EQ(journal.size(), 1u);
  EXPECT_EQ(journal[0].event, JournalEvent::Watchdog);
  EXPECT_EQ(journal[0].timeMs, kT0 + 1000);
  std::filesystem::remove(path);
}

TEST(TestDriver, FiredWatchdogStaysFiredAcrossAReload) {
  const std::string path = tempPath("wd-fired") + ".json";
  std::filesystem::remove(path);
  {
    Fixture f(Params{{"state_file", path}});
    ASSERT_TRUE(f.driver->define(server("web-01", 1)).ok());
    f.driver->armWatchdog(kT0 + 1000);
    f.clock->advance(2000);
    EXPECT_TRUE(f.driver->watchdogFired());  // fired with nothing running: still a firing
  }
  Fixture g(Params{{"state_file", path}}, std::make_shared<ManualClock>(kT0 + 3000));
  EXPECT_TRUE(g.driver->watchdogFired());
  auto refused = g.driver->start("web-01");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, Errc::Unavailable);
  g.driver->armWatchdog(kT0 + 4000);
  EXPECT_TRUE(g.driver->start("web-01").ok());
  std::filesystem::remove(path);
}

TEST(TestDriver, DisarmedWatchdogIsSaved) {
  const std::string path = tempPath("wd-disarmed") + ".json";
  std::filesystem::remove(path);
  {
    Fixture f(Params{{"state_file", path}});
    ASSERT_TRUE(f.driver->define(server("web-01", 1)).ok());
    ASSERT_TRUE(f.driver->start("web-01").ok());
    f.driver->armWatchdog(kT0 + 1000);
    f.driver->disarmWatchdog();
  }
  Fixture g(Params{{"state_file", path}}, std::make_shared<ManualClock>(kT0 + 60'000));
  EXPECT_EQ(g.state("web-01"), DomainState::Running);
  EXPECT_FALSE(g.driver->watchdogFired());
  std::filesystem::remove(path);
}

// Renewals at 100 ms of a 1,000 ms lease: the file is rewritten about every 500 ms, and
// whenever the agent is killed the saved deadline is <= the real one (fires early, never
// late) and >= half a lease ahead of the last renewal.
TEST(TestDriver, WatchdogRenewalsRewriteTheStateFileRarelyNeverSavingALaterDeadline) {
  const std::string path = tempPath("wd-renew") + ".json";
  std::filesystem::remove(path);
  Fixture f(Params{{"state_file", path}});
  ASSERT_TRUE(f.driver->define(server("web-01", 1)).ok());
  ASSERT_TRUE(f.driver->start("web-01").ok());
  int rewrites = 0;
  TimeMs saved = -1;
  for (int i = 0; i < 100; ++i) {
    f.clock->advance(100);
    const TimeMs now = f.clock->nowMs();
    f.driver->armWatchdog(now + 1000);
    const TimeMs s = savedDeadline(path);
    if (s != saved) ++rewrites;
    saved = s;
    ASSERT_LE(saved, now + 1000) << "renewal " << i << ": a saved deadline must never be later than the lease";
    ASSERT_GE(saved, now + 500) << "renewal " << i;
    // A kill -9 now: a reload at the real deadline has fired, at the saved deadline.
    const std::string copy = path + ".kill";
    std::filesystem::copy_file(path, copy, std::filesystem::copy_options::overwrite_existing);
    Fixture g(Params{{"state_file", copy}}, std::make_shared<ManualClock>(now + 1000));
    ASSERT_EQ(g.state("web-01"), DomainState::Shutoff) << "renewal " << i;
    ASSERT_EQ(g.driver->journal().at(0).timeMs, saved);
    std::filesystem::remove(copy);
  }
  EXPECT_GE(rewrites, 10);
  EXPECT_LE(rewrites, 25) << "the state file is not rewritten on every renewal";
  // Moving the deadline backward (a shorter lease) is saved at once.
  f.driver->armWatchdog(f.clock->nowMs() + 100);
  EXPECT_EQ(savedDeadline(path), f.clock->nowMs() + 100);
  std::filesystem::remove(path);
}

TEST(TestDriver, RenewingTheWatchdogDoesNotGrowTheTimerQueue) {
  auto made = makeTestDriver({"", {{"blade", "c1-s1"}}});
  ASSERT_TRUE(made.ok());
  auto* driver = static_cast<TestDriver*>(made->get());
  ASSERT_TRUE(driver->define(server("web-01")).ok());
  ASSERT_TRUE(driver->start("web-01").ok());
  const TimeMs now = systemClock()->nowMs();
  driver->armWatchdog(now + 60'000);
  const auto before = pendingTestDriverTimers();
  for (int i = 1; i <= 1000; ++i) driver->armWatchdog(now + 60'000 + i);
  EXPECT_LE(pendingTestDriverTimers(), before) << "one queued entry per driver, not one per renewal";
}

TEST(TestDriver, ReloadedWatchdogFiresOnTheRealClockWithoutAnyCall) {
  const std::string path = tempPath("wd-real") + ".json";
  std::filesystem::remove(path);
  TimeMs deadline = 0;
  {
    auto made = makeTestDriver({"", {{"blade", "c1-s1"}, {"state_file", path}}});
    ASSERT_TRUE(made.ok());
    auto* driver = static_cast<TestDriver*>(made->get());
    ASSERT_TRUE(driver->define(server("web-01")).ok());
    ASSERT_TRUE(driver->start("web-01").ok());
    deadline = systemClock()->nowMs() + 300;
    driver->armWatchdog(deadline);
  }
  auto made = makeTestDriver({"", {{"blade", "c1-s1"}, {"state_file", path}}});
  ASSERT_TRUE(made.ok());
  auto* driver = static_cast<TestDriver*>(made->get());
  auto state = std::make_shared<std::pair<std::mutex, std::condition_variable>>();
  auto fired = std::make_shared<std::vector<DomainEvent>>();
  ASSERT_TRUE(driver
                  ->subscribe([state, fired](const DomainEvent& e) {
                    std::lock_guard lock(state->first);
                    fired->push_back(e);
                    state->second.notify_all();
                  })
                  .ok());
  {
    std::unique_lock lock(state->first);
    ASSERT_TRUE(state->second.wait_for(lock, std::chrono::seconds(5), [&] { return !fired->empty(); }))
        << "the reloaded watchdog did not fire";
  }
  const auto journal = driver->journal();
  ASSERT_EQ(journal.size(), 1u);
  EXPECT_EQ(journal[0].event, JournalEvent::Watchdog);
  EXPECT_EQ(journal[0].timeMs, deadline);
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace loom::drivers::test
