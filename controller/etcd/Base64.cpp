#include "controller/etcd/Base64.h"

#include <array>
#include <cstdint>

namespace loom::controller::etcd {
namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// 0..63 for the alphabet, kBad for anything else: (a | b | c | d) > 63 finds a bad one.
constexpr std::uint8_t kBad = 0xff;
constexpr std::array<std::uint8_t, 256> makeDecodeTable() {
  std::array<std::uint8_t, 256> t{};
  for (auto& v : t) v = kBad;
  for (int i = 0; i < 64; ++i) t[static_cast<unsigned char>(kAlphabet[i])] = static_cast<std::uint8_t>(i);
  return t;
}
constexpr auto kDecode = makeDecodeTable();

}  // namespace

void base64EncodeTo(std::string& out, std::string_view in) {
  const std::size_t start = out.size();
  out.resize(start + (in.size() + 2) / 3 * 4);
  char* o = out.data() + start;
  const auto* p = reinterpret_cast<const unsigned char*>(in.data());
  std::size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    const std::uint32_t v = (std::uint32_t{p[i]} << 16) | (std::uint32_t{p[i + 1]} << 8) | p[i + 2];
    *o++ = kAlphabet[(v >> 18) & 63];
    *o++ = kAlphabet[(v >> 12) & 63];
    *o++ = kAlphabet[(v >> 6) & 63];
    *o++ = kAlphabet[v & 63];
  }
  if (const std::size_t rest = in.size() - i; rest > 0) {
    std::uint32_t v = std::uint32_t{p[i]} << 16;
    if (rest == 2) v |= std::uint32_t{p[i + 1]} << 8;
    *o++ = kAlphabet[(v >> 18) & 63];
    *o++ = kAlphabet[(v >> 12) & 63];
    *o++ = rest == 2 ? kAlphabet[(v >> 6) & 63] : '=';
    *o++ = '=';
  }
}

std::string base64Encode(std::string_view in) {
  std::string out;
  base64EncodeTo(out, in);
  return out;
}

std::optional<std::string> base64Decode(std::string_view in) {
  if (in.size() % 4 != 0) return std::nullopt;
  std::size_t pad = 0;
  if (!in.empty() && in.back() == '=') pad = in.size() >= 2 && in[in.size() - 2] == '=' ? 2 : 1;
  std::string out;
  out.resize(in.size() / 4 * 3 - pad);
  char* o = out.data();
  const std::size_t body = in.size() - (pad ? 4 : 0);  // the last group is handled apart when padded
  for (std::size_t i = 0; i < body; i += 4) {
    const unsigned a = kDecode[static_cast<unsigned char>(in[i])], b = kDecode[static_cast<unsigned char>(in[i + 1])],
                   c = kDecode[static_cast<unsigned char>(in[i + 2])],
                   d = kDecode[static_cast<unsigned char>(in[i + 3])];
    if ((a | b | c | d) > 63) return std::nullopt;
    const std::uint32_t v = (static_cast<std::uint32_t>(a) << 18) | (static_cast<std::uint32_t>(b) << 12) |
                            (static_cast<std::uint32_t>(c) << 6) | static_cast<std::uint32_t>(d);
    *o++ = static_cast<char>(v >> 16);
    *o++ = static_cast<char>((v >> 8) & 0xff);
    *o++ = static_cast<char>(v & 0xff);
  }
  if (pad) {
    const std::size_t i = body;
    const unsigned a = kDecode[static_cast<unsigned char>(in[i])], b = kDecode[static_cast<unsigned char>(in[i + 1])];
    const unsigned c = pad == 1 ? kDecode[static_cast<unsigned char>(in[i + 2])] : 0;
    if ((a | b | c) > 63) return std::nullopt;
    const std::uint32_t v = (static_cast<std::uint32_t>(a) << 18) | (static_cast<std::uint32_t>(b) << 12) |
                            (static_cast<std::uint32_t>(c) << 6);
    // Bits past the data must be zero: the canonical encoding, the only one etcd writes.
    if ((pad == 2 && (v & 0xffff)) || (pad == 1 && (v & 0xff))) return std::nullopt;
    *o++ = static_cast<char>(v >> 16);
    if (pad == 1) *o++ = static_cast<char>((v >> 8) & 0xff);
  }
  return out;
}

}  // namespace loom::controller::etcd
