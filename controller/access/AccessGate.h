// The one access check of the API (DESIGN.md section 8; controller/README.md, "Access"):
// the router runs it for every request before any handler, on the leader and on a
// standby alike, from what the route declares it needs (RouteAccess) and the token the
// request shows. In order:
//   - Open routes (health) pass; every other needs a valid token, else 401 (unknown,
//     revoked, expired or malformed: one answer).
//   - A partition-scoped token asking for one object (the route's `object` names which
//     path segment) of another partition gets the 404 an unknown name gets: it cannot
//     even learn that the object exists. A blade is its when it serves one of its pools.
//   - The role's table (Policy.h) for the route's class: 403 naming what was refused.
//   - A scoped token's change (apply, delete): every object it creates, changes or
//     deletes must be a Server, Pool or Network of its partition, before and after;
//     another's, or a fabric-wide kind (Blade, Partition, ...), is a 403 naming it.
// Reads the table and the scope; changes nothing. Same thread as its TokenTable.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "controller/access/Policy.h"
#include "controller/access/TokenTable.h"
#include "controller/api/Api.h"

namespace loom::controller::access {

// What a route's `:name` segment (its first) names, for the partition scope.
enum class ObjectKind { None, Server, Pool, Blade, ApplyBody, DeleteBody };

struct RouteAccess {
  Access access = Access::Admin;
  ObjectKind object = ObjectKind::None;
};

// An object a change would create, change or delete.
struct Touched {
  std::string kind;  // "Server", "Pool", "Blade", ...
  std::string name;
  std::string partition;           // its partition after the change ("" for a kind without one)
  std::optional<std::string> was;  // its partition now, when it exists
};

// Where objects are, as the answering replica knows them.
class Scope {
 public:
  virtual ~Scope() = default;
  // The partition of server or pool `name`; nullopt when there is no such object.
  virtual std::optional<std::string> partitionOf(ObjectKind kind, const std::string& name) const = 0;
  virtual bool bladeKnown(const std::string& blade) const = 0;
  // Whether `blade` serves (is in, or lent to) a pool of `partition`.
  virtual bool bladeServes(const std::string& blade, const std::string& partition) const = 0;
  // What a change request's body would touch; nullopt when it does not parse at all (its
  // handler then answers why). For a body that is not valid, the objects it names that
  // exist, and those of a kind without a partition. A replica that takes no changes
  // answers nullopt.
  virtual std::optional<std::vector<Touched>> touches(const ApiRequest& /*request*/, bool /*deletion*/) const {
    return std::nullopt;
  }
};

struct Verdict {
  std::optional<ApiResponse> refusal;  // 401, 403, or 404 for a scoped token's unseen object
  ApiCaller caller;                    // who, when let through (and when known, refused)
  std::string targets;                 // "server/web-1", "pool/dev-web,server/dev-1": for the audit log
  std::string reason;                  // why refused, for the audit log
};

class AccessGate {
 public:
  using WallClock = std::function<std::int64_t()>;  // ms since the epoch: tokens expire on it
  AccessGate(const TokenTable& tokens, const Scope& scope, WallClock wallClock)
      : tokens_(tokens), scope_(scope), wallClock_(std::move(wallClock)) {}

  // `params`: the route's variable segments, in order.
  Verdict check(const ApiRequest& request, RouteAccess route, const std::vector<std::string>& params) const;

 private:
  const TokenTable& tokens_;
  const Scope& scope_;
  WallClock wallClock_;
};

}  // namespace loom::controller::access
