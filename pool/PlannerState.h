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
//   Steps.cpp       — the steps: bindings against what each blade reports
//   Planner.cpp     — building the state, the plan()/Planner entry points, output
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
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
  int borrowFrom = kNone;   // index of the spare pool, when it exists
  std::vector<int> blades;  // every blade of the pool: members, spares, borrowed
  std::vector<int> spares;  // designated spares (healthy and empty), kept free
  // Fit index: placeable blades bucketed by free cores (bucket i holds blades with
  // exactly i free cores), so best fit is a scan upwards from the request's size.
  std::vector<std::vector<int>> buckets;
  // Scratch of one placement round: blades this pool opened for failover, tried first
  // so one dead blade's servers land together rather than opening a spare each.
  std::vector<int> openedSpares;
  std::vector<int> openedBorrowed;
};

// A few blade indices without a heap allocation for the common case: most servers have a
// domain on one blade, during a move on two.
class BladeSet {
 public:
  void add(int b) {
    if (contains(b)) return;
    if (first_ == kNone)
      first_ = b;
    else if (second_ == kNone)
      second_ = b;
    else
      more_.push_back(b);
  }
  void remove(int b) {
    if (first_ == b)
      first_ = kNone;
    else if (second_ == b)
      second_ = kNone;
    else
      std::erase(more_, b);
  }
  bool contains(int b) const {
    return first_ == b || second_ == b || std::find(more_.begin(), more_.end(), b) != more_.end();
  }
  template <class F>
  void forEach(F&& f) const {
    if (first_ != kNone) f(first_);
    if (second_ != kNone) f(second_);
    for (int b : more_) f(b);
  }

 private:
  int first_ = kNone, second_ = kNone;
  std::vector<int> more_;
};

// A domain on a blade: a declared server's (by index) or another name (deleted or
// foreign, an index into State::otherNames). Small: 100,000 of them are copied around.
struct DomainSlot {
  int server = kNone;
  int other = kNone;
  DomainState state = DomainState::Defined;
};

// Running, paused or shutting down: the domain holds the server's identity on that blade.
inline bool live(DomainState s) {
  return s == DomainState::Running || s == DomainState::Paused || s == DomainState::ShuttingDown;
}

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
  std::string reason;          // conflict reason
  int lender = kNone;          // spare pool a Borrowed blade came from
  std::int64_t freeCores = 0;  // signed: kept bindings may overcommit after a change
  std::int64_t freeMemory = 0;
  std::vector<int> servers;  // bound servers
  std::vector<int> groups;   // anti-affinity groups of bound servers (a multiset)
  bool dedicated = false;    // holds a dedicated server: takes nothing else
  int bucket = kNone;        // its bucket in the pool's fit index (free cores)
  // What it runs: its agent's report, or (not `reported`) what the planner assumes.
  bool reported = false;
  bool reachable = true;  // steps reach its agent (Blade::reachable)
  std::vector<DomainSlot> domains;
  bool stale = false;  // in State::staleBlades: its steps may have changed
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
  bool held = false;     // left stopped by failover: none
  bool pending = false;  // unplaceable, retried when capacity appears
  // Lost its blade to a failover that found nothing (PlacementState::displaced): unbound,
  // and placed on the failover paths (home first, spares, borrow, pack) whenever it is
  // retried. Cleared by bind().
  bool displaced = false;
  // The blade a failover moved it off (fenced), where failback returns it; kNone when it
  // is where it belongs. Only a bound or displaced server has one (PlacementState::home).
  int home = kNone;
  std::string restart;   // why its domain needs a restart (PlacementState::restart), or empty
  BladeSet definedOn;    // blades that report a domain of it (see domainAt)
  bool changed = false;  // in State::changedServers
};

// The placement order of a server as two numbers (smaller places first), kept in one
// contiguous vector: sorting 100,000 requests compares these, not the servers' slots.
struct PlaceKey {
  std::uint64_t high = 0;  // priority (higher first), dedicated first, vcpus (more first)
  std::uint64_t low = 0;   // memory (more first)
};
PlaceKey placeKey(const ServerSlot& s);

// Flags over the servers, cleared in time proportional to what was set: an incremental
// plan must not pay for the fabric.
class ServerMarks {
 public:
  void resize(std::size_t n) { flags_.assign(n, 0); }
  bool operator[](int i) const { return flags_[static_cast<std::size_t>(i)] != 0; }
  void set(int i) {
    if (flags_[static_cast<std::size_t>(i)]) return;
    flags_[static_cast<std::size_t>(i)] = 1;
    set_.push_back(i);
  }
  void clear() {
    for (int i : set_) flags_[static_cast<std::size_t>(i)] = 0;
    set_.clear();
  }

 private:
  std::vector<char> flags_;
  std::vector<int> set_;
};

enum class RequestKind : std::uint8_t { New, Failover, Evacuate };

struct Request {
  int server = kNone;
  RequestKind kind = RequestKind::New;
  int from = kNone;      // blade index it leaves (kNone: none, or vanished)
  std::string fromName;  // the blade's name, also for vanished blades
};

// What one planning round produced, before it is shaped into a Plan or PlanDelta.
struct Output {
  std::vector<Step> steps;
  std::vector<int> stepBlades;  // blades whose complete steps `steps` holds
  std::vector<Waiting> waiting;
  std::vector<ForeignDomain> foreign;
  std::vector<Unplaceable> unplaceable;
  std::vector<std::string> warnings;
  std::vector<std::pair<int, std::string>> moved;  // server, blade it left ("" when new)
  std::vector<int> touchedBlades;                  // role or pool may have changed
  std::vector<int> borrowed;                       // blades lent this round
  std::vector<int> returned;                       // borrowed blades given back
  // Evacuations that did not fit: server, blade it stays on, the warning (settle keeps
  // those still true at the end).
  std::vector<std::tuple<int, int, std::string>> stuck;
};

class State {
 public:
  State(const Declarations& desired, const Inventory& observed, const PlacementState& current);

  // --- the model, indexed
  std::vector<PoolSlot> pools;
  std::vector<BladeSlot> blades;
  std::vector<ServerSlot> servers;
  std::vector<PlaceKey> placeKeys;  // of servers[i]: placesBefore
  std::vector<std::string> groupNames;
  std::vector<std::vector<int>> groupMembers;  // anti-affinity group -> its servers
  int restarts = 0;                            // servers with a restart pending
  // The restart of `server` (pending, live where it is bound) may go now: empty; else why
  // it waits (at most one server of an anti-affinity group restarts at a time).
  std::string restartWaits(int server) const;
  // The blades of the group's servers with a restart pending: their steps may change.
  void markRestartGroup(int group);
  void clearRestart(int server);
  std::unordered_map<std::string, int> poolIndex, bladeIndex, serverIndex;
  // Deleted servers (Declarations::deleted, and servers bound in `current` that are no
  // longer declared): their domains are stopped and undefined.
  std::unordered_set<std::string> deleted;
  // Names of domains that are no declared server, each once.
  std::vector<std::string> otherNames;
  std::unordered_map<std::string, int> otherIndex;
  int otherName(const std::string& name);
  const std::string& nameOf(const DomainSlot& d) const {
    return d.server != kNone ? servers[d.server].name : otherNames[d.other];
  }
  std::vector<int> staleBlades;  // blades whose steps the next output must give
  // Servers whose binding, home, held or displaced mark may have changed since the last
  // output (PlanDelta::servers).
  std::vector<int> changedServers;
  void markServer(int server) {
    if (building || servers[server].changed) return;
    servers[server].changed = true;
    changedServers.push_back(server);
  }
  // Steps emitted for blades without a report change what they are assumed to run (off
  // for a planner that is used once and dropped: pool::plan).
  bool assumeStepsRun = true;
  bool building = true;  // in the constructor: bind() leaves the fit index alone

  // Built from `current` by the constructor: bindings that need a decision, and steps
  // for servers that are gone or powered off.
  std::vector<Request> initial;
  Output initialOutput;

  // --- Membership.cpp
  void resolveMembership(const Declarations& desired, const PlacementState& current,
                         std::vector<std::string>& warnings);
  // The pool's spares are its last healthy empty members in inventory order, as many as it
  // declares (`spares`): a function of the state, not of how it came about, so the full
  // and the incremental plan agree. Changes of role are touched.
  void designateSpares(int pool, Output& out);
  // A Borrowed blade with no servers goes back to its spare pool.
  void returnIfEmpty(int blade, Output& out);

  // --- FitIndex.cpp
  bool placeable(const BladeSlot& b) const;
  void reindex(int blade);
  int bestFit(int pool, int server) const;
  int bestFitAmong(const std::vector<int>& candidates, int server) const;
  int bestEmptyBlade(int pool, int server) const;  // for dedicated servers

  // Servers that may be placed by any later round, as a full plan would retry them:
  // unbound and waiting (pending), stuck on a blade they should leave (an evacuation that
  // did not fit), away from home. Each may hold stale entries; the slots are the truth.
  std::vector<int> stuckList, awayList;
  // The requests a full plan would make for those, besides `requested` ones.
  void retryRequests(std::vector<Request>& requests, const ServerMarks& requested);
  std::vector<int> awayFromHome(const ServerMarks& requested);
  ServerMarks requested;  // scratch of one planning round: servers with a request

  // --- binding bookkeeping
  void bind(int server, int blade);
  void unbind(int server);

  // --- Placement.cpp
  void placeAll(std::vector<Request> requests, Output& out);
  // placeAll, failBack of the servers away from home, empty borrowed blades (of `emptied`
  // and the touched ones) returned, spares designated in `pools` and the pools of touched
  // blades; again with the retries until nothing moves.
  void settle(std::vector<Request> requests, std::vector<int> pools, std::vector<int> emptied, Output& out);
  std::vector<int> pendingList;  // servers marked pending (may hold stale entries)
  // Moves the candidates (servers with a home, bound elsewhere and not moved this round)
  // back home where their pool says `failback: auto` and the home takes them, in
  // placement order. A server that does not fit stays and keeps its home.
  void failBack(std::vector<int> candidates, Output& out);
  // Home bookkeeping (see ServerSlot::home).
  void setHome(int server, int blade);
  void clearHome(int server) {
    servers[server].home = kNone;
    markServer(server);
  }
  void clearHomesAt(int blade);         // the blade will not take its servers back
  std::vector<int> homedAt(int blade);  // servers whose home it is (compacts the list)

  // --- Planner.cpp
  // The incremental rule set for one blade's state change (see Planner::bladeStateChanged).
  void changeBladeState(int blade, BladeState state, Output& out);

  // --- Feasibility.cpp
  std::string explainNoBlade(int server) const;
  std::string explainNoFailover(int server) const;

  // --- Steps.cpp
  // The complete steps of `blades` (and of the blades their starts wait for), in the
  // order of pool/README.md, "Steps"; steps emitted for blades without a report are
  // assumed to run. Clears every stale mark.
  void emitSteps(const std::vector<int>& blades, Output& out);
  void markStale(int blade);
  // Marks the blades bound to servers that run on `blade`: whether they may start depends
  // on it.
  void markWatchers(int blade);
  // The server's domain on a blade, or null.
  const DomainSlot* domainAt(int blade, int server) const;
  // Replaces one domain's state on a blade (nullopt: gone), keeping definedOn and the marks.
  void setDomain(int blade, int server, const std::string& name, std::optional<DomainState> state);
  void setDomains(int blade, const std::vector<Domain>& domains);
  bool takesSteps(const BladeSlot& b) const;
  // It runs exactly what it is bound to: no steps, whatever else holds.
  bool settled(int blade) const;
  // Whether the domains it reports may still run (a fenced blade out of reach runs nothing).
  bool domainsCount(const BladeSlot& b) const;

  // Shapes
  Plan toPlan(Output& out) const;
  PlanDelta toDelta(Output& out) const;
  void listChangedServers(PlanDelta& delta);
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
bool failsOver(BladeState s);      // Fenced/Retired: its servers may run elsewhere
bool holdsBindings(BladeState s);  // Suspect/Failed: may still run its servers
Reject checkBlade(const BladeSlot& b, const PoolSlot& p, const ServerSlot& s);
bool hasGroup(const BladeSlot& b, int group);

}  // namespace loom::pool::detail
