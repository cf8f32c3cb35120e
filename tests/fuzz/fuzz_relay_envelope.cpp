// libFuzzer target for the relay envelope parser (protocol/RelayEnvelope.cpp): the
// multipart messages a relay (or anything holding a relay key) sends loomd, and loomd's
// envelopes a relay takes apart. The input is cut into ZeroMQ frames at each "\n--\n"
// (the seeds and the dictionary use it). Besides ASan/UBSan findings it traps when a split
// hands back a blade name isValidBladeName refuses, or pairs that are not the input's own
// frames, in order.
// How to build and run: tools/fuzz.sh relay_envelope [SECONDS].
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <variant>
#include <vector>

#include "protocol/RelayEnvelope.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  std::vector<std::string_view> frames;
  constexpr std::string_view kCut = "\n--\n";
  while (true) {
    const auto at = rest.find(kCut);
    frames.push_back(rest.substr(0, at));
    if (at == std::string_view::npos) break;
    rest.remove_prefix(at + kCut.size());
  }
  namespace p = loom::protocol;
  (void)p::isValidBladeName(frames[0]);
  if (!p::isRelayEnvelope(frames[0])) return 0;
  const auto split = p::splitRelayEnvelope(frames);
  if (std::holds_alternative<p::Rejection>(split)) return 0;
  const auto& pairs = std::get<std::vector<p::RelayedFrame>>(split);
  if (pairs.size() * 2 + 1 != frames.size()) {
    std::fprintf(stderr, "fuzz_relay_envelope: %zu pairs from %zu frames\n", pairs.size(), frames.size());
    std::abort();
  }
  for (std::size_t i = 0; i < pairs.size(); ++i) {
    if (!p::isValidBladeName(pairs[i].blade) || pairs[i].blade != frames[1 + 2 * i] ||
        pairs[i].payload != frames[2 + 2 * i]) {
      std::fprintf(stderr, "fuzz_relay_envelope: pair %zu is not frames %zu and %zu, or its blade name is invalid\n", i,
                   1 + 2 * i, 2 + 2 * i);
      std::abort();
    }
  }
  return 0;
}
