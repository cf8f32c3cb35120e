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
// Access: the copy's tokens, checked by the same gate as the leader's (AccessGate), each
// route declaring what it needs as the leader's do; a token revoked is refused here once
// the copy holds the revocation. A standby writes no audit record (it changes nothing;
// its refusals are in its log).
//
// Built once per version of the copy (a full decode and one pool::plan for the roles);
// then read-only and thread-compatible.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "controller/BladeRegistry.h"
#include "controller/DesiredState.h"
#include "controller/ModelJson.h"
#include "controller/StateStore.h"
#include "controller/access/AccessGate.h"
#include "controller/access/DeclaredScope.h"
#include "controller/access/TokenTable.h"
#include "controller/api/Api.h"
#include "controller/api/ApiRouter.h"
#include "pool/Planner.h"

namespace loom::controller::api {

class StandbyViews {
 public:
  using WallClock = std::function<std::int64_t()>;  // ms since the epoch: tokens expire on it
  StandbyViews(StoredState state, WallClock wallClock);
  StandbyViews(const StandbyViews&) = delete;
  StandbyViews& operator=(const StandbyViews&) = delete;

  // Whether a standby answers `request` from its copy (the GETs above). The rest is the
  // leader's: changes, events (the store's, read by the caller), capacity (it needs the
  // blades' health), metrics.
  static bool serves(const ApiRequest& request);
  // The answer to a request serves() accepted, once the access check let it through: 200,
  // 400 for a bad ?fields=, 404 for an unknown name; 401, 403 or 404 from the check.
  ApiResponse answer(const ApiRequest& request) const;
  // The access check alone, for what a standby answers outside its views (events, its
  // status): the verdict for a route that needs `access`.
  access::Verdict check(const ApiRequest& request, access::Access access) const;
  // Whether `caller` sees `event` (a partition-scoped caller: its servers' and blades').
  bool sees(const ApiCaller& caller, const EventRecord& event) const;

 private:
  struct Blade {
    protocol::BladeInventory inventory;
    std::string adminState;
  };
  ApiResponse viewAnswer(const ApiRequest& request) const;
  std::string bladeText(const std::string& name, const Blade& b, const FieldMask& fields) const;
  std::string serverText(const pool::Server& s, const FieldMask& fields) const;

  DesiredState desired_;
  std::map<std::string, Blade> blades_;
  pool::PlacementState placement_;
  std::unordered_map<std::string, std::vector<std::string>> byBlade_;
  std::map<std::string, pool::BladeAssignment> roles_;
  access::TokenTable tokens_;
  access::DeclaredScope scope_;
  access::AccessGate gate_;
  ApiRouter router_;
};

}  // namespace loom::controller::api
