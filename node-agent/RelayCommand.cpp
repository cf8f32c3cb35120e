#include "node-agent/RelayCommand.h"

#include <spdlog/spdlog.h>

#include <iostream>

#include "node-agent/CommandSupport.h"
#include "protocol/CurveKeys.h"

namespace loom::agent {

CLI::App* addRelayCommand(CLI::App& app, RelayCommandLine& cl) {
  auto* relay =
      app.add_subcommand("relay",
                         "carry the frames of many agents (a chassis, a rack) to the controller over one connection; "
                         "agents give this relay as their --controller");
  relay->fallthrough();  // --log-level after the subcommand
  relay
      ->add_option("--name", cl.options.name,
                   "this relay's name, unique in the fabric (e.g. its chassis); loomd shows it")
      ->required();
  relay->add_option("--listen", cl.options.listen, "endpoint the agents connect to")->capture_default_str();
  relay
      ->add_option("--controller", cl.options.controller,
                   "the controller's fabric endpoint; or every loomd replica's, comma-separated (frames go to the "
                   "one that leads)")
      ->capture_default_str();
  relay->add_flag("--insecure", cl.insecure, "turn CurveZMQ off on both sides (demos and tests only)");
  relay->add_option("--key", cl.keyPath,
                    "the relay's secret key file (`loomd keygen --name NAME`): agents' "
                    "--server-key is its .pub, and "
                    "loomd's --allow-relays lists it");
  relay->add_option("--server-key", cl.serverKeyPath, "the controller's public key file (loomd.pub)");
  relay->add_option("--allow", cl.allowPath,
                    "allow-list: public keys of the agents this relay admits (read again on SIGHUP: a removed key's "
                    "agents are cut off)");
  relay->add_option("--batch-ms", cl.options.batchMs, "gather agents' frames this long at most before sending them on")
      ->capture_default_str()
      ->check(CLI::Range(0, 1000));
  return relay;
}

int runRelay(RelayCommandLine cl) {
  RelayOptions& options = cl.options;
  options.insecure = cl.insecure;
  if (cl.insecure) {
    spdlog::warn(
        "*** --insecure: CurveZMQ is OFF; any process that can reach {} can pose as an agent. "
        "Demos and tests only. ***",
        options.listen);
  } else {
    if (cl.keyPath.empty() || cl.serverKeyPath.empty() || cl.allowPath.empty())
      return fail(
          "relay: CurveZMQ needs --key FILE (the relay's secret key), --server-key FILE (the "
          "controller's public key) "
          "and --allow FILE (agent public keys); or --insecure");
    auto key = protocol::readCurveKey(cl.keyPath);
    if (!key) return fail(key.error().message);
    auto serverKey = protocol::readCurveKey(cl.serverKeyPath);
    if (!serverKey) return fail(serverKey.error().message);
    auto allowed = protocol::readAllowList(cl.allowPath);
    if (!allowed) return fail(allowed.error().message);
    options.secretKey = *key;
    options.serverKey = *serverKey;
    options.allowedKeys = *allowed;
    options.reloadAllowedKeys = [path = cl.allowPath] { return protocol::readAllowList(path); };
  }
  FabricRelay relay(options);
  if (auto s = relay.start(); !s) return fail(s.error().message);
  // A machine-readable line for scripts and tests that asked for port 0.
  std::cout << "loom-agent: relay-port " << relay.boundPort() << std::endl;
  runUntilSignalled(relay);
  spdlog::info("relay {} stopped", options.name);
  return 0;
}

}  // namespace loom::agent
