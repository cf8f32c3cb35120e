// loom-agent: the node agent. One command line, several programs, each in its own file:
//   (default)      one blade's agent                        AgentCommand.h
//   --simulate     every blade of a fabric file              SimulateCommand.h
//   sim-power-off  a simulated blade's power-off             SimulateCommand.h
//   relay          a chassis's fabric relay                  RelayCommand.h
//   probe          this node and which drivers apply         ProbeCommand.h
// See node-agent/README.md.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>

#include "drivers/DriverRegistry.h"
#include "loom/CommandLine.h"
#include "node-agent/AgentCommand.h"
#include "node-agent/CommandSupport.h"
#include "node-agent/ProbeCommand.h"
#include "node-agent/RelayCommand.h"
#include "node-agent/SimulateCommand.h"

int main(int argc, char** argv) {
  using namespace loom;
  CLI::App app{"loom-agent: the Loom node agent"};
  addConfigFile(app);
  agent::AgentCommandLine agentLine;
  agent::addAgentOptions(app, agentLine);
  agent::SimPowerOffCommandLine powerOffLine;
  auto* powerOff = agent::addSimPowerOffCommand(app, powerOffLine);
  agent::RelayCommandLine relayLine;
  auto* relay = agent::addRelayCommand(app, relayLine);
  agent::ProbeCommandLine probeLine;
  auto* probe = agent::addProbeCommand(app, probeLine);

  if (auto rc = parseCommandLine(app, "loom-agent", argc, argv)) return *rc;
  spdlog::set_level(spdlog::level::from_str(agentLine.logLevel));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ loom-agent: %v");

  drivers::DriverRegistry registry;
  drivers::registerBuiltinDrivers(registry);
  auto base = agent::driverOptions(agentLine);
  if (!base) return agent::fail(base.error().message);

  try {
    if (*powerOff) return agent::runSimPowerOff(powerOffLine);
    if (*relay) return agent::runRelay(relayLine);
    if (*probe) return agent::runProbe(probeLine, registry, *base);
    if (!agentLine.simulate.empty()) return agent::runSimulation(agentLine, registry, *base);
    return agent::runAgent(agentLine, registry, *base);
  } catch (const std::exception& e) {
    // A bug, not an outcome: said plainly and with a non-zero exit, never std::terminate's
    // bare "terminate called after throwing an instance of ...".
    return agent::fail(std::string("unexpected error, stopping: ") + e.what());
  }
}
