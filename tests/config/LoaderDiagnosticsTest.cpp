// One test per class of error the loader reports: each asserts the exact line:column
// and that the message names the field and what was expected.
#include "tests/config/LoaderTestSupport.h"

namespace loom::config {
namespace {

using testing::hasError;
using testing::load;

TEST(LoaderDiagnostics, YamlSyntaxErrorIsLocated) {
  auto r = load(
      "kind: Server\n"
      "name: web\n"
      "nics: [{network: front}\n"  // the flow sequence is never closed
      "memory: 4GiB\n");
  ASSERT_FALSE(r.ok());
  ASSERT_FALSE(r.diagnostics.empty());
  EXPECT_EQ(r.diagnostics[0].file, "test.yaml");
  EXPECT_NE(r.diagnostics[0].message.find("YAML syntax error"), std::string::npos) << testing::listOf(r.diagnostics);
  EXPECT_GE(r.diagnostics[0].line, 3);
  EXPECT_LE(r.diagnostics[0].line, 4);
}

TEST(LoaderDiagnostics, SyntaxErrorInLaterDocumentReportsItsFileLine) {
  auto r = load(
      "kind: Partition\n"
      "name: ok\n"
      "---\n"
      "kind: Partition\n"
      "name: [unclosed\n");
  EXPECT_TRUE(hasError(r, 5, 16, {"YAML syntax error", "end of sequence flow not found"}));
}

TEST(LoaderDiagnostics, UnknownFieldSuggestsTheNearestKnownOne) {
  auto r = load(
      "kind: Server\n"
      "name: web\n"
      "partition: prod\n"
      "pool: web\n"
      "vcpus: 2\n"
      "memroy: 4GiB\n");
  EXPECT_TRUE(hasError(r, 6, 1, {"Server 'web'", "unknown field 'memroy'", "did you mean 'memory'?"}));
}

TEST(LoaderDiagnostics, UnknownFieldFarFromAnyListsTheKnownOnes) {
  auto r = load(
      "kind: Network\n"
      "name: n1\n"
      "partition: prod\n"
      "colour: blue\n");
  EXPECT_TRUE(hasError(r, 4, 1, {"unknown field 'colour'", "expected one of:", "vlan"}));
}

TEST(LoaderDiagnostics, UnknownNestedFieldNamesItsPath) {
  auto r = load(
      "kind: Pool\n"
      "name: p\n"
      "partition: prod\n"
      "hypervisor: kvm\n"
      "blades: {match: {chasis: c1}}\n");
  EXPECT_TRUE(hasError(r, 5, 18, {"unknown field 'blades.match.chasis'", "did you mean 'chassis'?"}));
}

TEST(LoaderDiagnostics, FieldGivenTwiceIsReportedAtTheSecond) {
  auto r = load(
      "kind: Partition\n"
      "name: a\n"
      "name: b\n");
  EXPECT_TRUE(hasError(r, 3, 1, {"field 'name' is given twice", "test.yaml:2:1"}));
}

TEST(LoaderDiagnostics, WrongTypeSaysWhatWasExpectedAndWhatCame) {
  auto r = load(
      "kind: Server\n"
      "name: web\n"
      "partition: prod\n"
      "pool: web\n"
      "vcpus: [2]\n"
      "memory: 4GiB\n"
      "dedicated: maybe\n"
      "nics: {network: front}\n");
  EXPECT_TRUE(hasError(r, 5, 8, {"vcpus: expected an integer, got a sequence"}));
  EXPECT_TRUE(hasError(r, 7, 12, {"dedicated: expected true or false, got 'maybe'"}));
  EXPECT_TRUE(hasError(r, 8, 7, {"nics: expected a list of {network, mac?}, got a mapping"}));
}

TEST(LoaderDiagnostics, NonIntegerWhereAnIntegerIsExpected) {
  auto r = load(
      "kind: Server\n"
      "name: web\n"
      "partition: prod\n"
      "pool: web\n"
      "vcpus: two\n"
      "memory: 4GiB\n");
  EXPECT_TRUE(hasError(r, 5, 8, {"vcpus: expected an integer, got 'two'"}));
}

TEST(LoaderDiagnostics, BadSizeSuggestsTheBinaryUnit) {
  auto r = load(
      "kind: Server\n"
      "name: web\n"
      "partition: prod\n"
      "pool: web\n"
      "vcpus: 2\n"
      "memory: 4GB\n");
  EXPECT_TRUE(hasError(r, 6, 9, {"memory: expected a size", "got '4GB'", "did you mean '4GiB'?"}));
}

TEST(LoaderDiagnostics, ZeroSizeIsRefused) {
  auto r = load(
      "kind: Server\n"
      "name: web\n"
      "partition: prod\n"
      "pool: web\n"
      "vcpus: 1\n"
      "memory: 0\n");
  EXPECT_TRUE(hasError(r, 6, 9, {"memory: expected a size greater than zero"}));
}

TEST(LoaderDiagnostics, BadMacRange) {
  auto r = load(
      "kind: IdentityPool\n"
      "name: extra\n"
      "macs: 52:54:00:20:00:00..52:54:00:20:ff:ff\n");
  EXPECT_TRUE(hasError(r, 3, 7, {"IdentityPool 'extra'", "macs[0]", "expected a MAC range FIRST-LAST"}));
}

TEST(LoaderDiagnostics, MacRangeThatEndsBeforeItStartsOrIsMulticast) {
  auto r = load(
      "kind: IdentityPool\n"
      "name: extra\n"
      "macs:\n"
      "  - 52:54:00:20:00:ff-52:54:00:20:00:00\n"
      "  - 01:00:5e:00:00:00-01:00:5e:00:00:ff\n");
  EXPECT_TRUE(hasError(r, 4, 5, {"macs[0]", "ends before it starts"}));
  EXPECT_TRUE(hasError(r, 5, 5, {"macs[1]", "multicast"}));
}

TEST(LoaderDiagnostics, BadUuidRange) {
  auto r = load(
      "kind: IdentityPool\n"
      "name: extra\n"
      "uuids: [4c4f4f4d-0000-0000-0000-00000000001/8, 4c4f4f4d-0000-0000-0001-000000000000/80,\n"
      "        4c4f4f4d-0000-0000-0002-000000000001/8]\n");
  EXPECT_TRUE(hasError(r, 3, 9, {"uuids[0]", "expected a UUID range PREFIX/BITS"}));
  EXPECT_TRUE(hasError(r, 3, 48, {"uuids[1]", "BITS must be 1..64"}));
  EXPECT_TRUE(hasError(r, 4, 9, {"uuids[2]", "low 8 bits of the prefix must be zero"}));
}

TEST(LoaderDiagnostics, OverlappingIdentityRangesAreRefused) {
  auto r = loadDeclarationText(
      "kind: IdentityPool\n"
      "name: first\n"
      "macs: 52:54:00:10:00:00-52:54:00:10:ff:ff\n"
      "uuids: 4c4f4f4d-0000-0000-0000-000000000000/16\n"
      "---\n"
      "kind: IdentityPool\n"
      "name: second\n"
      "macs: 52:54:00:10:80:00-52:54:00:11:00:00\n"
      "uuids: 4c4f4f4d-0000-0000-0000-000000000000/8\n",
      "test.yaml");
  EXPECT_TRUE(
      hasError(r, 8, 7, {"IdentityPool 'second': macs[0]", "overlaps IdentityPool 'first' macs[0] at test.yaml:3:7"}));
  EXPECT_TRUE(hasError(r, 9, 8, {"uuids[0]", "overlaps IdentityPool 'first' uuids[0] at test.yaml:4:8"}));
}

TEST(LoaderDiagnostics, ZeroOrNegativeCountsAreRefused) {
  auto r = load(
      "kind: Server\n"
      "name: web\n"
      "partition: prod\n"
      "pool: web\n"
      "vcpus: 0\n"
      "memory: 1GiB\n"
      "replicas: 0\n"
      "---\n"
      "kind: Pool\n"
      "name: p\n"
      "partition: prod\n"
      "hypervisor: kvm\n"
      "blades: {names: [x]}\n"
      "spares: -1\n");
  EXPECT_TRUE(hasError(r, 5, 8, {"vcpus: expected an integer 1..4096, got 0"}));
  EXPECT_TRUE(hasError(r, 7, 11, {"replicas: expected an integer 1..100000, got 0"}));
  EXPECT_TRUE(hasError(r, 14, 9, {"spares: expected an integer 0..100000, got -1"}));
}

TEST(LoaderDiagnostics, VlanOutsideOneTo4094) {
  auto r = load(
      "kind: Network\n"
      "name: n1\n"
      "partition: prod\n"
      "vlan: 4095\n");
  EXPECT_TRUE(hasError(r, 4, 7, {"Network 'n1'", "vlan: expected an integer 1..4094, got 4095"}));
}

TEST(LoaderDiagnostics, UnknownKindSuggestsTheNearest) {
  auto r = load(
      "kind: Sever\n"
      "name: web\n");
  EXPECT_TRUE(hasError(r, 1, 7, {"unknown kind 'Sever'", "did you mean 'Server'?"}));
}

TEST(LoaderDiagnostics, DocumentWithoutKind) {
  auto r = load("name: web\n");
  EXPECT_TRUE(hasError(r, 1, 1, {"missing required field 'kind'"}));
}

TEST(LoaderDiagnostics, MissingRequiredFieldIsReportedAtItsMapping) {
  auto r = load(
      "kind: Server\n"
      "name: web\n"
      "partition: prod\n"
      "vcpus: 1\n"
      "memory: 1GiB\n"
      "nics:\n"
      "  - mac: 52:54:00:99:00:01\n");
  EXPECT_TRUE(hasError(r, 1, 1, {"Server 'web'", "missing required field 'pool'"}));
  EXPECT_TRUE(hasError(r, 7, 5, {"missing required field 'nics[0].network'"}));
}

TEST(LoaderDiagnostics, DuplicateNamePointsAtTheSecondAndNamesTheFirst) {
  auto r = load(
      "kind: Partition\n"
      "name: prod\n");
  // The base declares `prod` after this document; the second is the base's.
  ASSERT_FALSE(r.ok());
  bool found = false;
  for (const auto& d : r.diagnostics) {
    if (d.message.find("Partition 'prod': name: duplicate name, first declared at test.yaml:2:7") !=
        std::string::npos) {
      found = true;
      EXPECT_EQ(d.column, 7);
      EXPECT_GT(d.line, 2);
    }
  }
  EXPECT_TRUE(found) << testing::listOf(r.diagnostics);
}

TEST(LoaderDiagnostics, ReplicaNameCollidingWithAServerIsADuplicate) {
  auto r = load(
      "kind: Server\n"
      "name: web-1\n"
      "partition: prod\n"
      "pool: web\n"
      "vcpus: 1\n"
      "memory: 1GiB\n"
      "---\n"
      "kind: Server\n"
      "name: web\n"
      "replicas: 2\n"
      "partition: prod\n"
      "pool: web\n"
      "vcpus: 1\n"
      "memory: 1GiB\n");
  EXPECT_TRUE(hasError(r, 9, 7, {"Server 'web-1' (replica of 'web')", "first declared at test.yaml:2:7"}));
}

TEST(LoaderDiagnostics, ReferencesToMissingObjectsSuggestTheNearestName) {
  auto r = load(
      "kind: Server\n"
      "name: web\n"
      "partition: prd\n"
      "pool: webb\n"
      "vcpus: 1\n"
      "memory: 1GiB\n"
      "nics: [{network: frnt}]\n"
      "identity_pool: defualt\n"
      "---\n"
      "kind: Pool\n"
      "name: p2\n"
      "partition: prod\n"
      "hypervisor: kvm\n"
      "blades: {names: [x1]}\n"
      "borrow_from: nowhere\n"
      "identity_pool: none\n");
  EXPECT_TRUE(hasError(r, 3, 12, {"partition: no Partition named 'prd'", "did you mean 'prod'?"}));
  EXPECT_TRUE(hasError(r, 4, 7, {"pool: no Pool named 'webb'", "did you mean 'web'?"}));
  EXPECT_TRUE(hasError(r, 7, 18, {"nics[0].network: no Network named 'frnt'", "did you mean 'front'?"}));
  EXPECT_TRUE(hasError(r, 8, 16, {"identity_pool: no IdentityPool named 'defualt'", "did you mean 'default'?"}));
  EXPECT_TRUE(hasError(r, 15, 14, {"Pool 'p2'", "borrow_from: no Pool named 'nowhere'"}));
  EXPECT_TRUE(hasError(r, 16, 16, {"identity_pool: no IdentityPool named 'none'"}));
}

TEST(LoaderDiagnostics, BorrowFromMustNameASparePool) {
  auto r = load(
      "kind: Pool\n"
      "name: p2\n"
      "partition: prod\n"
      "hypervisor: kvm\n"
      "blades: {names: [x1]}\n"
      "borrow_from: web\n");
  EXPECT_TRUE(hasError(r, 6, 14, {"borrow_from: Pool 'web' is not a spare pool", "spare_pool: true"}));
}

TEST(LoaderDiagnostics, ServerPoolInAnotherPartition) {
  auto r = load(
      "kind: Server\n"
      "name: s1\n"
      "partition: dev\n"
      "pool: web\n"
      "vcpus: 1\n"
      "memory: 1GiB\n"
      "nics: [{network: front}]\n");
  EXPECT_TRUE(hasError(r, 4, 7, {"pool: Pool 'web' belongs to partition 'prod'", "partition 'dev'"}));
  EXPECT_TRUE(hasError(r, 7, 18, {"nics[0].network: Network 'front' belongs to partition 'prod'"}));
}

TEST(LoaderDiagnostics, SparePoolCannotHoldServers) {
  auto r = load(
      "kind: Server\n"
      "name: s1\n"
      "partition: prod\n"
      "pool: spares\n"
      "vcpus: 1\n"
      "memory: 1GiB\n");
  EXPECT_TRUE(hasError(r, 4, 7, {"pool: Pool 'spares' is a spare pool", "holds no servers"}));
}

TEST(LoaderDiagnostics, BladeNamedByTwoPools) {
  auto r = load(
      "kind: Pool\n"
      "name: p2\n"
      "partition: prod\n"
      "hypervisor: kvm\n"
      "blades: {names: [c2-s1]}\n");
  // devpool (in the base, after this document) names c2-s1 again.
  bool found = false;
  for (const auto& d : r.diagnostics) {
    found =
        found || d.message.find("blade 'c2-s1' is already named by Pool 'p2' at test.yaml:5:18") != std::string::npos;
  }
  EXPECT_TRUE(found) << testing::listOf(r.diagnostics);
}

TEST(LoaderDiagnostics, FixedIdentityGivenTwice) {
  auto r = load(
      "kind: Server\n"
      "name: a\n"
      "partition: prod\n"
      "pool: web\n"
      "vcpus: 1\n"
      "memory: 1GiB\n"
      "uuid: 4c4f4f4d-0000-0000-0000-000000000001\n"
      "nics: [{network: front, mac: '52:54:00:10:00:01'}]\n"
      "---\n"
      "kind: Server\n"
      "name: b\n"
      "partition: prod\n"
      "pool: web\n"
      "vcpus: 1\n"
      "memory: 1GiB\n"
      "uuid: 4C4F4F4D-0000-0000-0000-000000000001\n"
      "nics: [{network: front, mac: '52:54:00:10:00:01'}]\n");
  EXPECT_TRUE(hasError(
      r, 16, 7, {"uuid: UUID 4c4f4f4d-0000-0000-0000-000000000001 is already given to Server 'a' at test.yaml:7:7"}));
  EXPECT_TRUE(hasError(r, 17, 30, {"nics[0].mac: MAC 52:54:00:10:00:01 is already given to Server 'a'"}));
}

TEST(LoaderDiagnostics, BadMacAndUuidOnAServer) {
  auto r = load(
      "kind: Server\n"
      "name: a\n"
      "partition: prod\n"
      "pool: web\n"
      "vcpus: 1\n"
      "memory: 1GiB\n"
      "uuid: not-a-uuid\n"
      "nics: [{network: front, mac: '52:54:00:10:00'}]\n");
  EXPECT_TRUE(hasError(r, 7, 7, {"uuid: expected a UUID"}));
  EXPECT_TRUE(hasError(r, 8, 30, {"nics[0].mac: expected a MAC address"}));
}

TEST(LoaderDiagnostics, BadEnumerationListsTheChoices) {
  auto r = load(
      "kind: Pool\n"
      "name: p2\n"
      "partition: prod\n"
      "hypervisor: vmware\n"
      "blades: {names: [x1]}\n"
      "failover: migrate\n");
  EXPECT_TRUE(hasError(r, 4, 13, {"hypervisor: expected xen or kvm, got 'vmware'"}));
  EXPECT_TRUE(hasError(r, 6, 11, {"failover: expected spare, pack or none, got 'migrate'"}));
}

TEST(LoaderDiagnostics, XenOptionsRequireAXenPoolAndPvABootKernel) {
  auto r = load(
      "kind: Server\n"
      "name: pvguest\n"
      "partition: prod\n"
      "pool: web\n"
      "vcpus: 1\n"
      "memory: 1GiB\n"
      "xen: {type: pv}\n");
  EXPECT_TRUE(hasError(r, 7, 6, {"xen: applies to Xen pools only", "Pool 'web' runs kvm"}));
  EXPECT_TRUE(hasError(r, 7, 13, {"xen.type: a pv guest boots a kernel directly; expected boot.kernel"}));
}

TEST(LoaderDiagnostics, BadNameIsRefused) {
  auto r = load(
      "kind: Partition\n"
      "name: \"has space\"\n");
  EXPECT_TRUE(hasError(r, 2, 7, {"name: expected 1..63 letters, digits"}));
}

TEST(LoaderDiagnostics, ServerNeedingIdentityWithNoIdentityPool) {
  auto r = loadDeclarationText(
      "kind: Partition\n"
      "name: prod\n"
      "---\n"
      "kind: Pool\n"
      "name: web\n"
      "partition: prod\n"
      "hypervisor: kvm\n"
      "blades: {names: [a]}\n"
      "---\n"
      "kind: Server\n"
      "name: s\n"
      "partition: prod\n"
      "pool: web\n"
      "vcpus: 1\n"
      "memory: 1GiB\n",
      "test.yaml");
  EXPECT_TRUE(
      hasError(r, 10, 1, {"identity_pool: this server needs an allocated UUID but no IdentityPool is declared"}));
}

}  // namespace
}  // namespace loom::config

namespace loom::config {
namespace {

// Across applies, a replica of a template and a standalone Server may not take each
// other's name: the error is at the new one's name and names the template.
TEST(LoaderDiagnostics, AStandaloneServerMayNotReplaceATemplatesReplica) {
  auto first = testing::load(
      "kind: Server\n"
      "name: web\n"
      "partition: prod\n"
      "pool: web\n"
      "replicas: 3\n"
      "vcpus: 1\n"
      "memory: 1GiB\n");
  ASSERT_TRUE(first.ok()) << testing::listOf(first.diagnostics);
  auto standalone = loadDeclarationTextOnto(first.declarations,
                                            "kind: Server\n"
                                            "name: web-1\n"
                                            "partition: prod\n"
                                            "pool: web\n"
                                            "vcpus: 2\n"
                                            "memory: 2GiB\n",
                                            "more.yaml");
  EXPECT_FALSE(standalone.ok());
  EXPECT_TRUE(testing::hasError(
      standalone, 2, 7,
      {"Server 'web-1'", "a standalone Server may not replace a replica of template 'web'", "delete 'web' first"}));
  // The template applied again, with another size: its replicas are its own to change.
  auto again = loadDeclarationTextOnto(first.declarations,
                                       "kind: Server\n"
                                       "name: web\n"
                                       "partition: prod\n"
                                       "pool: web\n"
                                       "replicas: 2\n"
                                       "vcpus: 2\n"
                                       "memory: 1GiB\n",
                                       "again.yaml");
  EXPECT_TRUE(again.ok()) << testing::listOf(again.diagnostics);
}

}  // namespace
}  // namespace loom::config
