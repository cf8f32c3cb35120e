// The KVM translator against golden files (libvirt's own xml2xml tests are the model).
// Regenerate after an intended change with:
//   LOOM_UPDATE_GOLDEN=1 build/tests/drivers/driver_tests --gtest_filter='DomainXml*'
// and review the diff of tests/drivers/golden/.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <functional>
#include <sstream>

#include "drivers/kvm/DomainXml.h"

#ifdef LOOM_HAVE_KVM
#include "drivers/kvm/LibvirtConnection.h"
#include "drivers/kvm/LibvirtEventLoop.h"
#endif

namespace loom::drivers::kvm {
namespace {

const std::string kGoldenDir = LOOM_GOLDEN_DIR;

DomainSpec base(const std::string& name, int n = 1) {
  DomainSpec s;
  s.name = name;
  s.uuid = "4c4f4f4d-0000-0000-0000-00000000000" + std::to_string(n % 10);
  s.vcpus = 1;
  s.memory = 512;
  return s;
}

struct GoldenCase {
  std::string file;
  DomainSpec spec;
  std::string domainType = "kvm";
};

std::vector<GoldenCase> goldenCases() {
  std::vector<GoldenCase> cases;
  cases.push_back({"minimal", base("minimal")});

  DomainSpec bridged = base("web-01", 2);
  bridged.vcpus = 2;
  bridged.memory = 4096;
  bridged.nics.push_back(NicSpec{"52:54:00:10:00:01", "front", "br-front", 100});
  bridged.nics.push_back(NicSpec{"52:54:00:10:00:02", "back", "br-back", std::nullopt});
  cases.push_back({"bridge_vlan", bridged});

  DomainSpec isolated = base("isolated", 3);
  // An unmapped network: no bridge, so the VLAN has nothing to tag and is dropped.
  isolated.nics.push_back(NicSpec{"52:54:00:10:00:03", "front", "", 100});
  cases.push_back({"isolated_nic", isolated});

  DomainSpec disks = base("db-01", 4);
  disks.disks.push_back(DiskSpec{"/var/lib/loom/images/base.qcow2", "qcow2", false});
  disks.disks.push_back(DiskSpec{"/var/lib/loom/images/data.raw", "raw", true});
  disks.nics.push_back(NicSpec{"52:54:00:10:00:04", "front", "", std::nullopt});
  cases.push_back({"disks", disks});

  DomainSpec kernel = base("pv-01", 5);
  kernel.kernel = "/var/lib/loom/boot/vmlinuz";
  kernel.initrd = "/var/lib/loom/boot/initrd.img";
  kernel.cmdline = "console=ttyS0 root=/dev/vda ro";
  kernel.disks.push_back(DiskSpec{"/var/lib/loom/images/root.qcow2", "qcow2", false});
  cases.push_back({"kernel_boot", kernel});

  cases.push_back({"tcg", base("tcg-01", 6), "qemu"});
  return cases;
}

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(DomainXml, MatchesGoldenFiles) {
  const bool update = std::getenv("LOOM_UPDATE_GOLDEN") != nullptr;
  for (const auto& c : goldenCases()) {
    SCOPED_TRACE(c.file);
    auto xml = domainXml(c.spec, DomainXmlOptions{c.domainType});
    ASSERT_TRUE(xml.ok()) << xml.error().message;
    const std::string path = kGoldenDir + "/" + c.file + ".xml";
    if (update) {
      std::ofstream(path) << *xml;
      continue;
    }
    EXPECT_EQ(*xml, readFile(path)) << "differs from " << path << " (LOOM_UPDATE_GOLDEN=1 rewrites it)";
  }
}

TEST(DomainXml, CarriesTheServersIdentity) {
  DomainSpec s = base("web-01");
  s.nics.push_back(NicSpec{"52:54:00:AB:CD:EF", "front", "", std::nullopt});
  auto xml = domainXml(s, {});
  ASSERT_TRUE(xml.ok());
  EXPECT_NE(xml->find("<uuid>4c4f4f4d-0000-0000-0000-000000000001</uuid>"), std::string::npos);
  EXPECT_EQ(macsFromDomainXml(*xml), std::vector<std::string>{"52:54:00:ab:cd:ef"});
}

TEST(DomainXml, EveryNicHasItsBootRomOff) {
  DomainSpec s = base("web-01");
  s.nics.push_back(NicSpec{"52:54:00:10:00:01", "a", "br0", 5});
  s.nics.push_back(NicSpec{"52:54:00:10:00:02", "b", "", std::nullopt});
  auto xml = domainXml(s, {});
  ASSERT_TRUE(xml.ok());
  size_t roms = 0;
  for (auto p = xml->find("<rom enabled='no'/>"); p != std::string::npos; p = xml->find("<rom enabled='no'/>", p + 1))
    ++roms;
  EXPECT_EQ(roms, 2u);
}

TEST(DomainXml, EscapesNamesAndPaths) {
  DomainSpec s = base("a&b<c>");
  s.disks.push_back(DiskSpec{"/img/it's.qcow2", "qcow2", false});
  auto xml = domainXml(s, {});
  ASSERT_TRUE(xml.ok());
  EXPECT_NE(xml->find("<name>a&amp;b&lt;c&gt;</name>"), std::string::npos);
  EXPECT_NE(xml->find("file='/img/it&apos;s.qcow2'"), std::string::npos);
}

TEST(DomainXml, InvalidSpecsAreRefusedNamingTheDomain) {
  struct Bad {
    std::string why;
    std::function<void(DomainSpec&)> spoil;
  };
  const std::vector<Bad> bad{
      {"MAC",
       [](DomainSpec& s) {
         s.nics.push_back(NicSpec{"01:00:5e:00:00:01", "x", "", std::nullopt});
       }},
      {"uuid", [](DomainSpec& s) { s.uuid = "4C4F4F4D-0000-0000-0000-000000000001"; }},
      {"vcpus", [](DomainSpec& s) { s.vcpus = 0; }},
      {"format",
       [](DomainSpec& s) {
         s.disks.push_back(DiskSpec{"/x.vmdk", "vmdk", false});
       }},
      {"VLAN",
       [](DomainSpec& s) {
         s.nics.push_back(NicSpec{"52:54:00:00:00:01", "x", "br0", 4095});
       }},
      {"kernel", [](DomainSpec& s) { s.initrd = "/boot/initrd"; }},
  };
  for (const auto& b : bad) {
    DomainSpec s = base("web-01");
    b.spoil(s);
    auto xml = domainXml(s, {});
    ASSERT_FALSE(xml.ok()) << b.why;
    EXPECT_EQ(xml.error().code, Errc::Invalid) << b.why;
    EXPECT_EQ(xml.error().message.rfind("domain 'web-01': ", 0), 0u) << xml.error().message;
    EXPECT_NE(xml.error().message.find(b.why), std::string::npos) << xml.error().message;
  }
  auto badType = domainXml(base("web-01"), DomainXmlOptions{"xen"});
  ASSERT_FALSE(badType.ok());
  EXPECT_NE(badType.error().message.find("'xen'"), std::string::npos);
}

TEST(DomainXml, ReadsTheHostCpuModelAndDomainTypesFromCapabilities) {
  const std::string caps =
      "<capabilities><host><uuid>x</uuid><cpu><arch>x86_64</arch><model>Skylake-Client-IBRS</model>"
      "</cpu></host><guest><arch name='x86_64'><domain type='qemu'/><domain type='kvm'/></arch></guest>"
      "</capabilities>";
  EXPECT_EQ(hostCpuModelFromCapabilities(caps), "Skylake-Client-IBRS");
  EXPECT_TRUE(capabilitiesOfferDomainType(caps, "kvm"));
  EXPECT_FALSE(capabilitiesOfferDomainType(caps, "xen"));
  EXPECT_EQ(hostCpuModelFromCapabilities("<capabilities><host><cpu></cpu></host></capabilities>"), "");
}

#ifdef LOOM_HAVE_KVM
// The golden XML is not only stable but valid: libvirt's test driver parses every file.
TEST(DomainXml, GoldenFilesAreAcceptedByLibvirt) {
  LibvirtEventLoop::ensureRegistered();
  auto conn = LibvirtConnection::open("test:///default");
  ASSERT_TRUE(conn.ok()) << conn.error().message;
  for (const auto& c : goldenCases()) {
    auto defined = (*conn)->define(readFile(kGoldenDir + "/" + c.file + ".xml"), c.spec.name);
    EXPECT_TRUE(defined.ok()) << c.file << ": " << defined.error().message;
  }
}
#endif

}  // namespace
}  // namespace loom::drivers::kvm
