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
  struct PoolState;
  std::vector<IdentityPool> pools_;
  std::map<std::string, IdentityRecord> byServer_;
  std::set<std::string> usedUuids_;
  std::set<std::uint64_t> usedMacs_;
  std::map<std::string, std::pair<std::uint64_t, std::uint64_t>> cursors_;  // pool -> (next mac index, next uuid index)
};

}  // namespace loom::pool
