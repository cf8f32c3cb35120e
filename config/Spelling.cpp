#include "config/Spelling.h"

#include <algorithm>
#include <cctype>

namespace loom::config {

std::size_t editDistance(std::string_view a, std::string_view b) {
  // Two rows are enough: names are short and this runs only on the error path.
  std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t substitute = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, substitute});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

namespace {
std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}
}  // namespace

std::optional<std::string> closestMatch(std::string_view word, const std::vector<std::string>& candidates,
                                        std::size_t maxDistance) {
  const std::string w = lower(word);
  std::optional<std::string> best;
  std::size_t bestDistance = maxDistance + 1;
  for (const auto& candidate : candidates) {
    std::size_t d = editDistance(w, lower(candidate));
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best;
}

}  // namespace loom::config
