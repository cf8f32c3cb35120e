// kind: Blade: a blade's BMC (docs/FENCING.md, the power route). Fabric-wide, may name a
// blade that has not registered; every mistake located at its value.
#include "tests/config/LoaderTestSupport.h"

namespace loom::config {
namespace {

using testing::hasError;
using testing::listOf;
using testing::load;

TEST(BladeDeclaration, LoadsItsBmcWithThePortDefaultingTo623) {
  auto r = load(
      "kind: Blade\n"
      "name: c1-s1\n"
      "description: slot 1 of the first chassis\n"
      "bmc: {address: 10.0.0.11, user: fence, password_file: /etc/loom/bmc/c1-s1.pass}\n"
      "---\n"
      "kind: Blade\n"
      "name: c1-s2\n"
      "bmc:\n"
      "  address: c1-s2-bmc.oob.example\n"
      "  port: 6230\n"
      "  user: fence\n"
      "  password_file: /etc/loom/bmc/c1-s2.pass\n"
      "---\n"
      "kind: Blade\n"
      "name: c9-s9\n");
  ASSERT_TRUE(r.ok()) << listOf(r.diagnostics);
  const auto& blades = r.declarations.blades;
  ASSERT_EQ(blades.size(), 3u);
  EXPECT_EQ(blades[0].name, "c1-s1");
  ASSERT_TRUE(blades[0].bmc);
  EXPECT_EQ(*blades[0].bmc, (pool::Bmc{"10.0.0.11", 623, "fence", "/etc/loom/bmc/c1-s1.pass"}));
  ASSERT_TRUE(blades[1].bmc);
  EXPECT_EQ(*blades[1].bmc, (pool::Bmc{"c1-s2-bmc.oob.example", 6230, "fence", "/etc/loom/bmc/c1-s2.pass"}));
  EXPECT_FALSE(blades[2].bmc) << "a Blade without a BMC is lease-fenced";
}

TEST(BladeDeclaration, AnIpv6AddressIsABmcAddress) {
  auto r = load("kind: Blade\nname: b\nbmc: {address: 'fd00::11', user: u, password_file: /p}\n");
  ASSERT_TRUE(r.ok()) << listOf(r.diagnostics);
  EXPECT_EQ(r.declarations.blades[0].bmc->address, "fd00::11");
}

TEST(BladeDeclaration, UnknownFieldsAreReportedAtThemWithTheNearestKnownOne) {
  auto r = load(
      "kind: Blade\n"
      "name: c1-s1\n"
      "partition: prod\n"
      "bmc: {address: 10.0.0.1, usr: fence, password_file: /p}\n");
  EXPECT_TRUE(hasError(r, 3, 1, {"Blade 'c1-s1'", "unknown field 'partition'"})) << "blades are fabric-wide";
  EXPECT_TRUE(hasError(r, 4, 26, {"unknown field 'bmc.usr'", "did you mean 'user'?"}));
  EXPECT_TRUE(hasError(r, 4, 6, {"missing required field 'bmc.user'"}));
}

TEST(BladeDeclaration, EachRequiredBmcFieldIsNamedWhenMissing) {
  auto r = load("kind: Blade\nname: b\nbmc: {port: 623}\n");
  for (const char* field : {"bmc.address", "bmc.user", "bmc.password_file"})
    EXPECT_TRUE(hasError(r, 3, 6, {std::string("missing required field '") + field + "'"})) << field;
}

TEST(BladeDeclaration, ABadPortSaysTheRange) {
  auto r = load("kind: Blade\nname: b\nbmc: {address: h, port: 70000, user: u, password_file: /p}\n");
  EXPECT_TRUE(hasError(r, 3, 25, {"Blade 'b'", "bmc.port", "expected an integer 1..65535, got 70000"}));
  r = load("kind: Blade\nname: b\nbmc: {address: h, port: ipmi, user: u, password_file: /p}\n");
  EXPECT_TRUE(hasError(r, 3, 25, {"bmc.port", "expected an integer, got 'ipmi'"}));
}

TEST(BladeDeclaration, ThePasswordFileIsAnAbsolutePlainPath) {
  auto r = load("kind: Blade\nname: b\nbmc: {address: h, user: u, password_file: etc/bmc.pass}\n");
  EXPECT_TRUE(
      hasError(r, 3, 43, {"bmc.password_file", "expected an absolute path on the controller host", "'etc/bmc.pass'"}));
  r = load("kind: Blade\nname: b\nbmc: {address: h, user: u, password_file: '/etc/my bmc/$(reboot)'}\n");
  EXPECT_TRUE(hasError(r, 3, 43, {"bmc.password_file", "it becomes part of a fence command line"}));
}

TEST(BladeDeclaration, TheAddressIsAHostNameOrAnIpAddress) {
  auto r = load("kind: Blade\nname: b\nbmc: {address: 'bmc; reboot', user: u, password_file: /p}\n");
  EXPECT_TRUE(hasError(r, 3, 16, {"bmc.address", "expected a host name or an IP address, got 'bmc; reboot'"}));
}

TEST(BladeDeclaration, BmcMustBeAMapping) {
  auto r = load("kind: Blade\nname: b\nbmc: 10.0.0.1\n");
  EXPECT_TRUE(hasError(r, 3, 6, {"Blade 'b'", "bmc: expected a mapping {address, port?, user, password_file}"}));
}

TEST(BladeDeclaration, DuplicateNamesAndSharedBmcsAreRefused) {
  auto r = load(
      "kind: Blade\n"
      "name: c1-s1\n"
      "bmc: {address: BMC-1.oob, user: u, password_file: /p1}\n"
      "---\n"
      "kind: Blade\n"
      "name: c1-s1\n"
      "---\n"
      "kind: Blade\n"
      "name: c1-s2\n"
      "bmc: {address: bmc-1.oob, port: 623, user: u, password_file: /p2}\n");
  EXPECT_TRUE(hasError(r, 6, 7, {"Blade 'c1-s1'", "duplicate name, first declared at test.yaml:2:7"}));
  EXPECT_TRUE(hasError(
      r, 10, 16,
      {"Blade 'c1-s2'", "bmc.address: bmc-1.oob port 623 is already the BMC of Blade 'c1-s1' at test.yaml:3:16",
       "fencing one blade would power off the other"}));
}

TEST(BladeDeclaration, ABladeMayBeNamedLikeAPoolOrAServer) {
  // Kinds are separate name spaces; the planner never reads a Blade.
  auto r = load("kind: Blade\nname: web\n");
  EXPECT_TRUE(r.ok()) << listOf(r.diagnostics);
}

TEST(BladeDeclaration, AppliedBladesAreReplacedByNameAndDeletedByName) {
  auto first =
      loadDeclarationTextOnto({}, "kind: Blade\nname: b1\nbmc: {address: h1, user: u, password_file: /p}\n", "a.yaml");
  ASSERT_TRUE(first.ok()) << listOf(first.diagnostics);
  auto second = loadDeclarationTextOnto(
      first.declarations,
      "kind: Blade\nname: b1\n---\nkind: Blade\nname: b2\nbmc: {address: h1, user: u, password_file: /p}\n", "b.yaml");
  ASSERT_TRUE(second.ok()) << "b1 no longer holds h1: b2 may" << listOf(second.diagnostics);
  ASSERT_EQ(second.declarations.blades.size(), 2u);
  EXPECT_FALSE(second.declarations.blades[0].bmc);
  EXPECT_EQ(second.objects, (std::vector<std::pair<std::string, std::string>>{{"Blade", "b1"}, {"Blade", "b2"}}));
  auto names = loadDeclarationNames("kind: Blade\nname: b2\n", "del.yaml");
  ASSERT_TRUE(names.ok()) << listOf(names.diagnostics);
  EXPECT_EQ(names.objects, (std::vector<std::pair<std::string, std::string>>{{"Blade", "b2"}}));
}

TEST(BladeDeclaration, AnUnknownKindSuggestsBlade) {
  auto r = load("kind: Blad\nname: b\n");
  EXPECT_TRUE(hasError(r, 1, 7, {"unknown kind 'Blad'", "did you mean 'Blade'?"}));
}

}  // namespace
}  // namespace loom::config
