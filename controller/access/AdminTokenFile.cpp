#include "controller/access/AdminTokenFile.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "controller/access/TokenTable.h"

namespace loom::controller::access {
namespace {

Error ioError(const std::string& what, const std::string& path) {
  return makeError(Errc::Io, what + " " + path + ": " + std::strerror(errno));
}

}  // namespace

std::string adminTokenPathBeside(const std::string& statePath) {
  const auto dir = std::filesystem::path(statePath).parent_path();
  return (dir.empty() ? std::filesystem::path("admin.token") : dir / "admin.token").string();
}

Result<std::string> readOrWriteAdminToken(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd >= 0) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      const Error e = ioError("cannot stat", path);
      ::close(fd);
      return e;
    }
    if (!S_ISREG(st.st_mode) || (st.st_mode & 077) != 0) {
      ::close(fd);
      return makeError(Errc::Invalid, "admin token file " + path +
                                          " must be a regular file only its owner can read (chmod 600 " + path + ")");
    }
    char buf[512];
    const ssize_t n = ::read(fd, buf, sizeof buf);
    ::close(fd);
    if (n < 0) return ioError("cannot read", path);
    std::string token(buf, static_cast<std::size_t>(n));
    while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' ')) token.pop_back();
    if (!TokenTable::parse(token))
      return makeError(Errc::Invalid, "admin token file " + path +
                                          " holds no Loom token (loom_ID_SECRET); remove it to have a new one written");
    spdlog::info("first start: the admin token is the one in {}", path);
    return token;
  }
  if (errno != ENOENT) return ioError("cannot open", path);
  const std::string token = TokenTable::newToken();
  const int out = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (out < 0) return ioError("cannot create the admin token file", path);
  const std::string line = token + "\n";
  const bool ok = ::write(out, line.data(), line.size()) == static_cast<ssize_t>(line.size()) && ::fsync(out) == 0;
  const Error e = ok ? Error{} : ioError("cannot write", path);
  ::close(out);
  if (!ok) {
    ::unlink(path.c_str());
    return e;
  }
  spdlog::info("first start: wrote the admin token to {} (readable by its owner only)", path);
  return token;
}

}  // namespace loom::controller::access
