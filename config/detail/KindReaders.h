// Internal to the declaration parser (DeclarationParser.cpp): what the readers of the
// declaration kinds share, and the kinds read in files of their own. A reader takes the
// MapReader of one document (kind: ...), reports every problem as a diagnostic and carries
// on, and records the object with its origin in `out` when it has a usable name.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "config/detail/DeclarationParser.h"
#include "config/detail/FieldReader.h"

namespace loom::config::detail {

// Names become domain names, file names and URL path segments: at most this long.
inline constexpr std::size_t kMaxName = 63;

// "Server 'web'": the kind and the mapping's name if it has a plain scalar one, for
// messages about fields before `name`. A name too long to be valid is cut (its own
// error quotes it whole): every message of the object repeats this.
std::string contextFor(const std::string& kind, const YamlNode& map);
// Reads and checks `name` (1..kMaxName letters, digits, '-', '_', '.'); records its
// origin. Empty when unusable (reported).
std::optional<std::string> readName(const MapReader& r, Origin& origin);
Origin originOf(const MapReader& r, const std::string& kind);
// Counts `copies` objects of `each` against kMaxExpandedObjects. The first object that
// would go past it is reported (at `key`, or the object when empty) and it and every later
// one are left out; references to them are then not reported (the set is incomplete).
bool admit(const MapReader& r, LocatedDeclarations& out, std::size_t each, std::int64_t copies,
           std::string_view key = {});

// kind: Server (ServerParser.cpp).
void readServer(const MapReader& r, LocatedDeclarations& out);

}  // namespace loom::config::detail
