// The list commands' filters (--pool, --partition, --state, --chassis, -l KEY=VALUE,...),
// applied by loomctl to the controller's answer, and what a list fetches.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <utility>
#include <vector>

#include "tools/loomctl/Context.h"
#include "tools/loomctl/Output.h"

namespace loom::loomctl {

struct ListFilter {
  std::string pool, partition, state, chassis, selector;

  // (key, value) pairs, the options' first, then the selector's. Throws CommandError
  // (exit 2) for a selector item that is not KEY=VALUE.
  std::vector<std::pair<std::string, std::string>> terms() const;
};

void addFilterOptions(CLI::App* cmd, ListFilter& filter, bool withChassis);
// A list field matches when one of its items does; a null one matches "", "-", "none".
bool fieldMatches(const Json& object, const std::string& key, const std::string& value);
// The items of `list` matching every term. May ask the controller for pools or blades,
// to derive a partition or chassis the items do not carry.
Json filtered(const Context& context, Json list, const ListFilter& filter);
// `path` plus `?fields=` of `columns` and the filtered fields among `filterable`, in
// table mode without a selector; else `path` alone (whole objects).
std::string listTarget(const Context& context, const std::string& path, std::vector<std::string> columns,
                       const ListFilter& filter, const std::vector<std::string>& filterable);
// The items whose `key` matches `value` (fieldMatches).
Json byField(const Json& list, const char* key, const std::string& value);

}  // namespace loom::loomctl
