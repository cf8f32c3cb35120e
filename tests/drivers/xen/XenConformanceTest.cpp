// The shared driver conformance suite (tests/drivers/ConformanceSuite.h) on the Xen
// driver. On a host without Xen every case skips with the probe's reason; inside the
// real-Xen harness's dom0 it runs against the real hypervisor.
//
// The suite's specs carry no boot section and default to HVM, which on Xen needs qemu's
// device model in dom0 (not in the harness image) and nested HVM under TCG; and they are
// 64 MiB, too small to even load Debian's kernel as a PV guest. So the Xen target boots
// them as PV guests from LOOM_XEN_TINY_KERNEL (the harness uses PV grub, which sits at
// its prompt): the driver under test is unchanged, only the spec it is handed gains a
// boot section.
#include <cstdlib>

#include "drivers/xen/XenDriver.h"
#include "tests/drivers/ConformanceSuite.h"

namespace loom::drivers::conformance {
namespace {

class PvBootDriver final : public Driver {
 public:
  explicit PvBootDriver(std::unique_ptr<Driver> inner) : inner_(std::move(inner)) {}

  std::string name() const override { return inner_->name(); }
  Capabilities capabilities() const override { return inner_->capabilities(); }
  ProbeResult probe() override { return inner_->probe(); }
  Result<NodeInfo> nodeInfo() override { return inner_->nodeInfo(); }
  Status define(const DomainSpec& spec) override {
    DomainSpec booted = spec;
    const char* kernel = std::getenv("LOOM_XEN_TINY_KERNEL");
    if (booted.kernel.empty() && kernel && *kernel) {
      booted.xenType = XenGuestType::Pv;
      booted.kernel = kernel;
    }
    return inner_->define(booted);
  }
  Status start(const std::string& n) override { return inner_->start(n); }
  Status stop(const std::string& n, int timeoutMs) override { return inner_->stop(n, timeoutMs); }
  Status destroy(const std::string& n) override { return inner_->destroy(n); }
  Status undefine(const std::string& n) override { return inner_->undefine(n); }
  Result<std::vector<DomainInfo>> list() override { return inner_->list(); }
  Result<DomainInfo> info(const std::string& n) override { return inner_->info(n); }
  Status subscribe(EventCallback cb) override { return inner_->subscribe(std::move(cb)); }

 private:
  std::unique_ptr<Driver> inner_;
};

Result<std::unique_ptr<Driver>> makeXenTarget() {
  DriverOptions options;
  options.params["state_dir"] = "/tmp/loom-xen-conformance";
  auto driver = xen::makeXenDriver(options);
  if (!driver) return driver.error();
  return std::unique_ptr<Driver>(new PvBootDriver(std::move(driver.value())));
}

}  // namespace

INSTANTIATE_TEST_SUITE_P(Xen, DriverConformance,
                         ::testing::Values(ConformanceTarget{"xen", makeXenTarget, /*stopTimeoutMs=*/3000}),
                         targetName);

}  // namespace loom::drivers::conformance
