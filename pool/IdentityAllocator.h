// Hands out UUIDs and MACs from identity pools: never the same value twice (not even
// after a server is deleted), and the same identity for a server for its whole life.
// Pure: the controller persists records() and restores them on start.
#pragma once

#include <cassert>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "loom/Result.h"
#include "pool/Model.h"

namespace loom::pool {

struct Identity {
  std::string uuid;               // canonical lower-case
  std::vector<std::string> macs;  // one per NIC, "52:54:00:10:00:01"
};

// What the allocator remembers; enough to rebuild it exactly.
struct IdentityRecord {
  std::string server;
  std::string identityPool;
  Identity identity;
  // The server was deleted (release()): its values stay used forever, so the record is
  // kept and restored, but it no longer belongs to anyone.
  bool released = false;
};

class IdentityAllocator {
 public:
  explicit IdentityAllocator(std::vector<IdentityPool> pools);

  // The server's identity: the one it already has, or new values from `identityPool`
  // (empty: "default", or the only pool). Fixed values from the declaration
  // (server.uuid, nic.mac) are honoured if no other server holds them. Grows the MAC
  // list if the server gained NICs; never changes values it already handed out.
  // Errors: pool missing or exhausted, a fixed value held by another server or not a
  // canonical UUID / MAC.
  Result<Identity> assign(const Server& server, const std::string& identityPool);
  // assign() without building the identity's text: true when it handed out new values
  // (the server had none, or gained NICs), false when the server had all it needs.
  Result<bool> ensure(const Server& server, const std::string& identityPool);

  // The identity the server holds now (nullopt: none assigned, or released). Does not
  // allocate values.
  std::optional<Identity> find(const std::string& server) const;
  // Whether the server holds an identity now; find() without building its text.
  bool holds(const std::string& server) const;

  // Forgets the server's binding to its identity; the values stay used forever.
  // No-op if the server holds no identity.
  void release(const std::string& server);

  // Every identity ever handed out: the servers' by name, then the released ones in the
  // order they were released (or restored). Text in canonical lower case.
  std::vector<IdentityRecord> records() const;
  // Replaces the allocator's memory with `records`; on error nothing changes. Errors:
  // a value or an active server appearing twice, a UUID or MAC that does not parse.
  Status restore(const std::vector<IdentityRecord>& records);

 private:
  // Where each pool's next candidate value is: an index into the concatenation of its
  // ranges. Values are handed out in order, so a cursor only moves forward; the used
  // sets catch fixed values declared inside a range.
  struct Cursor {
    std::uint64_t mac = 0;
    std::uint64_t uuid = 0;
  };
  struct Uuid {
    std::uint64_t hi = 0;
    std::uint64_t lo = 0;
    bool operator==(const Uuid&) const = default;
  };
  struct UuidHash {
    std::size_t operator()(const Uuid& u) const noexcept;
  };
  // A server's MACs in NIC order. Nearly every server has one NIC, so the first MAC is
  // kept inline and only further ones take a heap block.
  class MacList {
   public:
    std::size_t size() const { return first_ == kNone ? 0 : 1 + rest_.size(); }
    std::uint64_t operator[](std::size_t i) const { return i == 0 ? first_ : rest_[i - 1]; }
    void push_back(std::uint64_t mac) {
      assert(mac >> 48 == 0);
      if (first_ == kNone)
        first_ = mac;
      else
        rest_.push_back(mac);
    }

   private:
    static constexpr std::uint64_t kNone = ~std::uint64_t{0};  // MACs have 48 bits
    std::uint64_t first_ = kNone;
    std::vector<std::uint64_t> rest_;
  };
  // One server's identity as numbers: the controller keeps every server's for life, so
  // the text forms (and a copy of the name) are built only on the way out. With its
  // used-set entries about 180 bytes a server, against 510 as IdentityRecords in
  // ordered containers.
  struct Held {
    Uuid uuid;
    std::uint32_t pool = 0;  // index into poolNames_
    bool hasUuid = false;    // a restored record may carry none
    MacList macs;
  };
  struct Released {
    std::string server;
    Held held;
  };

  static std::optional<Uuid> parseUuid(std::string_view text);
  const IdentityPool* findPool(const std::string& name) const;
  std::uint32_t indexOf(const IdentityPool& pool) const;  // its place in pools_ and poolNames_
  Result<std::uint64_t> nextMac(const IdentityPool& pool, Cursor& cursor,
                                const std::vector<std::uint64_t>& taken) const;
  Result<Uuid> nextUuid(const IdentityPool& pool, Cursor& cursor) const;
  void advanceCursors(const Held& held);
  Identity identityOf(const Held& held) const;
  IdentityRecord recordOf(const std::string& server, const Held& held, bool released) const;

  std::vector<IdentityPool> pools_;
  // Pool names a record can carry: pools_'s, in order (so a pool's index is its place in
  // pools_), then names only restored records know (pools since removed, or "").
  std::vector<std::string> poolNames_;
  std::vector<Cursor> cursors_;  // one per pools_ entry
  std::unordered_map<std::string, Held> byServer_;
  std::vector<Released> released_;
  std::unordered_set<Uuid, UuidHash> usedUuids_;
  std::unordered_set<std::uint64_t> usedMacs_;
};

// Text forms, shared with config/ and the controller. Parsing accepts either case.
std::string formatMac(std::uint64_t mac);
std::optional<std::uint64_t> parseMac(std::string_view text);
std::string formatUuid(std::uint64_t hi, std::uint64_t lo);

}  // namespace loom::pool
