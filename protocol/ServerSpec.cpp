#include "protocol/ServerSpec.h"

namespace loom::protocol {

using Json = nlohmann::json;

Json toJson(const ServerSpec& s) {
  Json nics = Json::array();
  for (const auto& n : s.nics) {
    Json nic{{"mac", n.mac}, {"network", n.network}};
    if (n.vlan) nic["vlan"] = *n.vlan;
    nics.push_back(std::move(nic));
  }
  Json disks = Json::array();
  for (const auto& d : s.disks) disks.push_back({{"path", d.path}, {"format", d.format}, {"read_only", d.readOnly}});
  // Filled by assignment: an initializer list copies every value (a plan frame of 50
  // defines after a failover spent 40 % more on it).
  Json j = Json::object();
  j["name"] = s.name;
  j["uuid"] = s.uuid;
  j["vcpus"] = s.vcpus;
  j["memory_mib"] = s.memoryMib;
  j["nics"] = std::move(nics);
  j["disks"] = std::move(disks);
  j["xen_type"] = pool::toString(s.xenType);
  if (!s.kernel.empty()) j["kernel"] = s.kernel;
  if (!s.initrd.empty()) j["initrd"] = s.initrd;
  if (!s.cmdline.empty()) j["cmdline"] = s.cmdline;
  return j;
}

ServerSpec serverSpecFromJson(const Json& j) {
  ServerSpec s;
  s.name = j.at("name").get<std::string>();
  s.uuid = j.value("uuid", std::string());
  s.vcpus = j.value("vcpus", 1u);
  s.memoryMib = j.value("memory_mib", std::uint64_t{512});
  if (auto it = j.find("nics"); it != j.end())
    for (const auto& n : *it) {
      ServerSpec::Nic nic;
      nic.mac = n.value("mac", std::string());
      nic.network = n.value("network", std::string());
      if (n.contains("vlan")) nic.vlan = n.at("vlan").get<int>();
      s.nics.push_back(std::move(nic));
    }
  if (auto it = j.find("disks"); it != j.end())
    for (const auto& d : *it)
      s.disks.push_back(
          {d.value("path", std::string()), d.value("format", std::string()), d.value("read_only", false)});
  s.kernel = j.value("kernel", std::string());
  s.initrd = j.value("initrd", std::string());
  s.cmdline = j.value("cmdline", std::string());
  s.xenType = pool::parseXenGuestType(j.value("xen_type", std::string("hvm"))).value_or(pool::XenGuestType::Hvm);
  return s;
}

}  // namespace loom::protocol
