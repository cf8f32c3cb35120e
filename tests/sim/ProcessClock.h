// One process's monotonic clock in the simulator: an offset (when its host booted) and
// a rate error against virtual real time, |rate| <= 0.5 %, so any two processes differ
// by at most 1 % (docs/FENCING.md's rho). Virtual real time T counts milliseconds from
// the start of a run; a process reads local(T). Nothing in a process ever sees T.
#pragma once

#include <cstdint>

namespace loom::sim {

class ProcessClock {
 public:
  static constexpr std::int64_t kPpmScale = 1'000'000;
  static constexpr std::int64_t kMaxRatePpm = 5'000;  // 0.5 %

  ProcessClock() = default;
  ProcessClock(std::int64_t offsetMs, std::int64_t ratePpm) : offset_(offsetMs), ppm_(ratePpm) {}

  // The local reading at real time T (>= 0): floor(offset + T * (1 + ppm/1e6)).
  std::int64_t local(std::int64_t t) const { return offset_ + t + floorDiv(t * ppm_, kPpmScale); }
  // The first real millisecond at which the local reading is at least `l` (the moment a
  // timer armed for local time `l` can fire). Never before 0.
  std::int64_t realAt(std::int64_t l) const {
    if (l <= local(0)) return 0;
    std::int64_t t = floorDiv((l - offset_) * kPpmScale, kPpmScale + ppm_);
    while (t > 0 && local(t - 1) >= l) --t;
    while (local(t) < l) ++t;
    return t;
  }
  std::int64_t ratePpm() const { return ppm_; }
  std::int64_t offset() const { return offset_; }

 private:
  static std::int64_t floorDiv(std::int64_t a, std::int64_t b) {
    return a / b - ((a % b != 0) && ((a < 0) != (b < 0)));
  }
  std::int64_t offset_ = 0;
  std::int64_t ppm_ = 0;
};

}  // namespace loom::sim
