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

// A heartbeat without a domain list (nearly every frame of a fabric: 10,000 a second at
// 10,000 blades), recognized by a SAX pass that builds no JSON tree. Accepts only
// {"type":"heartbeat","v":<kVersion>,"seq":<uint>[,"ack":<bool>][,"echo"|"pv"|"shield_ms":<uint>]
// [,"holding":<bool>]} in any order; anything
// else — another type, extra fields, domains, bad JSON — is nullopt, and the caller takes
// the full path (parseFrame, validate), which accepts everything this accepts, with the
// same meaning. Never throws.
struct PlainHeartbeat {
  std::uint64_t seq = 0;
  bool ack = true;
  // The outage rule's fields (docs/FENCING.md), 0 / false when absent.
  std::uint64_t echo = 0;
  std::uint64_t policyVersion = 0;
  std::int64_t shieldMs = 0;
  bool holding = false;
};
std::optional<PlainHeartbeat> peekPlainHeartbeat(std::string_view bytes);

// encode(LeaseRenewed{seq, leaseMs, stamp, epoch}).dump(), byte for byte, without the JSON
// tree: the fabric thread answers thousands of heartbeats a second.
std::string leaseRenewedFrame(std::uint64_t seq, std::int64_t leaseMs, std::uint64_t stamp = 0,
                              std::uint64_t epoch = 0);

// Types of every known message, for tests and docs.
bool isKnownType(std::string_view type);

}  // namespace loom::protocol
