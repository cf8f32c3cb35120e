// Hands out UUIDs and MACs from identity pools: never the same value twice (not even
// after a server is deleted), and the same identity for a server for its whole life.
// Pure: the controller persists records() and restores them on start.
#pragma once

#include <map>
#include <set>
#include <string>
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
  // Errors: pool missing or exhausted, a fixed value held by another server.
  Result<Identity> assign(const Server& server, const std::string& identityPool);

  // Forgets the server's binding to its identity; the values stay used forever.
  void release(const std::string& server);

  std::vector<IdentityRecord> records() const;
  Status restore(const std::vector<IdentityRecord>& records);

 private:
  // Where each pool's next candidate value is: an index into the concatenation of its
  // ranges. Values are handed out in order, so a cursor only moves forward; the used
  // sets catch fixed values declared inside a range.
  struct Cursor {
    std::uint64_t mac = 0;
    std::uint64_t uuid = 0;
  };
  const IdentityPool* findPool(const std::string& name) const;
  Result<std::uint64_t> nextMac(const IdentityPool& pool, Cursor& cursor, const std::set<std::uint64_t>& taken) const;
  Result<std::string> nextUuid(const IdentityPool& pool, Cursor& cursor, const std::set<std::string>& taken) const;
  void advanceCursors(const std::string& pool, const Identity& identity);

  std::vector<IdentityPool> pools_;
  std::map<std::string, IdentityRecord> byServer_;
  std::vector<IdentityRecord> released_;
  std::set<std::string> usedUuids_;
  std::set<std::uint64_t> usedMacs_;
  std::map<std::string, Cursor> cursors_;
};

// Text forms, shared with config/ and the controller. Parsing accepts either case.
std::string formatMac(std::uint64_t mac);
std::optional<std::uint64_t> parseMac(std::string_view text);
std::string formatUuid(std::uint64_t hi, std::uint64_t lo);

}  // namespace loom::pool
