#include "drivers/SpecValidation.h"

#include <cctype>
#include <set>

namespace loom::drivers {
namespace {

bool isHex(char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; }

Error invalid(const DomainSpec& spec, const std::string& what) {
  return makeError(Errc::Invalid, "domain '" + spec.name + "': " + what);
}

}  // namespace

bool isCanonicalUuid(const std::string& uuid) {
  if (uuid.size() != 36) return false;
  for (size_t i = 0; i < uuid.size(); ++i) {
    const char c = uuid[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return false;
    } else if (!isHex(c) || std::isupper(static_cast<unsigned char>(c))) {
      return false;
    }
  }
  return true;
}

bool isUnicastMac(const std::string& mac) {
  if (mac.size() != 17) return false;
  for (size_t i = 0; i < mac.size(); ++i) {
    if (i % 3 == 2 ? mac[i] != ':' : !isHex(mac[i])) return false;
  }
  // The low bit of the first octet marks multicast; hypervisors refuse it for a NIC.
  const int first = std::stoi(mac.substr(0, 2), nullptr, 16);
  return (first & 1) == 0;
}

Status validateDomainSpec(const DomainSpec& spec) {
  if (spec.name.empty()) return makeError(Errc::Invalid, "domain name is empty");
  for (char c : spec.name) {
    // '/' would escape the hypervisor's per-domain directories; control characters break logs.
    if (c == '/' || static_cast<unsigned char>(c) < 0x20) {
      return invalid(spec, "name contains '/' or a control character");
    }
  }
  if (!isCanonicalUuid(spec.uuid)) {
    return invalid(spec, "uuid '" + spec.uuid + "' is not lower-case 8-4-4-4-12 hex");
  }
  if (spec.vcpus == 0) return invalid(spec, "vcpus must be at least 1");
  if (spec.memory == 0) return invalid(spec, "memory must be at least 1 MiB");
  std::set<std::string> macs;
  for (size_t i = 0; i < spec.nics.size(); ++i) {
    const auto& nic = spec.nics[i];
    const std::string which = "nic " + std::to_string(i);
    if (!isUnicastMac(nic.mac)) {
      return invalid(spec, which + " MAC '" + nic.mac + "' is not a unicast address like 52:54:00:10:00:01");
    }
    if (!macs.insert(nic.mac).second) return invalid(spec, which + " repeats MAC '" + nic.mac + "'");
    if (nic.vlan && (*nic.vlan < 1 || *nic.vlan > 4094)) {
      return invalid(spec, which + " VLAN " + std::to_string(*nic.vlan) + " is outside 1..4094");
    }
  }
  for (size_t i = 0; i < spec.disks.size(); ++i) {
    const auto& disk = spec.disks[i];
    const std::string which = "disk " + std::to_string(i);
    if (disk.path.empty()) return invalid(spec, which + " has no path");
    if (disk.format != "qcow2" && disk.format != "raw") {
      return invalid(spec, which + " format '" + disk.format + "' is not qcow2 or raw");
    }
  }
  if (spec.kernel.empty() && (!spec.initrd.empty() || !spec.cmdline.empty())) {
    return invalid(spec, "initrd or cmdline given without a kernel");
  }
  return okStatus();
}

}  // namespace loom::drivers
