// What loom-agent's subcommands (AgentCommand, SimulateCommand, RelayCommand, ProbeCommand)
// share: the one-line error, the host's name, comma lists, and running a loop until
// SIGINT/SIGTERM.
#pragma once

#include <string>
#include <vector>

#include "node-agent/AgentHost.h"
#include "node-agent/FabricRelay.h"
#include "pool/Model.h"

namespace loom::agent {

// Prints "loom-agent: MESSAGE" on stderr; returns the exit code 1.
int fail(const std::string& message);

std::string hostName();

// What an inventory says a blade can run: "kvm" before "xen".
std::vector<std::string> hypervisorNames(pool::HypervisorSet set);

// Runs the loop on this thread until SIGINT or SIGTERM stops it; for a relay, SIGHUP
// re-reads its allow-list (FabricRelay::requestReload).
void runUntilSignalled(AgentHost& host);
void runUntilSignalled(FabricRelay& relay);

}  // namespace loom::agent
