// Who may do what (DESIGN.md section 8): the roles a token carries, the classes of access
// a route declares (ApiRouter::add), and the one table between them. Pure: no I/O, no
// state; the AccessGate applies it to a request, the partition scope included.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace loom::controller::access {

enum class Role {
  Admin,            // everything
  Operator,         // read all; blade drain/undrain; server start/stop/move
  Reader,           // read all
  PartitionAdmin,   // its partition's networks, pools and servers: read, change, start/stop/move
  PartitionReader,  // its partition's objects, read
};

// What a route needs, from the least to the most.
enum class Access {
  Open,           // anyone, no token (GET /v1/health)
  Read,           // lists and objects; a partition-scoped token sees its partition only
  ReadFabric,     // what has no partition (metrics, replica status): readers and up, unscoped
  OperateServer,  // server start, stop, move
  OperateBlade,   // blade drain, undrain
  Change,         // apply, delete (a scoped token: its partition's objects only)
  Admin,          // tokens, the audit log, blade retire and fence
};

std::optional<Role> parseRole(std::string_view name);
const char* roleName(Role role);
// The roles that carry a partition.
bool scoped(Role role);

// The table: whether `role` may use a route that needs `access`. For a scoped role this
// is the route class only; the AccessGate then holds it to its partition's objects.
bool allows(Role role, Access access);
// "read", "operate servers", ... for messages.
const char* accessName(Access access);

}  // namespace loom::controller::access
