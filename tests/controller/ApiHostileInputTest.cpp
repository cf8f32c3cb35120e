// Requests no client means to send, through the controller core: what the fuzzers found
// (tests/fuzz, docs/SECURITY.md "Fuzzing"), each with its input. Every one gets a precise
// answer; none throws.
#include <gtest/gtest.h>

#include "tests/controller/ControllerHarness.h"

namespace loom::controller {
namespace {

using testing::Harness;

// fuzz_http_api, finding 1: a path that is not UTF-8 ("/v1/de%ECete" once loomd decoded
// it) was quoted in the 404, and nlohmann threw writing it: the core logged an unexpected
// exception and the client got no answer at all.
TEST(ApiHostileInput, APathThatIsNotUtf8IsA404WithTheBytesReplaced) {
  Harness h("api-not-utf8.db");
  const auto r = h.api("POST",
                       "/v1/de\xec"
                       "ete",
                       "kind: Server\nname: web-1\n");
  EXPECT_EQ(r.status, 404);
  const auto body = Json::parse(r.body);  // valid JSON, and UTF-8
  EXPECT_EQ(body["error"],
            "no such endpoint 'POST /v1/de\xef\xbf\xbd"
            "ete'");
}

// The 404 quotes at most 200 bytes of the path: a cut inside a character is replaced too.
TEST(ApiHostileInput, ALongPathCutInsideACharacterIsStillJson) {
  Harness h("api-long-path.db");
  const std::string path = "/v1/" + std::string(195, 'a') + "\xc3\xa9\xc3\xa9";
  const auto r = h.api("GET", path);
  EXPECT_EQ(r.status, 404);
  EXPECT_NO_THROW((void)Json::parse(r.body));
}

// A query value quoted in a 400 ("fields" names an unknown field) that is not UTF-8.
TEST(ApiHostileInput, AQueryValueThatIsNotUtf8IsA400) {
  Harness h("api-query.db");
  const auto r = h.api("GET", "/v1/blades", "", {{"fields", "name,\xff"}});
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_NO_THROW((void)Json::parse(r.body));
}

}  // namespace
}  // namespace loom::controller
