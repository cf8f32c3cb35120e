#include "drivers/xen/DomainStore.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "drivers/DomainSpecJson.h"
#include "drivers/xen/DomainConfigTranslator.h"

namespace loom::drivers::xen {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

Error ioError(const std::string& what, const std::string& path, int err) {
  return makeError(Errc::Io, "xen: " + what + " '" + path + "': " + std::strerror(err));
}

}  // namespace

std::string specToJson(const DomainSpec& spec) {
  json doc = toJson(spec);
  doc["version"] = 1;
  return doc.dump(2) + "\n";
}

Result<DomainSpec> specFromJson(const std::string& text, const std::string& origin) {
  json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object())
    return makeError(Errc::Io, "xen: stored definition '" + origin + "' is not a JSON object");
  auto spec = domainSpecFromJson(doc);
  if (!spec)
    return makeError(Errc::Io, "xen: stored definition '" + origin + "' is malformed: " + spec.error().message);
  return spec;
}

std::string DomainStore::pathFor(const std::string& name) const { return dir_ + "/" + name + ".json"; }

Status DomainStore::save(const DomainSpec& spec) {
  if (!isValidDomainName(spec.name))
    return makeError(Errc::Invalid, "xen: cannot store domain '" + spec.name + "': invalid name");
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) return makeError(Errc::Io, "xen: cannot create state directory '" + dir_ + "': " + ec.message());

  const std::string path = pathFor(spec.name);
  const std::string tmp = path + ".tmp";
  const std::string text = specToJson(spec);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ioError("cannot write", tmp, errno);
  std::size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      return ioError("cannot write", tmp, err);
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) return ioError("cannot sync", tmp, errno);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return ioError("cannot rename to", path, errno);
  return okStatus();
}

Result<DomainSpec> DomainStore::load(const std::string& name) const {
  if (!isValidDomainName(name)) return makeError(Errc::NotFound, "xen: domain '" + name + "' is not defined");
  const std::string path = pathFor(name);
  std::ifstream in(path);
  if (!in) {
    if (errno == ENOENT) return makeError(Errc::NotFound, "xen: domain '" + name + "' is not defined");
    return ioError("cannot read", path, errno);
  }
  std::stringstream text;
  text << in.rdbuf();
  return specFromJson(text.str(), path);
}

Status DomainStore::remove(const std::string& name) {
  if (!isValidDomainName(name)) return okStatus();  // such a name was never stored
  const std::string path = pathFor(name);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return ioError("cannot remove", path, errno);
  return okStatus();
}

Result<std::vector<DomainSpec>> DomainStore::loadAll() const {
  std::vector<DomainSpec> specs;
  std::error_code ec;
  if (!fs::exists(dir_, ec)) return specs;
  for (fs::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec)) {
    const fs::path& p = it->path();
    if (p.extension() != ".json") continue;
    auto spec = load(p.stem().string());
    if (!spec) return spec.error();
    specs.push_back(std::move(spec.value()));
  }
  if (ec) return makeError(Errc::Io, "xen: cannot list state directory '" + dir_ + "': " + ec.message());
  std::sort(specs.begin(), specs.end(), [](const DomainSpec& a, const DomainSpec& b) { return a.name < b.name; });
  return specs;
}

}  // namespace loom::drivers::xen
