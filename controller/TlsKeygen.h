// `loomd keygen --tls`: a self-signed certificate and its key for loomd's HTTPS API in a
// lab (docs/SECURITY.md). The certificate is its own CA: loomctl --ca names it. Production
// uses a pair from the site's CA instead.
#pragma once

#include <string>

#include "loom/Result.h"

namespace loom::controller {

struct TlsPairPaths {
  std::string certFile;  // DIR/HOST.tls.crt
  std::string keyFile;   // DIR/HOST.tls.key, mode 0600
  std::string summary;   // "CN=HOST, DNS:HOST, IP:127.0.0.1, valid until ..."
};

// Writes DIR/HOST.tls.crt and DIR/HOST.tls.key (creates DIR): an ECDSA P-256 key and a
// certificate for `host` (a DNS name or an IP address) valid `days` days, whose
// subjectAltName holds the host and IP:127.0.0.1. Refuses to overwrite an existing key,
// and a host that is neither a DNS name nor an IP address.
Result<TlsPairPaths> writeSelfSignedTlsPair(const std::string& dir, const std::string& host, int days = 365);

}  // namespace loom::controller
