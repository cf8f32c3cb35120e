// Identity allocation. Two promises (invariant 2): a value is never handed to two
// servers — not even after the first is deleted — and a server keeps its values for life.
// Both follow from one rule: every value ever handed out stays in a used set forever,
// and records() carries released identities too, so a restored allocator knows them.
#include "pool/IdentityAllocator.h"

#include <algorithm>
#include <cctype>

namespace loom::pool {

namespace {

// `digits` lower-case hex digits of `value` (its low 4 * digits bits) at `out`. snprintf
// did this at a third of a restart's core time: every server's identity is text twice
// per replan after one.
char* putHex(char* out, std::uint64_t value, int digits) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (int i = digits - 1; i >= 0; --i) {
    out[i] = kHex[value & 0xf];
    value >>= 4;
  }
  return out + digits;
}

}  // namespace

std::string formatMac(std::uint64_t mac) {
  std::string out(17, ':');
  for (std::size_t byte = 0; byte < 6; ++byte) putHex(out.data() + 3 * byte, mac >> (8 * (5 - byte)), 2);
  return out;
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
  std::string out(36, '-');
  char* p = putHex(out.data(), hi >> 32, 8);
  p = putHex(p + 1, hi >> 16, 4);
  p = putHex(p + 1, hi, 4);
  p = putHex(p + 1, lo >> 48, 4);
  putHex(p + 1, lo, 12);
  return out;
}

namespace {

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::uint64_t rangeSize(const MacRange& r) { return r.last >= r.first ? r.last - r.first + 1 : 0; }
std::uint64_t rangeSize(const UuidRange& r) { return r.bits >= 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << r.bits); }

}  // namespace

std::size_t IdentityAllocator::UuidHash::operator()(const Uuid& u) const noexcept {
  return std::hash<std::uint64_t>{}(u.lo ^ (u.hi * 0x9e3779b97f4a7c15ULL));
}

// The canonical 8-4-4-4-12 form, either case (what config/ accepts as a server's uuid).
std::optional<IdentityAllocator::Uuid> IdentityAllocator::parseUuid(std::string_view text) {
  if (text.size() != 36) return std::nullopt;
  Uuid uuid;
  int nibbles = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (text[i] != '-') return std::nullopt;
      continue;
    }
    const int digit = hexValue(text[i]);
    if (digit < 0) return std::nullopt;
    std::uint64_t& half = nibbles++ < 16 ? uuid.hi : uuid.lo;
    half = (half << 4) | static_cast<std::uint64_t>(digit);
  }
  return uuid;
}

IdentityAllocator::IdentityAllocator(std::vector<IdentityPool> pools)
    : pools_(std::move(pools)), cursors_(pools_.size()) {
  for (const auto& p : pools_) poolNames_.push_back(p.name);
}

std::uint32_t IdentityAllocator::indexOf(const IdentityPool& pool) const {
  return static_cast<std::uint32_t>(&pool - pools_.data());
}

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
                                                 const std::vector<std::uint64_t>& taken) const {
  for (;;) {
    std::uint64_t index = cursor.mac;
    const MacRange* range = nullptr;
    for (const auto& r : pool.macs) {
      if (index < rangeSize(r)) {
        range = &r;
        break;
      }
      index -= rangeSize(r);
    }
    if (!range) return makeError(Errc::Unavailable, "identity pool '" + pool.name + "': no MAC address left");
    ++cursor.mac;
    const std::uint64_t mac = range->first + index;
    if (!usedMacs_.count(mac) && std::find(taken.begin(), taken.end(), mac) == taken.end()) return mac;
  }
}

Result<IdentityAllocator::Uuid> IdentityAllocator::nextUuid(const IdentityPool& pool, Cursor& cursor) const {
  for (;;) {
    std::uint64_t index = cursor.uuid;
    const UuidRange* range = nullptr;
    for (const auto& r : pool.uuids) {
      if (index < rangeSize(r)) {
        range = &r;
        break;
      }
      index -= rangeSize(r);
    }
    if (!range) return makeError(Errc::Unavailable, "identity pool '" + pool.name + "': no UUID left");
    ++cursor.uuid;
    const Uuid uuid{range->prefixHi, range->prefixLo | index};
    if (!usedUuids_.count(uuid)) return uuid;
  }
}

Identity IdentityAllocator::identityOf(const Held& held) const {
  Identity identity;
  if (held.hasUuid) identity.uuid = formatUuid(held.uuid.hi, held.uuid.lo);
  identity.macs.reserve(held.macs.size());
  for (std::size_t i = 0; i < held.macs.size(); ++i) identity.macs.push_back(formatMac(held.macs[i]));
  return identity;
}

IdentityRecord IdentityAllocator::recordOf(const std::string& server, const Held& held, bool released) const {
  return IdentityRecord{server, poolNames_[held.pool], identityOf(held), released};
}

Result<Identity> IdentityAllocator::assign(const Server& server, const std::string& identityPool) {
  if (auto s = ensure(server, identityPool); !s) return s.error();
  return identityOf(byServer_.find(server.name)->second);
}

Result<bool> IdentityAllocator::ensure(const Server& server, const std::string& identityPool) {
  auto existing = byServer_.find(server.name);
  const Held* had = existing != byServer_.end() ? &existing->second : nullptr;
  const std::string& poolName = had ? poolNames_[had->pool] : identityPool;
  const IdentityPool* pool = findPool(poolName);
  if (!pool && (!had || had->macs.size() < server.nics.size())) {
    return makeError(Errc::NotFound, poolName.empty()
                                         ? "server " + server.name +
                                               ": no identity pool named 'default' and more than one to choose from"
                                         : "server " + server.name + ": identity pool '" + poolName + "' unknown");
  }

  // Gather the new values first and commit at the end: a failed assign changes nothing.
  Cursor cursor = pool ? cursors_[indexOf(*pool)] : Cursor{};
  std::optional<Uuid> newUuid;
  std::vector<std::uint64_t> newMacs;

  if (!had || !had->hasUuid) {
    if (!server.uuid.empty()) {
      newUuid = parseUuid(server.uuid);
      if (!newUuid) return makeError(Errc::Invalid, "server " + server.name + ": bad UUID '" + server.uuid + "'");
      if (usedUuids_.count(*newUuid))
        return makeError(Errc::Conflict, "server " + server.name + ": uuid " + formatUuid(newUuid->hi, newUuid->lo) +
                                             " is already used");
    } else {
      auto uuid = nextUuid(*pool, cursor);
      if (!uuid) return uuid.error();
      newUuid = *uuid;
    }
  }
  for (std::size_t i = had ? had->macs.size() : 0; i < server.nics.size(); ++i) {
    std::uint64_t mac = 0;
    if (!server.nics[i].mac.empty()) {
      auto fixed = parseMac(server.nics[i].mac);
      if (!fixed) return makeError(Errc::Invalid, "server " + server.name + ": bad MAC '" + server.nics[i].mac + "'");
      mac = *fixed;
      if (usedMacs_.count(mac) || std::find(newMacs.begin(), newMacs.end(), mac) != newMacs.end())
        return makeError(Errc::Conflict, "server " + server.name + ": MAC " + formatMac(mac) + " is already used");
    } else {
      auto next = nextMac(*pool, cursor, newMacs);
      if (!next) return next.error();
      mac = *next;
    }
    newMacs.push_back(mac);
  }

  Held& held = had ? existing->second : byServer_[server.name];
  if (newUuid) {
    usedUuids_.insert(*newUuid);
    held.uuid = *newUuid;
    held.hasUuid = true;
  }
  for (std::uint64_t mac : newMacs) {
    usedMacs_.insert(mac);
    held.macs.push_back(mac);
  }
  if (pool) {
    cursors_[indexOf(*pool)] = cursor;
    held.pool = indexOf(*pool);
  }
  return !had || newUuid || !newMacs.empty();
}

std::optional<Identity> IdentityAllocator::find(const std::string& server) const {
  auto it = byServer_.find(server);
  if (it == byServer_.end()) return std::nullopt;
  return identityOf(it->second);
}

bool IdentityAllocator::holds(const std::string& server) const { return byServer_.count(server) != 0; }

void IdentityAllocator::release(const std::string& server) {
  auto it = byServer_.find(server);
  if (it == byServer_.end()) return;  // no-op: already released or never assigned
  auto node = byServer_.extract(it);
  released_.push_back(Released{std::move(node.key()), std::move(node.mapped())});
}

std::vector<IdentityRecord> IdentityAllocator::records() const {
  // Servers by name, as the ordered map this replaced gave them: a stable order for
  // whoever persists or compares them.
  std::vector<const std::pair<const std::string, Held>*> servers;
  servers.reserve(byServer_.size());
  for (const auto& entry : byServer_) servers.push_back(&entry);
  std::sort(servers.begin(), servers.end(), [](const auto* a, const auto* b) { return a->first < b->first; });
  std::vector<IdentityRecord> out;
  out.reserve(byServer_.size() + released_.size());
  for (const auto* entry : servers) out.push_back(recordOf(entry->first, entry->second, false));
  for (const auto& r : released_) out.push_back(recordOf(r.server, r.held, true));
  return out;
}

void IdentityAllocator::advanceCursors(const Held& held) {
  const IdentityPool* pool = findPool(poolNames_[held.pool]);
  if (!pool) return;
  Cursor& cursor = cursors_[indexOf(*pool)];
  // Move past any restored value that lies inside the pool's ranges.
  for (std::size_t i = 0; i < held.macs.size(); ++i) {
    const std::uint64_t mac = held.macs[i];
    std::uint64_t base = 0;
    for (const auto& r : pool->macs) {
      if (mac >= r.first && mac <= r.last) cursor.mac = std::max(cursor.mac, base + (mac - r.first) + 1);
      base += rangeSize(r);
    }
  }
  if (!held.hasUuid) return;
  std::uint64_t base = 0;
  for (const auto& r : pool->uuids) {
    const std::uint64_t index = held.uuid.lo & (rangeSize(r) - 1);
    if (held.uuid.hi == r.prefixHi && (r.prefixLo | index) == held.uuid.lo)
      cursor.uuid = std::max(cursor.uuid, base + index + 1);
    base += rangeSize(r);
  }
}

Status IdentityAllocator::restore(const std::vector<IdentityRecord>& records) {
  std::vector<std::string> poolNames;
  for (const auto& p : pools_) poolNames.push_back(p.name);
  std::unordered_map<std::string, Held> byServer;
  std::vector<Released> released;
  std::unordered_set<Uuid, UuidHash> uuids;
  std::unordered_set<std::uint64_t> macs;
  byServer.reserve(records.size());
  uuids.reserve(records.size());
  macs.reserve(records.size());
  for (const auto& r : records) {
    Held held;
    auto name = std::find(poolNames.begin(), poolNames.end(), r.identityPool);
    held.pool = static_cast<std::uint32_t>(name - poolNames.begin());
    if (name == poolNames.end()) poolNames.push_back(r.identityPool);
    if (!r.identity.uuid.empty()) {
      auto uuid = parseUuid(r.identity.uuid);
      if (!uuid)
        return makeError(Errc::Invalid, "identity records: bad UUID '" + r.identity.uuid + "' for server " + r.server);
      if (!uuids.insert(*uuid).second)
        return makeError(Errc::Conflict, "identity records: uuid " + r.identity.uuid + " appears twice");
      held.uuid = *uuid;
      held.hasUuid = true;
    }
    for (const auto& text : r.identity.macs) {
      auto mac = parseMac(text);
      if (!mac) return makeError(Errc::Invalid, "identity records: bad MAC '" + text + "' for server " + r.server);
      if (!macs.insert(*mac).second)
        return makeError(Errc::Conflict, "identity records: MAC " + text + " appears twice");
      held.macs.push_back(*mac);
    }
    if (r.released) {
      released.push_back(Released{r.server, std::move(held)});
    } else if (byServer.count(r.server)) {
      return makeError(Errc::Conflict, "identity records: server " + r.server + " appears twice");
    } else {
      byServer.emplace(r.server, std::move(held));
    }
  }
  poolNames_ = std::move(poolNames);
  byServer_ = std::move(byServer);
  released_ = std::move(released);
  usedUuids_ = std::move(uuids);
  usedMacs_ = std::move(macs);
  cursors_.assign(pools_.size(), Cursor{});
  for (const auto& [server, held] : byServer_) advanceCursors(held);
  for (const auto& r : released_) advanceCursors(r.held);
  return okStatus();
}

}  // namespace loom::pool
