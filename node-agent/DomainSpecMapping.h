// From the fabric's schema to the driver's: what the controller asks a blade to run
// (protocol::ServerSpec) becomes what the blade's driver takes (drivers::DomainSpec). The
// one place where blade-local facts join the server's: the network -> host bridge map of
// the agent's configuration (DESIGN.md §3) belongs here, and until it exists every NIC
// gets no bridge (the driver's isolated NIC).
#pragma once

#include "drivers/Driver.h"
#include "protocol/ServerSpec.h"

namespace loom::agent {

// Pure; copies every field, the server's identity (name, UUID, MACs) unchanged.
drivers::DomainSpec toDomainSpec(const protocol::ServerSpec& spec);

}  // namespace loom::agent
