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
#include <string>
#include <string_view>

#include "controller/StateStore.h"
#include "loom/Result.h"

namespace loom::controller {

class EtcdStateImage {
 public:
  // A key's new value (`createRevision`: etcd's, which orders declarations as first
  // applied). True when the key is one of the loaded families (declarations, bindings,
  // borrowed, placement, identities, blades, pending operations, quorum versions, tokens, the
  // meta counters); false, and nothing changed, for the rest (events, finished
  // operations, the leader and presence keys). A record that does not parse is an
  // Errc::Internal error naming the key, and changes nothing.
  Result<bool> put(std::string_view key, std::string value, std::int64_t createRevision);
  // The key is gone (a delete). True when it was a record of the image.
  bool erase(std::string_view key);
  // Takes every record of `other` (a loader's part of the same snapshot).
  void merge(EtcdStateImage&& other);

  // The state as StateStore::load() gives it: declarations in the order first applied
  // (etcd's create revision; those of one commit by key), operations pending only.
  StoredState state() const;
  StoredState take();
  // Records held (for logs and tests).
  std::size_t size() const;

 private:
  struct Decl {
    std::int64_t createRevision = 0;
    DeclarationRecord record;
  };
  std::map<std::string, Decl, std::less<>> decls_;  // by key
  std::map<std::string, std::string, std::less<>> bindings_, borrowed_;
  std::map<std::string, std::map<std::string, std::string>, std::less<>> placement_;
  std::map<std::string, pool::IdentityRecord, std::less<>> identities_;  // by server
  std::map<std::string, pool::IdentityRecord, std::less<>> released_;    // by UUID
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
