// loomd: the Loom controller. Wires the state store, the controller core, the agent
// fabric (core thread) and the HTTP API (its own thread); see controller/README.md.
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <thread>

#include "controller/Controller.h"
#include "controller/ControllerLoop.h"
#include "controller/FenceRunner.h"
#include "controller/HttpServer.h"
#include "controller/ServiceNotifier.h"
#include "loom/CommandLine.h"
#include "protocol/CurveKeys.h"

namespace {

std::atomic<loom::controller::ControllerLoop*> gLoop{nullptr};
std::atomic<loom::controller::HttpServer*> gHttp{nullptr};

void onSignal(int) {
  if (auto* l = gLoop.load()) l->stop();
  if (auto* h = gHttp.load()) h->stop();
}

std::int64_t wallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int fail(const std::string& message) {
  std::cerr << "loomd: " << message << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace loom;
  const auto started = std::chrono::steady_clock::now();
  auto secondsSince = [](std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
  };
  CLI::App app{"loomd: the Loom blade-fabric controller"};
  addConfigFile(app);
  std::string statePath = "loomd.db", agents = "tcp://127.0.0.1:7700", api = "127.0.0.1:7780";
  std::string keyPath, allowPath, relaysPath, logLevel = "info";
  bool insecure = false;
  controller::ControllerOptions opts;
  app.add_option("--state", statePath, "state store (SQLite file)")->capture_default_str();
  app.add_option("--agents", agents, "ZeroMQ endpoint agents connect to")->capture_default_str();
  app.add_option("--api", api, "HTTP API address HOST:PORT (port 0: any free port, printed)")->capture_default_str();
  app.add_flag("--insecure", insecure, "turn CurveZMQ authentication off (demos and tests only)");
  app.add_option("--key", keyPath, "controller secret key file (from `loomd keygen`)");
  app.add_option("--allow", allowPath, "allow-list: agent public keys, one per line");
  app.add_option("--allow-relays", relaysPath,
                 "allow-list of fabric relay public keys (`loom-agent relay`), one per line: these may speak for the "
                 "blades behind them");
  app.add_option("--heartbeat-ms", opts.heartbeatMs, "heartbeat interval told to agents")->capture_default_str();
  int recoveryNice = 10;
  app.add_option("--recovery-nice", recoveryNice,
                 "how many nice steps below loomd's own priority the state is loaded at start, so that "
                 "the fabric (thousands of agents reconnecting) comes first on busy cores; 0: the same")
      ->check(CLI::Range(0, 19))
      ->capture_default_str();
  app.add_option("--lease-ms", opts.leaseMs,
                 "lease told to agents; after a restart they must reconnect within it (10,000 blades: 8000 or more)")
      ->capture_default_str();
  app.add_option("--suspect-ms", opts.suspectMs, "silence before a blade is suspect")->capture_default_str();
  app.add_option("--dead-ms", opts.deadMs, "silence before a blade is failed")->capture_default_str();
  app.add_option("--fence-margin-ms", opts.fenceMarginMs,
                 "wait this long past a failed blade's lease before fencing it (clock drift, transit)")
      ->capture_default_str();
  app.add_option(
      "--fence-command", opts.fenceCommand,
      "power-off command for a failed blade, run by /bin/sh -c; {blade} {chassis} {slot} {hostname} and "
      "its declared BMC's {bmc_address} {bmc_port} {bmc_user} {bmc_password_file} (kind: Blade) are replaced "
      "(shell-quoted); exit 0 = power-off confirmed, its servers fail over at once. A blade with a BMC is "
      "power-fenced: it never fences itself, and its command is retried (2, 4 ... 60 s) until it confirms "
      "(docs/FENCING.md). E.g. fence_ipmilan --ip={bmc_address} --ipport={bmc_port} --username={bmc_user} "
      "--password-script=\"cat {bmc_password_file}\" --lanplus --action=off --power-timeout=5");
  app.add_option("--fence-timeout-ms", opts.fenceTimeoutMs,
                 "a fence command still running after this is killed and counts as failed (keep the command's own "
                 "timeouts below it: fence_ipmilan --power-timeout)")
      ->capture_default_str();
  app.add_option("--storm-share", opts.stormShare,
                 "fence nothing while more than this share of the blades are silent at once (0..1)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--storm-min-blades", opts.stormMinBlades, "the storm guard needs at least this many silent blades")
      ->capture_default_str();
  app.add_option("--op-timeout-ms", opts.opTimeoutMs, "time an agent has to answer a step")->capture_default_str();
  app.add_option("--commit-ms", opts.commitMs,
                 "the outage rule (docs/FENCING.md): how long a blade promises, after each answer of loomd, not to "
                 "attest to its peers that it lost loomd (default: 0.4 x --lease-ms)");
  app.add_option("--attest-ms", opts.attestMs,
                 "how long one blade's attestation shields a peer that lost loomd (default: 2 x --lease-ms)");
  app.add_option("--quorum-size", opts.quorumSize,
                 "the most blades in the quorum set (spread over chassis); loomd fences a silent blade by its lease "
                 "only while it hears half of them")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{4096}));
  app.add_option("--log-level", logLevel, "trace|debug|info|warn|error")->capture_default_str();

  auto* keygen = app.add_subcommand("keygen", "write a CurveZMQ key pair (NAME.key secret, NAME.pub public)");
  std::string keyDir, keyName = "loomd";
  keygen->add_option("--out", keyDir, "directory")->required();
  keygen->add_option("--name", keyName, "file base name (e.g. an agent's blade name)")->capture_default_str();

  if (auto rc = parseCommandLine(app, "loomd", argc, argv)) return *rc;
  spdlog::set_level(spdlog::level::from_str(logLevel));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ loomd: %v");

  if (*keygen) {
    auto kp = protocol::writeCurveKeyPair(keyDir, keyName);
    if (!kp) return fail(kp.error().message);
    std::cout << "wrote " << keyDir << "/" << keyName << ".key (secret) and " << keyDir << "/" << keyName
              << ".pub: " << kp->publicKey << "\n";
    return 0;
  }
  if (opts.heartbeatMs <= 0 || opts.suspectMs <= opts.heartbeatMs || opts.deadMs < opts.suspectMs)
    return fail("need 0 < --heartbeat-ms < --suspect-ms <= --dead-ms (got " + std::to_string(opts.heartbeatMs) + ", " +
                std::to_string(opts.suspectMs) + ", " + std::to_string(opts.deadMs) + ")");
  // An agent must get a few renewals into each lease, or one lost frame fences it.
  if (opts.leaseMs < 2 * opts.heartbeatMs)
    return fail("--lease-ms " + std::to_string(opts.leaseMs) + " must be at least twice --heartbeat-ms " +
                std::to_string(opts.heartbeatMs));
  if (opts.fenceMarginMs < 0 || opts.fenceTimeoutMs <= 0)
    return fail("--fence-margin-ms must be >= 0 and --fence-timeout-ms > 0");
  // A blade must hear loomd again within its commit window, and it must be able to attest
  // before its lease runs out (docs/FENCING.md, "Terms").
  {
    const std::int64_t commit = opts.commitMs ? opts.commitMs : opts.leaseMs * 2 / 5;
    const std::int64_t attest = opts.attestMs ? opts.attestMs : opts.leaseMs * 2;
    if (commit <= opts.heartbeatMs || commit >= opts.leaseMs)
      return fail("--commit-ms " + std::to_string(commit) +
                  " must be longer than --heartbeat-ms and shorter than --lease-ms");
    if (attest < opts.leaseMs) return fail("--attest-ms " + std::to_string(attest) + " must be at least --lease-ms");
  }

  controller::FabricOptions fabric;
  fabric.endpoint = agents;
  fabric.insecure = insecure;
  fabric.leaseMs = opts.leaseMs;
  fabric.heartbeatMs = opts.heartbeatMs;
  opts.fabricRenewsLeases = true;  // the fabric thread answers heartbeats (ControllerLoop)
  if (!insecure) {
    if (keyPath.empty() || allowPath.empty())
      return fail(
          "CurveZMQ needs --key FILE (from `loomd keygen`) and --allow FILE (agent public keys); or --insecure for a "
          "demo");
    auto key = protocol::readCurveKey(keyPath);
    if (!key) return fail(key.error().message);
    auto allowed = protocol::readAllowList(allowPath);
    if (!allowed) return fail(allowed.error().message);
    fabric.secretKey = *key;
    fabric.allowedKeys = *allowed;
    if (!relaysPath.empty()) {
      auto relays = protocol::readAllowList(relaysPath);
      if (!relays) return fail(relays.error().message);
      fabric.relayKeys = *relays;
    }
    spdlog::info("CurveZMQ on: {} agent key(s) and {} relay key(s) allowed", fabric.allowedKeys.size(),
                 fabric.relayKeys.size());
  }
  const auto colon = api.rfind(':');
  if (colon == std::string::npos) return fail("--api wants HOST:PORT, got '" + api + "'");
  int apiPort = 0;
  try {
    apiPort = std::stoi(api.substr(colon + 1));
  } catch (...) {
    apiPort = -1;
  }
  if (apiPort < 0 || apiPort > 65535) return fail("--api: bad port in '" + api + "'");

  const auto storeOpening = std::chrono::steady_clock::now();
  auto store = controller::openSqliteStateStore(statePath);
  if (!store) return fail(store.error().message);
  const double storeOpen = secondsSince(storeOpening);

  controller::ControllerLoop* loopPtr = nullptr;
  controller::Controller core(
      **store, opts,
      [&loopPtr](const std::string& blade, std::string frame) { loopPtr->send(blade, std::move(frame)); }, wallMs);
  controller::ControllerLoop loop(core, fabric);
  loopPtr = &loop;
  if (auto s = loop.bind(); !s) return fail(s.error().message);
  // A machine-readable line, as for the API below: the port ZeroMQ bound for tcp://HOST:0.
  if (const auto ep = loop.boundEndpoint(); ep.rfind("tcp://", 0) == 0)
    std::cout << "loomd: agents-port " << ep.substr(ep.rfind(':') + 1) << std::endl;
  // Leases are answered while the state loads: with 100,000 servers that takes about 2 s,
  // and agents must not run out their leases (and fence themselves) meanwhile.
  loop.startFabric();
  // ... and they come first: recovery runs on a thread of lower CPU priority, so the
  // fabric's threads (accepting 10,000 reconnecting agents, answering their heartbeats)
  // are not starved by it. At 10,000 blades on 2 cores, a quarter of the agents ran out
  // their leases while recovery had equal priority (docs/PERFORMANCE.md).
  loom::Status recovered = loom::okStatus();
  const auto recovering = std::chrono::steady_clock::now();
  std::thread([&core, &recovered, recoveryNice] {
    const int nice = std::min(19, ::getpriority(PRIO_PROCESS, 0) + recoveryNice);
    if (recoveryNice > 0 && ::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), nice) != 0)
      spdlog::debug("recovery keeps its priority");
    recovered = core.recover(controller::ControllerLoop::monotonicMs());
  }).join();
  if (!recovered) return fail("recovery: " + recovered.error().message);
  const double recovery = secondsSince(recovering);
  // Declared after the loop: destroyed (its commands killed, threads joined) before it.
  controller::FenceRunner fencer(opts.fenceTimeoutMs);
  if (!opts.fenceCommand.empty()) {
    core.setFenceRunner([&loop, &core, &fencer](const std::string& blade, const std::string& command) {
      fencer.run(command, [&loop, &core, blade](bool ok, std::string detail) {
        loop.post([&core, blade, ok, detail = std::move(detail)] {
          core.onFenceResult(blade, ok, detail, controller::ControllerLoop::monotonicMs());
        });
      });
    });
    spdlog::info("fence command: {}", opts.fenceCommand);
  }

  controller::HttpServer http(api.substr(0, colon), static_cast<unsigned short>(apiPort),
                              [&loop, &core](controller::ApiRequest req, controller::HttpServer::Done done) {
                                loop.post([&core, req = std::move(req), done = std::move(done)]() mutable {
                                  core.handleApi(req, controller::ControllerLoop::monotonicMs(), done);
                                });
                              });
  auto port = http.listen();
  if (!port) return fail(port.error().message);
  spdlog::info(
      "serving: agents on {}, API on http://{}:{} (state {}, ready {:.3f} s after start: store opened in {:.3f} s, "
      "recovered in {:.3f} s)",
      agents, api.substr(0, colon), *port, statePath, secondsSince(started), storeOpen, recovery);
  // A machine-readable line for scripts and tests that asked for port 0.
  std::cout << "loomd: api-port " << *port << std::endl;

  gLoop = &loop;
  gHttp = &http;
  std::signal(SIGINT, onSignal);
  std::signal(SIGTERM, onSignal);
  std::signal(SIGPIPE, SIG_IGN);
  controller::ServiceNotifier notifier;
  notifier.ready("serving: agents on " + agents + ", API on http://" + api.substr(0, colon) + ":" +
                 std::to_string(*port));
  if (notifier.watchdogMs() > 0) {
    spdlog::info("systemd watchdog: the core loop pings every {} ms", notifier.watchdogMs() / 2);
    loop.onTurn([&notifier](std::int64_t now) { notifier.alive(now); });
  }
  std::thread httpThread([&http] { http.run(); });
  loop.run();
  notifier.stopping();
  http.stop();
  httpThread.join();
  spdlog::info("stopped");
  return 0;
}
