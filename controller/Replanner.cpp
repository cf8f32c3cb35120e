#include "controller/Replanner.h"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <string_view>
#include <tuple>

namespace loom::controller {
namespace {
const std::vector<std::string> kNoServers;
}  // namespace

std::string planText(const pool::Plan& p) {
  // Keys in the order nlohmann's dump() had them (by name), so the text reads as before.
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  auto str = [&w](std::string_view v) { w.String(v.data(), static_cast<rapidjson::SizeType>(v.size())); };
  w.StartObject();
  w.Key("placements");
  w.StartArray();
  for (const auto& pl : p.placements) {
    w.StartObject();
    w.Key("blade");
    str(pl.blade);
    if (!pl.from.empty()) {
      w.Key("from");
      str(pl.from);
    }
    w.Key("server");
    str(pl.server);
    w.EndObject();
  }
  w.EndArray();
  w.Key("steps");
  w.StartArray();
  for (const auto& st : p.steps) {
    w.StartObject();
    w.Key("after");
    w.StartArray();
    for (auto a : st.after) w.Uint64(a);
    w.EndArray();
    w.Key("blade");
    str(st.blade);
    if (st.hypervisor) {
      w.Key("hypervisor");
      str(pool::toString(*st.hypervisor));
    }
    w.Key("kind");
    str(pool::toString(st.kind));
    if (!st.server.empty()) {
      w.Key("server");
      str(st.server);
    }
    w.EndObject();
  }
  w.EndArray();
  w.Key("unplaceable");
  w.StartArray();
  for (const auto& u : p.unplaceable) {
    w.StartObject();
    w.Key("reason");
    str(u.reason);
    w.Key("server");
    str(u.server);
    w.EndObject();
  }
  w.EndArray();
  w.Key("warnings");
  w.StartArray();
  for (const auto& warning : p.warnings) str(warning);
  w.EndArray();
  w.EndObject();
  return {sb.GetString(), sb.GetSize()};
}

void Replanner::restore(StoredState& st) {
  placement_.bindings = std::move(st.bindings);
  placement_.home = std::move(st.placementMaps["home"]);
  for (const auto& [server, _] : st.placementMaps["held"]) placement_.held.insert(server);
  for (const auto& [server, _] : st.placementMaps["displaced"]) placement_.displaced.insert(server);
  placement_.restart = std::move(st.placementMaps["restart"]);
  placement_.borrowed = std::move(st.borrowed);
  byBlade_.clear();
  for (const auto& [s, b] : placement_.bindings) byBlade_[b].push_back(s);
  dirty_ = true;
}

void Replanner::markDirty(std::int64_t now, bool atOnce) {
  dirty_ = true;
  changedBlades_.clear();  // the full plan sees them
  if (atOnce) lastPlanAt_ = std::min(lastPlanAt_, now - options_.replanMinIntervalMs);
}

pool::BladeState Replanner::displayState(const std::string& blade) const {
  return displayState(registry_.find(blade), detector_.health(blade), role(blade), serversOn(blade));
}

pool::BladeState Replanner::displayState(const KnownBlade* k, pool::BladeState health,
                                         const pool::BladeAssignment* role, const std::vector<std::string>& servers) {
  if (k && k->adminState == "retired") return pool::BladeState::Retired;
  if (k && k->adminState == "maintenance") return pool::BladeState::Maintenance;
  if (health != pool::BladeState::Available) return health;
  if (role && role->role == pool::BladeRole::Spare) return pool::BladeState::Spare;
  if (!servers.empty()) return pool::BladeState::Active;
  return pool::BladeState::Available;
}

pool::Blade plannerBlade(const std::string& name, const protocol::BladeInventory& inventory) {
  pool::Blade b;
  b.name = name;
  b.chassis = inventory.chassis;
  b.slot = inventory.slot;
  b.sockets = inventory.sockets;
  b.cores = inventory.cores;
  b.memory = inventory.memoryMib;
  b.model = inventory.cpuModel;
  for (const auto& h : inventory.hypervisors)
    if (auto hv = pool::parseHypervisor(h)) b.hypervisors.add(*hv);
  if (!inventory.personality.empty()) b.personality = pool::parseHypervisor(inventory.personality);
  return b;
}

pool::Inventory Replanner::inventory() const {
  pool::Inventory inv;
  inv.blades.reserve(registry_.all().size());
  for (const auto& [name, k] : registry_.all()) {
    pool::Blade b = plannerBlade(name, k.inventory);
    b.state = displayState(name);
    // What it runs, as its agent said since this controller started; before that it is
    // assumed to run what it is bound to, and no step reaches it.
    if (k.registered) {
      b.domains.emplace();
      b.domains->reserve(k.domains.size());
      for (const auto& [dn, d] : k.domains) b.domains->push_back({dn, d.state});
    }
    b.reachable = detector_.takesSteps(name);
    inv.blades.push_back(std::move(b));
  }
  return inv;
}

pool::BladeState Replanner::plannerState(const std::string& blade) const {
  const KnownBlade* k = registry_.find(blade);
  if (k && k->adminState == "retired") return pool::BladeState::Retired;
  if (k && k->adminState == "maintenance") return pool::BladeState::Maintenance;
  return detector_.health(blade);
}

namespace {
// Spare, active and available are one to the planner: a blade that takes servers.
pool::BladeState planningClass(pool::BladeState s) {
  return s == pool::BladeState::Spare || s == pool::BladeState::Active ? pool::BladeState::Available : s;
}
}  // namespace

std::optional<Replanner::Steps> Replanner::replan(std::int64_t now, std::string* planOut) {
  dirty_ = false;
  lastPlanAt_ = now;
  changedBlades_.clear();
  Change change;
  desired_.assignIdentities(change, events_);
  // Servers without an identity are not planned: they could not be started.
  const pool::Declarations* declared = &desired_.declarations();
  pool::Declarations placeable;
  if (std::any_of(declared->servers.begin(), declared->servers.end(),
                  [&](const pool::Server& s) { return !desired_.identities().holds(s.name); })) {
    placeable = *declared;
    std::erase_if(placeable.servers, [&](const pool::Server& s) { return !desired_.identities().holds(s.name); });
    declared = &placeable;
  }
  const auto t0 = std::chrono::steady_clock::now();
  auto planner = std::make_unique<pool::Planner>(*declared, inventory(), placement_);
  pool::Plan p = planner->plan(now);
  counters_.secondsLast = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  counters_.secondsSum += counters_.secondsLast;
  ++counters_.plans;
  for (const auto& [s, b] : p.next.bindings)
    if (auto old = placement_.bindings.find(s); old == placement_.bindings.end() || old->second != b)
      change.putBindings[s] = b;
  for (const auto& [s, b] : placement_.bindings)
    if (!p.next.bindings.count(s)) change.deleteBindings.push_back(s);
  for (const auto& [b, pl] : p.next.borrowed)
    if (auto old = placement_.borrowed.find(b); old == placement_.borrowed.end() || old->second != pl)
      change.putBorrowed[b] = pl;
  for (const auto& [b, pl] : placement_.borrowed)
    if (!p.next.borrowed.count(b)) change.deleteBorrowed.push_back(b);
  for (const auto& [s, b] : p.next.home)
    if (auto old = placement_.home.find(s); old == placement_.home.end() || old->second != b)
      change.putPlacement[{"home", s}] = b;
  for (const auto& [s, b] : placement_.home)
    if (!p.next.home.count(s)) change.deletePlacement.emplace_back("home", s);
  for (const auto& [s, why] : p.next.restart)
    if (auto old = placement_.restart.find(s); old == placement_.restart.end() || old->second != why)
      change.putPlacement[{"restart", s}] = why;
  for (const auto& [s, why] : placement_.restart)
    if (!p.next.restart.count(s)) change.deletePlacement.emplace_back("restart", s);
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
    planner_.reset();
    return std::nullopt;
  }
  desired_.identitiesPersisted();
  planner_ = std::move(planner);
  const std::map<std::string, std::string> homeBefore = std::move(placement_.home);  // servers away from home: few
  placement_ = std::move(p.next);
  byBlade_.clear();
  for (const auto& [s, b] : placement_.bindings) byBlade_[b].push_back(s);
  tell(p.placements, p.blades, p.unplaceable, p.warnings, p.steps, true, homeBefore);
  // The plan itself is not kept: at 100,000 servers it is a second copy of the placement.
  if (planOut) *planOut = planText(p);
  Steps out{std::move(p.steps), {}, std::move(p.foreign)};
  out.blades.reserve(registry_.all().size());
  for (const auto& [name, _] : registry_.all()) out.blades.push_back(name);
  return out;
}

void Replanner::tell(const std::vector<pool::Placement>& placements, const std::vector<pool::BladeAssignment>& blades,
                     const std::vector<pool::Unplaceable>& unplaceable, const std::vector<std::string>& warnings,
                     const std::vector<pool::Step>& steps, bool complete,
                     const std::map<std::string, std::string>& homeBefore) {
  // The roles after: every blade's for a full plan; a delta names the blades that changed.
  std::map<std::string, pool::BladeAssignment> roles;
  if (complete)
    for (const auto& a : blades) roles[a.blade] = a;
  auto after = [&](const std::string& blade) -> const pool::BladeAssignment* {
    if (complete) {
      auto r = roles.find(blade);
      return r == roles.end() ? nullptr : &r->second;
    }
    for (const auto& a : blades)
      if (a.blade == blade) return &a;
    return role(blade);
  };
  // Failover: each server that left a fenced blade is an event saying where it went and why
  // there (the roles before the plan tell a spare from a blade it was packed onto).
  // (A failover's placements mostly come from one blade: it is looked up once.)
  const std::string* from = nullptr;
  bool fromFenced = false;
  std::string message;
  for (const auto& pl : placements) {
    if (pl.from.empty()) continue;
    if (!from || *from != pl.from) {
      from = &pl.from;
      fromFenced = detector_.health(pl.from) == pool::BladeState::Fenced && registry_.find(pl.from);
    }
    if (!fromFenced) {
      tellMove(pl, homeBefore);
      continue;
    }
    ++counters_.failovers;
    const pool::BladeAssignment* before = role(pl.blade);
    const std::string_view lender = before ? std::string_view(before->pool) : std::string_view("?");
    message.clear();
    message.append("failover: ").append(pl.server).append(" from fenced blade ").append(pl.from);
    message.append(" to ").append(pl.blade).append(" (");
    if (const auto* r = after(pl.blade); r && r->role == pool::BladeRole::Borrowed) {
      message.append("borrowed from spare pool ").append(lender);
      for (const auto& step : steps)
        if (step.kind == pool::StepKind::PrepareHypervisor && step.blade == pl.blade && step.hypervisor)
          message.append(", repurposed as a ").append(pool::toString(*step.hypervisor)).append(" blade");
    } else if (before && before->role == pool::BladeRole::Spare) {
      message.append("a spare of pool ").append(lender);
    } else {
      message.append("packed onto a blade of its pool");
    }
    message.append(")");
    events_.add("warning", pl.blade, pl.server, message);
  }
  if (complete)
    roles_ = std::move(roles);
  else
    for (const auto& a : blades) roles_[a.blade] = a;
  auto said = [&](const pool::Unplaceable& u) {
    if (auto old = unplaceable_.find(u.server); old == unplaceable_.end() || old->second != u.reason)
      events_.add("warning", "", u.server, "unplaceable: " + u.reason);
  };
  if (complete) {
    std::map<std::string, std::string> next;
    for (const auto& u : unplaceable) {
      said(u);
      next[u.server] = u.reason;
    }
    unplaceable_ = std::move(next);
  } else {
    for (const auto& pl : placements) unplaceable_.erase(pl.server);
    for (const auto& u : unplaceable) {
      said(u);
      unplaceable_[u.server] = u.reason;
    }
  }
  for (const auto& w : warnings)
    if (seenWarnings_.insert(w).second) events_.add("warning", "", "", w);
}

void Replanner::tellMove(const pool::Placement& pl, const std::map<std::string, std::string>& homeBefore) {
  std::string m;
  if (auto home = homeBefore.find(pl.server); home != homeBefore.end() && home->second == pl.blade) {
    m = "failback: " + pl.server + " from " + pl.from + " back to its home blade " + pl.blade;
  } else {
    const KnownBlade* k = registry_.find(pl.from);
    const std::string why = !k                               ? "blade "
                            : k->adminState == "maintenance" ? "drained blade "
                            : k->adminState == "retired"     ? "retired blade "
                                                             : "blade ";
    m = "moved: " + pl.server + " from " + why + pl.from + " to " + pl.blade;
    if (why == "blade ") m += " (replanned: its place there is needed or no longer fits)";
  }
  events_.add("info", pl.blade, pl.server, m);
}

void Replanner::bladeChanged(const std::string& blade) {
  if (planner_) changedBlades_.insert(blade);
}

void Replanner::observe(const std::string& blade, const std::string* domain) {
  const KnownBlade* k = registry_.find(blade);
  if (!planner_ || !k) return;
  if (domain) {
    // One domain: a step's result.
    auto d = k->domains.find(*domain);
    planner_->observeDomain(blade, *domain, d == k->domains.end() ? std::nullopt : std::optional(d->second.state));
    return;
  }
  std::vector<pool::Domain> domains;
  domains.reserve(k->domains.size());
  for (const auto& [name, d] : k->domains) domains.push_back({name, d.state});
  planner_->observe(blade, domains);
  planner_->observePersonality(
      blade, k->inventory.personality.empty() ? std::nullopt : pool::parseHypervisor(k->inventory.personality));
}

void Replanner::touch(const std::string& blade) {
  if (planner_) planner_->touch(blade);
}

std::vector<Replanner::Steps> Replanner::react(std::int64_t now) {
  std::vector<Steps> out;
  if (!planner_ || dirty_) return out;
  std::vector<pool::PlanDelta> deltas;
  for (const auto& blade : changedBlades_) {
    planner_->observeReachable(blade, detector_.takesSteps(blade));
    const pool::BladeState want = plannerState(blade);
    if (auto held = planner_->bladeState(blade); held && planningClass(*held) != planningClass(want))
      deltas.push_back(planner_->bladeStateChanged(blade, want, now));
  }
  changedBlades_.clear();
  deltas.push_back(planner_->refresh(now));
  for (auto& d : deltas) {
    std::map<std::string, std::string> homeBefore;
    for (const auto& pl : d.placements)
      if (auto h = placement_.home.find(pl.server); !pl.from.empty() && h != placement_.home.end())
        homeBefore.insert(*h);
    if (!persist(d)) {
      // What the planner decided is not durable: nobody acts on it; a full plan from the
      // stored placement decides again.
      spdlog::error("incremental plan not persisted; a full plan follows");
      dirty_ = true;
      planner_.reset();
      out.clear();
      return out;
    }
    tell(d.placements, d.blades, d.unplaceable, d.warnings, d.steps, false, homeBefore);
    out.push_back(Steps{std::move(d.steps), std::move(d.stepBlades), std::move(d.foreign)});
  }
  return out;
}

bool Replanner::persist(const pool::PlanDelta& d) {
  // Each server is looked up once in the 100,000 bindings and homes: the iterators serve
  // the change and, once it is durable, the update (the commit does not touch placement_;
  // a delta names each server once).
  using Entry = std::map<std::string, std::string>::iterator;
  std::vector<std::pair<Entry, Entry>> found;  // (binding, home) of d.servers[i]
  found.reserve(d.servers.size());
  Change c;
  for (const auto& sp : d.servers) {
    const auto bound = placement_.bindings.find(sp.server);
    const auto home = placement_.home.find(sp.server);
    found.emplace_back(bound, home);
    const bool isBound = bound != placement_.bindings.end();
    if (sp.blade.empty() && isBound) c.deleteBindings.push_back(sp.server);
    if (!sp.blade.empty() && (!isBound || bound->second != sp.blade)) c.putBindings.emplace(sp.server, sp.blade);
    if (sp.home.empty() && home != placement_.home.end()) c.deletePlacement.emplace_back("home", sp.server);
    if (!sp.home.empty() && (home == placement_.home.end() || home->second != sp.home))
      c.putPlacement.emplace(std::pair<std::string, std::string>("home", sp.server), sp.home);
    for (const auto& [name, now, set] : {std::tuple{"held", sp.held, &placement_.held},
                                         std::tuple{"displaced", sp.displaced, &placement_.displaced}}) {
      if (now && !set->count(sp.server)) c.putPlacement[{name, sp.server}] = "";
      if (!now && set->count(sp.server)) c.deletePlacement.emplace_back(name, sp.server);
    }
    const auto restart = placement_.restart.find(sp.server);
    if (sp.restart.empty() && restart != placement_.restart.end()) c.deletePlacement.emplace_back("restart", sp.server);
    if (!sp.restart.empty() && (restart == placement_.restart.end() || restart->second != sp.restart))
      c.putPlacement[{"restart", sp.server}] = sp.restart;
  }
  for (const auto& [b, pl] : d.borrowed) c.putBorrowed[b] = pl;
  for (const auto& b : d.returned) c.deleteBorrowed.push_back(b);
  if (c.empty()) return true;
  if (auto s = journal_.commitNow(std::move(c)); !s) return false;
  // Rebound in place; the servers that left a blade go from its list in one pass, not
  // one search each (a fenced blade's 60).
  std::vector<std::pair<std::string, std::vector<std::string_view>>> left;  // blade -> servers gone
  for (std::size_t i = 0; i < d.servers.size(); ++i) {
    const auto& sp = d.servers[i];
    const auto b = found[i].first;
    const auto h = found[i].second;
    if (b != placement_.bindings.end() && b->second != sp.blade) {
      auto l = std::find_if(left.begin(), left.end(), [&](const auto& x) { return x.first == b->second; });
      if (l == left.end()) l = left.insert(left.end(), {b->second, {}});
      l->second.push_back(sp.server);
      if (sp.blade.empty()) {
        placement_.bindings.erase(b);
      } else {
        b->second = sp.blade;
        byBlade_[sp.blade].push_back(sp.server);
      }
    } else if (b == placement_.bindings.end() && !sp.blade.empty()) {
      bind(sp.server, sp.blade);
    }
    if (h != placement_.home.end() && sp.home.empty())
      placement_.home.erase(h);
    else if (h != placement_.home.end())
      h->second = sp.home;
    else if (!sp.home.empty())
      placement_.home.emplace(sp.server, sp.home);
    if (sp.held)
      placement_.held.insert(sp.server);
    else
      placement_.held.erase(sp.server);
    if (sp.displaced)
      placement_.displaced.insert(sp.server);
    else
      placement_.displaced.erase(sp.server);
    if (sp.restart.empty())
      placement_.restart.erase(sp.server);
    else
      placement_.restart[sp.server] = sp.restart;
  }
  for (auto& l : left) {
    auto list = byBlade_.find(l.first);
    if (list == byBlade_.end()) continue;
    auto& gone = l.second;
    std::sort(gone.begin(), gone.end());
    std::erase_if(list->second, [&](const std::string& s) { return std::binary_search(gone.begin(), gone.end(), s); });
  }
  for (const auto& [b, pl] : d.borrowed) placement_.borrowed[b] = pl;
  for (const auto& b : d.returned) placement_.borrowed.erase(b);
  return true;
}

pool::Plan Replanner::preview(const pool::Declarations& declarations, std::int64_t now, double* seconds,
                              const std::map<std::string, std::string>* restarts) const {
  const auto t0 = std::chrono::steady_clock::now();
  pool::PlacementState withRestarts;
  const pool::PlacementState* current = &placement_;
  if (restarts && !restarts->empty()) {
    withRestarts = placement_;
    for (const auto& [s, why] : *restarts) withRestarts.restart[s] = why;
    current = &withRestarts;
  }
  pool::Plan p = pool::plan(declarations, inventory(), *current, now);
  if (seconds) *seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return p;
}

std::map<std::string, std::string> Replanner::restartsFor(const std::map<std::string, std::string>& reasons) const {
  std::map<std::string, std::string> out;
  for (const auto& [server, why] : reasons) {
    if (why.empty() || !placement_.bindings.count(server)) continue;
    auto pending = placement_.restart.find(server);
    out[server] = pending == placement_.restart.end() ? why : pending->second + "; " + why;
  }
  return out;
}

void Replanner::restartChange(const std::map<std::string, std::string>& restarts, Change& change) const {
  for (const auto& [server, why] : restarts) change.putPlacement[{"restart", server}] = why;
}

void Replanner::restart(const std::map<std::string, std::string>& restarts) {
  for (const auto& [server, why] : restarts) placement_.restart[server] = why;
}

void Replanner::redefined(const std::string& server, const std::string& blade) {
  auto it = placement_.restart.find(server);
  if (it == placement_.restart.end()) return;
  const std::string* bound = bladeOf(server);
  if (!bound || *bound != blade) return;
  placement_.restart.erase(it);
  journal_.pending().deletePlacement.emplace_back("restart", server);
  if (planner_) planner_->redefined(server);
  events_.add("info", blade, server, "defined anew on " + blade + " (its restart applies the change)");
}

const std::string* Replanner::restartPending(const std::string& server) const {
  auto it = placement_.restart.find(server);
  return it == placement_.restart.end() ? nullptr : &it->second;
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
