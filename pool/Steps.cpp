// The steps: what every blade must do to run what it is bound to, computed from what it
// reports (or, without a report, is assumed to run). This is the plan the controller
// executes and `apply --dry-run` prints (pool/README.md, "Steps").
//
//   leaving  (a domain here, not bound here):  Stop if live → Undefine when bound elsewhere
//                                               or deleted; foreign domains are left alone
//   arriving (bound here, not running here):    [PrepareHypervisor] → Define → Start; the
//                                               Define waits for the Stop on any blade that
//                                               still runs it, or is held while that blade
//                                               takes no steps (invariant 1)
//   restart  (bound and live here, an old       Stop → Define → Start here, one server of an
//             definition: PlacementState::      anti-affinity group at a time (restartWaits)
//             restart)
//
// Output order: prepares, then leaving, then arriving; blades in inventory order within
// each, so `after` always names an earlier step.
#include <algorithm>
#include <unordered_map>

#include "pool/PlannerState.h"

namespace loom::pool::detail {
namespace {

// A step, and where it is in the indexed state (for the effects on assumed blades).
struct Emitted {
  int blade = kNone;
  int server = kNone;  // kNone for a prepare, or a domain that is no declared server
  std::size_t step = 0;
};

// `emitted`: null when nobody needs to know (State::assumeStepsRun).
std::size_t addStep(Output& out, std::vector<Emitted>* emitted, int bi, int si, StepKind kind, const std::string& blade,
                    const std::string& server, std::optional<Hypervisor> hv, std::vector<std::size_t> after) {
  out.steps.push_back(Step{kind, blade, server, hv, std::move(after)});
  if (emitted) emitted->push_back({bi, si, out.steps.size() - 1});
  return out.steps.size() - 1;
}

std::int64_t key(int blade, int server) {
  return (static_cast<std::int64_t>(blade) << 32) | static_cast<std::uint32_t>(server);
}

struct Arrival {
  int server = kNone;
  std::vector<int> stopsAt;  // blades whose Stop it waits for
  bool restart = false;      // live here, with an old definition: stopped here first
};

}  // namespace

bool State::takesSteps(const BladeSlot& b) const {
  return b.reachable && b.state != BladeState::Suspect && b.state != BladeState::Failed &&
         b.state != BladeState::Retired;
}

bool State::domainsCount(const BladeSlot& b) const { return !(b.state == BladeState::Fenced && !b.reachable); }

void State::markStale(int bi) {
  BladeSlot& b = blades[bi];
  if (b.stale) return;
  b.stale = true;
  staleBlades.push_back(bi);
}

void State::markWatchers(int bi) {
  for (const DomainSlot& d : blades[bi].domains) {
    if (d.server == kNone || !live(d.state)) continue;
    const int bound = servers[d.server].blade;
    if (bound != kNone && bound != bi) markStale(bound);
  }
}

int State::otherName(const std::string& name) {
  auto [it, added] = otherIndex.emplace(name, static_cast<int>(otherNames.size()));
  if (added) otherNames.push_back(name);
  return it->second;
}

const DomainSlot* State::domainAt(int bi, int si) const {
  for (const DomainSlot& d : blades[bi].domains) {
    if (d.server == si) return &d;
  }
  return nullptr;
}

void State::setDomain(int bi, int si, const std::string& name, std::optional<DomainState> state) {
  BladeSlot& b = blades[bi];
  const int other = si == kNone ? otherName(name) : kNone;
  auto it = std::find_if(b.domains.begin(), b.domains.end(), [&](const DomainSlot& d) {
    return si != kNone ? d.server == si : (d.server == kNone && d.other == other);
  });
  const bool wasLive = it != b.domains.end() && live(it->state);
  if (!state) {
    if (it != b.domains.end()) b.domains.erase(it);
    if (si != kNone) servers[si].definedOn.remove(bi);
  } else if (it != b.domains.end()) {
    it->state = *state;
  } else {
    b.domains.push_back(DomainSlot{si, other, *state});
    if (si != kNone) servers[si].definedOn.add(bi);
  }
  // Whether it runs here decides whether it may start where it is bound.
  const bool isLive = state && live(*state);
  if (si != kNone && wasLive != isLive) {
    const int bound = servers[si].blade;
    if (bound != kNone && bound != bi) markStale(bound);
  }
  markStale(bi);
}

void State::setDomains(int bi, const std::vector<Domain>& domains) {
  BladeSlot& b = blades[bi];
  auto watch = [&](int si) {
    const int bound = servers[si].blade;
    if (bound != kNone && bound != bi) markStale(bound);
  };
  for (const DomainSlot& d : b.domains) {
    if (d.server == kNone) continue;
    servers[d.server].definedOn.remove(bi);
    if (live(d.state)) watch(d.server);
  }
  b.domains.clear();
  b.domains.reserve(domains.size());
  for (const Domain& d : domains) {
    auto si = serverIndex.find(d.name);
    const int server = si == serverIndex.end() ? kNone : si->second;
    if (server != kNone && servers[server].definedOn.contains(bi)) continue;  // reported twice: the first wins
    b.domains.push_back(DomainSlot{server, server == kNone ? otherName(d.name) : kNone, d.state});
    if (server == kNone) continue;
    servers[server].definedOn.add(bi);
    if (live(d.state)) watch(server);
  }
  b.reported = true;
  markStale(bi);
}

void State::clearRestart(int si) {
  ServerSlot& s = servers[si];
  if (s.restart.empty()) return;
  s.restart.clear();
  --restarts;
  markServer(si);
  if (s.blade != kNone) markStale(s.blade);
  if (s.group != kNone) markRestartGroup(s.group);
}

void State::markRestartGroup(int group) {
  if (restarts == 0) return;
  for (int si : groupMembers[group]) {
    const ServerSlot& s = servers[si];
    if (!s.restart.empty() && s.blade != kNone) markStale(s.blade);
  }
}

std::string State::restartWaits(int si) const {
  const ServerSlot& s = servers[si];
  if (s.group == kNone) return {};
  // Deterministic from the state, whichever blades an output names: the group is busy
  // while any of its bound servers does not run; else the first in placement order whose
  // blade takes steps restarts.
  for (int other : groupMembers[s.group]) {
    if (other == si) continue;
    const ServerSlot& o = servers[other];
    if (o.blade == kNone) continue;
    const DomainSlot* d = domainAt(o.blade, other);
    const std::string prefix =
        "restart (" + s.restart + ") waits for " + o.name + " of anti-affinity group " + groupNames[s.group];
    if (!d || !live(d->state)) return prefix + " to run again";
    if (!o.restart.empty() && takesSteps(blades[o.blade]) && placesBefore(other, si))
      return prefix + " to restart first";
  }
  return {};
}

bool State::settled(int bi) const {
  const BladeSlot& b = blades[bi];
  if (b.domains.size() != b.servers.size()) return false;
  if (restarts > 0 &&
      std::any_of(b.servers.begin(), b.servers.end(), [&](int si) { return !servers[si].restart.empty(); }))
    return false;
  // As many domains as bound servers, each a bound server's, running: nothing to do.
  return std::all_of(b.domains.begin(), b.domains.end(), [&](const DomainSlot& d) {
    return d.server != kNone && servers[d.server].blade == bi && d.state == DomainState::Running;
  });
}

void State::emitSteps(const std::vector<int>& wanted, Output& out) {
  for (int bi : wanted) markStale(bi);
  // The blades with something to do; a start that waits for a Stop elsewhere needs that
  // blade's steps in the same output, and a restart's turn in its anti-affinity group
  // (restartWaits) the steps of the group's other restarts.
  std::vector<int> busy;
  std::vector<char> groupMarked(restarts > 0 ? groupNames.size() : 0, 0);
  // By index: markStale() below appends to staleBlades while this runs.
  for (std::size_t i = 0; i < staleBlades.size(); ++i) {  // NOLINT(modernize-loop-convert)
    const int bi = staleBlades[i];
    const BladeSlot& b = blades[bi];
    if (restarts > 0) {
      for (int si : b.servers) {
        const int g = servers[si].group;
        if (g == kNone || groupMarked[g]) continue;
        groupMarked[g] = 1;
        markRestartGroup(g);
      }
    }
    if (!takesSteps(b) || settled(bi)) continue;
    busy.push_back(bi);
    if (b.state == BladeState::Fenced) continue;  // cleaned: nothing starts there
    for (int si : b.servers) {
      servers[si].definedOn.forEach([&](int other) {
        if (other == bi || !domainsCount(blades[other]) || !takesSteps(blades[other])) return;
        if (const DomainSlot* d = domainAt(other, si); d && live(d->state)) markStale(other);
      });
    }
  }
  std::sort(busy.begin(), busy.end());

  // Who arrives where, and what each arrival waits for: blade busy[i]'s arrivals are
  // arrivals[first[i] .. first[i + 1]).
  std::vector<Arrival> arrivals;
  std::vector<std::size_t> first(busy.size() + 1, 0);
  std::vector<int> bound;
  for (std::size_t i = 0; i < busy.size(); ++i) {
    first[i] = arrivals.size();
    const int bi = busy[i];
    const BladeSlot& b = blades[bi];
    if (b.state == BladeState::Fenced || b.servers.empty()) continue;
    // In placement order: higher priority first.
    bound.assign(b.servers.begin(), b.servers.end());
    std::sort(bound.begin(), bound.end(), [&](int x, int y) { return placesBefore(x, y); });
    for (int si : bound) {
      Arrival a{si, {}};
      if (const DomainSlot* here = domainAt(bi, si); here && !servers[si].restart.empty() && live(here->state)) {
        // Its definition is old: stopped, defined anew, started — in its group's turn.
        if (std::string why = restartWaits(si); !why.empty()) {
          out.waiting.push_back({servers[si].name, std::move(why)});
          continue;
        }
        a.restart = true;
      } else if (here && here->state == DomainState::Running) {
        continue;
      }
      const BladeSlot* holder = nullptr;
      servers[si].definedOn.forEach([&](int other) {
        if (other == bi || !domainsCount(blades[other])) return;
        const DomainSlot* d = domainAt(other, si);
        if (!d || !live(d->state)) return;
        if (takesSteps(blades[other]))
          a.stopsAt.push_back(other);
        else
          holder = &blades[other];
      });
      if (holder) {
        out.waiting.push_back({servers[si].name, "runs on " + holder->name + " (" + toString(holder->state) +
                                                     "): starts on " + b.name + " once it is stopped there or " +
                                                     holder->name + " is fenced"});
        continue;
      }
      std::sort(a.stopsAt.begin(), a.stopsAt.end());
      arrivals.push_back(std::move(a));
    }
  }
  first[busy.size()] = arrivals.size();

  // 1. Personalities.
  std::vector<Emitted> emitted;
  std::vector<Emitted>* track = assumeStepsRun ? &emitted : nullptr;
  std::vector<std::int64_t> prepare(busy.size(), -1);
  auto hypervisorOf = [&](const BladeSlot& b) {
    return b.pool == kNone ? std::optional<Hypervisor>() : pools[b.pool].hypervisor;
  };
  for (std::size_t i = 0; i < busy.size(); ++i) {
    const BladeSlot& b = blades[busy[i]];
    const auto hv = hypervisorOf(b);
    if (first[i] == first[i + 1] || !hv || b.personality == hv) continue;
    prepare[i] =
        static_cast<std::int64_t>(addStep(out, track, busy[i], kNone, StepKind::PrepareHypervisor, b.name, {}, hv, {}));
  }

  // 2. Leaving: what runs or is defined where it is not bound.
  std::unordered_map<std::int64_t, std::size_t> stopAt;
  std::vector<const DomainSlot*> leaving;
  for (int bi : busy) {
    const BladeSlot& b = blades[bi];
    leaving.clear();
    for (const DomainSlot& d : b.domains) {
      if (d.server != kNone && servers[d.server].blade == bi) continue;
      if (d.server == kNone && !deleted.contains(otherNames[d.other])) {
        out.foreign.push_back({b.name, otherNames[d.other]});
        continue;
      }
      leaving.push_back(&d);
    }
    std::sort(leaving.begin(), leaving.end(),
              [&](const DomainSlot* x, const DomainSlot* y) { return nameOf(*x) < nameOf(*y); });
    for (const DomainSlot* d : leaving) {
      const std::string& name = nameOf(*d);
      std::vector<std::size_t> after;
      if (live(d->state)) {
        const std::size_t stop = addStep(out, track, bi, d->server, StepKind::Stop, b.name, name, std::nullopt, {});
        if (d->server != kNone) stopAt[key(bi, d->server)] = stop;
        after.push_back(stop);
      }
      // A powered-off or unplaced server keeps its definition: a start defines it again.
      if (d->server == kNone || servers[d->server].blade != kNone)
        addStep(out, track, bi, d->server, StepKind::Undefine, b.name, name, std::nullopt, std::move(after));
    }
  }
  // Restarts (an old definition, live where it is bound): stopped here before the Define.
  for (std::size_t i = 0; i < busy.size(); ++i) {
    for (std::size_t k = first[i]; k < first[i + 1]; ++k) {
      Arrival& a = arrivals[k];
      if (!a.restart) continue;
      const std::size_t stop = addStep(out, track, busy[i], a.server, StepKind::Stop, blades[busy[i]].name,
                                       servers[a.server].name, std::nullopt, {});
      stopAt[key(busy[i], a.server)] = stop;
      a.stopsAt.insert(a.stopsAt.begin(), busy[i]);
    }
  }

  // 3. Arriving. (Room made once: a failover brings 50 servers to a spare at a time.)
  out.steps.reserve(out.steps.size() + 2 * arrivals.size());
  if (track) track->reserve(track->size() + 2 * arrivals.size());
  for (std::size_t i = 0; i < busy.size(); ++i) {
    const BladeSlot& b = blades[busy[i]];
    const auto hv = hypervisorOf(b);
    for (std::size_t k = first[i]; k < first[i + 1]; ++k) {
      const Arrival& a = arrivals[k];
      std::vector<std::size_t> after;
      if (prepare[i] >= 0) after.push_back(static_cast<std::size_t>(prepare[i]));
      for (int other : a.stopsAt) after.push_back(stopAt.at(key(other, a.server)));
      const std::size_t define = addStep(out, track, busy[i], a.server, StepKind::Define, b.name,
                                         servers[a.server].name, hv, std::move(after));
      addStep(out, track, busy[i], a.server, StepKind::Start, b.name, servers[a.server].name, hv, {define});
    }
  }

  out.stepBlades = staleBlades;
  std::sort(out.stepBlades.begin(), out.stepBlades.end());

  // Blades nobody reports for are assumed to carry out what they were given (a Define is
  // always followed by its Start, which says it all). A planner used once needs no such
  // memory (pool::plan).
  for (const Emitted& e : emitted) {
    BladeSlot& b = blades[e.blade];
    if (b.reported) continue;
    const Step& s = out.steps[e.step];
    switch (s.kind) {
      case StepKind::PrepareHypervisor:
        b.personality = s.hypervisor;
        break;
      case StepKind::Start:
        setDomain(e.blade, e.server, s.server, DomainState::Running);
        break;
      case StepKind::Stop:
        setDomain(e.blade, e.server, s.server, DomainState::Shutoff);
        break;
      case StepKind::Undefine:
        setDomain(e.blade, e.server, s.server, std::nullopt);
        break;
      case StepKind::Define:
        clearRestart(e.server);  // it holds the new definition now
        break;
    }
  }

  for (int bi : staleBlades) blades[bi].stale = false;
  staleBlades.clear();
}

}  // namespace loom::pool::detail
