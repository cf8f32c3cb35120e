#include "node-agent/DomainSpecMapping.h"

namespace loom::agent {

drivers::DomainSpec toDomainSpec(const protocol::ServerSpec& s) {
  drivers::DomainSpec d;
  d.name = s.name;
  d.uuid = s.uuid;
  d.vcpus = s.vcpus;
  d.memory = s.memoryMib;
  d.nics.reserve(s.nics.size());
  for (const auto& n : s.nics) d.nics.push_back({n.mac, n.network, /*bridge=*/"", n.vlan});
  d.disks.reserve(s.disks.size());
  for (const auto& disk : s.disks) d.disks.push_back({disk.path, disk.format, disk.readOnly});
  d.kernel = s.kernel;
  d.initrd = s.initrd;
  d.cmdline = s.cmdline;
  d.xenType = s.xenType;
  return d;
}

}  // namespace loom::agent
