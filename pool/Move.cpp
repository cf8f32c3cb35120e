// An operator's move (`loomctl server move NAME --to BLADE`): the same feasibility rules
// placement applies, asked about one named blade instead of searched for the best one.
#include "pool/PlannerState.h"

namespace loom::pool {

std::optional<std::string> checkMove(const Declarations& desired, const Inventory& observed,
                                     const PlacementState& current, const std::string& server,
                                     const std::string& blade) {
  detail::State st(desired, observed, current);
  auto si = st.serverIndex.find(server);
  if (si == st.serverIndex.end()) return "server '" + server + "' is not declared";
  auto bi = st.bladeIndex.find(blade);
  if (bi == st.bladeIndex.end()) return "blade '" + blade + "' is not in the inventory";
  detail::ServerSlot& s = st.servers[si->second];
  const detail::BladeSlot& b = st.blades[bi->second];
  if (s.pool == detail::kNone) return "pool '" + s.poolName + "' of server '" + server + "' is not declared";
  const detail::PoolSlot& p = st.pools[s.pool];
  if (s.blade == bi->second) return "server '" + server + "' is already on blade '" + blade + "'";
  // Members, spares and blades lent to the pool are its blades; nothing else is.
  if (b.pool != s.pool || b.role == BladeRole::Conflict || b.role == BladeRole::Unassigned) {
    const std::string where = b.pool == detail::kNone ? "in no pool" : "in pool '" + st.pools[b.pool].name + "'";
    return "blade '" + blade + "' is " + where + ", not in pool '" + p.name + "' of server '" + server + "'";
  }
  // The server's own footprint on its current blade does not count against the target
  // (it matters only when the target is where it is now, refused above).
  st.unbind(si->second);
  switch (detail::checkBlade(b, p, s)) {
    case detail::Reject::None:
      return std::nullopt;
    case detail::Reject::State:
      return "blade '" + blade + "' is " + toString(b.state) + " and takes no servers";
    case detail::Reject::Hypervisor:
      return "blade '" + blade + "' cannot run the " + toString(*p.hypervisor) + " hypervisor of pool '" + p.name + "'";
    case detail::Reject::Dedicated:
      return s.dedicated ? "server '" + server + "' is dedicated and blade '" + blade + "' is not empty"
                         : "blade '" + blade + "' holds a dedicated server";
    case detail::Reject::Cores:
      return "blade '" + blade + "' has " + std::to_string(b.freeCores) + " free cores, server '" + server +
             "' needs " + std::to_string(s.vcpus);
    case detail::Reject::Memory:
      return "blade '" + blade + "' has " + formatSize(b.freeMemory) + " free memory, server '" + server + "' needs " +
             formatSize(s.memory);
    case detail::Reject::AntiAffinity:
      return "blade '" + blade + "' already holds a server of anti-affinity group '" + st.groupNames[s.group] + "'";
  }
  return std::nullopt;
}

}  // namespace loom::pool
