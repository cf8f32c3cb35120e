// Whether this loomd may act now, and under which epoch (docs/FENCING.md, "Replicas: the
// epoch").
//
// A loomd alone on its store (SQLite, the default) is `solo()`: always acting, epoch 0,
// exactly as before replicas existed. Replicas on etcd start as `replica()`: not acting
// until the election thread wins and calls grant(epoch, actUntilMs), where epoch is the
// election's revision (it only grows) and actUntilMs the moment, on this Leadership's
// clock, at which this loomd's etcd lease could at the earliest expire, minus a margin.
// Each renewal grants again, further; stepping down calls revoke().
//
// Acting is judged against the clock at the moment of asking, never a flag someone must
// remember to clear: a loomd that was frozen (SIGSTOP) past its term and wakes up finds
// acting(now) false before its election thread has run at all. So everything that acts
// asks right before it acts: the fabric thread before it answers or sends a frame, the
// core before it sends steps or fences (ControllerLoop, Controller, FailureDetector,
// Reconciler). What left before the term ended carries its epoch, and an agent that has
// seen a newer one refuses it (node-agent/EpochGuard.h).
//
// Thread-safe; reads are lock-free (two atomics), since the fabric thread asks on every
// frame. A reader may see a grant's epoch a moment before its deadline: both belong to
// terms of this process, and a newer epoch only ever makes agents stricter.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>

namespace loom::controller {

class Leadership {
 public:
  // Milliseconds on a monotonic clock; by default the one ControllerLoop::monotonicMs()
  // reads (std::chrono::steady_clock). The simulator gives its virtual clock.
  using Clock = std::function<std::int64_t()>;

  enum class Mode { Solo, Replica };
  explicit Leadership(Mode mode, Clock clock = {});
  Leadership(const Leadership&) = delete;
  Leadership& operator=(const Leadership&) = delete;

  // One loomd on its own store: always acting, epoch 0 (frames carry no epoch).
  static Leadership solo() { return Leadership(Mode::Solo); }
  // One of several loomd on etcd: acting only between grant() and actUntilMs, or revoke().
  static Leadership replica(Clock clock = {}) { return Leadership(Mode::Replica, std::move(clock)); }
  // The solo Leadership a Controller uses when given none.
  static const Leadership& soloDefault();

  // The election won or renewed: act under `epoch` until `actUntilMs` (this clock).
  // `epoch` is at least 1 and never lower than an earlier grant's (asserted). Ignored by
  // a solo Leadership.
  void grant(std::uint64_t epoch, std::int64_t actUntilMs);
  // Stepped down (lost the election, the store unreachable, shutting down). Idempotent.
  void revoke();

  // True while granted and `nowMs` < actUntil; always for solo.
  bool acting(std::int64_t nowMs) const { return solo_ || nowMs < actUntil_.load(std::memory_order_acquire); }
  // acting() against this Leadership's clock, now: what to ask right before acting.
  bool actingNow() const { return solo_ || acting(clock_()); }
  // The epoch of the latest grant (0: solo, or never granted). Stamped on frames to agents.
  std::uint64_t epoch() const { return epoch_.load(std::memory_order_acquire); }
  // When the current grant ends (0: none; max for solo), on this clock.
  std::int64_t actUntil() const;
  bool isSolo() const { return solo_; }
  std::int64_t now() const { return clock_(); }

 private:
  const bool solo_;
  Clock clock_;
  std::atomic<std::uint64_t> epoch_{0};
  std::atomic<std::int64_t> actUntil_{0};  // 0: not granted
};

}  // namespace loom::controller
