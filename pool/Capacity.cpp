// Capacity per pool, and how many blade failures each pool survives (invariant 6).
//
// survivableFailures is found by simulation with the planner's own failover rules, so
// the answer cannot drift from what a real failover would do: on a copy of the state,
// fence the pool's fullest blade (most used cores, then memory — the worst case for
// the servers that must find a new home), let the failover paths move its servers,
// and repeat until one server cannot be placed. Because each step picks the fullest
// blade *now*, a spare that just absorbed a dead blade's servers is a prime candidate
// for the next failure, as it would be in the worst case.
//
// Simplifications, stated so nobody relies on more: failures are simulated one after
// the other (a real simultaneous loss is planned in one round, which can only place
// the same servers or better), and each pool is simulated alone, so a spare pool
// shared by several pools is counted fully for each of them.
#include <algorithm>

#include "pool/PlannerState.h"

namespace loom::pool {

using detail::kNone;

namespace {

std::string failures(std::uint32_t n) { return std::to_string(n) + (n == 1 ? " blade failure" : " blade failures"); }

// The pool's healthy blade holding the most, or kNone when none holds anything.
int fullestBlade(const detail::State& st, int p) {
  int best = kNone;
  for (int bi : st.pools[p].blades) {
    const auto& b = st.blades[bi];
    if (b.servers.empty() || detail::failsOver(b.state)) continue;
    const auto used = static_cast<std::int64_t>(b.cores) - b.freeCores;
    const auto usedMem = static_cast<std::int64_t>(b.memory) - b.freeMemory;
    if (best == kNone) {
      best = bi;
      continue;
    }
    const auto& o = st.blades[best];
    const auto oUsed = static_cast<std::int64_t>(o.cores) - o.freeCores;
    const auto oMem = static_cast<std::int64_t>(o.memory) - o.freeMemory;
    if (used > oUsed || (used == oUsed && usedMem > oMem)) best = bi;
  }
  return best;
}

}  // namespace

std::vector<PoolCapacity> capacity(const Declarations& desired, const Inventory& observed,
                                   const PlacementState& current) {
  // The state as it is: bindings replayed, spares designated, nothing new placed.
  const detail::State base(desired, observed, current);
  std::vector<PoolCapacity> result;
  result.reserve(base.pools.size());

  for (std::size_t pi = 0; pi < base.pools.size(); ++pi) {
    const auto& pool = base.pools[pi];
    PoolCapacity c;
    c.pool = pool.name;
    c.blades = static_cast<std::uint32_t>(pool.blades.size());
    c.sparesDeclared = pool.sparesWanted;
    for (int bi : pool.spares) c.spares += detail::takesServers(base.blades[bi].state) ? 1 : 0;
    for (int bi : pool.blades) {
      const auto& b = base.blades[bi];
      if (detail::failsOver(b.state)) continue;  // gone capacity is no capacity
      c.coresTotal += b.cores;
      c.memoryTotal += b.memory;
      c.coresUsed +=
          static_cast<std::uint64_t>(std::max<std::int64_t>(0, static_cast<std::int64_t>(b.cores) - b.freeCores));
      c.memoryUsed += static_cast<MiB>(std::max<std::int64_t>(0, static_cast<std::int64_t>(b.memory) - b.freeMemory));
    }
    std::uint32_t notRunning = 0;
    for (const auto& s : base.servers) {
      if (s.pool != static_cast<int>(pi) || !s.powerOn) continue;
      ++c.servers;
      notRunning += s.blade == kNone ? 1 : 0;
    }

    std::string why;
    if (pool.sparePool) {
      c.survivableFailures = 0;  // it runs nothing; what it lends counts for its borrowers
    } else if (notRunning > 0) {
      why = std::to_string(notRunning) + (notRunning == 1 ? " server is" : " servers are") + " not running now";
    } else if (fullestBlade(base, static_cast<int>(pi)) == kNone) {
      c.survivableFailures = c.blades;  // nothing to lose
    } else if (pool.failover == FailoverPolicy::None) {
      why = "failover: none restarts nothing";
    } else {
      detail::State sim = base;
      for (;;) {
        const int victim = fullestBlade(sim, static_cast<int>(pi));
        if (victim == kNone) {
          c.survivableFailures = c.blades;
          break;
        }
        detail::Output out;
        sim.changeBladeState(victim, BladeState::Fenced, out);
        if (!out.unplaceable.empty()) {
          why = "failure " + std::to_string(c.survivableFailures + 1) + " (blade " + sim.blades[victim].name +
                ") leaves server " + out.unplaceable.front().server + " unplaced: " + out.unplaceable.front().reason;
          break;
        }
        ++c.survivableFailures;
      }
    }
    c.sparesPromiseMet = pool.sparePool || c.survivableFailures >= c.sparesDeclared;
    if (!c.sparesPromiseMet) {
      c.warning = "pool " + pool.name + ": spares: " + std::to_string(c.sparesDeclared) + " promised but it survives " +
                  failures(c.survivableFailures) + " (" + std::to_string(c.spares) + " spare " +
                  (c.spares == 1 ? "blade" : "blades") + " now); " + why;
    }
    result.push_back(std::move(c));
  }
  return result;
}

}  // namespace loom::pool
