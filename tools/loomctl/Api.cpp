// Requests to loomd's HTTP API (Api.h): the controller's errors turned into loomctl's
// one-line messages.
#include "tools/loomctl/Api.h"

#include <algorithm>
#include <cctype>
#include <cstdio>

#include "tools/loomctl/HttpClient.h"

namespace loom::loomctl {

Json requestJson(const Context& context, const ApiRequest& request) {
  const HttpReply reply = controllerCall(context.controller, request.method, request.target, request.body,
                                         request.contentType, request.timeout);
  Json j = Json::parse(reply.body, nullptr, false);
  if (reply.status / 100 != 2) {
    std::string message =
        j.is_object() && j.contains("error") && j["error"].is_string() ? j["error"].get<std::string>() : "";
    // loomd says "no such endpoint" when the path itself is unknown: an older controller.
    if ((reply.status == 404 || reply.status == 405) && !request.feature.empty() &&
        (message.empty() || message.rfind("no such endpoint", 0) == 0))
      throw CommandError("the controller does not support " + request.feature + " (upgrade loomd)");
    // "unknown blade 'x'" -> "no blade named 'x'": the noun first, as an operator asks.
    if (reply.status == 404 && message.rfind("unknown ", 0) == 0) {
      const auto quote = message.find(" '");
      if (quote != std::string::npos) message = "no " + message.substr(8, quote - 8) + " named" + message.substr(quote);
    }
    if (j.is_object() && j.contains("diagnostics") && j["diagnostics"].is_array() && !j["diagnostics"].empty()) {
      if (message == "invalid declarations")
        message += " (" + countOf(j["diagnostics"].size(), "error", "errors") + ", above)";
      for (const auto& d : j["diagnostics"]) {
        std::string line = d.is_string() ? d.get<std::string>() : d.dump();
        *context.err << (request.mapDiagnostic ? request.mapDiagnostic(line) : line) << "\n";
      }
    }
    if (message.empty())
      message = "the controller answered HTTP " + std::to_string(reply.status) + " for " + request.target;
    throw CommandError(message);
  }
  if (j.is_discarded()) throw CommandError("the controller answered something that is not JSON for " + request.target);
  return j;
}

Json getJson(const Context& context, const std::string& target, const std::string& feature) {
  ApiRequest r;
  r.target = target;
  r.feature = feature;
  return requestJson(context, r);
}

std::vector<std::string> liveNames(const Context& context, const std::string& noun) {
  std::vector<std::string> names;
  try {
    ApiRequest r;
    r.target = "/v1/" + noun;
    r.timeout = std::chrono::seconds(2);
    for (const auto& item : requestJson(context, r))
      if (item.contains("name") && item["name"].is_string()) names.push_back(item["name"].get<std::string>());
  } catch (const std::exception&) {
    // Completion offers what it can; an unreachable controller just means no names.
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::string urlEncode(const std::string& value) {
  std::string out;
  for (unsigned char c : value) {
    if (std::isalnum(c) || c == '.' || c == '-' || c == '_' || c == '/') {
      out += static_cast<char>(c);
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

}  // namespace loom::loomctl
