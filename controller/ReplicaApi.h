// The API answers that belong to the replica rather than to the controller core:
// GET /v1/status on every loomd (solo or replica: role, leader, epoch, the store and, on
// etcd, its members' health), and a standby's answer to everything else — 503 naming the
// leader, which loomctl follows (tools/loomctl/HttpClient.h, controllerCall). Built on
// the HTTP thread from snapshots; nothing here blocks.
#pragma once

#include <optional>
#include <string>

#include "controller/Election.h"
#include "controller/api/Api.h"

namespace loom::controller {

// A solo loomd's status: one controller on SQLite at `statePath`.
ApiResponse soloStatus(const std::string& statePath, std::uint64_t epoch);
// A replica's status, from the election's last refresh; `leading` with the term's epoch.
ApiResponse replicaStatus(const Election& election, std::optional<std::uint64_t> leadingEpoch, std::int64_t nowMs);
// What a standby answers to every other request.
ApiResponse standbyAnswer(const Election& election);

}  // namespace loom::controller
