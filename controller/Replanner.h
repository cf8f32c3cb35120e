// The placement and the plan: which blade each server is bound to, the borrowed blades,
// homes, held and displaced servers, pending restarts (pool::PlacementState), each blade's role, why a
// server has no blade — and the steps every blade needs, which the Reconciler runs as
// they are (one plan: controller/README.md). A full pool::plan for declarations, new
// inventory and recovery; for a blade event (health, fence, trust, drain, a domain report,
// a step's result) the pool::Planner the last full plan built, kept and told. Whatever it
// decides is durable before anyone acts on it: after a crash the restarted controller
// drives the same bindings, so a server is never started in two places.
//
// Core thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "controller/BladeRegistry.h"
#include "controller/ControllerOptions.h"
#include "controller/DesiredState.h"
#include "controller/EventLog.h"
#include "controller/FailureDetector.h"
#include "controller/Journal.h"
#include "pool/Planner.h"
#include "protocol/Messages.h"

namespace loom::controller {

class Replanner {
 public:
  Replanner(const ControllerOptions& options, DesiredState& desired, const BladeRegistry& registry,
            const FailureDetector& detector, Journal& journal, EventLog& events)
      : options_(options),
        desired_(desired),
        registry_(registry),
        detector_(detector),
        journal_(journal),
        events_(events) {}

  // After a restart: the placement as stored.
  void restore(StoredState& st);

  // Something the plan depends on changed (declarations, inventory, health, admin state):
  // a full plan is due, at once or after the debounce (replanMinIntervalMs).
  void markDirty(std::int64_t now, bool atOnce = false);
  bool due(std::int64_t now) const { return dirty_ && now - lastPlanAt_ >= options_.replanMinIntervalMs; }
  bool dirty() const { return dirty_; }

  // Steps for the reconciler: the complete steps of each blade named (a full plan names
  // every blade), `after` indexing `steps`.
  struct Steps {
    std::vector<pool::Step> steps;
    std::vector<std::string> blades;
    std::vector<pool::ForeignDomain> foreign;
  };
  // The full plan of the current state, persisted with the identities handed out for it;
  // nullopt (and due again) when the store failed. `planOut`: the plan as the API shows it
  // (planText).
  std::optional<Steps> replan(std::int64_t now, std::string* planOut = nullptr);

  // A blade event for the kept planner: its health, admin state or whether steps reach
  // it changed (bladeChanged); what it reports changed (observe: domains, personality);
  // its steps are wanted again (touch). Recorded; react() plans them.
  void bladeChanged(const std::string& blade);
  void observe(const std::string& blade, const std::string* domain = nullptr);
  void touch(const std::string& blade);
  // The incremental plans of what was recorded since the last call, each persisted before
  // it is returned, in order. Nothing while a full plan is due (it supersedes them); a
  // store failure makes one due.
  std::vector<Steps> react(std::int64_t now);
  // The plan `declarations` would get, changing nothing (dry runs); `restarts`: the
  // restarts the apply would add (restartsFor).
  pool::Plan preview(const pool::Declarations& declarations, std::int64_t now, double* seconds = nullptr,
                     const std::map<std::string, std::string>* restarts = nullptr) const;

  // Restarts (PlacementState::restart): of the servers an apply changes (server -> why, from
  // pool::restartReason), those bound to a blade now, whose running definition is old; a
  // reason joins one already pending. restartChange adds them to the apply's change;
  // restart() adopts them once it is durable (the full plan that follows gives the steps).
  std::map<std::string, std::string> restartsFor(const std::map<std::string, std::string>& reasons) const;
  void restartChange(const std::map<std::string, std::string>& restarts, Change& change) const;
  void restart(const std::map<std::string, std::string>& restarts);
  // A Define of the server's current spec succeeded on `blade`: if it is bound there, its
  // pending restart is over (recorded with the next batch; the planner told).
  void redefined(const std::string& server, const std::string& blade);
  // Why the server's domain needs a restart, or null.
  const std::string* restartPending(const std::string& server) const;

  // An operator's move, checked (why not, or nullopt) and then carried out once the
  // change (moveChange) is durable: the server belongs on `to` now, no failback undoes it.
  std::optional<std::string> checkMove(const std::string& server, const std::string& to) const;
  Change moveChange(const std::string& server, const std::string& to) const;
  void move(const std::string& server, const std::string& to);
  // Deleted servers: their held, home and displaced entries go (forgetChange, then forget).
  void forgetChange(const std::vector<std::string>& servers, Change& change) const;
  void forget(const std::vector<std::string>& servers);

  const pool::PlacementState& placement() const { return placement_; }
  const std::string* bladeOf(const std::string& server) const;
  const std::vector<std::string>& serversOn(const std::string& blade) const;
  const pool::BladeAssignment* role(const std::string& blade) const;
  const std::map<std::string, pool::BladeAssignment>& roles() const { return roles_; }
  const std::string* unplaceable(const std::string& server) const;
  // What the API and the planner call the blade's state: admin state, then health, then
  // spare/active/available from the placement.
  pool::BladeState displayState(const std::string& blade) const;
  // The same from the blade's record, health, role and servers, looked up by the caller.
  static pool::BladeState displayState(const KnownBlade* k, pool::BladeState health, const pool::BladeAssignment* role,
                                       const std::vector<std::string>& servers);
  pool::Inventory inventory() const;
  std::vector<pool::PoolCapacity> capacity() const;

  struct Counters {
    std::uint64_t plans = 0, failovers = 0;
    double secondsSum = 0, secondsLast = 0;
  };
  const Counters& counters() const { return counters_; }

 private:
  void bind(const std::string& server, const std::string& blade);
  void unbind(const std::string& server);
  // The class of state the planner works with: retired, maintenance, or the health.
  pool::BladeState plannerState(const std::string& blade) const;
  // Persists what the delta changed of the placement and adopts it; false: the store failed.
  bool persist(const pool::PlanDelta& delta);
  // An event for every move (failover, failback, off a drained or retired blade, the
  // rest), unplaceable and warning events; roles and unplaceable kept. `homeBefore`: the
  // homes before the plan (a server away from home; a move there is a failback).
  void tell(const std::vector<pool::Placement>& placements, const std::vector<pool::BladeAssignment>& blades,
            const std::vector<pool::Unplaceable>& unplaceable, const std::vector<std::string>& warnings,
            const std::vector<pool::Step>& steps, bool complete, const std::map<std::string, std::string>& homeBefore);
  // The event of a move that is not a failover (info).
  void tellMove(const pool::Placement& pl, const std::map<std::string, std::string>& homeBefore);

  const ControllerOptions& options_;
  DesiredState& desired_;
  const BladeRegistry& registry_;
  const FailureDetector& detector_;
  Journal& journal_;
  EventLog& events_;
  pool::PlacementState placement_;
  std::unordered_map<std::string, std::vector<std::string>> byBlade_;  // blade -> servers bound to it
  std::map<std::string, pool::BladeAssignment> roles_;                 // blade -> its assignment in the latest plan
  std::map<std::string, std::string> unplaceable_;                     // server -> reason
  std::set<std::string> seenWarnings_;
  std::unique_ptr<pool::Planner> planner_;  // built by the last full plan, kept and told since
  std::set<std::string> changedBlades_;     // bladeChanged since the last react()
  bool dirty_ = true;
  std::int64_t lastPlanAt_ = -1'000'000'000;
  Counters counters_;
};

// A blade as the planner takes it from what its agent reported (name, place, size,
// hypervisors, personality); its state is the caller's.
pool::Blade plannerBlade(const std::string& name, const protocol::BladeInventory& inventory);

// The plan as the API shows it (apply, delete, their dry runs): one JSON object's text,
// {"placements":[...],"steps":[...],"unplaceable":[...],"warnings":[...]}, written
// with RapidJSON: an apply of 10,000 servers shows 20,000 steps, and a nlohmann tree of
// them and its dump() were a fifth of the request (docs/PERFORMANCE.md, "Issue 14").
std::string planText(const pool::Plan& p);

}  // namespace loom::controller
