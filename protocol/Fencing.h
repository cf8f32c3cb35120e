// The arithmetic of the outage rule that loomd and loom-agent must agree on
// (docs/FENCING.md, "Terms and defaults"): how a duration one process measured is counted
// on another's clock, and the controller's stamps. No two clocks here are synchronized;
// each side converts pessimistically, so the rule holds whatever the clocks read, as long
// as their rates differ by less than kRho.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>

namespace loom::protocol::fencing {

// The clock-rate error allowed between any two processes (a free-running crystal is off by
// 0.01 %), and rounding slack for milliseconds truncated on the way.
inline constexpr double kRho = 0.01;
inline constexpr std::int64_t kEpsilonMs = 10;

// A duration someone else promised (a commit window, an attestation), as one may count on
// it on one's own clock: shorter than it can really be.
constexpr std::int64_t credit(std::int64_t ms) {
  if (ms <= 0) return 0;
  return std::max<std::int64_t>(0, static_cast<std::int64_t>(static_cast<double>(ms) * (1 - 2 * kRho)) - kEpsilonMs);
}

// A duration someone else reports as still running (an attestation it gave), bounded from
// above on one's own clock: longer than it can really be.
constexpr std::int64_t bound(std::int64_t ms) {
  if (ms <= 0) return 0;
  return static_cast<std::int64_t>(static_cast<double>(ms) * (1 + 3 * kRho)) + 1 + kEpsilonMs;
}

// A controller's stamp: the incarnation tag (random, chosen at start) in the high bits, the
// controller's monotonic milliseconds since its start in the low ones. An agent echoes the
// latest it received; the controller counts only its own incarnation's.
inline constexpr int kStampTimeBits = 43;  // 278 years of milliseconds
inline constexpr std::uint32_t kStampTagMask = (1u << 20) - 1;

constexpr std::uint64_t makeStamp(std::uint32_t tag, std::int64_t msSinceStart) {
  const auto ms =
      static_cast<std::uint64_t>(std::max<std::int64_t>(msSinceStart, 0)) & ((std::uint64_t{1} << kStampTimeBits) - 1);
  return (static_cast<std::uint64_t>(tag & kStampTagMask) << kStampTimeBits) | ms;
}

// The milliseconds since its start at which the controller with `tag` sent `stamp`, or
// nothing when another incarnation sent it.
constexpr std::optional<std::int64_t> stampTime(std::uint64_t stamp, std::uint32_t tag) {
  if ((stamp >> kStampTimeBits) != (tag & kStampTagMask)) return std::nullopt;
  return static_cast<std::int64_t>(stamp & ((std::uint64_t{1} << kStampTimeBits) - 1));
}

}  // namespace loom::protocol::fencing
