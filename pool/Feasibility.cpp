// Feasibility: the filters a blade must pass to take a server, and — when no blade
// passes — the operator-readable reason. The hot path (FitIndex.cpp) only ever sees
// blades that already pass the state and hypervisor filters; the explanation re-runs
// every filter over the pool's blades, which is fine because it runs only on failure.
#include <map>

#include "pool/PlannerState.h"

namespace loom::pool::detail {

bool takesServers(BladeState s) {
  return s == BladeState::Available || s == BladeState::Active || s == BladeState::Spare;
}
bool failsOver(BladeState s) { return s == BladeState::Fenced || s == BladeState::Retired; }
bool holdsBindings(BladeState s) { return s == BladeState::Suspect || s == BladeState::Failed; }

bool hasGroup(const BladeSlot& b, int group) {
  if (group == kNone) return false;
  for (int g : b.groups) {
    if (g == group) return true;
  }
  return false;
}

Reject checkBlade(const BladeSlot& b, const PoolSlot& p, const ServerSlot& s) {
  if (!takesServers(b.state)) return Reject::State;
  if (p.hypervisor && !b.hypervisors.has(*p.hypervisor)) return Reject::Hypervisor;
  if (b.dedicated || (s.dedicated && !b.servers.empty())) return Reject::Dedicated;
  if (b.freeCores < static_cast<std::int64_t>(s.vcpus)) return Reject::Cores;
  if (b.freeMemory < static_cast<std::int64_t>(s.memory)) return Reject::Memory;
  if (hasGroup(b, s.group)) return Reject::AntiAffinity;
  return Reject::None;
}

namespace {

std::string plural(std::size_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

// "8 free cores", "16GiB free memory", or both, naming what no blade had.
std::string sizePhrase(const ServerSlot& s, bool coresShort, bool memoryShort) {
  std::string cores = std::to_string(s.vcpus) + " free cores";
  std::string memory = formatSize(s.memory) + " free memory";
  if (coresShort && !memoryShort) return cores;
  if (memoryShort && !coresShort) return memory;
  return cores + " and " + memory;
}

}  // namespace

std::string State::explainNoBlade(int si) const {
  const ServerSlot& s = servers[si];
  if (s.pool == kNone) return "pool '" + s.poolName + "' unknown";
  const PoolSlot& p = pools[s.pool];
  const std::string head = "pool " + p.name + ": ";
  if (p.sparePool) return head + "a spare pool holds no servers, it only lends blades";
  if (p.blades.empty()) return head + "pool has no blades";

  std::map<BladeState, std::size_t> badState;
  std::size_t wrongHypervisor = 0, taken = 0, candidates = 0, coresOk = 0, memoryOk = 0, bothOk = 0;
  std::size_t spares = 0;
  for (int bi : p.blades) {
    const BladeSlot& b = blades[bi];
    switch (checkBlade(b, p, s)) {
      case Reject::State:
        ++badState[b.state];
        continue;
      case Reject::Hypervisor:
        ++wrongHypervisor;
        continue;
      case Reject::Dedicated:
        ++taken;
        continue;
      default:
        break;
    }
    // Spares are kept free during normal placement: they count as "no room" but the
    // reason says so, because the fix (fewer spares, more blades) differs.
    if (b.role == BladeRole::Spare) {
      ++spares;
      continue;
    }
    ++candidates;
    const bool c = b.freeCores >= static_cast<std::int64_t>(s.vcpus);
    const bool m = b.freeMemory >= static_cast<std::int64_t>(s.memory);
    coresOk += c;
    memoryOk += m;
    bothOk += c && m;
  }
  const std::string spareNote = spares ? " (" + plural(spares, "spare blade", "spare blades") + " kept free)" : "";

  if (candidates == 0 && spares == 0) {
    if (taken) return head + "every blade is held by a dedicated server or busy";
    if (wrongHypervisor && badState.empty()) return head + "no blade can run " + toString(*p.hypervisor);
    std::string why;
    for (const auto& [state, count] : badState) {
      why += (why.empty() ? "" : ", ") + std::to_string(count) + " " + toString(state);
    }
    if (wrongHypervisor)
      why += (why.empty() ? "" : ", ") + std::to_string(wrongHypervisor) + " cannot run " + toString(*p.hypervisor);
    return head + "no blade takes servers (" + why + ")";
  }
  if (s.dedicated) {
    return head + "no empty blade with " + std::to_string(s.vcpus) + " cores and " + formatSize(s.memory) +
           " for a dedicated server" + spareNote;
  }
  std::string what;
  if (bothOk == 0) {
    what = "no blade with " + sizePhrase(s, coresOk == 0, memoryOk == 0);
    if (coresOk && memoryOk) what = "no blade with both " + sizePhrase(s, true, true);
  } else {
    what = "no blade with " + sizePhrase(s, true, false);  // room exists, anti-affinity bites
  }
  if (s.group != kNone) what += " outside anti-affinity group " + groupNames[s.group];
  return head + what + spareNote;
}

std::string State::explainNoFailover(int si) const {
  const ServerSlot& s = servers[si];
  if (s.pool == kNone || pools[s.pool].sparePool || pools[s.pool].blades.empty()) return explainNoBlade(si);
  const PoolSlot& p = pools[s.pool];
  std::string why = "pool " + p.name + ": failover found ";
  why += p.spares.empty() ? "no spare blade left" : "no spare blade with " + sizePhrase(s, true, true);
  why += p.borrowFromName.empty() ? ", no borrow_from pool" : ", nothing to borrow from '" + p.borrowFromName + "'";
  if (p.failover == FailoverPolicy::Pack) {
    std::string pack = explainNoBlade(si);
    const std::string prefix = "pool " + p.name + ": ";
    if (pack.rfind(prefix, 0) == 0) pack = pack.substr(prefix.size());
    why += ", and " + pack + " to pack onto";
  } else {
    why += ", and failover: spare does not pack onto busy blades";
  }
  return why;
}

}  // namespace loom::pool::detail
