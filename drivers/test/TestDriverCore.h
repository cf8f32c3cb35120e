// Internal to the test driver (loom_driver_test): the state every TestDriver call and the
// process-wide timer thread share. One mutex guards it; the caller's thread and the timer
// thread both reach it. Events are collected under the lock and delivered after it is
// released, so a callback may call back into the driver. The *Locked functions expect
// `mu` held. TestDriver.cpp: the Driver operations; TestDriverCore.cpp: the state file
// and the timer thread.
#pragma once

#include <algorithm>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "drivers/test/TestDriver.h"

namespace loom::drivers::test {

// No transition due.
inline constexpr TimeMs kNever = std::numeric_limits<TimeMs>::max();

struct TestDriver::Core {
  struct Domain {
    DomainSpec spec;
    DomainState state = DomainState::Defined;
    TimeMs crashAtMs = kNever;
  };

  TestDriverConfig config;
  std::shared_ptr<Clock> clock;

  std::mutex mu;
  std::map<std::string, Domain> domains;
  Journal journal;
  TimeMs watchdogDeadline = kNever;
  std::optional<TimeMs> watchdogFiredAt;
  std::optional<pool::Hypervisor> personality;  // given by preparePersonality
  // The deadline the state file holds: never later than watchdogDeadline (see armWatchdog).
  TimeMs savedWatchdogDeadline = kNever;
  std::vector<EventCallback> subscribers;
  bool changed = false;  // domains or watchdog differ from the state file
  // The earliest time the timer thread holds an entry for this driver (kNever: none), so a
  // renewal that moves the deadline later adds no entry: the one queued fires, finds
  // nothing due and queues the next due time. Without it every renewal adds an entry.
  TimeMs timerAt = kNever;

  using Events = std::vector<DomainEvent>;

  void endRunLocked(Domain& d, DomainState to, JournalEvent why, TimeMs at, const std::string& detail, Events& out) {
    changed = true;
    d.state = to;
    d.crashAtMs = kNever;
    journal.record(JournalEntry{at, config.blade, why, d.spec.name, d.spec.uuid});
    out.push_back(DomainEvent{d.spec.name, d.spec.uuid, to, detail});
  }

  // Stop, destroy and undefine all end a run the same way; only the journal entry differs.
  // Returns the domain (running or not), or nullptr when it is not defined.
  Domain* endIfRunningLocked(const std::string& name, JournalEvent why, const std::string& detail, Events& out) {
    auto it = domains.find(name);
    if (it == domains.end()) return nullptr;
    Domain& d = it->second;
    if (d.state == DomainState::Running || d.state == DomainState::Paused) {
      endRunLocked(d, DomainState::Shutoff, why, clock->nowMs(), detail, out);
    }
    return &d;
  }

  // Applies every transition due by `now`, earliest first, each stamped with its due time.
  void reapLocked(TimeMs now, Events& out) {
    for (;;) {
      Domain* next = nullptr;
      TimeMs due = watchdogDeadline;
      for (auto& [_, d] : domains) {
        if (d.state == DomainState::Running && d.crashAtMs < due) {
          due = d.crashAtMs;
          next = &d;
        }
      }
      if (due > now) return;
      if (next) {
        endRunLocked(*next, DomainState::Crashed, JournalEvent::Crash, due, "crashed (crash_after_ms)", out);
        continue;
      }
      // The watchdog is due: fence, as a blade whose agent lost its lease must.
      for (auto& [_, d] : domains) {
        if (d.state == DomainState::Running || d.state == DomainState::Paused) {
          endRunLocked(d, DomainState::Shutoff, JournalEvent::Watchdog, due, "destroyed by the lease watchdog", out);
        }
      }
      watchdogFiredAt = watchdogDeadline;
      watchdogDeadline = kNever;
      changed = true;  // saved as fired, so a reload does not start anything either
    }
  }

  TimeMs nextDueLocked() const {
    TimeMs due = watchdogDeadline;
    for (const auto& [_, d] : domains) {
      if (d.state == DomainState::Running) due = std::min(due, d.crashAtMs);
    }
    return due;
  }

  void deliver(const Events& events) {
    if (events.empty()) return;
    std::vector<EventCallback> subs;
    {
      std::lock_guard lock(mu);
      subs = subscribers;
    }
    for (const auto& e : events) {
      for (const auto& cb : subs) cb(e);
    }
  }

  void scheduleTimer(const std::shared_ptr<Core>& self);

  // Writes the state file if anything changed (write to a temporary, then rename, so a
  // process killed mid-write leaves the previous state, never half of one).
  void saveLocked();
  Status loadStateFile();
};

}  // namespace loom::drivers::test
