// `loom-agent relay`: a fabric relay (FabricRelay.h) carrying a chassis's agents to loomd
// over one connection.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "node-agent/FabricRelay.h"

namespace loom::agent {

struct RelayCommandLine {
  RelayOptions options;  // keys filled in by runRelay from the files below
  std::string keyPath;
  std::string serverKeyPath;
  std::string allowPath;
  bool insecure = false;
};

// The `relay` subcommand and its options (its --config section is [relay]).
CLI::App* addRelayCommand(CLI::App& app, RelayCommandLine& cl);

// Runs the relay until SIGINT/SIGTERM; the exit code. Prints "loom-agent: relay-port N"
// on stdout once it listens (for scripts that asked for port 0).
int runRelay(RelayCommandLine cl);

}  // namespace loom::agent
