// The etcd store's records as the state they say, keyed as etcd keys them: what load()
// builds from one snapshot of the prefix, and what a standby's warm copy
// (controller/WarmCopy.h) keeps up to date from a watch, one key at a time. The one
// decoder of the key layout (controller/EtcdKeys.h; controller/README.md, "etcd"):
// put() and erase() take a key relative to PREFIX/ and its value.
//
// Not thread-safe: one owner (a loader, or the warm copy under its mutex).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "controller/StateStore.h"
#include "loom/Result.h"

namespace loom::controller {

// One server's record under server/NAME (controller/EtcdKeys.h): its identity, binding and
// home in one key, each part absent when the server has none. The store rewrites the
// whole key when a part changes, from its copy of the key (EtcdServerCopy).
struct EtcdServerRecord {
  std::optional<pool::IdentityRecord> identity;  // identityPool and identity; `server` unused
  std::optional<std::string> binding;            // the blade it is bound to
  std::optional<std::string> home;               // PlacementState::home
  bool empty() const { return !identity && !binding && !home; }
  bool operator==(const EtcdServerRecord&) const;
};
// The values of the other families the writer puts (their decoders are below).
std::string identityJson(const pool::IdentityRecord& r);
std::string bladeJson(const BladeRecord& b);
std::string operationJson(const OperationRecord& o);
std::string eventJson(const EventRecord& e);
// The value: {"pool","uuid","macs"} when it has an identity, "binding", "home".
std::string encodeEtcdServer(const EtcdServerRecord& r);
std::optional<EtcdServerRecord> decodeEtcdServer(std::string_view value);

// What the writer knows of each server key: its record and etcd's mod revision of it
// (every rewrite requires that revision, so a stale copy fails the txn, never loses a part).
struct EtcdServerCopyEntry {
  EtcdServerRecord record;
  std::int64_t modRevision = 0;
};
using EtcdServerCopy = std::unordered_map<std::string, EtcdServerCopyEntry>;

class EtcdStateImage {
 public:
  // A key's new value (`createRevision`: etcd's, which orders declarations as first
  // applied). True when the key is one of the loaded families (declarations, bindings,
  // borrowed, placement, identities, blades, pending operations, quorum versions, tokens, the
  // meta counters); false, and nothing changed, for the rest (events, finished
  // operations, the leader and presence keys). A record that does not parse is an
  // Errc::Internal error naming the key, and changes nothing.
  // `modRevision` is kept for server keys (serverCopy()).
  Result<bool> put(std::string_view key, std::string value, std::int64_t createRevision, std::int64_t modRevision = 0);
  // The key is gone (a delete). True when it was a record of the image.
  bool erase(std::string_view key);
  // Takes every record of `other` (a loader's part of the same snapshot).
  void merge(EtcdStateImage&& other);

  // The state as StateStore::load() gives it: declarations in the order first applied
  // (etcd's create revision; those of one commit by key), operations pending only.
  StoredState state() const;
  StoredState take();
  // The server keys as the writer's copy (EtcdStateStore keeps it; before take()).
  EtcdServerCopy serverCopy() const;
  // Records held (for logs and tests).
  std::size_t size() const;

 private:
  struct Decl {
    std::int64_t createRevision = 0;
    DeclarationRecord record;
  };
  std::map<std::string, Decl, std::less<>> decls_;  // by key
  std::map<std::string, std::string, std::less<>> borrowed_;
  std::map<std::string, std::map<std::string, std::string>, std::less<>> placement_;  // but "home"
  std::map<std::string, EtcdServerCopyEntry, std::less<>> servers_;                   // by name
  std::map<std::string, pool::IdentityRecord, std::less<>> released_;                 // by UUID
  std::map<std::string, BladeRecord, std::less<>> blades_;
  std::map<std::string, std::int64_t, std::less<>> firstSeen_;
  std::map<std::uint64_t, OperationRecord> pending_;
  std::map<std::uint64_t, std::string> quorum_;
  std::map<std::string, TokenRecord, std::less<>> tokens_;  // by id
  std::uint64_t lastEventId_ = 0;
  std::uint64_t lastAuditId_ = 0;
  std::uint64_t lastOperationId_ = 0;  // meta's counter
};

// One consistent read of the prefix: everything load() reads, at one revision.
struct EtcdSnapshot {
  EtcdStateImage image;
  std::int64_t revision = 0;  // etcd's revision the image was read at
};

// One event record (`id` from its key): the etcd store's events() pages them.
Result<EventRecord> decodeEtcdEvent(std::uint64_t id, const std::string& key, const std::string& value);

}  // namespace loom::controller
