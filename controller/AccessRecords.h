// The access records' text in a store (tokens, audit lines: controller/StateStore.h): one
// JSON object each, written and read here by every backend (SQLite's body column, etcd's
// value, a standby's warm copy), so a new field is one edit.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "controller/StateStore.h"

namespace loom::controller {

std::string tokenJson(const TokenRecord& token);
// nullopt when the text is not a token record (no id or no hash).
std::optional<TokenRecord> tokenFromJson(const std::string& text);

// The id is the record's key, not part of its text.
std::string auditJson(const AuditRecord& record);
std::optional<AuditRecord> auditFromJson(std::uint64_t id, const std::string& text);

}  // namespace loom::controller
