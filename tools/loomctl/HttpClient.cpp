#include "tools/loomctl/HttpClient.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <functional>
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
namespace ssl = asio::ssl;

// The CA file https:// controllers are verified with (empty: the system's CAs).
std::string gCaFile;
// The API token every request sends (empty: none), from setBearerToken.
std::string gBearerToken;

struct Url {
  bool tls = false;
  std::string host, port;
};

// "http[s]://host:port[/...]" -> (tls, host, port)
Url splitUrl(const std::string& url) {
  Url out;
  std::string rest = url;
  if (rest.rfind("http://", 0) == 0) {
    rest = rest.substr(7);
  } else if (rest.rfind("https://", 0) == 0) {
    rest = rest.substr(8);
    out.tls = true;
  } else if (rest.find("://") != std::string::npos) {
    throw CommandError("controller URL '" + url + "': only http:// and https:// are supported");
  }
  if (auto slash = rest.find('/'); slash != std::string::npos) rest = rest.substr(0, slash);
  const auto colon = rest.rfind(':');
  out.host = colon == std::string::npos ? rest : rest.substr(0, colon);
  out.port = colon == std::string::npos ? (out.tls ? "443" : "80") : rest.substr(colon + 1);
  return out;
}

// "Connection refused" -> "connection refused": the message continues a sentence.
std::string reasonOf(const beast::error_code& ec) {
  if (ec == beast::error::timeout) return "timed out";
  std::string m = ec.message();
  if (!m.empty()) m[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(m[0])));
  return m;
}

// Starts one asynchronous operation and runs it to its end: the tcp_stream's timer bounds
// asynchronous operations only, so every step of the exchange is one.
template <class Start>
beast::error_code runOp(asio::io_context& io, Start start) {
  beast::error_code result;
  start([&result](beast::error_code ec, auto&&...) { result = ec; });
  io.restart();
  io.run();
  return result;
}

// "DNS:lab1, IP:127.0.0.1": whom a certificate names (its subjectAltName).
std::string namesOf(X509* cert) {
  std::string out;
  auto* names = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; names && i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* n = sk_GENERAL_NAME_value(names, i);
    std::string one;
    if (n->type == GEN_DNS) {
      one = "DNS:" + std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(n->d.dNSName)),
                                 static_cast<std::size_t>(ASN1_STRING_length(n->d.dNSName)));
    } else if (n->type == GEN_IPADD) {
      const auto* ip = ASN1_STRING_get0_data(n->d.iPAddress);
      const int len = ASN1_STRING_length(n->d.iPAddress);
      if (len == 4) {
        one = "IP:" + asio::ip::address_v4({ip[0], ip[1], ip[2], ip[3]}).to_string();
      } else if (len == 16) {
        asio::ip::address_v6::bytes_type b{};
        std::copy(ip, ip + 16, b.begin());
        one = "IP:" + asio::ip::address_v6(b).to_string();
      }
    }
    if (!one.empty()) out += (out.empty() ? "" : ", ") + one;
  }
  if (names) GENERAL_NAMES_free(names);
  if (out.empty()) {
    char subject[256] = "?";
    X509_NAME_oneline(X509_get_subject_name(cert), subject, sizeof subject);
    out = std::string("no subjectAltName; subject ") + subject;
  }
  return out;
}

// What verification of the server's certificate found first (OpenSSL stops there).
struct VerifyFailure {
  int error = X509_V_OK;
  std::string names;  // of the server's own certificate
};

// The client side of TLS: TLS 1.2+, the server's certificate verified against the CA file
// (or the system's CAs) and its name against the URL's host.
ssl::context clientContext() {
  ssl::context context(ssl::context::tls_client);
  SSL_CTX_set_min_proto_version(context.native_handle(), TLS1_2_VERSION);
  context.set_verify_mode(ssl::verify_peer);
  if (gCaFile.empty()) {
    context.set_default_verify_paths();
    return context;
  }
  if (std::FILE* f = std::fopen(gCaFile.c_str(), "r"))
    std::fclose(f);
  else
    throw CommandError("cannot read the CA file '" + gCaFile + "' (--ca, LOOM_CA): " + std::strerror(errno));
  beast::error_code ec;
  context.load_verify_file(gCaFile, ec);
  if (ec) throw CommandError("the CA file '" + gCaFile + "' (--ca, LOOM_CA) holds no PEM certificate");
  return context;
}

// Why the certificate of `url` was refused, in an operator's words: which name, which CA.
std::string refusal(const VerifyFailure& f, const Url& url) {
  const std::string openssl = X509_verify_cert_error_string(f.error);
  if (f.error == X509_V_ERR_HOSTNAME_MISMATCH || f.error == X509_V_ERR_IP_ADDRESS_MISMATCH)
    return "its TLS certificate is not for '" + url.host + "' (it names " + f.names +
           "): connect by one of those names, or give loomd a certificate for this one";
  if (f.error == X509_V_ERR_CERT_HAS_EXPIRED || f.error == X509_V_ERR_CERT_NOT_YET_VALID)
    return "its TLS certificate (" + f.names + ") is not valid now (" + openssl + ")";
  const std::string ca = gCaFile.empty() ? std::string("any CA this system trusts (give loomd's CA with --ca FILE)")
                                         : "the CA in '" + gCaFile + "' (--ca, LOOM_CA)";
  return "its TLS certificate (" + f.names + ") is not signed by " + ca + " (OpenSSL: " + openssl + ")";
}

template <class Stream>
HttpReply exchange(asio::io_context& io, Stream& stream, const std::string& host, const std::string& method,
                   const std::string& target, const std::string& body, const std::string& contentType,
                   const std::function<CommandError(const std::string&)>& unreachable) {
  http::request<http::string_body> req{http::string_to_verb(method), target, 11};
  req.set(http::field::host, host);
  req.set(http::field::user_agent, "loomctl");
  if (!gBearerToken.empty()) req.set(http::field::authorization, "Bearer " + gBearerToken);
  if (!body.empty() || method == "POST") {
    req.set(http::field::content_type, contentType);
    req.body() = body;
    req.prepare_payload();
  }
  if (auto ec = runOp(io, [&](auto handler) { http::async_write(stream, req, handler); }))
    throw unreachable(reasonOf(ec));
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(std::size_t{1} << 30);
  if (auto ec = runOp(io, [&](auto handler) { http::async_read(stream, buffer, parser, handler); }))
    throw unreachable(reasonOf(ec));
  HttpReply reply{static_cast<int>(parser.get().result_int()), parser.get().body(), {}};
  for (const auto& field : parser.get()) {
    std::string name(field.name_string());
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (name.rfind("x-loom-", 0) == 0) reply.headers[name] = std::string(field.value());
  }
  return reply;
}

}  // namespace

void trustCertificateAuthority(const std::string& caFile) { gCaFile = caFile; }

void setBearerToken(std::string token) { gBearerToken = std::move(token); }

HttpReply httpCall(const std::string& controller, const std::string& method, const std::string& target,
                   const std::string& body, const std::string& contentType, std::chrono::seconds timeout) {
  const Url url = splitUrl(controller);
  const std::function<CommandError(const std::string&)> unreachable = [&](const std::string& reason) {
    return CommandError("cannot reach the controller at " + controller + ": " + reason);
  };
  asio::io_context io;
  asio::ip::tcp::resolver resolver(io);
  beast::tcp_stream tcp(io);
  beast::error_code ec;
  auto endpoints = resolver.resolve(url.host, url.port, ec);
  if (ec) throw unreachable(reasonOf(ec));
  tcp.expires_after(timeout);  // the whole exchange
  if ((ec = runOp(io, [&](auto handler) { tcp.async_connect(endpoints, handler); }))) throw unreachable(reasonOf(ec));
  if (!url.tls) {
    HttpReply reply = exchange(io, tcp, url.host, method, target, body, contentType, unreachable);
    tcp.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
    return reply;
  }

  ssl::context context = clientContext();
  beast::ssl_stream<beast::tcp_stream> stream(std::move(tcp), context);
  SSL* ssl = stream.native_handle();
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
  beast::error_code notIp;
  asio::ip::make_address(url.host, notIp);
  if (notIp) {
    SSL_set_tlsext_host_name(ssl, url.host.c_str());  // SNI: names only
    X509_VERIFY_PARAM_set1_host(param, url.host.c_str(), 0);
  } else {
    X509_VERIFY_PARAM_set1_ip_asc(param, url.host.c_str());
  }
  VerifyFailure failure;
  stream.set_verify_callback([&failure](bool preverified, ssl::verify_context& vc) {
    X509_STORE_CTX* store = vc.native_handle();
    if (!preverified && failure.error == X509_V_OK) {
      failure.error = X509_STORE_CTX_get_error(store);
      if (X509* leaf = X509_STORE_CTX_get0_cert(store)) failure.names = namesOf(leaf);
    }
    return preverified;
  });
  if ((ec = runOp(io, [&](auto handler) { stream.async_handshake(ssl::stream_base::client, handler); }))) {
    if (failure.error != X509_V_OK)
      throw CommandError("refusing the controller at " + controller + ": " + refusal(failure, url));
    std::string reason = reasonOf(ec);
    if (ec.category() == asio::error::get_ssl_category()) {
      reason = "TLS handshake failed (" + reason + ")";
      if (ERR_GET_REASON(static_cast<unsigned long>(ec.value())) == SSL_R_WRONG_VERSION_NUMBER)
        reason += ": it does not speak TLS there (plain HTTP? then http://)";
    }
    throw unreachable(reason);
  }
  HttpReply reply = exchange(io, stream, url.host, method, target, body, contentType, unreachable);
  // No close_notify exchange: the answer is complete, and nothing is sent after it.
  beast::get_lowest_layer(stream).socket().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
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
