// Standard base64 (RFC 4648, with padding), as etcd's JSON gateway carries keys and
// values. Boost.Beast has a codec, but in beast::detail (not public API), so this one.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace loom::controller::etcd {

std::string base64Encode(std::string_view bytes);
// Appends the encoding of `bytes` to `out` (no temporary for large values).
void base64EncodeTo(std::string& out, std::string_view bytes);
// Strict: nullopt for a character outside the alphabet, a bad length or bad padding.
std::optional<std::string> base64Decode(std::string_view text);

}  // namespace loom::controller::etcd
