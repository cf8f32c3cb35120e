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

}  // namespace
}  // namespace loom::pool
