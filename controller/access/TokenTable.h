// The API's tokens (DESIGN.md section 8; controller/README.md, "Access"). A token is
// `loom_<id>_<secret>`: a public id (12 hex digits) and a secret of 256 random bits from
// OpenSSL's CSPRNG (64 hex digits), shown once when it is made. The store keeps only the
// SHA-256 of the secret: the secret is uniformly random and 256 bits long, so a fast hash
// is as good as a slow KDF here (there is no dictionary to try; a slow KDF would only
// slow every request), and a leaked store gives no usable token. Hashes are compared in
// constant time (CRYPTO_memcmp).
//
// One owner per table: the controller core's (leader) or a standby's copy (HTTP thread).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "controller/StateStore.h"
#include "controller/access/Policy.h"
#include "loom/Result.h"

namespace loom::controller::access {

// Who a valid token says the caller is.
struct Principal {
  std::string tokenId;
  Role role = Role::Reader;
  std::string partition;  // the scoped roles' partition; "" otherwise
};

// A token's two parts, as written: loom_<id>_<secret>.
struct TokenParts {
  std::string id;
  std::string secret;
};

class TokenTable {
 public:
  // A new token and its record (created now, expiring at `expiresMs`, 0: never). The
  // record is what the store keeps; `token` is shown once. Errc::Invalid for a scoped
  // role without a partition or an unscoped one with one.
  struct Minted {
    TokenRecord record;
    std::string token;
  };
  static Result<Minted> mint(Role role, const std::string& partition, const std::string& description,
                             std::int64_t nowMs, std::int64_t expiresMs);
  // The record of a token someone already holds (the first start's admin.token).
  static Result<TokenRecord> recordOf(const std::string& token, Role role, const std::string& description,
                                      std::int64_t nowMs);
  // A fresh token's text alone.
  static std::string newToken();
  // The parts of a well-formed token; nullopt for anything else.
  static std::optional<TokenParts> parse(std::string_view token);
  // Hex SHA-256 of `secret`.
  static std::string hashSecret(std::string_view secret);

  // Replaces the table (a restart, a standby's new copy).
  void restore(std::vector<TokenRecord> records);
  // Adds or replaces one (a token made, a token revoked).
  void put(TokenRecord record);
  const TokenRecord* find(const std::string& id) const;
  const std::map<std::string, TokenRecord>& all() const { return tokens_; }

  // The principal `authorization` (an HTTP Authorization header: "Bearer <token>")
  // stands for at wall-clock time `nowMs`; nullopt when there is no header, or it is
  // malformed, or the token is unknown, revoked, expired or its secret is wrong — one
  // answer for all, so a caller learns nothing from which.
  std::optional<Principal> authenticate(std::string_view authorization, std::int64_t nowMs) const;

 private:
  std::map<std::string, TokenRecord> tokens_;
};

}  // namespace loom::controller::access
