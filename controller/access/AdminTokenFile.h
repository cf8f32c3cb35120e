// The first start's admin token on disk (DESIGN.md section 8; controller/README.md,
// "Access"): `admin.token` next to the state (the directory of --state; with the etcd
// store, --admin-token-file). The store keeps only the token's hash; this file is the
// only copy of its secret, readable by its owner alone.
#pragma once

#include <string>

#include "loom/Result.h"

namespace loom::controller::access {

// The token in `path` if the file exists (it must be a regular file that neither group
// nor others may read, holding one token: an operator may provision it), else a new
// token written there (created 0600, never over an existing file, fsynced). Errors name
// the path and what to do.
Result<std::string> readOrWriteAdminToken(const std::string& path);

// Where a loomd alone keeps it: the directory of `statePath`.
std::string adminTokenPathBeside(const std::string& statePath);

}  // namespace loom::controller::access
