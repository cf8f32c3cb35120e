// The simulator's scenarios: the failure cases docs/FENCING.md argues one by one, and a
// chaos mix of them all with operator actions. Every plan is drawn from its own stream
// of the seed, so it does not depend on what the run does.
#include <algorithm>
#include <functional>
#include <map>

#include "tests/sim/Rng.h"
#include "tests/sim/Scenario.h"
#include "tests/sim/ScenarioBuilder.h"

namespace loom::sim {

const char* toString(Fault::Kind k) {
  switch (k) {
    case Fault::Kind::Cut:
      return "cut";
    case Fault::Kind::Degrade:
      return "degrade";
    case Fault::Kind::FreezeAgent:
      return "freeze-agent";
    case Fault::Kind::CrashAgent:
      return "crash-agent";
    case Fault::Kind::FreezeController:
      return "freeze-loomd";
    case Fault::Kind::CrashController:
      return "crash-loomd";
    case Fault::Kind::StoreFailing:
      return "store-failing";
    case Fault::Kind::Operator:
      return "operator";
    case Fault::Kind::ResignController:
      return "resign-loomd";
    case Fault::Kind::CutFromStore:
      return "cut-loomd-from-store";
    case Fault::Kind::CutFromBlades:
      return "cut-loomd-from-blades";
    case Fault::Kind::StoreOutage:
      return "store-quorum-lost";
  }
  return "?";
}

namespace {

using namespace scenarios;

void controllerFrozen(Builder& s) {
  // SIGSTOP of loomd for 3 leases, as issue 15 measured it.
  s.add(Fault::Kind::FreezeController, kSettledMs + s.rng().range(0, 10000), 3 * s.lease(), "loomd for 3 leases");
  s.finish();
}
void controllerDead(Builder& s) {
  s.add(Fault::Kind::CrashController, kSettledMs + s.rng().range(0, 10000), 60000, "loomd for 60 s");
  s.finish();
}
void controllerRestart(Builder& s) {
  const int n = static_cast<int>(s.rng().range(1, 3));
  std::int64_t t = kSettledMs;
  for (int i = 0; i < n; ++i) {
    t += s.rng().range(1000, 15000);
    const std::int64_t down = s.rng().range(100, 3000);
    s.add(Fault::Kind::CrashController, t, down, "loomd restarted");
    t += down;
  }
  s.finish();
}
void bladeCutOff(Builder& s) {
  s.isolateBlade(kSettledMs + s.rng().range(0, 10000), s.rng().range(s.lease() + 1000, 4 * s.lease()));
  s.finish();
}
void controllerMinority(Builder& s) {
  s.controllerWithMinority(kSettledMs + s.rng().range(0, 10000), s.rng().range(s.lease(), 5 * s.lease()));
  s.finish();
}
void evenSplit(Builder& s) {
  s.evenSplit(kSettledMs + s.rng().range(0, 10000), s.rng().range(s.lease(), 5 * s.lease()));
  s.finish();
}
void chassisCut(Builder& s) {
  s.chassisCut(kSettledMs + s.rng().range(0, 10000), s.rng().range(s.lease(), 5 * s.lease()));
  s.finish();
}
void bladeFrozen(Builder& s) {
  s.add(Fault::Kind::FreezeAgent, kSettledMs + s.rng().range(0, 10000), s.rng().range(s.lease() / 2, 4 * s.lease()), "")
      .node = s.randomBlade();
  s.plan().faults.back().label = s.name(s.plan().faults.back().node);
  s.finish();
}
void agentRestart(Builder& s) {
  const int n = static_cast<int>(s.rng().range(1, 4));
  for (int i = 0; i < n; ++i) {
    Fault& f = s.add(Fault::Kind::CrashAgent, kSettledMs + s.rng().range(0, 20000),
                     s.rng().chance(0.5) ? s.rng().range(50, 2000) : s.rng().range(s.lease(), 3 * s.lease()), "");
    f.node = s.randomBlade();
    f.label = s.name(f.node);
  }
  s.finish();
}
void controllerRestartInPartition(Builder& s) {
  const std::int64_t t = kSettledMs + s.rng().range(0, 5000);
  const std::int64_t length = s.rng().range(3 * s.lease(), 6 * s.lease());
  if (s.rng().chance(0.5))
    s.isolateBlade(t, length);
  else
    s.controllerWithMinority(t, length);
  s.add(Fault::Kind::CrashController, t + s.rng().range(0, 2 * s.lease()), s.rng().range(100, 5000),
        "loomd restarted in the partition");
  s.finish();
}
void operatorUnderLoss(Builder& s) {
  for (int i = 0; i < 12; ++i) s.operatorAction(kSettledMs + s.rng().range(0, 40000));
  for (int i = 0; i < 3; ++i) s.randomLinks(kSettledMs + s.rng().range(0, 40000), s.rng().range(500, 8000), true);
  Rng applies = Rng::derive(s.seed(), "reapply");
  for (int i = static_cast<int>(applies.range(1, 2)); i > 0; --i)
    s.reapply(kSettledMs + applies.range(0, 40000), applies);
  s.finish();
}

// Everything at once: 3 to 10 faults of every kind, overlapping, and operator actions.
void chaos(Builder& s) {
  auto& r = s.rng();
  const int faults = static_cast<int>(r.range(3, 10));
  const std::int64_t span = r.range(20000, 60000);
  auto duration = [&] { return r.chance(0.7) ? r.range(200, 3 * s.lease()) : r.range(3 * s.lease(), 8 * s.lease()); };
  for (int i = 0; i < faults; ++i) {
    const std::int64_t t = kSettledMs + r.range(0, span);
    switch (r.range(0, 12)) {
      case 0:
        s.isolateBlade(t, duration());
        break;
      case 1:
        s.controllerWithMinority(t, duration());
        break;
      case 2:
        s.evenSplit(t, duration());
        break;
      case 3:
        s.chassisCut(t, duration());
        break;
      case 4:
        s.controllerIsolated(t, duration());
        break;
      case 5:
        s.randomLinks(t, duration(), false);
        break;
      case 6:
        s.randomLinks(t, duration(), true);
        break;
      case 7: {
        Fault& f = s.add(Fault::Kind::FreezeAgent, t, duration(), "");
        f.node = s.randomBlade();
        f.label = s.name(f.node);
        break;
      }
      case 8: {
        Fault& f = s.add(Fault::Kind::CrashAgent, t, duration(), "");
        f.node = s.randomBlade();
        f.label = s.name(f.node);
        break;
      }
      case 9:
        s.add(Fault::Kind::FreezeController, t, duration(), "loomd");
        break;
      case 10:
        s.add(Fault::Kind::CrashController, t, r.range(100, 20000), "loomd");
        break;
      case 11:
        s.add(Fault::Kind::StoreFailing, t, r.range(100, 10000), "loomd's disk full");
        break;
      default:
        s.randomLinks(t, r.range(200, 2000), true);
        break;
    }
  }
  const int actions = static_cast<int>(r.range(0, 10));
  for (int i = 0; i < actions; ++i) s.operatorAction(kSettledMs + r.range(0, span));
  Rng applies = Rng::derive(s.seed(), "reapply");
  for (int i = static_cast<int>(applies.range(0, 2)); i > 0; --i)
    s.reapply(kSettledMs + applies.range(0, span), applies);
  s.finish();
}

struct Entry {
  const char* name;
  int minBlades, maxBlades;
  bool even;
  std::function<void(Builder&)> build;
  bool replicas = false;
};

const std::vector<Entry>& entries() {
  static const std::vector<Entry> list{
      {"chaos", 6, 9, false, chaos},
      {"controller-frozen", 6, 9, false, controllerFrozen},
      {"controller-dead", 6, 9, false, controllerDead},
      {"controller-restart", 6, 9, false, controllerRestart},
      {"blade-cut-off", 6, 9, false, bladeCutOff},
      {"controller-minority", 6, 9, false, controllerMinority},
      {"even-split", 6, 8, true, evenSplit},
      {"chassis-cut", 6, 9, false, chassisCut},
      {"blade-frozen", 6, 9, false, bladeFrozen},
      {"agent-restart", 6, 9, false, agentRestart},
      {"controller-restart-in-partition", 6, 9, false, controllerRestartInPartition},
      {"operator", 6, 9, false, operatorUnderLoss},
      // Replicas ("replicas" picks one of these per seed, half of them replicas-chaos).
      {"replicas-chaos", 6, 9, false, replicasChaos, true},
      {"leader-killed", 6, 9, false, leaderKilled, true},
      {"leader-frozen", 6, 9, false, leaderFrozen, true},
      {"leader-cut-from-store", 6, 9, false, leaderCutFromStore, true},
      {"store-quorum-lost", 6, 9, false, storeQuorumLost, true},
      {"leader-resigns", 6, 9, false, leaderResigns, true},
      {"leader-cut-from-blades", 6, 9, false, leaderCutFromBlades, true},
      {"leader-isolated", 6, 9, false, leaderIsolated, true},
      {"apply-during-takeover", 6, 9, false, applyDuringTakeover, true},
  };
  return list;
}

// The one-loomd scenarios (mixed's) or the replicas' (replicas'), in order.
std::vector<const Entry*> family(bool replicas) {
  std::vector<const Entry*> out;
  for (const auto& e : entries())
    if (e.replicas == replicas) out.push_back(&e);
  return out;
}

}  // namespace

const std::vector<std::string>& scenarioNames() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v{"mixed"};
    for (const auto* e : family(false)) v.push_back(e->name);
    v.emplace_back("replicas");
    for (const auto* e : family(true)) v.push_back(e->name);
    return v;
  }();
  return names;
}

bool makeScenario(const std::string& name, std::uint64_t seed, ScenarioPlan& out, std::string& error) {
  std::string chosen = name;
  if (name == "mixed" || name == "replicas") {
    // Half the family's chaos (its first), the rest spread over its named failure cases.
    Rng pick = Rng::derive(seed, "scenario");
    const auto list = family(name == "replicas");
    chosen = pick.chance(0.5)
                 ? list[0]->name
                 : list[static_cast<std::size_t>(pick.range(1, static_cast<std::int64_t>(list.size()) - 1))]->name;
  }
  for (const auto& e : entries()) {
    if (chosen != e.name) continue;
    Builder b(e.name, seed, e.minBlades, e.maxBlades, e.even, e.replicas);
    e.build(b);
    out = std::move(b.plan());
    return true;
  }
  error = "unknown scenario '" + name + "'";
  return false;
}

}  // namespace loom::sim
