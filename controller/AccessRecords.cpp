#include "controller/AccessRecords.h"

#include <nlohmann/json.hpp>

namespace loom::controller {
namespace {

using Json = nlohmann::json;

std::string str(const Json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::int64_t integer(const Json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number_integer() ? it->get<std::int64_t>() : 0;
}

}  // namespace

std::string tokenJson(const TokenRecord& t) {
  return Json{{"id", t.id},
              {"hash", t.hash},
              {"role", t.role},
              {"partition", t.partition},
              {"description", t.description},
              {"created_ms", t.createdMs},
              {"expires_ms", t.expiresMs},
              {"revoked_ms", t.revokedMs}}
      .dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::optional<TokenRecord> tokenFromJson(const std::string& text) {
  const Json j = Json::parse(text, nullptr, false);
  if (!j.is_object()) return std::nullopt;
  TokenRecord t{str(j, "id"),          str(j, "hash"),           str(j, "role"),           str(j, "partition"),
                str(j, "description"), integer(j, "created_ms"), integer(j, "expires_ms"), integer(j, "revoked_ms")};
  if (t.id.empty() || t.hash.empty()) return std::nullopt;
  return t;
}

std::string auditJson(const AuditRecord& a) {
  return Json{{"time_ms", a.timeMs},  {"token", a.tokenId}, {"role", a.role},       {"source", a.source},
              {"method", a.method},   {"path", a.path},     {"targets", a.targets}, {"status", a.status},
              {"outcome", a.outcome}, {"count", a.count}}
      .dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::optional<AuditRecord> auditFromJson(std::uint64_t id, const std::string& text) {
  const Json j = Json::parse(text, nullptr, false);
  if (!j.is_object()) return std::nullopt;
  AuditRecord a;
  a.id = id;
  a.timeMs = integer(j, "time_ms");
  a.tokenId = str(j, "token");
  a.role = str(j, "role");
  a.source = str(j, "source");
  a.method = str(j, "method");
  a.path = str(j, "path");
  a.targets = str(j, "targets");
  a.status = static_cast<int>(integer(j, "status"));
  a.outcome = str(j, "outcome");
  const std::int64_t count = integer(j, "count");
  a.count = count > 0 ? static_cast<std::uint64_t>(count) : 1;
  return a;
}

}  // namespace loom::controller
