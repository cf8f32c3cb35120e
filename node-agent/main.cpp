// loom-agent: the node agent. One blade (--blade with a real or test driver), or every
// blade of a fabric file in one process (--simulate), or `probe` to show what this host
// is and which drivers apply, or `relay` to carry a chassis's agents to loomd over one
// connection. See node-agent/README.md.
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <iostream>
#include <map>
#include <tuple>
#include <sstream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "config/Loader.h"
#include "drivers/DriverRegistry.h"
#include "drivers/test/TestDriver.h"
#include "loom/CommandLine.h"
#include "node-agent/AgentHost.h"
#include "node-agent/FabricRelay.h"
#include "node-agent/LeaseGuard.h"
#include "protocol/CurveKeys.h"

namespace {

std::atomic<loom::agent::AgentHost*> gHost{nullptr};
std::atomic<loom::agent::FabricRelay*> gRelay{nullptr};
void onSignal(int) {
  if (auto* h = gHost.load()) h->stop();
  if (auto* r = gRelay.load()) r->stop();
}

int fail(const std::string& message) {
  std::cerr << "loom-agent: " << message << "\n";
  return 1;
}

std::string hostName() {
  char buf[256] = {};
  gethostname(buf, sizeof buf - 1);
  return buf;
}

std::vector<std::string> splitComma(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

// The test driver models the hardware watchdog itself; any other driver needs a device.
std::unique_ptr<loom::agent::LeaseGuard> testDriverGuard(loom::drivers::Driver& driver) {
  auto* test = dynamic_cast<loom::drivers::test::TestDriver*>(&driver);
  return test ? loom::agent::makeTestDriverGuard(*test) : nullptr;
}

// `sim-power-off`: what a BMC's power-off does to a simulated blade, for fence command
// scripts in tests: every running domain in its state file ends now (journaled as
// destroy) and its watchdog is disarmed. Kill the blade's agent process first.
int simPowerOff(const std::string& dir, const std::string& blade, const std::string& journal) {
  const std::string state = dir + "/" + blade + ".domains.json";
  if (!std::filesystem::exists(state)) return fail("no simulated blade state at '" + state + "'");
  loom::drivers::DriverOptions o;
  o.params["blade"] = blade;
  o.params["state_file"] = state;
  if (!journal.empty()) o.params["journal"] = journal;
  auto cfg = loom::drivers::test::parseTestDriverConfig(o);
  if (!cfg) return fail(cfg.error().message);
  auto driver = loom::drivers::test::TestDriver::create(*cfg);
  if (!driver) return fail(driver.error().message);
  auto list = (*driver)->list();
  if (!list) return fail(list.error().message);
  std::size_t ended = 0;
  for (const auto& d : *list) {
    if (d.state != loom::drivers::DomainState::Running && d.state != loom::drivers::DomainState::Paused) continue;
    if (auto s = (*driver)->destroy(d.name); !s) return fail(s.error().message);
    ++ended;
  }
  (*driver)->disarmWatchdog();
  std::cout << "blade " << blade << " powered off: " << ended << " domain(s) ended\n";
  return 0;
}

std::vector<std::string> hypervisorNames(loom::pool::HypervisorSet set) {
  std::vector<std::string> out;
  if (set.has(loom::pool::Hypervisor::Kvm)) out.push_back("kvm");
  if (set.has(loom::pool::Hypervisor::Xen)) out.push_back("xen");
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace loom;
  CLI::App app{"loom-agent: the Loom node agent"};
  addConfigFile(app);
  std::string controller = "tcp://127.0.0.1:7700", driverName = "test", blade, chassis, keyPath, serverKeyPath;
  std::string simulate, only, journal, simStateDir, hypervisors, uri, logLevel = "info";
  int slot = 0;
  bool insecure = false;
  std::vector<std::string> driverParams;
  app.add_option("--controller", controller,
                 "controller fabric endpoint; or several, comma-separated: the relays of this blade's chassis (frames go "
                 "to whichever is up, so one may fail; they share one key)")
      ->capture_default_str();
  app.add_option("--driver", driverName, "hypervisor driver: xen | kvm | test")->capture_default_str();
  app.add_option("--blade", blade, "this blade's name");
  app.add_option("--chassis", chassis, "chassis name");
  app.add_option("--slot", slot, "slot number");
  app.add_flag("--insecure", insecure, "turn CurveZMQ off (demos and tests only)");
  app.add_option("--key", keyPath, "this agent's secret key file (from `loomd keygen --name BLADE`)");
  app.add_option("--server-key", serverKeyPath, "the controller's public key file (loomd.pub)");
  app.add_option("--simulate", simulate, "run every blade of this fabric file (test driver each)");
  app.add_option("--only", only, "with --simulate: just these blades (comma-separated)");
  std::vector<std::string> chassisRelays;
  app.add_option("--relay", chassisRelays,
                 "with --simulate: CHASSIS=ENDPOINT[,RELAY.pub]: that chassis's blades connect through the relay at ENDPOINT "
                 "(whose public key is RELAY.pub; default --server-key) instead of --controller (repeatable; a chassis named twice "
                 "has two relays)");
  app.add_option("--journal", journal, "test driver journal file (shared by all simulated blades)");
  app.add_option("--sim-state", simStateDir, "directory where simulated blades keep their domains across agent restarts");
  app.add_option("--hypervisors", hypervisors, "test driver: what the blade claims it can run (kvm,xen)");
  app.add_option("--uri", uri, "driver URI (kvm: qemu:///system)");
  app.add_option("--driver-param", driverParams, "driver parameter KEY=VALUE (repeatable)");
  app.add_option("--log-level", logLevel, "trace|debug|info|warn|error")->capture_default_str();
  std::string watchdog;
  app.add_option("--watchdog", watchdog,
                 "watchdog device (e.g. /dev/watchdog from softdog) that resets this host when its lease is not "
                 "renewed in time: how a frozen agent's blade is fenced (kvm/xen; the test driver models its own)");

  auto* powerOff = app.add_subcommand("sim-power-off", "power a simulated blade off (for fence command scripts in tests)");
  std::string powerOffDir, powerOffBlade, powerOffJournal;
  powerOff->add_option("--sim-state", powerOffDir, "the blade's --sim-state directory")->required();
  powerOff->add_option("--blade", powerOffBlade, "blade name")->required();
  powerOff->add_option("--journal", powerOffJournal, "test driver journal file to record the ends in");

  auto* relay = app.add_subcommand("relay",
                                   "carry the frames of many agents (a chassis, a rack) to the controller over one connection; "
                                   "agents give this relay as their --controller");
  relay->fallthrough();  // --log-level after the subcommand
  agent::RelayOptions relayOptions;
  std::string relayKeyPath, relayServerKeyPath, relayAllowPath;
  bool relayInsecure = false;
  relay->add_option("--name", relayOptions.name, "this relay's name, unique in the fabric (e.g. its chassis); loomd shows it")
      ->required();
  relay->add_option("--listen", relayOptions.listen, "endpoint the agents connect to")->capture_default_str();
  relay->add_option("--controller", relayOptions.controller, "the controller's fabric endpoint")->capture_default_str();
  relay->add_flag("--insecure", relayInsecure, "turn CurveZMQ off on both sides (demos and tests only)");
  relay->add_option("--key", relayKeyPath,
                    "the relay's secret key file (`loomd keygen --name NAME`): agents' --server-key is its .pub, and "
                    "loomd's --allow-relays lists it");
  relay->add_option("--server-key", relayServerKeyPath, "the controller's public key file (loomd.pub)");
  relay->add_option("--allow", relayAllowPath, "allow-list: public keys of the agents this relay admits");
  relay->add_option("--batch-ms", relayOptions.batchMs, "gather agents' frames this long at most before sending them on")
      ->capture_default_str()
      ->check(CLI::Range(0, 1000));

  auto* probe = app.add_subcommand("probe", "show this node's inventory and which drivers apply");
  std::string probeDriver, output = "table";
  probe->add_option("--driver", probeDriver, "only this driver");
  probe->add_option("-o,--output", output, "table | json")->check(CLI::IsMember({"table", "json"}));

  if (auto rc = parseCommandLine(app, "loom-agent", argc, argv)) return *rc;
  spdlog::set_level(spdlog::level::from_str(logLevel));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ loom-agent: %v");

  drivers::DriverRegistry registry;
  drivers::registerBuiltinDrivers(registry);
  drivers::DriverOptions baseOptions;
  baseOptions.uri = uri;
  for (const auto& p : driverParams) {
    const auto eq = p.find('=');
    if (eq == std::string::npos) return fail("--driver-param wants KEY=VALUE, got '" + p + "'");
    baseOptions.params[p.substr(0, eq)] = p.substr(eq + 1);
  }

  if (*powerOff) return simPowerOff(powerOffDir, powerOffBlade, powerOffJournal);

  if (*relay) {
    relayOptions.insecure = relayInsecure;
    if (relayInsecure) {
      spdlog::warn("*** --insecure: CurveZMQ is OFF; any process that can reach {} can pose as an agent. Demos and tests only. ***",
                   relayOptions.listen);
    } else {
      if (relayKeyPath.empty() || relayServerKeyPath.empty() || relayAllowPath.empty())
        return fail("relay: CurveZMQ needs --key FILE (the relay's secret key), --server-key FILE (the controller's public key) "
                    "and --allow FILE (agent public keys); or --insecure");
      auto key = protocol::readCurveKey(relayKeyPath);
      if (!key) return fail(key.error().message);
      auto serverKey = protocol::readCurveKey(relayServerKeyPath);
      if (!serverKey) return fail(serverKey.error().message);
      auto allowed = protocol::readAllowList(relayAllowPath);
      if (!allowed) return fail(allowed.error().message);
      relayOptions.secretKey = *key;
      relayOptions.serverKey = *serverKey;
      relayOptions.allowedKeys = *allowed;
    }
    agent::FabricRelay fabricRelay(relayOptions);
    if (auto s = fabricRelay.start(); !s) return fail(s.error().message);
    // A machine-readable line for scripts and tests that asked for port 0.
    std::cout << "loom-agent: relay-port " << fabricRelay.boundPort() << std::endl;
    gRelay = &fabricRelay;
    std::signal(SIGINT, onSignal);
    std::signal(SIGTERM, onSignal);
    fabricRelay.run();
    gRelay = nullptr;
    spdlog::info("relay {} stopped", relayOptions.name);
    return 0;
  }

  if (*probe) {
    nlohmann::json node{{"hostname", hostName()},
                        {"cpus", sysconf(_SC_NPROCESSORS_ONLN)},
                        {"memory_mib", static_cast<std::uint64_t>(sysconf(_SC_PHYS_PAGES)) * static_cast<std::uint64_t>(sysconf(_SC_PAGE_SIZE)) >> 20}};
    nlohmann::json list = nlohmann::json::array();
    for (const auto& [name, result] : drivers::probeAll(registry, baseOptions)) {
      if (!probeDriver.empty() && name != probeDriver) continue;
      list.push_back({{"driver", name}, {"applies", result.applies}, {"reason", result.reason}});
    }
    if (!probeDriver.empty() && list.empty()) {
      std::string known;
      for (const auto& n : registry.names()) known += (known.empty() ? "" : ", ") + n;
      return fail("unknown driver '" + probeDriver + "' (known: " + known + ")");
    }
    if (output == "json") {
      std::cout << nlohmann::json{{"node", node}, {"drivers", list}}.dump(2) << "\n";
    } else {
      std::cout << "host " << node["hostname"].get<std::string>() << ": " << node["cpus"] << " cpus, " << node["memory_mib"]
                << " MiB\n";
      std::cout << "DRIVER  APPLIES  REASON\n";
      for (const auto& d : list) {
        std::string n = d["driver"];
        n.resize(std::max<std::size_t>(n.size(), 8), ' ');
        std::cout << n << (d["applies"].get<bool>() ? "yes      " : "no       ") << d["reason"].get<std::string>() << "\n";
      }
    }
    return 0;
  }

  agent::FabricOptions fabric;
  fabric.controller = controller;
  fabric.insecure = insecure;
  if (insecure) {
    spdlog::warn("*** --insecure: CurveZMQ is OFF; this agent talks to any controller in the clear. Demos and tests only. ***");
  } else {
    if (keyPath.empty() || serverKeyPath.empty())
      return fail("CurveZMQ needs --key FILE (this agent's secret key) and --server-key FILE (the controller's public key); or --insecure");
    auto key = protocol::readCurveKey(keyPath);
    if (!key) return fail(key.error().message);
    auto serverKey = protocol::readCurveKey(serverKeyPath);
    if (!serverKey) return fail(serverKey.error().message);
    fabric.secretKey = *key;
    fabric.serverKey = *serverKey;
  }
  agent::AgentHost host(fabric);
  // DIR/BLADE.json: the agent's own simulated-blade facts (personality);
  // DIR/BLADE.domains.json: the test driver's domains (param state_file).
  auto statePath = [&](const std::string& name) { return simStateDir.empty() ? std::string() : simStateDir + "/" + name + ".json"; };
  auto domainsPath = [&](const std::string& name) { return simStateDir.empty() ? std::string() : simStateDir + "/" + name + ".domains.json"; };

  if (!simulate.empty()) {
    auto fabricFile = config::loadFabricFile(simulate);
    if (!fabricFile.ok()) {
      for (const auto& d : fabricFile.diagnostics) std::cerr << d.format() << "\n";
      return fail("cannot load fabric file '" + simulate + "'");
    }
    // CHASSIS -> (endpoint, server key) for the chassis that have a relay.
    std::map<std::string, std::pair<std::string, std::string>> relayOf;
    for (const auto& r : chassisRelays) {
      const auto eq = r.find('=');
      if (eq == std::string::npos || eq == 0 || eq + 1 == r.size()) return fail("--relay wants CHASSIS=ENDPOINT[,RELAY.pub], got '" + r + "'");
      std::string endpoint = r.substr(eq + 1), key;
      if (const auto comma = endpoint.find(','); comma != std::string::npos) {
        if (insecure) return fail("--relay '" + r + "': a relay key means nothing with --insecure");
        auto k = protocol::readCurveKey(endpoint.substr(comma + 1));
        if (!k) return fail(k.error().message);
        key = *k;
        endpoint.resize(comma);
      }
      // A chassis named twice has two relays (either may fail); they share one key,
      // because an agent knows one server key.
      auto& [endpoints, relayKey] = relayOf[r.substr(0, eq)];
      if (!endpoints.empty() && key != relayKey)
        return fail("--relay '" + r + "': the relays of chassis '" + r.substr(0, eq) + "' must share one key file");
      endpoints = endpoints.empty() ? endpoint : endpoints + "," + endpoint;
      relayKey = key;
    }
    for (const auto& [c, _] : relayOf) {
      bool found = false;
      for (const auto& b : fabricFile.fabric.blades) found = found || b.chassis == c;
      if (!found) return fail("--relay: no blade of '" + simulate + "' is in chassis '" + c + "'");
    }
    const auto wanted = splitComma(only);
    for (const auto& w : wanted) {
      bool found = false;
      for (const auto& b : fabricFile.fabric.blades) found = found || b.name == w;
      if (!found) return fail("--only: blade '" + w + "' is not in '" + simulate + "'");
    }
    for (const auto& b : fabricFile.fabric.blades) {
      if (!wanted.empty() && std::find(wanted.begin(), wanted.end(), b.name) == wanted.end()) continue;
      drivers::DriverOptions o = baseOptions;
      o.params["blade"] = b.name;
      o.params["cores"] = std::to_string(b.cores);
      o.params["memory_mib"] = std::to_string(b.memory);
      if (!b.model.empty()) o.params["cpu_model"] = b.model;
      if (!journal.empty()) o.params["journal"] = journal;
      if (!simStateDir.empty()) o.params["state_file"] = domainsPath(b.name);
      auto driver = registry.create("test", o);
      if (!driver) return fail("blade '" + b.name + "': " + driver.error().message);
      auto guard = testDriverGuard(**driver);
      agent::AgentConfig cfg;
      cfg.blade = b.name;
      cfg.simStatePath = statePath(b.name);
      if (auto r = relayOf.find(b.chassis); r != relayOf.end()) std::tie(cfg.controller, cfg.serverKey) = r->second;
      cfg.inventory = {b.chassis, b.slot, b.sockets, b.cores, b.memory, b.model.empty() ? "Loom Test CPU" : b.model,
                       hypervisorNames(b.hypervisors.empty() ? pool::HypervisorSet::all() : b.hypervisors),
                       b.personality ? pool::toString(*b.personality) : "", "test", hostName()};
      if (auto s = host.add(std::move(cfg), std::move(*driver), std::move(guard)); !s) return fail(s.error().message);
    }
    spdlog::info("simulating {} blades against {}{}", host.size(), controller,
                 relayOf.empty() ? "" : " and " + std::to_string(relayOf.size()) + " chassis relays");
  } else {
    if (blade.empty()) return fail("--blade NAME is required (or --simulate FABRIC.yaml)");
    drivers::DriverOptions o = baseOptions;
    o.params.try_emplace("blade", blade);
    if (!journal.empty()) o.params["journal"] = journal;
    if (driverName == "test" && !simStateDir.empty()) o.params.try_emplace("state_file", domainsPath(blade));
    auto driver = registry.create(driverName, o);
    if (!driver) return fail(driver.error().message);
    auto probed = (*driver)->probe();
    if (!probed.applies) return fail("driver '" + driverName + "' does not apply here: " + probed.reason);
    auto info = (*driver)->nodeInfo();
    if (!info) return fail("driver '" + driverName + "': " + info.error().message);
    std::unique_ptr<agent::LeaseGuard> guard = testDriverGuard(**driver);
    if (!watchdog.empty()) {
      auto device = agent::makeWatchdogDeviceGuard(watchdog);
      if (!device) return fail(device.error().message);
      guard = std::move(*device);
    } else if (!guard) {
      spdlog::warn("no --watchdog device: this agent fences its blade's domains itself when its lease runs out, but a "
                   "frozen agent cannot; give loomd a --fence-command for this blade, or run with --watchdog /dev/watchdog");
    }
    agent::AgentConfig cfg;
    cfg.blade = blade;
    cfg.simStatePath = driverName == "test" ? statePath(blade) : "";
    cfg.driverThread = driverName != "test";
    std::vector<std::string> hv = hypervisors.empty() ? std::vector<std::string>{} : splitComma(hypervisors);
    if (hv.empty()) hv = driverName == "test" ? std::vector<std::string>{"kvm", "xen"} : std::vector<std::string>{driverName};
    cfg.inventory = {chassis, slot, info->sockets, info->cores, info->memory, info->cpuModel, hv,
                     driverName == "test" ? "" : driverName, driverName, hostName()};
    if (auto s = host.add(std::move(cfg), std::move(*driver), std::move(guard)); !s) return fail(s.error().message);
    spdlog::info("blade {} ({} driver, {} cores, {} MiB) -> {}", blade, driverName, info->cores, info->memory, controller);
  }
  gHost = &host;
  std::signal(SIGINT, onSignal);
  std::signal(SIGTERM, onSignal);
  host.run();
  spdlog::info("stopped");
  return 0;
}
