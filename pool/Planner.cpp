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
    case BladeRole::Unassigned:
      return "unassigned";
    case BladeRole::Member:
      return "member";
    case BladeRole::Spare:
      return "spare";
    case BladeRole::Borrowed:
      return "borrowed";
    case BladeRole::Conflict:
      return "conflict";
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
    b.reachable = d.reachable;
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
      if (groupMembers.size() <= static_cast<std::size_t>(s.group)) groupMembers.resize(s.group + 1);
      groupMembers[s.group].push_back(static_cast<int>(servers.size()));
    }
    servers.push_back(std::move(s));
  }

  requested.resize(servers.size());
  placeKeys.reserve(servers.size());
  for (const auto& s : servers) placeKeys.push_back(placeKey(s));
  resolveMembership(desired, current, warnings);

  // What each blade runs: its report, or what the current placement binds to it (nothing
  // on a fenced or retired blade). A server bound but no longer declared was deleted.
  for (const auto& name : desired.deleted) {
    if (!serverIndex.contains(name)) deleted.insert(name);
  }
  for (std::size_t i = 0; i < observed.blades.size(); ++i) {
    const Blade& d = observed.blades[i];
    auto bi = bladeIndex.find(d.name);
    if (d.domains && bi != bladeIndex.end() && bi->second == static_cast<int>(i)) setDomains(bi->second, *d.domains);
  }
  // Replay the bindings: each is kept, failed over, evacuated or dropped (its domain
  // stops through the steps).
  for (const auto& [serverName, bladeName] : current.bindings) {
    auto si = serverIndex.find(serverName);
    auto bi = bladeIndex.find(bladeName);
    if (si == serverIndex.end()) deleted.insert(serverName);
    if (bi != bladeIndex.end()) {
      BladeSlot& b = blades[bi->second];
      if (!b.reported && b.state != BladeState::Fenced && b.state != BladeState::Retired) {
        // Assumed to run what it is bound to. Each server is bound once: appended, no lookup.
        const int server = si == serverIndex.end() ? kNone : si->second;
        b.domains.push_back(DomainSlot{server, server == kNone ? otherName(serverName) : kNone, DomainState::Running});
        if (server != kNone) servers[server].definedOn.add(bi->second);
      }
    }
    if (si == serverIndex.end() || !servers[si->second].powerOn) continue;
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
  // A pending restart is for the definition on the blade the server is bound to; one that
  // left it (failover, powered off, deleted) is defined afresh wherever it starts. One that
  // no longer fits there (it grew) is moved like an evacuation: defined anew elsewhere.
  for (const auto& [name, why] : current.restart) {
    auto si = serverIndex.find(name);
    if (si == serverIndex.end() || servers[si->second].blade == kNone) continue;
    ServerSlot& s = servers[si->second];
    s.restart = why;
    ++restarts;
    const BladeSlot& b = blades[s.blade];
    const bool evacuating =
        std::any_of(initial.begin(), initial.end(), [&](const Request& r) { return r.server == si->second; });
    if (!evacuating && !holdsBindings(b.state) && (b.freeCores < 0 || b.freeMemory < 0))
      initial.push_back({si->second, RequestKind::Evacuate, s.blade, b.name});
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

  building = false;
  for (std::size_t b = 0; b < blades.size(); ++b) reindex(static_cast<int>(b));
  for (std::size_t p = 0; p < pools.size(); ++p) designateSpares(static_cast<int>(p), initialOutput);
  initialOutput.touchedBlades.clear();
}

void State::changeBladeState(int bi, BladeState state, Output& out) {
  BladeSlot& b = blades[bi];
  const bool tookSteps = takesSteps(b), counted = domainsCount(b);
  b.state = state;
  // Whether it takes steps, or whether what it runs still counts, decides the starts of
  // the servers it runs elsewhere.
  if (tookSteps != takesSteps(b) || counted != domainsCount(b)) markWatchers(bi);
  markStale(bi);
  // An assumed blade's domains end with its fence (its lease or its power ended them); a
  // reported one's are what its agent, or the controller fencing it, says.
  if (!b.reported && (state == BladeState::Fenced || state == BladeState::Retired) && !b.domains.empty()) {
    setDomains(bi, {});
    b.reported = false;
  }
  if (state == BladeState::Retired) clearHomesAt(bi);  // it never comes back
  // The requests of this change, and every request a full plan of the new state would
  // make besides (servers waiting for room, evacuations that did not fit, servers away
  // from home), so both place the same servers in the same order.
  std::vector<Request> requests;
  requested.clear();
  if (failsOver(state)) {
    const std::vector<int> victims = b.servers;
    for (int si : victims) {
      unbind(si);
      requests.push_back({si, RequestKind::Failover, bi, b.name});
      requested.set(si);
    }
  } else if (state == BladeState::Maintenance) {
    for (int si : b.servers) {
      requests.push_back({si, RequestKind::Evacuate, bi, b.name});
      requested.set(si);
    }
  }
  reindex(bi);
  if (b.pool != kNone) designateSpares(b.pool, out);
  retryRequests(requests, requested);
  std::vector<int> pools;
  if (b.pool != kNone) pools.push_back(b.pool);
  settle(std::move(requests), pools, {bi}, out);
}

void State::settle(std::vector<Request> requests, std::vector<int> pools, std::vector<int> emptied, Output& out) {
  // Rounds until nothing moves: what a round frees (a server gone home, an evacuation, a
  // spare given up) is used by the same plan, so planning its result again changes
  // nothing, and an incremental plan meets the full one. Each round moves a server
  // closer to where it ends (placed, home, off a drained blade), so a few do; the bound
  // is a safety net.
  for (int round = 0; round < 16; ++round) {
    for (const auto& r : requests) requested.set(r.server);
    std::vector<int> away = awayFromHome(requested);
    const std::size_t moved = out.moved.size(), touched = out.touchedBlades.size();
    placeAll(std::move(requests), out);
    if (!away.empty()) failBack(std::move(away), out);
    // A borrowed blade left empty goes back to its spare pool, where this plan may borrow
    // it again. Only a touched blade can have been emptied.
    for (std::size_t i = touched; i < out.touchedBlades.size(); ++i) emptied.push_back(out.touchedBlades[i]);
    for (int e : emptied) returnIfEmpty(e, out);
    emptied.clear();
    for (std::size_t i = touched; i < out.touchedBlades.size(); ++i) {
      if (blades[out.touchedBlades[i]].pool != kNone) pools.push_back(blades[out.touchedBlades[i]].pool);
    }
    std::sort(pools.begin(), pools.end());
    pools.erase(std::unique(pools.begin(), pools.end()), pools.end());
    for (int p : pools) designateSpares(p, out);
    if (out.moved.size() == moved && out.touchedBlades.size() == touched) break;
    requests = {};
    requested.clear();
    retryRequests(requests, requested);
  }
  requested.clear();
  // A server placed by a later round is not unplaceable, one that left its drained blade
  // did not stay; one that is still waiting keeps the reason of its first try.
  std::vector<Unplaceable> unplaceable;
  std::unordered_set<std::string> seen;
  for (auto& u : out.unplaceable) {
    if (servers[serverIndex.at(u.server)].blade == kNone && seen.insert(u.server).second)
      unplaceable.push_back(std::move(u));
  }
  out.unplaceable = std::move(unplaceable);
  seen.clear();
  for (auto it = out.stuck.rbegin(); it != out.stuck.rend(); ++it) {
    const auto& [si, from, warning] = *it;
    if (servers[si].blade == from && seen.insert(servers[si].name).second) out.warnings.push_back(warning);
  }
  out.stuck.clear();
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
    if (!s.restart.empty()) next.restart.emplace(s.name, s.restart);
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
    plan.placements.push_back(
        Placement{servers[s].name, blades[servers[s].blade].name, from[s] ? *from[s] : std::string()});
  }
  plan.unplaceable = std::move(out.unplaceable);
  plan.steps = std::move(out.steps);
  plan.waiting = std::move(out.waiting);
  plan.foreign = std::move(out.foreign);
  plan.warnings = std::move(out.warnings);
  plan.next = placementState();
  return plan;
}

PlanDelta State::toDelta(Output& out) const {
  PlanDelta delta;
  std::sort(out.touchedBlades.begin(), out.touchedBlades.end());
  out.touchedBlades.erase(std::unique(out.touchedBlades.begin(), out.touchedBlades.end()), out.touchedBlades.end());
  for (int b : out.touchedBlades) delta.blades.push_back(assignment(b));
  std::unordered_set<int> listed;
  delta.placements.reserve(out.moved.size());
  for (const auto& [s, f] : out.moved) {
    // A server moved twice in one plan is listed once, from where it was.
    if (servers[s].blade == kNone || !listed.insert(s).second) continue;
    delta.placements.push_back({servers[s].name, blades[servers[s].blade].name, f});
  }
  delta.unplaceable = std::move(out.unplaceable);
  delta.steps = std::move(out.steps);
  delta.stepBlades.reserve(out.stepBlades.size());
  for (int b : out.stepBlades) delta.stepBlades.push_back(blades[b].name);
  delta.waiting = std::move(out.waiting);
  delta.foreign = std::move(out.foreign);
  delta.warnings = std::move(out.warnings);
  for (int b : out.borrowed) {
    if (blades[b].role == BladeRole::Borrowed) delta.borrowed.emplace(blades[b].name, pools[blades[b].pool].name);
  }
  for (int b : out.returned) delta.returned.push_back(blades[b].name);
  return delta;
}

void State::listChangedServers(PlanDelta& delta) {
  std::sort(changedServers.begin(), changedServers.end());
  for (int si : changedServers) {
    ServerSlot& s = servers[si];
    s.changed = false;
    delta.servers.push_back({s.name, s.blade == kNone ? std::string() : blades[s.blade].name,
                             s.home == kNone ? std::string() : blades[s.home].name, s.held, s.displaced, s.restart});
  }
  changedServers.clear();
}

}  // namespace detail

using detail::kNone;

Planner::Planner(const Declarations& desired, const Inventory& observed, const PlacementState& current)
    : state_(std::make_unique<detail::State>(desired, observed, current)) {}
Planner::Planner(std::unique_ptr<detail::State> state) : state_(std::move(state)) {}
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
  auto& requested = st.requested;
  requested.clear();
  for (const auto& r : requests) requested.set(r.server);
  std::vector<int> alreadyHeld;
  for (std::size_t s = 0; s < st.servers.size(); ++s) {
    const auto& server = st.servers[s];
    if (!server.powerOn || server.blade != kNone || requested[s]) continue;
    if (server.held) {
      alreadyHeld.push_back(static_cast<int>(s));
      continue;
    }
    // A displaced server is still the failover it was: spares are not kept from it.
    requests.push_back(
        {static_cast<int>(s), server.displaced ? detail::RequestKind::Failover : detail::RequestKind::New, kNone, {}});
    requested.set(static_cast<int>(s));
  }
  // A planner asked again (plan() twice) retries what it left stuck, as a new one would.
  st.retryRequests(requests, requested);
  std::vector<int> pools(st.pools.size()), blades(st.blades.size());
  for (std::size_t p = 0; p < pools.size(); ++p) pools[p] = static_cast<int>(p);
  for (std::size_t b = 0; b < blades.size(); ++b) blades[b] = static_cast<int>(b);
  st.settle(std::move(requests), pools, blades, out);
  for (int s : alreadyHeld) out.unplaceable.push_back({st.servers[s].name, "failover: none"});
  // The full plan gives every blade's steps, whatever changed.
  st.emitSteps(blades, out);
  for (int si : st.changedServers) st.servers[si].changed = false;
  st.changedServers.clear();  // Plan::next says it all
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
  st.emitSteps({}, out);
  PlanDelta delta = st.toDelta(out);
  st.listChangedServers(delta);
  return delta;
}

void Planner::redefined(const std::string& server) {
  detail::State& st = *state_;
  if (auto it = st.serverIndex.find(server); it != st.serverIndex.end()) st.clearRestart(it->second);
}

void Planner::touch(const std::string& blade) {
  detail::State& st = *state_;
  if (auto it = st.bladeIndex.find(blade); it != st.bladeIndex.end()) st.markStale(it->second);
}

std::optional<BladeState> Planner::bladeState(const std::string& blade) const {
  const detail::State& st = *state_;
  auto it = st.bladeIndex.find(blade);
  if (it == st.bladeIndex.end()) return std::nullopt;
  return st.blades[it->second].state;
}

void Planner::observe(const std::string& blade, const std::vector<Domain>& domains) {
  detail::State& st = *state_;
  if (auto it = st.bladeIndex.find(blade); it != st.bladeIndex.end()) st.setDomains(it->second, domains);
}

void Planner::observeDomain(const std::string& blade, const std::string& name, std::optional<DomainState> state) {
  detail::State& st = *state_;
  auto it = st.bladeIndex.find(blade);
  if (it == st.bladeIndex.end()) return;
  auto si = st.serverIndex.find(name);
  st.setDomain(it->second, si == st.serverIndex.end() ? kNone : si->second, name, state);
}

void Planner::observePersonality(const std::string& blade, std::optional<Hypervisor> personality) {
  detail::State& st = *state_;
  auto it = st.bladeIndex.find(blade);
  if (it == st.bladeIndex.end() || st.blades[it->second].personality == personality) return;
  st.blades[it->second].personality = personality;
  st.markStale(it->second);
}

void Planner::observeReachable(const std::string& blade, bool reachable) {
  detail::State& st = *state_;
  auto it = st.bladeIndex.find(blade);
  if (it == st.bladeIndex.end() || st.blades[it->second].reachable == reachable) return;
  const bool counted = st.domainsCount(st.blades[it->second]);
  const bool tookSteps = st.takesSteps(st.blades[it->second]);
  st.blades[it->second].reachable = reachable;
  if (counted != st.domainsCount(st.blades[it->second]) || tookSteps != st.takesSteps(st.blades[it->second]))
    st.markWatchers(it->second);
  st.markStale(it->second);
}

PlanDelta Planner::refresh(TimeMs /*now*/) {
  detail::State& st = *state_;
  detail::Output out;
  st.emitSteps({}, out);
  PlanDelta delta = st.toDelta(out);
  st.listChangedServers(delta);
  return delta;
}

PlacementState Planner::state() const { return state_->placementState(); }

std::string Planner::bladeOf(const std::string& server) const {
  auto it = state_->serverIndex.find(server);
  if (it == state_->serverIndex.end() || state_->servers[it->second].blade == kNone) return {};
  return state_->blades[state_->servers[it->second].blade].name;
}

Plan plan(const Declarations& desired, const Inventory& observed, const PlacementState& current, TimeMs now) {
  detail::State st(desired, observed, current);
  st.assumeStepsRun = false;  // nobody asks this planner again
  Planner once(std::make_unique<detail::State>(std::move(st)));
  return once.plan(now);
}

}  // namespace loom::pool
