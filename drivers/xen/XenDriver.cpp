#include "drivers/xen/XenDriver.h"

#include <sys/stat.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <thread>

#include "drivers/xen/DomainConfig.h"
#include "drivers/xen/DomainConfigTranslator.h"
#include "drivers/xen/DomainStore.h"
#include "drivers/xen/LibxlContext.h"

namespace loom::drivers::xen {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kPollInterval = std::chrono::milliseconds(50);

// The hotplug script for NICs without a bridge. Self-contained on purpose: Xen's own
// vif-common.sh locates its helpers through $0, so it cannot be sourced from a script
// living outside /etc/xen/scripts. libxl runs it as `SCRIPT online|offline type_if=vif`
// (PV vif) or `add|remove type_if=tap` (HVM emulated NIC) with $vif naming the device.
// netback keeps the vif down until hotplug-status says "connected".
constexpr const char* kIsolatedVifScript = R"(#!/bin/sh
# Written by Loom's Xen driver. Hotplug script for an isolated vif: a NIC whose network
# the agent maps to no bridge. The vif is created and brought up in dom0, attached to
# nothing, so the guest has its NIC, MAC and link, and its frames reach only dom0's vif.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
command=$1
case "$*" in
  *type_if=tap*) dev=${INTERFACE:-} ;;
  *) dev=${vif:-} ;;
esac
case "$command" in
  online|add)
    ip link set dev "$dev" up || { xenstore-write "$XENBUS_PATH/hotplug-error" "cannot bring $dev up" \
                                     "$XENBUS_PATH/hotplug-status" error; exit 1; }
    [ "$command" = online ] && xenstore-write "$XENBUS_PATH/hotplug-status" connected
    ;;
  offline|remove)
    ip link set dev "$dev" down 2>/dev/null
    ;;
esac
exit 0
)";

bool sameSpec(const DomainSpec& a, const DomainSpec& b) { return specToJson(a) == specToJson(b); }

}  // namespace

Result<std::unique_ptr<Driver>> makeXenDriver(const DriverOptions& options) {
  XenDriver::Settings settings;
  auto param = [&](const char* key) -> const std::string* {
    auto it = options.params.find(key);
    return it == options.params.end() ? nullptr : &it->second;
  };
  if (auto* dir = param("state_dir")) {
    if (dir->empty() || (*dir)[0] != '/')
      return makeError(Errc::Invalid, "xen: state_dir '" + *dir + "' must be an absolute path");
    settings.stateDir = *dir;
  }
  if (auto* script = param("isolated_vif_script")) settings.isolatedVifScript = *script;
  if (auto* timeout = param("destroy_timeout_ms")) {
    char* end = nullptr;
    long value = std::strtol(timeout->c_str(), &end, 10);
    if (timeout->empty() || *end != '\0' || value <= 0 || value > 600000)
      return makeError(Errc::Invalid, "xen: destroy_timeout_ms '" + *timeout + "' is not 1..600000");
    settings.destroyTimeoutMs = static_cast<int>(value);
  }
  return std::unique_ptr<Driver>(new XenDriver(std::move(settings)));
}

XenDriver::XenDriver(Settings settings)
    : settings_(std::move(settings)), store_(std::make_unique<DomainStore>(settings_.stateDir)) {}

XenDriver::~XenDriver() = default;

Capabilities XenDriver::capabilities() const {
  Capabilities caps;
  caps.liveMigration = false;  // libxl can; Loom does not drive it yet
  caps.events = false;         // needs a libxl event loop thread; not yet
  caps.directKernelBoot = true;
  // Definitions live in Loom's own store (state_dir), not in the hypervisor.
  caps.persistentDefinitions = false;
  caps.personalities = pool::HypervisorSet::of(pool::Hypervisor::Xen);
  return caps;
}

Result<LibxlContext*> XenDriver::connect() {
  if (!ctx_) {
    auto opened = LibxlContext::open();
    if (!opened) return opened.error();
    ctx_ = std::move(opened.value());
  }
  return ctx_.get();
}

ProbeResult XenDriver::probe() {
  auto ctx = connect();
  if (!ctx) return {false, ctx.error().message};
  // privcmd also exists in a PV domU; only dom0 may read the physical host.
  auto node = (*ctx)->nodeInfo();
  if (!node) return {false, "Xen found but this domain cannot manage it (not dom0?): " + node.error().message};
  return {true, "Xen " + node->version + ", " + std::to_string(node->cores) + " CPUs, " + std::to_string(node->memory) +
                    " MiB"};
}

Result<NodeInfo> XenDriver::nodeInfo() {
  auto ctx = connect();
  if (!ctx) return ctx.error();
  auto info = (*ctx)->nodeInfo();
  if (info) info->personality = pool::Hypervisor::Xen;
  return info;
}

Result<std::optional<LiveDomain>> XenDriver::findLive(const std::string& name) {
  auto domains = ctx_->listDomains();
  if (!domains) return domains.error();
  for (auto& d : *domains) {
    if (d.name == name) return std::optional<LiveDomain>(std::move(d));
  }
  return std::optional<LiveDomain>();
}

Status XenDriver::waitGone(const LiveDomain& domain, int timeoutMs) {
  // libxl_domain_destroy returns while the hypervisor may still hold the dying domain
  // (pages being scrubbed); "gone" is when libxl_domain_info stops finding it.
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeoutMs);
  for (;;) {
    auto info = ctx_->domainInfo(domain.domid);
    if (!info && info.error().code == Errc::NotFound) return okStatus();
    if (!info) return info.error();
    if (Clock::now() >= deadline) {
      return makeError(Errc::Timeout, "xen: domain '" + domain.name + "' (domid " + std::to_string(domain.domid) +
                                          ") still exists " + std::to_string(timeoutMs) + " ms after destroy");
    }
    std::this_thread::sleep_for(kPollInterval);
  }
}

Status XenDriver::destroyAndWait(const LiveDomain& domain) {
  if (!domain.dying) {
    if (auto destroyed = ctx_->destroy(domain.domid); !destroyed) {
      // It may have vanished between listing and destroying: that is success.
      auto info = ctx_->domainInfo(domain.domid);
      if (!info && info.error().code == Errc::NotFound) return okStatus();
      return destroyed;
    }
  }
  return waitGone(domain, settings_.destroyTimeoutMs);
}

Status XenDriver::define(const DomainSpec& spec) {
  auto ctx = connect();
  if (!ctx) return ctx.error();
  // Translate now so a spec Xen cannot run is refused at define, not at start.
  auto config = DomainConfigTranslator().translate(spec);
  if (!config) return config.error();

  auto stored = store_->load(spec.name);
  if (!stored && stored.error().code != Errc::NotFound) return stored.error();
  // A server keeps its identity for life: a second UUID under one name is another
  // server colliding with this one, not a redefinition.
  if (stored && stored->uuid != spec.uuid) {
    return makeError(Errc::Conflict, "xen: domain '" + spec.name + "' is defined with UUID " + stored->uuid +
                                         "; refusing UUID " + spec.uuid + " (undefine it first)");
  }
  auto live = findLive(spec.name);
  if (!live) return live.error();
  if (*live && !(*live)->dying) {
    if (stored && sameSpec(*stored, spec)) return okStatus();
    if ((*live)->uuid != spec.uuid) {
      return makeError(Errc::Conflict,
                       "xen: domain '" + spec.name + "' runs with UUID " + (*live)->uuid + ", not " + spec.uuid);
    }
    if (stored) {
      return makeError(Errc::Conflict, "xen: domain '" + spec.name + "' is running; stop it before redefining it");
    }
    // Running with the right identity but no stored definition (state_dir lost, or the
    // domain was started by hand): adopt it by recording the definition.
  }
  return store_->save(spec);
}

Result<std::string> XenDriver::ensureIsolatedVifScript() {
  if (!settings_.isolatedVifScript.empty()) return settings_.isolatedVifScript;
  const std::string path = store_->dir() + "/vif-loom-isolated";
  std::ifstream existing(path);
  std::string current((std::istreambuf_iterator<char>(existing)), std::istreambuf_iterator<char>());
  if (current != kIsolatedVifScript) {
    const std::string tmp = path + ".tmp";
    {
      std::ofstream out(tmp, std::ios::trunc);
      out << kIsolatedVifScript;
      if (!out.flush()) return makeError(Errc::Io, "xen: cannot write hotplug script '" + tmp + "'");
    }
    if (::chmod(tmp.c_str(), 0755) != 0 || std::rename(tmp.c_str(), path.c_str()) != 0)
      return makeError(Errc::Io, "xen: cannot install hotplug script '" + path + "'");
  }
  return path;
}

Status XenDriver::start(const std::string& name) {
  auto ctx = connect();
  if (!ctx) return ctx.error();
  auto live = findLive(name);
  if (!live) return live.error();
  if (*live) {
    const LiveDomain& d = **live;
    if (d.state == DomainState::Running) return okStatus();
    if (d.state == DomainState::Paused) return ctx_->unpause(d.domid);
    // Shut down, crashed or dying: reap what is left, then boot a fresh one.
    if (auto reaped = destroyAndWait(d); !reaped) return reaped;
  }

  auto spec = store_->load(name);
  if (!spec) return spec.error();
  TranslateOptions options;
  bool isolated = false;
  for (const auto& nic : spec->nics) isolated = isolated || nic.bridge.empty();
  if (isolated) {
    auto script = ensureIsolatedVifScript();
    if (!script) return script.error();
    options.isolatedVifScript = *script;
  }
  auto config = DomainConfigTranslator(options).translate(*spec);
  if (!config) return config.error();

  // Invariant 1 at the last line of defence: Xen itself would happily run two domains
  // with one UUID under different names.
  auto domains = ctx_->listDomains();
  if (!domains) return domains.error();
  for (const auto& d : *domains) {
    if (d.uuid == spec->uuid && !d.dying) {
      return makeError(Errc::Conflict, "xen: cannot start '" + name + "': UUID " + spec->uuid +
                                           " already runs as domain '" + d.name + "' (domid " +
                                           std::to_string(d.domid) + ")");
    }
  }
  auto domid = ctx_->createDomain(config.value());
  if (!domid) return domid.error();
  return okStatus();
}

Status XenDriver::stop(const std::string& name, int timeoutMs) {
  auto ctx = connect();
  if (!ctx) return ctx.error();
  auto live = findLive(name);
  if (!live) return live.error();
  if (!*live) return okStatus();
  const LiveDomain d = **live;
  if (!d.dying && !d.shutdown) {
    // A guest that cannot be asked (no PV control node yet, early boot) is destroyed
    // below without waiting for a timeout it would never beat.
    if (ctx_->requestShutdown(d)) {
      const auto deadline = Clock::now() + std::chrono::milliseconds(std::max(timeoutMs, 0));
      while (Clock::now() < deadline) {
        auto info = ctx_->domainInfo(d.domid);
        if (!info && info.error().code == Errc::NotFound) return okStatus();
        if (!info) return info.error();
        if (info->shutdown || info->dying) break;
        std::this_thread::sleep_for(kPollInterval);
      }
    }
  }
  // Shut down (libxl leaves the corpse until the toolstack reaps it) or out of time.
  return destroyAndWait(d);
}

Status XenDriver::destroy(const std::string& name) {
  auto ctx = connect();
  if (!ctx) return ctx.error();
  auto live = findLive(name);
  if (!live) return live.error();
  if (!*live) return okStatus();
  return destroyAndWait(**live);
}

Status XenDriver::undefine(const std::string& name) {
  if (auto destroyed = destroy(name); !destroyed) return destroyed;
  return store_->remove(name);
}

Result<DomainInfo> XenDriver::describe(const LiveDomain& domain) {
  DomainInfo info;
  info.name = domain.name;
  info.uuid = domain.uuid;
  info.state = domain.state;
  info.vcpus = domain.vcpus;
  // The configured size, as Loom asked for it; a domain libxl holds no config for
  // (created by another toolstack) reports its live figures instead.
  auto configured = ctx_->configuredSize(domain.domid);
  if (configured) {
    info.memory = configured->memory;
    info.vcpus = configured->vcpus;
  }
  auto macs = ctx_->nicMacs(domain.domid);
  if (!macs) return macs.error();
  info.macs = std::move(macs.value());
  return info;
}

Result<std::vector<DomainInfo>> XenDriver::list() {
  auto ctx = connect();
  if (!ctx) return ctx.error();
  auto specs = store_->loadAll();
  if (!specs) return specs.error();
  auto domains = ctx_->listDomains();
  if (!domains) return domains.error();

  std::vector<DomainInfo> out;
  std::vector<bool> listed(domains->size(), false);
  for (const auto& spec : *specs) {
    bool running = false;
    for (std::size_t i = 0; i < domains->size(); ++i) {
      const LiveDomain& d = (*domains)[i];
      if (d.name != spec.name || d.dying) continue;
      auto info = describe(d);
      if (!info) return info.error();
      out.push_back(std::move(info.value()));
      listed[i] = running = true;
      break;
    }
    if (!running) {
      DomainInfo info;
      info.name = spec.name;
      info.uuid = spec.uuid;
      info.state = DomainState::Defined;
      info.vcpus = spec.vcpus;
      info.memory = spec.memory;
      for (const auto& nic : spec.nics) info.macs.push_back(nic.mac);
      out.push_back(std::move(info));
    }
  }
  // Domains Loom has no definition for (started by hand, or state_dir lost) are still
  // reported: the agent must see them to adopt or fence them.
  for (std::size_t i = 0; i < domains->size(); ++i) {
    const LiveDomain& d = (*domains)[i];
    if (listed[i] || d.dying || d.name.empty()) continue;
    auto info = describe(d);
    if (!info) return info.error();
    out.push_back(std::move(info.value()));
  }
  return out;
}

Result<DomainInfo> XenDriver::info(const std::string& name) {
  auto ctx = connect();
  if (!ctx) return ctx.error();
  auto live = findLive(name);
  if (!live) return live.error();
  if (*live && !(*live)->dying) return describe(**live);
  auto spec = store_->load(name);
  if (!spec) return spec.error();
  DomainInfo info;
  info.name = spec->name;
  info.uuid = spec->uuid;
  info.state = DomainState::Defined;
  info.vcpus = spec->vcpus;
  info.memory = spec->memory;
  for (const auto& nic : spec->nics) info.macs.push_back(nic.mac);
  return info;
}

Status XenDriver::subscribe(EventCallback) {
  auto ctx = connect();
  if (!ctx) return ctx.error();
  return makeError(Errc::Unsupported, "xen: lifecycle events are not offered by this driver yet");
}

}  // namespace loom::drivers::xen
