#include "drivers/kvm/KvmDriver.h"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "drivers/kvm/DomainXml.h"
#include "drivers/kvm/LibvirtEventLoop.h"

namespace loom::drivers::kvm {
namespace {

DomainState stateFromLibvirt(int state, int reason) {
  switch (state) {
    case VIR_DOMAIN_RUNNING:
    case VIR_DOMAIN_BLOCKED:
      return DomainState::Running;
    case VIR_DOMAIN_PAUSED:
    case VIR_DOMAIN_PMSUSPENDED:
      return DomainState::Paused;
    case VIR_DOMAIN_SHUTDOWN:
      return DomainState::ShuttingDown;
    case VIR_DOMAIN_CRASHED:
      return DomainState::Crashed;
    case VIR_DOMAIN_SHUTOFF:
      if (reason == VIR_DOMAIN_SHUTOFF_CRASHED) return DomainState::Crashed;
      // Never started since it was defined (or since libvirtd last restarted).
      if (reason == VIR_DOMAIN_SHUTOFF_UNKNOWN) return DomainState::Defined;
      return DomainState::Shutoff;
    default:
      return DomainState::Defined;
  }
}

bool runs(int state) {
  return state == VIR_DOMAIN_RUNNING || state == VIR_DOMAIN_BLOCKED || state == VIR_DOMAIN_PAUSED ||
         state == VIR_DOMAIN_SHUTDOWN || state == VIR_DOMAIN_PMSUSPENDED;
}

DomainEvent eventFromLibvirt(const std::string& name, const std::string& uuid, int event, int detail) {
  DomainEvent e{name, uuid, DomainState::Shutoff, ""};
  switch (event) {
    case VIR_DOMAIN_EVENT_DEFINED:
      e.state = DomainState::Defined;
      e.detail = "defined";
      break;
    case VIR_DOMAIN_EVENT_UNDEFINED:
      e.state = DomainState::Shutoff;
      e.detail = "undefined";
      break;
    case VIR_DOMAIN_EVENT_STARTED:
      e.state = DomainState::Running;
      e.detail = "started";
      break;
    case VIR_DOMAIN_EVENT_SUSPENDED:
      e.state = DomainState::Paused;
      e.detail = "paused";
      break;
    case VIR_DOMAIN_EVENT_RESUMED:
      e.state = DomainState::Running;
      e.detail = "resumed";
      break;
    case VIR_DOMAIN_EVENT_SHUTDOWN:
      e.state = DomainState::ShuttingDown;
      e.detail = "shutting down";
      break;
    case VIR_DOMAIN_EVENT_PMSUSPENDED:
      e.state = DomainState::Paused;
      e.detail = "suspended by guest";
      break;
    case VIR_DOMAIN_EVENT_CRASHED:
      e.state = DomainState::Crashed;
      e.detail = "crashed";
      break;
    case VIR_DOMAIN_EVENT_STOPPED:
      switch (detail) {
        case VIR_DOMAIN_EVENT_STOPPED_CRASHED:
          e.state = DomainState::Crashed;
          e.detail = "crashed";
          break;
        case VIR_DOMAIN_EVENT_STOPPED_FAILED:
          e.state = DomainState::Crashed;
          e.detail = "failed";
          break;
        case VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN:
          e.detail = "shutdown by guest";
          break;
        case VIR_DOMAIN_EVENT_STOPPED_DESTROYED:
          e.detail = "destroyed";
          break;
        default:
          e.detail = "stopped";
          break;
      }
      break;
    default:
      e.detail = "event " + std::to_string(event);
      break;
  }
  return e;
}

bool devKvmUsable() {
  const int fd = ::open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (fd < 0) return false;
  ::close(fd);
  return true;
}

Error withContext(const std::string& context, Error err) {
  if (!context.empty()) err.message = context + ": " + err.message;
  return err;
}

}  // namespace

Result<KvmDriverConfig> parseKvmDriverConfig(const DriverOptions& options) {
  KvmDriverConfig c;
  if (!options.uri.empty()) c.uri = options.uri;
  if (auto it = options.params.find("domain_type"); it != options.params.end()) {
    if (it->second != "kvm" && it->second != "qemu" && it->second != "auto") {
      return makeError(Errc::Invalid, "kvm driver: param domain_type='" + it->second + "' is not kvm, qemu or auto");
    }
    c.domainType = it->second;
  }
  return c;
}

KvmDriver::KvmDriver(KvmDriverConfig config) : config_(std::move(config)) { LibvirtEventLoop::ensureRegistered(); }

KvmDriver::~KvmDriver() {
  conn_.reset();       // deregisters event callbacks before the loop may stop
  eventLoop_.reset();  // joins the loop thread if this was its last user
}

Result<LibvirtConnection*> KvmDriver::connection(const std::string& context) {
  if (conn_ && conn_->alive()) return conn_.get();
  conn_.reset();
  auto opened = LibvirtConnection::open(config_.uri);
  if (!opened) return withContext(context, opened.error());
  if (!eventLoop_) eventLoop_ = LibvirtEventLoop::acquire();
  conn_ = std::move(*opened);
  for (const auto& cb : subscribers_) {
    auto registered = conn_->registerLifecycle(
        [cb](const std::string& n, const std::string& u, int ev, int d) { cb(eventFromLibvirt(n, u, ev, d)); });
    if (!registered) return withContext(context, registered.error());
  }
  return conn_.get();
}

Capabilities KvmDriver::capabilities() const {
  Capabilities c;
  c.liveMigration = false;  // libvirt can, but Driver has no migrate operation yet
  c.events = true;
  c.directKernelBoot = true;
  c.persistentDefinitions = config_.uri.rfind("test:", 0) != 0;  // test:// lives in our process
  c.personalities = pool::HypervisorSet::of(pool::Hypervisor::Kvm);
  return c;
}

Result<std::string> KvmDriver::domainType() {
  if (config_.domainType != "auto") return config_.domainType;
  if (!resolvedType_.empty()) return resolvedType_;
  auto conn = connection("");
  if (!conn) return conn.error();
  auto caps = (*conn)->capabilitiesXml();
  if (!caps) return caps.error();
  if (capabilitiesOfferDomainType(*caps, "kvm")) {
    resolvedType_ = "kvm";
  } else if (capabilitiesOfferDomainType(*caps, "qemu")) {
    resolvedType_ = "qemu";
  } else {
    // A hypervisor that names neither (libvirt's test driver) accepts both; mirror the host.
    resolvedType_ = devKvmUsable() ? "kvm" : "qemu";
  }
  return resolvedType_;
}

ProbeResult KvmDriver::probe() {
  auto conn = connection("");
  if (!conn) return ProbeResult{false, conn.error().message};
  auto version = (*conn)->hypervisorVersion();
  if (!version) return ProbeResult{false, version.error().message};
  auto caps = (*conn)->capabilitiesXml();
  if (!caps) return ProbeResult{false, caps.error().message};
  if (config_.domainType == "kvm" && config_.uri.rfind("test:", 0) != 0 && !capabilitiesOfferDomainType(*caps, "kvm")) {
    return ProbeResult{false, config_.uri +
                                  " offers no KVM acceleration (is /dev/kvm usable by libvirt?); "
                                  "use domain_type=qemu or auto"};
  }
  auto type = domainType();
  if (!type) return ProbeResult{false, type.error().message};
  return ProbeResult{true, "libvirt " + *version + " at " + config_.uri + ", guests run as type '" + *type + "'"};
}

Result<NodeInfo> KvmDriver::nodeInfo() {
  auto conn = connection("cannot read node info");
  if (!conn) return conn.error();
  auto ni = (*conn)->nodeInfo();
  if (!ni) return ni.error();
  auto version = (*conn)->hypervisorVersion();
  if (!version) return version.error();
  NodeInfo n;
  n.sockets = ni->nodes * ni->sockets;
  n.cores = ni->cpus;
  n.memory = ni->memory / 1024;
  if (auto caps = (*conn)->capabilitiesXml(); caps) n.cpuModel = hostCpuModelFromCapabilities(*caps);
  if (n.cpuModel.empty()) n.cpuModel = ni->model;
  n.hypervisor = "kvm";
  n.personality = pool::Hypervisor::Kvm;
  n.version = *version;
  return n;
}

Status KvmDriver::define(const DomainSpec& spec) {
  auto type = domainType();
  if (!type) return withContext("cannot define domain '" + spec.name + "'", type.error());
  auto xml = domainXml(spec, DomainXmlOptions{*type});
  if (!xml) return xml.error();
  auto conn = connection("cannot define domain '" + spec.name + "'");
  if (!conn) return conn.error();
  // libvirt would refuse a name clash with its own wording; say it the Loom way.
  if (auto existing = (*conn)->lookup(spec.name); existing) {
    if (auto uuid = existing->uuid(); uuid && *uuid != spec.uuid) {
      return makeError(Errc::Conflict, "domain '" + spec.name + "' already exists with uuid " + *uuid);
    }
  }
  return (*conn)->define(*xml, spec.name);
}

Status KvmDriver::start(const std::string& name) {
  const std::string context = "cannot start domain '" + name + "'";
  auto conn = connection(context);
  if (!conn) return conn.error();
  auto dom = (*conn)->lookup(name);
  if (!dom) {
    if (dom.error().code == Errc::NotFound) return makeError(Errc::NotFound, context + ": not defined");
    return dom.error();
  }
  auto active = dom->isActive();
  if (!active) return active.error();
  if (*active) return okStatus();
  auto created = dom->create();
  if (!created) {
    // Started by someone else between the check and the call: the goal is reached.
    if (auto again = dom->isActive(); again && *again) return okStatus();
    return created;
  }
  return okStatus();
}

Status KvmDriver::stop(const std::string& name, int timeoutMs) {
  auto conn = connection("cannot stop domain '" + name + "'");
  if (!conn) return conn.error();
  auto dom = (*conn)->lookup(name);
  if (!dom) return dom.error().code == Errc::NotFound ? okStatus() : Status(dom.error());
  auto state = dom->state();
  if (!state) return state.error();
  if (!runs(*state)) return okStatus();

  // A guest without an OS (or without ACPI) ignores the request; the deadline covers it.
  (void)dom->shutdown();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMs);
  for (;;) {
    auto now = dom->state();
    if (!now) {
      if (now.error().code == Errc::NotFound) return okStatus();  // transient domain: gone
      return now.error();
    }
    if (!runs(*now)) return okStatus();
    if (std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(config_.stopPollMs));
  }
  return destroy(name);
}

Status KvmDriver::destroy(const std::string& name) {
  auto conn = connection("cannot destroy domain '" + name + "'");
  if (!conn) return conn.error();
  auto dom = (*conn)->lookup(name);
  if (!dom) return dom.error().code == Errc::NotFound ? okStatus() : Status(dom.error());
  auto active = dom->isActive();
  if (!active) return active.error();
  if (!*active) return okStatus();
  auto destroyed = dom->destroy();
  if (!destroyed) {
    auto again = dom->isActive();
    if ((again && !*again) || (!again && again.error().code == Errc::NotFound)) return okStatus();
    return destroyed;
  }
  return okStatus();
}

Status KvmDriver::undefine(const std::string& name) {
  auto conn = connection("cannot undefine domain '" + name + "'");
  if (!conn) return conn.error();
  auto dom = (*conn)->lookup(name);
  if (!dom) return dom.error().code == Errc::NotFound ? okStatus() : Status(dom.error());
  if (auto destroyed = destroy(name); !destroyed) return destroyed;
  auto persistent = dom->isPersistent();
  if (!persistent) return persistent.error().code == Errc::NotFound ? okStatus() : Status(persistent.error());
  if (!*persistent) return okStatus();  // a transient domain vanished when destroyed
  auto undefined = dom->undefine();
  if (!undefined && undefined.error().code == Errc::NotFound) return okStatus();
  return undefined;
}

Result<DomainInfo> KvmDriver::infoOf(LibvirtDomain& dom) {
  DomainInfo out;
  out.name = dom.name();
  auto uuid = dom.uuid();
  if (!uuid) return uuid.error();
  out.uuid = *uuid;
  int reason = 0;
  auto state = dom.state(&reason);
  if (!state) return state.error();
  out.state = stateFromLibvirt(*state, reason);
  auto info = dom.info();
  if (!info) return info.error();
  out.vcpus = info->nrVirtCpu;
  out.memory = info->maxMem / 1024;
  auto xml = dom.xml();
  if (!xml) return xml.error();
  out.macs = macsFromDomainXml(*xml);
  return out;
}

Result<std::vector<DomainInfo>> KvmDriver::list() {
  auto conn = connection("cannot list domains");
  if (!conn) return conn.error();
  auto domains = (*conn)->listAll();
  if (!domains) return domains.error();
  std::vector<DomainInfo> out;
  for (auto& dom : *domains) {
    auto info = infoOf(dom);
    if (!info) {
      if (info.error().code == Errc::NotFound) continue;  // undefined while we listed
      return info.error();
    }
    out.push_back(std::move(*info));
  }
  return out;
}

Result<DomainInfo> KvmDriver::info(const std::string& name) {
  auto conn = connection("cannot read domain '" + name + "'");
  if (!conn) return conn.error();
  auto dom = (*conn)->lookup(name);
  if (!dom) return dom.error();
  return infoOf(*dom);
}

Status KvmDriver::subscribe(EventCallback callback) {
  auto conn = connection("cannot subscribe to domain events");
  if (!conn) return conn.error();
  auto registered = (*conn)->registerLifecycle([callback](const std::string& n, const std::string& u, int ev, int d) {
    callback(eventFromLibvirt(n, u, ev, d));
  });
  if (!registered) return registered;
  subscribers_.push_back(std::move(callback));
  return okStatus();
}

Result<std::unique_ptr<Driver>> makeKvmDriver(const DriverOptions& options) {
  auto config = parseKvmDriverConfig(options);
  if (!config) return config.error();
  return std::unique_ptr<Driver>(std::make_unique<KvmDriver>(std::move(*config)));
}

}  // namespace loom::drivers::kvm
