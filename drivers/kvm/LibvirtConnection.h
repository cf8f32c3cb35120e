// The KVM driver's I/O layer: a thin RAII wrapper over the libvirt C API. It owns
// virConnectPtr/virDomainPtr lifetimes and turns libvirt failures into Loom errors whose
// message quotes the domain ("cannot start domain 'web-01': <libvirt's own message>").
// It takes no decisions: idempotency and state mapping live in KvmDriver.
#pragma once

#include <libvirt/libvirt.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "loom/Result.h"

namespace loom::drivers::kvm {

struct DomainFree {
  void operator()(virDomainPtr d) const { virDomainFree(d); }
};

// Builds an Error from libvirt's last error on this thread: the code mapped to an Errc,
// the message "<what>: <virGetLastErrorMessage()>".
Error lastLibvirtError(const std::string& what);

class LibvirtDomain {
 public:
  LibvirtDomain(virDomainPtr domain, std::string name) : domain_(domain), name_(std::move(name)) {}

  const std::string& name() const { return name_; }
  virDomainPtr get() const { return domain_.get(); }

  Result<int> state(int* reason = nullptr) const;  // VIR_DOMAIN_RUNNING, ...
  Result<bool> isActive() const;
  Result<bool> isPersistent() const;
  Result<virDomainInfo> info() const;
  Result<std::string> uuid() const;
  Result<std::string> xml() const;
  Status create();    // virDomainCreate
  Status shutdown();  // virDomainShutdown (ACPI request)
  Status destroy();   // virDomainDestroy
  Status undefine();  // virDomainUndefineFlags (+managed save, snapshot metadata)

 private:
  std::unique_ptr<virDomain, DomainFree> domain_;
  std::string name_;
};

class LibvirtConnection {
 public:
  using LifecycleCallback =
      std::function<void(const std::string& name, const std::string& uuid, int event, int detail)>;

  // Opens `uri` read-write; Unavailable "cannot connect to <uri>: <reason>" on failure.
  static Result<std::unique_ptr<LibvirtConnection>> open(const std::string& uri);
  ~LibvirtConnection();  // deregisters callbacks, then closes
  LibvirtConnection(const LibvirtConnection&) = delete;
  LibvirtConnection& operator=(const LibvirtConnection&) = delete;

  const std::string& uri() const { return uri_; }
  virConnectPtr get() const { return conn_; }
  bool alive() const;  // false once the daemon dropped the connection

  // NotFound "domain '<name>' not found" when absent.
  Result<LibvirtDomain> lookup(const std::string& name);
  // Defines (or redefines) from XML; errors quote `name`.
  Status define(const std::string& xml, const std::string& name);
  Result<std::vector<LibvirtDomain>> listAll();

  Result<virNodeInfo> nodeInfo();
  Result<std::string> capabilitiesXml();
  Result<std::string> hypervisorVersion();  // "QEMU 7.2.0"

  // Lifecycle events (VIR_DOMAIN_EVENT_ID_LIFECYCLE), delivered on the event-loop thread.
  Status registerLifecycle(LifecycleCallback callback);

 private:
  LibvirtConnection(virConnectPtr conn, std::string uri) : conn_(conn), uri_(std::move(uri)) {}

  virConnectPtr conn_;
  std::string uri_;
  std::vector<int> callbackIds_;
};

}  // namespace loom::drivers::kvm
