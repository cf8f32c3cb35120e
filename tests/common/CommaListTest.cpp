// splitCommaList: what loomctl's and loom-agent's list options make of what an operator
// types (common/loom/CommaList.h).
#include <gtest/gtest.h>

#include "loom/CommaList.h"

namespace loom {
namespace {

using List = std::vector<std::string>;

TEST(CommaList, SplitsAtEveryCommaInOrder) {
  EXPECT_EQ(splitCommaList("tcp://a:7700,tcp://b:7700,tcp://c:7700"),
            (List{"tcp://a:7700", "tcp://b:7700", "tcp://c:7700"}));
  EXPECT_EQ(splitCommaList("one"), (List{"one"}));
}

TEST(CommaList, DropsEmptyItems) {
  EXPECT_EQ(splitCommaList(""), List{});
  EXPECT_EQ(splitCommaList(","), List{});
  EXPECT_EQ(splitCommaList(",,,"), List{});
  EXPECT_EQ(splitCommaList("a,,b"), (List{"a", "b"}));
  EXPECT_EQ(splitCommaList(",a"), (List{"a"}));
  EXPECT_EQ(splitCommaList("a,b,"), (List{"a", "b"}));
}

TEST(CommaList, KeepsSpacesForTheCallerToJudge) {
  // Not trimmed: an item is taken as written, and a caller that checks it quotes it whole.
  EXPECT_EQ(splitCommaList("kvm, xen"), (List{"kvm", " xen"}));
  EXPECT_EQ(splitCommaList(" "), (List{" "}));
  EXPECT_EQ(splitCommaList("a , b"), (List{"a ", " b"}));
}

TEST(CommaList, KeepsEverythingButTheComma) {
  EXPECT_EQ(splitCommaList("pool=web,state=active"), (List{"pool=web", "state=active"}));
  EXPECT_EQ(splitCommaList("[::1]:2379,x"), (List{"[::1]:2379", "x"}));
}

}  // namespace
}  // namespace loom
