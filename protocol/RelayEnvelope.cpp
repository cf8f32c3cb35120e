#include "protocol/RelayEnvelope.h"

#include <cstdint>

namespace loom::protocol {

bool isRelayEnvelope(std::string_view first) {
  return first.substr(0, kRelayMarkerPrefix.size()) == kRelayMarkerPrefix;
}

namespace {
// Well-formed UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing past U+10FFFF.
bool isUtf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = 0;
    std::uint32_t cp = 0;
    if (c < 0x80)
      n = 0, cp = c;
    else if ((c & 0xe0) == 0xc0)
      n = 1, cp = c & 0x1f;
    else if ((c & 0xf0) == 0xe0)
      n = 2, cp = c & 0x0f;
    else if ((c & 0xf8) == 0xf0)
      n = 3, cp = c & 0x07;
    else
      return false;
    if (n && i + n >= s.size()) return false;
    for (std::size_t k = 1; k <= n; ++k) {
      const auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3f);
    }
    static constexpr std::uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += n + 1;
  }
  return true;
}
}  // namespace

bool isValidBladeName(std::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  for (unsigned char c : name)
    if (c == '/' || c < 0x20 || c == 0x7f) return false;
  return isUtf8(name);
}

std::variant<std::vector<RelayedFrame>, Rejection> splitRelayEnvelope(const std::vector<std::string_view>& frames) {
  if (frames.empty() || !isRelayEnvelope(frames[0])) return Rejection{"malformed", "not a relay envelope"};
  if (frames[0] != kRelayMarker)
    return Rejection{"bad-version", "relay envelope '" + std::string(frames[0].substr(0, 32)) +
                                        "' (this side speaks '" + std::string(kRelayMarker) + "')"};
  if (frames.size() % 2 == 0)
    return Rejection{"malformed", "relay envelope of " + std::to_string(frames.size() - 1) +
                                      " frames after the marker (want blade, payload pairs)"};
  std::vector<RelayedFrame> out;
  out.reserve(frames.size() / 2);
  for (std::size_t i = 1; i + 1 < frames.size(); i += 2) {
    if (!isValidBladeName(frames[i]))
      return Rejection{"malformed", "relay envelope pair " + std::to_string(i / 2) + ": blade name '" +
                                        std::string(frames[i].substr(0, 64)) +
                                        "' is empty or holds '/' or control characters"};
    out.push_back({frames[i], frames[i + 1]});
  }
  return out;
}

}  // namespace loom::protocol
