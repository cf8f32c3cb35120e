// The drivers' one JSON form of a DomainSpec (Xen definition store, test driver state).
#include <gtest/gtest.h>

#include "drivers/DomainSpecJson.h"

namespace loom::drivers {
namespace {

DomainSpec sample() {
  DomainSpec s;
  s.name = "web-01";
  s.uuid = "4c4f4f4d-0000-0000-0000-000000000001";
  s.vcpus = 2;
  s.memory = 1024;
  s.nics.push_back({"52:54:00:10:00:01", "front", "br-front", 100});
  s.nics.push_back({"52:54:00:10:00:02", "back", "", std::nullopt});
  s.disks.push_back({"/img/web.qcow2", "qcow2", true});
  s.kernel = "/boot/vmlinuz";
  s.initrd = "/boot/initrd";
  s.cmdline = "console=hvc0";
  s.xenType = XenGuestType::Pvh;
  return s;
}

void expectSame(const DomainSpec& a, const DomainSpec& b) {
  EXPECT_EQ(toJson(a), toJson(b));
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.xenType, b.xenType);
  ASSERT_EQ(a.nics.size(), b.nics.size());
  for (std::size_t i = 0; i < a.nics.size(); ++i) {
    EXPECT_EQ(a.nics[i].bridge, b.nics[i].bridge);
    EXPECT_EQ(a.nics[i].vlan, b.nics[i].vlan);
  }
}

TEST(DomainSpecJson, RoundTripsEveryField) {
  auto back = domainSpecFromJson(toJson(sample()));
  ASSERT_TRUE(back.ok()) << back.error().message;
  expectSame(*back, sample());
  EXPECT_TRUE(back->disks.at(0).readOnly);
  EXPECT_EQ(toJson(sample())["xen_type"], "pvh");
}

// The test driver's state files held xen_type as the number of the drivers' old enum.
TEST(DomainSpecJson, ReadsTheNumberedGuestTypeOfOlderStateFiles) {
  for (auto [number, type] : {std::pair{0, XenGuestType::Hvm}, {1, XenGuestType::Pv}, {2, XenGuestType::Pvh}}) {
    auto j = toJson(sample());
    j["xen_type"] = number;
    auto back = domainSpecFromJson(j);
    ASSERT_TRUE(back.ok()) << back.error().message;
    EXPECT_EQ(back->xenType, type) << number;
  }
}

TEST(DomainSpecJson, RefusesWhatItCannotReadNamingTheField) {
  auto j = toJson(sample());
  j["xen_type"] = "hvm2";
  auto bad = domainSpecFromJson(j);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, Errc::Invalid);
  EXPECT_NE(bad.error().message.find("'hvm2'"), std::string::npos) << bad.error().message;
  j["xen_type"] = 3;
  EXPECT_FALSE(domainSpecFromJson(j).ok());
  j = toJson(sample());
  j.erase("uuid");
  bad = domainSpecFromJson(j);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("uuid"), std::string::npos) << bad.error().message;
  j = toJson(sample());
  j["nics"][0]["vlan"] = "100";
  EXPECT_FALSE(domainSpecFromJson(j).ok());
  EXPECT_FALSE(domainSpecFromJson(nlohmann::json::array()).ok());
}

}  // namespace
}  // namespace loom::drivers
