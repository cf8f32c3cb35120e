// The simulator's programs: `loom-agent --simulate FABRIC.yaml` runs every blade of a fabric
// file (or --only some) in one process, each with its own connection and its own test
// driver; `loom-agent sim-power-off` does to a simulated blade what a BMC's power-off does
// to a real one, for fence command scripts in tests. The only part of loom-agent that knows
// the test driver by name.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "drivers/DriverRegistry.h"
#include "node-agent/AgentCommand.h"

namespace loom::agent {

// DIR/BLADE.domains.json: where a simulated blade's test driver keeps its domains, its
// personality and its watchdog (--sim-state DIR).
std::string simulatedBladeStateFile(const std::string& dir, const std::string& blade);

// Runs the fabric file's blades (cl.simulate) until SIGINT/SIGTERM; the exit code.
int runSimulation(const AgentCommandLine& cl, const drivers::DriverRegistry& registry,
                  const drivers::DriverOptions& base);

struct SimPowerOffCommandLine {
  std::string simStateDir;
  std::string blade;
  std::string journal;
};

CLI::App* addSimPowerOffCommand(CLI::App& app, SimPowerOffCommandLine& cl);

// Every running domain in the blade's state file ends now (journaled as destroy) and its
// watchdog is disarmed. Kill the blade's agent process first.
int runSimPowerOff(const SimPowerOffCommandLine& cl);

}  // namespace loom::agent
