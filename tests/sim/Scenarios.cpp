// The simulator's scenarios: the failure cases docs/FENCING.md argues one by one, and a
// chaos mix of them all with operator actions. Every plan is drawn from its own stream
// of the seed, so it does not depend on what the run does.
#include <algorithm>
#include <functional>
#include <map>

#include "tests/sim/Rng.h"
#include "tests/sim/Scenario.h"

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

// Two chassis: c1 holds the first half (rounded up), c2 the rest. Pool web runs on c1,
// pool db on c2, each with a spare, as in tests/e2e/chaos.py.
struct Fabric {
  int blades = 0;
  std::vector<int> c1, c2;  // node ids
};

std::string declarations(Rng& rng) {
  const int app = static_cast<int>(rng.range(1, 3));
  const int cache = static_cast<int>(rng.range(1, 3));
  return R"(kind: Partition
name: prod
---
kind: Network
name: front
partition: prod
---
kind: IdentityPool
name: default
macs: 52:54:00:40:00:00-52:54:00:40:ff:ff
uuids: 4c4f4f4d-0000-0000-0005-000000000000/16
---
kind: Pool
name: web
partition: prod
hypervisor: kvm
blades: {match: {chassis: c1}}
spares: 1
failover: spare
---
kind: Pool
name: db
partition: prod
hypervisor: kvm
blades: {match: {chassis: c2}}
spares: 1
failover: pack
---
kind: Server
name: web
replicas: 2
partition: prod
pool: web
vcpus: 2
memory: 2GiB
nics: [{network: front}]
anti_affinity: web
priority: 100
power: on
---
kind: Server
name: app
replicas: )" +
         std::to_string(app) +
         R"(
partition: prod
pool: web
vcpus: 1
memory: 1GiB
nics: [{network: front}]
power: on
---
kind: Server
name: db
replicas: 2
partition: prod
pool: db
vcpus: 2
memory: 4GiB
nics: [{network: front}]
anti_affinity: db
priority: 200
power: on
---
kind: Server
name: cache
replicas: )" +
         std::to_string(cache) +
         R"(
partition: prod
pool: db
vcpus: 1
memory: 1GiB
nics: [{network: front}]
power: on
---
kind: Server
name: cold
partition: prod
pool: db
vcpus: 1
memory: 1GiB
power: off
)";
}

std::vector<std::string> serverNames(const std::string& decls) {
  // Names as the replicas expand them (NAME-i), read back from the text written above.
  std::vector<std::string> out;
  std::size_t pos = 0;
  while ((pos = decls.find("kind: Server\nname: ", pos)) != std::string::npos) {
    pos += 19;
    const std::string name = decls.substr(pos, decls.find('\n', pos) - pos);
    const auto next = decls.find("kind:", pos);
    const auto rep = decls.find("replicas: ", pos);
    if (rep != std::string::npos && rep < next) {
      const int n = std::stoi(decls.substr(rep + 10));
      for (int i = 0; i < n; ++i) out.push_back(name + "-" + std::to_string(i));
    } else {
      out.push_back(name);
    }
  }
  return out;
}

class Builder {
 public:
  Builder(const std::string& name, std::uint64_t seed, int minBlades, int maxBlades, bool even = false,
          bool replicas = false)
      : rng_(Rng::derive(seed, "plan")), seed_(seed) {
    plan_.name = name;
    int n = static_cast<int>(rng_.range(minBlades, maxBlades));
    if (even && n % 2) ++n;
    const int c1 = (n + 1) / 2;
    for (int i = 0; i < n; ++i) {
      const bool first = i < c1;
      BladeSpec b;
      b.chassis = first ? "c1" : "c2";
      b.slot = first ? i + 1 : i - c1 + 1;
      b.name = b.chassis + "-s" + std::to_string(b.slot);
      plan_.blades.push_back(b);
      (first ? fabric_.c1 : fabric_.c2).push_back(i + 1);
    }
    fabric_.blades = n;
    plan_.declarations = declarations(rng_);
    servers_ = serverNames(plan_.declarations);
    // Half the seeds keep one TCP connection's order (no reordering, no duplicates);
    // the other half reorder and duplicate, as a relay pair can.
    plan_.network.fifo = rng_.chance(0.5);
    if (replicas) {
      // From a stream of its own: the draws above are the one-loomd scenarios' too.
      Rng r = Rng::derive(seed, "replica-plan");
      plan_.replicas = static_cast<int>(r.range(2, 3));
      plan_.leaderTtlSeconds = 1;  // ElectionOptions' default
      // etcd's minimum lease: 1.5 election timeouts, rounded up (2 s at etcd's defaults).
      plan_.storeMinTtlSeconds = r.range(1, 2);
    }
  }

  Rng& rng() { return rng_; }
  std::uint64_t seed() const { return seed_; }
  const Fabric& fabric() const { return fabric_; }
  ScenarioPlan& plan() { return plan_; }
  std::int64_t lease() const { return plan_.leaseMs; }
  int blades() const { return fabric_.blades; }
  int randomBlade() { return static_cast<int>(rng_.range(1, fabric_.blades)); }
  // Replicas: their network nodes come after the blades', the store's after them.
  int replicaNode(int r) const { return fabric_.blades + 1 + r; }
  int storeNode() const { return fabric_.blades + 1 + plan_.replicas; }
  std::string name(int node) const { return plan_.blades[static_cast<std::size_t>(node - 1)].name; }

  // Every link between `side` and the rest (node 0, loomd, included in whichever set it is in;
  // with replicas, node 0 stands for all of them).
  std::vector<std::pair<int, int>> across(const std::vector<int>& side) const {
    const int last = plan_.replicas ? replicaNode(plan_.replicas - 1) : fabric_.blades;
    std::vector<char> in(static_cast<std::size_t>(last + 1), 0);
    for (int n : side) in[static_cast<std::size_t>(n)] = 1;
    if (plan_.replicas && in[0])
      for (int r = 0; r < plan_.replicas; ++r) in[static_cast<std::size_t>(replicaNode(r))] = 1;
    std::vector<std::pair<int, int>> out;
    for (int a = plan_.replicas ? 1 : 0; a <= last; ++a)
      for (int b = a + 1; b <= last; ++b) {
        if (a > fabric_.blades && b > fabric_.blades) continue;  // replica to replica: not on the fabric
        if (in[static_cast<std::size_t>(a)] != in[static_cast<std::size_t>(b)]) out.emplace_back(a, b);
      }
    return out;
  }
  std::vector<int> shuffledBlades() {
    std::vector<int> v;
    for (int i = 1; i <= fabric_.blades; ++i) v.push_back(i);
    rng_.shuffle(v);
    return v;
  }

  Fault& add(Fault::Kind kind, std::int64_t at, std::int64_t duration, std::string label) {
    Fault f;
    f.kind = kind;
    f.at = at;
    f.durationMs = duration;
    f.label = std::move(label);
    f.hold = rng_.chance(0.5);
    plan_.faults.push_back(std::move(f));
    return plan_.faults.back();
  }
  void cut(std::int64_t at, std::int64_t duration, std::vector<std::pair<int, int>> links, std::string label) {
    add(Fault::Kind::Cut, at, duration, std::move(label)).links = std::move(links);
  }

  // Partition shapes (docs/FENCING.md's scenarios).
  void isolateBlade(std::int64_t at, std::int64_t duration) {
    const int b = randomBlade();
    cut(at, duration, across({b}), "isolate " + name(b));
  }
  void controllerWithMinority(std::int64_t at, std::int64_t duration) {
    auto v = shuffledBlades();
    const int k = static_cast<int>(rng_.range(0, (fabric_.blades - 1) / 2));  // strictly fewer than half
    std::vector<int> side{0};
    std::string label = "loomd with a minority {";
    for (int i = 0; i < k; ++i) {
      side.push_back(v[static_cast<std::size_t>(i)]);
      label += (i ? "," : "") + name(v[static_cast<std::size_t>(i)]);
    }
    cut(at, duration, across(side), label + "}");
  }
  void evenSplit(std::int64_t at, std::int64_t duration) {
    auto v = shuffledBlades();
    std::vector<int> side{0};
    std::string label = "even split: loomd with {";
    for (int i = 0; i < fabric_.blades / 2; ++i) {
      side.push_back(v[static_cast<std::size_t>(i)]);
      label += (i ? "," : "") + name(v[static_cast<std::size_t>(i)]);
    }
    cut(at, duration, across(side), label + "}");
  }
  void chassisCut(std::int64_t at, std::int64_t duration) {
    const bool first = rng_.chance(0.5);
    const auto& chassis = first ? fabric_.c1 : fabric_.c2;
    std::vector<std::pair<int, int>> links;
    for (int b : chassis) links.emplace_back(0, b);
    cut(at, duration, links,
        std::string("relay pair of chassis ") + (first ? "c1" : "c2") + " lost (cut from loomd, not from peers)");
  }
  void controllerIsolated(std::int64_t at, std::int64_t duration) {
    cut(at, duration, across({0}), "loomd cut from every blade");
  }
  void randomLinks(std::int64_t at, std::int64_t duration, bool degrade) {
    std::vector<std::pair<int, int>> links;
    std::string label;
    const int count = static_cast<int>(rng_.range(1, 4));
    for (int i = 0; i < count; ++i) {
      int a = static_cast<int>(rng_.range(0, fabric_.blades)), b = randomBlade();
      if (a == b) continue;
      links.emplace_back(std::min(a, b), std::max(a, b));
      label += (label.empty() ? "" : ",") + (a == 0 ? std::string("loomd") : name(a)) + "-" + name(b);
    }
    if (links.empty()) return;
    if (degrade)
      add(Fault::Kind::Degrade, at, duration, "lossy " + label).links = links;
    else
      cut(at, duration, links, "cut " + label);
  }

  void operatorAction(std::int64_t at) {
    Fault& f = add(Fault::Kind::Operator, at, 0, "");
    const auto roll = rng_.range(0, 99);
    const std::string server = rng_.pick(servers_);
    const int b = randomBlade();
    f.method = "POST";
    if (roll < 25) {
      f.path = "/v1/blades/" + name(b) + "/drain";
    } else if (roll < 45) {
      f.path = "/v1/blades/" + name(b) + "/undrain";
    } else if (roll < 70) {
      f.path = "/v1/servers/" + server + "/move";
      f.body = "{\"to\": \"" + name(b) + "\"}";
    } else if (roll < 85) {
      f.path = "/v1/servers/" + server + "/stop";
    } else {
      f.path = "/v1/servers/" + server + "/start";
    }
    f.label = f.path;
  }

  // Replicas: as operatorAction, but server cold is changed only by apply (the
  // acknowledged-change judge follows its power). `stale`: sent to the last leader
  // loomctl found, frozen or not.
  void replicaOperatorAction(std::int64_t at, bool stale) {
    Fault& f = add(Fault::Kind::Operator, at, 0, "");
    f.stale = stale;
    const auto roll = rng_.range(0, 99);
    std::string server = rng_.pick(servers_);
    if (server == "cold") server = servers_.front();
    const int b = randomBlade();
    f.method = "POST";
    if (roll < 25) {
      f.path = "/v1/blades/" + name(b) + "/drain";
    } else if (roll < 50) {
      f.path = "/v1/blades/" + name(b) + "/undrain";
    } else if (roll < 75) {
      f.path = "/v1/servers/" + server + "/move";
      f.body = "{\"to\": \"" + name(b) + "\"}";
    } else if (roll < 85) {
      f.path = "/v1/servers/" + server + "/stop";
    } else {
      f.path = "/v1/servers/" + server + "/start";
    }
    f.label = f.path + (stale ? " (to the last leader seen)" : "");
  }

  // The operator applies the declarations again: unchanged (which must change nothing), or
  // with server cold's power turned on. From its own stream, so adding these left every
  // other draw of a seed's plan as it was.
  void reapply(std::int64_t at, Rng& r) {
    Fault& f = add(Fault::Kind::Operator, at, 0, "");
    f.method = "POST";
    f.path = "/v1/apply";
    f.body = plan_.declarations;
    if (r.chance(0.5)) {
      const auto cold = f.body.rfind("power: off");
      f.body.replace(cold, 10, "power: on");
      f.label = "/v1/apply (cold powered on)";
    } else {
      f.label = "/v1/apply (unchanged)";
    }
  }

  // Sets healAt after the last fault ends.
  void finish(std::int64_t margin = 2000) {
    std::int64_t end = 20000;
    for (const auto& f : plan_.faults) end = std::max(end, f.at + f.durationMs);
    plan_.healAt = end + margin;
    std::stable_sort(plan_.faults.begin(), plan_.faults.end(),
                     [](const Fault& a, const Fault& b) { return a.at < b.at; });
  }

 private:
  Rng rng_;
  std::uint64_t seed_;
  ScenarioPlan plan_;
  Fabric fabric_;
  std::vector<std::string> servers_;
};

// Faults start once the fabric has settled (every server placed and running: ~10 s).
constexpr std::int64_t kSettledMs = 15000;

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

// ---------------------------------------------------------------------------------------
// Replicas (issue 16): 2 or 3 loomd on a simulated etcd. A fault's node -1 is "the replica
// that leads when the fault begins".

constexpr int kLeader = -1;

// The operator during a takeover: 2 to 5 requests within 4 s of `t`, some to the replica
// loomctl last found leading (frozen, gone), some applies that flip server cold's power.
void operatorDuringTakeover(Builder& s, std::int64_t t) {
  Rng applies = Rng::derive(s.seed(), "takeover-applies");
  const int n = static_cast<int>(s.rng().range(2, 5));
  for (int i = 0; i < n; ++i) {
    const std::int64_t at = t + s.rng().range(0, 4000);
    if (applies.chance(0.4)) {
      s.reapply(at, applies);
      s.plan().faults.back().stale = applies.chance(0.3);
    } else {
      s.replicaOperatorAction(at, s.rng().chance(0.3));
    }
  }
}

void leaderKilled(Builder& s) {
  s.plan().takeoversOnly = true;
  std::int64_t t = kSettledMs + s.rng().range(0, 10000);
  const int kills = static_cast<int>(s.rng().range(1, 2));
  for (int i = 0; i < kills; ++i) {
    const std::int64_t down = s.rng().chance(0.5) ? s.rng().range(200, 3000) : s.rng().range(3000, 20000);
    s.add(Fault::Kind::CrashController, t, down, "the leader (kill -9)").node = kLeader;
    if (s.rng().chance(0.5)) operatorDuringTakeover(s, t);
    t += down + s.rng().range(1000, 10000);
  }
  s.finish();
}

void leaderFrozen(Builder& s) {
  s.plan().takeoversOnly = true;
  // Past its etcd lease (a standby takes over), or shorter (it wakes up still leading).
  const std::int64_t t = kSettledMs + s.rng().range(0, 10000);
  const std::int64_t ttl = s.plan().leaderTtlSeconds * 1000;
  const std::int64_t length =
      s.rng().chance(0.8) ? s.rng().range(ttl + ttl / 2, 3 * s.lease()) : s.rng().range(50, ttl);
  s.add(Fault::Kind::FreezeController, t, length, "the leader (SIGSTOP)").node = kLeader;
  // loomctl had found it leading: its requests wait in the frozen replica's socket.
  for (int i = static_cast<int>(s.rng().range(1, 3)); i > 0; --i)
    s.replicaOperatorAction(t + s.rng().range(1, std::max<std::int64_t>(2, length - 1)), true);
  if (s.rng().chance(0.5)) operatorDuringTakeover(s, t);
  s.finish();
}

void leaderCutFromStore(Builder& s) {
  s.plan().takeoversOnly = true;
  const std::int64_t t = kSettledMs + s.rng().range(0, 10000);
  // Usually the leader; now and then a standby (it must not take over while the leader renews).
  const int who = s.rng().chance(0.8) ? kLeader : static_cast<int>(s.rng().range(0, s.plan().replicas - 1));
  s.add(Fault::Kind::CutFromStore, t, s.rng().range(300, 4 * s.lease()), who == kLeader ? "the leader" : "a replica")
      .node = who;
  if (s.rng().chance(0.5)) operatorDuringTakeover(s, t);
  s.finish();
}

void storeQuorumLost(Builder& s) {
  // No replica can renew or commit: whoever led stops acting, every blade holds its servers
  // under its peers' shield (docs/FENCING.md), and a leader is elected when quorum returns.
  const std::int64_t t = kSettledMs + s.rng().range(0, 10000);
  s.add(Fault::Kind::StoreOutage, t,
        s.rng().chance(0.3) ? s.rng().range(200, 2000) : s.rng().range(2000, 5 * s.lease()), "etcd");
  if (s.rng().chance(0.5)) operatorDuringTakeover(s, t);
  s.finish();
}

void leaderResigns(Builder& s) {
  s.plan().takeoversOnly = true;
  std::int64_t t = kSettledMs + s.rng().range(0, 10000);
  for (int i = static_cast<int>(s.rng().range(1, 2)); i > 0; --i) {
    const std::int64_t down = s.rng().range(300, 15000);
    s.add(Fault::Kind::ResignController, t, down, "the leader (SIGTERM)").node = kLeader;
    if (s.rng().chance(0.5)) operatorDuringTakeover(s, t);
    t += down + s.rng().range(1000, 8000);
  }
  s.finish();
}

void leaderCutFromBlades(Builder& s) {
  // It keeps the store, so it keeps leading: the blades hold under the outage rule.
  const std::int64_t t = kSettledMs + s.rng().range(0, 10000);
  s.add(Fault::Kind::CutFromBlades, t, s.rng().range(s.lease() / 2, 4 * s.lease()), "the leader").node = kLeader;
  s.finish();
}

void leaderIsolated(Builder& s) {
  // Cut from the store and from every blade at once, past its lease: a standby takes over
  // while the old leader may still send. What it sent into the cut (TCP keeps it, on half
  // the seeds) reaches the blades after the new leader's epoch: the agents refuse it.
  const std::int64_t t = kSettledMs + s.rng().range(0, 10000);
  const std::int64_t length = s.rng().range(1500, 4 * s.lease());
  const bool hold = s.rng().chance(0.7);
  s.add(Fault::Kind::CutFromStore, t, length, "the leader (isolated)").node = kLeader;
  s.plan().faults.back().hold = hold;
  s.add(Fault::Kind::CutFromBlades, t, length, "the leader (isolated)").node = kLeader;
  s.plan().faults.back().hold = hold;
  if (s.rng().chance(0.5)) operatorDuringTakeover(s, t);
  s.finish();
}

void applyDuringTakeover(Builder& s) {
  s.plan().takeoversOnly = true;
  const std::int64_t t = kSettledMs + s.rng().range(0, 10000);
  switch (s.rng().range(0, 2)) {
    case 0:
      s.add(Fault::Kind::CrashController, t, s.rng().range(500, 10000), "the leader (kill -9)").node = kLeader;
      break;
    case 1:
      s.add(Fault::Kind::FreezeController, t, s.rng().range(1500, 3 * s.lease()), "the leader (SIGSTOP)").node =
          kLeader;
      break;
    default:
      s.add(Fault::Kind::ResignController, t, s.rng().range(500, 10000), "the leader (SIGTERM)").node = kLeader;
      break;
  }
  operatorDuringTakeover(s, t);
  operatorDuringTakeover(s, t + s.rng().range(0, 3000));
  s.finish();
}

// Everything at once: replica faults, store faults, blade faults and the operator.
void replicasChaos(Builder& s) {
  auto& r = s.rng();
  const int faults = static_cast<int>(r.range(3, 8));
  const std::int64_t span = r.range(20000, 50000);
  const int replicas = s.plan().replicas;
  auto who = [&] { return r.chance(0.7) ? kLeader : static_cast<int>(r.range(0, replicas - 1)); };
  auto duration = [&] { return r.chance(0.7) ? r.range(200, 2 * s.lease()) : r.range(2 * s.lease(), 6 * s.lease()); };
  for (int i = 0; i < faults; ++i) {
    const std::int64_t t = kSettledMs + r.range(0, span);
    switch (r.range(0, 11)) {
      case 0:
        s.add(Fault::Kind::CrashController, t, r.range(100, 15000), "a replica (kill -9)").node = who();
        break;
      case 1:
        s.add(Fault::Kind::FreezeController, t, duration(), "a replica (SIGSTOP)").node = who();
        break;
      case 2:
        s.add(Fault::Kind::ResignController, t, r.range(100, 15000), "a replica (SIGTERM)").node = who();
        break;
      case 3:
        s.add(Fault::Kind::CutFromStore, t, duration(), "a replica").node = who();
        break;
      case 4:
        s.add(Fault::Kind::CutFromBlades, t, duration(), "a replica").node = who();
        break;
      case 5:
        s.add(Fault::Kind::StoreOutage, t, duration(), "etcd");
        break;
      case 6: {
        const int rep = static_cast<int>(r.range(0, replicas - 1));
        s.add(Fault::Kind::Degrade, t, duration(),
              "lossy link loomd-" + std::string(1, static_cast<char>('a' + rep)) + " to etcd")
            .links = {{s.replicaNode(rep), s.storeNode()}};
        break;
      }
      case 7:
        s.isolateBlade(t, duration());
        break;
      case 8: {
        Fault& f = s.add(Fault::Kind::CrashAgent, t, duration(), "");
        f.node = s.randomBlade();
        f.label = s.name(f.node);
        break;
      }
      case 9: {
        Fault& f = s.add(Fault::Kind::FreezeAgent, t, duration(), "");
        f.node = s.randomBlade();
        f.label = s.name(f.node);
        break;
      }
      case 10:
        s.randomLinks(t, duration(), true);
        break;
      default:
        operatorDuringTakeover(s, t);
        break;
    }
  }
  const int actions = static_cast<int>(r.range(0, 6));
  for (int i = 0; i < actions; ++i) s.replicaOperatorAction(kSettledMs + r.range(0, span), r.chance(0.2));
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
