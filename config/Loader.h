// Loading YAML declarations and fabric files into the pool model. yaml-cpp stays inside
// config/: callers see plain structs and diagnostics.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "pool/Model.h"

namespace loom::config {

// One problem found in an input, located precisely. `line` and `column` are 1-based;
// 0 when the problem concerns the input as a whole.
struct Diagnostic {
  std::string file;
  int line = 0;
  int column = 0;
  std::string message;  // names the field and what was expected
  // "FILE:LINE:COL: message", or "FILE: message" when line is 0
  std::string format() const;
};

struct DeclarationsResult {
  pool::Declarations declarations;  // complete only when diagnostics is empty
  std::vector<Diagnostic> diagnostics;
  // (kind, name) of every object the input itself declared, in input order (replicas
  // expanded). Filled by loadDeclarationTextOnto, whose `declarations` also holds the
  // applied objects, so callers can tell what the input named (delete, diffs).
  std::vector<std::pair<std::string, std::string>> objects;
  bool ok() const { return diagnostics.empty(); }
};

// Loads and validates every document of every file as one set of declarations (names
// are checked across files; references must resolve within the set). Reports every
// error of every file, not only the first.
DeclarationsResult loadDeclarationFiles(const std::vector<std::string>& paths);

// The same for (name, text) pairs read by other means (standard input, a directory).
DeclarationsResult loadDeclarationSources(const std::vector<std::pair<std::string, std::string>>& sources);

// The same for text received by other means (the HTTP API's body); `sourceName` is used
// as the file name in diagnostics.
DeclarationsResult loadDeclarationText(const std::string& text, const std::string& sourceName);

// Validates `text` as a change to `applied` (declarations accepted earlier, e.g. the
// controller's current state): objects of `text` replace applied objects of the same kind
// and name, new ones are appended, and the union is checked as one set, so a body may
// refer to objects applied before (servers.yaml after pools.yaml). Diagnostics point into
// `text` as `sourceName`; a problem found in an applied object the text did not replace
// (say, a server whose pool the text moved to another partition) is reported against the
// file "applied state". On success `declarations` is the merged set, in the order
// "applied objects keep their place, new ones are appended".
DeclarationsResult loadDeclarationTextOnto(const pool::Declarations& applied, const std::string& text,
                                           const std::string& sourceName);

// Checks a set of declarations that did not come from text (e.g. what would remain after
// a delete) with the same cross-object rules as a load. Diagnostics name `sourceName`
// (objects have no line numbers).
DeclarationsResult validateDeclarations(const pool::Declarations& declarations, const std::string& sourceName);

// For delete: only each document's kind and name matter (a Server template with
// `replicas: N` names NAME-0..NAME-N-1, as apply expands it); other fields are not
// checked, so a trimmed file of `kind:`/`name:` pairs works as well as the applied one.
// Fills `objects`; diagnostics for YAML syntax, a missing/unknown kind or a missing name.
DeclarationsResult loadDeclarationNames(const std::string& text, const std::string& sourceName);

struct FabricResult {
  pool::Fabric fabric;
  std::vector<Diagnostic> diagnostics;
  bool ok() const { return diagnostics.empty(); }
};

// A fabric file: `blades: [{name, chassis, slot, cores, memory, hypervisor, ...}]`.
FabricResult loadFabricFile(const std::string& path);
FabricResult loadFabricText(const std::string& text, const std::string& sourceName);

}  // namespace loom::config
