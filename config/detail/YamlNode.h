// Internal: one node of a parsed YAML document, as plain data. yaml-cpp's parser reports
// events (detail/YamlDocuments.cpp) and config builds these itself, so the size of what a
// parse may build is config's decision, not the library's (see config/README.md).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace loom::config::detail {

class YamlNode {
 public:
  enum class Type { Null, Scalar, Sequence, Map };

  YamlNode(Type type, int line, int column) : type_(type), line_(line), column_(column) {}

  Type type() const { return type_; }
  bool isNull() const { return type_ == Type::Null; }
  bool isScalar() const { return type_ == Type::Scalar; }
  bool isSequence() const { return type_ == Type::Sequence; }
  bool isMap() const { return type_ == Type::Map; }

  // 0-based, relative to the text the document was parsed from (as yaml-cpp's marks are);
  // -1 when unknown. An alias is the node it names, so it has that node's position.
  int line() const { return line_; }
  int column() const { return column_; }

  // A scalar's text ("" for other types).
  const std::string& scalar() const { return scalar_; }

  // Items of a sequence, entries of a mapping (in input order, duplicates kept); 0 otherwise.
  std::size_t size() const { return isMap() ? children_.size() / 2 : children_.size(); }
  const YamlNode& item(std::size_t i) const { return *children_[i]; }
  const YamlNode& key(std::size_t i) const { return *children_[2 * i]; }
  const YamlNode& value(std::size_t i) const { return *children_[2 * i + 1]; }
  // The value of the first entry whose key is the scalar `key`; nullptr when there is none
  // or this is not a mapping.
  const YamlNode* find(std::string_view key) const {
    if (!isMap()) return nullptr;
    for (std::size_t i = 0; i < children_.size(); i += 2) {
      if (children_[i]->isScalar() && children_[i]->scalar_ == key) return children_[i + 1];
    }
    return nullptr;
  }

 private:
  friend class YamlTreeBuilder;

  Type type_;
  int line_;
  int column_;
  std::string scalar_;
  std::vector<const YamlNode*> children_;  // items, or key, value, key, value, ...
};

}  // namespace loom::config::detail
