// Frames the fuzzers found validate() accepting and a decoder then throwing on (tests/fuzz,
// docs/SECURITY.md "Fuzzing"), each with its input: the validator must refuse them, naming
// the field, since everything after it trusts the shape.
#include <gtest/gtest.h>

#include "protocol/Messages.h"
#include "protocol/Validation.h"

namespace loom::protocol {
namespace {

std::optional<Rejection> judge(std::string_view bytes) {
  Json frame;
  if (auto bad = parseFrame(bytes, frame)) return bad;
  return validate(frame);
}

// fuzz_wire, finding 1: a register whose inventory.hostname (or .driver) is not a string
// passed validate(), and decodeRegister threw on the core thread. The exception ended the
// core's pass over its inbox: every frame after it in that batch (other blades'
// heartbeats) and the API requests waiting were dropped.
TEST(WireFindings, ARegisterWhoseHostnameOrDriverIsNotAStringIsRefused) {
  const std::string base =
      R"({"type":"register","v":1,"blade":"c1-s1","domains":[],"inventory":{"cores":16,"memory_mib":65536,)";
  auto bad = judge(base + R"("hostname":["kvm","xen"]}})");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->kind, "invalid");
  EXPECT_NE(bad->message.find("inventory.hostname"), std::string::npos) << bad->message;
  bad = judge(base + R"("driver":7}})");
  ASSERT_TRUE(bad);
  EXPECT_NE(bad->message.find("inventory.driver"), std::string::npos) << bad->message;
  // Strings are what agents send: accepted, and decoded.
  const std::string good = base + R"("hostname":"h1","driver":"kvm"}})";
  ASSERT_FALSE(judge(good));
  Json frame;
  ASSERT_FALSE(parseFrame(good, frame));
  EXPECT_EQ(decodeRegister(frame).inventory.hostname, "h1");
}

}  // namespace
}  // namespace loom::protocol
