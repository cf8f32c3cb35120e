// Requests to loomd's HTTP API as loomctl's commands make them: JSON answers, the
// controller's errors turned into loomctl's one-line messages.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "tools/loomctl/Context.h"
#include "tools/loomctl/Output.h"

namespace loom::loomctl {

struct ApiRequest {
  std::string method = "GET";
  std::string target;  // "/v1/blades/c1-s1"
  std::string body;
  std::string contentType = "application/yaml";
  // What the endpoint does, for "the controller does not support FEATURE (upgrade
  // loomd)" when an older loomd answers 404 for the path itself.
  std::string feature;
  std::chrono::seconds timeout{30};
  // Rewrites each of the controller's diagnostics before it is printed (apply maps
  // positions in the concatenated body back to the operator's files).
  std::function<std::string(const std::string&)> mapDiagnostic;
};

// The JSON answer of a 2xx reply. Throws CommandError otherwise: "no blade named 'x'"
// for the controller's "unknown blade 'x'", the unsupported-feature message above, or
// the controller's own {"error"} text (its "diagnostics" lines go to context.err first).
Json requestJson(const Context& context, const ApiRequest& request);

Json getJson(const Context& context, const std::string& target, const std::string& feature = "");

// Names of "blades", "pools" or "servers", sorted; empty when the controller cannot be
// reached (completion must never fail loudly). Short timeout: a person is waiting.
std::vector<std::string> liveNames(const Context& context, const std::string& noun);

// `value` percent-encoded for a path or a query (letters, digits, `.-_/` kept).
std::string urlEncode(const std::string& value);

}  // namespace loom::loomctl
