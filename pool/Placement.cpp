// Placement: ordering of requests, normal placement, and the failover paths.
//
// Order: higher priority first (the rule), then dedicated servers (they need a whole
// blade, easier to find before small servers spread out), then larger servers first
// (first-fit-decreasing packs better), then declaration order, so the result is
// deterministic for the same input.
//
// Failover paths, per server, in order (DESIGN.md §5):
//   1. a spare of the pool (one already opened by this round first, then a fresh one),
//   2. a blade borrowed from `borrow_from` (opened by this round first, then a fresh one),
//   3. with `failover: pack`, best fit on the pool's members,
//   else unplaceable with the reason. `failover: none` leaves the server stopped (held).
#include <algorithm>

#include "pool/PlannerState.h"

namespace loom::pool::detail {

int State::placeNormally(int si) const {
  const ServerSlot& s = servers[si];
  if (s.pool == kNone || pools[s.pool].sparePool) return kNone;
  return bestFit(s.pool, si);
}

int State::takeSpare(int pi, int si, Output& out) {
  PoolSlot& p = pools[pi];
  const ServerSlot& s = servers[si];
  for (std::size_t i = 0; i < p.spares.size(); ++i) {
    const int bi = p.spares[i];
    BladeSlot& b = blades[bi];
    if (checkBlade(b, p, s) != Reject::None) continue;
    p.spares.erase(p.spares.begin() + static_cast<std::ptrdiff_t>(i));
    b.role = BladeRole::Member;  // a consumed spare is a working member from now on
    reindex(bi);
    p.openedSpares.push_back(bi);
    touch(bi, out);
    return bi;
  }
  return kNone;
}

int State::borrowBlade(int pi, int si, Output& out) {
  PoolSlot& p = pools[pi];
  if (p.borrowFrom == kNone) return kNone;
  PoolSlot& lender = pools[p.borrowFrom];
  const ServerSlot& s = servers[si];
  // Prefer a blade that already runs the pool's hypervisor: no repurpose needed.
  int pick = kNone;
  for (std::size_t i = 0; i < lender.spares.size(); ++i) {
    const BladeSlot& b = blades[lender.spares[i]];
    if (checkBlade(b, p, s) != Reject::None) continue;
    if (pick == kNone || (b.personality == p.hypervisor && blades[lender.spares[pick]].personality != p.hypervisor))
      pick = static_cast<int>(i);
  }
  if (pick == kNone) return kNone;
  const int bi = lender.spares[pick];
  lender.spares.erase(lender.spares.begin() + pick);
  lender.blades.erase(std::find(lender.blades.begin(), lender.blades.end(), bi));
  BladeSlot& b = blades[bi];
  b.lender = b.pool;
  b.pool = pi;
  b.role = BladeRole::Borrowed;
  p.blades.push_back(bi);
  reindex(bi);
  p.openedBorrowed.push_back(bi);
  touch(bi, out);
  out.borrowed.push_back(bi);
  return bi;
}

int State::placeFailover(int si, Output& out) {
  const int pi = servers[si].pool;
  if (pi == kNone || pools[pi].sparePool) return kNone;
  PoolSlot& p = pools[pi];
  int b = bestFitAmong(p.openedSpares, si);
  if (b == kNone) b = takeSpare(pi, si, out);
  if (b == kNone) b = bestFitAmong(p.openedBorrowed, si);
  if (b == kNone) b = borrowBlade(pi, si, out);
  if (b == kNone && p.failover == FailoverPolicy::Pack) b = bestFit(pi, si);
  return b;
}

void State::placeAll(std::vector<Request> requests, Output& out) {
  std::sort(requests.begin(), requests.end(), [&](const Request& x, const Request& y) {
    const ServerSlot& a = servers[x.server];
    const ServerSlot& b = servers[y.server];
    if (a.priority != b.priority) return a.priority > b.priority;
    if (a.dedicated != b.dedicated) return a.dedicated;
    if (a.vcpus != b.vcpus) return a.vcpus > b.vcpus;
    if (a.memory != b.memory) return a.memory > b.memory;
    return x.server < y.server;
  });
  for (auto& p : pools) {
    p.openedSpares.clear();
    p.openedBorrowed.clear();
  }

  for (const Request& r : requests) {
    ServerSlot& s = servers[r.server];
    switch (r.kind) {
      case RequestKind::New: {
        const int b = placeNormally(r.server);
        if (b == kNone) {
          s.pending = true;
          pendingList.push_back(r.server);
          s.pendingFailover = false;
          out.unplaceable.push_back({s.name, explainNoBlade(r.server)});
          break;
        }
        bind(r.server, b);
        out.moved.emplace_back(r.server, std::string());
        emitStart(r.server, b, -1, out);
        break;
      }
      case RequestKind::Evacuate: {
        const int b = placeNormally(r.server);
        if (b == kNone) {
          // Stopping a running server with nowhere to go would turn an operator's drain
          // into an outage: it stays, and the operator is told why.
          out.warnings.push_back("server " + s.name + " stays on " + r.fromName +
                                 " (" + toString(blades[r.from].state) + "): " + explainNoBlade(r.server));
          break;
        }
        unbind(r.server);
        bind(r.server, b);
        out.moved.emplace_back(r.server, r.fromName);
        const std::int64_t stop = emitStop(r.fromName, s.name, out);
        emitStart(r.server, b, stop, out);
        break;
      }
      case RequestKind::Failover: {
        if (s.pool != kNone && pools[s.pool].failover == FailoverPolicy::None) {
          s.held = true;
          out.unplaceable.push_back({s.name, "failover: none"});
          break;
        }
        const int b = placeFailover(r.server, out);
        if (b == kNone) {
          s.pending = true;
          pendingList.push_back(r.server);
          s.pendingFailover = true;
          out.unplaceable.push_back({s.name, explainNoFailover(r.server)});
          break;
        }
        bind(r.server, b);
        out.moved.emplace_back(r.server, r.fromName);
        emitStart(r.server, b, -1, out);
        break;
      }
    }
  }
}

}  // namespace loom::pool::detail
