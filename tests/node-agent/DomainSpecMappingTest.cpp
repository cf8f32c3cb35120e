// ServerSpec (the fabric's) -> DomainSpec (the driver's): the server's identity arrives
// unchanged, and the blade adds what only it knows.
#include <gtest/gtest.h>

#include "drivers/SpecValidation.h"
#include "node-agent/DomainSpecMapping.h"

namespace loom::agent {
namespace {

TEST(DomainSpecMapping, CarriesEveryFieldAndTheIdentityUnchanged) {
  protocol::ServerSpec s;
  s.name = "web-01";
  s.uuid = "4c4f4f4d-0000-0000-0000-000000000001";
  s.vcpus = 4;
  s.memoryMib = 2048;
  s.nics = {{"52:54:00:10:00:01", "front", 100}, {"52:54:00:10:00:02", "back", std::nullopt}};
  s.disks = {{"/img/web.qcow2", "qcow2", true}};
  s.kernel = "/boot/vmlinuz";
  s.initrd = "/boot/initrd";
  s.cmdline = "console=hvc0";
  s.xenType = pool::XenGuestType::Pv;
  const drivers::DomainSpec d = toDomainSpec(s);
  EXPECT_EQ(d.name, s.name);
  EXPECT_EQ(d.uuid, s.uuid);
  EXPECT_EQ(d.vcpus, 4u);
  EXPECT_EQ(d.memory, 2048u);
  ASSERT_EQ(d.nics.size(), 2u);
  EXPECT_EQ(d.nics[0].mac, "52:54:00:10:00:01");
  EXPECT_EQ(d.nics[0].network, "front");
  EXPECT_EQ(d.nics[0].vlan, 100);
  EXPECT_EQ(d.nics[1].vlan, std::nullopt);
  EXPECT_EQ(d.nics[0].bridge, "") << "no network map yet: an isolated NIC";
  ASSERT_EQ(d.disks.size(), 1u);
  EXPECT_EQ(d.disks[0].path, "/img/web.qcow2");
  EXPECT_EQ(d.disks[0].format, "qcow2");
  EXPECT_TRUE(d.disks[0].readOnly);
  EXPECT_EQ(d.kernel, s.kernel);
  EXPECT_EQ(d.initrd, s.initrd);
  EXPECT_EQ(d.cmdline, s.cmdline);
  EXPECT_EQ(d.xenType, pool::XenGuestType::Pv);
  EXPECT_TRUE(drivers::validateDomainSpec(d).ok());
}

}  // namespace
}  // namespace loom::agent
