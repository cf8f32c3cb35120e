// How the API commands lay loomd's JSON out for a person: field readers, tables and
// "key: value" blocks, and the questions asked at a terminal. Only in table mode: `show`
// passes the controller's value through for -o json|yaml. The field readers never throw:
// a missing, null or wrongly typed field reads as "-" (or 0).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "tools/loomctl/Context.h"
#include "tools/loomctl/Output.h"

namespace loom::loomctl {

// A field as a table shows it: a string as it is, anything else as JSON; "-" when it is
// missing, null or "".
std::string text(const Json& j, const char* key);
// A list field's items joined by `separator`; "-" when missing or empty.
std::string joined(const Json& j, const char* key, const char* separator = ",");
// MiB as a person reads them: "64GiB", "12.5GiB", "512MiB".
std::string mib(std::uint64_t value);
std::string memoryOf(const Json& j, const char* key = "memory_mib");
// A count that may arrive as a number or as the list it counts.
std::uint64_t countField(const Json& j, const char* key);
Cell stateCell(const std::string& state);

bool onTerminal(int fd);
// Table mode: `table(value)`; -o json|yaml: the value as it is.
void show(Context& context, const Json& value, const std::function<void(const Json&)>& table);
// "QUESTION [y/N]" on context.out, answered on stdin; anything but y/yes declines.
bool confirm(Context& context, const std::string& question);

// One object as aligned "key: value" lines, its name first.
void printBlock(Context& context, const Json& input);
void bladeTable(Context& context, const Json& list);
// Then one "STATE NAME: REASON" line for each server that has a reason.
void serverTable(Context& context, const Json& list);
void poolTable(Context& context, const Json& list);

// The fields each table prints: what a list asks for with `?fields=` (ListFilter.h).
extern const std::vector<std::string> kBladeColumns;
extern const std::vector<std::string> kServerColumns;
extern const std::vector<std::string> kPoolColumns;

}  // namespace loom::loomctl
