#include "drivers/kvm/LibvirtConnection.h"

#include <libvirt/virterror.h>

#include <cstdlib>

namespace loom::drivers::kvm {
namespace {

Errc errcFor(int code) {
  switch (code) {
    case VIR_ERR_NO_DOMAIN:
      return Errc::NotFound;
    case VIR_ERR_OPERATION_INVALID:
    case VIR_ERR_DOM_EXIST:
      return Errc::Conflict;
    case VIR_ERR_NO_SUPPORT:
    case VIR_ERR_ARGUMENT_UNSUPPORTED:
    case VIR_ERR_CONFIG_UNSUPPORTED:
      return Errc::Unsupported;
    case VIR_ERR_OPERATION_TIMEOUT:
    case VIR_ERR_AGENT_UNRESPONSIVE:
      return Errc::Timeout;
    case VIR_ERR_XML_ERROR:
    case VIR_ERR_XML_DETAIL:
    case VIR_ERR_INVALID_ARG:
      return Errc::Invalid;
    case VIR_ERR_NO_CONNECT:
    case VIR_ERR_INVALID_CONN:
    case VIR_ERR_RPC:
    case VIR_ERR_AUTH_FAILED:
    case VIR_ERR_AUTH_UNAVAILABLE:
      return Errc::Unavailable;
    case VIR_ERR_SYSTEM_ERROR:
    case VIR_ERR_OPERATION_FAILED:
      return Errc::Io;
    default:
      return Errc::Internal;
  }
}

struct LifecycleContext {
  LibvirtConnection::LifecycleCallback callback;
};

int onLifecycle(virConnectPtr, virDomainPtr dom, int event, int detail, void* opaque) {
  char uuid[VIR_UUID_STRING_BUFLEN] = {};
  virDomainGetUUIDString(dom, uuid);
  const char* name = virDomainGetName(dom);
  static_cast<LifecycleContext*>(opaque)->callback(name ? name : "", uuid, event, detail);
  return 0;
}

void freeLifecycle(void* opaque) { delete static_cast<LifecycleContext*>(opaque); }

}  // namespace

Error lastLibvirtError(const std::string& what) {
  virErrorPtr err = virGetLastError();
  const int code = err ? err->code : VIR_ERR_INTERNAL_ERROR;
  return makeError(errcFor(code), what + ": " + virGetLastErrorMessage());
}

// ---------------------------------------------------------------------------------------

Result<int> LibvirtDomain::state(int* reason) const {
  int st = 0;
  int why = 0;
  if (virDomainGetState(get(), &st, &why, 0) < 0) {
    return lastLibvirtError("cannot read the state of domain '" + name_ + "'");
  }
  if (reason) *reason = why;
  return st;
}

Result<bool> LibvirtDomain::isActive() const {
  const int r = virDomainIsActive(get());
  if (r < 0) return lastLibvirtError("cannot tell whether domain '" + name_ + "' runs");
  return r == 1;
}

Result<bool> LibvirtDomain::isPersistent() const {
  const int r = virDomainIsPersistent(get());
  if (r < 0) return lastLibvirtError("cannot tell whether domain '" + name_ + "' is persistent");
  return r == 1;
}

Result<virDomainInfo> LibvirtDomain::info() const {
  virDomainInfo i{};
  if (virDomainGetInfo(get(), &i) < 0) return lastLibvirtError("cannot read domain '" + name_ + "'");
  return i;
}

Result<std::string> LibvirtDomain::uuid() const {
  char buf[VIR_UUID_STRING_BUFLEN] = {};
  if (virDomainGetUUIDString(get(), buf) < 0) {
    return lastLibvirtError("cannot read the uuid of domain '" + name_ + "'");
  }
  return std::string(buf);
}

Result<std::string> LibvirtDomain::xml() const {
  char* xml = virDomainGetXMLDesc(get(), 0);
  if (!xml) return lastLibvirtError("cannot read the XML of domain '" + name_ + "'");
  std::string out(xml);
  std::free(xml);
  return out;
}

Status LibvirtDomain::create() {
  if (virDomainCreate(get()) < 0) return lastLibvirtError("cannot start domain '" + name_ + "'");
  return okStatus();
}

Status LibvirtDomain::shutdown() {
  if (virDomainShutdown(get()) < 0) return lastLibvirtError("cannot shut down domain '" + name_ + "'");
  return okStatus();
}

Status LibvirtDomain::destroy() {
  if (virDomainDestroy(get()) < 0) return lastLibvirtError("cannot destroy domain '" + name_ + "'");
  return okStatus();
}

Status LibvirtDomain::undefine() {
  // Managed-save images and snapshot metadata would otherwise make undefine refuse.
  const unsigned flags = VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA;
  if (virDomainUndefineFlags(get(), flags) < 0) {
    return lastLibvirtError("cannot undefine domain '" + name_ + "'");
  }
  return okStatus();
}

// ---------------------------------------------------------------------------------------

Result<std::unique_ptr<LibvirtConnection>> LibvirtConnection::open(const std::string& uri) {
  virConnectPtr conn = virConnectOpen(uri.c_str());
  if (!conn) {
    auto err = lastLibvirtError("cannot connect to " + uri);
    err.code = Errc::Unavailable;  // whatever libvirt's code, the backend is unreachable for us
    return err;
  }
  return std::unique_ptr<LibvirtConnection>(new LibvirtConnection(conn, uri));
}

LibvirtConnection::~LibvirtConnection() {
  for (int id : callbackIds_) virConnectDomainEventDeregisterAny(conn_, id);
  virConnectClose(conn_);
}

bool LibvirtConnection::alive() const { return virConnectIsAlive(conn_) == 1; }

Result<LibvirtDomain> LibvirtConnection::lookup(const std::string& name) {
  virDomainPtr d = virDomainLookupByName(conn_, name.c_str());
  if (!d) {
    auto err = lastLibvirtError("domain '" + name + "' not found");
    if (err.code == Errc::NotFound)
      err.message = "domain '" + name + "' not found";
    else
      err.message = "cannot look up domain '" + name + "': " + virGetLastErrorMessage();
    return err;
  }
  return LibvirtDomain(d, name);
}

Status LibvirtConnection::define(const std::string& xml, const std::string& name) {
  virDomainPtr d = virDomainDefineXML(conn_, xml.c_str());
  if (!d) return lastLibvirtError("cannot define domain '" + name + "'");
  virDomainFree(d);
  return okStatus();
}

Result<std::vector<LibvirtDomain>> LibvirtConnection::listAll() {
  virDomainPtr* domains = nullptr;
  const int n = virConnectListAllDomains(conn_, &domains, 0);
  if (n < 0) return lastLibvirtError("cannot list domains on " + uri_);
  std::vector<LibvirtDomain> out;
  out.reserve(n);
  for (int i = 0; i < n; ++i) {
    const char* name = virDomainGetName(domains[i]);
    out.emplace_back(domains[i], name ? name : "");
  }
  std::free(domains);
  return out;
}

Result<virNodeInfo> LibvirtConnection::nodeInfo() {
  virNodeInfo info{};
  if (virNodeGetInfo(conn_, &info) < 0) return lastLibvirtError("cannot read node info from " + uri_);
  return info;
}

Result<std::string> LibvirtConnection::capabilitiesXml() {
  char* caps = virConnectGetCapabilities(conn_);
  if (!caps) return lastLibvirtError("cannot read capabilities from " + uri_);
  std::string out(caps);
  std::free(caps);
  return out;
}

Result<std::string> LibvirtConnection::hypervisorVersion() {
  const char* type = virConnectGetType(conn_);
  unsigned long version = 0;
  if (!type || virConnectGetVersion(conn_, &version) < 0) {
    return lastLibvirtError("cannot read the hypervisor version from " + uri_);
  }
  return std::string(type) + " " + std::to_string(version / 1000000) + "." + std::to_string(version / 1000 % 1000) +
         "." + std::to_string(version % 1000);
}

Status LibvirtConnection::registerLifecycle(LifecycleCallback callback) {
  // libvirt owns the context from here and frees it after deregistration.
  auto* ctx = new LifecycleContext{std::move(callback)};
  const int id = virConnectDomainEventRegisterAny(conn_, nullptr, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                                  VIR_DOMAIN_EVENT_CALLBACK(onLifecycle), ctx, freeLifecycle);
  if (id < 0) {
    // Not freed here: whether libvirt already ran freeLifecycle on this path differs by
    // driver, and a leaked closure beats a double free on a rare error path.
    return lastLibvirtError("cannot subscribe to domain events on " + uri_);
  }
  callbackIds_.push_back(id);
  return okStatus();
}

}  // namespace loom::drivers::kvm
