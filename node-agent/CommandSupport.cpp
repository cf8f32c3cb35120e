#include "node-agent/CommandSupport.h"

#include <unistd.h>

#include <atomic>
#include <csignal>
#include <iostream>

namespace loom::agent {
namespace {

// What a signal stops: set while a loop runs. stop() on each is async-signal-safe.
std::atomic<AgentHost*> gHost{nullptr};
std::atomic<FabricRelay*> gRelay{nullptr};

void onSignal(int) {
  if (auto* h = gHost.load()) h->stop();
  if (auto* r = gRelay.load()) r->stop();
}

void onHangup(int) {
  if (auto* r = gRelay.load()) r->requestReload();
}

}  // namespace

int fail(const std::string& message) {
  std::cerr << "loom-agent: " << message << "\n";
  return 1;
}

std::string hostName() {
  char buf[256] = {};
  gethostname(buf, sizeof buf - 1);
  return buf;
}

std::vector<std::string> hypervisorNames(pool::HypervisorSet set) {
  std::vector<std::string> out;
  if (set.has(pool::Hypervisor::Kvm)) out.emplace_back("kvm");
  if (set.has(pool::Hypervisor::Xen)) out.emplace_back("xen");
  return out;
}

void runUntilSignalled(AgentHost& host) {
  gHost = &host;
  std::signal(SIGINT, onSignal);
  std::signal(SIGTERM, onSignal);
  host.run();
  gHost = nullptr;
}

void runUntilSignalled(FabricRelay& relay) {
  gRelay = &relay;
  std::signal(SIGINT, onSignal);
  std::signal(SIGTERM, onSignal);
  std::signal(SIGHUP, onHangup);  // the allow-list read again
  relay.run();
  gRelay = nullptr;
}

}  // namespace loom::agent
