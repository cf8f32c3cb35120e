// The KVM driver's adapter: implements Driver on libvirt. It connects lazily (so the
// factory never fails for a host without libvirtd: probe() then says why), reconnects
// when the daemon dropped the connection, translates specs with DomainXml and turns
// libvirt's answers into the idempotent contract of Driver.h.
//
// Options: uri (default qemu:///system; test:///default for libvirt's in-memory driver),
// params domain_type=kvm|qemu|auto (default auto: kvm when the host's libvirt offers it,
// i.e. /dev/kvm works, else qemu/TCG).
#pragma once

#include <memory>
#include <string>

#include "drivers/Driver.h"
#include "drivers/DriverRegistry.h"
#include "drivers/kvm/LibvirtConnection.h"

namespace loom::drivers::kvm {

struct KvmDriverConfig {
  std::string uri = "qemu:///system";
  std::string domainType = "auto";  // kvm | qemu | auto
  int stopPollMs = 50;              // how often stop() looks whether the guest is down
};

Result<KvmDriverConfig> parseKvmDriverConfig(const DriverOptions& options);

class KvmDriver final : public Driver {
 public:
  explicit KvmDriver(KvmDriverConfig config);
  ~KvmDriver() override;

  std::string name() const override { return "kvm"; }
  Capabilities capabilities() const override;
  ProbeResult probe() override;
  Result<NodeInfo> nodeInfo() override;
  Status define(const DomainSpec& spec) override;
  Status start(const std::string& name) override;
  Status stop(const std::string& name, int timeoutMs) override;
  Status destroy(const std::string& name) override;
  Status undefine(const std::string& name) override;
  Result<std::vector<DomainInfo>> list() override;
  Result<DomainInfo> info(const std::string& name) override;
  Status subscribe(EventCallback callback) override;

  // "kvm" or "qemu": the configured type, or for auto what this host offers.
  Result<std::string> domainType();
  const KvmDriverConfig& config() const { return config_; }

 private:
  // The open connection, reopened when the daemon dropped it. `context` prefixes the
  // error ("cannot start domain 'x'") so a connection failure still names the domain.
  Result<LibvirtConnection*> connection(const std::string& context);
  Result<DomainInfo> infoOf(LibvirtDomain& domain);

  KvmDriverConfig config_;
  std::shared_ptr<void> eventLoop_;  // keeps the process's libvirt event loop running
  std::unique_ptr<LibvirtConnection> conn_;
  std::string resolvedType_;
  std::vector<EventCallback> subscribers_;  // re-registered after a reconnect
};

// The registry's factory. Fails only on malformed params; never connects.
Result<std::unique_ptr<Driver>> makeKvmDriver(const DriverOptions& options);

}  // namespace loom::drivers::kvm
