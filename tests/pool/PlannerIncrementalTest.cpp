#include <gtest/gtest.h>

#include <cstdlib>
#include <random>
#include <set>

#include "tests/pool/PoolBuilders.h"

namespace loom::pool {
namespace {
using namespace loom::pool::testing;

Fixture mediumFabric() {
  Fixture f;
  for (int i = 0; i < 12; ++i) f.observed.blades.push_back(blade("c1-s" + std::to_string(i), 8, 32_GiB));
  f.observed.blades.push_back(blade("c2-s7", 8, 32_GiB));
  std::vector<std::string> web, db;
  for (int i = 0; i < 8; ++i) web.push_back("c1-s" + std::to_string(i));
  for (int i = 8; i < 12; ++i) db.push_back("c1-s" + std::to_string(i));
  f.desired.pools = {borrowingFrom(withSpares(pool("web", web), 2), "global-spares"),
                     withFailover(withSpares(pool("db", db), 1), FailoverPolicy::Pack),
                     sparePool("global-spares", {"c2-s7"})};
  for (int i = 0; i < 14; ++i)
    f.desired.servers.push_back(
        priority(antiAffinity(server("web-" + std::to_string(i), "web", 1 + i % 4), "g" + std::to_string(i % 3)), i));
  for (int i = 0; i < 6; ++i) f.desired.servers.push_back(server("db-" + std::to_string(i), "db", 2));
  return f;
}

TEST(PlannerIncremental, BladeFailureMatchesAFullReplan) {
  Fixture f = mediumFabric();
  Planner planner(f.desired, f.observed, f.current);
  const Plan placed = planner.plan(0);
  f.current = placed.next;
  const std::string victim = f.current.bindings.at("web-13");

  const PlanDelta delta = planner.bladeStateChanged(victim, BladeState::Fenced, 1);
  f.setState(victim, BladeState::Fenced);
  const Plan full = f.plan();

  EXPECT_EQ(planner.state().bindings, full.next.bindings);
  EXPECT_EQ(planner.state().borrowed, full.next.borrowed);
  EXPECT_FALSE(delta.placements.empty());
  for (const auto& pl : delta.placements) EXPECT_EQ(pl.from, victim);
  std::size_t fullMoves = 0;
  for (const auto& pl : full.placements) fullMoves += !pl.from.empty();
  EXPECT_EQ(delta.placements.size(), fullMoves);
  EXPECT_EQ(delta.steps.size(), full.steps.size());
}

TEST(PlannerIncremental, FailoverAndFailbackMatchAFullReplan) {
  Fixture f = mediumFabric();
  for (auto& p : f.desired.pools) p.failback = FailbackPolicy::Auto;
  Planner planner(f.desired, f.observed, f.current);
  const Plan placed = planner.plan(0);
  f.current = placed.next;
  const std::string victim = f.current.bindings.at("web-13");
  std::vector<std::string> onVictim;
  for (const auto& [s, b] : placed.next.bindings) {
    if (b == victim) onVictim.push_back(s);
  }
  ASSERT_GE(onVictim.size(), 2u);

  (void)planner.bladeStateChanged(victim, BladeState::Fenced, 1);
  f.setState(victim, BladeState::Fenced);
  const Plan down = f.apply();
  EXPECT_EQ(planner.state().bindings, down.next.bindings);
  EXPECT_EQ(planner.state().home, down.next.home);
  for (const auto& s : onVictim) EXPECT_EQ(down.next.home.at(s), victim) << s;

  const PlanDelta delta = planner.bladeStateChanged(victim, BladeState::Available, 2);
  f.setState(victim, BladeState::Available);
  const Plan back = f.plan();
  EXPECT_EQ(planner.state().bindings, back.next.bindings);
  EXPECT_EQ(planner.state().borrowed, back.next.borrowed);
  EXPECT_EQ(planner.state().home, back.next.home);
  EXPECT_TRUE(back.next.home.empty());
  for (const auto& s : onVictim) EXPECT_EQ(planner.bladeOf(s), victim) << s;
  EXPECT_EQ(delta.placements.size(), onVictim.size());
  EXPECT_EQ(delta.steps.size(), back.steps.size());
  // The round trip restores the placement and the pools' spare counts (which empty blade
  // is the spare may differ: designated spares are not reshuffled).
  EXPECT_EQ(back.next.bindings, placed.next.bindings);
  auto spares = [](const Plan& p, const std::string& pool) {
    return std::count_if(p.blades.begin(), p.blades.end(),
                         [&](const BladeAssignment& a) { return a.pool == pool && a.role == BladeRole::Spare; });
  };
  EXPECT_EQ(spares(back, "web"), 2);
  EXPECT_EQ(spares(back, "db"), 1);
  // And the incremental planner sees the same roles as the full plan.
  const Plan again = planner.plan(3);
  EXPECT_TRUE(again.steps.empty());
  for (const auto& a : back.blades) {
    EXPECT_EQ(assignment(again, a.blade).role, a.role) << a.blade;
    EXPECT_EQ(assignment(again, a.blade).pool, a.pool) << a.blade;
  }
}

TEST(PlannerIncremental, StrandedServersRestartOnReturningBladesLikeAFullReplan) {
  for (FailbackPolicy failback : {FailbackPolicy::Manual, FailbackPolicy::Auto}) {
    Fixture f = mediumFabric();
    for (auto& p : f.desired.pools) p.failback = failback;
    Planner planner(f.desired, f.observed, f.current);
    f.current = planner.plan(0).next;
    // Web loses blades until its spares and the borrowed blade are gone and servers are
    // stranded (displaced); then the blades come back one by one, in another order.
    std::vector<std::pair<std::string, BladeState>> changes;
    for (int i : {0, 1, 2, 3, 4, 5}) changes.emplace_back("c1-s" + std::to_string(i), BladeState::Fenced);
    for (int i : {3, 0, 5, 1, 4, 2}) changes.emplace_back("c1-s" + std::to_string(i), BladeState::Available);
    bool stranded = false;
    for (std::size_t i = 0; i < changes.size(); ++i) {
      const auto& [name, state] = changes[i];
      const PlanDelta delta = planner.bladeStateChanged(name, state, static_cast<TimeMs>(i + 1));
      f.setState(name, state);
      const Plan full = f.apply();
      const std::string at =
          std::string(failback == FailbackPolicy::Auto ? "auto " : "manual ") + name + " " + toString(state);
      const PlacementState st = planner.state();
      EXPECT_EQ(st.bindings, full.next.bindings) << at;
      EXPECT_EQ(st.borrowed, full.next.borrowed) << at;
      EXPECT_EQ(st.home, full.next.home) << at;
      EXPECT_EQ(st.displaced, full.next.displaced) << at;
      EXPECT_EQ(delta.steps.size(), full.steps.size()) << at;
      stranded |= !full.next.displaced.empty();
    }
    EXPECT_TRUE(stranded);  // the sequence did exercise displaced servers
    EXPECT_TRUE(planner.state().displaced.empty());
    EXPECT_EQ(planner.state().bindings.size(), f.desired.servers.size());
  }
}

TEST(PlannerIncremental, ReportsRoleChangesOfConsumedSpares) {
  Fixture f = mediumFabric();
  Planner planner(f.desired, f.observed, f.current);
  const Plan placed = planner.plan(0);
  const std::string victim = placed.next.bindings.at("web-13");
  const PlanDelta delta = planner.bladeStateChanged(victim, BladeState::Fenced, 1);
  bool sawMember = false;
  for (const auto& b : delta.blades) sawMember |= b.role == BladeRole::Member && b.pool == "web";
  EXPECT_TRUE(sawMember);
}

TEST(PlannerIncremental, SuspectBladeMovesNothing) {
  Fixture f = mediumFabric();
  Planner planner(f.desired, f.observed, f.current);
  const Plan placed = planner.plan(0);
  const PlanDelta delta = planner.bladeStateChanged(placed.next.bindings.at("web-0"), BladeState::Suspect, 1);
  EXPECT_TRUE(delta.placements.empty());
  EXPECT_TRUE(delta.steps.empty());
  EXPECT_EQ(planner.state().bindings, placed.next.bindings);
}

TEST(PlannerIncremental, RetriesWaitingServersWhenABladeReturns) {
  Fixture f;
  f.observed.blades = {blade("c1-s1", 4, 16_GiB, BladeState::Maintenance)};
  f.desired.pools = {pool("web", {"c1-s1"})};
  f.desired.servers = {server("web-01", "web", 2)};
  Planner planner(f.desired, f.observed, f.current);
  const Plan p = planner.plan(0);
  ASSERT_EQ(p.unplaceable.size(), 1u);
  const PlanDelta delta = planner.bladeStateChanged("c1-s1", BladeState::Available, 1);
  ASSERT_EQ(delta.placements.size(), 1u);
  EXPECT_EQ(delta.placements[0].blade, "c1-s1");
  EXPECT_EQ(planner.bladeOf("web-01"), "c1-s1");
}

TEST(PlannerIncremental, UnknownBladeIsAWarningAndChangesNothing) {
  Fixture f = mediumFabric();
  Planner planner(f.desired, f.observed, f.current);
  (void)planner.plan(0);
  const auto before = planner.state().bindings;
  const PlanDelta delta = planner.bladeStateChanged("nope", BladeState::Fenced, 1);
  ASSERT_EQ(delta.warnings.size(), 1u);
  EXPECT_EQ(delta.warnings[0], "blade 'nope' unknown");
  EXPECT_EQ(planner.state().bindings, before);
}

TEST(PlannerIncremental, CopiesAreIndependent) {
  Fixture f = mediumFabric();
  Planner planner(f.desired, f.observed, f.current);
  const Plan placed = planner.plan(0);
  Planner copy = planner;
  (void)copy.bladeStateChanged(placed.next.bindings.at("web-13"), BladeState::Fenced, 1);
  EXPECT_EQ(planner.state().bindings, placed.next.bindings);
  EXPECT_NE(copy.state().bindings, placed.next.bindings);
}

TEST(PlannerIncremental, PlanIsTheFreeFunction) {
  Fixture f = mediumFabric();
  Planner planner(f.desired, f.observed, f.current);
  EXPECT_EQ(planner.plan(0).next.bindings, f.plan().next.bindings);
}

// --- A seeded run of blade events: the planner loomd keeps (incremental) and a full plan
// of the same snapshot agree after every event, on the placement, the roles and the steps.

// A step with its dependencies by name, so steps of different outputs compare.
std::string stepKey(const std::vector<Step>& steps, std::size_t i) {
  auto name = [&](const Step& s) {
    return std::string(toString(s.kind)) + (s.server.empty() ? "" : ":" + s.server) + "@" + s.blade +
           (s.hypervisor ? std::string("/") + toString(*s.hypervisor) : "");
  };
  std::set<std::string> after;
  for (auto a : steps[i].after) after.insert(name(steps[a]));
  std::string out = name(steps[i]) + " after{";
  for (const auto& a : after) out += a + ",";
  return out + "}";
}

struct SeededRun {
  Fixture f;
  Planner planner;
  std::mt19937 rng;
  std::map<std::string, std::vector<std::string>> held;  // blade -> its steps, as the controller holds them
  Plan last;                                             // the latest full plan
  int foreigners = 0;

  bool restarts = false;  // with "an apply changes running servers' definitions" events

  explicit SeededRun(unsigned seed, bool withRestarts = false)
      : f(fabric()), planner(f.desired, f.observed, f.current), rng(seed), restarts(withRestarts) {
    adopt(planner.plan(0));
    full();
  }
  static Fixture fabric() {
    Fixture f = mediumFabric();
    for (auto& b : f.observed.blades) b.domains.emplace();
    f.desired.pools[0].failback = FailbackPolicy::Auto;
    return f;
  }
  PlacementState tracked;  // the placement as the controller keeps it: the full plan's, then each delta's changes
  template <class Output>
  void adopt(const Output& out) {
    std::map<std::string, std::vector<std::string>> fresh;
    for (std::size_t i = 0; i < out.steps.size(); ++i) fresh[out.steps[i].blade].push_back(stepKey(out.steps, i));
    if constexpr (std::is_same_v<Output, Plan>) {
      held = std::move(fresh);
      tracked = out.next;
    } else {
      for (const auto& b : out.stepBlades) held[b] = fresh[b];
      for (const auto& sp : out.servers) {
        if (sp.blade.empty())
          tracked.bindings.erase(sp.server);
        else
          tracked.bindings[sp.server] = sp.blade;
        if (sp.home.empty())
          tracked.home.erase(sp.server);
        else
          tracked.home[sp.server] = sp.home;
        if (sp.held)
          tracked.held.insert(sp.server);
        else
          tracked.held.erase(sp.server);
        if (sp.displaced)
          tracked.displaced.insert(sp.server);
        else
          tracked.displaced.erase(sp.server);
        if (sp.restart.empty())
          tracked.restart.erase(sp.server);
        else
          tracked.restart[sp.server] = sp.restart;
      }
      for (const auto& [b, p] : out.borrowed) tracked.borrowed[b] = p;
      for (const auto& b : out.returned) tracked.borrowed.erase(b);
    }
  }
  void full() {
    last = f.plan();
    f.current = last.next;
  }
  Blade& pick(const std::function<bool(const Blade&)>& ok) {
    std::vector<Blade*> c;
    for (auto& b : f.observed.blades)
      if (ok(b)) c.push_back(&b);
    if (c.empty()) return f.observed.blades[rng() % f.observed.blades.size()];
    return *c[rng() % c.size()];
  }
  // The agents of a random half of the blades carry out what they can: steps whose
  // dependencies ran, in plan order; then they report.
  void execute() {
    std::set<std::string> busy, changed;
    for (auto& b : f.observed.blades)
      if (rng() % 2) busy.insert(b.name);
    std::vector<char> done(last.steps.size(), 0);
    for (std::size_t i = 0; i < last.steps.size(); ++i) {
      const Step& s = last.steps[i];
      if (!busy.count(s.blade)) continue;
      bool ready = true;
      for (auto a : s.after) ready = ready && done[a];
      if (!ready) continue;
      done[i] = 1;
      Blade& b = f.bladeNamed(s.blade);
      changed.insert(b.name);
      if (s.kind == StepKind::PrepareHypervisor) {
        b.personality = s.hypervisor;
        planner.observePersonality(b.name, b.personality);
        continue;
      }
      auto& ds = *b.domains;
      auto it = std::find_if(ds.begin(), ds.end(), [&](const Domain& d) { return d.name == s.server; });
      if (s.kind == StepKind::Undefine) {
        if (it != ds.end()) ds.erase(it);
        continue;
      }
      if (it == ds.end()) it = ds.insert(ds.end(), Domain{s.server, DomainState::Defined});
      // The controller: a define where the server is bound ends its pending restart.
      if (s.kind == StepKind::Define && f.current.restart.count(s.server) &&
          f.current.bindings.at(s.server) == s.blade) {
        f.current.restart.erase(s.server);
        planner.redefined(s.server);
      }
      if (s.kind == StepKind::Start) it->state = DomainState::Running;
      if (s.kind == StepKind::Stop) it->state = DomainState::Shutoff;
    }
    for (const auto& name : changed) planner.observe(name, *f.bladeNamed(name).domains);
  }
  void setState(Blade& b, BladeState s, std::vector<std::string>& log) {
    b.state = s;
    log.push_back(b.name + " " + toString(s));
    adopt(planner.bladeStateChanged(b.name, s, 0));
  }
  void setReachable(Blade& b, bool r) {
    b.reachable = r;
    planner.observeReachable(b.name, r);
  }
  bool runsServers(const Blade& b) const {
    for (const auto& d : *b.domains)
      if ((d.state == DomainState::Running || d.state == DomainState::Paused) && d.name.rfind("foreign", 0) != 0)
        return true;
    return false;
  }
  // One event, as the controller would tell the planner about it.
  std::string step(std::vector<std::string>& log) {
    switch (rng() % (restarts ? 10 : 9)) {
      case 9: {  // an apply changes what some bound servers' domains hold: a full plan
        PlacementState p = planner.state();
        for (const auto& [server, blade] : p.bindings)
          if (rng() % 4 == 0) p.restart[server] = "memory 4GiB → 8GiB";
        for (const auto& [server, why] : p.restart) f.current.restart[server] = why;
        log.push_back(std::to_string(p.restart.size()) + " restarts pending");
        planner = Planner(f.desired, f.observed, p);
        adopt(planner.plan(0));
        return "restarts";
      }
      case 0:
      case 1:
      case 2:
        execute();
        adopt(planner.refresh(0));
        return "agents ran steps";
      case 3: {  // a healthy blade goes silent
        Blade& b = pick([](const Blade& b) { return b.state == BladeState::Available && b.reachable; });
        if (b.state != BladeState::Available) return "nothing";
        setReachable(b, false);
        setState(b, BladeState::Suspect, log);
        return "suspect";
      }
      case 4: {  // a silent blade fails, then is fenced: its domains ended with its lease
        Blade& b = pick([](const Blade& b) { return b.state == BladeState::Suspect || b.state == BladeState::Failed; });
        if (b.state == BladeState::Suspect) {
          setState(b, BladeState::Failed, log);
          return "failed";
        }
        if (b.state != BladeState::Failed) return "nothing";
        for (auto& d : *b.domains)
          if (d.state == DomainState::Running || d.state == DomainState::Paused) d.state = DomainState::Shutoff;
        planner.observe(b.name, *b.domains);
        setState(b, BladeState::Fenced, log);
        return "fenced";
      }
      case 5: {  // a silent blade is heard again; a fenced one comes back (sometimes still running one)
        Blade& b = pick([](const Blade& b) { return !b.reachable; });
        if (b.reachable) return "nothing";
        if (b.state == BladeState::Fenced) {
          if (!b.domains->empty() && rng() % 2) b.domains->front().state = DomainState::Running;
          planner.observe(b.name, *b.domains);
          setReachable(b, true);
          adopt(planner.refresh(0));
          return "returned";
        }
        setReachable(b, true);
        setState(b, BladeState::Available, log);
        return "heard again";
      }
      case 6: {  // a returned blade that runs nothing is trusted again
        Blade& b =
            pick([&](const Blade& b) { return b.state == BladeState::Fenced && b.reachable && !runsServers(b); });
        if (b.state != BladeState::Fenced || !b.reachable || runsServers(b)) return "nothing";
        setState(b, BladeState::Available, log);
        return "trusted";
      }
      case 7: {  // drain or undrain
        Blade& b = pick([](const Blade& b) {
          return b.reachable && (b.state == BladeState::Available || b.state == BladeState::Maintenance);
        });
        if (b.state == BladeState::Available && b.reachable)
          setState(b, BladeState::Maintenance, log);
        else if (b.state == BladeState::Maintenance)
          setState(b, BladeState::Available, log);
        else
          return "nothing";
        return "drain/undrain";
      }
      default: {  // a domain crashes, or one Loom never declared shows up
        Blade& b = pick([](const Blade& b) { return b.reachable && !b.domains->empty(); });
        if (!b.reachable) return "nothing";
        if (rng() % 3 == 0 || b.domains->empty()) {
          const std::string name = "foreign-" + std::to_string(++foreigners);
          b.domains->push_back({name, DomainState::Running});
          planner.observeDomain(b.name, name, DomainState::Running);
          adopt(planner.refresh(0));
          return "foreign domain";
        }
        auto& d = (*b.domains)[rng() % b.domains->size()];
        d.state = DomainState::Crashed;
        planner.observeDomain(b.name, d.name, d.state);
        adopt(planner.refresh(0));
        return "crash";
      }
    }
  }
};

struct SeededCounts {
  std::size_t moved = 0, waited = 0, cleaned = 0, restarted = 0, restartsWaited = 0;
};

SeededCounts agreeWithFullPlans(bool restarts) {
  SeededCounts counts;
  auto& [moved, waited, cleaned, restarted, restartsWaited] = counts;
  const unsigned seeds = std::getenv("LOOM_SEEDS") ? static_cast<unsigned>(std::atoi(std::getenv("LOOM_SEEDS"))) : 30;
  for (unsigned seed = 1; seed <= seeds; ++seed) {
    SeededRun run(seed, restarts);
    std::vector<std::string> log;
    for (int i = 0; i < 120; ++i) {
      const std::string what = run.step(log);
      run.full();
      std::string at = "seed " + std::to_string(seed) + " event " + std::to_string(i) + " (" + what + "); changes:";
      for (std::size_t l = log.size() > 6 ? log.size() - 6 : 0; l < log.size(); ++l) at += " " + log[l] + ";";
      const PlacementState st = run.planner.state();
      EXPECT_EQ(st.bindings, run.last.next.bindings) << at;
      EXPECT_EQ(st.borrowed, run.last.next.borrowed) << at;
      EXPECT_EQ(st.home, run.last.next.home) << at;
      EXPECT_EQ(st.displaced, run.last.next.displaced) << at;
      EXPECT_EQ(st.held, run.last.next.held) << at;
      EXPECT_EQ(st.restart, run.last.next.restart) << at;
      EXPECT_EQ(run.tracked.restart, st.restart) << at;
      if (::testing::Test::HasFailure()) return counts;
      // What the deltas said changed adds up to the placement.
      EXPECT_EQ(run.tracked.bindings, st.bindings) << at;
      EXPECT_EQ(run.tracked.home, st.home) << at;
      EXPECT_EQ(run.tracked.held, st.held) << at;
      EXPECT_EQ(run.tracked.displaced, st.displaced) << at;
      EXPECT_EQ(run.tracked.borrowed, st.borrowed) << at;
      // Roles: every blade's pool, and each pool's number of spares (which empty member is
      // the spare may differ: designated spares are not reshuffled).
      std::map<std::string, int> spares, fullSpares;
      const Plan again = Planner(run.planner).plan(0);
      for (const auto& a : again.blades) spares[a.pool] += a.role == BladeRole::Spare;
      for (const auto& a : run.last.blades) fullSpares[a.pool] += a.role == BladeRole::Spare;
      for (const auto& a : run.last.blades) EXPECT_EQ(assignment(again, a.blade).pool, a.pool) << at << " " << a.blade;
      EXPECT_EQ(spares, fullSpares) << at;
      // Steps: what the controller holds (each delta replacing its blades' steps) is the
      // full plan's.
      std::multiset<std::string> held, full;
      for (const auto& [b, steps] : run.held) held.insert(steps.begin(), steps.end());
      for (std::size_t s = 0; s < run.last.steps.size(); ++s) full.insert(stepKey(run.last.steps, s));
      EXPECT_EQ(held, full) << at;
      if (::testing::Test::HasFailure()) return counts;
      for (const auto& s : run.last.steps) {
        moved += s.kind == StepKind::Define && !s.after.empty();
        restarted += s.kind == StepKind::Stop && run.last.next.restart.count(s.server) &&
                     run.last.next.bindings.count(s.server) && run.last.next.bindings.at(s.server) == s.blade;
      }
      for (const auto& w : run.last.waiting) restartsWaited += w.reason.rfind("restart", 0) == 0;
      waited += run.last.waiting.size();
      cleaned += what == "returned";
    }
  }
  return counts;
}

TEST(PlannerIncremental, SeededEventsAgreeWithAFullPlan) {
  const SeededCounts c = agreeWithFullPlans(false);
  // The runs did exercise the rules that matter.
  EXPECT_GT(c.moved, 0u);
  EXPECT_GT(c.waited, 0u);
  EXPECT_GT(c.cleaned, 0u);
}

// The same, with applies that leave restarts pending (docs/SERVERS.md): whose turn it is in
// an anti-affinity group is the same incrementally as in a full plan.
TEST(PlannerIncremental, SeededEventsWithRestartsAgreeWithAFullPlan) {
  const SeededCounts c = agreeWithFullPlans(true);
  EXPECT_GT(c.restarted, 0u);
  EXPECT_GT(c.restartsWaited, 0u);
  EXPECT_GT(c.moved, 0u);
}

}  // namespace
}  // namespace loom::pool
