// The test driver's notion of time, injectable so tests can step it (Mesos's
// Clock::pause()). Times are wall-clock milliseconds since the Unix epoch because the
// journal is compared across processes (one agent process per blade in fault tests).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

namespace loom::drivers::test {

using TimeMs = std::int64_t;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimeMs nowMs() const = 0;
  // Waits `ms` (start latency). A manual clock advances itself instead of waiting.
  virtual void sleepMs(TimeMs ms) = 0;
  // True for real time: only then may the shared timer thread fire deadlines on its own
  // (a manual clock's deadlines fire when the test steps time and calls the driver).
  virtual bool isReal() const { return false; }
};

class SystemClock final : public Clock {
 public:
  TimeMs nowMs() const override;
  void sleepMs(TimeMs ms) override;
  bool isReal() const override { return true; }
};

// A clock that only moves when told to. Thread-safe.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(TimeMs startMs = 1'700'000'000'000) : now_(startMs) {}
  TimeMs nowMs() const override { return now_.load(); }
  void sleepMs(TimeMs ms) override { advance(ms); }
  void advance(TimeMs ms) { now_ += ms; }
  void set(TimeMs ms) { now_ = ms; }

 private:
  std::atomic<TimeMs> now_;
};

std::shared_ptr<Clock> systemClock();

}  // namespace loom::drivers::test
