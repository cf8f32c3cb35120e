// Internal (never included by a public header): reading one YAML mapping field by field
// with typed accessors that report every problem with its location, the field and what
// was expected, and carry on.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/detail/Diagnostics.h"
#include "config/detail/YamlNode.h"
#include "pool/Model.h"

namespace loom::config::detail {

// One YAML document's origin: a node's line and column are relative to the text it was
// parsed from, which is one document of the file starting at `firstLine` (0-based).
struct Source {
  std::string file;
  int firstLine = 0;
  // `line` and `column` 0-based within the document; negative when unknown.
  Location locate(int line, int column) const;
  Location locate(const YamlNode& node) const { return locate(node.line(), node.column()); }
};

// "a mapping", "a sequence", "'text'", "nothing": how a wrong value is quoted back.
std::string describe(const YamlNode& node);

enum class Need { Optional, Required };

class MapReader {
 public:
  // `context` prefixes every message ("Server 'web'"); `path` prefixes field names for
  // nested mappings ("nics[0]."). Duplicate keys and keys outside `known` are reported
  // here, once, with a did-you-mean when a known key is within two edits.
  MapReader(const YamlNode& map, const Source& source, Diagnostics& diagnostics, std::string context, std::string path,
            std::vector<std::string> known);

  bool has(std::string_view key) const { return find(key) != nullptr; }
  // The value node, or nullptr when absent.
  const YamlNode* node(std::string_view key) const;
  Location at() const { return where_; }
  Location keyAt(std::string_view key) const;
  Location valueAt(std::string_view key) const;  // falls back to the key for empty values
  std::string field(std::string_view key) const { return path_ + std::string(key); }
  const std::string& context() const { return context_; }
  void setContext(std::string context) { context_ = std::move(context); }

  // Report a problem with a field's value: "CONTEXT: PATH.KEY: MESSAGE" at the value.
  void error(std::string_view key, const std::string& message) const;
  // Report "missing required field 'KEY'" at the mapping.
  void missing(std::string_view key, const std::string& why = "") const;

  // Typed accessors: nullopt when absent (reported if Required) or wrong (reported).
  std::optional<std::string> string(std::string_view key, Need need = Need::Optional) const;
  std::optional<std::int64_t> integer(std::string_view key, std::int64_t min, std::int64_t max,
                                      Need need = Need::Optional) const;
  std::optional<bool> boolean(std::string_view key, Need need = Need::Optional) const;
  // A size in MiB; zero is refused unless allowZero.
  std::optional<pool::MiB> size(std::string_view key, Need need = Need::Optional, bool allowZero = false) const;
  // One of a fixed set of words; `choices` is how they are listed in the message ("xen or kvm").
  template <class E>
  std::optional<E> choice(std::string_view key, std::optional<E> (*parse)(std::string_view), const char* choices,
                          Need need = Need::Optional) const {
    auto text = string(key, need);
    if (!text) return std::nullopt;
    auto value = parse(*text);
    if (!value) error(key, std::string("expected ") + choices + ", got '" + *text + "'");
    return value;
  }
  // A string or a list of strings, each located as "KEY[i]" in `origin` when given.
  std::optional<std::vector<std::string>> stringList(std::string_view key, Need need = Need::Optional,
                                                     Origin* origin = nullptr) const;

  // Records where a field's value is, for checks that run after parsing.
  void remember(Origin& origin, std::string_view key) const;

  const Source& source() const { return source_; }
  Diagnostics& diagnostics() const { return diagnostics_; }

 private:
  struct Entry {
    std::string key;
    const YamlNode* keyNode;
    const YamlNode* value;
  };
  const Entry* find(std::string_view key) const;
  std::optional<std::string> scalar(std::string_view key, const YamlNode& value, const char* expected) const;

  const Source& source_;
  Diagnostics& diagnostics_;
  std::string context_;
  std::string path_;
  Location where_;
  std::vector<Entry> entries_;
};

// Scalar parsing shared with callers that walk sequences themselves.
std::optional<std::int64_t> parseInteger(std::string_view text);
std::optional<bool> parseBoolean(std::string_view text);

}  // namespace loom::config::detail
