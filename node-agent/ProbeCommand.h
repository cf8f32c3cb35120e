// `loom-agent probe`: what this host is, and for each driver whether it applies here and
// why not.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "drivers/DriverRegistry.h"

namespace loom::agent {

struct ProbeCommandLine {
  std::string driver;  // only this one; empty: every registered driver
  std::string output = "table";
};

CLI::App* addProbeCommand(CLI::App& app, ProbeCommandLine& cl);

// Prints the node and the drivers' answers (a table, or JSON with -o json); the exit code
// (1 for an unknown --driver).
int runProbe(const ProbeCommandLine& cl, const drivers::DriverRegistry& registry, const drivers::DriverOptions& base);

}  // namespace loom::agent
