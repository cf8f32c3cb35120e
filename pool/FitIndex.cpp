// Ranking: best fit by free cores. Each pool keeps its placeable blades in buckets by
// exact free-core count, so the best fit for a server of c vcpus is the first blade that
// passes the remaining filters (memory, anti-affinity) scanning buckets c, c+1, ...
// Best fit packs busy blades before opening empty ones, which keeps whole blades free
// for dedicated servers and spares, and makes a placement O(max cores + skipped blades)
// instead of O(blades in the pool).
//
// Cores rank before memory because Loom's workloads are core-bound (a blade has more GiB
// per core than a typical server asks); memory is still a hard filter.
#include <algorithm>

#include "pool/PlannerState.h"

namespace loom::pool::detail {

bool State::placeable(const BladeSlot& b) const {
  if (b.pool == kNone || (b.role != BladeRole::Member && b.role != BladeRole::Borrowed)) return false;
  const PoolSlot& p = pools[b.pool];
  if (p.sparePool || !takesServers(b.state) || b.dedicated) return false;
  if (p.hypervisor && !b.hypervisors.has(*p.hypervisor)) return false;
  return b.freeCores > 0 && b.freeMemory > 0;
}

// A bucket is kept in inventory order, so among blades with the same free cores the
// first in the inventory wins whatever happened before: a plan made incrementally places
// exactly where a full plan of the same state would.
void State::removeFromIndex(int bi) {
  BladeSlot& b = blades[bi];
  if (b.bucket == kNone) return;
  auto& bucket = pools[b.pool].buckets[b.bucket];
  bucket.erase(std::lower_bound(bucket.begin(), bucket.end(), bi));
  b.bucket = kNone;
}

void State::addToIndex(int bi) {
  BladeSlot& b = blades[bi];
  auto& buckets = pools[b.pool].buckets;
  const auto free = static_cast<std::size_t>(b.freeCores);
  if (buckets.size() <= free) buckets.resize(free + 1);
  b.bucket = static_cast<int>(free);
  auto& bucket = buckets[free];
  bucket.insert(std::lower_bound(bucket.begin(), bucket.end(), bi), bi);
}

void State::reindex(int bi) {
  BladeSlot& b = blades[bi];
  if (!placeable(b)) {
    removeFromIndex(bi);
    return;
  }
  if (b.bucket == b.freeCores) return;
  removeFromIndex(bi);
  addToIndex(bi);
}

int State::bestFit(int pi, int si) const {
  const ServerSlot& s = servers[si];
  if (s.dedicated) return bestEmptyBlade(pi, si);
  const auto& buckets = pools[pi].buckets;
  const auto mem = static_cast<std::int64_t>(s.memory);
  for (std::size_t c = std::max<std::uint32_t>(s.vcpus, 1); c < buckets.size(); ++c) {
    for (int bi : buckets[c]) {
      const BladeSlot& b = blades[bi];
      if (b.freeMemory >= mem && !hasGroup(b, s.group)) return bi;
    }
  }
  return kNone;
}

int State::bestFitAmong(const std::vector<int>& candidates, int si) const {
  const ServerSlot& s = servers[si];
  int best = kNone;
  for (int bi : candidates) {
    const BladeSlot& b = blades[bi];
    if (b.pool != s.pool || !placeable(b)) continue;
    if (checkBlade(b, pools[b.pool], s) != Reject::None) continue;
    if (best == kNone || b.freeCores < blades[best].freeCores) best = bi;
  }
  return best;
}

int State::bestEmptyBlade(int pi, int si) const {
  const ServerSlot& s = servers[si];
  int best = kNone;
  for (int bi : pools[pi].blades) {
    const BladeSlot& b = blades[bi];
    if (!placeable(b) || !b.servers.empty()) continue;
    if (checkBlade(b, pools[pi], s) != Reject::None) continue;
    if (best == kNone || b.cores < blades[best].cores ||
        (b.cores == blades[best].cores && b.memory < blades[best].memory))
      best = bi;
  }
  return best;
}

void State::bind(int si, int bi) {
  ServerSlot& s = servers[si];
  BladeSlot& b = blades[bi];
  s.blade = bi;
  s.pending = false;
  s.displaced = false;
  if (s.home == bi) s.home = kNone;  // back where it belongs, however it got there
  b.servers.push_back(si);
  if (s.group != kNone) b.groups.push_back(s.group);
  b.freeCores -= s.vcpus;
  b.freeMemory -= static_cast<std::int64_t>(s.memory);
  if (s.dedicated) b.dedicated = true;
  if (building) return;  // the constructor indexes every blade once, at the end
  markServer(si);
  if (s.group != kNone) markRestartGroup(s.group);  // whose restart's turn it is may change
  if (b.bucket != kNone || placeable(b)) reindex(bi);
  // Its steps change here, and where a domain of it is left (kept or undefined).
  markStale(bi);
  s.definedOn.forEach([&](int d) { markStale(d); });
}

void State::unbind(int si) {
  ServerSlot& s = servers[si];
  if (s.blade == kNone) return;
  BladeSlot& b = blades[s.blade];
  const int bi = s.blade;
  s.blade = kNone;
  auto it = std::find(b.servers.begin(), b.servers.end(), si);
  *it = b.servers.back();
  b.servers.pop_back();
  if (s.group != kNone) {
    auto g = std::find(b.groups.begin(), b.groups.end(), s.group);
    *g = b.groups.back();
    b.groups.pop_back();
  }
  b.freeCores += s.vcpus;
  b.freeMemory += static_cast<std::int64_t>(s.memory);
  if (s.dedicated) b.dedicated = false;
  reindex(bi);
  clearRestart(si);  // wherever it starts next, it is defined afresh
  markServer(si);
  if (s.group != kNone) markRestartGroup(s.group);  // whose restart's turn it is may change
  markStale(bi);
  s.definedOn.forEach([&](int d) { markStale(d); });
}

}  // namespace loom::pool::detail
