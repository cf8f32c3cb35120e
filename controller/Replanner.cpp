#include "controller/Replanner.h"

#include <algorithm>
#include <tuple>

#include <spdlog/spdlog.h>

namespace loom::controller {
namespace {
const std::vector<std::string> kNoServers;
}  // namespace

protocol::Json planJson(const pool::Plan& p) {
  using protocol::Json;
  Json placements = Json::array(), unplaceable = Json::array(), steps = Json::array();
  for (const auto& pl : p.placements) {
    Json j{{"server", pl.server}, {"blade", pl.blade}};
    if (!pl.from.empty()) j["from"] = pl.from;
    placements.push_back(std::move(j));
  }
  for (const auto& u : p.unplaceable) unplaceable.push_back({{"server", u.server}, {"reason", u.reason}});
  for (const auto& s : p.steps) {
    Json j{{"kind", pool::toString(s.kind)}, {"blade", s.blade}, {"after", s.after}};
    if (!s.server.empty()) j["server"] = s.server;
    if (s.hypervisor) j["hypervisor"] = pool::toString(*s.hypervisor);
    steps.push_back(std::move(j));
  }
  return {{"placements", placements}, {"unplaceable", unplaceable}, {"steps", steps}, {"warnings", p.warnings}};
}

void Replanner::restore(StoredState& st) {
  placement_.bindings = std::move(st.bindings);
  placement_.home = std::move(st.placementMaps["home"]);
  for (const auto& [server, _] : st.placementMaps["held"]) placement_.held.insert(server);
  for (const auto& [server, _] : st.placementMaps["displaced"]) placement_.displaced.insert(server);
  placement_.borrowed = std::move(st.borrowed);
  byBlade_.clear();
  for (const auto& [s, b] : placement_.bindings) byBlade_[b].push_back(s);
  dirty_ = true;
}

void Replanner::markDirty(std::int64_t now, bool atOnce) {
  dirty_ = true;
  if (atOnce) lastPlanAt_ = std::min(lastPlanAt_, now - options_.replanMinIntervalMs);
}

pool::BladeState Replanner::displayState(const std::string& blade) const {
  const KnownBlade* k = registry_.find(blade);
  if (k && k->adminState == "retired") return pool::BladeState::Retired;
  if (k && k->adminState == "maintenance") return pool::BladeState::Maintenance;
  if (const auto health = detector_.health(blade); health != pool::BladeState::Available) return health;
  if (auto r = roles_.find(blade); r != roles_.end() && r->second.role == pool::BladeRole::Spare) return pool::BladeState::Spare;
  if (auto b = byBlade_.find(blade); b != byBlade_.end() && !b->second.empty()) return pool::BladeState::Active;
  return pool::BladeState::Available;
}

pool::Inventory Replanner::inventory() const {
  pool::Inventory inv;
  inv.blades.reserve(registry_.all().size());
  for (const auto& [name, k] : registry_.all()) {
    pool::Blade b;
    b.name = name;
    b.chassis = k.inventory.chassis;
    b.slot = k.inventory.slot;
    b.sockets = k.inventory.sockets;
    b.cores = k.inventory.cores;
    b.memory = k.inventory.memoryMib;
    b.model = k.inventory.cpuModel;
    for (const auto& h : k.inventory.hypervisors)
      if (auto hv = pool::parseHypervisor(h)) b.hypervisors.add(*hv);
    if (!k.inventory.personality.empty()) b.personality = pool::parseHypervisor(k.inventory.personality);
    b.state = displayState(name);
    inv.blades.push_back(std::move(b));
  }
  return inv;
}

std::optional<Replanner::Changes> Replanner::replan(std::int64_t now, protocol::Json* planOut) {
  dirty_ = false;
  lastPlanAt_ = now;
  Change change;
  desired_.assignIdentities(change, events_);
  const auto t0 = std::chrono::steady_clock::now();
  pool::Plan p = pool::plan(desired_.declarations(), inventory(), placement_, now);
  counters_.secondsLast = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  counters_.secondsSum += counters_.secondsLast;
  ++counters_.plans;
  // Servers without an identity must not be bound: they could not be started.
  for (auto it = p.next.bindings.begin(); it != p.next.bindings.end();)
    it = desired_.identities().holds(it->first) ? std::next(it) : p.next.bindings.erase(it);
  for (const auto& [s, b] : p.next.bindings)
    if (auto old = placement_.bindings.find(s); old == placement_.bindings.end() || old->second != b) change.putBindings[s] = b;
  for (const auto& [s, b] : placement_.bindings)
    if (!p.next.bindings.count(s)) change.deleteBindings.push_back(s);
  for (const auto& [b, pl] : p.next.borrowed)
    if (auto old = placement_.borrowed.find(b); old == placement_.borrowed.end() || old->second != pl) change.putBorrowed[b] = pl;
  for (const auto& [b, pl] : placement_.borrowed)
    if (!p.next.borrowed.count(b)) change.deleteBorrowed.push_back(b);
  for (const auto& [s, b] : p.next.home)
    if (auto old = placement_.home.find(s); old == placement_.home.end() || old->second != b) change.putPlacement[{"home", s}] = b;
  for (const auto& [s, b] : placement_.home)
    if (!p.next.home.count(s)) change.deletePlacement.emplace_back("home", s);
  for (const auto& [name, after, before] : {std::tuple{"held", &p.next.held, &placement_.held},
                                            std::tuple{"displaced", &p.next.displaced, &placement_.displaced}}) {
    for (const auto& s : *after)
      if (!before->count(s)) change.putPlacement[{name, s}] = "";
    for (const auto& s : *before)
      if (!after->count(s)) change.deletePlacement.emplace_back(name, s);
  }
  // The placement is durable before any agent hears of it.
  if (auto s = journal_.commitNow(std::move(change)); !s) {
    spdlog::error("replan not persisted, retrying: {}", s.error().message);
    dirty_ = true;
    return std::nullopt;
  }
  desired_.identitiesPersisted();
  Changes out;
  for (const auto& [s, b] : p.next.bindings)
    if (auto old = placement_.bindings.find(s); old == placement_.bindings.end() || old->second != b) {
      out.blades.insert(b);
      if (old != placement_.bindings.end()) out.blades.insert(old->second);
    }
  for (const auto& [s, b] : placement_.bindings)
    if (!p.next.bindings.count(s)) out.blades.insert(b);
  placement_ = std::move(p.next);
  byBlade_.clear();
  for (const auto& [s, b] : placement_.bindings) byBlade_[b].push_back(s);
  std::map<std::string, pool::BladeAssignment> roles;
  for (const auto& a : p.blades) roles[a.blade] = a;
  // Failover: each server that left a fenced blade is an event saying where it went and why
  // there (the roles before the plan tell a spare from a blade it was packed onto).
  for (const auto& pl : p.placements) {
    if (pl.from.empty() || detector_.health(pl.from) != pool::BladeState::Fenced || !registry_.find(pl.from)) continue;
    ++counters_.failovers;
    std::string how = "packed onto a blade of its pool";
    auto before = roles_.find(pl.blade);
    const std::string lender = before == roles_.end() ? std::string("?") : before->second.pool;
    if (auto r = roles.find(pl.blade); r != roles.end() && r->second.role == pool::BladeRole::Borrowed) {
      how = "borrowed from spare pool " + lender;
      for (const auto& step : p.steps)
        if (step.kind == pool::StepKind::PrepareHypervisor && step.blade == pl.blade && step.hypervisor)
          how += ", repurposed as a " + std::string(pool::toString(*step.hypervisor)) + " blade";
    } else if (before != roles_.end() && before->second.role == pool::BladeRole::Spare) {
      how = "a spare of pool " + lender;
    }
    events_.add("warning", pl.blade, pl.server,
                "failover: " + pl.server + " from fenced blade " + pl.from + " to " + pl.blade + " (" + how + ")");
  }
  roles_ = std::move(roles);
  std::map<std::string, std::string> unplaceable;
  for (const auto& u : p.unplaceable) {
    if (auto old = unplaceable_.find(u.server); old == unplaceable_.end() || old->second != u.reason)
      events_.add("warning", "", u.server, "unplaceable: " + u.reason);
    unplaceable[u.server] = u.reason;
  }
  unplaceable_ = std::move(unplaceable);
  for (const auto& w : p.warnings)
    if (seenWarnings_.insert(w).second) events_.add("warning", "", "", w);
  for (const auto& step : p.steps)
    if (step.kind == pool::StepKind::PrepareHypervisor && step.hypervisor) out.prepares.push_back(step);
  // The plan itself is not kept: at 100,000 servers it is a second copy of the placement.
  if (planOut) *planOut = planJson(p);
  return out;
}

pool::Plan Replanner::preview(const pool::Declarations& declarations, std::int64_t now, double* seconds) const {
  const auto t0 = std::chrono::steady_clock::now();
  pool::Plan p = pool::plan(declarations, inventory(), placement_, now);
  if (seconds) *seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return p;
}

std::optional<std::string> Replanner::checkMove(const std::string& server, const std::string& to) const {
  return pool::checkMove(desired_.declarations(), inventory(), placement_, server, to);
}

Change Replanner::moveChange(const std::string& server, const std::string& to) const {
  Change c;
  c.putBindings[server] = to;
  // The operator's choice is where it belongs now: no failback undoes it.
  if (placement_.held.count(server)) c.deletePlacement.emplace_back("held", server);
  if (placement_.home.count(server)) c.deletePlacement.emplace_back("home", server);
  if (placement_.displaced.count(server)) c.deletePlacement.emplace_back("displaced", server);
  return c;
}

void Replanner::move(const std::string& server, const std::string& to) {
  unbind(server);
  bind(server, to);
  placement_.held.erase(server);
  placement_.home.erase(server);
  placement_.displaced.erase(server);
}

void Replanner::forgetChange(const std::vector<std::string>& servers, Change& change) const {
  for (const auto& name : servers) {
    if (placement_.held.count(name)) change.deletePlacement.emplace_back("held", name);
    if (placement_.home.count(name)) change.deletePlacement.emplace_back("home", name);
    if (placement_.displaced.count(name)) change.deletePlacement.emplace_back("displaced", name);
  }
}

void Replanner::forget(const std::vector<std::string>& servers) {
  for (const auto& name : servers) {
    placement_.held.erase(name);
    placement_.home.erase(name);
    placement_.displaced.erase(name);
  }
}

void Replanner::bind(const std::string& server, const std::string& blade) {
  placement_.bindings[server] = blade;
  byBlade_[blade].push_back(server);
}

void Replanner::unbind(const std::string& server) {
  auto it = placement_.bindings.find(server);
  if (it == placement_.bindings.end()) return;
  auto& list = byBlade_[it->second];
  std::erase(list, server);
  placement_.bindings.erase(it);
}

const std::string* Replanner::bladeOf(const std::string& server) const {
  auto it = placement_.bindings.find(server);
  return it == placement_.bindings.end() ? nullptr : &it->second;
}

const std::vector<std::string>& Replanner::serversOn(const std::string& blade) const {
  auto it = byBlade_.find(blade);
  return it == byBlade_.end() ? kNoServers : it->second;
}

const pool::BladeAssignment* Replanner::role(const std::string& blade) const {
  auto it = roles_.find(blade);
  return it == roles_.end() ? nullptr : &it->second;
}

const std::string* Replanner::unplaceable(const std::string& server) const {
  auto it = unplaceable_.find(server);
  return it == unplaceable_.end() ? nullptr : &it->second;
}

std::vector<pool::PoolCapacity> Replanner::capacity() const {
  return pool::capacity(desired_.declarations(), inventory(), placement_);
}

}  // namespace loom::controller
