// Text from the network, made safe to put in a log line: a peer's name or a message
// quoting its frame must not start a line of its own ("\n2026-12-07 ... fenced c1-s1") or
// move the terminal's cursor. Control bytes and backslashes are written as \xNN, and the
// text is cut at `max` bytes (with "..." after). Bytes of 0x80 and above pass: a name in
// UTF-8 stays readable, and a log sink quotes invalid UTF-8 itself.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace loom {

inline std::string logSafe(std::string_view text, std::size_t max = 200) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(text.size() < max ? text.size() : max);
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (i == max) {
      out += "...";
      break;
    }
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c == 0x7f || c == '\\') {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

}  // namespace loom
