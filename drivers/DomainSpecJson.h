// The one JSON form of a DomainSpec on a blade's disk: the Xen driver's definition store
// (drivers/xen/DomainStore) and the test driver's state file both keep specs this way.
// It is not the fabric's form: the controller sends a protocol::ServerSpec, which the agent
// maps to a DomainSpec (node-agent/DomainSpecMapping.h).
//
//   {"name", "uuid", "vcpus", "memory_mib", "xen_type": "hvm"|"pv"|"pvh",
//    "kernel", "initrd", "cmdline",
//    "nics": [{"mac", "network", "bridge", "vlan"?}],
//    "disks": [{"path", "format", "read_only"}]}
//
// Reading accepts every file written before this codec existed: the test driver's state
// files stored `xen_type` as its number (0 hvm, 1 pv, 2 pvh).
#pragma once

#include <nlohmann/json.hpp>

#include "drivers/Driver.h"
#include "loom/Result.h"

namespace loom::drivers {

// Every field, always (empty strings included), so a file says everything it means.
nlohmann::json toJson(const DomainSpec& spec);

// Required: name, uuid, vcpus, memory_mib, and each nic's mac and disk's path; the rest
// default as DomainSpec does (a disk's format to "raw"). An Invalid error naming the field
// otherwise; never throws.
Result<DomainSpec> domainSpecFromJson(const nlohmann::json& j);

}  // namespace loom::drivers
