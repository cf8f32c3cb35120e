#include <gtest/gtest.h>

#include <set>

#include "pool/IdentityAllocator.h"
#include "tests/pool/PoolBuilders.h"

namespace loom::pool {
namespace {
using namespace loom::pool::testing;

IdentityPool smallPool(std::string name = "default", std::uint64_t macs = 4, int uuidBits = 2) {
  IdentityPool p;
  p.name = std::move(name);
  p.macs.push_back(MacRange{0x525400100000ULL, 0x525400100000ULL + macs - 1});
  p.uuids.push_back(UuidRange{0x4c4f4f4d00000000ULL, 0, uuidBits});
  return p;
}

TEST(Identity, HandsOutValuesFromThePoolRanges) {
  IdentityAllocator a({smallPool()});
  auto id = a.assign(server("web-01", "web"), "");
  ASSERT_TRUE(id.ok()) << id.error().message;
  EXPECT_EQ(id->uuid, "4c4f4f4d-0000-0000-0000-000000000000");
  ASSERT_EQ(id->macs.size(), 1u);
  EXPECT_EQ(id->macs[0], "52:54:00:10:00:00");
}

TEST(Identity, KeepsAServersIdentityForLife) {
  IdentityAllocator a({smallPool()});
  auto first = a.assign(server("web-01", "web"), "");
  (void)a.assign(server("web-02", "web"), "");
  auto again = a.assign(server("web-01", "web"), "");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->uuid, first->uuid);
  EXPECT_EQ(again->macs, first->macs);
}

TEST(Identity, GrowsMacsWhenAServerGainsNics) {
  IdentityAllocator a({smallPool()});
  Server s = server("web-01", "web");
  auto first = a.assign(s, "");
  s.nics.push_back(Nic{"back", ""});
  auto grown = a.assign(s, "");
  ASSERT_TRUE(grown.ok());
  ASSERT_EQ(grown->macs.size(), 2u);
  EXPECT_EQ(grown->macs[0], first->macs[0]);
  EXPECT_NE(grown->macs[1], first->macs[0]);
}

TEST(Identity, NeverHandsOutAValueTwiceEvenAfterRelease) {
  IdentityAllocator a({smallPool("default", 8, 3)});
  std::set<std::string> uuids, macs;
  for (int i = 0; i < 4; ++i) {
    auto id = a.assign(server("s" + std::to_string(i), "web"), "");
    ASSERT_TRUE(id.ok());
    EXPECT_TRUE(uuids.insert(id->uuid).second);
    EXPECT_TRUE(macs.insert(id->macs[0]).second);
    a.release("s" + std::to_string(i));
  }
  // Even a server reusing a released name gets fresh values.
  auto reused = a.assign(server("s0", "web"), "");
  ASSERT_TRUE(reused.ok());
  EXPECT_TRUE(uuids.insert(reused->uuid).second);
  EXPECT_TRUE(macs.insert(reused->macs[0]).second);
}

TEST(Identity, RestoredAllocatorRemembersReleasedValues) {
  IdentityAllocator a({smallPool("default", 2, 1)});
  (void)a.assign(server("s0", "web"), "");
  a.release("s0");
  IdentityAllocator b({smallPool("default", 2, 1)});
  ASSERT_TRUE(b.restore(a.records()).ok());
  auto next = b.assign(server("s1", "web"), "");
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(next->uuid, "4c4f4f4d-0000-0000-0000-000000000001");
  EXPECT_EQ(next->macs[0], "52:54:00:10:00:01");
  EXPECT_EQ(b.records().size(), 2u);
}

TEST(Identity, RestoreRebuildsExactly) {
  IdentityAllocator a({smallPool()});
  auto id = a.assign(server("web-01", "web"), "");
  IdentityAllocator b({smallPool()});
  ASSERT_TRUE(b.restore(a.records()).ok());
  auto same = b.assign(server("web-01", "web"), "");
  EXPECT_EQ(same->uuid, id->uuid);
  auto other = b.assign(server("web-02", "web"), "");
  EXPECT_NE(other->uuid, id->uuid);
}

TEST(Identity, RestoreRejectsDuplicateValues) {
  IdentityRecord r{"a", "default", Identity{"4c4f4f4d-0000-0000-0000-000000000000", {"52:54:00:10:00:00"}}};
  IdentityRecord dup = r;
  dup.server = "b";
  IdentityAllocator a({smallPool()});
  const Status s = a.restore({r, dup});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, Errc::Conflict);
}

TEST(Identity, HonoursFixedValuesAndRefusesTakenOnes) {
  IdentityAllocator a({smallPool()});
  Server fixed = server("web-01", "web");
  fixed.uuid = "4C4F4F4D-0000-0000-0000-000000000000";
  fixed.nics[0].mac = "52:54:00:10:00:00";
  auto id = a.assign(fixed, "");
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(id->uuid, "4c4f4f4d-0000-0000-0000-000000000000");
  // The next automatic values skip the fixed ones.
  auto next = a.assign(server("web-02", "web"), "");
  EXPECT_EQ(next->uuid, "4c4f4f4d-0000-0000-0000-000000000001");
  EXPECT_EQ(next->macs[0], "52:54:00:10:00:01");
  Server clash = server("web-03", "web");
  clash.nics[0].mac = "52:54:00:10:00:00";
  auto refused = a.assign(clash, "");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, Errc::Conflict);
  EXPECT_NE(refused.error().message.find("52:54:00:10:00:00"), std::string::npos);
}

TEST(Identity, ReportsAnExhaustedPoolAndChangesNothing) {
  IdentityAllocator a({smallPool("default", 1, 1)});
  ASSERT_TRUE(a.assign(server("a", "web"), "").ok());
  Server two = server("b", "web");
  auto r = a.assign(two, "");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "identity pool 'default': no MAC address left");
  EXPECT_EQ(a.records().size(), 1u);
}

TEST(Identity, ChoosesThePoolByNameOrTheOnlyOne) {
  IdentityAllocator a({smallPool("lab")});
  EXPECT_TRUE(a.assign(server("a", "web"), "").ok());  // the only pool
  auto missing = a.assign(server("b", "web"), "prod");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, Errc::NotFound);
  EXPECT_NE(missing.error().message.find("'prod'"), std::string::npos);
  IdentityAllocator two({smallPool("lab"), smallPool("prod")});
  EXPECT_FALSE(two.assign(server("a", "web"), "").ok());
  EXPECT_TRUE(two.assign(server("a", "web"), "prod").ok());
}

TEST(Identity, FindsTheHeldIdentityWithoutAllocating) {
  IdentityAllocator a({smallPool()});
  EXPECT_FALSE(a.find("web-01").has_value());
  EXPECT_TRUE(a.records().empty());
  auto id = a.assign(server("web-01", "web"), "");
  ASSERT_TRUE(id.ok());
  auto found = a.find("web-01");
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->uuid, id->uuid);
  EXPECT_EQ(found->macs, id->macs);
  // Looking up a server without an identity hands nothing out: the next one gets the
  // next values.
  EXPECT_FALSE(a.find("web-02").has_value());
  auto next = a.assign(server("web-02", "web"), "");
  EXPECT_EQ(next->uuid, "4c4f4f4d-0000-0000-0000-000000000001");
  a.release("web-01");
  EXPECT_FALSE(a.find("web-01").has_value());
}

TEST(Identity, ListsServersByNameThenReleasedOnesInReleaseOrder) {
  IdentityAllocator a({smallPool("default", 8, 3)});
  for (const char* name : {"c", "a", "e", "b", "d"}) ASSERT_TRUE(a.assign(server(name, "web"), "").ok());
  a.release("e");
  a.release("a");
  std::vector<std::string> order;
  for (const auto& r : a.records()) order.push_back(r.server + (r.released ? "-" : ""));
  EXPECT_EQ(order, (std::vector<std::string>{"b", "c", "d", "e-", "a-"}));
}

TEST(Identity, RestoreRoundTripsEveryField) {
  IdentityAllocator a({smallPool("lab", 8, 3), smallPool("prod", 8, 3)});
  Server three = server("db-01", "db");
  three.nics.push_back(Nic{"back", ""});
  three.nics.push_back(Nic{"store", "52:54:00:aa:00:01"});
  ASSERT_TRUE(a.assign(three, "prod").ok());
  ASSERT_TRUE(a.assign(server("web-01", "web"), "lab").ok());
  ASSERT_TRUE(a.assign(server("web-02", "web"), "lab").ok());
  a.release("web-01");
  const auto before = a.records();
  IdentityAllocator b({smallPool("lab", 8, 3), smallPool("prod", 8, 3)});
  ASSERT_TRUE(b.restore(before).ok());
  const auto after = b.records();
  ASSERT_EQ(after.size(), before.size());
  for (std::size_t i = 0; i < before.size(); ++i) {
    EXPECT_EQ(after[i].server, before[i].server);
    EXPECT_EQ(after[i].identityPool, before[i].identityPool);
    EXPECT_EQ(after[i].identity.uuid, before[i].identity.uuid);
    EXPECT_EQ(after[i].identity.macs, before[i].identity.macs);
    EXPECT_EQ(after[i].released, before[i].released);
  }
  EXPECT_EQ(after[0].server, "db-01");
  EXPECT_EQ(after[0].identityPool, "prod");
  EXPECT_EQ(after[0].identity.macs,
            (std::vector<std::string>{"52:54:00:10:00:00", "52:54:00:10:00:01", "52:54:00:aa:00:01"}));
}

TEST(Identity, RestoreKeepsAPoolNameNoLongerDeclared) {
  IdentityRecord r{"a", "retired", Identity{"4c4f4f4d-0000-0000-0000-000000000005", {"52:54:00:10:00:05"}}};
  IdentityAllocator a({smallPool("lab")});
  ASSERT_TRUE(a.restore({r}).ok());
  ASSERT_EQ(a.records().size(), 1u);
  EXPECT_EQ(a.records()[0].identityPool, "retired");
  auto same = a.assign(server("a", "web"), "lab");  // keeps its values and its pool
  ASSERT_TRUE(same.ok()) << same.error().message;
  EXPECT_EQ(same->uuid, r.identity.uuid);
  EXPECT_EQ(a.records()[0].identityPool, "retired");
  // Its values stay taken for the servers of the pools still declared.
  Server clash = server("b", "web");
  clash.nics[0].mac = "52:54:00:10:00:05";
  EXPECT_EQ(a.assign(clash, "lab").error().code, Errc::Conflict);
}

TEST(Identity, RestoreAcceptsEitherCaseAndAnswersInLowerCase) {
  IdentityRecord r{"a", "default", Identity{"4C4F4F4D-0000-0000-0000-00000000000A", {"52:54:00:AB:CD:EF"}}};
  IdentityAllocator a({smallPool()});
  ASSERT_TRUE(a.restore({r}).ok());
  auto id = a.find("a");
  ASSERT_TRUE(id.has_value());
  EXPECT_EQ(id->uuid, "4c4f4f4d-0000-0000-0000-00000000000a");
  EXPECT_EQ(id->macs, std::vector<std::string>{"52:54:00:ab:cd:ef"});
  Server clash = server("b", "web");
  clash.uuid = "4c4f4f4d-0000-0000-0000-00000000000a";
  auto refused = a.assign(clash, "");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().message, "server b: uuid 4c4f4f4d-0000-0000-0000-00000000000a is already used");
}

TEST(Identity, FailedRestoreChangesNothing) {
  IdentityAllocator a({smallPool()});
  ASSERT_TRUE(a.assign(server("web-01", "web"), "").ok());
  IdentityRecord bad{"x", "default", Identity{"not-a-uuid", {}}};
  const Status s = a.restore({bad});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, Errc::Invalid);
  EXPECT_EQ(s.error().message, "identity records: bad UUID 'not-a-uuid' for server x");
  IdentityRecord twice{"y", "default", Identity{"", {"52:54:00:10:00:02", "52:54:00:10:00:02"}}};
  EXPECT_EQ(a.restore({twice}).error().message, "identity records: MAC 52:54:00:10:00:02 appears twice");
  ASSERT_EQ(a.records().size(), 1u);
  EXPECT_EQ(a.records()[0].server, "web-01");
  EXPECT_EQ(a.assign(server("web-02", "web"), "")->uuid, "4c4f4f4d-0000-0000-0000-000000000001");
}

TEST(Identity, FailedAssignLeavesTheCursorsWhereTheyWere) {
  IdentityAllocator a({smallPool()});
  ASSERT_TRUE(a.assign(server("web-01", "web"), "").ok());  // ...:00, uuid ...0000
  Server clash = server("web-02", "web");
  clash.nics.push_back(Nic{"back", "52:54:00:10:00:00"});  // held by web-01
  auto refused = a.assign(clash, "");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().message, "server web-02: MAC 52:54:00:10:00:00 is already used");
  EXPECT_FALSE(a.find("web-02").has_value());
  auto next = a.assign(server("web-03", "web"), "");
  EXPECT_EQ(next->uuid, "4c4f4f4d-0000-0000-0000-000000000001");
  EXPECT_EQ(next->macs[0], "52:54:00:10:00:01");
}

TEST(Identity, ACopyAllocatesOnItsOwn) {
  IdentityAllocator a({smallPool()});
  ASSERT_TRUE(a.assign(server("web-01", "web"), "").ok());
  IdentityAllocator copy = a;
  copy.release("web-01");
  ASSERT_TRUE(copy.assign(server("web-02", "web"), "").ok());
  EXPECT_TRUE(a.find("web-01").has_value());
  EXPECT_FALSE(a.find("web-02").has_value());
  EXPECT_EQ(a.assign(server("web-03", "web"), "")->uuid, "4c4f4f4d-0000-0000-0000-000000000001");
}

TEST(Identity, EnsureSaysWhetherItHandedOutNewValues) {
  IdentityAllocator a({smallPool("default", 8)});
  auto s = server("web-01", "web");
  EXPECT_EQ(*a.ensure(s, ""), true) << "a new server";
  EXPECT_EQ(*a.ensure(s, ""), false) << "nothing new to hand out";
  s.nics.push_back(Nic{"back", ""});
  EXPECT_EQ(*a.ensure(s, ""), true) << "a second NIC, a second MAC";
  EXPECT_EQ(*a.ensure(s, ""), false);
  EXPECT_EQ(a.find("web-01")->macs, (std::vector<std::string>{"52:54:00:10:00:00", "52:54:00:10:00:01"}));
  auto fixed = server("web-02", "web");
  fixed.uuid = a.find("web-01")->uuid;
  EXPECT_FALSE(a.ensure(fixed, "").ok()) << "a UUID another server holds";
  EXPECT_FALSE(a.holds("web-02"));
}

TEST(Identity, TextFormsCarryEveryDigitInLowerCase) {
  EXPECT_EQ(formatMac(0x0123456789abULL), "01:23:45:67:89:ab");
  EXPECT_EQ(formatMac(0xfedcba987654ULL), "fe:dc:ba:98:76:54");
  EXPECT_EQ(formatMac(0), "00:00:00:00:00:00");
  EXPECT_EQ(formatUuid(0x0123456789abcdefULL, 0xfedcba9876543210ULL), "01234567-89ab-cdef-fedc-ba9876543210");
  EXPECT_EQ(formatUuid(0, 1), "00000000-0000-0000-0000-000000000001");
  EXPECT_EQ(*parseMac(formatMac(0x525400a0b0c0ULL)), 0x525400a0b0c0ULL);
}

}  // namespace
}  // namespace loom::pool
