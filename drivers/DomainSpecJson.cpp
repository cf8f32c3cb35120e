#include "drivers/DomainSpecJson.h"

#include <array>

namespace loom::drivers {
namespace {

using nlohmann::json;

// What the test driver's state files held before xen_type was text: the number of the
// drivers' own enum, which had the order Hvm, Pv, Pvh.
constexpr std::array kLegacyXenTypes{XenGuestType::Hvm, XenGuestType::Pv, XenGuestType::Pvh};

Result<XenGuestType> xenTypeFrom(const json& j) {
  auto it = j.find("xen_type");
  if (it == j.end()) return XenGuestType::Hvm;
  if (it->is_string()) {
    if (auto t = pool::parseXenGuestType(it->get_ref<const std::string&>())) return *t;
    return makeError(Errc::Invalid,
                     "xen_type: unknown Xen guest type '" + it->get<std::string>() + "' (expected hvm, pv or pvh)");
  }
  if (it->is_number_integer() && it->get<std::int64_t>() >= 0 &&
      it->get<std::int64_t>() < std::int64_t{kLegacyXenTypes.size()})
    return kLegacyXenTypes[it->get<std::size_t>()];
  return makeError(Errc::Invalid, "xen_type: expected \"hvm\", \"pv\" or \"pvh\"");
}

}  // namespace

json toJson(const DomainSpec& spec) {
  json nics = json::array();
  for (const auto& nic : spec.nics) {
    json n = {{"mac", nic.mac}, {"network", nic.network}, {"bridge", nic.bridge}};
    if (nic.vlan) n["vlan"] = *nic.vlan;
    nics.push_back(std::move(n));
  }
  json disks = json::array();
  for (const auto& disk : spec.disks)
    disks.push_back({{"path", disk.path}, {"format", disk.format}, {"read_only", disk.readOnly}});
  return {{"name", spec.name},
          {"uuid", spec.uuid},
          {"vcpus", spec.vcpus},
          {"memory_mib", spec.memory},
          {"xen_type", pool::toString(spec.xenType)},
          {"kernel", spec.kernel},
          {"initrd", spec.initrd},
          {"cmdline", spec.cmdline},
          {"nics", std::move(nics)},
          {"disks", std::move(disks)}};
}

Result<DomainSpec> domainSpecFromJson(const json& j) {
  if (!j.is_object()) return makeError(Errc::Invalid, "a domain spec must be a JSON object");
  auto type = xenTypeFrom(j);
  if (!type) return type.error();
  try {
    DomainSpec spec;
    spec.name = j.at("name").get<std::string>();
    spec.uuid = j.at("uuid").get<std::string>();
    spec.vcpus = j.at("vcpus").get<std::uint32_t>();
    spec.memory = j.at("memory_mib").get<MiB>();
    spec.xenType = *type;
    spec.kernel = j.value("kernel", "");
    spec.initrd = j.value("initrd", "");
    spec.cmdline = j.value("cmdline", "");
    for (const auto& n : j.value("nics", json::array())) {
      NicSpec nic;
      nic.mac = n.at("mac").get<std::string>();
      nic.network = n.value("network", "");
      nic.bridge = n.value("bridge", "");
      if (n.contains("vlan")) nic.vlan = n.at("vlan").get<int>();
      spec.nics.push_back(std::move(nic));
    }
    for (const auto& d : j.value("disks", json::array())) {
      DiskSpec disk;
      disk.path = d.at("path").get<std::string>();
      disk.format = d.value("format", "raw");
      disk.readOnly = d.value("read_only", false);
      spec.disks.push_back(std::move(disk));
    }
    return spec;
  } catch (const json::exception& e) {
    return makeError(Errc::Invalid, std::string("malformed domain spec: ") + e.what());
  }
}

}  // namespace loom::drivers
