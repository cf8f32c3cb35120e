#include "drivers/xen/DomainStore.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "drivers/xen/DomainConfigTranslator.h"

namespace loom::drivers::xen {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const char* typeName(XenGuestType type) {
  switch (type) {
    case XenGuestType::Pv: return "pv";
    case XenGuestType::Pvh: return "pvh";
    case XenGuestType::Hvm: return "hvm";
  }
  return "hvm";
}

Error ioError(const std::string& what, const std::string& path, int err) {
  return makeError(Errc::Io, "xen: " + what + " '" + path + "': " + std::strerror(err));
}

}  // namespace

std::string specToJson(const DomainSpec& spec) {
  json nics = json::array();
  for (const auto& nic : spec.nics) {
    json n = {{"mac", nic.mac}, {"network", nic.network}, {"bridge", nic.bridge}};
    if (nic.vlan) n["vlan"] = *nic.vlan;
    nics.push_back(std::move(n));
  }
  json disks = json::array();
  for (const auto& disk : spec.disks)
    disks.push_back({{"path", disk.path}, {"format", disk.format}, {"read_only", disk.readOnly}});
  json doc = {{"version", 1},          {"name", spec.name},       {"uuid", spec.uuid},
              {"vcpus", spec.vcpus},   {"memory_mib", spec.memory}, {"xen_type", typeName(spec.xenType)},
              {"kernel", spec.kernel}, {"initrd", spec.initrd},   {"cmdline", spec.cmdline},
              {"nics", nics},          {"disks", disks}};
  return doc.dump(2) + "\n";
}

Result<DomainSpec> specFromJson(const std::string& text, const std::string& origin) {
  json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object())
    return makeError(Errc::Io, "xen: stored definition '" + origin + "' is not a JSON object");
  try {
    DomainSpec spec;
    spec.name = doc.at("name").get<std::string>();
    spec.uuid = doc.at("uuid").get<std::string>();
    spec.vcpus = doc.at("vcpus").get<std::uint32_t>();
    spec.memory = doc.at("memory_mib").get<MiB>();
    const std::string type = doc.value("xen_type", "hvm");
    spec.xenType = type == "pv" ? XenGuestType::Pv : type == "pvh" ? XenGuestType::Pvh : XenGuestType::Hvm;
    spec.kernel = doc.value("kernel", "");
    spec.initrd = doc.value("initrd", "");
    spec.cmdline = doc.value("cmdline", "");
    for (const auto& n : doc.value("nics", json::array())) {
      NicSpec nic;
      nic.mac = n.at("mac").get<std::string>();
      nic.network = n.value("network", "");
      nic.bridge = n.value("bridge", "");
      if (n.contains("vlan")) nic.vlan = n.at("vlan").get<int>();
      spec.nics.push_back(std::move(nic));
    }
    for (const auto& d : doc.value("disks", json::array())) {
      DiskSpec disk;
      disk.path = d.at("path").get<std::string>();
      disk.format = d.value("format", "raw");
      disk.readOnly = d.value("read_only", false);
      spec.disks.push_back(std::move(disk));
    }
    return spec;
  } catch (const json::exception& e) {
    return makeError(Errc::Io, "xen: stored definition '" + origin + "' is malformed: " + e.what());
  }
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
