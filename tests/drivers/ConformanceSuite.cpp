#include "tests/drivers/ConformanceSuite.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <random>

namespace loom::drivers::conformance {
namespace {

std::string randomHex(std::mt19937_64& rng, int digits) {
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < digits; ++i) out += kHex[rng() % 16];
  return out;
}

std::mt19937_64& rng() {
  static std::mt19937_64 r{std::random_device{}() ^ static_cast<std::uint64_t>(::getpid())};
  return r;
}

bool notRunning(DomainState s) {
  return s == DomainState::Defined || s == DomainState::Shutoff || s == DomainState::Crashed;
}

#define ASSERT_OK(expr)                                          \
  do {                                                           \
    const auto& r_ = (expr);                                     \
    ASSERT_TRUE(r_.ok()) << #expr << ": " << r_.error().message; \
  } while (0)

}  // namespace

void DriverConformance::SetUp() {
  auto made = GetParam().make();
  ASSERT_TRUE(made.ok()) << "creating driver '" << GetParam().name << "': " << made.error().message;
  driver_ = std::move(*made);
  const ProbeResult probe = driver_->probe();
  if (probe.applies) return;
  const std::string required = GetParam().requiredBecause ? GetParam().requiredBecause() : "";
  if (!required.empty())
    FAIL() << GetParam().name << " does not apply here: " << probe.reason << "; not skipped, because " << required;
  GTEST_SKIP() << GetParam().name << " does not apply here: " << probe.reason;
}

void DriverConformance::TearDown() {
  if (!driver_) return;
  for (const auto& name : created_) {
    (void)driver_->destroy(name);
    (void)driver_->undefine(name);
  }
  driver_.reset();
}

DomainSpec DriverConformance::spec() {
  static int counter = 0;
  auto& r = rng();
  DomainSpec s;
  s.name = "loomtest-" + std::to_string(::getpid()) + "-" + std::to_string(++counter);
  s.uuid = randomHex(r, 8) + "-" + randomHex(r, 4) + "-4" + randomHex(r, 3) + "-a" + randomHex(r, 3) + "-" +
           randomHex(r, 12);
  const std::string tail = randomHex(r, 6);
  s.nics.push_back(NicSpec{"52:54:00:" + tail.substr(0, 2) + ":" + tail.substr(2, 2) + ":" + tail.substr(4, 2), "front",
                           "", std::nullopt});
  s.vcpus = 1;
  s.memory = 64;
  created_.push_back(s.name);
  return s;
}

// ---------------------------------------------------------------------------------------

TEST_P(DriverConformance, ProbeAppliesAndSaysWhatItFound) {
  const ProbeResult probe = driver().probe();
  EXPECT_TRUE(probe.applies);
  EXPECT_FALSE(probe.reason.empty());
}

TEST_P(DriverConformance, NodeInfoIsSane) {
  auto node = driver().nodeInfo();
  ASSERT_OK(node);
  EXPECT_GE(node->cores, 1u);
  EXPECT_GE(node->memory, 64u);
  EXPECT_FALSE(node->cpuModel.empty());
  EXPECT_FALSE(node->hypervisor.empty());
  EXPECT_FALSE(node->version.empty());
}

TEST_P(DriverConformance, StartedDomainListsAsRunningWithTheServersUuidAndMac) {
  const DomainSpec s = spec();
  ASSERT_OK(driver().define(s));
  ASSERT_OK(driver().start(s.name));
  auto all = driver().list();
  ASSERT_OK(all);
  auto it = std::find_if(all->begin(), all->end(), [&](const DomainInfo& d) { return d.name == s.name; });
  ASSERT_NE(it, all->end()) << s.name << " missing from list()";
  EXPECT_EQ(it->state, DomainState::Running) << toString(it->state);
  EXPECT_EQ(it->uuid, s.uuid);
  EXPECT_EQ(it->macs, std::vector<std::string>{s.nics[0].mac});
  EXPECT_EQ(it->vcpus, s.vcpus);
  EXPECT_EQ(it->memory, s.memory);

  auto one = driver().info(s.name);
  ASSERT_OK(one);
  EXPECT_EQ(one->state, DomainState::Running);
  EXPECT_EQ(one->uuid, s.uuid);
}

TEST_P(DriverConformance, StartingARunningDomainSucceeds) {
  const DomainSpec s = spec();
  ASSERT_OK(driver().define(s));
  ASSERT_OK(driver().start(s.name));
  ASSERT_OK(driver().start(s.name));
  auto info = driver().info(s.name);
  ASSERT_OK(info);
  EXPECT_EQ(info->state, DomainState::Running);
}

TEST_P(DriverConformance, StopLeavesTheDomainDefinedButNotRunning) {
  const DomainSpec s = spec();
  ASSERT_OK(driver().define(s));
  ASSERT_OK(driver().start(s.name));
  ASSERT_OK(driver().stop(s.name, GetParam().stopTimeoutMs));
  auto info = driver().info(s.name);
  ASSERT_OK(info);
  EXPECT_TRUE(notRunning(info->state)) << toString(info->state);
  // Stopping again, and stopping what does not exist, are no-ops.
  ASSERT_OK(driver().stop(s.name, GetParam().stopTimeoutMs));
  ASSERT_OK(driver().stop(spec().name, GetParam().stopTimeoutMs));
}

TEST_P(DriverConformance, DestroyOfAbsentOrStoppedDomainSucceeds) {
  ASSERT_OK(driver().destroy(spec().name));
  const DomainSpec s = spec();
  ASSERT_OK(driver().define(s));
  ASSERT_OK(driver().destroy(s.name));
  ASSERT_OK(driver().start(s.name));
  ASSERT_OK(driver().destroy(s.name));
  ASSERT_OK(driver().destroy(s.name));
  auto info = driver().info(s.name);
  ASSERT_OK(info);
  EXPECT_TRUE(notRunning(info->state)) << toString(info->state);
}

TEST_P(DriverConformance, UndefineOfAbsentSucceedsAndOfRunningRemovesIt) {
  ASSERT_OK(driver().undefine(spec().name));
  const DomainSpec s = spec();
  ASSERT_OK(driver().define(s));
  ASSERT_OK(driver().start(s.name));
  ASSERT_OK(driver().undefine(s.name));
  auto info = driver().info(s.name);
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(info.error().code, Errc::NotFound) << info.error().message;
  ASSERT_OK(driver().undefine(s.name));
}

TEST_P(DriverConformance, RedefiningAnIdenticalSpecSucceeds) {
  const DomainSpec s = spec();
  ASSERT_OK(driver().define(s));
  ASSERT_OK(driver().define(s));
  ASSERT_OK(driver().start(s.name));
  ASSERT_OK(driver().define(s));
  auto info = driver().info(s.name);
  ASSERT_OK(info);
  EXPECT_EQ(info->state, DomainState::Running);
  EXPECT_EQ(info->uuid, s.uuid);
}

TEST_P(DriverConformance, InfoOfAbsentDomainIsNotFound) {
  const std::string name = spec().name;
  auto info = driver().info(name);
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(info.error().code, Errc::NotFound);
  EXPECT_NE(info.error().message.find(name), std::string::npos) << info.error().message;
}

TEST_P(DriverConformance, StartOfUndefinedDomainIsNotFound) {
  const std::string name = spec().name;
  auto started = driver().start(name);
  ASSERT_FALSE(started.ok());
  EXPECT_EQ(started.error().code, Errc::NotFound) << started.error().message;
}

TEST_P(DriverConformance, SameNameWithAnotherUuidIsRefused) {
  const DomainSpec s = spec();
  ASSERT_OK(driver().define(s));
  DomainSpec other = s;
  other.uuid = spec().uuid;
  auto defined = driver().define(other);
  ASSERT_FALSE(defined.ok());
  EXPECT_NE(defined.error().message.find(s.name), std::string::npos) << defined.error().message;
  auto info = driver().info(s.name);
  ASSERT_OK(info);
  EXPECT_EQ(info->uuid, s.uuid);  // the refused define changed nothing
}

TEST_P(DriverConformance, EveryErrorNamesTheDomain) {
  const DomainSpec absent = spec();
  std::vector<Error> errors;
  auto collect = [&](const auto& r) {
    EXPECT_FALSE(r.ok());
    if (!r.ok()) errors.push_back(r.error());
  };
  collect(driver().info(absent.name));
  collect(driver().start(absent.name));
  DomainSpec badMac = spec();
  badMac.nics[0].mac = "not-a-mac";
  collect(driver().define(badMac));
  DomainSpec badUuid = spec();
  badUuid.uuid = "1234";
  collect(driver().define(badUuid));
  DomainSpec noMemory = spec();
  noMemory.memory = 0;
  collect(driver().define(noMemory));
  const std::vector<std::string> names{absent.name, absent.name, badMac.name, badUuid.name, noMemory.name};
  ASSERT_EQ(errors.size(), names.size());
  for (size_t i = 0; i < errors.size(); ++i) {
    EXPECT_NE(errors[i].message.find("'" + names[i] + "'"), std::string::npos)
        << "error " << i << " does not quote the domain: " << errors[i].message;
  }
  EXPECT_EQ(errors[2].code, Errc::Invalid);
  EXPECT_EQ(errors[3].code, Errc::Invalid);
}

TEST_P(DriverConformance, UnsupportedOperationsReturnUnsupported) {
  const Capabilities caps = driver().capabilities();
  if (!caps.events) {
    auto subscribed = driver().subscribe([](const DomainEvent&) {});
    ASSERT_FALSE(subscribed.ok());
    EXPECT_EQ(subscribed.error().code, Errc::Unsupported) << subscribed.error().message;
  }
  if (!caps.directKernelBoot) {
    DomainSpec s = spec();
    s.kernel = "/nonexistent/vmlinuz";
    auto defined = driver().define(s);
    ASSERT_FALSE(defined.ok());
    EXPECT_EQ(defined.error().code, Errc::Unsupported) << defined.error().message;
  }
  if (!caps.watchdog) {
    auto renewed = driver().renewWatchdog(60'000);
    ASSERT_FALSE(renewed.ok());
    EXPECT_EQ(renewed.error().code, Errc::Unsupported) << renewed.error().message;
  }
  // A driver that offers every optional operation has nothing to refuse here, which passes.
}

// prepare-hypervisor: a blade becomes what its driver can be, and says so afterwards.
TEST_P(DriverConformance, PersonalitiesItOffersArePreparedAndOthersAreUnsupported) {
  const Capabilities caps = driver().capabilities();
  EXPECT_FALSE(caps.personalities.empty()) << "a driver runs at least one hypervisor";
  for (auto hv : {pool::Hypervisor::Kvm, pool::Hypervisor::Xen}) {
    auto prepared = driver().preparePersonality(hv);
    if (!caps.personalities.has(hv)) {
      ASSERT_FALSE(prepared.ok()) << pool::toString(hv);
      EXPECT_EQ(prepared.error().code, Errc::Unsupported) << prepared.error().message;
      EXPECT_NE(prepared.error().message.find(pool::toString(hv)), std::string::npos) << prepared.error().message;
      continue;
    }
    ASSERT_OK(prepared);
    ASSERT_OK(driver().preparePersonality(hv));  // idempotent
    auto info = driver().nodeInfo();
    ASSERT_OK(info);
    EXPECT_EQ(info->personality, hv) << pool::toString(hv);
  }
}

TEST_P(DriverConformance, EventsReportAStart) {
  if (!driver().capabilities().events) GTEST_SKIP() << "no events on this driver";
  // Shared, not on the stack: the subscription outlives this body (TearDown's destroy
  // and undefine still raise events).
  struct Seen {
    std::mutex mu;
    std::condition_variable cv;
    std::vector<DomainEvent> events;
  };
  auto seen = std::make_shared<Seen>();
  ASSERT_OK(driver().subscribe([seen](const DomainEvent& e) {
    std::lock_guard lock(seen->mu);
    seen->events.push_back(e);
    seen->cv.notify_all();
  }));
  const DomainSpec s = spec();
  ASSERT_OK(driver().define(s));
  ASSERT_OK(driver().start(s.name));
  std::unique_lock lock(seen->mu);
  const bool got = seen->cv.wait_for(lock, std::chrono::seconds(10), [&] {
    return std::any_of(seen->events.begin(), seen->events.end(), [&](const DomainEvent& e) {
      return e.name == s.name && e.uuid == s.uuid && e.state == DomainState::Running;
    });
  });
  EXPECT_TRUE(got) << "no Running event for " << s.name << " within 10 s (" << seen->events.size() << " events)";
}

}  // namespace loom::drivers::conformance
