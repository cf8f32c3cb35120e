#include "config/Spelling.h"

#include <algorithm>
#include <cctype>

namespace loom::config {

std::size_t editDistance(std::string_view a, std::string_view b) {
  // Three rows are enough: names are short and this runs only on the error path. Two
  // neighbours swapped count as one edit (the optimal string alignment distance): `wbe`
  // is one from `web`, nearer than `db`.
  std::vector<std::size_t> prev2(b.size() + 1), prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t substitute = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, substitute});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) cur[j] = std::min(cur[j], prev2[j - 2] + 1);
    }
    std::swap(prev2, prev);
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

// editDistance(a, b) when it is at most `limit`, else limit + 1. Only the band of cells
// within `limit` of the diagonal can stay within it, and a row whose every cell is over
// ends the search: O(|a| * limit) instead of O(|a| * |b|).
std::size_t boundedEditDistance(std::string_view a, std::string_view b, std::size_t limit) {
  const std::size_t over = limit + 1;
  if ((a.size() > b.size() ? a.size() - b.size() : b.size() - a.size()) > limit) return over;
  std::vector<std::size_t> prev2(b.size() + 1, over), prev(b.size() + 1, over), cur(b.size() + 1, over);
  for (std::size_t j = 0; j <= std::min(b.size(), limit); ++j) prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    const std::size_t from = i > limit ? i - limit : 1;
    const std::size_t to = std::min(b.size(), i + limit);
    std::fill(cur.begin(), cur.end(), over);
    cur[0] = i <= limit ? i : over;
    std::size_t best = cur[0];
    for (std::size_t j = from; j <= to; ++j) {
      std::size_t substitute = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, substitute, over});
      // Two neighbours swapped: one edit (editDistance).
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) cur[j] = std::min(cur[j], prev2[j - 2] + 1);
      best = std::min(best, cur[j]);
    }
    if (best >= over) return over;
    std::swap(prev2, prev);
    std::swap(prev, cur);
  }
  return std::min(prev[b.size()], over);
}

}  // namespace

std::optional<std::string> closestMatch(std::string_view word, const std::vector<std::string>& candidates,
                                        std::size_t maxDistance) {
  const std::string w = lower(word);
  std::optional<std::string> best;
  std::size_t bestDistance = maxDistance + 1;
  for (const auto& candidate : candidates) {
    // Only a candidate nearer than the best so far matters, so the distance is computed
    // only that far: a huge word from hostile input costs no more than a short one.
    std::size_t d = boundedEditDistance(w, lower(candidate), bestDistance - 1);
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
      if (d == 0) break;
    }
  }
  return best;
}

}  // namespace loom::config
