// On a host without Xen (no privcmd) the driver is still created, declines in probe()
// with one clear reason, and every operation returns Unavailable with that reason.
#include <gtest/gtest.h>
#include <unistd.h>

#include "drivers/xen/LibxlContext.h"
#include "drivers/xen/XenDriver.h"

namespace loom::drivers::xen {
namespace {

bool hostHasPrivcmd() { return ::access("/dev/xen/privcmd", F_OK) == 0 || ::access("/proc/xen/privcmd", F_OK) == 0; }

std::unique_ptr<Driver> makeDriver() {
  DriverOptions options;
  options.params["state_dir"] = "/tmp/loom-xen-decline-test-never-written";
  auto driver = makeXenDriver(options);
  EXPECT_TRUE(driver.ok());
  return driver.ok() ? std::move(driver.value()) : nullptr;
}

void expectUnavailable(const Status& status, const char* op) {
  ASSERT_FALSE(status.ok()) << op << " succeeded without Xen";
  EXPECT_EQ(status.error().code, Errc::Unavailable) << op;
  EXPECT_EQ(status.error().message, kNoXenMessage) << op;
}

template <class T>
void expectUnavailable(const Result<T>& result, const char* op) {
  ASSERT_FALSE(result.ok()) << op << " succeeded without Xen";
  EXPECT_EQ(result.error().code, Errc::Unavailable) << op;
  EXPECT_EQ(result.error().message, kNoXenMessage) << op;
}

class XenDriverWithoutXen : public ::testing::Test {
 protected:
  void SetUp() override {
    if (hostHasPrivcmd()) GTEST_SKIP() << "this host runs Xen (privcmd present): the decline path cannot be seen here";
    driver_ = makeDriver();
    ASSERT_NE(driver_, nullptr);
  }
  std::unique_ptr<Driver> driver_;
};

TEST_F(XenDriverWithoutXen, ProbeDeclinesWithTheReason) {
  ProbeResult probe = driver_->probe();
  EXPECT_FALSE(probe.applies);
  EXPECT_EQ(probe.reason, "no Xen hypervisor on this host (cannot open privcmd)");
  // Asking twice gives the same answer (the driver retries, it does not cache failure).
  EXPECT_EQ(driver_->probe().reason, probe.reason);
}

TEST_F(XenDriverWithoutXen, EveryOperationIsUnavailableWithTheSameReason) {
  DomainSpec spec;
  spec.name = "web-01";
  spec.uuid = "4c4f4f4d-0000-4000-8000-000000000001";
  spec.kernel = "/k";
  spec.xenType = XenGuestType::Pv;
  expectUnavailable(driver_->nodeInfo(), "nodeInfo");
  expectUnavailable(driver_->define(spec), "define");
  expectUnavailable(driver_->start("web-01"), "start");
  expectUnavailable(driver_->stop("web-01", 100), "stop");
  expectUnavailable(driver_->destroy("web-01"), "destroy");
  expectUnavailable(driver_->undefine("web-01"), "undefine");
  expectUnavailable(driver_->list(), "list");
  expectUnavailable(driver_->info("web-01"), "info");
  expectUnavailable(driver_->subscribe([](const DomainEvent&) {}), "subscribe");
  // Nothing was written on the way.
  EXPECT_NE(::access("/tmp/loom-xen-decline-test-never-written", F_OK), 0);
}

TEST_F(XenDriverWithoutXen, EvenInvalidInputGetsTheHostAnswerFirst) {
  DomainSpec bad;  // no name, no uuid: the host, not the spec, is the problem here
  expectUnavailable(driver_->define(bad), "define");
}

TEST(XenDriver, AdvertisesWhatItOffers) {
  auto driver = makeDriver();
  ASSERT_NE(driver, nullptr);
  EXPECT_EQ(driver->name(), "xen");
  Capabilities caps = driver->capabilities();
  EXPECT_TRUE(caps.directKernelBoot);
  EXPECT_FALSE(caps.persistentDefinitions);
  EXPECT_FALSE(caps.events);
  EXPECT_FALSE(caps.liveMigration);
}

TEST(XenDriverFactory, RefusesBadParametersNamingThem) {
  DriverOptions relative;
  relative.params["state_dir"] = "var/lib/loom";
  auto a = makeXenDriver(relative);
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.error().code, Errc::Invalid);
  EXPECT_NE(a.error().message.find("'var/lib/loom'"), std::string::npos);

  DriverOptions timeout;
  timeout.params["destroy_timeout_ms"] = "soon";
  auto b = makeXenDriver(timeout);
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.error().message.find("'soon'"), std::string::npos);
}

}  // namespace
}  // namespace loom::drivers::xen
