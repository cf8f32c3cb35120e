// pool::checkMove: an operator's move is judged by the placement filters, with the
// server's own footprint set aside.
#include <gtest/gtest.h>

#include "tests/pool/PoolBuilders.h"

namespace loom::pool {
namespace {
using namespace loom::pool::testing;

struct MoveFixture : Fixture {
  MoveFixture() {
    observed.blades = {blade("c1-s1", 4, 16_GiB), blade("c1-s2", 4, 16_GiB), blade("c1-s3", 4, 16_GiB),
                       blade("c2-s1", 4, 16_GiB)};
    desired.pools = {pool("web", {"c1-s1", "c1-s2", "c1-s3"}), pool("db", {"c2-s1"})};
    current.bindings = {{"a", "c1-s1"}, {"b", "c1-s2"}, {"big", "c1-s3"}};
    desired.servers = {antiAffinity(server("a", "web", 1, 1_GiB), "g"), antiAffinity(server("b", "web", 1, 1_GiB), "g"),
                       server("big", "web", 3, 1_GiB)};
  }
  std::optional<std::string> move(const std::string& s, const std::string& b) const {
    return checkMove(desired, observed, current, s, b);
  }
};

TEST(Move, AllowsABladeOfThePoolWithRoom) {
  MoveFixture f;
  EXPECT_EQ(f.move("big", "c1-s1"), std::nullopt);
}

TEST(Move, RefusesAntiAffinityCoresAndOtherPoolsWithTheReason) {
  MoveFixture f;
  EXPECT_EQ(f.move("a", "c1-s2"), "blade 'c1-s2' already holds a server of anti-affinity group 'g'");
  f.desired.servers[2].vcpus = 4;
  EXPECT_EQ(f.move("big", "c1-s2"), "blade 'c1-s2' has 3 free cores, server 'big' needs 4");
  f.desired.servers[2].vcpus = 1;
  f.desired.servers[2].memory = 16_GiB;
  EXPECT_EQ(f.move("big", "c1-s2"), "blade 'c1-s2' has 15GiB free memory, server 'big' needs 16GiB")
      << "sizes as people write them";
  EXPECT_EQ(f.move("a", "c2-s1"), "blade 'c2-s1' is in pool 'db', not in pool 'web' of server 'a'");
  EXPECT_EQ(f.move("a", "nope"), "blade 'nope' is not in the inventory");
}

TEST(Move, RefusesABladeThatTakesNoServers) {
  MoveFixture f;
  f.observed.blades[2].state = BladeState::Maintenance;
  f.current.bindings.erase("big");
  EXPECT_EQ(f.move("a", "c1-s3"), "blade 'c1-s3' is maintenance and takes no servers");
}

TEST(Move, ABladeWithRoomOutsideTheGroupIsFine) {
  MoveFixture f;
  // a on c1-s1 uses 1 core: b fits beside it once they share no group.
  f.desired.servers[1].antiAffinity.clear();
  EXPECT_EQ(f.move("b", "c1-s1"), std::nullopt);
}

}  // namespace
}  // namespace loom::pool
