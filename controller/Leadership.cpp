#include "controller/Leadership.h"

#include <cassert>
#include <chrono>
#include <limits>

namespace loom::controller {

namespace {
std::int64_t steadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

Leadership::Leadership(Mode mode, Clock clock) : solo_(mode == Mode::Solo), clock_(std::move(clock)) {
  if (!clock_) clock_ = steadyMs;
}

const Leadership& Leadership::soloDefault() {
  static const Leadership solo(Mode::Solo);
  return solo;
}

void Leadership::grant(std::uint64_t epoch, std::int64_t actUntilMs) {
  if (solo_) return;
  assert(epoch >= 1 && epoch >= epoch_.load());
  // The epoch first: whoever sees the new deadline sees its epoch too.
  epoch_.store(epoch, std::memory_order_release);
  actUntil_.store(actUntilMs, std::memory_order_release);
}

void Leadership::revoke() { actUntil_.store(0, std::memory_order_release); }

std::int64_t Leadership::actUntil() const {
  return solo_ ? std::numeric_limits<std::int64_t>::max() : actUntil_.load(std::memory_order_acquire);
}

}  // namespace loom::controller
