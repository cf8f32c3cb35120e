// Moving an etcd store written by an older loomd (a key per part of a server's record) to
// one server/NAME key per server: in one transaction that requires that no loomd leads
// and that every key moved is still as read (tried three times at most). Called by the
// etcd store's open when EtcdStoreOptions::upgradeLayout is set; nothing to do (ok) when
// there is no key of the older layout.
#pragma once

#include <string>

#include "controller/StateStore.h"
#include "controller/etcd/EtcdClient.h"
#include "loom/Result.h"

namespace loom::controller {

Status moveToServerKeys(etcd::EtcdClient& client, const std::string& base, const EtcdStoreOptions& options);

}  // namespace loom::controller
