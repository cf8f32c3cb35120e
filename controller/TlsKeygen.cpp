#include "controller/TlsKeygen.h"

#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <array>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>

namespace loom::controller {
namespace {

template <class T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const { Free(p); }
};
using PKey = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using Cert = std::unique_ptr<X509, Deleter<X509, X509_free>>;

std::string opensslReason() {
  std::string reason = "unknown OpenSSL error";
  while (const unsigned long e = ERR_get_error())
    if (const char* r = ERR_reason_error_string(e)) reason = r;
  return reason;
}

bool isIpAddress(const std::string& host) {
  ASN1_OCTET_STRING* ip = a2i_IPADDRESS(host.c_str());
  if (!ip) return false;
  ASN1_OCTET_STRING_free(ip);
  return true;
}

// RFC 1123 host names: labels of letters, digits and '-', dot-separated.
bool isDnsName(const std::string& host) {
  if (host.empty() || host.size() > 253) return false;
  std::size_t label = 0;
  for (std::size_t i = 0; i < host.size(); ++i) {
    const char c = host[i];
    if (c == '.') {
      if (label == 0 || host[i - 1] == '-') return false;
      label = 0;
    } else if (std::isalnum(static_cast<unsigned char>(c)) || (c == '-' && label > 0)) {
      if (++label > 63) return false;
    } else {
      return false;
    }
  }
  return label > 0 && host.back() != '-';
}

bool addExtension(X509* cert, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (!ext) return false;
  const bool ok = X509_add_ext(cert, ext, -1) == 1;
  X509_EXTENSION_free(ext);
  return ok;
}

}  // namespace

Result<TlsPairPaths> writeSelfSignedTlsPair(const std::string& dir, const std::string& host, int days) {
  const bool ip = isIpAddress(host);
  if (!ip && !isDnsName(host))
    return makeError(Errc::Invalid, "--name '" + host + "' is neither a DNS host name nor an IP address");
  TlsPairPaths out{dir + "/" + host + ".tls.crt", dir + "/" + host + ".tls.key", {}};
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return makeError(Errc::Io, "cannot create '" + dir + "': " + ec.message());
  if (std::filesystem::exists(out.keyFile))
    return makeError(Errc::Conflict, "'" + out.keyFile + "' exists; not overwriting a secret key");

  PKey key(EVP_EC_gen("P-256"));
  if (!key) return makeError(Errc::Io, "cannot generate an ECDSA P-256 key: " + opensslReason());
  Cert cert(X509_new());
  std::array<unsigned char, 16> serial{};
  if (!cert || RAND_bytes(serial.data(), serial.size()) != 1)
    return makeError(Errc::Io, "cannot make a certificate: " + opensslReason());
  serial[0] &= 0x7f;  // a positive serial number
  BIGNUM* bn = BN_bin2bn(serial.data(), static_cast<int>(serial.size()), nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get()));
  BN_free(bn);
  X509_set_version(cert.get(), 2);                         // v3
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -300);  // a clock a little behind
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), static_cast<long>(days) * 86400);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("Loom lab"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(host.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert.get(), name);
  X509_set_pubkey(cert.get(), key.get());
  std::string names = ip ? "IP:" + host : "DNS:" + host;
  if (host != "127.0.0.1") names += ",IP:127.0.0.1";
  // Its own CA (clients trust it as an anchor) and a TLS server's certificate.
  if (!addExtension(cert.get(), NID_subject_alt_name, names) ||
      !addExtension(cert.get(), NID_basic_constraints, "critical,CA:TRUE,pathlen:0") ||
      !addExtension(cert.get(), NID_key_usage, "critical,digitalSignature,keyCertSign") ||
      !addExtension(cert.get(), NID_ext_key_usage, "serverAuth") ||
      !addExtension(cert.get(), NID_subject_key_identifier, "hash") ||
      X509_sign(cert.get(), key.get(), EVP_sha256()) == 0)
    return makeError(Errc::Io, "cannot make a certificate: " + opensslReason());

  // The key: created 0600 (never readable by others, not even for a moment).
  const int fd = ::open(out.keyFile.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return makeError(Errc::Io, "cannot write '" + out.keyFile + "': " + std::strerror(errno));
  std::FILE* f = ::fdopen(fd, "w");
  if (!f) {
    ::close(fd);
    return makeError(Errc::Io, "cannot write '" + out.keyFile + "': " + std::strerror(errno));
  }
  const bool keyWritten = PEM_write_PrivateKey(f, key.get(), nullptr, nullptr, 0, nullptr, nullptr) == 1;
  if (std::fclose(f) != 0 || !keyWritten) return makeError(Errc::Io, "cannot write '" + out.keyFile + "'");
  std::FILE* c = std::fopen(out.certFile.c_str(), "w");
  if (!c) return makeError(Errc::Io, "cannot write '" + out.certFile + "': " + std::strerror(errno));
  const bool certWritten = PEM_write_X509(c, cert.get()) == 1;
  if (std::fclose(c) != 0 || !certWritten) return makeError(Errc::Io, "cannot write '" + out.certFile + "'");
  out.summary = "CN=" + host + ", " + names + ", valid " + std::to_string(days) + " days";
  return out;
}

}  // namespace loom::controller
