// A list an operator writes as one value, "a,b,c": loomctl's and loom-agent's
// --controller URL,URL..., loom-agent's --hypervisors and --only, loomctl's -l KEY=VALUE,...
// One splitter, so every such option reads a list the same way.
#pragma once

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

namespace loom {

// The items of a comma-separated list, in order. Empty items are dropped: "" and ","
// give none, "a,,b" and "a,b," give {"a", "b"}. Nothing is trimmed (" b" stays " b"): the
// caller judges each item and names a bad one in its error.
inline std::vector<std::string> splitCommaList(std::string_view list) {
  std::vector<std::string> out;
  std::size_t from = 0;
  while (from <= list.size()) {
    const std::size_t comma = std::min(list.find(',', from), list.size());
    if (comma > from) out.emplace_back(list.substr(from, comma - from));
    from = comma + 1;
  }
  return out;
}

}  // namespace loom
