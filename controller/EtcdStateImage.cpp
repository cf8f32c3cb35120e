#include "controller/EtcdStateImage.h"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <tuple>
#include <vector>

#include "controller/AccessRecords.h"
#include "controller/EtcdKeys.h"

namespace loom::controller {
namespace {

using namespace etcdkeys;

// Reading records back: 100,000 identities on a restart, so RapidJSON (README.md, "Two
// JSON libraries"), and a record that does not parse is an error naming its key.
class RecordReader {
 public:
  bool parse(std::string_view text) {
    doc_.Parse(text.data(), text.size());
    return !doc_.HasParseError() && doc_.IsObject();
  }
  std::string str(const char* name) const {
    auto it = doc_.FindMember(name);
    return it != doc_.MemberEnd() && it->value.IsString()
               ? std::string(it->value.GetString(), it->value.GetStringLength())
               : std::string();
  }
  std::int64_t integer(const char* name) const {
    auto it = doc_.FindMember(name);
    return it != doc_.MemberEnd() && it->value.IsInt64() ? it->value.GetInt64() : 0;
  }
  bool has(const char* name) const { return doc_.FindMember(name) != doc_.MemberEnd(); }
  std::vector<std::string> strings(const char* name) const {
    std::vector<std::string> out;
    auto it = doc_.FindMember(name);
    if (it != doc_.MemberEnd() && it->value.IsArray())
      for (const auto& v : it->value.GetArray())
        if (v.IsString()) out.emplace_back(v.GetString(), v.GetStringLength());
    return out;
  }

 private:
  rapidjson::Document doc_;
};

Error corrupt(std::string_view key) {
  return makeError(Errc::Internal, "etcd store: record '" + std::string(key) + "' does not parse");
}

// `key` in `family`: the rest of it, or nullopt.
std::optional<std::string_view> under(std::string_view key, std::string_view family) {
  if (key.substr(0, family.size()) != family) return std::nullopt;
  return key.substr(family.size());
}

// "<a>/<b>" -> (a, b), unescaped.
std::optional<std::pair<std::string, std::string>> twoParts(std::string_view rest) {
  const auto slash = rest.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  return std::make_pair(unesc(rest.substr(0, slash)), unesc(rest.substr(slash + 1)));
}

}  // namespace

bool EtcdServerRecord::operator==(const EtcdServerRecord& o) const {
  auto sameIdentity = [](const pool::IdentityRecord& a, const pool::IdentityRecord& b) {
    return a.identityPool == b.identityPool && a.identity.uuid == b.identity.uuid && a.identity.macs == b.identity.macs;
  };
  return binding == o.binding && home == o.home && identity.has_value() == o.identity.has_value() &&
         (!identity || sameIdentity(*identity, *o.identity));
}

std::string identityJson(const pool::IdentityRecord& r) {
  return nlohmann::json{{"pool", r.identityPool}, {"uuid", r.identity.uuid}, {"macs", r.identity.macs}}.dump();
}
std::string bladeJson(const BladeRecord& b) {
  return nlohmann::json{{"inventory", b.inventory}, {"admin_state", b.adminState}}.dump();
}
std::string operationJson(const OperationRecord& o) {
  return nlohmann::json{{"blade", o.blade}, {"server", o.server},     {"kind", o.kind},
                        {"state", o.state}, {"attempts", o.attempts}, {"error", o.error}}
      .dump();
}
std::string eventJson(const EventRecord& e) {
  return nlohmann::json{
      {"time_ms", e.timeMs}, {"level", e.level}, {"blade", e.blade}, {"server", e.server}, {"message", e.message}}
      .dump();
}

std::string encodeEtcdServer(const EtcdServerRecord& r) {
  // RapidJSON's writer: 10,000 of these in an apply's commit, on the core thread.
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  auto str = [&](const std::string& v) { w.String(v.data(), static_cast<rapidjson::SizeType>(v.size())); };
  w.StartObject();
  if (r.identity) {
    w.Key("pool");
    str(r.identity->identityPool);
    w.Key("uuid");
    str(r.identity->identity.uuid);
    w.Key("macs");
    w.StartArray();
    for (const auto& m : r.identity->identity.macs) str(m);
    w.EndArray();
  }
  if (r.binding) {
    w.Key("binding");
    str(*r.binding);
  }
  if (r.home) {
    w.Key("home");
    str(*r.home);
  }
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize());
}

std::optional<EtcdServerRecord> decodeEtcdServer(std::string_view value) {
  RecordReader rd;
  if (!rd.parse(value)) return std::nullopt;
  EtcdServerRecord r;
  if (rd.has("uuid")) {
    pool::IdentityRecord id;
    id.identityPool = rd.str("pool");
    id.identity.uuid = rd.str("uuid");
    id.identity.macs = rd.strings("macs");
    r.identity = std::move(id);
  }
  if (rd.has("binding")) r.binding = rd.str("binding");
  if (rd.has("home")) r.home = rd.str("home");
  return r;
}

Result<bool> EtcdStateImage::put(std::string_view key, std::string value, std::int64_t createRevision,
                                 std::int64_t modRevision) {
  // The families in the order of their sizes in a big fabric: declarations, servers and
  // placement first.
  if (auto rest = under(key, kDecl)) {
    auto parts = twoParts(*rest);
    if (!parts) return corrupt(key);
    Decl d{createRevision, {std::move(parts->first), std::move(parts->second), std::move(value)}};
    if (auto it = decls_.find(key); it != decls_.end()) {
      // A key rewritten keeps its create revision: its place in the order stays.
      d.createRevision = it->second.createRevision;
      it->second = std::move(d);
    } else {
      decls_.emplace(std::string(key), std::move(d));
    }
    return true;
  }
  if (auto rest = under(key, kServer)) {
    auto r = decodeEtcdServer(value);
    if (!r) return corrupt(key);
    servers_.insert_or_assign(unesc(*rest), EtcdServerCopyEntry{std::move(*r), modRevision});
    return true;
  }
  if (auto rest = under(key, kPlacement)) {
    auto parts = twoParts(*rest);
    if (!parts) return corrupt(key);
    if (parts->first == kHome) return false;  // the old layout's (moved to server/ at open)
    placement_[parts->first].insert_or_assign(std::move(parts->second), std::move(value));
    return true;
  }
  if (auto rest = under(key, kBlade)) {
    RecordReader rd;
    if (!rd.parse(value)) return corrupt(key);
    std::string name = unesc(*rest);
    blades_.insert_or_assign(name, BladeRecord{name, rd.str("inventory"), rd.str("admin_state"), 0});
    return true;
  }
  if (auto rest = under(key, kBladeSeen)) {
    auto ms = unpad(value);
    if (!ms) return corrupt(key);
    firstSeen_.insert_or_assign(unesc(*rest), static_cast<std::int64_t>(*ms));
    return true;
  }
  if (auto rest = under(key, kBorrowed)) {
    borrowed_.insert_or_assign(unesc(*rest), std::move(value));
    return true;
  }
  if (auto rest = under(key, kReleased)) {
    RecordReader rd;
    if (!rd.parse(value)) return corrupt(key);
    pool::IdentityRecord r;
    r.released = true;
    r.identityPool = rd.str("pool");
    r.identity.uuid = rd.str("uuid");
    r.identity.macs = rd.strings("macs");
    released_.insert_or_assign(unesc(*rest), std::move(r));
    return true;
  }
  if (auto rest = under(key, kOpPending)) {
    auto id = unpad(*rest);
    RecordReader rd;
    if (!id || !rd.parse(value)) return corrupt(key);
    pending_.insert_or_assign(*id,
                              OperationRecord{*id, rd.str("blade"), rd.str("server"), rd.str("kind"), rd.str("state"),
                                              static_cast<int>(rd.integer("attempts")), rd.str("error")});
    return true;
  }
  if (auto rest = under(key, kQuorum)) {
    auto v = unpad(*rest);
    if (!v) return corrupt(key);
    quorum_.insert_or_assign(*v, std::move(value));
    return true;
  }
  if (auto rest = under(key, kToken)) {
    auto t = tokenFromJson(value);
    if (!t) return corrupt(key);
    tokens_.insert_or_assign(unesc(*rest), std::move(*t));
    return true;
  }
  if (key == kLastEventId || key == kLastOperationId || key == kLastAuditId) {
    auto v = unpad(value);
    if (!v) return corrupt(key);
    auto& into = key == kLastEventId ? lastEventId_ : key == kLastAuditId ? lastAuditId_ : lastOperationId_;
    into = std::max(into, *v);  // counters that only rise
    return true;
  }
  return false;
}

bool EtcdStateImage::erase(std::string_view key) {
  if (auto it = decls_.find(key); it != decls_.end()) {
    decls_.erase(it);
    return true;
  }
  if (auto rest = under(key, kServer)) return servers_.erase(unesc(*rest)) > 0;
  if (auto rest = under(key, kPlacement)) {
    auto parts = twoParts(*rest);
    if (!parts || parts->first == kHome) return false;
    auto m = placement_.find(parts->first);
    if (m == placement_.end() || m->second.erase(parts->second) == 0) return false;
    if (m->second.empty()) placement_.erase(m);
    return true;
  }
  if (auto rest = under(key, kBlade)) return blades_.erase(unesc(*rest)) > 0;
  if (auto rest = under(key, kBladeSeen)) return firstSeen_.erase(unesc(*rest)) > 0;
  if (auto rest = under(key, kBorrowed)) return borrowed_.erase(unesc(*rest)) > 0;
  if (auto rest = under(key, kReleased)) return released_.erase(unesc(*rest)) > 0;
  if (auto rest = under(key, kOpPending)) {
    auto id = unpad(*rest);
    return id && pending_.erase(*id) > 0;
  }
  if (auto rest = under(key, kQuorum)) {
    auto v = unpad(*rest);
    return v && quorum_.erase(*v) > 0;
  }
  if (auto rest = under(key, kToken)) return tokens_.erase(unesc(*rest)) > 0;
  return false;  // the meta counters are never deleted; the rest is not loaded
}

void EtcdStateImage::merge(EtcdStateImage&& o) {
  decls_.merge(o.decls_);
  servers_.merge(o.servers_);
  borrowed_.merge(o.borrowed_);
  placement_.merge(o.placement_);
  released_.merge(o.released_);
  blades_.merge(o.blades_);
  firstSeen_.merge(o.firstSeen_);
  pending_.merge(o.pending_);
  quorum_.merge(o.quorum_);
  tokens_.merge(o.tokens_);
  lastEventId_ = std::max(lastEventId_, o.lastEventId_);
  lastAuditId_ = std::max(lastAuditId_, o.lastAuditId_);
  lastOperationId_ = std::max(lastOperationId_, o.lastOperationId_);
}

std::size_t EtcdStateImage::size() const {
  std::size_t n = decls_.size() + servers_.size() + borrowed_.size() + released_.size() + blades_.size() +
                  firstSeen_.size() + pending_.size() + quorum_.size() + tokens_.size();
  for (const auto& [_, m] : placement_) n += m.size();
  return n;
}

EtcdServerCopy EtcdStateImage::serverCopy() const {
  EtcdServerCopy out;
  out.reserve(servers_.size());
  for (const auto& [name, e] : servers_) out.emplace(name, e);
  return out;
}

StoredState EtcdStateImage::state() const {
  EtcdStateImage copy = *this;
  return copy.take();
}

StoredState EtcdStateImage::take() {
  StoredState st;
  // Declarations in the order they were first applied, as SQLite's rowid keeps them: by
  // etcd's create revision, those of one commit by key.
  std::vector<std::pair<std::int64_t, decltype(decls_)::iterator>> order;
  order.reserve(decls_.size());
  for (auto it = decls_.begin(); it != decls_.end(); ++it) order.emplace_back(it->second.createRevision, it);
  std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    return std::tie(a.first, a.second->first) < std::tie(b.first, b.second->first);
  });
  st.declarations.reserve(order.size());
  for (auto& [_, it] : order) st.declarations.push_back(std::move(it->second.record));
  decls_.clear();
  st.borrowed.insert(std::make_move_iterator(borrowed_.begin()), std::make_move_iterator(borrowed_.end()));
  for (auto& [name, m] : placement_) st.placementMaps[name] = std::move(m);
  st.identities.reserve(servers_.size() + released_.size());
  std::map<std::string, std::string>* home = nullptr;
  for (auto& [name, e] : servers_) {
    auto& r = e.record;
    if (r.binding) st.bindings.emplace_hint(st.bindings.end(), name, std::move(*r.binding));
    if (r.home) {
      if (!home) home = &st.placementMaps[kHome];
      home->emplace_hint(home->end(), name, std::move(*r.home));
    }
    if (r.identity) {
      r.identity->server = name;
      r.identity->released = false;
      st.identities.push_back(std::move(*r.identity));
    }
  }
  for (auto& [_, r] : released_) st.identities.push_back(std::move(r));
  st.blades.reserve(blades_.size());
  for (auto& [name, b] : blades_) {
    if (auto it = firstSeen_.find(name); it != firstSeen_.end()) b.firstSeenMs = it->second;
    st.blades.push_back(std::move(b));
  }
  st.pendingOperations.reserve(pending_.size());
  for (auto& [_, o] : pending_) st.pendingOperations.push_back(std::move(o));
  st.quorumVersions = std::move(quorum_);
  st.tokens.reserve(tokens_.size());
  for (auto& [_, t] : tokens_) st.tokens.push_back(std::move(t));
  st.lastEventId = lastEventId_;
  st.lastAuditId = lastAuditId_;
  st.lastOperationId = std::max(lastOperationId_, pending_.empty() ? 0 : pending_.rbegin()->first);
  *this = EtcdStateImage();
  return st;
}

Result<EventRecord> decodeEtcdEvent(std::uint64_t id, const std::string& key, const std::string& value) {
  RecordReader rd;
  if (!rd.parse(value)) return corrupt(key);
  return EventRecord{id, rd.integer("time_ms"), rd.str("level"), rd.str("blade"), rd.str("server"), rd.str("message")};
}

}  // namespace loom::controller
