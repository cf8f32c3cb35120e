// Validation of fabric frames, kept apart from handling: a pure function of the decoded
// JSON that says what is wrong, or nothing. Handlers only ever see frames it accepted,
// so a decoder can trust the shape (Mesos master/validation.hpp does the same).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "protocol/Messages.h"

namespace loom::protocol {

// Why a frame was refused; the reason's kind is what the rejection counters and the
// log-once rule key on ("malformed", "unknown-type", "bad-version", "invalid").
struct Rejection {
  std::string kind;
  std::string message;  // quotes the offending field or type
};

// Checks one frame object: {"type","v"} present, a known type, the supported version,
// and every field of that type with its JSON type (and value range where it matters).
std::optional<Rejection> validate(const Json& frame);

// Parses raw bytes into a frame object; a refusal of kind "malformed" when it is not
// a JSON object. Never throws.
std::optional<Rejection> parseFrame(std::string_view bytes, Json& out);

// Types of every known message, for tests and docs.
bool isKnownType(std::string_view type);

}  // namespace loom::protocol
