// Internal to pool/: the planner's indexed working state. Everything the hot loops touch
// is an integer index into a flat vector; names are looked up once, at the edges
// (building from Declarations/Inventory, and writing the Plan back out).
//
// The parts (see pool/README.md), each in its own file:
//   Membership.cpp  — which pool each blade belongs to, and in which role
//   Feasibility.cpp — the filters a blade must pass to take a server, and the
//                     operator-readable explanation when none does
//   FitIndex.cpp    — the ranking: best fit by free cores, through per-pool buckets
//   Placement.cpp   — ordering of requests, normal placement, the failover paths
//   Steps.cpp       — turning binding changes into agent steps
//   Planner.cpp     — building the state, the plan()/Planner entry points, output
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "pool/Planner.h"

namespace loom::pool::detail {

constexpr int kNone = -1;

struct PoolSlot {
  std::string name;
  bool sparePool = false;
  std::optional<Hypervisor> hypervisor;
  std::uint32_t sparesWanted = 0;
  FailoverPolicy failover = FailoverPolicy::Spare;
  FailbackPolicy failback = FailbackPolicy::Manual;
  std::string borrowFromName;
  int borrowFrom = kNone;          // index of the spare pool, when it exists
  std::vector<int> blades;         // every blade of the pool: members, spares, borrowed
  std::vector<int> spares;         // designated spares (healthy and empty), kept free
  // Fit index: placeable blades bucketed by free cores (bucket i holds blades with
  // exactly i free cores), so best fit is a scan upwards from the request's size.
  std::vector<std::vector<int>> buckets;
  // Scratch of one placement round: blades this pool opened for failover, tried first
  // so one dead blade's servers land together rather than opening a spare each.
  std::vector<int> openedSpares;
  std::vector<int> openedBorrowed;
};

struct BladeSlot {
  std::string name;
  std::string chassis;
  std::string model;
  std::uint32_t cores = 0;
  MiB memory = 0;
  HypervisorSet hypervisors;
  std::optional<Hypervisor> personality;
  BladeState state = BladeState::Available;
  int pool = kNone;
  BladeRole role = BladeRole::Unassigned;
  std::string reason;               // conflict reason
  int lender = kNone;               // spare pool a Borrowed blade came from
  std::int64_t freeCores = 0;       // signed: kept bindings may overcommit after a change
  std::int64_t freeMemory = 0;
  std::vector<int> servers;         // bound servers
  std::vector<int> groups;          // anti-affinity groups of bound servers (a multiset)
  bool dedicated = false;           // holds a dedicated server: takes nothing else
  int bucket = kNone;               // position in the pool's fit index
  int bucketPos = kNone;
  std::int64_t prepareStep = -1;    // index of this output's PrepareHypervisor step
  // Servers whose home this blade is, so a blade coming back finds them without a walk
  // of every server. May hold stale entries: ServerSlot::home is the truth.
  std::vector<int> homed;
};

struct ServerSlot {
  std::string name;
  std::string poolName;
  int pool = kNone;
  std::uint32_t vcpus = 1;
  MiB memory = 0;
  int priority = 0;
  int group = kNone;
  bool dedicated = false;
  bool powerOn = true;
  int blade = kNone;
  bool held = false;                // left stopped by failover: none
  bool pending = false;             // unplaceable, retried when capacity appears
  // Lost its blade to a failover that found nothing (PlacementState::displaced): unbound,
  // and placed on the failover paths (home first, spares, borrow, pack) whenever it is
  // retried. Cleared by bind().
  bool displaced = false;
  // The blade a failover moved it off (fenced), where failback returns it; kNone when it
  // is where it belongs. Only a bound or displaced server has one (PlacementState::home).
  int home = kNone;
};

enum class RequestKind : std::uint8_t { New, Failover, Evacuate };

struct Request {
  int server = kNone;
  RequestKind kind = RequestKind::New;
  int from = kNone;                 // blade index it leaves (kNone: none, or vanished)
  std::string fromName;             // the blade's name, also for vanished blades
};

// What one planning round produced, before it is shaped into a Plan or PlanDelta.
struct Output {
  std::vector<Step> steps;
  std::vector<Unplaceable> unplaceable;
  std::vector<std::string> warnings;
  std::vector<std::pair<int, std::string>> moved;  // server, blade it left ("" when new)
  std::vector<int> touchedBlades;                  // role or pool may have changed
  std::vector<int> borrowed;                       // blades lent this round
  std::vector<int> returned;                       // borrowed blades given back
  std::vector<int> prepared;                       // blades with prepareStep set
};

class State {
 public:
  State(const Declarations& desired, const Inventory& observed, const PlacementState& current);

  // --- the model, indexed
  std::vector<PoolSlot> pools;
  std::vector<BladeSlot> blades;
  std::vector<ServerSlot> servers;
  std::vector<std::string> groupNames;
  std::unordered_map<std::string, int> poolIndex, bladeIndex, serverIndex;

  // Built from `current` by the constructor: bindings that need a decision, and steps
  // for servers that are gone or powered off.
  std::vector<Request> initial;
  Output initialOutput;

  // --- Membership.cpp
  void resolveMembership(const Declarations& desired, const PlacementState& current,
                         std::vector<std::string>& warnings);
  // Designates healthy empty members (last in inventory order first) as spares until the
  // pool has what it declares. Deterministic and stable across replans.
  void topUpSpares(int pool, Output& out);
  // A Borrowed blade with no servers goes back to its spare pool.
  void returnIfEmpty(int blade, Output& out);

  // --- FitIndex.cpp
  bool placeable(const BladeSlot& b) const;
  void reindex(int blade);
  int bestFit(int pool, int server) const;
  int bestFitAmong(const std::vector<int>& candidates, int server) const;
  int bestEmptyBlade(int pool, int server) const;  // for dedicated servers

  // --- binding bookkeeping
  void bind(int server, int blade);
  void unbind(int server);

  // --- Placement.cpp
  void placeAll(std::vector<Request> requests, Output& out);
  std::vector<int> pendingList;     // servers marked pending (may hold stale entries)
  // Moves the candidates (servers with a home, bound elsewhere and not moved this round)
  // back home where their pool says `failback: auto` and the home takes them, in
  // placement order. A server that does not fit stays and keeps its home.
  void failBack(std::vector<int> candidates, Output& out);
  // Home bookkeeping (see ServerSlot::home).
  void setHome(int server, int blade);
  void clearHome(int server) { servers[server].home = kNone; }
  void clearHomesAt(int blade);          // the blade will not take its servers back
  std::vector<int> homedAt(int blade);   // servers whose home it is (compacts the list)

  // --- Planner.cpp
  // The incremental rule set for one blade's state change (see Planner::bladeStateChanged).
  void changeBladeState(int blade, BladeState state, Output& out);

  // --- Feasibility.cpp
  std::string explainNoBlade(int server) const;
  std::string explainNoFailover(int server) const;

  // --- Steps.cpp
  void emitStart(int server, int blade, std::int64_t afterStop, Output& out);
  std::int64_t emitStop(const std::string& blade, const std::string& server, Output& out);

  // Shapes
  Plan toPlan(Output& out) const;
  PlanDelta toDelta(Output& out) const;
  PlacementState placementState() const;
  void touch(int blade, Output& out) { out.touchedBlades.push_back(blade); }
  BladeAssignment assignment(int blade) const;

 private:
  bool placesBefore(int a, int b) const;  // the placement order of two servers
  int placeNormally(int server) const;
  int placeFailover(int server, Output& out);
  // The server's home when it may go there now: failback: auto, or a displaced server.
  int homeTarget(int server) const;
  void claimHome(int blade, Output& out);
  void moveFromLiveBlade(int server, int to, const std::string& fromName, Output& out);
  int takeSpare(int pool, int server, Output& out);
  int borrowBlade(int pool, int server, Output& out);
  void addToIndex(int blade);
  void removeFromIndex(int blade);
};

// Feasibility filters, in the order they are applied; None: the blade fits.
enum class Reject : std::uint8_t { None, State, Hypervisor, Dedicated, Cores, Memory, AntiAffinity };
bool takesServers(BladeState s);
bool failsOver(BladeState s);     // Fenced/Retired: its servers may run elsewhere
bool holdsBindings(BladeState s); // Suspect/Failed: may still run its servers
Reject checkBlade(const BladeSlot& b, const PoolSlot& p, const ServerSlot& s);
bool hasGroup(const BladeSlot& b, int group);

}  // namespace loom::pool::detail
