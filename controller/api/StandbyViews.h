// What a standby answers from its warm copy of the store (controller/WarmCopy.h;
// controller/README.md, "Replicas: reads on a standby"): GET /v1/blades[/NAME],
// /v1/servers[/NAME], /v1/pools[/NAME] and /v1/partitions, in the leader's JSON shapes
// (the same field names, ?fields= masks and text writers, controller/api/Views.h) for
// every field the store holds — declarations, identities, bindings, homes, inventory,
// admin state, pool membership.
//
// What only the leader knows is not invented: a blade's and a server's `state` is
// "unknown" (a blade's stored admin state, "maintenance" or "retired", is shown: it
// decides the leader's state too); fields that live only in the leader's memory
// (online, relay, domains, pending_operations, heartbeat and lease ages, trust, fence
// attempts, fencing, quorum membership, holds; a server's reason) are left out, as the
// leader itself leaves out what it does not know. Pool membership (a blade's pool and
// role, a pool's blades and spare_blades) is the planner's over the stored declarations,
// inventory and placement with every blade taken as healthy.
//
// Built once per version of the copy (a full decode and one pool::plan for the roles);
// then read-only and thread-compatible.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "controller/BladeRegistry.h"
#include "controller/DesiredState.h"
#include "controller/ModelJson.h"
#include "controller/StateStore.h"
#include "controller/api/Api.h"
#include "pool/Planner.h"

namespace loom::controller::api {

class StandbyViews {
 public:
  explicit StandbyViews(StoredState state);

  // Whether a standby answers `request` from its copy (the GETs above). The rest is the
  // leader's: changes, events (the store's, read by the caller), capacity (it needs the
  // blades' health), metrics.
  static bool serves(const ApiRequest& request);
  // The answer to a request serves() accepted: 200, 400 for a bad ?fields=, 404 for an
  // unknown name.
  ApiResponse answer(const ApiRequest& request) const;

 private:
  struct Blade {
    protocol::BladeInventory inventory;
    std::string adminState;
  };
  std::string bladeText(const std::string& name, const Blade& b, const FieldMask& fields) const;
  std::string serverText(const pool::Server& s, const FieldMask& fields) const;

  DesiredState desired_;
  std::map<std::string, Blade> blades_;
  pool::PlacementState placement_;
  std::unordered_map<std::string, std::vector<std::string>> byBlade_;
  std::map<std::string, pool::BladeAssignment> roles_;
};

}  // namespace loom::controller::api
