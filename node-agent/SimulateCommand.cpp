#include "node-agent/SimulateCommand.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <map>
#include <tuple>

#include "config/Loader.h"
#include "drivers/test/TestDriver.h"
#include "loom/CommaList.h"
#include "node-agent/CommandSupport.h"
#include "node-agent/LeaseGuard.h"
#include "protocol/CurveKeys.h"

namespace loom::agent {
namespace {

// CHASSIS -> (endpoints, comma-separated; the relays' server key, Z85 or empty: --server-key).
using ChassisRelays = std::map<std::string, std::pair<std::string, std::string>>;

Result<ChassisRelays> chassisRelays(const AgentCommandLine& cl) {
  ChassisRelays relayOf;
  for (const auto& r : cl.chassisRelays) {
    const auto eq = r.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == r.size())
      return makeError(Errc::Invalid, "--relay wants CHASSIS=ENDPOINT[,RELAY.pub], got '" + r + "'");
    std::string endpoint = r.substr(eq + 1), key;
    if (const auto comma = endpoint.find(','); comma != std::string::npos) {
      if (cl.insecure)
        return makeError(Errc::Invalid, "--relay '" + r + "': a relay key means nothing with --insecure");
      auto k = protocol::readCurveKey(endpoint.substr(comma + 1));
      if (!k) return k.error();
      key = *k;
      endpoint.resize(comma);
    }
    // A chassis named twice has two relays (either may fail); they share one key,
    // because an agent knows one server key.
    auto& [endpoints, relayKey] = relayOf[r.substr(0, eq)];
    if (!endpoints.empty() && key != relayKey)
      return makeError(Errc::Invalid,
                       "--relay '" + r + "': the relays of chassis '" + r.substr(0, eq) + "' must share one key file");
    endpoints = endpoints.empty() ? endpoint : endpoints + "," + endpoint;
    relayKey = key;
  }
  return relayOf;
}

}  // namespace

std::string simulatedBladeStateFile(const std::string& dir, const std::string& blade) {
  return dir + "/" + blade + ".domains.json";
}

int runSimulation(const AgentCommandLine& cl, const drivers::DriverRegistry& registry,
                  const drivers::DriverOptions& base) {
  // Simulated blades listen for peers only when told where (each on its own port with
  // tcp://ADDR:0): at 10,000 blades in one process, a listener each is not free.
  std::string peerListen = cl.peerListen == "off" ? std::string() : cl.peerListen;
  if (peerListen == "auto") {
    auto found = autoPeerEndpoint(cl.controller);
    if (!found) return fail("--peer-listen auto: " + found.error().message);
    peerListen = found->substr(0, found->rfind(':')) + ":0";
  }
  auto fabric = fabricOptions(cl, peerListen);
  if (!fabric) return fail(fabric.error().message);
  // A few blades (the partition tests) keep ZeroMQ's heartbeats; a fabric's worth in one
  // process cannot afford them (FabricOptions::connectionHeartbeats).
  constexpr std::size_t kHeartbeatsUpTo = 64;
  const std::string stateDir = cl.stateDir.empty() ? cl.simStateDir : cl.stateDir;
  if (!cl.simStateDir.empty()) {
    // Each simulated blade keeps its domains there: a directory that is not there (or not
    // one) would lose them silently at every write.
    std::error_code ec;
    std::filesystem::create_directories(cl.simStateDir, ec);
    if (ec || !std::filesystem::is_directory(cl.simStateDir))
      return fail("--sim-state '" + cl.simStateDir + "': cannot create the directory" +
                  (ec ? ": " + ec.message() : std::string(": something else is there")));
  }
  auto fabricFile = config::loadFabricFile(cl.simulate);
  if (!fabricFile.ok()) {
    for (const auto& d : fabricFile.diagnostics) std::cerr << d.format() << "\n";
    return fail("cannot load fabric file '" + cl.simulate + "'");
  }
  auto relayOf = chassisRelays(cl);
  if (!relayOf) return fail(relayOf.error().message);
  for (const auto& [c, _] : *relayOf) {
    bool found = false;
    for (const auto& b : fabricFile.fabric.blades) found = found || b.chassis == c;
    if (!found) return fail("--relay: no blade of '" + cl.simulate + "' is in chassis '" + c + "'");
  }
  const auto wanted = splitCommaList(cl.only);
  for (const auto& w : wanted) {
    bool found = false;
    for (const auto& b : fabricFile.fabric.blades) found = found || b.name == w;
    if (!found) return fail("--only: blade '" + w + "' is not in '" + cl.simulate + "'");
  }
  fabric->connectionHeartbeats = (wanted.empty() ? fabricFile.fabric.blades.size() : wanted.size()) <= kHeartbeatsUpTo;
  AgentHost host(*fabric);
  for (const auto& b : fabricFile.fabric.blades) {
    if (!wanted.empty() && std::find(wanted.begin(), wanted.end(), b.name) == wanted.end()) continue;
    drivers::DriverOptions o = base;
    o.params["blade"] = b.name;
    o.params["cores"] = std::to_string(b.cores);
    o.params["memory_mib"] = std::to_string(b.memory);
    if (!b.model.empty()) o.params["cpu_model"] = b.model;
    if (!cl.journal.empty()) o.params["journal"] = cl.journal;
    if (!cl.simStateDir.empty()) o.params["state_file"] = simulatedBladeStateFile(cl.simStateDir, b.name);
    auto driver = registry.create("test", o);
    if (!driver) return fail("blade '" + b.name + "': " + driver.error().message);
    // The personality it was given since (kept in its state file), else the fabric file's.
    auto info = (*driver)->nodeInfo();
    if (!info) return fail("blade '" + b.name + "': " + info.error().message);
    std::string personality = info->personality ? pool::toString(*info->personality)
                              : b.personality   ? pool::toString(*b.personality)
                                                : "";
    auto guard = makeDriverWatchdogGuard(**driver);
    AgentConfig cfg;
    cfg.blade = b.name;
    if (!stateDir.empty()) {
      cfg.policyPath = stateDir + "/" + b.name + ".policy.json";
      cfg.epochPath = stateDir + "/" + b.name + ".epoch";
    }
    if (auto r = relayOf->find(b.chassis); r != relayOf->end()) std::tie(cfg.controller, cfg.serverKey) = r->second;
    cfg.inventory = {b.chassis,
                     b.slot,
                     b.sockets,
                     b.cores,
                     b.memory,
                     b.model.empty() ? "Loom Test CPU" : b.model,
                     hypervisorNames(b.hypervisors.empty() ? pool::HypervisorSet::all() : b.hypervisors),
                     std::move(personality),
                     "test",
                     hostName()};
    if (auto s = host.add(std::move(cfg), std::move(*driver), std::move(guard)); !s) return fail(s.error().message);
  }
  spdlog::info("simulating {} blades against {}{}", host.size(), cl.controller,
               relayOf->empty() ? "" : " and " + std::to_string(relayOf->size()) + " chassis relays");
  runUntilSignalled(host);
  spdlog::info("stopped");
  return 0;
}

CLI::App* addSimPowerOffCommand(CLI::App& app, SimPowerOffCommandLine& cl) {
  auto* cmd = app.add_subcommand("sim-power-off", "power a simulated blade off (for fence command scripts in tests)");
  cmd->add_option("--sim-state", cl.simStateDir, "the blade's --sim-state directory")->required();
  cmd->add_option("--blade", cl.blade, "blade name")->required();
  cmd->add_option("--journal", cl.journal, "test driver journal file to record the ends in");
  return cmd;
}

int runSimPowerOff(const SimPowerOffCommandLine& cl) {
  const std::string state = simulatedBladeStateFile(cl.simStateDir, cl.blade);
  if (!std::filesystem::exists(state)) return fail("no simulated blade state at '" + state + "'");
  drivers::DriverOptions o;
  o.params["blade"] = cl.blade;
  o.params["state_file"] = state;
  if (!cl.journal.empty()) o.params["journal"] = cl.journal;
  auto cfg = drivers::test::parseTestDriverConfig(o);
  if (!cfg) return fail(cfg.error().message);
  auto driver = drivers::test::TestDriver::create(*cfg);
  if (!driver) return fail(driver.error().message);
  auto list = (*driver)->list();
  if (!list) return fail(list.error().message);
  std::size_t ended = 0;
  for (const auto& d : *list) {
    if (!pool::isLive(d.state)) continue;
    if (auto s = (*driver)->destroy(d.name); !s) return fail(s.error().message);
    ++ended;
  }
  (*driver)->disarmWatchdog();
  std::cout << "blade " << cl.blade << " powered off: " << ended << " domain(s) ended\n";
  return 0;
}

}  // namespace loom::agent
