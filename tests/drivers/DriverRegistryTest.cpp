#include <gtest/gtest.h>

#include <algorithm>

#include "drivers/DriverRegistry.h"

namespace loom::drivers {
namespace {

TEST(DriverRegistry, UnknownDriverListsTheKnownOnes) {
  DriverRegistry registry;
  registerBuiltinDrivers(registry);
  auto made = registry.create("xen2", {});
  ASSERT_FALSE(made.ok());
  EXPECT_EQ(made.error().code, Errc::NotFound);
  std::string known;
  for (const auto& n : registry.names()) known += (known.empty() ? "" : ", ") + n;
  EXPECT_EQ(made.error().message, "unknown driver 'xen2' (known: " + known + ")");
}

TEST(DriverRegistry, BuiltinsIncludeEveryDriverOfThisBuild) {
  DriverRegistry registry;
  registerBuiltinDrivers(registry);
  const auto names = registry.names();
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
  EXPECT_NE(std::find(names.begin(), names.end(), "test"), names.end());
#ifdef LOOM_HAVE_KVM
  EXPECT_NE(std::find(names.begin(), names.end(), "kvm"), names.end());
#endif
}

TEST(DriverRegistry, CreatesTheTestDriverWithItsParams) {
  DriverRegistry registry;
  registerBuiltinDrivers(registry);
  auto made = registry.create("test", {"", {{"cores", "12"}}});
  ASSERT_TRUE(made.ok()) << made.error().message;
  EXPECT_EQ((*made)->name(), "test");
  EXPECT_EQ((*made)->nodeInfo()->cores, 12u);
}

TEST(DriverRegistry, FactoryErrorsPassThrough) {
  DriverRegistry registry;
  registerBuiltinDrivers(registry);
  auto made = registry.create("test", {"", {{"memory_mib", "-1"}}});
  ASSERT_FALSE(made.ok());
  EXPECT_NE(made.error().message.find("memory_mib"), std::string::npos);
}

TEST(DriverRegistry, ProbeAllAnswersForEveryDriver) {
  DriverRegistry registry;
  registerBuiltinDrivers(registry);
  // test:///default lets the kvm driver apply without a daemon.
  const auto probes = probeAll(registry, {"test:///default", {}});
  ASSERT_EQ(probes.size(), registry.names().size());
  for (const auto& [name, probe] : probes) {
    EXPECT_FALSE(probe.reason.empty()) << name;
    if (name == "test" || name == "kvm") {
      EXPECT_TRUE(probe.applies) << name << ": " << probe.reason;
    }
  }
}

#ifdef LOOM_HAVE_KVM
TEST(DriverRegistry, KvmProbeDeclinesWithTheReasonWhenItCannotConnect) {
  DriverRegistry registry;
  registerBuiltinDrivers(registry);
  auto made = registry.create("kvm", {"qemu+unix:///system?socket=/nonexistent/libvirt-sock", {}});
  ASSERT_TRUE(made.ok());
  const ProbeResult probe = (*made)->probe();
  EXPECT_FALSE(probe.applies);
  EXPECT_EQ(probe.reason.rfind("cannot connect to qemu+unix:///system", 0), 0u) << probe.reason;
  // Every operation then fails with Unavailable, naming the domain, and nothing crashes.
  auto started = (*made)->start("web-01");
  ASSERT_FALSE(started.ok());
  EXPECT_EQ(started.error().code, Errc::Unavailable);
  EXPECT_NE(started.error().message.find("'web-01'"), std::string::npos) << started.error().message;
}

TEST(DriverRegistry, KvmRejectsAnUnknownDomainType) {
  DriverRegistry registry;
  registerBuiltinDrivers(registry);
  auto made = registry.create("kvm", {"", {{"domain_type", "xen"}}});
  ASSERT_FALSE(made.ok());
  EXPECT_NE(made.error().message.find("domain_type='xen'"), std::string::npos);
}
#endif

}  // namespace
}  // namespace loom::drivers
