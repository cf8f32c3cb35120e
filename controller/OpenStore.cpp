#include "controller/OpenStore.h"

namespace loom::controller {

Result<OpenedStore> openStore(const std::string& storeUrl, const std::string& statePath) {
  OpenedStore out;
  if (storeUrl.empty()) {
    auto store = openSqliteStateStore(statePath);
    if (!store) return store.error();
    out.store = std::move(*store);
    out.description = "SQLite " + statePath;
    return out;
  }
  auto options = parseEtcdStoreUrl(storeUrl);
  if (!options) return makeError(Errc::Invalid, "--store: " + options.error().message);
  auto store = openEtcdStateStore(*options);
  if (!store) return makeError(store.error().code, "--store " + storeUrl + ": " + store.error().message);
  out.etcd = store->get();
  out.store = std::move(*store);
  std::string endpoints;
  for (const auto& e : options->endpoints) endpoints += (endpoints.empty() ? "" : ",") + e;
  out.description = "etcd " + endpoints + " prefix " + options->prefix;
  return out;
}

}  // namespace loom::controller
