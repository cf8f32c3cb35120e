// The HTTP API's request and answer as the core sees them (HttpServer turns Beast's into
// these), and the small helpers every endpoint uses.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace loom::controller {

// Who asked, once the router's access check let the request through (controller/access/).
struct ApiCaller {
  std::string tokenId;    // "" for an open route (health)
  std::string role;       // "admin", "operator", ...
  std::string partition;  // a partition-scoped token's partition: it sees only that; "" sees all
  bool sees(const std::string& objectPartition) const { return partition.empty() || partition == objectPartition; }
};

struct ApiRequest {
  std::string method;  // "GET", "POST"
  std::string path;    // "/v1/blades/c1-s1"
  std::map<std::string, std::string> query;
  std::string body;
  // From the transport: the Authorization header as sent ("Bearer loom_..."), the peer's
  // address ("127.0.0.1:53122").
  std::string authorization = {};
  std::string peer = {};
  // Set by the router's access check before a handler runs; a handler never sets it.
  ApiCaller caller = {};
};

struct ApiResponse {
  int status = 200;
  std::string contentType = "application/json";
  std::string body;
  // More response headers (a replica's X-Loom-Role, X-Loom-Store-Revision ...:
  // controller/README.md, "Replicas"); names and values are ours, never a client's.
  std::vector<std::pair<std::string, std::string>> headers = {};
};

namespace api {

using Json = nlohmann::json;
using Reply = std::function<void(ApiResponse)>;

// Text from the request (a path, a name, a query value) is quoted in answers as it came,
// and need not be UTF-8: a byte that is not UTF-8 is written as U+FFFD, rather than
// nlohmann throwing (fuzz_http_api's first finding: a 404 for "/v1/de%ECete" threw in the
// core, and the client got no answer; docs/SECURITY.md, "Fuzzing").
inline ApiResponse json(int status, const Json& body) {
  return {status, "application/json", body.dump(2, ' ', false, Json::error_handler_t::replace) + "\n"};
}
// Text that is JSON already (the views).
inline ApiResponse text(int status, std::string json) { return {status, "application/json", std::move(json) + "\n"}; }
inline ApiResponse error(int status, const std::string& message) { return json(status, Json{{"error", message}}); }

// Query values are numbers typed by people: never throw on them.
std::optional<std::uint64_t> unsignedParam(const std::map<std::string, std::string>& query, const std::string& key);
// `?key`, `?key=1`, `=true`, `=yes`.
bool flagParam(const std::map<std::string, std::string>& query, const std::string& key);

}  // namespace api
}  // namespace loom::controller
