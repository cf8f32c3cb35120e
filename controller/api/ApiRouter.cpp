#include "controller/api/ApiRouter.h"

#include <spdlog/spdlog.h>

namespace loom::controller::api {
namespace {

std::vector<std::string> splitPath(const std::string& path) {
  std::vector<std::string> parts;
  std::string cur;
  for (char c : path) {
    if (c == '/') {
      if (!cur.empty()) parts.push_back(std::move(cur));
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) parts.push_back(std::move(cur));
  return parts;
}

bool matches(const std::vector<std::string>& pattern, const std::vector<std::string>& parts,
             ApiRouter::Params* params) {
  if (pattern.size() != parts.size()) return false;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (!pattern[i].empty() && pattern[i][0] == ':') {
      if (params) params->push_back(parts[i]);
    } else if (pattern[i] != parts[i]) {
      return false;
    }
  }
  return true;
}

}  // namespace

std::optional<std::uint64_t> unsignedParam(const std::map<std::string, std::string>& q, const std::string& key) {
  auto it = q.find(key);
  if (it == q.end() || it->second.empty() || it->second.size() > 18) return std::nullopt;
  std::uint64_t v = 0;
  for (char c : it->second) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return v;
}

bool flagParam(const std::map<std::string, std::string>& q, const std::string& key) {
  auto it = q.find(key);
  return it != q.end() && (it->second.empty() || it->second == "1" || it->second == "true" || it->second == "yes");
}

void ApiRouter::add(const std::string& method, const std::string& pattern, access::RouteAccess access,
                    Handler handler) {
  routes_.push_back({method, pattern, splitPath(pattern), access, std::move(handler)});
}

void ApiRouter::add(const std::string& method, const std::string& pattern, access::RouteAccess access, Simple handler) {
  add(method, pattern, access,
      Handler([h = std::move(handler)](const ApiRequest& r, const Params& p, std::int64_t now, const Reply& reply) {
        reply(h(r, p, now));
      }));
}

void ApiRouter::route(ApiRequest req, std::int64_t now, const Reply& reply) const {
  const auto parts = splitPath(req.path);
  std::string allowed;
  for (const auto& r : routes_) {
    Params params;
    if (!matches(r.segments, parts, &params)) continue;
    if (r.method != req.method) {
      if (allowed.find(r.method) == std::string::npos) allowed += (allowed.empty() ? "" : " or ") + r.method;
      continue;
    }
    access::Verdict verdict;
    if (gate_) {
      verdict = gate_->check(req, r.access, params);
    } else if (r.access.access != access::Access::Open) {
      verdict.reason = "no access check";
      verdict.refusal = error(401, "this controller checks no tokens yet");
    }
    if (verdict.refusal) {
      if (observer_) observer_->refused(req, verdict);
      return reply(std::move(*verdict.refusal));
    }
    req.caller = verdict.caller;
    const bool change = observer_ && req.method != "GET" && r.access.access != access::Access::Open;
    try {
      if (change) {
        observer_->changing(req, verdict);
        return r.handler(req, params, now, [observer = observer_, reply](ApiResponse answer) {
          observer->changed(answer);
          reply(std::move(answer));
        });
      }
      return r.handler(req, params, now, reply);
    } catch (const std::exception& e) {
      // Never crash on a request: a bug here is a 500 and a log line.
      spdlog::error("api: {} {}: {}", req.method, req.path.substr(0, 200), e.what());
      ApiResponse answer = error(500, std::string("internal error: ") + e.what());
      if (change) observer_->changed(answer);
      return reply(std::move(answer));
    }
  }
  if (!allowed.empty()) return reply(error(405, "use " + allowed + " for " + req.path.substr(0, 200)));
  return reply(error(404, "no such endpoint '" + req.method + " " + req.path.substr(0, 200) + "'"));
}

}  // namespace loom::controller::api
