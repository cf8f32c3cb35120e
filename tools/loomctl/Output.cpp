#include "tools/loomctl/Output.h"

#include <algorithm>
#include <cctype>
#include <ostream>

namespace loom::loomctl {

std::string styled(std::string_view text, Style style, bool color) {
  if (!color || style == Style::Plain || text.empty()) return std::string(text);
  const char* code = "";
  switch (style) {
    case Style::Plain:
      break;
    case Style::Good:
      code = "\033[32m";
      break;
    case Style::Notice:
      code = "\033[36m";
      break;
    case Style::Warning:
      code = "\033[33m";
      break;
    case Style::Bad:
      code = "\033[31m";
      break;
    case Style::Dim:
      code = "\033[2m";
      break;
    case Style::Bold:
      code = "\033[1m";
      break;
  }
  return std::string(code) + std::string(text) + "\033[0m";
}

Style styleForState(std::string_view state) {
  static const std::pair<std::string_view, Style> kStyles[] = {
      {"running", Style::Good},     {"active", Style::Good},      {"member", Style::Good},
      {"spare", Style::Notice},     {"available", Style::Notice}, {"borrowed", Style::Notice},
      {"unassigned", Style::Dim},   {"stopped", Style::Dim},      {"retired", Style::Dim},
      {"suspect", Style::Warning},  {"moving", Style::Warning},   {"maintenance", Style::Warning},
      {"starting", Style::Warning}, {"stopping", Style::Warning}, {"placing", Style::Warning},
      {"pending", Style::Warning},  {"conflict", Style::Bad},     {"failed", Style::Bad},
      {"fenced", Style::Bad},       {"unplaceable", Style::Bad},
  };
  for (auto [name, style] : kStyles) {
    if (name == state) return style;
  }
  return Style::Plain;
}

Table::Table(std::vector<Column> columns) : columns_(std::move(columns)) {}

void Table::addRow(std::vector<Cell> cells) {
  cells.resize(std::max(cells.size(), columns_.size()), Cell(""));
  rows_.push_back(std::move(cells));
}

void Table::render(std::ostream& out, bool color) const {
  std::vector<std::size_t> widths(columns_.size());
  for (std::size_t c = 0; c < columns_.size(); ++c) {
    widths[c] = columns_[c].header.size();
    for (const auto& row : rows_) widths[c] = std::max(widths[c], row[c].text.size());
  }
  auto line = [&](const std::vector<Cell>& cells) {
    std::string text;
    for (std::size_t c = 0; c < columns_.size(); ++c) {
      const Cell& cell = cells[c];
      std::string pad(widths[c] - cell.text.size(), ' ');
      bool last = c + 1 == columns_.size();
      if (c > 0) text += "  ";
      if (columns_[c].align == Align::Right) {
        text += pad + styled(cell.text, cell.style, color);
      } else {
        text += styled(cell.text, cell.style, color);
        if (!last) text += pad;  // no trailing blanks at the end of a line
      }
    }
    // Empty trailing cells would leave blanks at the end of the line.
    while (!text.empty() && text.back() == ' ') text.pop_back();
    out << text << '\n';
  };
  std::vector<Cell> header;
  for (const auto& column : columns_) {
    std::string upper = column.header;
    std::transform(upper.begin(), upper.end(), upper.begin(),
                   [](unsigned char ch) { return static_cast<char>(std::toupper(ch)); });
    header.emplace_back(upper, Style::Bold);
  }
  line(header);
  for (const auto& row : rows_) line(row);
}

namespace {

bool plainYamlScalar(const std::string& s) {
  if (s.empty()) return false;
  static const char* kReserved[] = {"true", "false", "yes", "no", "on", "off", "y", "n", "null", "~"};
  std::string lower = s;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (const char* word : kReserved) {
    if (lower == word) return false;
  }
  // Anything a YAML reader could take as a number stays quoted.
  if (std::isdigit(static_cast<unsigned char>(s[0])) || s[0] == '-' || s[0] == '+' || s[0] == '.') {
    bool numeric = std::all_of(s.begin(), s.end(), [](unsigned char c) {
      return std::isdigit(c) || c == '.' || c == '-' || c == '+' || c == 'e' || c == 'E' || c == '_' || c == ':' ||
             c == 'x' || c == 'o';
    });
    if (numeric) return false;
  }
  if (!std::isalnum(static_cast<unsigned char>(s[0])) && s[0] != '/' && s[0] != '_' && s[0] != '.') return false;
  if (s.back() == ' ' || s.back() == ':') return false;
  for (char c : s) {
    if (static_cast<unsigned char>(c) < 0x20 || c == '#' || c == '"' || c == '\'' || c == '{' || c == '}' || c == '[' ||
        c == ']' || c == ',' || c == '\\') {
      return false;
    }
  }
  return s.find(": ") == std::string::npos;
}

std::string scalar(const Json& value) {
  if (value.is_null()) return "null";
  if (value.is_string()) {
    const auto& s = value.get_ref<const std::string&>();
    // A JSON string literal is a valid YAML double-quoted scalar.
    return plainYamlScalar(s) ? s : value.dump();
  }
  return value.dump();
}

bool isCollection(const Json& value) { return (value.is_object() || value.is_array()) && !value.empty(); }

void emit(const Json& value, int indent, std::string& out);

void emitEntry(const std::string& prefix, const Json& value, int indent, std::string& out) {
  if (isCollection(value)) {
    out += prefix + "\n";
    emit(value, indent, out);
  } else {
    out += prefix + " " + (value.is_object() ? "{}" : value.is_array() ? "[]" : scalar(value)) + "\n";
  }
}

void emit(const Json& value, int indent, std::string& out) {
  const std::string pad(static_cast<std::size_t>(indent), ' ');
  if (value.is_object()) {
    for (const auto& [key, item] : value.items()) {
      emitEntry(pad + scalar(Json(key)) + ":", item, indent + 2, out);
    }
  } else if (value.is_array()) {
    for (const auto& item : value) {
      if (item.is_object() && !item.empty()) {
        // "- first: 1" then the other keys aligned under it.
        std::string nested;
        emit(item, indent + 2, nested);
        out += pad + "- " + nested.substr(static_cast<std::size_t>(indent) + 2);
      } else if (isCollection(item)) {
        out += pad + "-\n";
        emit(item, indent + 2, out);
      } else {
        emitEntry(pad + "-", item, indent + 2, out);
      }
    }
  } else {
    out += pad + scalar(value) + "\n";
  }
}

}  // namespace

std::string toYaml(const Json& value) {
  if (!isCollection(value)) return (value.is_object() ? "{}" : value.is_array() ? "[]" : scalar(value)) + "\n";
  std::string out;
  emit(value, 0, out);
  return out;
}

void printStructured(const Context& context, const Json& value) {
  if (context.output == OutputFormat::Yaml) {
    *context.out << toYaml(value);
  } else {
    *context.out << value.dump(2) << '\n';
  }
}

std::string countOf(std::size_t n, std::string_view singular, std::string_view plural) {
  return std::to_string(n) + " " + std::string(n == 1 ? singular : plural);
}

}  // namespace loom::loomctl
