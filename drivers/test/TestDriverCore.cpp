// The test driver's state file (a simulated blade's domains kept across agent restarts)
// and the one timer thread that applies crashes and the watchdog for real-clock drivers.
#include "drivers/test/TestDriverCore.h"

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <thread>
#include <utility>

#include "drivers/DomainSpecJson.h"

namespace loom::drivers::test {

namespace {

// Domain states in the state file are text; files written before 0.2 hold the number
// (the enum's order, which pool/Model.h keeps).
constexpr std::array kLegacyStates{DomainState::Defined,      DomainState::Running, DomainState::Paused,
                                   DomainState::ShuttingDown, DomainState::Shutoff, DomainState::Crashed};

DomainState stateFrom(const nlohmann::json& j) {
  if (j.is_string()) {
    if (auto s = pool::parseDomainState(j.get_ref<const std::string&>())) return *s;
    throw std::runtime_error("unknown domain state '" + j.get<std::string>() + "'");
  }
  const auto n = j.get<std::int64_t>();  // throws for anything but a number
  if (n < 0 || n >= std::int64_t{kLegacyStates.size()})
    throw std::runtime_error("unknown domain state " + std::to_string(n));
  return kLegacyStates[static_cast<std::size_t>(n)];
}

}  // namespace

void TestDriver::Core::saveLocked() {
  if (!changed || config.statePath.empty()) return;
  changed = false;
  nlohmann::json list = nlohmann::json::array();
  for (const auto& [_, d] : domains) {
    nlohmann::json j{{"spec", toJson(d.spec)}, {"state", pool::toString(d.state)}};
    if (d.crashAtMs != kNever) j["crash_at_ms"] = d.crashAtMs;
    list.push_back(std::move(j));
  }
  nlohmann::json state{{"blade", config.blade}, {"domains", list}};
  if (personality) state["personality"] = pool::toString(*personality);
  if (watchdogFiredAt) {
    state["watchdog"] = {{"fired_at_ms", *watchdogFiredAt}};
  } else if (watchdogDeadline != kNever) {
    state["watchdog"] = {{"deadline_ms", watchdogDeadline}};
  }
  const std::string tmp = config.statePath + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << state.dump();
    out.close();
    if (!out) {
      changed = true;  // try again on the next change
      return;
    }
  }
  if (std::rename(tmp.c_str(), config.statePath.c_str()) != 0) {
    changed = true;
    return;
  }
  savedWatchdogDeadline = watchdogFiredAt ? kNever : watchdogDeadline;
}

Status TestDriver::Core::loadStateFile() {
  if (config.statePath.empty()) return okStatus();
  std::ifstream in(config.statePath);
  if (!in) return okStatus();  // first run: nothing kept yet
  try {
    const auto j = nlohmann::json::parse(in);
    for (const auto& d : j.at("domains")) {
      auto spec = domainSpecFromJson(d.at("spec"));
      if (!spec)
        return makeError(Errc::Invalid, "state file '" + config.statePath + "' unreadable: " + spec.error().message);
      Domain dom{std::move(*spec)};
      dom.state = stateFrom(d.at("state"));
      if (d.contains("crash_at_ms")) dom.crashAtMs = d["crash_at_ms"].get<TimeMs>();
      domains.emplace(dom.spec.name, std::move(dom));
    }
    if (j.contains("personality")) {
      const auto text = j["personality"].get<std::string>();
      personality = pool::parseHypervisor(text);
      if (!personality) throw std::runtime_error("unknown personality '" + text + "'");
    }
    if (j.contains("watchdog")) {
      const auto& w = j["watchdog"];
      if (w.contains("fired_at_ms")) watchdogFiredAt = w["fired_at_ms"].get<TimeMs>();
      if (w.contains("deadline_ms")) watchdogDeadline = savedWatchdogDeadline = w["deadline_ms"].get<TimeMs>();
    }
  } catch (const std::exception& e) {
    return makeError(Errc::Invalid, "state file '" + config.statePath + "' unreadable: " + e.what());
  }
  return okStatus();
}

namespace {

// The one timer thread of the process for real-clock test drivers: a queue of (due time,
// driver), holding drivers weakly so a destroyed driver simply drops out.
class TimerThread {
 public:
  static TimerThread& instance() {
    static TimerThread timer;
    return timer;
  }

  void schedule(std::weak_ptr<TestDriver::Core> core, TimeMs dueMs) {
    std::lock_guard lock(mu_);
    queue_.emplace(dueMs, std::move(core));
    if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
    cv_.notify_one();
  }

  std::size_t size() {
    std::lock_guard lock(mu_);
    return queue_.size();
  }

  ~TimerThread() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable()) thread_.join();
  }

 private:
  void run() {
    std::unique_lock lock(mu_);
    while (!stopping_) {
      if (queue_.empty()) {
        cv_.wait(lock);
        continue;
      }
      const TimeMs now = SystemClock{}.nowMs();
      auto first = queue_.begin();
      if (first->first > now) {
        cv_.wait_for(lock, std::chrono::milliseconds(first->first - now));
        continue;
      }
      const TimeMs dueMs = first->first;
      auto core = first->second.lock();
      queue_.erase(first);
      if (!core) continue;
      lock.unlock();
      TestDriver::Core::Events events;
      bool wasNext = false;
      {
        std::lock_guard coreLock(core->mu);
        core->reapLocked(core->clock->nowMs(), events);
        core->saveLocked();
        // Only the driver's earliest entry queues the next one; a later leftover (an
        // earlier due time was queued after it) just reaps.
        wasNext = core->timerAt == dueMs;
        if (wasNext) core->timerAt = kNever;
      }
      core->deliver(events);
      if (wasNext) core->scheduleTimer(core);
      lock.lock();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::multimap<TimeMs, std::weak_ptr<TestDriver::Core>> queue_;
  std::thread thread_;
  bool stopping_ = false;
};

}  // namespace

void TestDriver::Core::scheduleTimer(const std::shared_ptr<Core>& self) {
  if (!clock->isReal()) return;
  TimeMs due;
  {
    std::lock_guard lock(mu);
    due = nextDueLocked();
    // An entry at or before `due` is queued already: it will find nothing due (or `due`
    // itself) and queue what is due next.
    if (due >= timerAt) return;
    timerAt = due;
  }
  TimerThread::instance().schedule(self, due);
}

std::size_t pendingTestDriverTimers() { return TimerThread::instance().size(); }

}  // namespace loom::drivers::test
