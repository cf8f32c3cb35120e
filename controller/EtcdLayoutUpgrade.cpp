// The etcd store's older key layout (a key per part of a server's record: identity/S,
// binding/S, placement/home/S) moved to one server/NAME key per server, once, at open
// (controller/README.md, "etcd"). Its own room: EtcdStateStore.cpp is the store as it is.
#include "controller/EtcdLayoutUpgrade.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "controller/EtcdKeys.h"
#include "controller/EtcdStateImage.h"

namespace loom::controller {
namespace {

using etcd::Compare;
using etcd::EtcdClient;
using etcd::KeyValue;
using etcd::Op;
using etcd::TxnRequest;

using namespace etcdkeys;

constexpr std::int64_t kPageKeys = 5000;

// Reads every key of `family` at `revision` (0: the latest; set to the one read at) into `out`.
Status readFamily(EtcdClient& client, const std::string& base, const std::string& family, std::int64_t& revision,
                  std::vector<KeyValue>& out) {
  const std::string from = base + family;
  const std::string end = EtcdClient::prefixEnd(from);
  std::string key = from;
  for (;;) {
    auto page = client.range(key, end, kPageKeys, revision);
    if (!page) return makeError(page.error().code, "etcd store: reading " + from + ": " + page.error().message);
    if (revision == 0) revision = page->revision;
    if (!page->more || page->kvs.empty()) {
      for (auto& kv : page->kvs) out.push_back(std::move(kv));
      return okStatus();
    }
    key = page->kvs.back().key + '\0';
    for (auto& kv : page->kvs) out.push_back(std::move(kv));
  }
}

}  // namespace

// The layout before server/NAME (identity/S, binding/S, placement/home/S: a key per
// part) is moved to it in one txn, once: the first loomd of this version to open the
// store does it, logged. The txn requires that no loomd leads (an older one would go on
// writing the old keys, which this version does not read) and that every key moved is
// still as read; if not, it is read and tried again, twice at most.
Status moveToServerKeys(EtcdClient& client, const std::string& base, const EtcdStoreOptions& options) {
  for (int attempt = 0;; ++attempt) {
    std::int64_t revision = 0;
    std::vector<KeyValue> ids, bindings, homes;
    for (auto [family, out] : {std::pair{kOldIdentity, &ids}, {kOldBinding, &bindings}, {kOldHome, &homes}})
      if (auto s = readFamily(client, base, family, revision, *out); !s) return s;
    if (ids.empty() && bindings.empty() && homes.empty()) return okStatus();
    std::map<std::string, EtcdServerRecord> servers;
    TxnRequest t;
    t.compare.push_back(Compare::createRevision(base + "leader", Compare::Result::Equal, 0));
    auto name = [&](const KeyValue& kv, const char* family) {
      return unesc(std::string_view(kv.key).substr(base.size() + std::char_traits<char>::length(family)));
    };
    for (const auto& kv : ids) {
      nlohmann::json j = nlohmann::json::parse(kv.value, nullptr, false);
      if (!j.is_object()) return makeError(Errc::Internal, "etcd store: record '" + kv.key + "' does not parse");
      pool::IdentityRecord r;
      r.identityPool = j.value("pool", "");
      r.identity.uuid = j.value("uuid", "");
      if (auto m = j.find("macs"); m != j.end() && m->is_array())
        for (const auto& mac : *m)
          if (mac.is_string()) r.identity.macs.push_back(mac.get<std::string>());
      servers[name(kv, kOldIdentity)].identity = std::move(r);
    }
    for (const auto& kv : bindings) servers[name(kv, kOldBinding)].binding = kv.value;
    for (const auto& kv : homes) servers[name(kv, kOldHome)].home = kv.value;
    for (const auto* family : {&ids, &bindings, &homes})
      for (const auto& kv : *family) {
        t.compare.push_back(Compare::modRevision(kv.key, Compare::Result::Equal, kv.modRevision));
        t.success.push_back(Op::del(kv.key));
      }
    for (const auto& [server, r] : servers) {
      const std::string key = base + kServer + esc(server);
      t.compare.push_back(Compare::createRevision(key, Compare::Result::Equal, 0));
      t.success.push_back(Op::put(key, encodeEtcdServer(r)));
    }
    t.failure.push_back(Op::range(base + "leader"));
    const auto started = std::chrono::steady_clock::now();
    client.setTimeout(options.timeout + std::chrono::milliseconds(static_cast<std::int64_t>(t.success.size() / 4)));
    auto r = client.txn(t);
    client.setTimeout(options.timeout);
    const std::string what = std::to_string(servers.size()) + " servers' records (" + std::to_string(ids.size()) +
                             " identity/, " + std::to_string(bindings.size()) + " binding/, " +
                             std::to_string(homes.size()) + " placement/home/ keys)";
    if (!r) return makeError(r.error().code, "etcd store: moving " + what + " to server/NAME: " + r.error().message);
    if (r->succeeded) {
      spdlog::info(
          "etcd store: moved {} to server/NAME under {} in one transaction (revision {}, {} ms)", what, options.prefix,
          r->revision,
          std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count());
      return okStatus();
    }
    if (!r->responses.empty() && !r->responses[0].range.kvs.empty())
      return makeError(Errc::Conflict, "etcd store: " + options.prefix + " holds " + what +
                                           " in the key layout of an older loomd, and a loomd leads (" +
                                           options.prefix +
                                           "/leader): stop every loomd of the older version, then start this one "
                                           "(it moves them to server/NAME in one transaction)");
    if (attempt == 2)
      return makeError(Errc::Conflict, "etcd store: moving " + what +
                                           " to server/NAME: they changed under it three times running; is an "
                                           "older loomd writing? Stop it, then start this one");
  }
}

}  // namespace loom::controller
