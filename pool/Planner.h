// The planner: a pure function (desired, observed, current placement, now) -> plan.
// Nothing here reads a clock, does I/O or starts a thread; every decision is a value
// that tests and benchmarks can check without a daemon.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "pool/Model.h"

namespace loom::pool {

namespace detail {
class State;
}

// The placement state the controller persists between plans.
struct PlacementState {
  std::map<std::string, std::string> bindings;  // server -> blade it is bound to
  std::map<std::string, std::string> borrowed;  // blade -> pool it was lent to (from a spare pool)
  // Servers a failover left stopped because their pool says `failover: none`. The
  // planner does not place them again by itself (that would be failover after all); the
  // controller removes a server from here when an operator starts or moves it.
  std::set<std::string> held;
  // Servers a failover (of a fenced, retired or vanished blade, lent ones included) left
  // without a blade because nothing fit: down by a failure, not by anyone's choice. Each
  // plan places them like the failover they still are — home first (see `home`), then the
  // pool's spares, a blade borrowed from `borrow_from`, packing with `failover: pack` —
  // in priority order with everything else; spares are kept free from new placements
  // only. Unbound and powered on by definition; an entry ends when the server is placed,
  // powered off or deleted, or its pool now says `failover: none` (it is then `held`).
  // The controller removes a server from here when an operator moves it.
  std::set<std::string> displaced;
  // server -> the blade it ran on before a failover moved it off that (fenced) blade: where
  // it belongs. `failback: auto` moves it back once the blade takes servers again and has
  // room; with `failback: manual` it stays until an operator moves it (the controller then
  // drops the entry). A `displaced` server keeps its home too, and is placed there first
  // when the blade is back and has room, whatever the failback policy. Kept through later
  // failovers; dropped when the server is back home, is powered off or deleted, is held by
  // `failover: none`, or the blade is retired, vanishes or leaves the server's pool.
  std::map<std::string, std::string> home;
  // server -> why its domain must be restarted ("memory 28GiB → 20GiB"): an apply changed
  // what its definition holds (pool/ServerChange.h) while it was bound to a blade. Each
  // plan gives it `Stop` → `Define` (the new definition) → `Start` on the blade it is bound
  // to — at most one server of an anti-affinity group at a time, the next once the previous
  // runs again — or just `Define` → `Start` when it is not running. The controller removes
  // the entry when the blade has defined the new spec; a plan drops it when the server
  // leaves the blade (moved, failed over, powered off, deleted: it is defined afresh
  // wherever it starts next), and assumes it done on a blade that does not report.
  std::map<std::string, std::string> restart;
};

// How one blade relates to the pools after membership resolution.
enum class BladeRole : std::uint8_t {
  Unassigned,  // in no pool: "available"
  Member,      // a working member of `pool`
  Spare,       // one of `pool`'s N+M spares, kept free (or a member of a spare pool)
  Borrowed,    // lent from a spare pool to `pool` by failover
  Conflict,    // selected by two pools' match rules: left unassigned, see `reason`
};
const char* toString(BladeRole);

struct BladeAssignment {
  std::string blade;
  std::string pool;  // empty when Unassigned / Conflict
  BladeRole role = BladeRole::Unassigned;
  std::string reason;  // for Conflict: "selected by pools 'web' and 'db'"
};

struct Placement {
  std::string server;
  std::string blade;
  std::string from;  // previous blade when the server moved, else empty
};

struct Unplaceable {
  std::string server;
  std::string reason;  // "pool web: no blade with 8 free cores outside anti-affinity group web"
};

// One idempotent action for one agent. `after` lists indices (into the same steps vector)
// of steps that must have succeeded first, always earlier ones: a server moved off a live
// blade is defined on its new blade only after the stop on the old one; every Define on a
// blade waits for its PrepareHypervisor. The controller assigns operation ids.
struct Step {
  StepKind kind = StepKind::Define;
  std::string blade;
  std::string server;  // empty for PrepareHypervisor
  std::optional<Hypervisor> hypervisor;
  std::vector<std::size_t> after;
};

// A server bound to a blade that takes steps, whose start waits for a blade that does not
// (it reports the server running and is silent, not yet fenced): invariant 1.
struct Waiting {
  std::string server;
  std::string reason;  // "runs on c1-s3 (suspect): starts once it is stopped there or c1-s3 is fenced"
};

// A domain a blade reports that is no declared (or deleted) server: left alone.
struct ForeignDomain {
  std::string blade;
  std::string domain;
};

struct Plan {
  std::vector<BladeAssignment> blades;   // one per inventory blade, inventory order
  std::vector<Placement> placements;     // every server bound after the plan
  std::vector<Unplaceable> unplaceable;  // power-on servers that have no blade, with reasons
  // What every blade must do to run what it is bound to, from what it reports (or is
  // assumed to run): see pool/README.md, "Steps". The controller runs exactly these.
  std::vector<Step> steps;
  std::vector<Waiting> waiting;        // starts held back by a silent blade
  std::vector<ForeignDomain> foreign;  // undeclared domains on blades that take steps
  std::vector<std::string> warnings;   // conflicts and other things an operator should see
  PlacementState next;                 // the placement state once the steps have run
};

// Rules (see pool/README.md):
// - A blade belongs to one pool: explicit names first, then match rules; two pools'
//   rules selecting one blade is a Conflict. Borrowed blades stay with their borrower.
// - Placement: capacity (cores, memory), the pool's hypervisor, dedicated = whole blade,
//   anti-affinity groups, `spares` blades kept free, higher priority first. Only blades
//   in Available/Active/Spare states take new servers.
// - Existing bindings on healthy blades are kept. Bindings on Suspect/Failed blades are
//   kept and nothing moves (the blade may still run them: invariant 1). Servers on
//   Fenced/Retired/vanished blades are failed over by priority: pool spares, then a
//   blade borrowed from `borrow_from` (PrepareHypervisor step), then packing (failover:
//   pack), else Unplaceable; failover: none leaves them unbound. Servers on Maintenance
//   blades are evacuated (stop on the old blade before start on the new).
// - A failover that found nothing leaves the server `displaced` (PlacementState): every
//   later plan (and Planner::bladeStateChanged, when a blade becomes healthy) retries it on
//   the failover paths, home first. `spares` blades are kept free from new placements, not
//   from a server a failure took down.
// - Failback: a server failed over from a Fenced blade remembers it (PlacementState::home).
//   With `failback: auto`, once that blade takes servers again and has room, the server
//   moves back (stop before start, higher priority first, after every other placement of
//   the round; the blade it leaves may become the spare again). `failback: manual` moves
//   nothing. No home is kept for Maintenance evacuations or Retired/vanished blades.
//   A displaced server keeps its home and is placed there first when it fits.
// - Power-off servers hold no blade.
// - Steps come from the placement against what each blade reports (Blade::domains) or is
//   assumed to run: see pool/README.md, "Steps".
Plan plan(const Declarations& desired, const Inventory& observed, const PlacementState& current, TimeMs now);

// Capacity per pool (DESIGN.md invariant 6).
struct PoolCapacity {
  std::string pool;
  std::uint32_t blades = 0;          // members + spares + borrowed
  std::uint32_t spares = 0;          // spare blades it has now
  std::uint32_t sparesDeclared = 0;  // what `spares:` asks for
  std::uint64_t coresTotal = 0, coresUsed = 0;
  MiB memoryTotal = 0, memoryUsed = 0;
  std::uint32_t servers = 0;
  // How many simultaneous blade failures (worst case: the fullest blades) the pool
  // survives with every server running again, counting spares and what borrow_from
  // could lend.
  std::uint32_t survivableFailures = 0;
  bool sparesPromiseMet = true;  // survivableFailures >= sparesDeclared
  std::string warning;           // why not, when it is not met
};

// The planner with its indexed state kept between plans, for the controller's hot path:
// after plan(), a single blade state change is answered in time proportional to that
// blade's servers, not to the fabric. Construction indexes the snapshot (O(servers +
// blades)); copying is deep (benchmarks and capacity simulation use it). Not thread-safe:
// one owner, like the rest of the controller's state.
struct PlanDelta {
  std::vector<BladeAssignment> blades;   // blades whose role or pool changed
  std::vector<Placement> placements;     // servers bound to a new blade (`from`: old blade)
  std::vector<Unplaceable> unplaceable;  // servers that lost their blade and found none
  // The complete steps of every blade in `stepBlades` (inventory order), which replace
  // whatever steps those blades had before; blades not named keep theirs.
  std::vector<Step> steps;
  std::vector<std::string> stepBlades;
  std::vector<Waiting> waiting;        // of the blades in stepBlades
  std::vector<ForeignDomain> foreign;  // of the blades in stepBlades
  std::vector<std::string> warnings;
  std::map<std::string, std::string> borrowed;  // blades lent by this change: blade -> pool
  std::vector<std::string> returned;            // borrowed blades given back to their spare pool
  // Every server whose part of the PlacementState changed, as it is now: what the
  // controller persists without walking the whole placement.
  struct ServerPlacement {
    std::string server;
    std::string blade;  // empty: unbound
    std::string home;   // empty: none
    bool held = false;
    bool displaced = false;
    std::string restart;  // empty: no restart pending
  };
  std::vector<ServerPlacement> servers;
};

class Planner {
 public:
  Planner(const Declarations& desired, const Inventory& observed, const PlacementState& current);
  Planner(const Planner&);
  Planner& operator=(const Planner&);
  Planner(Planner&&) noexcept;
  Planner& operator=(Planner&&) noexcept;
  ~Planner();

  // The full plan for the snapshot, every blade's steps included; afterwards the planner
  // holds `Plan::next`, and assumes the steps run on blades it has no report from (those
  // with a report change through observe*). pool::plan() gives the same plan.
  Plan plan(TimeMs now);

  // One blade's observed state changed. Applies the same rules as plan() would on the
  // updated inventory with the planner's current state (its servers fail over, evacuate
  // or stay; what waits is retried: unplaceable servers — displaced ones as failovers —,
  // evacuations that did not fit, servers away from home with `failback: auto`; spares
  // are designated) and returns only what changed, with the steps of every blade marked
  // since the last output. Home and displaced changes show in state(), not in the delta.
  // An unknown blade is a warning, no-op.
  PlanDelta bladeStateChanged(const std::string& blade, BladeState state, TimeMs now);

  // What the controller learns about a blade's agent. Each only records it and marks the
  // blades whose steps it may change (the blade; blades bound to servers that started or
  // stopped running on it); the next output (bladeStateChanged, refresh) gives their steps.
  // An unknown blade is ignored (a full plan will include it). Idempotent.
  //   observe: the agent's whole report (registration, a changed domain list)
  //   observeDomain: one domain changed (a step's result); nullopt: gone (undefined)
  //   observePersonality: the hypervisor it runs now (a prepare-hypervisor step's result)
  //   observeReachable: whether steps reach it now (see Blade::reachable)
  void observe(const std::string& blade, const std::vector<Domain>& domains);
  void observeDomain(const std::string& blade, const std::string& name, std::optional<DomainState> state);
  void observePersonality(const std::string& blade, std::optional<Hypervisor> personality);
  void observeReachable(const std::string& blade, bool reachable);
  // The blade the server is bound to now holds its current definition (a Define of the
  // current spec succeeded there): its pending restart, if any, is over. The next output
  // gives the steps of the blades this changes. Unknown servers are ignored. Idempotent.
  void redefined(const std::string& server);
  // Marks the blade: its steps are in the next output (say, a retry window closed).
  void touch(const std::string& blade);
  // The steps of every blade marked since the last output, and nothing else.
  PlanDelta refresh(TimeMs now);
  // The state the planner has for the blade (what bladeStateChanged last said), if known.
  std::optional<BladeState> bladeState(const std::string& blade) const;

  // The placement state as of the last call (what the controller persists).
  PlacementState state() const;
  // The blade the server is bound to, or empty.
  std::string bladeOf(const std::string& server) const;

 private:
  friend Plan plan(const Declarations&, const Inventory&, const PlacementState&, TimeMs);
  explicit Planner(std::unique_ptr<detail::State> state);
  std::unique_ptr<detail::State> state_;
};

// Whether `server` may be moved onto `blade` now: the blade belongs to the server's pool
// (member, spare, or borrowed by it), takes servers (available/active/spare), can run the
// pool's hypervisor, and has room for it — cores, memory, dedicated, anti-affinity —
// with the server's current binding set aside. Returns why not, or nullopt when it fits.
std::optional<std::string> checkMove(const Declarations& desired, const Inventory& observed,
                                     const PlacementState& current, const std::string& server,
                                     const std::string& blade);

std::vector<PoolCapacity> capacity(const Declarations& desired, const Inventory& observed,
                                   const PlacementState& current);

}  // namespace loom::pool
