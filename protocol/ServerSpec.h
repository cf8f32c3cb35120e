// What a blade needs to run a server: the `spec` of a define step (docs/PROTOCOL.md). The
// controller builds it from the declared server and its identity; the agent maps it to
// what its driver takes (node-agent/DomainSpecMapping.h), adding what only the blade
// knows, such as which host bridge carries a network. Nothing here is a driver's type:
// the wire schema is the fabric's own.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "pool/Model.h"

namespace loom::protocol {

struct ServerSpec {
  struct Nic {
    std::string mac;      // the server's, for life: "52:54:00:10:00:01"
    std::string network;  // a declared Network's name
    std::optional<int> vlan;
    bool operator==(const Nic&) const = default;
  };
  struct Disk {
    std::string path;    // on the blade
    std::string format;  // "qcow2" | "raw"
    bool readOnly = false;
    bool operator==(const Disk&) const = default;
  };

  std::string name;
  std::string uuid;  // canonical lower-case 8-4-4-4-12
  std::uint32_t vcpus = 1;
  std::uint64_t memoryMib = 512;
  std::vector<Nic> nics;
  std::vector<Disk> disks;
  std::string kernel, initrd, cmdline;  // direct kernel boot when kernel is set
  pool::XenGuestType xenType = pool::XenGuestType::Hvm;

  bool operator==(const ServerSpec&) const = default;
};

// The one JSON form of a ServerSpec. toJson writes
// {"name","uuid","vcpus","memory_mib","nics":[{"mac","network","vlan"?}],
//  "disks":[{"path","format","read_only"}],"xen_type":"hvm"|"pv"|"pvh","kernel"?,"initrd"?,"cmdline"?}.
nlohmann::json toJson(const ServerSpec& spec);
// For a spec validate() accepted (protocol/Validation.h): it does not re-check shapes.
// Absent fields take ServerSpec's defaults; a nic's "bridge", which controllers before 0.2
// sent (always empty), is ignored.
ServerSpec serverSpecFromJson(const nlohmann::json& j);

}  // namespace loom::protocol
