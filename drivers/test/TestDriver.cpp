// TestDriver: the Driver operations on the in-memory state (TestDriverCore.h), each
// applying what fell due first (withCore), and the driver's params (parseTestDriverConfig).
#include "drivers/test/TestDriver.h"

#include <algorithm>
#include <utility>

#include "drivers/SpecValidation.h"
#include "drivers/test/TestDriverCore.h"

namespace loom::drivers::test {
namespace {

Result<std::int64_t> numberParam(const DriverOptions& options, const std::string& key, std::int64_t fallback) {
  auto it = options.params.find(key);
  if (it == options.params.end()) return fallback;
  try {
    size_t used = 0;
    const long long v = std::stoll(it->second, &used);
    if (used == it->second.size() && v >= 0) return static_cast<std::int64_t>(v);
  } catch (const std::exception&) {
  }
  return makeError(Errc::Invalid, "test driver: param " + key + "='" + it->second + "' is not a non-negative integer");
}

}  // namespace

Result<TestDriverConfig> parseTestDriverConfig(const DriverOptions& options) {
  TestDriverConfig c;
  auto text = [&](const std::string& key, std::string& out) {
    if (auto it = options.params.find(key); it != options.params.end()) out = it->second;
  };
  text("blade", c.blade);
  text("cpu_model", c.cpuModel);
  text("journal", c.journalPath);
  text("state_file", c.statePath);
  auto cores = numberParam(options, "cores", c.cores);
  auto memory = numberParam(options, "memory_mib", static_cast<std::int64_t>(c.memory));
  auto latency = numberParam(options, "start_latency_ms", 0);
  auto crash = numberParam(options, "crash_after_ms", 0);
  for (auto* r : {&cores, &memory, &latency, &crash}) {
    if (!*r) return r->error();
  }
  c.cores = static_cast<std::uint32_t>(*cores);
  c.memory = static_cast<MiB>(*memory);
  c.startLatencyMs = *latency;
  c.crashAfterMs = *crash;
  if (auto it = options.params.find("fail_start"); it != options.params.end()) {
    std::string item;
    for (char ch : it->second + ",") {
      if (ch == ',') {
        if (!item.empty()) c.failStart.insert(item);
        item.clear();
      } else if (ch != ' ') {
        item += ch;
      }
    }
  }
  if (auto it = options.params.find("events"); it != options.params.end()) {
    if (it->second != "true" && it->second != "false") {
      return makeError(Errc::Invalid, "test driver: param events='" + it->second + "' is not true or false");
    }
    c.events = it->second == "true";
  }
  return c;
}

Result<std::unique_ptr<TestDriver>> TestDriver::create(TestDriverConfig config, std::shared_ptr<Clock> clock) {
  auto core = std::make_shared<Core>();
  core->config = std::move(config);
  core->clock = std::move(clock);
  if (!core->config.journalPath.empty()) {
    if (auto s = core->journal.open(core->config.journalPath); !s) {
      return makeError(s.error().code, "test driver '" + core->config.blade + "': " + s.error().message);
    }
  }
  // Reloaded as they were, without journaling: these domains never stopped.
  if (auto s = core->loadStateFile(); !s)
    return makeError(s.error().code, "test driver '" + core->config.blade + "': " + s.error().message);
  {
    // ...unless their watchdog (or a crash) fell due while no process held them: the
    // hardware watchdog of a blade whose agent was killed still fires at its deadline.
    // Applied now, stamped with the due time; nobody has subscribed yet.
    Core::Events ignored;
    std::lock_guard lock(core->mu);
    core->reapLocked(core->clock->nowMs(), ignored);
    core->saveLocked();
  }
  auto driver = std::unique_ptr<TestDriver>(new TestDriver(core));
  core->scheduleTimer(core);  // crashes and the watchdog due for reloaded domains
  return driver;
}

TestDriver::TestDriver(std::shared_ptr<Core> core) : core_(std::move(core)) {}
TestDriver::~TestDriver() = default;  // the timer holds the core weakly: nothing to stop

const TestDriverConfig& TestDriver::config() const { return core_->config; }

Capabilities TestDriver::capabilities() const {
  Capabilities c;
  c.events = core_->config.events;
  c.directKernelBoot = true;
  c.persistentDefinitions = false;  // definitions live in this process only
  c.personalities = pool::HypervisorSet::all();
  c.watchdog = true;
  return c;
}

ProbeResult TestDriver::probe() {
  return ProbeResult{true, "in-memory test driver (blade '" + core_->config.blade + "')"};
}

Result<NodeInfo> TestDriver::nodeInfo() {
  NodeInfo n;
  n.sockets = 1;
  n.cores = core_->config.cores;
  n.memory = core_->config.memory;
  n.cpuModel = core_->config.cpuModel;
  n.hypervisor = "test";
  n.version = "loom-test 1";
  std::lock_guard lock(core_->mu);
  n.personality = core_->personality;
  return n;
}

// Every call goes through here: lock, apply what fell due, run `body`, unlock, deliver
// the events, re-arm the timer for what is due next.
template <class F>
static auto withCore(const std::shared_ptr<TestDriver::Core>& core, F&& body) {
  TestDriver::Core::Events events;
  auto result = [&] {
    std::lock_guard lock(core->mu);
    core->reapLocked(core->clock->nowMs(), events);
    auto r = body(events);
    core->saveLocked();
    return r;
  }();
  core->deliver(events);
  core->scheduleTimer(core);
  return result;
}

Status TestDriver::define(const DomainSpec& spec) {
  if (auto s = validateDomainSpec(spec); !s) return s;
  return withCore(core_, [&](Core::Events&) -> Status {
    for (const auto& [name, d] : core_->domains) {
      if (name != spec.name && d.spec.uuid == spec.uuid) {
        return makeError(Errc::Conflict,
                         "domain '" + spec.name + "': uuid " + spec.uuid + " already belongs to domain '" + name + "'");
      }
    }
    auto it = core_->domains.find(spec.name);
    core_->changed = true;
    if (it == core_->domains.end()) {
      core_->domains.emplace(spec.name, Core::Domain{spec});
      return okStatus();
    }
    if (it->second.spec.uuid != spec.uuid) {
      return makeError(Errc::Conflict, "domain '" + spec.name + "' already exists with uuid " + it->second.spec.uuid);
    }
    // Like libvirt: a redefinition replaces the stored definition, running or not.
    it->second.spec = spec;
    return okStatus();
  });
}

Status TestDriver::start(const std::string& name) {
  // Checks before the latency so an impossible start fails fast.
  auto precheck = withCore(core_, [&](Core::Events&) -> Status {
    auto it = core_->domains.find(name);
    if (it == core_->domains.end()) {
      return makeError(Errc::NotFound, "cannot start domain '" + name + "': not defined");
    }
    if (it->second.state == DomainState::Running) return okStatus();
    if (core_->config.failStart.count("*") || core_->config.failStart.count(name)) {
      return makeError(Errc::Io, "cannot start domain '" + name + "': injected failure (fail_start)");
    }
    return okStatus();
  });
  if (!precheck) return precheck;
  // The latency passes outside the lock so the timer thread is not held up by it.
  core_->clock->sleepMs(core_->config.startLatencyMs);
  return withCore(core_, [&](Core::Events& events) -> Status {
    auto it = core_->domains.find(name);
    if (it == core_->domains.end()) {
      return makeError(Errc::NotFound, "cannot start domain '" + name + "': undefined while starting");
    }
    auto& d = it->second;
    if (d.state == DomainState::Running) return okStatus();
    if (core_->watchdogFiredAt) {
      return makeError(Errc::Unavailable, "cannot start domain '" + name + "': the lease watchdog fired at " +
                                              std::to_string(*core_->watchdogFiredAt) +
                                              " ms and was not re-armed (blade is fenced)");
    }
    MiB used = 0;
    for (const auto& [_, other] : core_->domains) {
      if (other.state == DomainState::Running || other.state == DomainState::Paused) used += other.spec.memory;
    }
    if (used + d.spec.memory > core_->config.memory) {
      return makeError(Errc::Conflict, "cannot start domain '" + name + "': needs " + std::to_string(d.spec.memory) +
                                           " MiB, " + std::to_string(core_->config.memory - used) + " MiB free");
    }
    const TimeMs now = core_->clock->nowMs();
    d.state = DomainState::Running;
    core_->changed = true;
    d.crashAtMs = core_->config.crashAfterMs > 0 ? now + core_->config.crashAfterMs : kNever;
    core_->journal.record(JournalEntry{now, core_->config.blade, JournalEvent::Start, name, d.spec.uuid});
    events.push_back(DomainEvent{name, d.spec.uuid, DomainState::Running, "started"});
    return okStatus();
  });
}

Status TestDriver::stop(const std::string& name, int /*timeoutMs: guests here always obey*/) {
  return withCore(core_, [&](Core::Events& events) -> Status {
    core_->endIfRunningLocked(name, JournalEvent::Stop, "shut down", events);
    return okStatus();
  });
}

Status TestDriver::destroy(const std::string& name) {
  return withCore(core_, [&](Core::Events& events) -> Status {
    core_->endIfRunningLocked(name, JournalEvent::Destroy, "destroyed", events);
    return okStatus();
  });
}

Status TestDriver::undefine(const std::string& name) {
  return withCore(core_, [&](Core::Events& events) -> Status {
    if (!core_->endIfRunningLocked(name, JournalEvent::Destroy, "destroyed", events)) return okStatus();
    core_->domains.erase(name);
    core_->changed = true;
    return okStatus();
  });
}

static DomainInfo infoOf(const TestDriver::Core::Domain& d) {
  DomainInfo i;
  i.name = d.spec.name;
  i.uuid = d.spec.uuid;
  i.state = d.state;
  i.vcpus = d.spec.vcpus;
  i.memory = d.spec.memory;
  for (const auto& nic : d.spec.nics) i.macs.push_back(nic.mac);
  return i;
}

Result<std::vector<DomainInfo>> TestDriver::list() {
  return withCore(core_, [&](Core::Events&) -> Result<std::vector<DomainInfo>> {
    std::vector<DomainInfo> out;
    for (const auto& [_, d] : core_->domains) out.push_back(infoOf(d));
    return out;
  });
}

Result<DomainInfo> TestDriver::info(const std::string& name) {
  return withCore(core_, [&](Core::Events&) -> Result<DomainInfo> {
    auto it = core_->domains.find(name);
    if (it == core_->domains.end()) return makeError(Errc::NotFound, "domain '" + name + "' not found");
    return infoOf(it->second);
  });
}

Status TestDriver::subscribe(EventCallback callback) {
  if (!core_->config.events) {
    return makeError(Errc::Unsupported, "test driver '" + core_->config.blade + "': events are off (events=false)");
  }
  std::lock_guard lock(core_->mu);
  core_->subscribers.push_back(std::move(callback));
  return okStatus();
}

Status TestDriver::preparePersonality(pool::Hypervisor hypervisor) {
  return withCore(core_, [&](Core::Events&) -> Status {
    if (core_->personality != hypervisor) {
      core_->personality = hypervisor;
      core_->changed = true;
    }
    return okStatus();
  });
}

Status TestDriver::renewWatchdog(std::int64_t remainingMs) {
  armWatchdog(core_->clock->nowMs() + remainingMs);
  return okStatus();
}

void TestDriver::armWatchdog(TimeMs deadlineMs) {
  withCore(core_, [&](Core::Events& events) {
    auto& c = *core_;
    const TimeMs now = c.clock->nowMs();
    // Save unless the deadline only moved forward and the saved one is still at least
    // half of this renewal's span ahead (see TestDriver.h): the saved deadline stays <= the
    // real one, so a reloaded watchdog fires early, never late.
    const TimeMs span = std::max<TimeMs>(deadlineMs - now, 0);
    if (c.watchdogFiredAt || c.savedWatchdogDeadline == kNever || deadlineMs < c.savedWatchdogDeadline ||
        c.savedWatchdogDeadline - now < span / 2) {
      c.changed = true;
    }
    c.watchdogDeadline = deadlineMs;
    c.watchdogFiredAt.reset();
    c.reapLocked(now, events);  // a deadline in the past fires now
    return 0;
  });
}

Status TestDriver::disarmWatchdog() {
  withCore(core_, [&](Core::Events&) {
    auto& c = *core_;
    if (c.watchdogDeadline != kNever || c.watchdogFiredAt || c.savedWatchdogDeadline != kNever) c.changed = true;
    c.watchdogDeadline = kNever;
    c.watchdogFiredAt.reset();
    return 0;
  });
  return okStatus();
}

bool TestDriver::watchdogFired() {
  return withCore(core_, [&](Core::Events&) { return core_->watchdogFiredAt.has_value(); });
}

void TestDriver::poll() {
  withCore(core_, [](Core::Events&) { return 0; });
}

std::vector<JournalEntry> TestDriver::journal() {
  return withCore(core_, [&](Core::Events&) { return core_->journal.entries(); });
}

Result<std::unique_ptr<Driver>> makeTestDriver(const DriverOptions& options) {
  auto config = parseTestDriverConfig(options);
  if (!config) return config.error();
  auto driver = TestDriver::create(std::move(*config));
  if (!driver) return driver.error();
  return std::unique_ptr<Driver>(std::move(*driver));
}

}  // namespace loom::drivers::test
