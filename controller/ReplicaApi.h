// The API answers that belong to the replica rather than to the controller core:
// GET /v1/status on every loomd (solo or replica: role, leader, epoch, the store and, on
// etcd, its members' health and this replica's warm copy), a standby's reads from its
// warm copy (StandbyReads), and a standby's answer to everything else — 503 naming the
// leader, which loomctl follows (tools/loomctl/HttpClient.h, controllerCall). Every
// replica's answer says who answered in headers (controller/README.md, "Replicas").
// Built on the HTTP thread; nothing here blocks but a standby's read of events (one etcd
// range, bounded by the store's timeout).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "controller/Election.h"
#include "controller/StateStore.h"
#include "controller/WarmCopy.h"
#include "controller/api/Api.h"
#include "controller/api/StandbyViews.h"

namespace loom::controller {

// A solo loomd's status: one controller on SQLite at `statePath`.
ApiResponse soloStatus(const std::string& statePath, std::uint64_t epoch);
// A replica's status, from the election's last refresh; `leading` with the term's epoch;
// `copy`: a standby's warm copy.
ApiResponse replicaStatus(const Election& election, std::optional<std::uint64_t> leadingEpoch, std::int64_t nowMs,
                          const WarmCopyState* copy = nullptr);
// What a standby answers to every request it does not answer itself.
ApiResponse standbyAnswer(const Election& election);
// The headers of a leader's answers: X-Loom-Role: leader, X-Loom-Replica, X-Loom-Epoch.
void addLeaderHeaders(ApiResponse& response, const std::string& name, std::uint64_t epoch);

// A standby's reads. HTTP thread only.
class StandbyReads {
 public:
  // `store`: the etcd store's options (events are read from etcd, not kept in the copy).
  StandbyReads(const WarmCopy& copy, EtcdStoreOptions store) : copy_(copy), storeOptions_(std::move(store)) {}
  // The answer to `request` from the warm copy (or, for events, from etcd), with the
  // standby's headers; nullopt when a standby does not answer it — a change, a
  // long-poll, an endpoint that needs what only the leader knows, or no copy loaded yet
  // — and the caller answers standbyAnswer().
  // Every answer passes the same access check as the leader's, from the copy's tokens
  // (StandbyViews): without a valid token, 401.
  std::optional<ApiResponse> answer(const ApiRequest& request, const Election& election, std::int64_t nowMs);
  // The access check of a request the caller answers itself (GET /v1/status: reader and
  // up): the refusal, or nullopt to go on. With no copy loaded yet it cannot check, and
  // refuses with standbyAnswer() (the leader checks).
  std::optional<ApiResponse> refusal(const ApiRequest& request, access::Access access, const Election& election);

 private:
  std::optional<ApiResponse> events(const ApiRequest& request, const ApiCaller& caller);
  // The views of the copy's latest version (built when it changed); null when no copy is
  // loaded yet.
  std::shared_ptr<const api::StandbyViews> currentViews();

  const WarmCopy& copy_;
  EtcdStoreOptions storeOptions_;
  std::unique_ptr<EtcdStateStore> eventStore_;  // opened at the first events read
  std::shared_ptr<const api::StandbyViews> views_;
  WarmCopyState viewsOf_;  // the copy's state the views were built from
};

}  // namespace loom::controller
