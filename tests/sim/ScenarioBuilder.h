// What the simulator's scenario files share (tests/sim/Scenarios.cpp, the one-loomd
// scenarios; tests/sim/ReplicaScenarios.cpp, the replicas'): the fabric's declarations and
// the Builder that draws a scenario's plan from its seed.
#pragma once

#include <algorithm>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "tests/sim/Rng.h"
#include "tests/sim/Scenario.h"

namespace loom::sim::scenarios {

// Two chassis: c1 holds the first half (rounded up), c2 the rest. Pool web runs on c1,
// pool db on c2, each with a spare, as in tests/e2e/chaos.py.
struct Fabric {
  int blades = 0;
  std::vector<int> c1, c2;  // node ids
};

inline std::string declarations(Rng& rng) {
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

inline std::vector<std::string> serverNames(const std::string& decls) {
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

// The replicas' scenarios (ReplicaScenarios.cpp).
void leaderKilled(Builder& s);
void leaderFrozen(Builder& s);
void leaderCutFromStore(Builder& s);
void storeQuorumLost(Builder& s);
void leaderResigns(Builder& s);
void leaderCutFromBlades(Builder& s);
void leaderIsolated(Builder& s);
void applyDuringTakeover(Builder& s);
void replicasChaos(Builder& s);

}  // namespace loom::sim::scenarios
