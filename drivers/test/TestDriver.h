// The in-memory test driver: no hypervisor, instant (or configurably slow) domains, failure
// knobs and a journal. Used by `loom-agent --simulate` (one instance per simulated blade),
// the fault tests and the conformance suite (Nomad's drivers/mock).
//
// Params (DriverOptions::params; unknown keys are ignored because probeAll hands every
// driver the same options):
//   blade=NAME             name stamped into the journal (default "test")
//   cores=N memory_mib=N   node size (default 8 cores, 16384 MiB); starts beyond memory fail
//   cpu_model=TEXT         reported by nodeInfo (default "Loom Test CPU")
//   start_latency_ms=N     each start takes this long (on the driver's clock)
//   fail_start=A,B | *     starting these domains (or any) fails with an Io error
//   crash_after_ms=N       every started domain crashes N ms after its start
//   journal=PATH           also append the journal to PATH (see Journal.h)
//   events=false           capabilities().events off; subscribe() returns Unsupported
//   state_file=PATH        keep the domains (specs, run state), the blade's personality and
//                          the lease watchdog in PATH, rewritten on every change; a driver
//                          created on an existing
//                          file reloads them as they were, journaling nothing (they never
//                          stopped). This is how a simulated blade's domains outlive its
//                          agent process, the way a real hypervisor keeps running while
//                          loom-agent restarts. The watchdog outlives it too, as a hardware
//                          watchdog does on kill -9 of the agent: see armWatchdog.
//
// Time-driven transitions (crash_after_ms, the watchdog) are due at an exact time and are
// applied in time order, stamped with that due time, whenever they are noticed:
// (1) at the start of every call on the driver, and (2) for the real clock, by one timer
// thread shared by all test drivers of the process, which wakes at the earliest due time
// (one thread, not one per driver, because --simulate runs thousands of blades). With a
// ManualClock only (1) applies, so tests are deterministic: step the clock, then call.
#pragma once

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "drivers/Driver.h"
#include "drivers/DriverRegistry.h"
#include "drivers/test/Clock.h"
#include "drivers/test/Journal.h"

namespace loom::drivers::test {

struct TestDriverConfig {
  std::string blade = "test";
  std::uint32_t cores = 8;
  MiB memory = 16384;
  std::string cpuModel = "Loom Test CPU";
  TimeMs startLatencyMs = 0;
  std::set<std::string> failStart;  // "*" fails every start
  TimeMs crashAfterMs = 0;          // 0: never
  std::string journalPath;          // empty: in memory only
  bool events = true;
  std::string statePath;  // empty: domains live in this process only
};

// Reads the params above; a malformed number is an Invalid error quoting the param.
Result<TestDriverConfig> parseTestDriverConfig(const DriverOptions& options);

class TestDriver final : public Driver {
 public:
  // Fails when the journal file cannot be opened or the state file exists but cannot be
  // read back.
  static Result<std::unique_ptr<TestDriver>> create(TestDriverConfig config,
                                                    std::shared_ptr<Clock> clock = systemClock());
  ~TestDriver() override;

  std::string name() const override { return "test"; }
  Capabilities capabilities() const override;
  ProbeResult probe() override;
  Result<NodeInfo> nodeInfo() override;
  Status define(const DomainSpec& spec) override;
  Status start(const std::string& name) override;
  Status stop(const std::string& name, int timeoutMs) override;
  Status destroy(const std::string& name) override;
  Status undefine(const std::string& name) override;
  Result<std::vector<DomainInfo>> list() override;
  Result<DomainInfo> info(const std::string& name) override;
  Status subscribe(EventCallback callback) override;
  // Plays either personality; the one given is reported by nodeInfo() and kept in the
  // state file, as a real blade keeps its hypervisor install.
  Status preparePersonality(pool::Hypervisor hypervisor) override;
  // armWatchdog(now + remainingMs) on the driver's clock.
  Status renewWatchdog(std::int64_t remainingMs) override;

  // The lease watchdog (self-fencing, DESIGN.md §5). Arms or renews it: if the clock
  // reaches `deadlineMs` before the next armWatchdog, every running domain is destroyed
  // and journaled as "watchdog" at exactly `deadlineMs`. After it fired, start() fails
  // with Unavailable until the watchdog is armed again: a fenced blade starts nothing.
  // A deadline already in the past fires at once (stamped with that deadline).
  //
  // With state_file, the watchdog is kept in the file: a driver created on a file whose
  // deadline has passed fires it at once (stamped with the saved deadline, not the load
  // time), and a fired watchdog is still fired after a reload. So a simulated blade whose
  // agent is killed -9 loses its domains at its lease deadline, as a real host's hardware
  // watchdog does, whether or not an agent runs again by then.
  //
  // Cheap enough for every renewal of thousands of blades: a renewal that only moves the
  // deadline forward rewrites the state file only when the saved deadline is less than half
  // of this renewal's span (deadlineMs - now) ahead of now. So the saved deadline is never
  // later than the real one (a reloaded watchdog fires early, never late: it only ends
  // domains sooner) and, for an agent renewing every H ms a lease of L ms, a kill -9 leaves
  // at least L/2 - H ms before the saved deadline for a restarted agent to re-arm it. The
  // file is rewritten about once per L/2 ms instead of once per H ms. A first arm, a re-arm
  // after a firing, a deadline moved backward and disarmWatchdog are always saved.
  void armWatchdog(TimeMs deadlineMs);
  Status disarmWatchdog() override;
  bool watchdogFired();

  // Applies everything due by now (crashes, watchdog); every other call does this too.
  void poll();
  // The journal so far (after poll()).
  std::vector<JournalEntry> journal();
  const TestDriverConfig& config() const;

  struct Core;  // shared with the process-wide timer thread, which holds it weakly

 private:
  explicit TestDriver(std::shared_ptr<Core> core);
  std::shared_ptr<Core> core_;
};

// Entries in the process-wide timer queue of real-clock test drivers (a diagnostic for
// tests: renewing a watchdog must not grow it).
std::size_t pendingTestDriverTimers();

// The registry's factory: parseTestDriverConfig + create on the system clock.
Result<std::unique_ptr<Driver>> makeTestDriver(const DriverOptions& options);

}  // namespace loom::drivers::test
