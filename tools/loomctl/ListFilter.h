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
  std::string noun;  // "blades", "servers", "pools": what a refused filter names

  // (key, value) pairs, the options' first, then the selector's. Throws CommandError
  // (exit 2) for a selector item that is not KEY=VALUE.
  std::vector<std::pair<std::string, std::string>> terms() const;
};

// `states`: what --state takes (anything else is a usage error naming them).
void addFilterOptions(CLI::App* cmd, ListFilter& filter, bool withChassis, const std::vector<std::string>& states);
// Every blade state, every server state (pool/Model.h), in their order there.
const std::vector<std::string>& bladeStates();
const std::vector<std::string>& serverStates();
// A list field matches when one of its items does; a null one matches "", "-", "none".
bool fieldMatches(const Json& object, const std::string& key, const std::string& value);
// The items of `list` matching every term. May ask the controller for pools or blades,
// to derive a partition or chassis the items do not carry. A filter that can match
// nothing is an error (CommandError, exit 2) naming what there is: a pool, partition or
// chassis that does not exist, a selector key no item has.
Json filtered(const Context& context, Json list, const ListFilter& filter);
// `path` plus `?fields=` of `columns` and the filtered fields among `filterable`, in
// table mode without a selector; else `path` alone (whole objects).
std::string listTarget(const Context& context, const std::string& path, std::vector<std::string> columns,
                       const ListFilter& filter, const std::vector<std::string>& filterable);
// The items whose `key` matches `value` (fieldMatches).
Json byField(const Json& list, const char* key, const std::string& value);

}  // namespace loom::loomctl
