#include "controller/access/AccessGate.h"

#include <nlohmann/json.hpp>

namespace loom::controller::access {
namespace {

// What a route class needs, for a refusal's message.
const char* whoMay(Access access) {
  switch (access) {
    case Access::Open:
      return "anyone";
    case Access::Read:
      return "any role";
    case Access::ReadFabric:
      return "admin, operator or reader";
    case Access::OperateServer:
      return "admin, operator or partition-admin";
    case Access::OperateBlade:
      return "admin or operator";
    case Access::Change:
      return "admin or partition-admin";
    case Access::Admin:
      return "admin";
  }
  return "?";
}

const char* noun(ObjectKind kind) {
  switch (kind) {
    case ObjectKind::Server:
      return "server";
    case ObjectKind::Pool:
      return "pool";
    case ObjectKind::Blade:
      return "blade";
    default:
      return "";
  }
}

ApiResponse refuse(int status, const std::string& message) {
  return {status, "application/json",
          nlohmann::json{{"error", message}}.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n"};
}

std::string bounded(const std::string& s) { return s.size() > 200 ? s.substr(0, 200) + "..." : s; }

std::string who(const Principal& p) {
  std::string s = "token " + p.tokenId + " (" + roleName(p.role);
  if (!p.partition.empty()) s += " of partition " + p.partition;
  return s + ")";
}

}  // namespace

Verdict AccessGate::check(const ApiRequest& req, RouteAccess route, const std::vector<std::string>& params) const {
  Verdict v;
  if (route.access == Access::Open) return v;
  const auto principal = tokens_.authenticate(req.authorization, wallClock_());
  if (!principal) {
    v.reason = req.authorization.empty() ? "no token" : "invalid token";
    v.refusal = refuse(401,
                       "this request needs a valid API token (Authorization: Bearer loom_...; loomctl takes "
                       "--token, LOOM_TOKEN or `loomctl login`): " +
                           v.reason);
    v.refusal->headers.emplace_back("WWW-Authenticate", "Bearer realm=\"loomd\"");
    return v;
  }
  const Principal& p = *principal;
  v.caller = {p.tokenId, roleName(p.role), p.partition};
  const std::string what = req.method + " " + bounded(req.path);
  const bool named = !params.empty() && (route.object == ObjectKind::Server || route.object == ObjectKind::Pool ||
                                         route.object == ObjectKind::Blade);
  if (named) v.targets = std::string(noun(route.object)) + "/" + bounded(params[0]);

  // An object of another partition is as unknown to a scoped token as a missing one.
  if (named && !p.partition.empty()) {
    const std::string& name = params[0];
    bool hidden = false;
    if (route.object == ObjectKind::Blade) {
      hidden = scope_.bladeKnown(name) && !scope_.bladeServes(name, p.partition);
    } else if (auto part = scope_.partitionOf(route.object, name)) {
      hidden = *part != p.partition;
    }
    if (hidden) {
      v.reason = "outside its partition";
      v.refusal = refuse(404, std::string("unknown ") + noun(route.object) + " '" + bounded(name) + "'");
      return v;
    }
  }
  if (!allows(p.role, route.access)) {
    v.reason = std::string("role may not ") + accessName(route.access);
    v.refusal =
        refuse(403, "forbidden: " + who(p) + " may not " + accessName(route.access) + " " +
                        (named ? std::string(noun(route.object)) + " '" + bounded(params[0]) + "' (" + what + ")"
                               : "(" + what + ")") +
                        ": that needs " + whoMay(route.access));
    return v;
  }
  if (p.partition.empty() || (route.object != ObjectKind::ApplyBody && route.object != ObjectKind::DeleteBody))
    return v;

  // A scoped change: every object it touches must be its partition's.
  const auto touched = scope_.touches(req, route.object == ObjectKind::DeleteBody);
  if (!touched) return v;  // the body does not parse: the handler says why, and changes nothing
  for (const auto& t : *touched) {
    if (!v.targets.empty()) v.targets += ",";
    v.targets += t.kind + "/" + t.name;
  }
  for (const auto& t : *touched) {
    const bool partitioned = t.kind == "Server" || t.kind == "Pool" || t.kind == "Network";
    std::string why;
    if (!partitioned)
      why = "kind " + t.kind + " is fabric-wide";
    else if (t.was && *t.was != p.partition)
      why = "it is in partition '" + *t.was + "'";
    else if (t.partition != p.partition)
      why = "it would be in partition '" + t.partition + "'";
    if (why.empty()) continue;
    v.reason = t.kind + "/" + t.name + ": " + why;
    v.refusal = refuse(403, "forbidden: " + who(p) + " may not " +
                                (route.object == ObjectKind::DeleteBody ? "delete" : "apply") + " " + t.kind + " '" +
                                bounded(t.name) + "': " + why);
    return v;
  }
  return v;
}

}  // namespace loom::controller::access
