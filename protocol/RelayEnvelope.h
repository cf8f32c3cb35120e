// The relay envelope: how a fabric relay (`loom-agent relay`) carries many blades'
// frames over its one connection to loomd. A relay message is a ZeroMQ multipart
// message whose first frame is the marker, followed by (blade, payload) pairs:
//
//   "loom-relay/1"  blade-1  payload-1  blade-2  payload-2 ...
//
// in both directions. Each payload is exactly the frame the blade's agent sent, or is to
// receive (docs/PROTOCOL.md). Pure: frames in, pairs or a refusal out; no ZeroMQ here.
#pragma once

#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "protocol/Validation.h"

namespace loom::protocol {

// The marker and the envelope's version: a relay of another version is refused whole.
inline constexpr std::string_view kRelayMarker = "loom-relay/1";
// Every relay message starts with "loom-relay/"; the rest is its version.
inline constexpr std::string_view kRelayMarkerPrefix = "loom-relay/";

// A relay's routing id at the controller is "relay/NAME". Blade names cannot hold a '/'
// (they name files on the blade), so the two never collide on one ROUTER socket.
inline constexpr std::string_view kRelayIdPrefix = "relay/";

struct RelayedFrame {
  std::string_view blade;
  std::string_view payload;
};

// Whether a message whose first frame after the routing id is `first` is a relay
// envelope (of any version): such a message is judged by splitRelayEnvelope, never as
// an agent's frame.
bool isRelayEnvelope(std::string_view first);

// Splits a relay message (its frames after the routing id). Refused whole, with kind
// "bad-version" (another marker version) or "malformed" (an odd number of frames after
// the marker, an empty or '/'-holding blade name); the views point into `frames`.
std::variant<std::vector<RelayedFrame>, Rejection> splitRelayEnvelope(const std::vector<std::string_view>& frames);

// Whether `name` may name a blade on the fabric: non-empty, at most 253 bytes of
// well-formed UTF-8, no '/', NUL or control characters (a blade's name is a routing id,
// a file name and a JSON string in the API).
bool isValidBladeName(std::string_view name);

}  // namespace loom::protocol
