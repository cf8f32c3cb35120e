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
    FreezeController,  // SIGSTOP of loomd
    CrashController,   // kill -9 of loomd, restarted over the same store after `durationMs`
    StoreFailing,      // loomd's disk full for `durationMs`
    Operator,          // one API request (method, path, body)
  };
  Kind kind = Kind::Cut;
  std::int64_t at = 0;
  std::int64_t durationMs = 0;
  std::vector<std::pair<int, int>> links;  // Cut, Degrade
  bool hold = false;                       // Cut: the links keep what is sent (TCP retransmits), delivered when healed
  int node = 0;                            // FreezeAgent, CrashAgent
  std::string method, path, body;          // Operator
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
  std::vector<Fault> faults;
  // When everything is healed (faults still active end, frozen processes resume, crashed
  // ones restart, drained blades are undrained); then the quiet period, at most quietMs.
  std::int64_t healAt = 60000;
  std::int64_t quietMs = 150000;
};

// Scenario names, "mixed" first: mixed picks one of the others per seed.
const std::vector<std::string>& scenarioNames();
// The plan for (name, seed); an unknown name is an error message instead.
bool makeScenario(const std::string& name, std::uint64_t seed, ScenarioPlan& out, std::string& error);

}  // namespace loom::sim
