// Identity allocation. Two promises (invariant 2): a value is never handed to two
// servers — not even after the first is deleted — and a server keeps its values for life.
// Both follow from one rule: every value ever handed out stays in a used set forever,
// and records() carries released identities too, so a restored allocator knows them.
#include "pool/IdentityAllocator.h"

#include <cctype>
#include <cstdio>

namespace loom::pool {

std::string formatMac(std::uint64_t mac) {
  char buf[18];
  std::snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", unsigned((mac >> 40) & 0xff),
                unsigned((mac >> 32) & 0xff), unsigned((mac >> 24) & 0xff), unsigned((mac >> 16) & 0xff),
                unsigned((mac >> 8) & 0xff), unsigned(mac & 0xff));
  return buf;
}

std::optional<std::uint64_t> parseMac(std::string_view text) {
  if (text.size() != 17) return std::nullopt;
  std::uint64_t value = 0;
  for (std::size_t i = 0; i < 17; ++i) {
    const char c = text[i];
    if (i % 3 == 2) {
      if (c != ':') return std::nullopt;
      continue;
    }
    if (!std::isxdigit(static_cast<unsigned char>(c))) return std::nullopt;
    const int digit = std::isdigit(static_cast<unsigned char>(c)) ? c - '0' : std::tolower(c) - 'a' + 10;
    value = (value << 4) | static_cast<std::uint64_t>(digit);
  }
  return value;
}

std::string formatUuid(std::uint64_t hi, std::uint64_t lo) {
  char buf[37];
  std::snprintf(buf, sizeof buf, "%08x-%04x-%04x-%04x-%012llx", unsigned(hi >> 32), unsigned((hi >> 16) & 0xffff),
                unsigned(hi & 0xffff), unsigned(lo >> 48), static_cast<unsigned long long>(lo & 0xffffffffffffULL));
  return buf;
}

namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::uint64_t rangeSize(const MacRange& r) { return r.last >= r.first ? r.last - r.first + 1 : 0; }
std::uint64_t rangeSize(const UuidRange& r) {
  return r.bits >= 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << r.bits);
}

}  // namespace

IdentityAllocator::IdentityAllocator(std::vector<IdentityPool> pools) : pools_(std::move(pools)) {}

const IdentityPool* IdentityAllocator::findPool(const std::string& name) const {
  if (name.empty()) {
    for (const auto& p : pools_) {
      if (p.name == "default") return &p;
    }
    return pools_.size() == 1 ? &pools_.front() : nullptr;
  }
  for (const auto& p : pools_) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

Result<std::uint64_t> IdentityAllocator::nextMac(const IdentityPool& pool, Cursor& cursor,
                                                 const std::set<std::uint64_t>& taken) const {
  for (;;) {
    std::uint64_t index = cursor.mac;
    const MacRange* range = nullptr;
    for (const auto& r : pool.macs) {
      if (index < rangeSize(r)) { range = &r; break; }
      index -= rangeSize(r);
    }
    if (!range) return makeError(Errc::Unavailable, "identity pool '" + pool.name + "': no MAC address left");
    ++cursor.mac;
    const std::uint64_t mac = range->first + index;
    if (!usedMacs_.count(mac) && !taken.count(mac)) return mac;
  }
}

Result<std::string> IdentityAllocator::nextUuid(const IdentityPool& pool, Cursor& cursor,
                                                const std::set<std::string>& taken) const {
  for (;;) {
    std::uint64_t index = cursor.uuid;
    const UuidRange* range = nullptr;
    for (const auto& r : pool.uuids) {
      if (index < rangeSize(r)) { range = &r; break; }
      index -= rangeSize(r);
    }
    if (!range) return makeError(Errc::Unavailable, "identity pool '" + pool.name + "': no UUID left");
    ++cursor.uuid;
    const std::string uuid = formatUuid(range->prefixHi, range->prefixLo | index);
    if (!usedUuids_.count(uuid) && !taken.count(uuid)) return uuid;
  }
}

Result<Identity> IdentityAllocator::assign(const Server& server, const std::string& identityPool) {
  auto existing = byServer_.find(server.name);
  const std::string poolName =
      existing != byServer_.end() ? existing->second.identityPool : identityPool;
  const IdentityPool* pool = findPool(poolName);
  if (!pool && (existing == byServer_.end() || existing->second.identity.macs.size() < server.nics.size())) {
    return makeError(Errc::NotFound, poolName.empty()
                                         ? "server " + server.name + ": no identity pool named 'default' and more than one to choose from"
                                         : "server " + server.name + ": identity pool '" + poolName + "' unknown");
  }

  // Work on copies and commit at the end: a failed assign changes nothing.
  Identity identity = existing != byServer_.end() ? existing->second.identity : Identity{};
  Cursor cursor = pool ? cursors_[pool->name] : Cursor{};
  std::set<std::string> newUuids;
  std::set<std::uint64_t> newMacs;

  if (identity.uuid.empty()) {
    if (!server.uuid.empty()) {
      identity.uuid = lower(server.uuid);
      if (usedUuids_.count(identity.uuid))
        return makeError(Errc::Conflict, "server " + server.name + ": uuid " + identity.uuid + " is already used");
    } else {
      auto uuid = nextUuid(*pool, cursor, newUuids);
      if (!uuid) return uuid.error();
      identity.uuid = *uuid;
    }
    newUuids.insert(identity.uuid);
  }
  for (std::size_t i = identity.macs.size(); i < server.nics.size(); ++i) {
    std::uint64_t mac = 0;
    if (!server.nics[i].mac.empty()) {
      auto fixed = parseMac(server.nics[i].mac);
      if (!fixed) return makeError(Errc::Invalid, "server " + server.name + ": bad MAC '" + server.nics[i].mac + "'");
      mac = *fixed;
      if (usedMacs_.count(mac) || newMacs.count(mac))
        return makeError(Errc::Conflict, "server " + server.name + ": MAC " + formatMac(mac) + " is already used");
    } else {
      auto next = nextMac(*pool, cursor, newMacs);
      if (!next) return next.error();
      mac = *next;
    }
    newMacs.insert(mac);
    identity.macs.push_back(formatMac(mac));
  }

  usedUuids_.insert(newUuids.begin(), newUuids.end());
  usedMacs_.insert(newMacs.begin(), newMacs.end());
  if (pool) cursors_[pool->name] = cursor;
  IdentityRecord& record = byServer_[server.name];
  record.server = server.name;
  record.identityPool = pool ? pool->name : poolName;
  record.identity = identity;
  return identity;
}

void IdentityAllocator::release(const std::string& server) {
  auto it = byServer_.find(server);
  if (it == byServer_.end()) return;  // no-op: already released or never assigned
  it->second.released = true;
  released_.push_back(std::move(it->second));
  byServer_.erase(it);
}

std::vector<IdentityRecord> IdentityAllocator::records() const {
  std::vector<IdentityRecord> out;
  out.reserve(byServer_.size() + released_.size());
  for (const auto& [name, record] : byServer_) out.push_back(record);
  out.insert(out.end(), released_.begin(), released_.end());
  return out;
}

void IdentityAllocator::advanceCursors(const std::string& poolName, const Identity& identity) {
  const IdentityPool* pool = findPool(poolName);
  if (!pool) return;
  Cursor& cursor = cursors_[pool->name];
  // Move past any restored value that lies inside the pool's ranges.
  for (const auto& text : identity.macs) {
    auto mac = parseMac(text);
    if (!mac) continue;
    std::uint64_t base = 0;
    for (const auto& r : pool->macs) {
      if (*mac >= r.first && *mac <= r.last) cursor.mac = std::max(cursor.mac, base + (*mac - r.first) + 1);
      base += rangeSize(r);
    }
  }
  std::uint64_t base = 0;
  for (const auto& r : pool->uuids) {
    const std::uint64_t mask = rangeSize(r) - 1;
    const std::uint64_t index = [&] {
      // Parse back the low 64 bits of the textual UUID.
      std::string hex;
      for (char c : identity.uuid) {
        if (c != '-') hex += c;
      }
      return hex.size() == 32 ? std::stoull(hex.substr(16), nullptr, 16) : ~std::uint64_t{0};
    }();
    if (index != ~std::uint64_t{0} && formatUuid(r.prefixHi, r.prefixLo | (index & mask)) == identity.uuid)
      cursor.uuid = std::max(cursor.uuid, base + (index & mask) + 1);
    base += rangeSize(r);
  }
}

Status IdentityAllocator::restore(const std::vector<IdentityRecord>& records) {
  std::map<std::string, IdentityRecord> byServer;
  std::set<std::string> uuids;
  std::set<std::uint64_t> macs;
  for (const auto& r : records) {
    if (!r.identity.uuid.empty() && !uuids.insert(lower(r.identity.uuid)).second)
      return makeError(Errc::Conflict, "identity records: uuid " + r.identity.uuid + " appears twice");
    for (const auto& text : r.identity.macs) {
      auto mac = parseMac(text);
      if (!mac) return makeError(Errc::Invalid, "identity records: bad MAC '" + text + "' for server " + r.server);
      if (!macs.insert(*mac).second)
        return makeError(Errc::Conflict, "identity records: MAC " + text + " appears twice");
    }
    if (!r.released && !byServer.emplace(r.server, r).second)
      return makeError(Errc::Conflict, "identity records: server " + r.server + " appears twice");
  }
  byServer_ = std::move(byServer);
  released_.clear();
  for (const auto& r : records) {
    if (r.released) released_.push_back(r);
  }
  usedUuids_ = std::move(uuids);
  usedMacs_ = std::move(macs);
  cursors_.clear();
  for (const auto& r : records) advanceCursors(r.identityPool, r.identity);
  return okStatus();
}

}  // namespace loom::pool
