#include "controller/api/AccessEndpoints.h"

#include <algorithm>

namespace loom::controller::api {
namespace {

// At most ten years: an expiry is a number of seconds people type.
constexpr std::int64_t kMaxTtlSeconds = std::int64_t{10} * 366 * 24 * 3600;

// A JSON answer whose strings may hold a client's bytes (descriptions, paths): invalid
// UTF-8 is replaced, never a 500.
ApiResponse safeJson(int status, const Json& body) {
  return {status, "application/json", body.dump(2, ' ', false, Json::error_handler_t::replace) + "\n"};
}

}  // namespace

Json AccessEndpoints::tokenJson(const TokenRecord& t, std::int64_t nowMs) {
  const char* state = t.revokedMs ? "revoked" : t.expiresMs != 0 && nowMs >= t.expiresMs ? "expired" : "active";
  Json j{{"id", t.id},
         {"role", t.role},
         {"partition", t.partition},
         {"description", t.description},
         {"created_ms", t.createdMs},
         {"expires_ms", t.expiresMs ? Json(t.expiresMs) : Json(nullptr)},
         {"state", state}};
  if (t.revokedMs) j["revoked_ms"] = t.revokedMs;
  return j;
}

void AccessEndpoints::install(ApiRouter& r) {
  using P = ApiRouter::Params;
  using access::Access;
  const access::RouteAccess admin{Access::Admin};
  r.add("POST", "/v1/tokens", admin,
        ApiRouter::Simple([this](const ApiRequest& q, const P&, std::int64_t) { return create(q); }));
  r.add("GET", "/v1/tokens", admin, ApiRouter::Simple([this](const ApiRequest&, const P&, std::int64_t) {
          const std::int64_t now = wallClock_();
          Json out = Json::array();
          for (const auto& [_, t] : tokens_.all()) out.push_back(tokenJson(t, now));
          return safeJson(200, out);
        }));
  r.add("POST", "/v1/tokens/:id/revoke", admin,
        ApiRouter::Simple([this](const ApiRequest&, const P& p, std::int64_t) { return revoke(p[0]); }));
  r.add("GET", "/v1/whoami", access::RouteAccess{Access::Read},
        ApiRouter::Simple([](const ApiRequest& q, const P&, std::int64_t) {
          Json j{{"token", q.caller.tokenId}, {"role", q.caller.role}};
          j["partition"] = q.caller.partition.empty() ? Json(nullptr) : Json(q.caller.partition);
          return json(200, j);
        }));
  r.add("GET", "/v1/audit", admin,
        ApiRouter::Handler([this](const ApiRequest& q, const P&, std::int64_t now, const Reply& reply) {
          const std::uint64_t since = unsignedParam(q.query, "since").value_or(0);
          const auto limit =
              static_cast<std::size_t>(std::min<std::uint64_t>(unsignedParam(q.query, "limit").value_or(1000), 10000));
          const std::uint64_t wait = std::min<std::uint64_t>(unsignedParam(q.query, "wait").value_or(0), 300);
          auto token = q.query.find("token");
          auto answer = [reply](const std::vector<AuditRecord>& records) {
            reply(safeJson(200, access::auditJsonList(records)));
          };
          if (auto s = audit_.wait(since, limit, token == q.query.end() ? std::string() : token->second,
                                   now + static_cast<std::int64_t>(wait) * 1000, now, answer);
              !s)
            reply(error(503, s.error().message));
        }));
}

ApiResponse AccessEndpoints::create(const ApiRequest& req) {
  const Json body = Json::parse(req.body, nullptr, false);
  if (!body.is_object() || !body.contains("role") || !body["role"].is_string())
    return error(400,
                 "token create wants a JSON body {\"role\": ROLE, \"partition\": P, \"ttl_seconds\": N, "
                 "\"description\": TEXT} (role: admin, operator, reader, partition-admin or partition-reader)");
  const auto role = access::parseRole(body["role"].get<std::string>());
  if (!role)
    return error(400, "unknown role '" + body["role"].get<std::string>().substr(0, 64) +
                          "' (admin, operator, reader, partition-admin or partition-reader)");
  std::string partition, description;
  if (body.contains("partition") && !body["partition"].is_null()) {
    if (!body["partition"].is_string()) return error(400, "partition must be a string");
    partition = body["partition"].get<std::string>();
  }
  if (body.contains("description") && !body["description"].is_null()) {
    if (!body["description"].is_string()) return error(400, "description must be a string");
    description = body["description"].get<std::string>();
    if (description.size() > 256) return error(400, "description is longer than 256 bytes");
  }
  std::int64_t ttl = 0;
  if (body.contains("ttl_seconds") && !body["ttl_seconds"].is_null()) {
    if (!body["ttl_seconds"].is_number_integer() || body["ttl_seconds"].get<std::int64_t>() <= 0 ||
        body["ttl_seconds"].get<std::int64_t>() > kMaxTtlSeconds)
      return error(400, "ttl_seconds must be a whole number of seconds from 1 to ten years");
    ttl = body["ttl_seconds"].get<std::int64_t>();
  }
  if (!partition.empty()) {
    const auto& parts = desired_.declarations().partitions;
    if (std::none_of(parts.begin(), parts.end(), [&](const auto& p) { return p.name == partition; }))
      return error(400, "no partition '" + partition.substr(0, 64) + "' is declared");
  }
  const std::int64_t now = wallClock_();
  auto minted = access::TokenTable::mint(*role, partition, description, now, ttl ? now + ttl * 1000 : 0);
  // Ids are 48 random bits: a clash is rare, and must not replace the token that has it.
  for (int again = 0; minted && tokens_.find(minted->record.id) && again < 8; ++again)
    minted = access::TokenTable::mint(*role, partition, description, now, ttl ? now + ttl * 1000 : 0);
  if (!minted) return error(400, minted.error().message);
  if (tokens_.find(minted->record.id)) return error(503, "no token made: no free token id found (try again)");
  audit_.noteTargets("token/" + minted->record.id);
  Change c;
  c.putTokens.push_back(minted->record);
  if (auto s = journal_.commitNow(std::move(c)); !s)
    return error(503, "no token made, the state store failed: " + s.error().message);
  Json j = tokenJson(minted->record, now);
  j["token"] = minted->token;  // the only time it is shown
  tokens_.put(std::move(minted->record));
  events_.add("info", "", "",
              "token " + j["id"].get<std::string>() + " created (" + j["role"].get<std::string>() +
                  (partition.empty() ? "" : " of partition " + partition) + ")");
  return safeJson(201, j);
}

ApiResponse AccessEndpoints::revoke(const std::string& id) {
  const TokenRecord* t = tokens_.find(id);
  if (!t) return error(404, "unknown token '" + id.substr(0, 64) + "'");
  const std::int64_t now = wallClock_();
  if (t->revokedMs) return safeJson(200, tokenJson(*t, now));  // idempotent
  TokenRecord r = *t;
  r.revokedMs = now;
  audit_.noteTargets("token/" + id);
  Change c;
  c.putTokens.push_back(r);
  if (auto s = journal_.commitNow(std::move(c)); !s)
    return error(503, "not revoked, the state store failed: " + s.error().message);
  Json j = tokenJson(r, now);
  tokens_.put(std::move(r));
  events_.add("info", "", "", "token " + id + " revoked");
  return safeJson(200, j);
}

}  // namespace loom::controller::api
