#include "node-agent/AgentCommand.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>

#include "loom/CommaList.h"
#include "node-agent/CommandSupport.h"
#include "node-agent/LeaseGuard.h"
#include "node-agent/SimulateCommand.h"
#include "protocol/CurveKeys.h"

namespace loom::agent {

void addAgentOptions(CLI::App& app, AgentCommandLine& cl) {
  app.add_option("--controller", cl.controller,
                 "controller fabric endpoint; or several, comma-separated: the relays of this "
                 "blade's chassis (frames go to whichever is up, so one may fail; they share one key), or every "
                 "loomd replica (frames go to the one that leads)")
      ->capture_default_str();
  app.add_option("--driver", cl.driver, "hypervisor driver: xen | kvm | test")->capture_default_str();
  app.add_option("--blade", cl.blade, "this blade's name");
  app.add_option("--chassis", cl.chassis, "chassis name");
  app.add_option("--slot", cl.slot, "slot number");
  app.add_flag("--insecure", cl.insecure, "turn CurveZMQ off (demos and tests only)");
  app.add_option("--key", cl.keyPath, "this agent's secret key file (from `loomd keygen --name BLADE`)");
  app.add_option("--server-key", cl.serverKeyPath, "the controller's public key file (loomd.pub)");
  app.add_option("--simulate", cl.simulate, "run every blade of this fabric file (test driver each)");
  app.add_option("--only", cl.only, "with --simulate: just these blades (comma-separated)");
  app.add_option("--relay", cl.chassisRelays,
                 "with --simulate: CHASSIS=ENDPOINT[,RELAY.pub]: that chassis's blades connect "
                 "through the relay at ENDPOINT "
                 "(whose public key is RELAY.pub; default --server-key) instead of --controller "
                 "(repeatable; a chassis named twice "
                 "has two relays)");
  app.add_option("--journal", cl.journal, "test driver journal file (shared by all simulated blades)");
  app.add_option("--sim-state", cl.simStateDir,
                 "directory where simulated blades keep their domains across agent restarts");
  app.add_option("--hypervisors", cl.hypervisors, "test driver: what the blade claims it can run (kvm,xen)");
  app.add_option("--uri", cl.uri, "driver URI (kvm: qemu:///system)");
  app.add_option("--driver-param", cl.driverParams, "driver parameter KEY=VALUE (repeatable)");
  app.add_option("--log-level", cl.logLevel, "trace|debug|info|warn|error")->capture_default_str();
  app.add_option("--peer-listen", cl.peerListen,
                 "the peer channel (docs/FENCING.md): where this blade listens for its peers' "
                 "\"have you lost the controller?\", as they dial it: tcp://ADDR:PORT (port 0: a free "
                 "one, each simulated blade its own), auto (the address this host reaches the "
                 "controller from, port 7702; the default for one blade) or off (the default with "
                 "--simulate). Without it a blade keeps its servers through a controller outage only "
                 "while its lease runs");
  app.add_option("--peer-allow", cl.peerAllowPath,
                 "public keys allowed to ask on the peer channel, one per line (the agents' keys: "
                 "loomd's --allow file); required with --peer-listen unless --insecure");
  app.add_option("--state-dir", cl.stateDir,
                 "where the agent keeps the controller's outage policy and the newest leader epoch it has seen "
                 "across its own restarts "
                 "(default /var/lib/loom-agent; with --simulate, --sim-state)");
  app.add_option("--watchdog", cl.watchdog,
                 "watchdog device (e.g. /dev/watchdog from softdog) that resets this host when its "
                 "lease is not "
                 "renewed in time: how a frozen agent's blade is fenced (kvm/xen; the test driver "
                 "models its own)");
}

Result<drivers::DriverOptions> driverOptions(const AgentCommandLine& cl) {
  drivers::DriverOptions options;
  options.uri = cl.uri;
  for (const auto& p : cl.driverParams) {
    const auto eq = p.find('=');
    if (eq == std::string::npos) return makeError(Errc::Invalid, "--driver-param wants KEY=VALUE, got '" + p + "'");
    options.params[p.substr(0, eq)] = p.substr(eq + 1);
  }
  return options;
}

Result<std::string> autoPeerEndpoint(const std::string& controller) {
  const std::string first = controller.substr(0, controller.find(','));
  if (first.rfind("tcp://", 0) != 0)
    return makeError(Errc::Invalid, "controller endpoint '" + first + "' is not tcp://HOST:PORT");
  const std::string hostPort = first.substr(6);
  const auto colon = hostPort.rfind(':');
  std::string host = hostPort.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  addrinfo hints{};
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* found = nullptr;
  if (int rc = ::getaddrinfo(host.c_str(), "7700", &hints, &found); rc != 0)
    return makeError(Errc::Unavailable, "cannot resolve '" + host + "': " + ::gai_strerror(rc));
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> guard(found, ::freeaddrinfo);
  // A UDP "connect" sends nothing: it only asks the kernel which address would be used.
  const int fd = ::socket(found->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return makeError(Errc::Io, std::string("socket: ") + std::strerror(errno));
  sockaddr_storage local{};
  socklen_t len = sizeof local;
  const bool ok = ::connect(fd, found->ai_addr, found->ai_addrlen) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) == 0;
  ::close(fd);
  if (!ok) return makeError(Errc::Unavailable, "no route to the controller's host '" + host + "'");
  char text[INET6_ADDRSTRLEN] = {};
  const void* addr = local.ss_family == AF_INET6
                         ? static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(&local)->sin6_addr)
                         : static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(&local)->sin_addr);
  ::inet_ntop(local.ss_family, addr, text, sizeof text);
  return local.ss_family == AF_INET6 ? "tcp://[" + std::string(text) + "]:7702"
                                     : "tcp://" + std::string(text) + ":7702";
}

Result<FabricOptions> fabricOptions(const AgentCommandLine& cl, const std::string& peerListen) {
  FabricOptions fabric;
  fabric.controller = cl.controller;
  fabric.insecure = cl.insecure;
  fabric.peerListen = peerListen;
  if (!peerListen.empty() && !cl.insecure) {
    if (cl.peerAllowPath.empty())
      return makeError(Errc::Invalid,
                       "--peer-listen needs --peer-allow FILE (the agents' public keys, as loomd's --allow), "
                       "or --peer-listen off, or --insecure");
    auto allow = protocol::readAllowList(cl.peerAllowPath);
    if (!allow) return allow.error();
    fabric.peerAllow = *allow;
  }
  if (cl.insecure) {
    spdlog::warn(
        "*** --insecure: CurveZMQ is OFF; this agent talks to any controller in the clear. Demos "
        "and tests only. ***");
    return fabric;
  }
  if (cl.keyPath.empty() || cl.serverKeyPath.empty())
    return makeError(Errc::Invalid,
                     "CurveZMQ needs --key FILE (this agent's secret key) and --server-key FILE "
                     "(the controller's public key); or --insecure");
  auto key = protocol::readCurveKey(cl.keyPath);
  if (!key) return key.error();
  auto serverKey = protocol::readCurveKey(cl.serverKeyPath);
  if (!serverKey) return serverKey.error();
  fabric.secretKey = *key;
  fabric.serverKey = *serverKey;
  return fabric;
}

int runAgent(const AgentCommandLine& cl, const drivers::DriverRegistry& registry, const drivers::DriverOptions& base) {
  std::string peerListen = cl.peerListen.empty() ? "auto" : cl.peerListen;
  if (peerListen == "off") peerListen.clear();
  if (cl.peerListen.empty() && !cl.insecure) {
    // The default, but nothing (readable) to check askers against: said, not fatal (a host
    // upgraded with its old agent.conf keeps running as it did).
    std::string why;
    if (cl.peerAllowPath.empty())
      why = "no --peer-allow";
    else if (auto allow = protocol::readAllowList(cl.peerAllowPath); !allow)
      why = allow.error().message;
    if (!why.empty()) {
      spdlog::warn(
          "{}: no peer channel; through a controller outage this blade keeps its servers only while its lease "
          "runs (docs/FENCING.md: give --peer-allow with the agents' public keys)",
          why);
      peerListen.clear();
    }
  }
  if (peerListen == "auto") {
    auto found = autoPeerEndpoint(cl.controller);
    if (!found) {
      spdlog::warn(
          "--peer-listen auto: {}; no peer channel: through a controller outage this blade keeps its servers "
          "only while its lease runs (give --peer-listen tcp://ADDR:PORT)",
          found.error().message);
      peerListen.clear();
    } else {
      peerListen = *found;
    }
  }
  auto fabric = fabricOptions(cl, peerListen);
  if (!fabric) return fail(fabric.error().message);
  AgentHost host(*fabric);
  if (cl.blade.empty()) return fail("--blade NAME is required (or --simulate FABRIC.yaml)");
  drivers::DriverOptions o = base;
  o.params.try_emplace("blade", cl.blade);
  if (!cl.journal.empty()) o.params["journal"] = cl.journal;
  // The test driver keeps its domains, personality and watchdog there; the others have no
  // such param and ignore it.
  if (!cl.simStateDir.empty()) o.params.try_emplace("state_file", simulatedBladeStateFile(cl.simStateDir, cl.blade));
  auto driver = registry.create(cl.driver, o);
  if (!driver) return fail(driver.error().message);
  auto probed = (*driver)->probe();
  if (!probed.applies) return fail("driver '" + cl.driver + "' does not apply here: " + probed.reason);
  auto info = (*driver)->nodeInfo();
  if (!info) return fail("driver '" + cl.driver + "': " + info.error().message);
  std::unique_ptr<LeaseGuard> guard = makeDriverWatchdogGuard(**driver);
  if (!cl.watchdog.empty()) {
    auto device = makeWatchdogDeviceGuard(cl.watchdog);
    if (!device) return fail(device.error().message);
    guard = std::move(*device);
  } else if (!guard) {
    spdlog::warn(
        "no --watchdog device: this agent fences its blade's domains itself when its lease runs "
        "out, but a "
        "frozen agent cannot; give loomd a --fence-command for this blade, or run with --watchdog "
        "/dev/watchdog");
  }
  AgentConfig cfg;
  cfg.blade = cl.blade;
  const std::string stateDir =
      cl.stateDir.empty() ? (cl.simStateDir.empty() ? "/var/lib/loom-agent" : cl.simStateDir) : cl.stateDir;
  std::error_code ec;
  std::filesystem::create_directories(stateDir, ec);
  if (ec) {
    spdlog::warn("--state-dir {}: {}; the outage policy and the leader epoch are not kept across agent restarts",
                 stateDir, ec.message());
  } else {
    cfg.policyPath = stateDir + "/" + cl.blade + ".policy.json";
    cfg.epochPath = stateDir + "/" + cl.blade + ".epoch";
  }
  // A real driver's calls take seconds (a KVM start, a guest's shutdown): a worker keeps
  // them off the heartbeats. The test driver answers at once.
  cfg.driverThread = cl.driver != "test";
  std::vector<std::string> hv = splitCommaList(cl.hypervisors);
  if (hv.empty()) hv = hypervisorNames((*driver)->capabilities().personalities);
  cfg.inventory = {cl.chassis,
                   cl.slot,
                   info->sockets,
                   info->cores,
                   info->memory,
                   info->cpuModel,
                   hv,
                   info->personality ? pool::toString(*info->personality) : "",
                   cl.driver,
                   hostName()};
  if (auto s = host.add(std::move(cfg), std::move(*driver), std::move(guard)); !s) return fail(s.error().message);
  spdlog::info("blade {} ({} driver, {} cores, {} MiB) -> {}", cl.blade, cl.driver, info->cores, info->memory,
               cl.controller);
  runUntilSignalled(host);
  spdlog::info("stopped");
  return 0;
}

}  // namespace loom::agent
