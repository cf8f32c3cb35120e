// Internal: splitting a multi-document YAML text into documents that are parsed one by
// one, so a syntax error in one document still lets every other document be checked.
#pragma once

#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "config/detail/Diagnostics.h"
#include "config/detail/FieldReader.h"

namespace loom::config::detail {

struct Document {
  YAML::Node node;
  Source source;
};

struct Documents {
  std::vector<Document> documents;  // non-empty documents, in order
  bool incomplete = false;          // some document had a syntax error (reported)
};

// Parses every document of `text`. Empty documents (only comments) are skipped.
Documents parseDocuments(const std::string& text, const std::string& file, Diagnostics& diagnostics);

}  // namespace loom::config::detail
