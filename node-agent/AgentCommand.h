// `loom-agent --blade NAME [--driver xen|kvm|test] ...`: the agent of one blade, the program
// a production host runs. Its command line is loom-agent's top level, which `--simulate`
// shares (SimulateCommand.h): the fabric connection, the driver options, the log level.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "drivers/DriverRegistry.h"
#include "loom/Result.h"
#include "node-agent/AgentHost.h"

namespace loom::agent {

// Every top-level option, defaults as shown by --help.
struct AgentCommandLine {
  std::string controller = "tcp://127.0.0.1:7700";
  std::string driver = "test";
  std::string blade;
  std::string chassis;
  int slot = 0;
  bool insecure = false;
  std::string keyPath;
  std::string serverKeyPath;
  // With --simulate (SimulateCommand.h).
  std::string simulate;
  std::string only;
  std::vector<std::string> chassisRelays;  // CHASSIS=ENDPOINT[,RELAY.pub]
  // The test driver's (journal, state), for simulated blades and `--driver test`.
  std::string journal;
  std::string simStateDir;
  std::string hypervisors;
  std::string uri;
  std::vector<std::string> driverParams;  // KEY=VALUE
  std::string logLevel = "info";
  std::string watchdog;
  // The peer channel and the outage policy (docs/FENCING.md).
  std::string peerListen;  // empty: "auto" for one blade, none with --simulate
  std::string peerAllowPath;
  std::string stateDir;  // empty: /var/lib/loom-agent for one blade, --sim-state with --simulate
};

// Where this host's peers dial it, for --peer-listen auto: the address the kernel uses to
// reach the first controller endpoint's host, on port 7702. Fails (with why) when the
// endpoint is not tcp:// or its host does not resolve.
Result<std::string> autoPeerEndpoint(const std::string& controller);

// Adds them to `app`, in --help's order.
void addAgentOptions(CLI::App& app, AgentCommandLine& cl);

// What every driver of this process is created with: --uri and the --driver-param pairs.
// Invalid for a param without '='.
Result<drivers::DriverOptions> driverOptions(const AgentCommandLine& cl);

// The fabric connection every blade of this process uses: CurveZMQ keys read from
// --key/--server-key, or --insecure (said loudly in the log); the peer channel at
// `peerListen` (resolved: no "auto"; empty: none) with --peer-allow's keys.
Result<FabricOptions> fabricOptions(const AgentCommandLine& cl, const std::string& peerListen = {});

// Runs the blade's agent until SIGINT/SIGTERM; the process's exit code.
int runAgent(const AgentCommandLine& cl, const drivers::DriverRegistry& registry, const drivers::DriverOptions& base);

}  // namespace loom::agent
