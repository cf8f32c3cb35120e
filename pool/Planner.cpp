// The planner's entry points: building the indexed state from a snapshot, the full
// plan, the incremental blade-state change, and shaping the results back into names.
//
//   Declarations + Inventory + PlacementState
//        │ State::State: index pools/blades/servers, resolveMembership, replay bindings
//        │   (kept / failover / evacuate / stop), designate spares, build the fit index
//        ▼
//   requests (failover, evacuate, new) ── placeAll ──► bindings + steps + unplaceable
//        │ top up spares, return empty borrowed blades
//        ▼
//   Plan (full) or PlanDelta (incremental)
#include <algorithm>
#include <unordered_set>

#include "pool/PlannerState.h"

namespace loom::pool {

const char* toString(BladeRole role) {
  switch (role) {
    case BladeRole::Unassigned: return "unassigned";
    case BladeRole::Member: return "member";
    case BladeRole::Spare: return "spare";
    case BladeRole::Borrowed: return "borrowed";
    case BladeRole::Conflict: return "conflict";
  }
  return "unknown";
}

namespace detail {

State::State(const Declarations& desired, const Inventory& observed, const PlacementState& current) {
  auto& warnings = initialOutput.warnings;

  pools.reserve(desired.pools.size());
  for (const Pool& d : desired.pools) {
    if (!poolIndex.emplace(d.name, static_cast<int>(pools.size())).second) {
      warnings.push_back("pool " + d.name + ": declared twice; the first declaration wins");
      continue;
    }
    PoolSlot p;
    p.name = d.name;
    p.sparePool = d.sparePool;
    p.hypervisor = d.hypervisor;
    p.sparesWanted = d.spares;
    p.failover = d.failover;
    p.failback = d.failback;
    p.borrowFromName = d.borrowFrom;
    pools.push_back(std::move(p));
  }
  for (auto& p : pools) {
    if (p.borrowFromName.empty()) continue;
    auto it = poolIndex.find(p.borrowFromName);
    if (it == poolIndex.end() || !pools[it->second].sparePool) {
      warnings.push_back("pool " + p.name + ": borrow_from '" + p.borrowFromName +
                         (it == poolIndex.end() ? "' unknown" : "' is not a spare pool"));
      continue;
    }
    p.borrowFrom = it->second;
  }

  blades.reserve(observed.blades.size());
  bladeIndex.reserve(observed.blades.size());
  for (const Blade& d : observed.blades) {
    if (!bladeIndex.emplace(d.name, static_cast<int>(blades.size())).second) {
      warnings.push_back("blade " + d.name + ": reported twice; the first report wins");
      continue;
    }
    BladeSlot b;
    b.name = d.name;
    b.chassis = d.chassis;
    b.model = d.model;
    b.cores = d.cores;
    b.memory = d.memory;
    b.hypervisors = d.hypervisors;
    b.personality = d.personality;
    b.state = d.state;
    b.freeCores = d.cores;
    b.freeMemory = static_cast<std::int64_t>(d.memory);
    blades.push_back(std::move(b));
  }

  std::unordered_map<std::string, int> groupIndex;
  servers.reserve(desired.servers.size());
  serverIndex.reserve(desired.servers.size());
  for (const Server& d : desired.servers) {
    if (!serverIndex.emplace(d.name, static_cast<int>(servers.size())).second) {
      warnings.push_back("server " + d.name + ": declared twice; the first declaration wins");
      continue;
    }
    ServerSlot s;
    s.name = d.name;
    s.poolName = d.pool;
    auto p = poolIndex.find(d.pool);
    s.pool = p == poolIndex.end() ? kNone : p->second;
    s.vcpus = std::max<std::uint32_t>(d.vcpus, 1);
    s.memory = d.memory;
    s.priority = d.priority;
    s.dedicated = d.dedicated;
    s.powerOn = d.power == PowerState::On;
    if (!d.antiAffinity.empty()) {
      auto [g, added] = groupIndex.emplace(d.antiAffinity, static_cast<int>(groupNames.size()));
      if (added) groupNames.push_back(d.antiAffinity);
      s.group = g->second;
    }
    servers.push_back(std::move(s));
  }

  resolveMembership(desired, current, warnings);

  // Replay the bindings: each is kept, failed over, evacuated or stopped.
  for (const auto& [serverName, bladeName] : current.bindings) {
    auto si = serverIndex.find(serverName);
    auto bi = bladeIndex.find(bladeName);
    if (si == serverIndex.end() || !servers[si->second].powerOn) {
      if (bi != bladeIndex.end()) emitStop(bladeName, serverName, initialOutput);
      continue;
    }
    if (bi == bladeIndex.end()) {  // the blade vanished from the inventory
      initial.push_back({si->second, RequestKind::Failover, kNone, bladeName});
      continue;
    }
    const BladeSlot& b = blades[bi->second];
    if (failsOver(b.state)) {
      initial.push_back({si->second, RequestKind::Failover, bi->second, bladeName});
      continue;
    }
    bind(si->second, bi->second);
    // Suspect/Failed blades may still run the server: nothing moves (invariant 1).
    if (holdsBindings(b.state)) continue;
    const int pool = servers[si->second].pool;
    if (b.state == BladeState::Maintenance || (pool != kNone && b.pool != pool))
      initial.push_back({si->second, RequestKind::Evacuate, bi->second, bladeName});
  }
  for (const auto& name : current.held) {
    auto si = serverIndex.find(name);
    if (si == serverIndex.end()) continue;
    ServerSlot& s = servers[si->second];
    if (s.powerOn && s.blade == kNone) s.held = true;
  }
  // A displaced server is still waiting for its failover. A binding (an operator's move)
  // or a hold supersedes the claim; power off or deletion ends it.
  for (const auto& name : current.displaced) {
    auto si = serverIndex.find(name);
    if (si == serverIndex.end() || current.bindings.contains(name)) continue;
    ServerSlot& s = servers[si->second];
    if (s.powerOn && s.pool != kNone && !s.held) s.displaced = true;
  }
  // A home outlives neither the server's binding (or its claim, when displaced), its
  // power, its pool membership, nor the blade itself (retired or vanished). Bindings on
  // fenced blades count: their failover below keeps the first home.
  for (const auto& [serverName, bladeName] : current.home) {
    auto si = serverIndex.find(serverName);
    auto bi = bladeIndex.find(bladeName);
    if (si == serverIndex.end() || bi == bladeIndex.end()) continue;
    const ServerSlot& s = servers[si->second];
    const BladeSlot& b = blades[bi->second];
    if (!s.powerOn || s.pool == kNone || b.pool != s.pool || b.state == BladeState::Retired) continue;
    if (s.blade == bi->second || (!current.bindings.contains(serverName) && !s.displaced)) continue;
    setHome(si->second, bi->second);
  }

  for (std::size_t p = 0; p < pools.size(); ++p) topUpSpares(static_cast<int>(p), initialOutput);
  for (std::size_t b = 0; b < blades.size(); ++b) reindex(static_cast<int>(b));
  initialOutput.touchedBlades.clear();
}

void State::changeBladeState(int bi, BladeState state, Output& out) {
  BladeSlot& b = blades[bi];
  const BladeState old = b.state;
  b.state = state;
  if (state == BladeState::Retired) clearHomesAt(bi);  // it never comes back
  std::vector<Request> requests;
  if (failsOver(state)) {
    const std::vector<int> victims = b.servers;
    for (int si : victims) {
      unbind(si);
      requests.push_back({si, RequestKind::Failover, bi, b.name});
    }
  } else if (state == BladeState::Maintenance) {
    for (int si : b.servers) requests.push_back({si, RequestKind::Evacuate, bi, b.name});
  }
  if (b.role == BladeRole::Spare && b.pool != kNone && !pools[b.pool].sparePool && !takesServers(state)) {
    // An unhealthy blade is no spare: the pool tops up from its healthy empty members.
    auto& spares = pools[b.pool].spares;
    spares.erase(std::find(spares.begin(), spares.end(), bi));
    b.role = BladeRole::Member;
    touch(bi, out);
  }
  reindex(bi);
  if (b.pool != kNone) topUpSpares(b.pool, out);
  const bool healed = takesServers(state) && !takesServers(old);
  if (healed) {
    // New room: retry what waited for it.
    std::vector<int> waiting;
    waiting.swap(pendingList);
    std::sort(waiting.begin(), waiting.end());
    waiting.erase(std::unique(waiting.begin(), waiting.end()), waiting.end());
    for (int si : waiting) {
      ServerSlot& s = servers[si];
      if (!s.pending || s.blade != kNone || s.held) continue;
      s.pending = false;
      requests.push_back({si, s.displaced ? RequestKind::Failover : RequestKind::New, kNone, {}});
    }
  }
  placeAll(std::move(requests), out);
  // The blade is back: servers that failed over from it may return (failback: auto).
  // Only its own servers are asked; a failback that did not fit earlier elsewhere waits
  // for that blade's next change or the next full plan.
  if (healed && !b.homed.empty()) failBack(homedAt(bi), out);
  std::vector<int> pools;
  for (int t : out.touchedBlades) {
    if (blades[t].pool != kNone) pools.push_back(blades[t].pool);
  }
  if (b.pool != kNone) pools.push_back(b.pool);
  std::sort(pools.begin(), pools.end());
  pools.erase(std::unique(pools.begin(), pools.end()), pools.end());
  for (int p : pools) topUpSpares(p, out);
  returnIfEmpty(bi, out);
  // Failback may have emptied a borrowed blade elsewhere (the full plan returns every
  // empty one); returnIfEmpty appends to the list, hence the index loop.
  for (std::size_t i = 0, n = out.touchedBlades.size(); i < n; ++i) returnIfEmpty(out.touchedBlades[i], out);
}

BladeAssignment State::assignment(int bi) const {
  const BladeSlot& b = blades[bi];
  return BladeAssignment{b.name, b.pool == kNone ? std::string() : pools[b.pool].name, b.role, b.reason};
}

PlacementState State::placementState() const {
  PlacementState next;
  std::vector<int> bound;
  bound.reserve(servers.size());
  for (std::size_t s = 0; s < servers.size(); ++s) {
    if (servers[s].blade != kNone) bound.push_back(static_cast<int>(s));
  }
  // Sorted first, then appended at the end of the map: O(1) per insert.
  std::sort(bound.begin(), bound.end(), [&](int a, int b) { return servers[a].name < servers[b].name; });
  for (int s : bound) next.bindings.emplace_hint(next.bindings.end(), servers[s].name, blades[servers[s].blade].name);
  for (const auto& b : blades) {
    if (b.role == BladeRole::Borrowed) next.borrowed.emplace(b.name, pools[b.pool].name);
  }
  for (const auto& s : servers) {
    if (s.held) next.held.insert(s.name);
    if (s.displaced) next.displaced.insert(s.name);
    if (s.home != kNone) next.home.emplace(s.name, blades[s.home].name);
  }
  return next;
}

Plan State::toPlan(Output& out) const {
  Plan plan;
  plan.blades.reserve(blades.size());
  for (std::size_t b = 0; b < blades.size(); ++b) plan.blades.push_back(assignment(static_cast<int>(b)));
  std::vector<const std::string*> from(servers.size(), nullptr);
  for (const auto& [s, f] : out.moved) {
    if (!f.empty()) from[s] = &f;
  }
  plan.placements.reserve(servers.size());
  for (std::size_t s = 0; s < servers.size(); ++s) {
    if (servers[s].blade == kNone) continue;
    plan.placements.push_back(Placement{servers[s].name, blades[servers[s].blade].name,
                                        from[s] ? *from[s] : std::string()});
  }
  plan.unplaceable = std::move(out.unplaceable);
  plan.steps = std::move(out.steps);
  plan.warnings = std::move(out.warnings);
  plan.next = placementState();
  return plan;
}

PlanDelta State::toDelta(Output& out) const {
  PlanDelta delta;
  std::sort(out.touchedBlades.begin(), out.touchedBlades.end());
  out.touchedBlades.erase(std::unique(out.touchedBlades.begin(), out.touchedBlades.end()), out.touchedBlades.end());
  for (int b : out.touchedBlades) delta.blades.push_back(assignment(b));
  for (const auto& [s, f] : out.moved) {
    if (servers[s].blade != kNone) delta.placements.push_back({servers[s].name, blades[servers[s].blade].name, f});
  }
  delta.unplaceable = std::move(out.unplaceable);
  delta.steps = std::move(out.steps);
  delta.warnings = std::move(out.warnings);
  for (int b : out.borrowed) {
    if (blades[b].role == BladeRole::Borrowed) delta.borrowed.emplace(blades[b].name, pools[blades[b].pool].name);
  }
  for (int b : out.returned) delta.returned.push_back(blades[b].name);
  return delta;
}

namespace {

// A plan's steps name blades by their prepare step; that index is only valid within one
// output, so it is cleared before the next round.
void clearPrepared(State& state, const Output& out) {
  for (int b : out.prepared) state.blades[b].prepareStep = -1;
}

}  // namespace
}  // namespace detail

using detail::kNone;

Planner::Planner(const Declarations& desired, const Inventory& observed, const PlacementState& current)
    : state_(std::make_unique<detail::State>(desired, observed, current)) {}
Planner::Planner(const Planner& other) : state_(std::make_unique<detail::State>(*other.state_)) {}
Planner& Planner::operator=(const Planner& other) {
  if (this != &other) state_ = std::make_unique<detail::State>(*other.state_);
  return *this;
}
Planner::Planner(Planner&&) noexcept = default;
Planner& Planner::operator=(Planner&&) noexcept = default;
Planner::~Planner() = default;

Plan Planner::plan(TimeMs /*now: leases are judged by the controller before it reports
                             Fenced; the planner itself needs no clock yet*/) {
  detail::State& st = *state_;
  detail::Output out = std::move(st.initialOutput);
  st.initialOutput = {};
  std::vector<detail::Request> requests = std::move(st.initial);
  st.initial.clear();
  std::vector<char> requested(st.servers.size(), 0);
  for (const auto& r : requests) requested[r.server] = 1;
  std::vector<int> alreadyHeld, awayFromHome;
  for (std::size_t s = 0; s < st.servers.size(); ++s) {
    const auto& server = st.servers[s];
    // Servers with a request this round are moved by it (an evacuation, a failover and a
    // displaced server's retry try home first).
    if (server.home != kNone && !requested[s] && !server.displaced) awayFromHome.push_back(static_cast<int>(s));
    if (!server.powerOn || server.blade != kNone || requested[s]) continue;
    if (server.held) {
      alreadyHeld.push_back(static_cast<int>(s));
      continue;
    }
    // A displaced server is still the failover it was: spares are not kept from it.
    requests.push_back({static_cast<int>(s), server.displaced ? detail::RequestKind::Failover : detail::RequestKind::New,
                        kNone, {}});
  }
  st.placeAll(std::move(requests), out);
  if (!awayFromHome.empty()) st.failBack(std::move(awayFromHome), out);
  for (int s : alreadyHeld) out.unplaceable.push_back({st.servers[s].name, "failover: none"});
  for (std::size_t p = 0; p < st.pools.size(); ++p) st.topUpSpares(static_cast<int>(p), out);
  for (std::size_t b = 0; b < st.blades.size(); ++b) st.returnIfEmpty(static_cast<int>(b), out);
  detail::clearPrepared(st, out);
  return st.toPlan(out);
}

PlanDelta Planner::bladeStateChanged(const std::string& blade, BladeState state, TimeMs /*now*/) {
  detail::State& st = *state_;
  auto it = st.bladeIndex.find(blade);
  if (it == st.bladeIndex.end()) {
    PlanDelta delta;
    delta.warnings.push_back("blade '" + blade + "' unknown");
    return delta;
  }
  detail::Output out;
  st.changeBladeState(it->second, state, out);
  detail::clearPrepared(st, out);
  return st.toDelta(out);
}

PlacementState Planner::state() const { return state_->placementState(); }

std::string Planner::bladeOf(const std::string& server) const {
  auto it = state_->serverIndex.find(server);
  if (it == state_->serverIndex.end() || state_->servers[it->second].blade == kNone) return {};
  return state_->blades[state_->servers[it->second].blade].name;
}

Plan plan(const Declarations& desired, const Inventory& observed, const PlacementState& current,
          TimeMs now) {
  return Planner(desired, observed, current).plan(now);
}

}  // namespace loom::pool
