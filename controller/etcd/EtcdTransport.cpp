// EtcdClient's transport (EtcdTransport.h): the Connection, one exchange with one
// member, and call(), which tries the members as EtcdClient.h describes.
#include "controller/etcd/EtcdTransport.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "controller/etcd/EtcdJson.h"

namespace loom::controller::etcd {

using nlohmann::json;

namespace {

std::string msText(std::chrono::milliseconds ms) { return std::to_string(ms.count()) + " ms"; }

// Answers that say the member did not propose the request: any other member may take it.
bool notProposed(const std::string& message) {
  return message.find("etcdserver: no leader") != std::string::npos ||
         message.find("etcdserver: not capable") != std::string::npos;
}

std::pair<std::string, std::string> splitHostPort(const std::string& endpoint) {
  const auto colon = endpoint.rfind(':');
  std::string host = endpoint.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  return {host, endpoint.substr(colon + 1)};
}

}  // namespace

// ---- Connection

bool EtcdClient::Connection::runUntil(const bool& done, Clock::time_point deadline) {
  while (!done) {
    if (ioc.stopped()) ioc.restart();
    if (Clock::now() >= deadline) return false;
    if (ioc.run_one_until(deadline) == 0 && !done && ioc.stopped()) return false;  // no work left: cannot happen
  }
  return true;
}

void EtcdClient::Connection::close() {
  beast::error_code ignored;
  socket.shutdown(tcp::socket::shutdown_both, ignored);
  socket.close(ignored);
  ioc.restart();
  ioc.run();
  buffer.clear();
  index = static_cast<std::size_t>(-1);
  reused = false;
}

std::string EtcdClient::Connection::connect(const std::string& endpoint, std::size_t idx, Clock::time_point deadline,
                                            bool& timedOut) {
  close();
  timedOut = false;
  const auto [host, port] = splitHostPort(endpoint);
  tcp::resolver resolver(ioc);
  bool done = false;
  beast::error_code ec;
  tcp::resolver::results_type results;
  resolver.async_resolve(host, port, [&](const beast::error_code& e, tcp::resolver::results_type r) {
    ec = e;
    results = std::move(r);
    done = true;
  });
  if (!runUntil(done, deadline)) {
    resolver.cancel();
    close();
    timedOut = true;
    return "could not resolve '" + host + "' in time";
  }
  if (ec) return "cannot resolve '" + host + "': " + ec.message();
  done = false;
  asio::async_connect(socket, results, [&](const beast::error_code& e, const tcp::endpoint&) {
    ec = e;
    done = true;
  });
  if (!runUntil(done, deadline)) {
    close();
    timedOut = true;
    return "could not connect in time";
  }
  if (ec) {
    close();
    return "cannot connect: " + ec.message();
  }
  socket.set_option(tcp::no_delay(true), ec);
  index = idx;
  return {};
}

// ---- the client's side

void EtcdClient::disconnect() { conn_->close(); }

bool EtcdClient::runUntil(const bool& done, Clock::time_point deadline) { return conn_->runUntil(done, deadline); }

Status EtcdClient::connect(std::size_t index, Clock::time_point deadline) {
  bool timedOut = false;
  std::string why = conn_->connect(endpoints_[index], index, deadline, timedOut);
  if (why.empty()) return okStatus();
  return makeError(timedOut ? Errc::Timeout : Errc::Unavailable, why);
}

EtcdClient::Exchange EtcdClient::exchange(std::size_t index, const std::string& path, const std::string& body,
                                          std::size_t maxBytes, Clock::time_point deadline) {
  Exchange ex;
  Connection& c = *conn_;
  if (c.index != index || !c.socket.is_open()) {
    if (auto s = connect(index, deadline); !s) {
      ex.outcome = Exchange::Outcome::NotSent;
      ex.timedOut = s.error().code == Errc::Timeout;
      ex.error = s.error().message;
      return ex;
    }
  }
  const bool reused = c.reused;
  http::request<http::string_body> req{http::verb::post, path, 11};
  req.set(http::field::host, endpoints_[index]);
  req.set(http::field::content_type, "application/json");
  req.keep_alive(true);
  req.body() = body;
  req.prepare_payload();
  bool done = false;
  beast::error_code ec;
  http::async_write(c.socket, req, [&](const beast::error_code& e, std::size_t) {
    ec = e;
    done = true;
  });
  if (!c.runUntil(done, deadline) || ec) {
    // A request not written whole is not processed (etcd waits for the whole body).
    ex.timedOut = !done;
    ex.error = done ? "cannot send: " + ec.message() : "could not send in time";
    ex.outcome = reused && done ? Exchange::Outcome::Stale : Exchange::Outcome::NotSent;
    c.close();
    return ex;
  }
  http::response_parser<http::string_body> parser;
  parser.header_limit(kHeaderLimit);
  parser.body_limit(maxBytes);
  // The header first, and the declared length checked before the body is read: Boost
  // 1.74's parser, reading a whole message eagerly, goes on from a header that exceeds
  // body_limit to reserving the declared length when body bytes came in the same read
  // (a 1 TiB Content-Length was a std::bad_alloc; EtcdClientBounds tests it).
  done = false;
  http::async_read_header(c.socket, c.buffer, parser, [&](const beast::error_code& e, std::size_t) {
    ec = e;
    done = true;
  });
  if (c.runUntil(done, deadline) && !ec) {
    if (const auto length = parser.content_length(); length && *length > maxBytes) ec = http::error::body_limit;
    if (!ec && !parser.is_done()) {
      done = false;
      http::async_read(c.socket, c.buffer, parser, [&](const beast::error_code& e, std::size_t) {
        ec = e;
        done = true;
      });
    }
  }
  if (!c.runUntil(done, deadline)) {
    c.close();
    ex.outcome = Exchange::Outcome::Lost;
    ex.timedOut = true;
    ex.error = "no answer within " + msText(options_.timeout);
    return ex;
  }
  if (ec == http::error::body_limit) {
    c.close();
    ex.outcome = Exchange::Outcome::Refused;
    ex.error = "answer larger than " + std::to_string(maxBytes) + " bytes, refused";
    return ex;
  }
  const bool closed = ec == http::error::end_of_stream || ec == http::error::partial_message ||
                      ec.category() != http::make_error_code(http::error::bad_method).category();
  if (ec && !closed) {  // the parser's: not HTTP, or a header past its limit
    c.close();
    ex.outcome = Exchange::Outcome::Refused;
    ex.error = "malformed HTTP answer: " + ec.message();
    return ex;
  }
  if (ec) {
    const bool nothing = !parser.got_some();
    c.close();
    ex.outcome = reused && nothing ? Exchange::Outcome::Stale : Exchange::Outcome::Lost;
    ex.error = "connection lost: " + ec.message();
    return ex;
  }
  c.reused = true;
  auto res = parser.release();
  ex.outcome = Exchange::Outcome::Answered;
  ex.status = res.result_int();
  ex.body = std::move(res.body());
  if (!res.keep_alive()) c.close();
  return ex;
}

Result<std::string> EtcdClient::call(const std::string& path, const std::string& body, Kind kind,
                                     std::size_t maxBytes) {
  const auto deadline = Clock::now() + options_.timeout;
  std::string failures;
  bool timedOut = false;
  const std::size_t n = endpoints_.size();
  const std::size_t first = preferred_;
  for (std::size_t k = 0; k < n; ++k) {
    const std::size_t i = (first + k) % n;
    const std::string& ep = endpoints_[i];
    if (Clock::now() >= deadline) {
      failures += (failures.empty() ? "" : "; ") + ep + ": not tried (out of time)";
      continue;
    }
    Exchange ex = exchange(i, path, body, maxBytes, deadline);
    if (ex.outcome == Exchange::Outcome::Stale) ex = exchange(i, path, body, maxBytes, deadline);
    timedOut = timedOut || ex.timedOut;
    switch (ex.outcome) {
      case Exchange::Outcome::Answered: {
        if (ex.status == 200) {
          preferred_ = i;
          return std::move(ex.body);
        }
        // {"error": "...", "message": "...", "code": N}
        json j = json::parse(ex.body, nullptr, false);
        std::string message;
        std::int64_t code = -1;
        if (j.is_object()) {
          if (auto m = j.find("message"); m != j.end() && m->is_string()) message = m->get<std::string>();
          if (auto e = j.find("error"); message.empty() && e != j.end() && e->is_string())
            message = e->get<std::string>();
          if (auto cd = j.find("code"); cd != j.end() && cd->is_number_integer()) code = cd->get<std::int64_t>();
        }
        if (message.empty())
          message = "HTTP " + std::to_string(ex.status) + ": " +
                    ex.body.substr(0, std::min<std::size_t>(200, ex.body.size()));
        const Errc errc = code >= 0 ? errcOfGrpc(code) : Errc::Io;
        if (notProposed(message) || (kind == Kind::Read && errc == Errc::Unavailable)) {
          failures += (failures.empty() ? "" : "; ") + ep + ": " + message;
          continue;
        }
        preferred_ = i;
        return makeError(errc, "etcd " + ep + ": " + message);
      }
      case Exchange::Outcome::Refused:
        preferred_ = (i + 1) % n;
        return makeError(Errc::Io, "etcd " + ep + ": " + ex.error);
      case Exchange::Outcome::Stale:
      case Exchange::Outcome::NotSent:
        failures += (failures.empty() ? "" : "; ") + ep + ": " + ex.error;
        continue;
      case Exchange::Outcome::Lost:
        if (kind == Kind::Read) {
          failures += (failures.empty() ? "" : "; ") + ep + ": " + ex.error;
          continue;
        }
        preferred_ = (i + 1) % n;
        return makeError(ex.timedOut ? Errc::Timeout : Errc::Unavailable,
                         "etcd " + ep + ": " + ex.error + " to a write; whether it was applied is unknown");
    }
  }
  preferred_ = (first + 1) % n;  // the next call starts elsewhere
  return makeError(timedOut ? Errc::Timeout : Errc::Unavailable,
                   "etcd: no member answered within " + msText(options_.timeout) + " (" + failures + ")");
}

}  // namespace loom::controller::etcd
