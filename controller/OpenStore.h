// Which StateStore loomd runs on: the embedded SQLite file (`--state PATH`, the default)
// or etcd shared by several loomd (`--store etcd://HOST:PORT[,HOST:PORT...][/PREFIX]`).
#pragma once

#include <memory>
#include <string>

#include "controller/StateStore.h"
#include "loom/Result.h"

namespace loom::controller {

struct OpenedStore {
  std::unique_ptr<StateStore> store;
  EtcdStateStore* etcd = nullptr;  // the same store when it is etcd's (its leadership guard)
  std::string description;         // for the log: "SQLite loomd.db", "etcd 127.0.0.1:2379,... prefix /loom"
};

// `storeUrl` empty: SQLite at `statePath`. Otherwise etcd at `storeUrl` (statePath unused).
// Errors name the store and say what to do.
Result<OpenedStore> openStore(const std::string& storeUrl, const std::string& statePath);

}  // namespace loom::controller
