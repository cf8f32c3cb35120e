// How loomctl prints: aligned tables for people (colour only on a terminal), JSON and
// YAML for automation. Commands build a JSON value once and either print it as-is or
// lay the same data out as a table, so every format carries the same facts.
#pragma once

#include <iosfwd>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "tools/loomctl/Context.h"

namespace loom::loomctl {

// Keys keep the order a command wrote them ("name" first), which reads better in YAML
// and tables than alphabetical order.
using Json = nlohmann::ordered_json;

enum class Style { Plain, Good, Notice, Warning, Bad, Dim, Bold };

// `text` wrapped in the ANSI sequence for `style` when `color`, else unchanged.
std::string styled(std::string_view text, Style style, bool color);

// The colour an operator expects for a blade/server state or a blade's role:
// running/active green, spare/available cyan, suspect/moving yellow, failed/unplaceable red.
Style styleForState(std::string_view state);

struct Cell {
  std::string text;
  Style style = Style::Plain;
  Cell(std::string t, Style s = Style::Plain) : text(std::move(t)), style(s) {}  // NOLINT: cells read as strings
  Cell(const char* t, Style s = Style::Plain) : text(t), style(s) {}             // NOLINT
};

class Table {
 public:
  enum class Align { Left, Right };
  struct Column {
    std::string header;
    Align align = Align::Left;
  };

  explicit Table(std::vector<Column> columns);
  // Rows shorter than the header are padded with empty cells.
  void addRow(std::vector<Cell> cells);
  bool empty() const { return rows_.empty(); }
  // Upper-case headers, columns two spaces apart, widths from the widest cell; colour
  // never changes alignment because widths are measured on the plain text.
  void render(std::ostream& out, bool color) const;

 private:
  std::vector<Column> columns_;
  std::vector<std::vector<Cell>> rows_;
};

// YAML for a JSON value: block style, strings quoted only where YAML would misread
// them ("on", "4", "a: b", ""), so the output loads back to the same value.
std::string toYaml(const Json& value);

// Prints `value` as JSON (indented) or YAML per the context; for table output the
// caller renders its own tables instead.
void printStructured(const Context& context, const Json& value);

// "1 pool", "2 pools", "1 identity pool".
std::string countOf(std::size_t n, std::string_view singular, std::string_view plural);

}  // namespace loom::loomctl
