// What `-f` names for apply, delete, validate and plan: a file, `-` (standard input, read
// once), or a directory (its *.yaml and *.yml files, in name order, not recursing; a
// fabric file there is skipped with a note on `notes`). Read here, once, so a change is
// validated and sent from the same bytes.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <utility>
#include <vector>

#include "config/Loader.h"

namespace loom::loomctl {

struct DeclarationInputs {
  std::vector<std::pair<std::string, std::string>> sources;  // (name for diagnostics, text)

  // Throws CommandError for a path that cannot be read, a directory without YAML, or an
  // input larger than 16 MiB (loomd's body limit).
  static DeclarationInputs read(const std::vector<std::string>& args, std::ostream& notes);
  // Every document of every input as one set (config::loadDeclarationSources); a fabric
  // file given where declarations are expected is said plainly.
  config::DeclarationsResult load() const;
  std::vector<std::string> names() const;
};

// The `-f,--file` option the four commands share.
CLI::Option* addFileOption(CLI::App* cmd, std::vector<std::string>& files);

}  // namespace loom::loomctl
