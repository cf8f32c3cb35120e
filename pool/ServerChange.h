// What an apply changes in a declared server, field by field, and what each change takes
// to reach the server: nothing (the controller's own bookkeeping), a restart (the domain
// definition changes), a move (another pool), or a power change. The diff `loomctl apply`
// prints and the controller's "restart pending" come from here (docs/SERVERS.md, "What a
// change to a server does").
#pragma once

#include <string>
#include <vector>

#include "pool/Model.h"

namespace loom::pool {

enum class ChangeEffect : std::uint8_t {
  Live,     // not in the domain definition: takes effect at once (priority, anti_affinity, ...)
  Restart,  // in the domain definition: the running domain is stopped, redefined, started
  Move,     // the server belongs elsewhere (pool): it is evacuated like a drain
  Power,    // power on/off: started or stopped
};
const char* toString(ChangeEffect);  // "live", "restart", "move", "power"

struct FieldChange {
  std::string field;  // as YAML names it: "memory", "vcpus", "nics", "disks", "boot", ...
  std::string from;   // text forms: "28GiB", "4", "front, back", "none"
  std::string to;
  ChangeEffect effect = ChangeEffect::Live;
};

// The fields that differ, in declaration order of the YAML schema. Identical servers
// give nothing. `name` and `template_` are not compared (they name the server).
std::vector<FieldChange> diffServer(const Server& before, const Server& after);

// "memory 28GiB → 20GiB, vcpus 2 → 4": the changes that need a restart, joined; empty
// when none does.
std::string restartReason(const std::vector<FieldChange>& changes);

}  // namespace loom::pool
