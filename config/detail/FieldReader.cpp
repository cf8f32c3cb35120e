#include "config/detail/FieldReader.h"

#include <algorithm>
#include <cctype>
#include <charconv>

#include "config/Spelling.h"
#include "config/ValueSyntax.h"

namespace loom::config::detail {

Location Source::locate(int line, int column) const {
  if (line < 0 || column < 0) return Location{file, 0, 0};
  return Location{file, firstLine + line + 1, column + 1};
}

std::string describe(const YamlNode& node) {
  switch (node.type()) {
    case YamlNode::Type::Map:
      return "a mapping";
    case YamlNode::Type::Sequence:
      return "a sequence";
    case YamlNode::Type::Scalar:
      return "'" + node.scalar() + "'";
    case YamlNode::Type::Null:
      return "nothing";
  }
  return "something else";
}

std::optional<std::int64_t> parseInteger(std::string_view text) {
  if (text.starts_with('+')) text.remove_prefix(1);
  std::int64_t value = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || p != text.data() + text.size()) return std::nullopt;
  return value;
}

std::optional<bool> parseBoolean(std::string_view text) {
  std::string s(text);
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  // YAML 1.1's words, which yaml-cpp and most operators' habits follow.
  if (s == "true" || s == "yes" || s == "on") return true;
  if (s == "false" || s == "no" || s == "off") return false;
  return std::nullopt;
}

MapReader::MapReader(const YamlNode& map, const Source& source, Diagnostics& diagnostics, std::string context,
                     std::string path, std::vector<std::string> known)
    : source_(source), diagnostics_(diagnostics), context_(std::move(context)), path_(std::move(path)) {
  where_ = source_.locate(map);
  if (!map.isMap()) return;  // callers check the type and report it in their own words
  for (std::size_t i = 0; i < map.size(); ++i) {
    Entry entry{map.key(i).scalar(), &map.key(i), &map.value(i)};
    Location keyLocation = source_.locate(*entry.keyNode);
    if (!entry.keyNode->isScalar()) {
      diagnostics_.error(keyLocation, context_ + ": field names must be plain words, got " + describe(*entry.keyNode));
      continue;
    }
    if (const Entry* first = find(entry.key)) {
      diagnostics_.error(keyLocation, context_ + ": field '" + path_ + entry.key + "' is given twice (first at " +
                                          source_.locate(*first->keyNode).format() + ")");
      continue;
    }
    if (std::find(known.begin(), known.end(), entry.key) == known.end()) {
      if (diagnostics_.full()) {  // counted, not kept: spare the did-you-mean
        diagnostics_.error(keyLocation, {});
        continue;
      }
      std::string message = context_ + ": unknown field '" + path_ + entry.key + "'";
      if (auto near = closestMatch(entry.key, known)) {
        message += " (did you mean '" + *near + "'?)";
      } else {
        std::string list;
        for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
        message += " (expected one of: " + list + ")";
      }
      diagnostics_.error(keyLocation, message);
      continue;
    }
    entries_.push_back(std::move(entry));
  }
}

const MapReader::Entry* MapReader::find(std::string_view key) const {
  for (const auto& e : entries_) {
    if (e.key == key) return &e;
  }
  return nullptr;
}

const YamlNode* MapReader::node(std::string_view key) const {
  const Entry* e = find(key);
  return e ? e->value : nullptr;
}

Location MapReader::keyAt(std::string_view key) const {
  const Entry* e = find(key);
  return e ? source_.locate(*e->keyNode) : where_;
}

Location MapReader::valueAt(std::string_view key) const {
  const Entry* e = find(key);
  if (!e) return where_;
  // An empty value has no position of its own worth showing: point at its key.
  if (e->value->isNull()) return source_.locate(*e->keyNode);
  Location at = source_.locate(*e->value);
  return at.line == 0 ? source_.locate(*e->keyNode) : at;
}

void MapReader::error(std::string_view key, const std::string& message) const {
  diagnostics_.error(valueAt(key), context_ + ": " + field(key) + ": " + message);
}

void MapReader::missing(std::string_view key, const std::string& why) const {
  diagnostics_.error(where_, context_ + ": missing required field '" + field(key) + "'" + why);
}

std::optional<std::string> MapReader::scalar(std::string_view key, const YamlNode& value, const char* expected) const {
  if (!value.isScalar()) {
    error(key, std::string("expected ") + expected + ", got " + describe(value));
    return std::nullopt;
  }
  return value.scalar();
}

std::optional<std::string> MapReader::string(std::string_view key, Need need) const {
  const YamlNode* value = node(key);
  if (!value) {
    if (need == Need::Required) missing(key);
    return std::nullopt;
  }
  auto text = scalar(key, *value, "a string");
  if (text && text->empty() && need == Need::Required) {
    error(key, "expected a non-empty string");
    return std::nullopt;
  }
  return text;
}

std::optional<std::int64_t> MapReader::integer(std::string_view key, std::int64_t min, std::int64_t max,
                                               Need need) const {
  const YamlNode* value = node(key);
  if (!value) {
    if (need == Need::Required) missing(key);
    return std::nullopt;
  }
  auto text = scalar(key, *value, "an integer");
  if (!text) return std::nullopt;
  auto number = parseInteger(*text);
  if (!number) {
    error(key, "expected an integer, got '" + *text + "'");
    return std::nullopt;
  }
  if (*number < min || *number > max) {
    std::string range =
        max == INT64_MAX ? "at least " + std::to_string(min) : std::to_string(min) + ".." + std::to_string(max);
    error(key, "expected an integer " + range + ", got " + std::to_string(*number));
    return std::nullopt;
  }
  return number;
}

std::optional<bool> MapReader::boolean(std::string_view key, Need need) const {
  const YamlNode* value = node(key);
  if (!value) {
    if (need == Need::Required) missing(key);
    return std::nullopt;
  }
  auto text = scalar(key, *value, "true or false");
  if (!text) return std::nullopt;
  auto flag = parseBoolean(*text);
  if (!flag) error(key, "expected true or false, got '" + *text + "'");
  return flag;
}

std::optional<pool::MiB> MapReader::size(std::string_view key, Need need, bool allowZero) const {
  const YamlNode* value = node(key);
  if (!value) {
    if (need == Need::Required) missing(key);
    return std::nullopt;
  }
  auto text = scalar(key, *value, "a size (e.g. 4GiB)");
  if (!text) return std::nullopt;
  auto mib = parseSize(*text);
  if (!mib) {
    error(key, mib.error().message);
    return std::nullopt;
  }
  if (*mib == 0 && !allowZero) {
    error(key, "expected a size greater than zero, got '" + *text + "'");
    return std::nullopt;
  }
  return *mib;
}

std::optional<std::vector<std::string>> MapReader::stringList(std::string_view key, Need need, Origin* origin) const {
  const YamlNode* value = node(key);
  if (!value) {
    if (need == Need::Required) missing(key);
    return std::nullopt;
  }
  std::vector<std::string> out;
  if (value->isScalar()) {
    if (origin) origin->fields[field(key) + "[0]"] = valueAt(key);
    out.push_back(value->scalar());
    return out;
  }
  if (!value->isSequence()) {
    error(key, "expected a string or a list of strings, got " + describe(*value));
    return std::nullopt;
  }
  bool good = true;
  for (std::size_t i = 0; i < value->size(); ++i) {
    const YamlNode& item = value->item(i);
    std::string itemField = field(key) + "[" + std::to_string(i) + "]";
    if (!item.isScalar()) {
      diagnostics_.error(source_.locate(item),
                         context_ + ": " + itemField + ": expected a string, got " + describe(item));
      good = false;
      continue;
    }
    if (origin) origin->fields[itemField] = source_.locate(item);
    out.push_back(item.scalar());
  }
  if (!good) return std::nullopt;
  return out;
}

void MapReader::remember(Origin& origin, std::string_view key) const {
  if (has(key)) origin.fields[field(key)] = valueAt(key);
}

}  // namespace loom::config::detail
