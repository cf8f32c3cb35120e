// The text forms of Loom's value types: sizes ("4GiB"), MACs, MAC ranges and UUID
// ranges. Pure functions shared by the loader, loomctl and the controller's API, so a
// value is spelled the same way everywhere.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "loom/Result.h"
#include "pool/Model.h"

namespace loom::config {

// "512MiB", "4GiB", "1.5GiB", "1TiB" (units case-insensitive, optional space) or a bare
// integer meaning MiB. Sizes are whole MiB: "1.0001GiB" is rejected rather than
// rounded. The error message says what was expected and, for decimal units such as
// "4GB", suggests the binary spelling.
Result<pool::MiB> parseSize(std::string_view text);

// The shortest exact spelling: 4096 -> "4GiB", 1536 -> "1536MiB", 0 -> "0MiB".
std::string formatSize(pool::MiB mib);

// "52:54:00:10:00:0a" (case-insensitive) -> 48-bit value.
std::optional<std::uint64_t> parseMac(std::string_view text);
std::string formatMac(std::uint64_t mac);  // lower-case, colon-separated

// "FIRST-LAST", inclusive, FIRST <= LAST, unicast (the multicast bit of the first octet
// clear: a guest NIC cannot have a group address).
Result<pool::MacRange> parseMacRange(std::string_view text);

// A canonical 8-4-4-4-12 hex UUID.
bool isUuid(std::string_view text);

// "PREFIX/BITS": the low BITS (1..64) bits of PREFIX vary and must be zero in PREFIX.
Result<pool::UuidRange> parseUuidRange(std::string_view text);
// The range as parseUuidRange reads it: "4c4f4f4d-0000-0000-0000-000000000000/16".
std::string formatUuidRange(const pool::UuidRange& range);

}  // namespace loom::config
