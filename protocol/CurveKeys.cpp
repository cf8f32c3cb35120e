#include "protocol/CurveKeys.h"

#include <sys/stat.h>
#include <zmq.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace loom::protocol {
namespace {

bool isZ85Key(const std::string& k) {
  if (k.size() != 40) return false;
  std::uint8_t raw[32];
  return zmq_z85_decode(raw, k.c_str()) != nullptr;
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

}  // namespace

Result<CurveKeyPair> generateCurveKeyPair() {
  char pub[41], sec[41];
  if (zmq_curve_keypair(pub, sec) != 0)
    return makeError(Errc::Unsupported,
                     std::string("cannot generate a CurveZMQ key pair: ") + zmq_strerror(zmq_errno()));
  return CurveKeyPair{pub, sec};
}

Result<CurveKeyPair> writeCurveKeyPair(const std::string& dir, const std::string& name) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return makeError(Errc::Io, "cannot create '" + dir + "': " + ec.message());
  const std::string secPath = dir + "/" + name + ".key", pubPath = dir + "/" + name + ".pub";
  if (std::filesystem::exists(secPath))
    return makeError(Errc::Conflict, "'" + secPath + "' exists; not overwriting a secret key");
  auto kp = generateCurveKeyPair();
  if (!kp) return kp;
  {
    std::ofstream sec(secPath);
    if (!sec) return makeError(Errc::Io, "cannot write '" + secPath + "'");
    ::chmod(secPath.c_str(), 0600);
    sec << "# CurveZMQ secret key (Z85). Keep private.\n" << kp->secretKey << "\n";
  }
  std::ofstream pub(pubPath);
  if (!pub) return makeError(Errc::Io, "cannot write '" + pubPath + "'");
  pub << "# CurveZMQ public key (Z85) of " << name << "\n" << kp->publicKey << "\n";
  return kp;
}

Result<std::string> readCurveKey(const std::string& path) {
  std::ifstream in(path);
  if (!in) return makeError(Errc::NotFound, "cannot read key file '" + path + "': " + std::strerror(errno));
  std::string line;
  while (std::getline(in, line)) {
    line = trim(line);
    if (line.empty() || line[0] == '#') continue;
    if (!isZ85Key(line)) return makeError(Errc::Invalid, "key file '" + path + "': not a 40-character Z85 key");
    return line;
  }
  return makeError(Errc::Invalid, "key file '" + path + "' holds no key");
}

Result<std::string> curvePublicKey(const std::string& secretKey) {
  char pub[41];
  if (zmq_curve_public(pub, secretKey.c_str()) != 0) return makeError(Errc::Invalid, "not a valid CurveZMQ secret key");
  return std::string(pub);
}

Result<std::set<std::string>> readAllowList(const std::string& path) {
  std::ifstream in(path);
  if (!in) return makeError(Errc::NotFound, "cannot read allow-list '" + path + "': " + std::strerror(errno));
  std::set<std::string> keys;
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    // '#' is one of Z85's 85 characters, so a comment starts a line or follows the key
    // after white space ("KEY  # c1-s3"); it is never cut out of the middle of a key.
    line = trim(line);
    if (line.empty() || line[0] == '#') continue;
    if (const auto space = line.find_first_of(" \t"); space != std::string::npos) {
      const std::string rest = trim(line.substr(space));
      if (!rest.empty() && rest[0] != '#') {
        return makeError(Errc::Invalid,
                         path + ":" + std::to_string(n) + ": one key per line, then an optional '# comment'");
      }
      line = line.substr(0, space);
    }
    if (!isZ85Key(line))
      return makeError(Errc::Invalid, path + ":" + std::to_string(n) + ": not a 40-character Z85 public key");
    keys.insert(line);
  }
  return keys;
}

}  // namespace loom::protocol
