#include "controller/access/Policy.h"

namespace loom::controller::access {

std::optional<Role> parseRole(std::string_view name) {
  if (name == "admin") return Role::Admin;
  if (name == "operator") return Role::Operator;
  if (name == "reader") return Role::Reader;
  if (name == "partition-admin") return Role::PartitionAdmin;
  if (name == "partition-reader") return Role::PartitionReader;
  return std::nullopt;
}

const char* roleName(Role role) {
  switch (role) {
    case Role::Admin:
      return "admin";
    case Role::Operator:
      return "operator";
    case Role::Reader:
      return "reader";
    case Role::PartitionAdmin:
      return "partition-admin";
    case Role::PartitionReader:
      return "partition-reader";
  }
  return "?";
}

bool scoped(Role role) { return role == Role::PartitionAdmin || role == Role::PartitionReader; }

bool allows(Role role, Access access) {
  if (access == Access::Open) return true;
  switch (role) {
    case Role::Admin:
      return true;
    case Role::Operator:
      return access == Access::Read || access == Access::ReadFabric || access == Access::OperateServer ||
             access == Access::OperateBlade;
    case Role::Reader:
      return access == Access::Read || access == Access::ReadFabric;
    case Role::PartitionAdmin:
      return access == Access::Read || access == Access::OperateServer || access == Access::Change;
    case Role::PartitionReader:
      return access == Access::Read;
  }
  return false;
}

const char* accessName(Access access) {
  switch (access) {
    case Access::Open:
      return "open";
    case Access::Read:
      return "read";
    case Access::ReadFabric:
      return "read fabric-wide data";
    case Access::OperateServer:
    case Access::OperateBlade:
      return "operate";
    case Access::Change:
      return "change";
    case Access::Admin:
      return "administer";
  }
  return "?";
}

}  // namespace loom::controller::access
