// One deterministic run of a Loom fabric in one process: the real controller core and
// the real agents, each on its own drifting clock, wired through a seeded hostile network,
// driven by a discrete-event scheduler in virtual time, with the invariants checked after
// every event. See tests/sim/README.md for the picture.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "tests/sim/Scenario.h"

namespace loom::sim {

struct SimOptions {
  bool verbose = false;  // print every event as it happens (and the code's logs)
  bool judgeInvariant7 = true;
  std::size_t traceTail = 40;             // events kept for a failure's report
  std::set<std::size_t> disabledFaults;   // indexes into the plan's faults (minimising)
  std::uint64_t eventLimit = 20'000'000;  // a bound on any run
  // Poll every blade's driver after every event (the default), rather than only those
  // whose agent or watchdog did something.
  bool pollEveryDriver = true;
  // W and A for invariant 7; 0: derived from the lease (Windows::forLease).
  std::int64_t stableWindowMs = 0;
  std::int64_t controllerOutWindowMs = 0;
  // Replicas: the store refuses a commit whose epoch is not the leader key's (etcd's txn
  // guard). Off only to show that the judge of past-term commits can fail.
  bool storeGuard = true;
  // Replicas: the election's margin and clock-rate allowance (ElectionOptions' defaults).
  // Set below what the clocks need only to show that the one-acting judge can fail.
  std::int64_t electionMarginMs = 100;
  double electionClockRate = 0.01;
  // The agents' peer channel (docs/FENCING.md). Off only to show that the invariant-7
  // judge can fail: no blade can then hold its servers through an outage.
  bool peerChannel = true;
};

struct Violation {
  enum class Kind : std::uint8_t {
    Invariant1,
    Invariant7,
    Convergence,
    Setup,
    // Replicas: two replicas acting at one virtual instant; a commit of a past term
    // applied by the store; an acknowledged change lost (or a half one seen).
    TwoActing,
    PastTermCommit,
    LostAcknowledged,
  };
  Kind kind = Kind::Setup;
  std::int64_t at = 0;
  std::string what;
};
const char* toString(Violation::Kind k);

struct RunStats {
  std::uint64_t events = 0;
  std::uint64_t messages = 0, dropped = 0, duplicated = 0, held = 0;
  std::uint64_t selfFencedDomains = 0;  // ended by the agent's own fencing
  std::uint64_t watchdogDomains = 0;    // ended by the blade's watchdog
  std::uint64_t controllerStops = 0;    // ended by a controller step
  std::uint64_t starts = 0;
  std::uint64_t faultsApplied = 0;
  std::uint64_t operatorRequests = 0;
  // Replicas.
  std::uint64_t terms = 0;                     // elections won
  std::uint64_t staleFramesRefused = 0;        // by the agents' EpochGuard
  std::uint64_t commitsRefused = 0;            // by the store's guard (a past term's)
  std::uint64_t commitsUnanswered = 0;         // the term saw a timeout; applied or not
  std::uint64_t commitsAppliedUnanswered = 0;  // of those, applied when they arrived
  std::uint64_t framesDroppedNotActing = 0;    // by a replica's core while not acting
  std::uint64_t framesSentNotActing = 0;       // by a replica's core while not acting (the fabric drops them)
  std::uint64_t viewsDiverged = 0;             // 1: at the end the leader's servers' power differs from the store's
};

struct RunResult {
  std::uint64_t seed = 0;
  std::string scenario;
  bool fifo = false;
  std::vector<Violation> violations;
  std::uint64_t traceHash = 0;  // over every event, message, fault and journal entry
  std::int64_t virtualMs = 0;
  std::int64_t convergedAt = -1;
  RunStats stats;
  int replicas = 0;  // 0: one loomd
  // The events before the first violation other than invariant 7 (else before the first
  // violation of invariant 7), oldest first.
  std::vector<std::string> traceTail;
  bool has(Violation::Kind k) const;
};

RunResult runSimulation(const ScenarioPlan& plan, std::uint64_t seed, const SimOptions& options);

// The current virtual time of the run in progress on this thread (for log lines).
std::int64_t currentVirtualTime();

}  // namespace loom::sim
