// "Did you mean ...?" for operators' typos: unknown YAML fields and kinds here, unknown
// commands and names in loomctl.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace loom::config {

// Levenshtein distance (insert, delete, substitute), case-sensitive.
std::size_t editDistance(std::string_view a, std::string_view b);

// The candidate closest to `word` if it is within `maxDistance` edits (compared
// case-insensitively, so "server" suggests "Server"); ties go to the earlier candidate.
std::optional<std::string> closestMatch(std::string_view word, const std::vector<std::string>& candidates,
                                        std::size_t maxDistance = 2);

}  // namespace loom::config
