#include "tools/loomctl/Credentials.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "tools/loomctl/HttpClient.h"

namespace loom::loomctl {
namespace {

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

// A scalar as written: bare, or in single or double quotes (no escapes needed: URLs,
// tokens and paths).
std::string scalar(std::string v) {
  v = trim(v);
  if (v.size() >= 2 && (v.front() == '"' || v.front() == '\'') && v.back() == v.front())
    return v.substr(1, v.size() - 2);
  if (const auto hash = v.find(" #"); hash != std::string::npos) v = trim(v.substr(0, hash));
  return v;
}

}  // namespace

std::string loginConfigPath() {
  if (const char* xdg = std::getenv("XDG_CONFIG_HOME"); xdg && *xdg) return std::string(xdg) + "/loom/loomctl.yaml";
  if (const char* home = std::getenv("HOME"); home && *home) return std::string(home) + "/.config/loom/loomctl.yaml";
  return "";
}

std::optional<LoginConfig> readLoginConfig(const std::string& path) {
  if (path.empty()) return std::nullopt;
  std::ifstream in(path);
  if (!in) {
    if (errno == ENOENT) return std::nullopt;
    throw CommandError("cannot read " + path + ": " + std::strerror(errno));
  }
  LoginConfig c;
  std::string line;
  int n = 0;
  while (std::getline(in, line) && n < 1000) {
    ++n;
    const std::string t = trim(line);
    if (t.empty() || t[0] == '#' || t == "---") continue;
    const auto colon = t.find(':');
    if (colon == std::string::npos)
      throw CommandError(path + ":" + std::to_string(n) + ": expected `key: value` (controller, token or ca)");
    const std::string key = trim(t.substr(0, colon));
    const std::string value = scalar(t.substr(colon + 1));
    if (key == "controller")
      c.controller = value;
    else if (key == "token")
      c.token = value;
    else if (key == "ca")
      c.ca = value;
    else
      throw CommandError(path + ":" + std::to_string(n) + ": unknown key '" + key + "' (controller, token or ca)");
  }
  return c;
}

void writeLoginConfig(const std::string& path, const LoginConfig& c) {
  if (path.empty()) throw CommandError("no config file: neither XDG_CONFIG_HOME nor HOME is set");
  const auto dir = std::filesystem::path(path).parent_path();
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw CommandError("cannot create " + dir.string() + ": " + ec.message());
  ::chmod(dir.c_str(), 0700);
  // Written beside, then renamed over: a reader never sees half a file, and the token is
  // never in a file others can read, even for a moment.
  const std::string tmp = path + ".tmp";
  ::unlink(tmp.c_str());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) throw CommandError("cannot write " + tmp + ": " + std::strerror(errno));
  std::string text = "# written by `loomctl login`\ncontroller: " + c.controller + "\n";
  if (!c.token.empty()) text += "token: " + c.token + "\n";
  if (!c.ca.empty()) text += "ca: " + c.ca + "\n";
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
  const int err = errno;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    throw CommandError("cannot write " + path + ": " + std::strerror(ok ? errno : err));
  }
}

void resolveCredentials(Context& context, bool controllerGiven, bool tokenGiven, bool caGiven) {
  if (!(controllerGiven && tokenGiven && caGiven)) {
    if (auto file = readLoginConfig(loginConfigPath())) {
      if (!controllerGiven && !file->controller.empty()) context.controller = file->controller;
      if (!tokenGiven) context.token = file->token;
      if (!caGiven) context.ca = file->ca;
    }
  }
  setBearerToken(context.token);
}

}  // namespace loom::loomctl
