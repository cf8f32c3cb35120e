// Internal: where things are in the input and the list of problems found so far.
// Free of yaml-cpp so the cross-reference checks need no YAML at all.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "config/Loader.h"

namespace loom::config::detail {

// A position in an input, 1-based (0 when unknown).
struct Location {
  std::string file;
  int line = 0;
  int column = 0;
  std::string format() const { return file + ":" + std::to_string(line) + ":" + std::to_string(column); }
};

// The problems found in one load. Only the first kMaxKept are kept (a compiler's error
// limit): an input of a million bad lines must not cost a million messages of memory, nor
// the work of building them (`full()` lets a costly message be skipped); the rest are
// counted and summed up in one last diagnostic.
class Diagnostics {
 public:
  static constexpr std::size_t kMaxKept = 1000;

  void error(const Location& at, std::string message) {
    if (full()) {
      if (dropped_++ == 0) firstDroppedFile_ = at.file;
      return;
    }
    list_.push_back(Diagnostic{at.file, at.line, at.column, std::move(message)});
  }
  bool empty() const { return list_.empty(); }
  std::size_t size() const { return list_.size() + dropped_; }
  // Further errors are counted, not kept.
  bool full() const { return list_.size() >= kMaxKept; }
  // File order (as given), then position: how a compiler lists them; then "N more".
  std::vector<Diagnostic> sorted(const std::vector<std::string>& fileOrder) &&;

 private:
  std::vector<Diagnostic> list_;
  std::size_t dropped_ = 0;
  std::string firstDroppedFile_;
};

// Where one declared object and its fields came from, so checks that run after parsing
// (references, duplicates) can point at the exact value.
struct Origin {
  Location object;                         // the document's mapping
  Location name;                           // the name's value
  std::map<std::string, Location> fields;  // "pool", "nics[0].network", "blades.names[1]" -> value
  std::string kind;                        // "Server"
  std::string replicaOf;                   // the template for an expanded replica
  const Location& at(const std::string& field) const {
    auto it = fields.find(field);
    return it == fields.end() ? object : it->second;
  }
};

}  // namespace loom::config::detail
