// What one simulated run does: the fabric, the declarations, the network's temper, and
// the faults and operator actions, each at a virtual time. A scenario is a pure function
// of (name, seed): the same pair always gives the same plan.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "tests/sim/SimFactory.h"
#include "tests/sim/SimNetwork.h"

namespace loom::sim {

struct Fault {
  enum class Kind : std::uint8_t {
    Cut,               // links cut for `durationMs` (a partition)
    Degrade,           // links lossy for `durationMs`
    FreezeAgent,       // SIGSTOP of `node`'s agent, SIGCONT after `durationMs`
    CrashAgent,        // kill -9 of `node`'s agent, restarted after `durationMs` (its hypervisor keeps
                       // running)
    FreezeController,  // SIGSTOP of loomd (replicas: of replica `node`, -1: the one acting then)
    CrashController,   // kill -9 of loomd, restarted over the same store after `durationMs` (replicas: as above)
    StoreFailing,      // loomd's disk full for `durationMs`
    Operator,          // one API request (method, path, body)
    // Replicas only; `node` as for FreezeController.
    ResignController,  // a graceful stop (SIGTERM: the term ends, the lease is revoked), started again after
                       // `durationMs`
    CutFromStore,      // the replica's link to the store cut
    CutFromBlades,     // the replica's links to every blade cut (it keeps the store)
    StoreOutage,       // the store's quorum lost: nothing applied, no lease expires
  };
  Kind kind = Kind::Cut;
  std::int64_t at = 0;
  std::int64_t durationMs = 0;
  std::vector<std::pair<int, int>> links;  // Cut, Degrade
  bool hold = false;                       // Cut: the links keep what is sent (TCP retransmits), delivered when healed
  int node = 0;                            // FreezeAgent, CrashAgent; a replica (see above)
  std::string method, path, body;          // Operator
  bool stale = false;                      // Operator, replicas: sent to the last leader loomctl found, even frozen
  std::string label;                       // for the trace: "isolate c1-s2", "even split"
};
const char* toString(Fault::Kind k);

struct ScenarioPlan {
  std::string name;
  std::vector<BladeSpec> blades;  // node i+1 is blades[i]
  std::string declarations;       // YAML applied at the start
  NetworkProfile network;
  std::int64_t leaseMs = 5000;
  std::int64_t heartbeatMs = 1000;
  // Replicas: 0 is one loomd on its own store (every scenario but the replicas' ones);
  // 2 or 3 are loomd replicas on a simulated etcd (SimStore), the leader's etcd lease
  // asked for leaderTtlSeconds, granted at least storeMinTtlSeconds.
  int replicas = 0;
  std::int64_t leaderTtlSeconds = 1;
  std::int64_t storeMinTtlSeconds = 1;
  // Only takeovers (a leader killed, frozen, stopped or cut from the store; the operator):
  // no blade may then end a server by its own hand (issue 16: a takeover renews every
  // healthy blade's lease before it runs out). Invariant 7's judge alone would let the
  // first seconds of an outage pass.
  bool takeoversOnly = false;
  std::vector<Fault> faults;
  // When everything is healed (faults still active end, frozen processes resume, crashed
  // ones restart, drained blades are undrained); then the quiet period, at most quietMs.
  std::int64_t healAt = 60000;
  std::int64_t quietMs = 150000;
};

// Scenario names, "mixed" first: mixed picks one of the one-loomd scenarios per seed, and
// "replicas" one of the replicas' scenarios.
const std::vector<std::string>& scenarioNames();
// The plan for (name, seed); an unknown name is an error message instead.
bool makeScenario(const std::string& name, std::uint64_t seed, ScenarioPlan& out, std::string& error);

}  // namespace loom::sim
