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
// A server for which they all found nothing is displaced: it keeps its home and stays a
// failover request in every later round until it is placed (spares are kept free from new
// placements, not from a server a failure took down). It goes home first whatever the
// failback policy: it is not running, so nothing is moved back.
//
// Failback: a server that failed over from a fenced blade remembers it as its home. With
// `failback: auto` it goes back once the home takes servers again and has room: moved like
// an evacuation (stop on the current blade before start at home), after every other request
// of the round — restarting dead servers and placing new ones matter more than tidying up
// running ones. An evacuation or a later failover of such a server tries home first too.
// The home may have been designated a spare while it was empty; it takes its server back
// anyway and the blade the server leaves becomes the spare (designateSpares runs afterwards).
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
  p.blades.insert(std::lower_bound(p.blades.begin(), p.blades.end(), bi), bi);
  reindex(bi);
  p.openedBorrowed.push_back(bi);
  touch(bi, out);
  out.borrowed.push_back(bi);
  return bi;
}

int State::homeTarget(int si) const {
  const ServerSlot& s = servers[si];
  if (s.home == kNone || s.home == s.blade || s.pool == kNone) return kNone;
  const PoolSlot& p = pools[s.pool];
  if (p.failback != FailbackPolicy::Auto && !s.displaced) return kNone;
  const BladeSlot& h = blades[s.home];
  if (h.pool != s.pool || h.role == BladeRole::Conflict || h.role == BladeRole::Unassigned) return kNone;
  return checkBlade(h, p, s) == Reject::None ? s.home : kNone;
}

void State::claimHome(int bi, Output& out) {
  BladeSlot& h = blades[bi];
  if (h.role != BladeRole::Spare) return;
  auto& spares = pools[h.pool].spares;
  spares.erase(std::find(spares.begin(), spares.end(), bi));
  h.role = BladeRole::Member;  // bind() puts it back into the fit index
  touch(bi, out);
}

void State::setHome(int si, int bi) {
  servers[si].home = bi;
  markServer(si);
  blades[bi].homed.push_back(si);
  // Only `failback: auto` moves a server back by itself (a displaced one is a request of
  // its own): the list of servers to ask stays as short as the work it stands for.
  if (servers[si].pool != kNone && pools[servers[si].pool].failback == FailbackPolicy::Auto) awayList.push_back(si);
}

void State::retryRequests(std::vector<Request>& requests, const ServerMarks& requested) {
  std::vector<int> waiting;
  waiting.swap(pendingList);
  std::sort(waiting.begin(), waiting.end());
  waiting.erase(std::unique(waiting.begin(), waiting.end()), waiting.end());
  for (int si : waiting) {
    ServerSlot& s = servers[si];
    if (!s.pending || s.blade != kNone || s.held || requested[si]) continue;
    s.pending = false;
    // A displaced server is still the failover it was: spares are not kept from it.
    requests.push_back({si, s.displaced ? RequestKind::Failover : RequestKind::New, kNone, {}});
  }
  std::vector<int> stuck;
  stuck.swap(stuckList);
  std::sort(stuck.begin(), stuck.end());
  stuck.erase(std::unique(stuck.begin(), stuck.end()), stuck.end());
  for (int si : stuck) {
    const ServerSlot& s = servers[si];
    if (s.blade == kNone || requested[si]) continue;
    const BladeSlot& b = blades[s.blade];
    if (holdsBindings(b.state) || failsOver(b.state)) continue;
    if (b.state == BladeState::Maintenance || (s.pool != kNone && b.pool != s.pool))
      requests.push_back({si, RequestKind::Evacuate, s.blade, b.name});
  }
}

std::vector<int> State::awayFromHome(const ServerMarks& requested) {
  std::sort(awayList.begin(), awayList.end());
  awayList.erase(std::unique(awayList.begin(), awayList.end()), awayList.end());
  std::erase_if(awayList, [&](int si) { return servers[si].home == kNone; });
  std::vector<int> out;
  for (int si : awayList) {
    if (!requested[si] && !servers[si].displaced) out.push_back(si);
  }
  return out;
}

void State::clearHomesAt(int bi) {
  for (int si : blades[bi].homed) {
    if (servers[si].home == bi) clearHome(si);
  }
  blades[bi].homed.clear();
}

std::vector<int> State::homedAt(int bi) {
  auto& homed = blades[bi].homed;
  std::erase_if(homed, [&](int si) { return servers[si].home != bi; });
  std::sort(homed.begin(), homed.end());
  homed.erase(std::unique(homed.begin(), homed.end()), homed.end());
  return homed;
}

int State::placeFailover(int si, Output& out) {
  const int pi = servers[si].pool;
  if (pi == kNone || pools[pi].sparePool) return kNone;
  PoolSlot& p = pools[pi];
  // Failing over a second time, or displaced: home first, when it is back and has room.
  if (int home = homeTarget(si); home != kNone) {
    claimHome(home, out);
    return home;
  }
  int b = bestFitAmong(p.openedSpares, si);
  if (b == kNone) b = takeSpare(pi, si, out);
  if (b == kNone) b = bestFitAmong(p.openedBorrowed, si);
  if (b == kNone) b = borrowBlade(pi, si, out);
  if (b == kNone && p.failover == FailoverPolicy::Pack) b = bestFit(pi, si);
  return b;
}

PlaceKey placeKey(const ServerSlot& s) {
  // Priority, dedicated, vcpus and memory, each turned so that "places first" is smaller.
  const auto priority = static_cast<std::uint64_t>(std::int64_t{INT32_MAX} - s.priority);  // 0 .. 2^32 - 1
  const std::uint64_t shared = s.dedicated ? 0 : 1;
  const std::uint64_t vcpus = 0x7fffffffu - std::min<std::uint32_t>(s.vcpus, 0x7fffffffu);
  return PlaceKey{(priority << 32) | (shared << 31) | vcpus, UINT64_MAX - s.memory};
}

bool State::placesBefore(int x, int y) const {
  const PlaceKey& a = placeKeys[x];
  const PlaceKey& b = placeKeys[y];
  if (a.high != b.high) return a.high < b.high;
  if (a.low != b.low) return a.low < b.low;
  return x < y;
}

// The server keeps running on `fromName` until it is stopped there; only then may it
// start on `to` (invariant 1: the steps say so, Steps.cpp).
void State::moveFromLiveBlade(int si, int to, const std::string& fromName, Output& out) {
  const int from = servers[si].blade;
  unbind(si);
  bind(si, to);
  out.moved.emplace_back(si, fromName);
  if (from != kNone) touch(from, out);  // it may be empty now: a spare again, or a borrowed blade to return
}

void State::placeAll(std::vector<Request> requests, Output& out) {
  std::sort(requests.begin(), requests.end(),
            [&](const Request& x, const Request& y) { return placesBefore(x.server, y.server); });
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
          out.unplaceable.push_back({s.name, explainNoBlade(r.server)});
          break;
        }
        bind(r.server, b);
        out.moved.emplace_back(r.server, std::string());
        break;
      }
      case RequestKind::Evacuate: {
        // A server away from home goes home rather than to a third blade.
        int b = homeTarget(r.server);
        if (b != kNone)
          claimHome(b, out);
        else
          b = placeNormally(r.server);
        if (b == kNone) {
          // Stopping a running server with nowhere to go would turn an operator's drain
          // into an outage: it stays, and the operator is told why. Every later round
          // tries again.
          stuckList.push_back(r.server);
          out.stuck.emplace_back(r.server, r.from,
                                 "server " + s.name + " stays on " + r.fromName + " (" +
                                     toString(blades[r.from].state) + "): " + explainNoBlade(r.server));
          break;
        }
        moveFromLiveBlade(r.server, b, r.fromName, out);
        break;
      }
      case RequestKind::Failover: {
        // Held by failover: none, the server waits for an operator, who decides where it
        // runs: it has no home left.
        if (s.pool != kNone && pools[s.pool].failover == FailoverPolicy::None) {
          clearHome(r.server);
          s.displaced = false;
          s.held = true;
          markServer(r.server);
          out.unplaceable.push_back({s.name, "failover: none"});
          break;
        }
        const int b = placeFailover(r.server, out);
        // A fenced blade comes back after repair, and the server belongs there, whether it
        // runs elsewhere meanwhile or waits. A second failover keeps the first home;
        // retired and vanished blades never come back.
        if (s.home == kNone && r.from != kNone && blades[r.from].state == BladeState::Fenced &&
            blades[r.from].pool == s.pool)
          setHome(r.server, r.from);
        if (b == kNone) {
          // Displaced: retried as a failover (home first, spares allowed) until it fits.
          s.displaced = true;
          markServer(r.server);
          s.pending = true;
          pendingList.push_back(r.server);
          out.unplaceable.push_back({s.name, explainNoFailover(r.server)});
          break;
        }
        bind(r.server, b);
        out.moved.emplace_back(r.server, r.fromName);
        break;
      }
    }
  }
}

void State::failBack(std::vector<int> candidates, Output& out) {
  // A server going home leaves room where it ran, which may be another server's home (a
  // displaced server placed on a spare that was someone's home, then its own home came
  // back): those are asked next, until nothing moves. Only a blade a server left can have
  // gained room, so the full plan and the incremental one reach the same placement.
  while (!candidates.empty()) {
    std::sort(candidates.begin(), candidates.end(), [&](int x, int y) { return placesBefore(x, y); });
    std::vector<int> left;
    for (int si : candidates) {
      const ServerSlot& s = servers[si];
      if (s.blade == kNone) continue;
      const int home = homeTarget(si);
      if (home == kNone) continue;  // not back, or full: it stays and keeps its home
      const int from = s.blade;
      claimHome(home, out);
      moveFromLiveBlade(si, home, blades[from].name, out);
      left.push_back(from);
    }
    candidates.clear();
    std::sort(left.begin(), left.end());
    left.erase(std::unique(left.begin(), left.end()), left.end());
    for (int bi : left) {
      if (blades[bi].homed.empty()) continue;
      const std::vector<int> homed = homedAt(bi);
      candidates.insert(candidates.end(), homed.begin(), homed.end());
    }
  }
}

}  // namespace loom::pool::detail
