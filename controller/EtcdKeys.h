// The etcd store's key layout (controller/README.md, "etcd"): the record families under
// PREFIX/, how a name becomes one part of a key, how ids become key parts that sort
// numerically. Shared by the writer (EtcdStateStore.cpp) and the one decoder
// (EtcdStateImage.cpp, used by load() and by a standby's watch); nothing else knows it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace loom::controller::etcdkeys {

// The record families, each under PREFIX/<family>/.
inline constexpr const char* kDecl = "decl/";  // decl/<kind>/<name> -> body
// server/<name> -> {pool, uuid, macs, binding, home}: a server's identity, binding and
// home in one key (etcd's cost is per key), each part present only when set.
inline constexpr const char* kServer = "server/";
inline constexpr const char* kBorrowed = "borrowed/";
inline constexpr const char* kPlacement = "placement/";            // placement/<map>/<key> -> value (not "home")
inline constexpr const char* kHome = "home";                       // the placement map kept in server/<name>
inline constexpr const char* kReleased = "identity-released/";     // identity-released/<uuid> -> {pool, uuid, macs}
inline constexpr const char* kBlade = "blade/";                    // blade/<name> -> {inventory, admin_state}
inline constexpr const char* kBladeSeen = "blade-seen/";           // blade-seen/<name> -> first seen, ms
inline constexpr const char* kOpPending = "op/pending/";           // op/pending/<id> -> {blade, server, ...}
inline constexpr const char* kEvent = "event/";                    // event/<id> -> {time_ms, level, ...}
inline constexpr const char* kQuorum = "quorum/";                  // quorum/<version> -> body
inline constexpr const char* kToken = "token/";                    // token/<id> -> TokenRecord JSON
inline constexpr const char* kAudit = "audit/";                    // audit/<id>: history, never loaded
inline constexpr const char* kMeta = "meta/";                      // counters
inline constexpr const char* kLastEventId = "meta/last-event-id";  // the highest event id written
inline constexpr const char* kLastOperationId = "meta/last-operation-id";
inline constexpr const char* kLastAuditId = "meta/last-audit-id";

// The layout before server/<name> (moved there at open: EtcdStateStore.cpp, migrateLayout).
inline constexpr const char* kOldIdentity = "identity/";    // identity/<server> -> {pool, uuid, macs}
inline constexpr const char* kOldBinding = "binding/";      // binding/<server> -> blade
inline constexpr const char* kOldHome = "placement/home/";  // placement/home/<server> -> blade

// A name inside a key: '/' separates the key's parts, so it (and '%', the escape) is
// percent-encoded. Record names are plain in practice; this keeps any name one part.
inline std::string esc(const std::string& s) {
  if (s.find_first_of("/%") == std::string::npos) return s;
  std::string out;
  for (char c : s) {
    if (c == '/')
      out += "%2F";
    else if (c == '%')
      out += "%25";
    else
      out += c;
  }
  return out;
}
inline std::string unesc(std::string_view s) {
  if (s.find('%') == std::string_view::npos) return std::string(s);
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && s.substr(i, 3) == "%2F") {
      out += '/';
      i += 2;
    } else if (s[i] == '%' && s.substr(i, 3) == "%25") {
      out += '%';
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

// Ids and versions as 20 digits: key order is numeric order.
inline std::string pad(std::uint64_t v) {
  std::string s = std::to_string(v);
  return std::string(20 - s.size(), '0') + s;
}
inline std::optional<std::uint64_t> unpad(std::string_view s) {
  if (s.empty() || s.size() > 20 || s.find_first_not_of("0123456789") != std::string_view::npos) return std::nullopt;
  std::uint64_t v = 0;
  for (char c : s) {
    const auto d = static_cast<std::uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10) return std::nullopt;
    v = v * 10 + d;
  }
  return v;
}

}  // namespace loom::controller::etcdkeys
