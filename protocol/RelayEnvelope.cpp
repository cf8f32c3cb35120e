#include "protocol/RelayEnvelope.h"

namespace loom::protocol {

bool isRelayEnvelope(std::string_view first) { return first.substr(0, kRelayMarkerPrefix.size()) == kRelayMarkerPrefix; }

bool isValidBladeName(std::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  for (unsigned char c : name)
    if (c == '/' || c < 0x20 || c == 0x7f) return false;
  return true;
}

std::variant<std::vector<RelayedFrame>, Rejection> splitRelayEnvelope(const std::vector<std::string_view>& frames) {
  if (frames.empty() || !isRelayEnvelope(frames[0])) return Rejection{"malformed", "not a relay envelope"};
  if (frames[0] != kRelayMarker)
    return Rejection{"bad-version", "relay envelope '" + std::string(frames[0].substr(0, 32)) + "' (this side speaks '" +
                                        std::string(kRelayMarker) + "')"};
  if (frames.size() % 2 == 0)
    return Rejection{"malformed", "relay envelope of " + std::to_string(frames.size() - 1) + " frames after the marker (want blade, payload pairs)"};
  std::vector<RelayedFrame> out;
  out.reserve(frames.size() / 2);
  for (std::size_t i = 1; i + 1 < frames.size(); i += 2) {
    if (!isValidBladeName(frames[i]))
      return Rejection{"malformed", "relay envelope pair " + std::to_string(i / 2) + ": blade name '" +
                                        std::string(frames[i].substr(0, 64)) + "' is empty or holds '/' or control characters"};
    out.push_back({frames[i], frames[i + 1]});
  }
  return out;
}

}  // namespace loom::protocol
