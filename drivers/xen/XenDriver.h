// The Xen driver: Loom's Driver interface over libxl (Xen 4.17). See README.md for the
// picture. The registry creates it through makeXenDriver; nothing else here is meant for
// other components.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "drivers/Driver.h"
#include "drivers/DriverRegistry.h"

namespace loom::drivers::xen {

class LibxlContext;
class DomainStore;
struct LiveDomain;

// DriverOptions.params understood:
//   state_dir            Loom's own domain definitions (default /var/lib/loom/xen)
//   isolated_vif_script  hotplug script for NICs without a bridge (default: written
//                        by the driver to <state_dir>/vif-loom-isolated)
//   destroy_timeout_ms   how long destroy waits for a dying domain to vanish (10000)
// Never fails on a host without Xen: the driver is created and declines in probe().
Result<std::unique_ptr<Driver>> makeXenDriver(const DriverOptions& options);

class XenDriver final : public Driver {
 public:
  struct Settings {
    std::string stateDir = "/var/lib/loom/xen";
    std::string isolatedVifScript;  // empty: <stateDir>/vif-loom-isolated
    int destroyTimeoutMs = 10000;
  };

  explicit XenDriver(Settings settings);
  ~XenDriver() override;

  std::string name() const override { return "xen"; }
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

 private:
  // The libxl context, opened on first use and kept; until it opens, every call
  // retries (the toolstack may come up after the agent) and fails Unavailable.
  Result<LibxlContext*> connect();
  // The live domain carrying `name`, if any (dying ones included).
  Result<std::optional<LiveDomain>> findLive(const std::string& name);
  Status destroyAndWait(const LiveDomain& domain);
  Status waitGone(const LiveDomain& domain, int timeoutMs);
  Result<std::string> ensureIsolatedVifScript();
  Result<DomainInfo> describe(const LiveDomain& domain);

  Settings settings_;
  std::unique_ptr<DomainStore> store_;
  std::unique_ptr<LibxlContext> ctx_;
};

}  // namespace loom::drivers::xen
