// Internal: YAML documents -> declarations with the origin of every object, then the
// checks that need the whole set (names, references, partitions, identities).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "config/detail/Diagnostics.h"
#include "config/detail/YamlDocuments.h"
#include "pool/Model.h"

namespace loom::config::detail {

// Replicas one Server template may ask for.
inline constexpr std::int64_t kMaxReplicas = 100'000;
// What one load may declare once templates are expanded, a server counting 1 + its NICs
// + its disks (what each replica copies): a template is a few lines of text, so without
// this `replicas` would let a small input allocate without bound. A replica costs ~900
// bytes; 500,000 takes 100,000 servers with two NICs and a disk each (DESIGN's fabric,
// applied as templates the way tests/bench does), so a hostile body can cost what that
// apply costs (~450 MB for a moment), never more.
inline constexpr std::size_t kMaxExpandedObjects = 500'000;

// Declarations plus, for each object (same index), where it was declared.
struct LocatedDeclarations {
  pool::Declarations declarations;
  std::vector<Origin> partitions, networks, identityPools, pools, servers, blades;
  // A document could not be parsed: an object it declared may be what a "missing"
  // reference names, so missing references are not reported (the syntax error is).
  bool incomplete = false;
  // Objects read so far, counted as kMaxExpandedObjects counts them.
  std::size_t expandedObjects = 0;
};

// Reads each document as one declaration (kind: ...). Objects with a name are kept even
// when some of their fields were wrong, so their names still resolve in the checks.
void readDeclarations(const Documents& documents, LocatedDeclarations& out, Diagnostics& diagnostics);

// Checks across objects and files: duplicate names, references, partitions, spare-pool
// rules, blades claimed twice, fixed identities held twice, overlapping identity ranges.
void checkDeclarations(const LocatedDeclarations& set, Diagnostics& diagnostics);

// Fabric files: `blades: [...]`, optionally `kind: Fabric`.
void readFabric(const Documents& documents, pool::Fabric& out, std::vector<Origin>& origins, Diagnostics& diagnostics);
void checkFabric(const pool::Fabric& fabric, const std::vector<Origin>& origins, Diagnostics& diagnostics);

}  // namespace loom::config::detail
