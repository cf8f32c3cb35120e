#include "controller/LoomdCommandLine.h"

#include <spdlog/spdlog.h>

#include "protocol/CurveKeys.h"

namespace loom::loomd {

void addOptions(CLI::App& app, CommandLine& cl) {
  auto& opts = cl.opts;
  app.add_option("--state", cl.statePath, "state store (SQLite file) of a loomd alone")->capture_default_str();
  app.add_option("--store", cl.store,
                 "etcd://HOST:PORT[,HOST:PORT...][/PREFIX] (prefix /loom by default): keep the state in etcd and run "
                 "as one of several replicas (one leads, the others stand by and take over), instead of --state; "
                 "etcd's limits: controller/README.md");
  app.add_option("--name", cl.name, "this replica's name among the replicas (default: the host name)");
  app.add_option("--advertise-api", cl.advertise,
                 "the URL other replicas send loomctl to when this one leads (default: http://--api)");
  app.add_option("--leader-ttl", cl.leaderTtlS,
                 "seconds of the leader's etcd lease: a dead leader is replaced about this long after it died (etcd "
                 "grants at least 1.5 x its --election-timeout); and a leader whose etcd leaves a renewal unanswered "
                 "about this long stands down (a 10,000-server apply keeps etcd busy for seconds: raise it for big "
                 "applies or a busy etcd)")
      ->capture_default_str()
      ->check(CLI::Range(1, 60));
  app.add_option("--agents", cl.agents, "ZeroMQ endpoint agents connect to")->capture_default_str();
  app.add_option("--api", cl.api, "HTTP API address HOST:PORT (port 0: any free port, printed)")->capture_default_str();
  app.add_option("--api-tls-cert", cl.tlsCert,
                 "PEM certificate chain of the API: serve HTTPS only (TLS 1.2+), with --api-tls-key; without both, "
                 "plain HTTP, for loopback and labs (docs/SECURITY.md). `loomd keygen --tls --name HOST` makes a "
                 "self-signed pair for a lab");
  app.add_option("--api-tls-key", cl.tlsKey, "PEM private key of --api-tls-cert (unencrypted; keep it 0600)");
  app.add_flag("--insecure", cl.insecure, "turn CurveZMQ authentication off (demos and tests only)");
  app.add_option("--key", cl.keyPath, "controller secret key file (from `loomd keygen`)");
  app.add_option("--allow", cl.allowPath,
                 "allow-list: agent public keys, one per line; it and --allow-relays are read again on SIGHUP (a "
                 "removed key is cut off at once; a file that does not read keeps the lists in force)");
  app.add_option("--allow-relays", cl.relaysPath,
                 "allow-list of fabric relay public keys (`loom-agent relay`), one per line: these may speak for the "
                 "blades behind them");
  app.add_option("--heartbeat-ms", opts.heartbeatMs, "heartbeat interval told to agents")->capture_default_str();
  app.add_option("--recovery-nice", cl.recoveryNice,
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
  app.add_option("--event-retention", opts.eventRetention,
                 "events kept in the store (the newest; older ones are deleted as new ones come)")
      ->capture_default_str()
      ->check(CLI::Range(std::uint64_t{10000}, std::uint64_t{100000000}));
  app.add_option("--admin-token-file", cl.adminTokenFile,
                 "where the first start writes the admin token (0600; the store keeps only its hash), or reads it if "
                 "the file exists (default: admin.token in the directory of --state; with --store, in the working "
                 "directory: give every replica the same path)");
  app.add_option("--audit-retention", opts.auditRetention, "audit records kept in the state store (the latest)")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{100}, std::size_t{10000000}));
  app.add_option("--log-level", cl.logLevel, "trace|debug|info|warn|error")->capture_default_str();
}

// The timing rules the agents and the outage rule need; an empty string when they hold.
std::string checkTimings(const controller::ControllerOptions& opts) {
  auto n = [](std::int64_t v) { return std::to_string(v); };
  if (opts.heartbeatMs <= 0 || opts.suspectMs <= opts.heartbeatMs || opts.deadMs < opts.suspectMs)
    return "need 0 < --heartbeat-ms < --suspect-ms <= --dead-ms (got " + n(opts.heartbeatMs) + ", " +
           n(opts.suspectMs) + ", " + n(opts.deadMs) + ")";
  // An agent must get a few renewals into each lease, or one lost frame fences it.
  if (opts.leaseMs < 2 * opts.heartbeatMs)
    return "--lease-ms " + n(opts.leaseMs) + " must be at least twice --heartbeat-ms " + n(opts.heartbeatMs);
  if (opts.fenceMarginMs < 0 || opts.fenceTimeoutMs <= 0)
    return "--fence-margin-ms must be >= 0 and --fence-timeout-ms > 0";
  // A blade must hear loomd again within its commit window, and it must be able to attest
  // before its lease runs out (docs/FENCING.md, "Terms").
  const std::int64_t commit = opts.commitMs ? opts.commitMs : opts.leaseMs * 2 / 5;
  const std::int64_t attest = opts.attestMs ? opts.attestMs : opts.leaseMs * 2;
  if (commit <= opts.heartbeatMs || commit >= opts.leaseMs)
    return "--commit-ms " + n(commit) + " must be longer than --heartbeat-ms and shorter than --lease-ms";
  if (attest < opts.leaseMs) return "--attest-ms " + n(attest) + " must be at least --lease-ms";
  return "";
}

// The fabric's options, with CurveZMQ's keys read; an error names the file.
Result<controller::FabricOptions> fabricOptions(const CommandLine& cl) {
  controller::FabricOptions fabric;
  fabric.endpoint = cl.agents;
  fabric.insecure = cl.insecure;
  fabric.leaseMs = cl.opts.leaseMs;
  fabric.heartbeatMs = cl.opts.heartbeatMs;
  if (cl.insecure) return fabric;
  if (cl.keyPath.empty() || cl.allowPath.empty())
    return makeError(Errc::Invalid,
                     "CurveZMQ needs --key FILE (from `loomd keygen`) and --allow FILE (agent public keys); or "
                     "--insecure for a demo");
  auto key = protocol::readCurveKey(cl.keyPath);
  if (!key) return key.error();
  auto allowed = protocol::readAllowList(cl.allowPath);
  if (!allowed) return allowed.error();
  fabric.secretKey = *key;
  fabric.allowedKeys = *allowed;
  if (!cl.relaysPath.empty()) {
    auto relays = protocol::readAllowList(cl.relaysPath);
    if (!relays) return relays.error();
    fabric.relayKeys = *relays;
  }
  spdlog::info("CurveZMQ on: {} agent key(s) and {} relay key(s) allowed", fabric.allowedKeys.size(),
               fabric.relayKeys.size());
  return fabric;
}

// The API's TLS pair, if both files are given.
Result<std::optional<controller::TlsFiles>> tlsFiles(const CommandLine& cl) {
  if (cl.tlsCert.empty() && cl.tlsKey.empty()) return std::optional<controller::TlsFiles>();
  if (cl.tlsCert.empty() || cl.tlsKey.empty())
    return makeError(Errc::Invalid, "HTTPS needs both --api-tls-cert FILE and --api-tls-key FILE (got only " +
                                        std::string(cl.tlsCert.empty() ? "--api-tls-key" : "--api-tls-cert") + ")");
  return std::optional(controller::TlsFiles{cl.tlsCert, cl.tlsKey});
}

Result<ApiAddress> parseApi(const std::string& api) {
  const auto colon = api.rfind(':');
  if (colon == std::string::npos) return makeError(Errc::Invalid, "--api wants HOST:PORT, got '" + api + "'");
  int port = -1;
  try {
    port = std::stoi(api.substr(colon + 1));
  } catch (...) {
    port = -1;
  }
  if (port < 0 || port > 65535) return makeError(Errc::Invalid, "--api: bad port in '" + api + "'");
  return ApiAddress{api.substr(0, colon), static_cast<unsigned short>(port)};
}

}  // namespace loom::loomd
