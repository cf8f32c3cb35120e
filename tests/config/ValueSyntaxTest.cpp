#include <gtest/gtest.h>

#include <optional>
#include <random>

#include "config/Spelling.h"
#include "config/ValueSyntax.h"

namespace loom::config {
namespace {

TEST(ValueSyntax, ParsesSizes) {
  EXPECT_EQ(*parseSize("1"), 1u);
  EXPECT_EQ(*parseSize("512MiB"), 512u);
  EXPECT_EQ(*parseSize("4GiB"), 4096u);
  EXPECT_EQ(*parseSize("4 gib"), 4096u);
  EXPECT_EQ(*parseSize("1TiB"), 1048576u);
  EXPECT_EQ(*parseSize("1.25GiB"), 1280u);
  EXPECT_EQ(*parseSize("0"), 0u);
}

TEST(ValueSyntax, RefusesSizesThatAreNotWholeMiB) {
  EXPECT_FALSE(parseSize("").ok());
  EXPECT_FALSE(parseSize("-4GiB").ok());
  EXPECT_FALSE(parseSize("4GB").ok());
  EXPECT_NE(parseSize("4GB").error().message.find("did you mean '4GiB'?"), std::string::npos);
  EXPECT_FALSE(parseSize("1.5").ok());
  EXPECT_FALSE(parseSize("1.0001GiB").ok());
  EXPECT_FALSE(parseSize("512KiB").ok());
  EXPECT_FALSE(parseSize("99999999999999999999GiB").ok());
  EXPECT_FALSE(parseSize("GiB").ok());
}

TEST(ValueSyntax, FormatsSizesWithTheLargestExactUnit) {
  EXPECT_EQ(formatSize(4096), "4GiB");
  EXPECT_EQ(formatSize(1536), "1536MiB");
  EXPECT_EQ(formatSize(1048576), "1TiB");
  EXPECT_EQ(formatSize(0), "0MiB");
}

TEST(ValueSyntax, ParsesAndFormatsMacs) {
  EXPECT_EQ(parseMac("52:54:00:AB:cd:01"), 0x525400abcd01u);
  EXPECT_FALSE(parseMac("52:54:00:ab:cd").has_value());
  EXPECT_FALSE(parseMac("52-54-00-ab-cd-01").has_value());
  EXPECT_EQ(formatMac(0x525400abcd01u), "52:54:00:ab:cd:01");
}

TEST(ValueSyntax, MacRanges) {
  auto r = parseMacRange("52:54:00:10:00:00-52:54:00:10:ff:ff");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->last - r->first, 0xffffu);
  EXPECT_FALSE(parseMacRange("52:54:00:10:00:00").ok());
  EXPECT_FALSE(parseMacRange("52:54:00:10:00:ff-52:54:00:10:00:00").ok());
  EXPECT_FALSE(parseMacRange("01:00:5e:00:00:00-01:00:5e:00:00:ff").ok());  // multicast
  EXPECT_FALSE(parseMacRange("52:54:00:00:00:00-54:00:00:00:00:00").ok());  // spans first octets
}

TEST(ValueSyntax, UuidRanges) {
  auto r = parseUuidRange("4c4f4f4d-0000-0000-0000-000000000000/16");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->prefixHi, 0x4c4f4f4d00000000u);
  EXPECT_EQ(r->prefixLo, 0u);
  EXPECT_EQ(r->bits, 16);
  EXPECT_FALSE(parseUuidRange("4c4f4f4d-0000-0000-0000-000000000000").ok());
  EXPECT_FALSE(parseUuidRange("4c4f4f4d-0000-0000-0000-000000000000/0").ok());
  EXPECT_FALSE(parseUuidRange("4c4f4f4d-0000-0000-0000-000000000000/65").ok());
  EXPECT_FALSE(parseUuidRange("4c4f4f4d-0000-0000-0000-000000000001/4").ok());
  EXPECT_FALSE(parseUuidRange("4c4f4f4d-0000-0000-0000-00000000000g/4").ok());
  EXPECT_TRUE(isUuid("4C4F4F4D-0000-0000-0000-0000000000AA"));
  EXPECT_FALSE(isUuid("4c4f4f4d00000000000000000000000000aa"));
}

TEST(Spelling, SuggestsWithinTwoEditsCaseInsensitively) {
  EXPECT_EQ(editDistance("memroy", "memory"), 1u) << "two neighbours swapped are one edit";
  EXPECT_EQ(editDistance("kitten", "sitting"), 3u);
  EXPECT_EQ(closestMatch("wbe", {"db", "web"}), "web") << "a swap is nearer than two substitutions";
  EXPECT_EQ(closestMatch("memroy", {"name", "memory", "vcpus"}), "memory");
  EXPECT_EQ(closestMatch("server", {"Partition", "Server"}), "Server");
  EXPECT_FALSE(closestMatch("colour", {"name", "vlan"}).has_value());
}

TEST(Spelling, ClosestMatchIsTheNearestByFullEditDistance) {
  // closestMatch stops counting past the best distance so far (a huge word costs no more
  // than a short one); it must still pick what comparing every full distance picks.
  std::mt19937 random(7);
  auto word = [&] {
    std::string w(random() % 9, 'a');
    for (char& c : w) c = static_cast<char>('a' + random() % 3);
    return w;
  };
  for (int round = 0; round < 2000; ++round) {
    std::vector<std::string> candidates(1 + random() % 6);
    for (auto& c : candidates) c = word();
    const std::string w = word();
    std::optional<std::string> expected;
    std::size_t best = 3;
    for (const auto& c : candidates) {
      if (editDistance(w, c) < best) best = editDistance(w, c), expected = c;
    }
    ASSERT_EQ(closestMatch(w, candidates), expected) << "word '" << w << "'";
  }
  EXPECT_EQ(closestMatch(std::string(1 << 20, 'x'), {"memory", "name"}), std::nullopt);
}

}  // namespace
}  // namespace loom::config
