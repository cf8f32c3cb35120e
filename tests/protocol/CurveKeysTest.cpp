// Allow-list parsing: '#' is a Z85 character, so it must not be taken for a comment
// inside a key (a third of generated keys contain one).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "protocol/CurveKeys.h"

namespace loom::protocol {
namespace {

std::string writeTemp(const std::string& text) {
  char path[] = "/tmp/loom-allowlist-XXXXXX";
  const int fd = mkstemp(path);
  EXPECT_GE(fd, 0);
  std::ofstream(path) << text;
  close(fd);
  return path;
}

// 40 characters of Z85, one of them a '#'.
const std::string kKeyWithHash = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf#";
const std::string kOtherKey = "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID";

TEST(AllowList, AcceptsKeysThatContainAHash) {
  const auto path = writeTemp("# agents of chassis c1\n" + kKeyWithHash + "\n" + kOtherKey + "  # c1-s2\n\n");
  auto keys = readAllowList(path);
  std::remove(path.c_str());
  ASSERT_TRUE(keys.ok()) << keys.error().message;
  EXPECT_EQ(keys->size(), 2u);
  EXPECT_TRUE(keys->count(kKeyWithHash));
  EXPECT_TRUE(keys->count(kOtherKey));
}

TEST(AllowList, RefusesTwoKeysOnOneLineNamingTheLine) {
  const auto path = writeTemp(kKeyWithHash + " " + kOtherKey + "\n");
  auto keys = readAllowList(path);
  std::remove(path.c_str());
  ASSERT_FALSE(keys.ok());
  EXPECT_NE(keys.error().message.find(":1: one key per line"), std::string::npos) << keys.error().message;
}

TEST(AllowList, RefusesATruncatedKeyNamingTheLine) {
  const auto path = writeTemp(kOtherKey + "\n" + kKeyWithHash.substr(0, 39) + "\n");
  auto keys = readAllowList(path);
  std::remove(path.c_str());
  ASSERT_FALSE(keys.ok());
  EXPECT_NE(keys.error().message.find(":2: not a 40-character Z85 public key"), std::string::npos)
      << keys.error().message;
}

}  // namespace
}  // namespace loom::protocol
