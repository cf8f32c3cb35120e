// The planner: a pure function (desired, observed, current placement, now) -> plan.
// Nothing here reads a clock, does I/O or starts a thread; every decision is a value
// that tests and benchmarks can check without a daemon.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "pool/Model.h"

namespace loom::pool {

// The placement state the controller persists between plans.
struct PlacementState {
  std::map<std::string, std::string> bindings;  // server -> blade it is bound to
  std::map<std::string, std::string> borrowed;  // blade -> pool it was lent to (from a spare pool)
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
  std::string pool;    // empty when Unassigned / Conflict
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

enum class StepKind : std::uint8_t {
  PrepareHypervisor,  // give `blade` the `hypervisor` personality (repurpose)
  Define,             // define `server` on `blade`
  Start,              // start `server` on `blade`
  Stop,               // stop `server` on `blade` (graceful, then destroy)
  Undefine,           // remove `server`'s definition from `blade`
};
const char* toString(StepKind);

// One idempotent action for one agent. `after` lists indices (into Plan::steps) of steps
// that must have succeeded first, e.g. a move from a live blade starts on the new blade
// only after the stop on the old one. The controller assigns operation ids.
struct Step {
  StepKind kind = StepKind::Define;
  std::string blade;
  std::string server;  // empty for PrepareHypervisor
  std::optional<Hypervisor> hypervisor;
  std::vector<std::size_t> after;
};

struct Plan {
  std::vector<BladeAssignment> blades;  // one per inventory blade, inventory order
  std::vector<Placement> placements;    // every server bound after the plan
  std::vector<Unplaceable> unplaceable; // power-on servers that have no blade, with reasons
  std::vector<Step> steps;              // actions to reach `next` from the current state
  std::vector<std::string> warnings;    // conflicts and other things an operator should see
  PlacementState next;                  // the placement state once the steps have run
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
// - Power-off servers hold no blade.
Plan plan(const Declarations& desired, const Inventory& observed, const PlacementState& current,
          TimeMs now);

// Capacity per pool (DESIGN.md invariant 6).
struct PoolCapacity {
  std::string pool;
  std::uint32_t blades = 0;         // members + spares + borrowed
  std::uint32_t spares = 0;         // spare blades it has now
  std::uint32_t sparesDeclared = 0; // what `spares:` asks for
  std::uint64_t coresTotal = 0, coresUsed = 0;
  MiB memoryTotal = 0, memoryUsed = 0;
  std::uint32_t servers = 0;
  // How many simultaneous blade failures (worst case: the fullest blades) the pool
  // survives with every server running again, counting spares and what borrow_from
  // could lend.
  std::uint32_t survivableFailures = 0;
  bool sparesPromiseMet = true;     // survivableFailures >= sparesDeclared
  std::string warning;              // why not, when it is not met
};

std::vector<PoolCapacity> capacity(const Declarations& desired, const Inventory& observed,
                                   const PlacementState& current);

}  // namespace loom::pool
