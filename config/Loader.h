// Loading YAML declarations and fabric files into the pool model. yaml-cpp stays inside
// config/: callers see plain structs and diagnostics.
#pragma once

#include <string>
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
  pool::Declarations declarations;    // complete only when diagnostics is empty
  std::vector<Diagnostic> diagnostics;
  bool ok() const { return diagnostics.empty(); }
};

// Loads and validates every document of every file as one set of declarations (names
// are checked across files; references must resolve within the set). Reports every
// error of every file, not only the first.
DeclarationsResult loadDeclarationFiles(const std::vector<std::string>& paths);

// The same for text received by other means (the HTTP API's body); `sourceName` is used
// as the file name in diagnostics.
DeclarationsResult loadDeclarationText(const std::string& text, const std::string& sourceName);

struct FabricResult {
  pool::Fabric fabric;
  std::vector<Diagnostic> diagnostics;
  bool ok() const { return diagnostics.empty(); }
};

// A fabric file: `blades: [{name, chassis, slot, cores, memory, hypervisor, ...}]`.
FabricResult loadFabricFile(const std::string& path);
FabricResult loadFabricText(const std::string& text, const std::string& sourceName);

}  // namespace loom::config
