// Membership resolution: which pool each blade belongs to, in which role.
//
// Order matters and is the contract of DESIGN.md §3: explicit names claim first, then
// match rules select among the blades nobody named; a blade two pools claim the same way
// is a Conflict — reported and left unassigned, never guessed. Blades lent by failover
// (PlacementState::borrowed) stay with their borrower until they are empty again.
#include <algorithm>

#include "pool/PlannerState.h"

namespace loom::pool::detail {
namespace {

bool matches(const BladeMatch& m, const BladeSlot& b) {
  if (m.chassis && *m.chassis != b.chassis) return false;
  if (m.minCores && b.cores < *m.minCores) return false;
  if (m.minMemory && b.memory < *m.minMemory) return false;
  if (m.model && b.model.find(*m.model) == std::string::npos) return false;
  if (m.hypervisor && !b.hypervisors.has(*m.hypervisor)) return false;
  return true;
}

std::string bothPools(const std::string& a, const std::string& b) { return "'" + a + "' and '" + b + "'"; }

}  // namespace

void State::resolveMembership(const Declarations& desired, const PlacementState& current,
                              std::vector<std::string>& warnings) {
  const std::size_t n = blades.size();
  std::vector<int> claimedBy(n, kNone);

  // 1. Explicit names.
  for (std::size_t p = 0; p < pools.size(); ++p) {
    const Pool* decl = nullptr;
    for (const auto& d : desired.pools) {
      if (d.name == pools[p].name) {
        decl = &d;
        break;
      }
    }
    for (const auto& name : decl->bladeNames) {
      auto it = bladeIndex.find(name);
      if (it == bladeIndex.end()) {
        warnings.push_back("pool " + pools[p].name + ": blade '" + name + "' is not in the inventory");
        continue;
      }
      BladeSlot& b = blades[it->second];
      const int pi = static_cast<int>(p);
      if (b.role == BladeRole::Conflict || claimedBy[it->second] == pi) continue;
      if (claimedBy[it->second] != kNone) {
        b.role = BladeRole::Conflict;
        b.reason = "named by pools " + bothPools(pools[claimedBy[it->second]].name, pools[p].name);
        continue;
      }
      claimedBy[it->second] = pi;
    }
  }

  // 2. Match rules, over the blades nobody named.
  std::vector<std::pair<int, const BladeMatch*>> rules;
  for (std::size_t p = 0; p < pools.size(); ++p) {
    for (const auto& d : desired.pools) {
      if (d.name == pools[p].name && d.match) {
        rules.emplace_back(static_cast<int>(p), &*d.match);
        break;
      }
    }
  }
  for (std::size_t b = 0; b < n; ++b) {
    BladeSlot& blade = blades[b];
    if (claimedBy[b] != kNone || blade.role == BladeRole::Conflict) continue;
    for (const auto& [p, rule] : rules) {
      if (!matches(*rule, blade)) continue;
      if (claimedBy[b] == kNone) {
        claimedBy[b] = p;
      } else {
        blade.role = BladeRole::Conflict;
        blade.reason = "selected by pools " + bothPools(pools[claimedBy[b]].name, pools[p].name);
        break;
      }
    }
  }

  for (std::size_t b = 0; b < n; ++b) {
    BladeSlot& blade = blades[b];
    if (blade.role == BladeRole::Conflict) {
      warnings.push_back("blade " + blade.name + ": " + blade.reason + "; left unassigned");
      continue;
    }
    const int p = claimedBy[b];
    if (p == kNone) continue;
    blade.pool = p;
    blade.role = pools[p].sparePool ? BladeRole::Spare : BladeRole::Member;
  }

  // 3. Blades lent by an earlier failover stay with their borrower.
  for (const auto& [bladeName, poolName] : current.borrowed) {
    auto b = bladeIndex.find(bladeName);
    auto p = poolIndex.find(poolName);
    if (b == bladeIndex.end() || p == poolIndex.end()) continue;  // gone: nothing to return
    BladeSlot& blade = blades[b->second];
    if (blade.pool == kNone || !pools[blade.pool].sparePool || pools[p->second].sparePool) {
      warnings.push_back("blade " + bladeName + ": was lent to pool " + poolName +
                         " but is no longer in a spare pool; lending ended");
      continue;
    }
    blade.lender = blade.pool;
    blade.pool = p->second;
    blade.role = BladeRole::Borrowed;
  }

  for (std::size_t b = 0; b < n; ++b) {
    const BladeSlot& blade = blades[b];
    if (blade.pool == kNone) continue;
    PoolSlot& pool = pools[blade.pool];
    pool.blades.push_back(static_cast<int>(b));
    // A spare pool's blades are all its spares: that is what it lends.
    if (pool.sparePool) pool.spares.push_back(static_cast<int>(b));
  }
}

void State::designateSpares(int p, Output& out) {
  PoolSlot& pool = pools[p];
  if (pool.sparePool) return;
  // From the end of the inventory: placement fills blades from wherever best fit finds
  // room, so the last empty blades stay the spares from one plan to the next.
  std::vector<int> chosen;
  for (auto it = pool.blades.rbegin(); it != pool.blades.rend() && chosen.size() < pool.sparesWanted; ++it) {
    const BladeSlot& b = blades[*it];
    if ((b.role != BladeRole::Member && b.role != BladeRole::Spare) || !b.servers.empty() || !takesServers(b.state))
      continue;
    if (pool.hypervisor && !b.hypervisors.has(*pool.hypervisor)) continue;
    chosen.push_back(*it);
  }
  if (chosen == pool.spares) return;
  for (int bi : pool.spares) {
    if (std::find(chosen.begin(), chosen.end(), bi) != chosen.end()) continue;
    blades[bi].role = BladeRole::Member;
    reindex(bi);
    touch(bi, out);
  }
  for (int bi : chosen) {
    if (blades[bi].role == BladeRole::Spare) continue;
    blades[bi].role = BladeRole::Spare;
    removeFromIndex(bi);
    touch(bi, out);
  }
  pool.spares = std::move(chosen);
}

void State::returnIfEmpty(int bi, Output& out) {
  BladeSlot& b = blades[bi];
  if (b.role != BladeRole::Borrowed || !b.servers.empty()) return;
  removeFromIndex(bi);
  auto& from = pools[b.pool].blades;
  from.erase(std::find(from.begin(), from.end(), bi));
  b.pool = b.lender;
  b.lender = kNone;
  b.role = BladeRole::Spare;
  // A spare pool lends its blades in inventory order, whatever came back when.
  auto& lenderBlades = pools[b.pool].blades;
  auto& lenderSpares = pools[b.pool].spares;
  lenderBlades.insert(std::lower_bound(lenderBlades.begin(), lenderBlades.end(), bi), bi);
  lenderSpares.insert(std::lower_bound(lenderSpares.begin(), lenderSpares.end(), bi), bi);
  touch(bi, out);
  out.returned.push_back(bi);
  clearHomesAt(bi);  // a lent blade is nobody's home once it is given back
}

}  // namespace loom::pool::detail
