// `fabric`: each chassis drawn as the front of its enclosure, a box per slot.
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <map>
#include <memory>

#include "tools/loomctl/Api.h"
#include "tools/loomctl/Commands.h"
#include "tools/loomctl/ListFilter.h"
#include "tools/loomctl/Views.h"

namespace loom::loomctl {

namespace {

bool utf8Terminal() {
  for (const char* var : {"LC_ALL", "LC_CTYPE", "LANG"}) {
    const char* v = std::getenv(var);
    if (v && *v) {
      std::string s = v;
      std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      return s.find("utf-8") != std::string::npos || s.find("utf8") != std::string::npos;
    }
  }
  return false;
}

// The front view of each enclosure: rows of `perRow` slots, a box per slot with the
// blade's name, state (coloured) and pool; an empty slot is drawn empty.
void drawFabric(Context& context, const Json& blades, int perRow) {
  // Wide enough for "maintenance" and the longest name or pool, within reason.
  std::size_t inner = 11;
  for (const auto& b : blades)
    for (const char* key : {"name", "pool"}) inner = std::max(inner, std::min<std::size_t>(text(b, key).size(), 18));
  // On a terminal too narrow for the row, fewer slots per row rather than wrapped boxes.
  if (perRow <= 0) {
    perRow = 8;
    winsize size{};
    if (::ioctl(STDOUT_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col > 0)
      while (perRow > 2 && static_cast<std::size_t>(perRow) * (inner + 3) + 1 > size.ws_col) perRow /= 2;
  }
  const bool unicode = utf8Terminal();
  const std::string h = unicode ? "─" : "-", v = unicode ? "│" : "|";
  auto corner = [&](int row, int col) -> std::string {  // row: 0 top, 1 middle, 2 bottom; col: 0 left, 1 inner, 2 right
    if (!unicode) return "+";
    static const char* kCorners[3][3] = {{"┌", "┬", "┐"}, {"├", "┼", "┤"}, {"└", "┴", "┘"}};
    return kCorners[row][col];
  };
  std::map<std::string, std::map<int, Json>> chassis;
  std::vector<Json> unslotted;
  for (const auto& b : blades) {
    const std::string c = text(b, "chassis");
    const int slot = b.contains("slot") && b["slot"].is_number_integer() ? b["slot"].get<int>() : 0;
    if (slot <= 0)
      unslotted.push_back(b);
    else
      chassis[c == "-" ? "(no chassis)" : c][slot] = b;
  }
  auto& out = *context.out;
  auto fit = [&](const std::string& s) { return s.size() > inner ? s.substr(0, inner - 1) + "~" : s; };
  auto cellLine = [&](const std::string& plain, Style style) {
    const std::string s = fit(plain);
    return " " + styled(s, style, context.color) + std::string(inner - s.size(), ' ') + " ";
  };
  bool firstChassis = true;
  for (const auto& [name, slots] : chassis) {
    const int highest = slots.rbegin()->first;
    const int count = std::max(perRow, (highest + perRow - 1) / perRow * perRow);
    std::size_t active = 0;
    for (const auto& [slot, b] : slots) active += text(b, "state") != "failed";
    if (!firstChassis) out << "\n";
    firstChassis = false;
    out << styled("chassis " + name, Style::Bold, context.color) << "  (" << countOf(slots.size(), "blade", "blades")
        << ", " << count << " slots)\n";
    for (int rowStart = 1; rowStart <= count; rowStart += perRow) {
      const int rowEnd = std::min(count, rowStart + perRow - 1);
      auto border = [&](int which) {
        std::string line = corner(which, 0);
        for (int s = rowStart; s <= rowEnd; ++s) {
          for (std::size_t i = 0; i < inner + 2; ++i) line += h;
          line += s == rowEnd ? corner(which, 2) : corner(which, 1);
        }
        out << line << "\n";
      };
      border(0);
      for (int line = 0; line < 5; ++line) {
        std::string row = v;
        for (int s = rowStart; s <= rowEnd; ++s) {
          auto it = slots.find(s);
          if (line == 0) {
            row += cellLine("slot " + std::to_string(s), Style::Dim);
          } else if (it == slots.end()) {
            row += cellLine(line == 2 ? "(empty)" : "", Style::Dim);
          } else {
            const Json& b = it->second;
            if (line == 1)
              row += cellLine(text(b, "name"), Style::Bold);
            else if (line == 2)
              row += cellLine(text(b, "state"), styleForState(text(b, "state")));
            else if (line == 3)
              row += cellLine(text(b, "pool") == "-" ? "no pool" : text(b, "pool"), Style::Plain);
            else
              row += cellLine(countOf(countField(b, "servers"), "server", "servers"), Style::Plain);
          }
          row += v;
        }
        out << row << "\n";
      }
      border(2);
    }
  }
  if (!unslotted.empty()) {
    out << (chassis.empty() ? "" : "\n") << styled("blades without a slot", Style::Bold, context.color) << "\n";
    bladeTable(context, unslotted);
  }
  if (blades.empty()) out << "no blades have registered\n";
}

}  // namespace

void registerFabric(CLI::App& app, Context& context) {
  auto perRow = std::make_shared<int>(0);  // 0: 8, or fewer if the terminal is narrow
  auto filter = std::make_shared<ListFilter>();
  filter->noun = "blades";
  CLI::App* cmd = app.add_subcommand("fabric",
                                     "Draw each chassis as the front of its enclosure: a box per slot with its "
                                     "blade, state and pool");
  cmd->add_option("--chassis", filter->chassis, "Only this chassis")->type_name("CHASSIS");
  cmd->add_option("--per-row", *perRow, "Slots per row (default 8, fewer on a narrow terminal)")
      ->check(CLI::Range(1, 32))
      ->type_name("N");
  cmd->callback([&context, perRow, filter] {
    Json blades = filtered(context, getJson(context, "/v1/blades"), *filter);
    show(context, blades, [&](const Json& j) { drawFabric(context, j, *perRow); });
  });
}

}  // namespace loom::loomctl
