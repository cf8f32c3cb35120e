// CurveZMQ key files shared by loomd and loom-agent. A key file holds one Z85 key (40
// characters) on its first non-comment line; an allow-list file holds one public key
// per line ('#' starts a comment). Secret key files are written mode 0600.
#pragma once

#include <set>
#include <string>

#include "loom/Result.h"

namespace loom::protocol {

struct CurveKeyPair {
  std::string publicKey;  // Z85
  std::string secretKey;  // Z85
};

Result<CurveKeyPair> generateCurveKeyPair();
// Writes DIR/NAME.key (secret, 0600) and DIR/NAME.pub; creates DIR. Refuses to
// overwrite an existing secret key.
Result<CurveKeyPair> writeCurveKeyPair(const std::string& dir, const std::string& name);
// Reads a key file; checks it is a well-formed Z85 key.
Result<std::string> readCurveKey(const std::string& path);
// Derives the public key of a secret key.
Result<std::string> curvePublicKey(const std::string& secretKey);
Result<std::set<std::string>> readAllowList(const std::string& path);

}  // namespace loom::protocol
