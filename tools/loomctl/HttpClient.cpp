#include "tools/loomctl/HttpClient.h"

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <iostream>
#include <nlohmann/json.hpp>
#include <vector>

#include "loom/CommaList.h"
#include "tools/loomctl/Context.h"

namespace loom::loomctl {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace asio = boost::asio;

// "http://host:port[/...]" -> (host, port)
std::pair<std::string, std::string> splitUrl(const std::string& url) {
  std::string rest = url;
  if (rest.rfind("http://", 0) == 0)
    rest = rest.substr(7);
  else if (rest.find("://") != std::string::npos)
    throw CommandError("controller URL '" + url + "': only http:// is supported");
  if (auto slash = rest.find('/'); slash != std::string::npos) rest = rest.substr(0, slash);
  const auto colon = rest.rfind(':');
  if (colon == std::string::npos) return {rest, "80"};
  return {rest.substr(0, colon), rest.substr(colon + 1)};
}

// "Connection refused" -> "connection refused": the message continues a sentence.
std::string reasonOf(const beast::error_code& ec) {
  if (ec == beast::error::timeout) return "timed out";
  std::string m = ec.message();
  if (!m.empty()) m[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(m[0])));
  return m;
}

}  // namespace

namespace {
std::string& bearerToken() {
  static std::string token;
  return token;
}
}  // namespace

void setBearerToken(std::string token) { bearerToken() = std::move(token); }

HttpReply httpCall(const std::string& controller, const std::string& method, const std::string& target,
                   const std::string& body, const std::string& contentType, std::chrono::seconds timeout) {
  const auto [host, port] = splitUrl(controller);
  auto unreachable = [&](const std::string& reason) {
    return CommandError("cannot reach the controller at " + controller + ": " + reason);
  };
  asio::io_context io;
  asio::ip::tcp::resolver resolver(io);
  beast::tcp_stream stream(io);
  beast::error_code ec;
  auto endpoints = resolver.resolve(host, port, ec);
  if (ec) throw unreachable(reasonOf(ec));
  stream.expires_after(timeout);
  stream.connect(endpoints, ec);
  if (ec) throw unreachable(reasonOf(ec));

  http::request<http::string_body> req{http::string_to_verb(method), target, 11};
  req.set(http::field::host, host);
  req.set(http::field::user_agent, "loomctl");
  if (!bearerToken().empty()) req.set(http::field::authorization, "Bearer " + bearerToken());
  if (!body.empty() || method == "POST") {
    req.set(http::field::content_type, contentType);
    req.body() = body;
    req.prepare_payload();
  }
  http::write(stream, req, ec);
  if (ec) throw unreachable(reasonOf(ec));
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(std::size_t{1} << 30);
  http::read(stream, buffer, parser, ec);
  if (ec) throw unreachable(reasonOf(ec));
  stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  HttpReply reply{static_cast<int>(parser.get().result_int()), parser.get().body(), {}};
  for (const auto& field : parser.get()) {
    std::string name(field.name_string());
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (name.rfind("x-loom-", 0) == 0) reply.headers[name] = std::string(field.value());
  }
  return reply;
}

namespace {

// The leader a standby names in its 503, or "" when the answer is not a standby's.
std::string leaderNamedBy(const HttpReply& reply) {
  if (reply.status != 503) return "";
  const auto j = nlohmann::json::parse(reply.body, nullptr, false);
  if (!j.is_object() || !j.value("standby", false)) return "";
  const auto leader = j.find("leader");
  if (leader == j.end() || !leader->is_object()) return "";
  const auto api = leader->find("api");
  return api != leader->end() && api->is_string() ? api->get<std::string>() : "";
}

// The replica that answered last (a shell sends many requests).
std::string lastAnswered;

std::string header(const HttpReply& reply, const std::string& name) {
  const auto it = reply.headers.find(name);
  return it == reply.headers.end() ? std::string() : it->second;
}

// An answer a standby gave from its warm copy: one line on stderr, so an operator knows
// how fresh it is (stdout stays the answer alone).
HttpReply noteStandby(HttpReply reply) {
  if (reply.status / 100 != 2 || header(reply, "x-loom-role") != "standby") return reply;
  std::string line = "loomctl: answered by standby " + header(reply, "x-loom-replica");
  const std::string revision = header(reply, "x-loom-store-revision");
  const std::string age = header(reply, "x-loom-copy-age-ms");
  if (!revision.empty())
    line += " from its copy of the store at etcd revision " + revision +
            (age.empty() || age == "-1" ? std::string(", never confirmed current")
                                        : ", last known current " + age + " ms ago");
  else
    line += ", read from etcd";
  const std::string leader = header(reply, "x-loom-leader");
  line += leader.empty() ? "; no replica leads right now" : "; the leader is " + leader;
  std::cerr << line << "\n";
  return reply;
}

}  // namespace

HttpReply controllerCall(const std::string& controllers, const std::string& method, const std::string& target,
                         const std::string& body, const std::string& contentType, std::chrono::seconds timeout) {
  std::vector<std::string> urls = splitCommaList(controllers);
  if (urls.size() <= 1) return noteStandby(httpCall(controllers, method, target, body, contentType, timeout));
  if (const auto it = std::find(urls.begin(), urls.end(), lastAnswered); it != urls.end())
    std::rotate(urls.begin(), it, it + 1);
  std::string reasons;
  for (const auto& url : urls) {
    HttpReply reply;
    try {
      reply = httpCall(url, method, target, body, contentType, timeout);
    } catch (const CommandError& e) {
      reasons += std::string(reasons.empty() ? "" : "; ") + e.what();
      continue;
    }
    const std::string leader = leaderNamedBy(reply);
    if (leader.empty() || leader == url) {
      lastAnswered = url;
      return noteStandby(reply);
    }
    // A standby: once more at the leader it names. Its answer, whatever it is, is the
    // answer (a second standby answer means the leadership is moving: the caller sees it).
    try {
      reply = httpCall(leader, method, target, body, contentType, timeout);
      lastAnswered = leader;
      return noteStandby(reply);
    } catch (const CommandError& e) {
      reasons += std::string(reasons.empty() ? "" : "; ") + url + " names the leader " + leader + ", but " + e.what();
    }
  }
  throw CommandError("no controller replica answered: " + reasons);
}

}  // namespace loom::loomctl
