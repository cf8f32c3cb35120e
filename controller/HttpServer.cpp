#include "controller/HttpServer.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <spdlog/spdlog.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/core/detect_ssl.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <mutex>
#include <type_traits>

namespace loom::controller {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using PlainStream = beast::tcp_stream;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;
using TlsContext = std::shared_ptr<ssl::context>;

// Twice what config/ parses (8 MiB, config/detail/YamlDocuments.h): a body config refuses
// gets its precise message; a larger one is a 413 before it is buffered.
constexpr std::size_t kBodyLimit = std::size_t{16} << 20;
constexpr auto kIdleTimeout = std::chrono::seconds(60);
// A TLS client has this long from connecting to the end of its handshake.
constexpr auto kHandshakeTimeout = std::chrono::seconds(10);
constexpr auto kShutdownTimeout = std::chrono::seconds(5);
// TLS 1.2's forward-secret AEAD suites (Mozilla's "intermediate" list without DHE); TLS
// 1.3's are OpenSSL's defaults, all of them AEAD.
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

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

// A request or an answer on a connection, plain or TLS: one Session per connection,
// reading requests one after the other (keep-alive) until the client or a timeout ends it.
template <class Stream>
class Session : public std::enable_shared_from_this<Session<Stream>> {
  static constexpr bool kTls = std::is_same_v<Stream, TlsStream>;

 public:
  // `context` only with TLS; `buffer` holds what was read before (the TLS detection).
  Session(PlainStream tcp, TlsContext context, beast::flat_buffer buffer, const HttpServer::Handler& handler)
      : context_(std::move(context)),
        stream_(makeStream(std::move(tcp), context_)),
        buffer_(std::move(buffer)),
        handler_(handler) {}

  void start() {
    if constexpr (kTls) {
      beast::get_lowest_layer(stream_).expires_after(kHandshakeTimeout);
      stream_.async_handshake(ssl::stream_base::server, buffer_.data(),
                              [self = this->shared_from_this()](beast::error_code ec, std::size_t used) {
                                // A failed handshake (a client that does not trust us, a
                                // scanner) ends here: the socket closes with the session.
                                if (ec) return spdlog::debug("http: TLS handshake failed: {}", ec.message());
                                self->buffer_.consume(used);
                                self->read();
                              });
    } else {
      read();
    }
  }

 private:
  static Stream makeStream(PlainStream tcp, const TlsContext& context) {
    if constexpr (kTls)
      return Stream(std::move(tcp), *context);
    else
      return tcp;
  }

  void read() {
    parser_.emplace();
    parser_->body_limit(kBodyLimit);
    parser_->header_limit(64 * 1024);
    // The whole request must arrive within this (the timer is not reset by each byte).
    beast::get_lowest_layer(stream_).expires_after(kIdleTimeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = this->shared_from_this()](beast::error_code ec, std::size_t) { self->onRead(ec); });
  }

  void onRead(beast::error_code ec) {
    static const auto& httpErrors = http::make_error_code(http::error::end_of_stream).category();
    if (ec == http::error::end_of_stream || ec == beast::error::timeout || ec == asio::error::connection_reset ||
        ec == asio::error::eof || ec == asio::error::operation_aborted || ec == ssl::error::stream_truncated)
      return close();
    if (ec && ec.category() != httpErrors) return close();  // the connection (or TLS) broke
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
    beast::get_lowest_layer(stream_).expires_never();
    auto self = this->shared_from_this();
    auto* executor = &stream_;
    beast::error_code peerError;
    const auto peer = beast::get_lowest_layer(stream_).socket().remote_endpoint(peerError);
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
    beast::get_lowest_layer(stream_).expires_after(kIdleTimeout);
    http::async_write(stream_, *res, [self = this->shared_from_this(), res](beast::error_code ec, std::size_t) {
      if (ec || !self->keepAlive_) return self->close();
      self->read();
    });
  }

  void close() {
    if constexpr (kTls) {
      // close_notify, bounded: a peer that never answers it is cut off by the timer.
      beast::get_lowest_layer(stream_).expires_after(kShutdownTimeout);
      stream_.async_shutdown([self = this->shared_from_this()](beast::error_code) {});
    } else {
      beast::error_code ec;
      stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    }
  }

  TlsContext context_;  // outlives stream_, which refers to it
  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  const HttpServer::Handler& handler_;
  bool keepAlive_ = true;
};

// A new connection to an HTTPS server: a TLS ClientHello goes on to a TLS Session; plain
// HTTP gets one plain 400 that says to use https://, rather than a TLS alert a browser or
// curl would show as garbage.
class TlsDetector : public std::enable_shared_from_this<TlsDetector> {
 public:
  TlsDetector(tcp::socket socket, TlsContext context, const HttpServer::Handler& handler)
      : stream_(std::move(socket)), context_(std::move(context)), handler_(handler) {}

  void start() {
    stream_.expires_after(kHandshakeTimeout);
    beast::async_detect_ssl(stream_, buffer_,
                            [self = shared_from_this()](beast::error_code ec, bool tls) { self->onDetect(ec, tls); });
  }

 private:
  void onDetect(beast::error_code ec, bool tls) {
    if (ec) return;  // closed, or silent for kHandshakeTimeout: the socket closes with us
    if (tls)
      return std::make_shared<Session<TlsStream>>(std::move(stream_), context_, std::move(buffer_), handler_)->start();
    auto res = std::make_shared<http::response<http::string_body>>(http::status::bad_request, 11);
    res->set(http::field::server, "loomd");
    res->set(http::field::content_type, "application/json");
    res->keep_alive(false);
    res->body() =
        nlohmann::json{{"error", "this loomd API speaks HTTPS only: use an https:// URL (and the CA that signed it)"}}
            .dump() +
        "\n";
    res->prepare_payload();
    http::async_write(stream_, *res, [self = shared_from_this(), res](beast::error_code ec, std::size_t) {
      if (ec) return;
      beast::error_code ignored;
      self->stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
      self->drain();
    });
  }

  // Reads what the client still sends until it hangs up (bounded by the timer), so that
  // closing with unread bytes does not reset the connection before it read the answer.
  void drain() {
    buffer_.clear();
    stream_.async_read_some(buffer_.prepare(4096), [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (!ec) self->drain();
    });
  }

  PlainStream stream_;
  TlsContext context_;
  beast::flat_buffer buffer_;
  const HttpServer::Handler& handler_;
};

// OpenSSL's reason for the last failure ("no start line", "key values mismatch"), and
// whether it was a key that does not belong to the certificate.
struct OpensslFailure {
  std::string reason;
  bool keyMismatch = false;
};

OpensslFailure lastOpensslFailure() {
  OpensslFailure out;
  while (const unsigned long e = ERR_get_error()) {
    const char* reason = ERR_reason_error_string(e);
    // The first reason is the precise one ("no start line"); later ones say where it
    // surfaced ("PEM lib").
    if (out.reason.empty() && reason) out.reason = reason;
    const int r = ERR_GET_REASON(e);
    out.keyMismatch = out.keyMismatch || (ERR_GET_LIB(e) == ERR_LIB_X509 &&
                                          (r == X509_R_KEY_VALUES_MISMATCH || r == X509_R_KEY_TYPE_MISMATCH));
  }
  if (out.reason.empty()) out.reason = "unknown OpenSSL error";
  return out;
}

std::string asn1Time(const ASN1_TIME* t) {
  std::tm tm{};
  if (ASN1_TIME_to_tm(t, &tm) != 1) return "?";
  char text[32];
  return std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm) ? text : "?";
}

// "DNS:lab1, IP:127.0.0.1" from the certificate's subjectAltName.
std::string subjectAltNames(X509* cert) {
  std::string out;
  auto* names = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (!names) return out;
  for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* n = sk_GENERAL_NAME_value(names, i);
    std::string one;
    if (n->type == GEN_DNS) {
      one = "DNS:" + std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(n->d.dNSName)),
                                 static_cast<std::size_t>(ASN1_STRING_length(n->d.dNSName)));
    } else if (n->type == GEN_IPADD) {
      const auto* ip = ASN1_STRING_get0_data(n->d.iPAddress);
      const int len = ASN1_STRING_length(n->d.iPAddress);
      if (len == 4)
        one = "IP:" + asio::ip::address_v4({ip[0], ip[1], ip[2], ip[3]}).to_string();
      else if (len == 16) {
        asio::ip::address_v6::bytes_type b{};
        std::memcpy(b.data(), ip, 16);
        one = "IP:" + asio::ip::address_v6(b).to_string();
      }
    }
    if (!one.empty()) out += (out.empty() ? "" : ", ") + one;
  }
  GENERAL_NAMES_free(names);
  return out;
}

std::string describeCertificate(X509* cert) {
  char subject[256] = "?";
  X509_NAME_oneline(X509_get_subject_name(cert), subject, sizeof subject);
  const std::string names = subjectAltNames(cert);
  return std::string("subject ") + subject + (names.empty() ? ", no subjectAltName" : ", names " + names) +
         ", valid until " + asn1Time(X509_get0_notAfter(cert));
}

// The server's TLS context from the PEM pair; every error names the file and why.
Result<TlsContext> loadTls(const TlsFiles& files, std::string& summary) {
  const auto bad = [](const std::string& what, const std::string& path, const std::string& why) {
    return makeError(Errc::Invalid, "TLS " + what + " '" + path + "': " + why);
  };
  const std::pair<const std::string*, const char*> paths[] = {{&files.certFile, "certificate (--api-tls-cert)"},
                                                              {&files.keyFile, "key (--api-tls-key)"}};
  for (const auto& [path, what] : paths) {
    std::FILE* f = std::fopen(path->c_str(), "r");
    if (!f) return bad(what, *path, std::string("cannot read it: ") + std::strerror(errno));
    std::fclose(f);
  }
  auto context = std::make_shared<ssl::context>(ssl::context::tls_server);
  SSL_CTX* native = context->native_handle();
  SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
  SSL_CTX_set_options(native, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_SINGLE_DH_USE);
  SSL_CTX_set_cipher_list(native, kTls12Ciphers);
  // An encrypted key would make OpenSSL ask for a passphrase on the terminal: refuse it.
  SSL_CTX_set_default_passwd_cb(native, [](char*, int, int, void*) { return 0; });
  ERR_clear_error();
  if (SSL_CTX_use_certificate_chain_file(native, files.certFile.c_str()) != 1)
    return bad("certificate (--api-tls-cert)", files.certFile,
               "not a PEM certificate chain (" + lastOpensslFailure().reason + ")");
  if (SSL_CTX_use_PrivateKey_file(native, files.keyFile.c_str(), SSL_FILETYPE_PEM) != 1) {
    const auto failure = lastOpensslFailure();
    if (failure.keyMismatch)
      return bad("key (--api-tls-key)", files.keyFile,
                 "does not match the certificate in '" + files.certFile + "' (another pair's key)");
    return bad("key (--api-tls-key)", files.keyFile, "not an unencrypted PEM private key (" + failure.reason + ")");
  }
  if (SSL_CTX_check_private_key(native) != 1)
    return bad("key (--api-tls-key)", files.keyFile,
               "does not match the certificate in '" + files.certFile + "' (another pair's key)");
  X509* cert = SSL_CTX_get0_certificate(native);
  summary = describeCertificate(cert);
  if (X509_cmp_current_time(X509_get0_notAfter(cert)) < 0)
    spdlog::warn("TLS certificate '{}' has expired ({}): clients will refuse it", files.certFile, summary);
  return context;
}

}  // namespace

struct HttpServer::Impl {
  std::string address;
  unsigned short port;
  Handler handler;
  std::optional<TlsFiles> tlsFiles;
  std::mutex tlsMutex;  // tls and certSummary: reloadTls() runs on another thread
  TlsContext tls;
  std::string certSummary;
  asio::io_context io{1};
  tcp::acceptor acceptor{io};

  TlsContext currentTls() {
    std::lock_guard lock(tlsMutex);
    return tls;
  }

  asio::steady_timer acceptRetry{io};

  void accept() {
    acceptor.async_accept([this](beast::error_code ec, tcp::socket socket) {
      if (!ec) {
        if (tlsFiles)
          std::make_shared<TlsDetector>(std::move(socket), currentTls(), handler)->start();
        else
          std::make_shared<Session<PlainStream>>(PlainStream(std::move(socket)), nullptr, beast::flat_buffer{}, handler)
              ->start();
      } else if (ec == asio::error::operation_aborted) {
        return;
      } else {
        // Out of descriptors (EMFILE) or memory: accepting again at once would spin the
        // HTTP thread until a session ends. Wait a little; the idle timeouts free some.
        spdlog::warn("http: cannot accept a connection: {}; retrying in 100 ms", ec.message());
        acceptRetry.expires_after(std::chrono::milliseconds(100));
        acceptRetry.async_wait([this](beast::error_code waited) {
          if (!waited) accept();
        });
        return;
      }
      accept();
    });
  }
};

HttpServer::HttpServer(std::string address, unsigned short port, Handler handler, std::optional<TlsFiles> tls)
    : impl_(std::make_unique<Impl>()) {
  impl_->address = std::move(address);
  impl_->port = port;
  impl_->handler = std::move(handler);
  impl_->tlsFiles = std::move(tls);
}

HttpServer::~HttpServer() = default;

Result<unsigned short> HttpServer::listen() {
  if (impl_->tlsFiles) {
    std::string summary;
    auto context = loadTls(*impl_->tlsFiles, summary);
    if (!context) return context.error();
    std::lock_guard lock(impl_->tlsMutex);
    impl_->tls = std::move(*context);
    impl_->certSummary = std::move(summary);
  }
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

Status HttpServer::checkTls(const TlsFiles& files) {
  std::string summary;
  auto context = loadTls(files, summary);
  if (!context) return context.error();
  return okStatus();
}

std::string HttpServer::scheme() const { return impl_->tlsFiles ? "https" : "http"; }

std::string HttpServer::certificateSummary() const {
  std::lock_guard lock(impl_->tlsMutex);
  return impl_->certSummary;
}

Status HttpServer::reloadTls() {
  if (!impl_->tlsFiles) return okStatus();
  std::string summary;
  auto context = loadTls(*impl_->tlsFiles, summary);
  if (!context) return context.error();
  std::lock_guard lock(impl_->tlsMutex);
  impl_->tls = std::move(*context);
  impl_->certSummary = std::move(summary);
  return okStatus();
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
