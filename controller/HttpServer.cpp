#include "controller/HttpServer.h"

#include <spdlog/spdlog.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace loom::controller {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

// Twice what config/ parses (8 MiB, config/detail/YamlDocuments.h): a body config refuses
// gets its precise message; a larger one is a 413 before it is buffered.
constexpr std::size_t kBodyLimit = std::size_t{16} << 20;
constexpr auto kIdleTimeout = std::chrono::seconds(60);

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string urlDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+')
      out += ' ';
    else if (s[i] == '%' && i + 2 < s.size() && hexValue(s[i + 1]) >= 0 && hexValue(s[i + 2]) >= 0) {
      out += static_cast<char>(hexValue(s[i + 1]) * 16 + hexValue(s[i + 2]));
      i += 2;
    } else
      out += s[i];
  }
  return out;
}

// `peer`: the client's address, for the audit log.
ApiRequest toApiRequest(const http::request<http::string_body>& req, std::string peer) {
  ApiRequest out;
  // The bearer token (controller/access/): checked by the router, never logged.
  if (auto it = req.find(http::field::authorization); it != req.end())
    out.authorization = std::string(it->value().data(), it->value().size());
  out.peer = std::move(peer);
  out.method = std::string(req.method_string());
  const auto rawTarget = req.target();
  std::string_view target(rawTarget.data(), rawTarget.size());
  const auto q = target.find('?');
  out.path = urlDecode(target.substr(0, q));
  if (q != std::string_view::npos) {
    std::string_view query = target.substr(q + 1);
    while (!query.empty()) {
      const auto amp = query.find('&');
      std::string_view pair = query.substr(0, amp);
      const auto eq = pair.find('=');
      out.query[urlDecode(pair.substr(0, eq))] = eq == std::string_view::npos ? "" : urlDecode(pair.substr(eq + 1));
      if (amp == std::string_view::npos) break;
      query.remove_prefix(amp + 1);
    }
  }
  out.body = req.body();
  return out;
}

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, const HttpServer::Handler& handler) : stream_(std::move(socket)), handler_(handler) {}

  void start() { read(); }

 private:
  void read() {
    parser_.emplace();
    parser_->body_limit(kBodyLimit);
    parser_->header_limit(64 * 1024);
    stream_.expires_after(kIdleTimeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, std::size_t) { self->onRead(ec); });
  }

  void onRead(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout || ec == asio::error::connection_reset ||
        ec == asio::error::eof || ec == asio::error::operation_aborted)
      return close();
    if (ec) {
      // Garbage, an oversized body or header: a precise refusal, then hang up.
      const int status = ec == http::error::body_limit ? 413 : 400;
      ApiResponse r{status, "application/json",
                    nlohmann::json{{"error", "bad request: " + ec.message()}}.dump() + "\n"};
      keepAlive_ = false;
      return write(std::move(r), 11);
    }
    auto req = parser_->release();
    keepAlive_ = req.keep_alive();
    const unsigned version = req.version();
    // No timeout while the controller thinks (or a long-poll waits); it is reset on write.
    stream_.expires_never();
    auto self = shared_from_this();
    auto* executor = &stream_;
    beast::error_code peerError;
    const auto peer = stream_.socket().remote_endpoint(peerError);
    std::string peerText =
        peerError ? std::string("unknown") : peer.address().to_string() + ":" + std::to_string(peer.port());
    handler_(toApiRequest(req, std::move(peerText)), [self, executor, version](ApiResponse r) {
      asio::post(executor->get_executor(),
                 [self, r = std::move(r), version]() mutable { self->write(std::move(r), version); });
    });
  }

  void write(ApiResponse r, unsigned version) {
    auto res = std::make_shared<http::response<http::string_body>>(static_cast<http::status>(r.status), version);
    res->set(http::field::server, "loomd");
    res->set(http::field::content_type, r.contentType);
    for (const auto& [name, value] : r.headers) res->set(name, value);
    res->keep_alive(keepAlive_);
    res->body() = std::move(r.body);
    res->prepare_payload();
    stream_.expires_after(kIdleTimeout);
    http::async_write(stream_, *res, [self = shared_from_this(), res](beast::error_code ec, std::size_t) {
      if (ec || !self->keepAlive_) return self->close();
      self->read();
    });
  }

  void close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  const HttpServer::Handler& handler_;
  bool keepAlive_ = true;
};

}  // namespace

struct HttpServer::Impl {
  std::string address;
  unsigned short port;
  Handler handler;
  asio::io_context io{1};
  tcp::acceptor acceptor{io};

  void accept() {
    acceptor.async_accept([this](beast::error_code ec, tcp::socket socket) {
      if (!ec)
        std::make_shared<Session>(std::move(socket), handler)->start();
      else if (ec == asio::error::operation_aborted)
        return;
      accept();
    });
  }
};

HttpServer::HttpServer(std::string address, unsigned short port, Handler handler) : impl_(std::make_unique<Impl>()) {
  impl_->address = std::move(address);
  impl_->port = port;
  impl_->handler = std::move(handler);
}

HttpServer::~HttpServer() = default;

Result<unsigned short> HttpServer::listen() {
  beast::error_code ec;
  auto addr = asio::ip::make_address(impl_->address, ec);
  if (ec) return makeError(Errc::Invalid, "bad API address '" + impl_->address + "': " + ec.message());
  tcp::endpoint ep{addr, impl_->port};
  auto& a = impl_->acceptor;
  a.open(ep.protocol(), ec);
  if (!ec) a.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) a.bind(ep, ec);
  if (!ec) a.listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    return makeError(Errc::Io,
                     "cannot listen on " + impl_->address + ":" + std::to_string(impl_->port) + ": " + ec.message());
  impl_->accept();
  return a.local_endpoint().port();
}

void HttpServer::run() {
  while (true) {
    try {
      impl_->io.run();
      return;
    } catch (const std::exception& e) {
      // Never let one request take the API down.
      spdlog::error("http: {}", e.what());
    }
  }
}

void HttpServer::stop() { impl_->io.stop(); }

}  // namespace loom::controller
