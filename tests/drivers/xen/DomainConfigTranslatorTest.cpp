// Golden-file tests of the pure translator: DomainSpec -> libxl_domain_config, rendered
// by libxl's own libxl_domain_config_to_json (what `xl list -l` shows). Run with
// LOOM_UPDATE_GOLDEN=1 to rewrite the files after an intended change, then review the
// diff like code.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "drivers/xen/DomainConfigTranslator.h"

namespace loom::drivers::xen {
namespace {

using nlohmann::json;

DomainSpec guest(const std::string& name, XenGuestType type) {
  DomainSpec spec;
  spec.name = name;
  spec.uuid = "4c4f4f4d-0000-4000-8000-000000000001";
  spec.vcpus = 2;
  spec.memory = 256;
  spec.xenType = type;
  return spec;
}

NicSpec nic(const std::string& mac, const std::string& bridge = "") {
  NicSpec n;
  n.mac = mac;
  n.network = bridge.empty() ? "isolated" : "front";
  n.bridge = bridge;
  return n;
}

DiskSpec disk(const std::string& path, const std::string& format, bool readOnly = false) {
  DiskSpec d;
  d.path = path;
  d.format = format;
  d.readOnly = readOnly;
  return d;
}

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void expectGolden(const DomainSpec& spec, const std::string& golden,
                  const TranslateOptions& options = TranslateOptions{"/var/lib/loom/xen/vif-loom-isolated"}) {
  auto config = DomainConfigTranslator(options).translate(spec);
  ASSERT_TRUE(config.ok()) << config.error().message;
  const std::string actual = config->toJson();
  ASSERT_FALSE(actual.empty()) << "libxl_domain_config_to_json returned nothing";
  const std::string path = std::string(LOOM_XEN_GOLDEN_DIR) + "/" + golden + ".json";
  if (std::getenv("LOOM_UPDATE_GOLDEN")) {
    std::ofstream(path) << actual;
    GTEST_SKIP() << "rewrote " << path;
  }
  const std::string expected = readFile(path);
  ASSERT_FALSE(expected.empty()) << "missing golden file " << path << " (LOOM_UPDATE_GOLDEN=1 writes it)";
  // Compared as JSON values, so libxl's whitespace is not part of the contract.
  EXPECT_EQ(json::parse(expected), json::parse(actual))
      << "translation of '" << spec.name << "' differs from " << path << "\nactual:\n"
      << actual;
}

TEST(DomainConfigTranslator, PvGuestBootsKernelAndInitrdWithIdentity) {
  DomainSpec spec = guest("pv-kernel", XenGuestType::Pv);
  spec.kernel = "/var/lib/loom/boot/vmlinuz";
  spec.initrd = "/var/lib/loom/boot/initrd.gz";
  spec.cmdline = "console=hvc0 quiet";
  spec.nics = {nic("52:54:00:10:00:01")};
  expectGolden(spec, "pv-kernel-initrd");
}

TEST(DomainConfigTranslator, PvGuestWithoutKernelBootsThroughPygrub) {
  DomainSpec spec = guest("pv-disk", XenGuestType::Pv);
  spec.disks = {disk("/var/lib/loom/images/pv.raw", "raw")};
  expectGolden(spec, "pv-pygrub");
}

TEST(DomainConfigTranslator, PvhGuestBootsKernelDirectly) {
  DomainSpec spec = guest("pvh-guest", XenGuestType::Pvh);
  spec.vcpus = 4;
  spec.memory = 1024;
  spec.kernel = "/var/lib/loom/boot/vmlinuz";
  spec.cmdline = "console=hvc0";
  spec.nics = {nic("52:54:00:10:00:02", "xenbr0")};
  expectGolden(spec, "pvh");
}

TEST(DomainConfigTranslator, HvmGuestGetsQdiskDisksInOrderAndSerialConsole) {
  DomainSpec spec = guest("hvm-disks", XenGuestType::Hvm);
  spec.memory = 2048;
  spec.disks = {disk("/var/lib/loom/images/base.qcow2", "qcow2"), disk("/var/lib/loom/images/data.raw", "raw"),
                disk("/var/lib/loom/images/tools.iso", "raw", /*readOnly=*/true)};
  spec.nics = {nic("52:54:00:10:00:03", "br-front")};
  expectGolden(spec, "hvm-disks");
}

TEST(DomainConfigTranslator, MultiNicKeepsMacsOrderAndBridgesAndIsolatesUnbridged) {
  DomainSpec spec = guest("multi-nic", XenGuestType::Pv);
  spec.kernel = "/var/lib/loom/boot/vmlinuz";
  spec.nics = {nic("52:54:00:10:00:0a", "br-front"), nic("52:54:00:10:00:0b", "br-back"), nic("52:54:00:10:00:0c")};
  spec.nics[1].vlan = 200;  // carried by the bridge; nothing on the vif
  expectGolden(spec, "multi-nic-bridge");
}

TEST(DomainConfigTranslator, SameSpecGivesIdenticalJson) {
  DomainSpec spec = guest("repeat", XenGuestType::Pvh);
  spec.kernel = "/k";
  auto a = DomainConfigTranslator().translate(spec);
  auto b = DomainConfigTranslator().translate(spec);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->toJson(), b->toJson());
}

TEST(DomainConfigTranslator, IdentityReachesTheLibxlStruct) {
  DomainSpec spec = guest("identity", XenGuestType::Pv);
  spec.kernel = "/k";
  spec.uuid = "4c4f4f4d-1234-4abc-8def-0123456789ab";
  spec.nics = {nic("52:54:00:AB:cd:01")};
  auto config = DomainConfigTranslator().translate(spec);
  ASSERT_TRUE(config.ok()) << config.error().message;
  const libxl_domain_config& c = *config->get();
  char uuid[LIBXL_UUID_FMTLEN + 1];
  std::snprintf(uuid, sizeof uuid, LIBXL_UUID_FMT, LIBXL_UUID_BYTES(c.c_info.uuid));
  EXPECT_EQ(std::string(uuid), spec.uuid);
  ASSERT_EQ(c.num_nics, 1);
  EXPECT_EQ(formatMac(c.nics[0].mac), "52:54:00:ab:cd:01");
  EXPECT_EQ(c.b_info.max_vcpus, 2);
  EXPECT_TRUE(libxl_bitmap_test(&c.b_info.avail_vcpus, 1));
  EXPECT_EQ(c.b_info.max_memkb, 256u * 1024);
}

TEST(DomainConfigTranslator, MovedConfigKeepsOwnershipOnce) {
  DomainSpec spec = guest("moved", XenGuestType::Pv);
  spec.kernel = "/k";
  auto config = DomainConfigTranslator().translate(spec);
  ASSERT_TRUE(config.ok());
  DomainConfig moved = std::move(config.value());
  EXPECT_STREQ(moved.get()->c_info.name, "moved");
  EXPECT_EQ(config->get()->c_info.name, nullptr);  // the source owns nothing any more
}

struct Refusal {
  const char* label;
  void (*mutate)(DomainSpec&);
  const char* messagePart;
};

class DomainConfigTranslatorRefuses : public ::testing::TestWithParam<Refusal> {};

TEST_P(DomainConfigTranslatorRefuses, WithAnInvalidErrorNamingTheDomain) {
  DomainSpec spec = guest("refused", XenGuestType::Pv);
  spec.kernel = "/k";
  GetParam().mutate(spec);
  auto config = DomainConfigTranslator().translate(spec);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.error().code, Errc::Invalid);
  EXPECT_NE(config.error().message.find(GetParam().messagePart), std::string::npos) << config.error().message;
}

INSTANTIATE_TEST_SUITE_P(
    Specs, DomainConfigTranslatorRefuses,
    ::testing::Values(
        Refusal{"PvhWithoutKernel",
                [](DomainSpec& s) {
                  s.xenType = XenGuestType::Pvh;
                  s.kernel.clear();
                },
                "PVH guest needs a kernel"},
        Refusal{"PvWithNothingToBoot", [](DomainSpec& s) { s.kernel.clear(); }, "needs a kernel"},
        Refusal{"BadMac", [](DomainSpec& s) { s.nics = {nic("52:54:00:zz:00:01")}; }, "52:54:00:zz:00:01"},
        Refusal{"MulticastMac", [](DomainSpec& s) { s.nics = {nic("01:00:5e:00:00:01")}; }, "01:00:5e:00:00:01"},
        Refusal{"BadUuid", [](DomainSpec& s) { s.uuid = "not-a-uuid"; }, "not-a-uuid"},
        Refusal{"SpaceInName", [](DomainSpec& s) { s.name = "web 01"; }, "web 01"},
        Refusal{"ZeroVcpus", [](DomainSpec& s) { s.vcpus = 0; }, "vcpus"},
        Refusal{"UnknownDiskFormat", [](DomainSpec& s) { s.disks = {disk("/d.vmdk", "vmdk")}; }, "vmdk"},
        Refusal{"TooManyDisks",
                [](DomainSpec& s) {
                  for (int i = 0; i < 27; ++i) s.disks.push_back(disk("/d" + std::to_string(i), "raw"));
                },
                "xvda..xvdz"}),
    [](const ::testing::TestParamInfo<Refusal>& info) { return std::string(info.param.label); });

TEST(MacAddress, ParsesBothCasesAndFormatsLowerCase) {
  auto mac = parseMac("52:54:00:AB:cd:EF");
  ASSERT_TRUE(mac.ok());
  EXPECT_EQ(formatMac(mac->data()), "52:54:00:ab:cd:ef");
  EXPECT_FALSE(parseMac("52:54:00:ab:cd").ok());
  EXPECT_FALSE(parseMac("52-54-00-ab-cd-ef").ok());
}

}  // namespace
}  // namespace loom::drivers::xen
