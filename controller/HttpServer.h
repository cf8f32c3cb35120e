// loomd's HTTP API transport (Boost.Beast, async, one io thread). It only parses and
// writes HTTP: every request becomes an ApiRequest handed to `handler`, which answers
// later from any thread through `done` (the controller core thread does). Beast is
// confined to HttpServer.cpp, the one translation unit that pays its compile cost.
//
// With TlsFiles it serves HTTPS only (OpenSSL: TLS 1.2 and 1.3, forward-secret AEAD
// ciphers); a client that speaks plain HTTP to it gets one plain 400 saying so. Without,
// plain HTTP, for loopback and labs (docs/SECURITY.md).
//
// Timeouts: a connection that completes no TLS handshake within 10 s, or sends no
// complete request within 60 s of the last answer (or of connecting), is closed.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "controller/api/Api.h"
#include "loom/Result.h"

namespace loom::controller {

// A PEM certificate chain (the server's certificate first) and its PEM private key.
struct TlsFiles {
  std::string certFile;  // loomd --api-tls-cert
  std::string keyFile;   // loomd --api-tls-key
};

class HttpServer {
 public:
  using Done = std::function<void(ApiResponse)>;
  using Handler = std::function<void(ApiRequest, Done)>;

  HttpServer(std::string address, unsigned short port, Handler handler, std::optional<TlsFiles> tls = std::nullopt);
  ~HttpServer();

  // Binds and listens; returns the bound port (useful with port 0). With TLS the pair is
  // loaded first: a file that cannot be read, is not PEM, or a key that does not match the
  // certificate is an error naming the file and why, and nothing is bound.
  Result<unsigned short> listen();
  // Serves until stop(). Call from the HTTP thread.
  void run();
  void stop();  // thread-safe

  // What listen() checks of a TLS pair, to refuse a bad one before anything starts.
  static Status checkTls(const TlsFiles& files);

  // "http" or "https": what a URL to this server starts with.
  std::string scheme() const;
  // One line on the certificate served (subject, names, expiry), or "" without TLS.
  std::string certificateSummary() const;
  // Thread-safe: loads the pair from its files again (a rotated certificate); new
  // connections get it, those open keep theirs. On an error (as listen's) the pair in
  // use stays. A no-op without TLS.
  Status reloadTls();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace loom::controller
