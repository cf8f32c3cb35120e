#include "controller/access/TokenTable.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <stdexcept>

namespace loom::controller::access {
namespace {

constexpr std::size_t kIdBytes = 6;       // 12 hex digits: public, only needs to be unique
constexpr std::size_t kSecretBytes = 32;  // 256 bits
constexpr std::string_view kPrefix = "loom_";

std::string hex(const unsigned char* bytes, std::size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(n * 2);
  for (std::size_t i = 0; i < n; ++i) {
    out += digits[bytes[i] >> 4];
    out += digits[bytes[i] & 15];
  }
  return out;
}

std::string randomHex(std::size_t bytes) {
  std::vector<unsigned char> buf(bytes);
  // Failure means the CSPRNG is not seeded: no token may be made from anything less.
  if (RAND_bytes(buf.data(), static_cast<int>(buf.size())) != 1) throw std::runtime_error("RAND_bytes failed");
  return hex(buf.data(), buf.size());
}

bool lowerHex(std::string_view s) { return s.find_first_not_of("0123456789abcdef") == std::string_view::npos; }

}  // namespace

std::string TokenTable::hashSecret(std::string_view secret) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(secret.data(), secret.size(), digest, &len, EVP_sha256(), nullptr) != 1)
    throw std::runtime_error("EVP_Digest(SHA-256) failed");
  return hex(digest, len);
}

std::string TokenTable::newToken() {
  return std::string(kPrefix) + randomHex(kIdBytes) + "_" + randomHex(kSecretBytes);
}

std::optional<TokenParts> TokenTable::parse(std::string_view token) {
  if (token.size() != kPrefix.size() + 2 * kIdBytes + 1 + 2 * kSecretBytes ||
      token.substr(0, kPrefix.size()) != kPrefix)
    return std::nullopt;
  token.remove_prefix(kPrefix.size());
  const std::string_view id = token.substr(0, 2 * kIdBytes), secret = token.substr(2 * kIdBytes + 1);
  if (token[2 * kIdBytes] != '_' || !lowerHex(id) || !lowerHex(secret)) return std::nullopt;
  return TokenParts{std::string(id), std::string(secret)};
}

Result<TokenRecord> TokenTable::recordOf(const std::string& token, Role role, const std::string& description,
                                         std::int64_t nowMs) {
  auto parts = parse(token);
  if (!parts) return makeError(Errc::Invalid, "not a Loom token (loom_ID_SECRET: 12 and 64 hex digits)");
  TokenRecord r;
  r.id = parts->id;
  r.hash = hashSecret(parts->secret);
  r.role = roleName(role);
  r.description = description;
  r.createdMs = nowMs;
  return r;
}

Result<TokenTable::Minted> TokenTable::mint(Role role, const std::string& partition, const std::string& description,
                                            std::int64_t nowMs, std::int64_t expiresMs) {
  if (scoped(role) && partition.empty())
    return makeError(Errc::Invalid, std::string("role ") + roleName(role) + " needs a partition");
  if (!scoped(role) && !partition.empty())
    return makeError(Errc::Invalid, std::string("role ") + roleName(role) +
                                        " is not scoped to a partition (partition-admin and partition-reader are)");
  Minted m;
  m.token = newToken();
  auto r = recordOf(m.token, role, description, nowMs);
  if (!r) return r.error();
  m.record = std::move(*r);
  m.record.partition = partition;
  m.record.expiresMs = expiresMs;
  return m;
}

void TokenTable::restore(std::vector<TokenRecord> records) {
  tokens_.clear();
  for (auto& r : records) put(std::move(r));
}

void TokenTable::put(TokenRecord record) {
  std::string id = record.id;
  tokens_.insert_or_assign(std::move(id), std::move(record));
}

const TokenRecord* TokenTable::find(const std::string& id) const {
  auto it = tokens_.find(id);
  return it == tokens_.end() ? nullptr : &it->second;
}

std::optional<Principal> TokenTable::authenticate(std::string_view authorization, std::int64_t nowMs) const {
  // "Bearer" is case-insensitive (RFC 6750 via RFC 7235); then one or more spaces.
  constexpr std::string_view kScheme = "bearer";
  if (authorization.size() <= kScheme.size()) return std::nullopt;
  for (std::size_t i = 0; i < kScheme.size(); ++i)
    if ((authorization[i] | 0x20) != kScheme[i]) return std::nullopt;
  std::string_view rest = authorization.substr(kScheme.size());
  if (rest.front() != ' ') return std::nullopt;
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  while (!rest.empty() && rest.back() == ' ') rest.remove_suffix(1);
  auto parts = parse(rest);
  if (!parts) return std::nullopt;
  const std::string hash = hashSecret(parts->secret);
  const TokenRecord* r = find(parts->id);
  if (!r || r->hash.size() != hash.size() || CRYPTO_memcmp(r->hash.data(), hash.data(), hash.size()) != 0)
    return std::nullopt;
  if (r->revokedMs != 0 || (r->expiresMs != 0 && nowMs >= r->expiresMs)) return std::nullopt;
  auto role = parseRole(r->role);
  if (!role || (scoped(*role) && r->partition.empty())) return std::nullopt;
  return Principal{r->id, *role, scoped(*role) ? r->partition : std::string()};
}

}  // namespace loom::controller::access
