#include "config/ValueSyntax.h"

#include <cctype>
#include <charconv>
#include <cstdio>

namespace loom::config {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

constexpr const char* kSizeExpected =
    "expected a size: an integer number of MiB or a number with MiB, GiB or TiB (e.g. 512MiB, 4GiB)";

}  // namespace

Result<pool::MiB> parseSize(std::string_view text) {
  std::string_view s = trim(text);
  std::size_t i = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
  if (i == 0) {
    std::string why = s.starts_with("-") ? "sizes cannot be negative; " : "";
    return makeError(Errc::Invalid, why + kSizeExpected + ", got '" + std::string(text) + "'");
  }
  std::string_view whole = s.substr(0, i);
  std::string_view fraction;
  if (i < s.size() && s[i] == '.') {
    std::size_t j = i + 1;
    while (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) ++j;
    fraction = s.substr(i + 1, j - i - 1);
    if (fraction.empty())
      return makeError(Errc::Invalid, std::string(kSizeExpected) + ", got '" + std::string(text) + "'");
    i = j;
  }
  std::string unit = lower(trim(s.substr(i)));
  std::uint64_t multiplier = 0;
  if (unit.empty()) {
    // A bare number is MiB; a bare fraction of a MiB is meaningless.
    multiplier = fraction.empty() ? 1 : 0;
  } else if (unit == "mib") {
    multiplier = 1;
  } else if (unit == "gib") {
    multiplier = 1024;
  } else if (unit == "tib") {
    multiplier = 1024ull * 1024;
  }
  if (multiplier == 0) {
    std::string hint;
    static const std::pair<const char*, const char*> kDecimal[] = {{"mb", "MiB"}, {"m", "MiB"},  {"gb", "GiB"},
                                                                   {"g", "GiB"},  {"tb", "TiB"}, {"t", "TiB"}};
    for (auto [wrong, right] : kDecimal) {
      if (unit == wrong) hint = " (did you mean '" + std::string(s.substr(0, i)) + right + "'?)";
    }
    if (unit == "kib" || unit == "kb" || unit == "k" || unit == "b") hint = " (sizes are whole MiB)";
    if (unit.empty()) hint = " (a size without a unit is a whole number of MiB)";
    return makeError(Errc::Invalid, std::string(kSizeExpected) + ", got '" + std::string(text) + "'" + hint);
  }
  std::uint64_t wholeValue = 0;
  auto [p, ec] = std::from_chars(whole.data(), whole.data() + whole.size(), wholeValue);
  (void)p;
  constexpr std::uint64_t kMax = 1ull << 50;  // 1 ZiB in MiB: beyond any blade, and far from overflow
  if (ec != std::errc() || wholeValue > kMax / multiplier) {
    return makeError(Errc::Invalid, "size '" + std::string(text) + "' is too large");
  }
  std::uint64_t mib = wholeValue * multiplier;
  if (!fraction.empty()) {
    if (fraction.size() > 12) return makeError(Errc::Invalid, "size '" + std::string(text) + "' has too many decimals");
    std::uint64_t numerator = 0, denominator = 1;
    for (char c : fraction) {
      numerator = numerator * 10 + static_cast<std::uint64_t>(c - '0');
      denominator *= 10;
    }
    if ((numerator * multiplier) % denominator != 0) {
      return makeError(Errc::Invalid, "size '" + std::string(text) + "' is not a whole number of MiB");
    }
    mib += numerator * multiplier / denominator;
  }
  return mib;
}

std::string formatSize(pool::MiB mib) { return pool::formatSize(mib); }

std::optional<std::uint64_t> parseMac(std::string_view text) {
  if (text.size() != 17) return std::nullopt;
  std::uint64_t value = 0;
  for (std::size_t octet = 0; octet < 6; ++octet) {
    std::size_t at = octet * 3;
    int hi = hexValue(text[at]), lo = hexValue(text[at + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    if (octet < 5 && text[at + 2] != ':') return std::nullopt;
    value = (value << 8) | static_cast<std::uint64_t>(hi * 16 + lo);
  }
  return value;
}

std::string formatMac(std::uint64_t mac) {
  char buf[18];
  std::snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", static_cast<unsigned>((mac >> 40) & 0xff),
                static_cast<unsigned>((mac >> 32) & 0xff), static_cast<unsigned>((mac >> 24) & 0xff),
                static_cast<unsigned>((mac >> 16) & 0xff), static_cast<unsigned>((mac >> 8) & 0xff),
                static_cast<unsigned>(mac & 0xff));
  return buf;
}

Result<pool::MacRange> parseMacRange(std::string_view text) {
  const std::string expected =
      "expected a MAC range FIRST-LAST such as 52:54:00:10:00:00-52:54:00:10:ff:ff, got '" + std::string(text) + "'";
  std::string_view s = trim(text);
  auto dash = s.find('-');
  if (dash == std::string_view::npos) return makeError(Errc::Invalid, expected);
  auto first = parseMac(trim(s.substr(0, dash)));
  auto last = parseMac(trim(s.substr(dash + 1)));
  if (!first || !last) return makeError(Errc::Invalid, expected);
  if (*first > *last) {
    return makeError(Errc::Invalid, "MAC range '" + std::string(text) + "' ends before it starts");
  }
  if ((*first >> 40) & 0x01) {
    return makeError(Errc::Invalid, "MAC range '" + std::string(text) +
                                        "' is multicast (first octet odd): guest NICs need unicast addresses");
  }
  if ((*first >> 40) != (*last >> 40)) {
    // Every other first octet is multicast, so a range spanning first octets would
    // hand out group addresses.
    return makeError(Errc::Invalid, "MAC range '" + std::string(text) + "' spans several first octets");
  }
  return pool::MacRange{*first, *last};
}

bool isUuid(std::string_view text) {
  if (text.size() != 36) return false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? text[i] != '-' : hexValue(text[i]) < 0) return false;
  }
  return true;
}

Result<pool::UuidRange> parseUuidRange(std::string_view text) {
  const std::string expected =
      "expected a UUID range PREFIX/BITS such as 4c4f4f4d-0000-0000-0000-000000000000/16, got '" + std::string(text) +
      "'";
  std::string_view s = trim(text);
  auto slash = s.find('/');
  if (slash == std::string_view::npos) return makeError(Errc::Invalid, expected);
  std::string_view prefix = trim(s.substr(0, slash));
  std::string_view bitsText = trim(s.substr(slash + 1));
  if (!isUuid(prefix)) return makeError(Errc::Invalid, expected);
  int bits = 0;
  auto [p, ec] = std::from_chars(bitsText.data(), bitsText.data() + bitsText.size(), bits);
  if (ec != std::errc() || p != bitsText.data() + bitsText.size()) return makeError(Errc::Invalid, expected);
  if (bits < 1 || bits > 64) {
    return makeError(Errc::Invalid,
                     "UUID range '" + std::string(text) + "': BITS must be 1..64, got " + std::to_string(bits));
  }
  pool::UuidRange range;
  range.bits = bits;
  int nibble = 0;
  for (char c : prefix) {
    if (c == '-') continue;
    std::uint64_t& half = nibble < 16 ? range.prefixHi : range.prefixLo;
    half = (half << 4) | static_cast<std::uint64_t>(hexValue(c));
    ++nibble;
  }
  std::uint64_t lowMask = bits == 64 ? ~0ull : ((1ull << bits) - 1);
  if (range.prefixLo & lowMask) {
    return makeError(Errc::Invalid, "UUID range '" + std::string(text) + "': the low " + std::to_string(bits) +
                                        " bits of the prefix must be zero (they are the varying part)");
  }
  return range;
}

std::string formatUuidRange(const pool::UuidRange& range) {
  char buf[64];
  std::snprintf(
      buf, sizeof buf, "%08llx-%04llx-%04llx-%04llx-%012llx/%d", static_cast<unsigned long long>(range.prefixHi >> 32),
      static_cast<unsigned long long>((range.prefixHi >> 16) & 0xffff),
      static_cast<unsigned long long>(range.prefixHi & 0xffff), static_cast<unsigned long long>(range.prefixLo >> 48),
      static_cast<unsigned long long>(range.prefixLo & 0xffffffffffffull), range.bits);
  return buf;
}

}  // namespace loom::config
