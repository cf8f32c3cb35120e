// Inputs built to hurt the loader (found by fuzzing or written to probe a limit): each gets
// one precise diagnostic, quickly and in bounded memory, through every entry point that
// takes text from outside (the API's apply and delete bodies, loomctl's files, fabric
// files). Only Loader.h is used here, so this file also builds against an older loader:
// there its first tests allocate until memory runs out (yaml-cpp 0.7 loops; see
// config/README.md).
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "tests/config/LoaderTestSupport.h"

namespace loom::config {
namespace {

using testing::hasError;
using testing::listOf;

// The body the fuzzer found: a stray top-level ',' made yaml-cpp 0.7's LoadAll report
// empty documents forever (jbeder/yaml-cpp#1040), allocating until the OOM killer came.
const std::string kStrayComma = ", {network: back}]";
const char* kStrayCommaMessage = "YAML syntax error: unexpected ',' (a comma separates items only inside [ ] or { })";

template <class R>
void expectOnly(const R& r, int line, int column, const std::string& message) {
  ASSERT_EQ(r.diagnostics.size(), 1u) << listOf(r.diagnostics);
  EXPECT_EQ(r.diagnostics[0].line, line) << listOf(r.diagnostics);
  EXPECT_EQ(r.diagnostics[0].column, column) << listOf(r.diagnostics);
  EXPECT_EQ(r.diagnostics[0].message, message);
}

std::string tempFile(const std::string& name, const std::string& text) {
  auto path = std::filesystem::temp_directory_path() / ("loom-hostile-" + std::to_string(::getpid()) + "-" + name);
  std::ofstream(path, std::ios::binary) << text;
  return path.string();
}

TEST(HostileInput, StrayCommaIsASyntaxErrorAtTheComma) {
  expectOnly(loadDeclarationText(kStrayComma, "body.yaml"), 1, 1, kStrayCommaMessage);
  EXPECT_EQ(loadDeclarationText(kStrayComma, "body.yaml").diagnostics[0].format(),
            std::string("body.yaml:1:1: ") + kStrayCommaMessage);
}

TEST(HostileInput, StrayCommaIsRefusedByEveryEntryPoint) {
  expectOnly(loadDeclarationTextOnto(pool::Declarations{}, kStrayComma, "request"), 1, 1, kStrayCommaMessage);
  expectOnly(loadDeclarationNames(kStrayComma, "request"), 1, 1, kStrayCommaMessage);
  expectOnly(loadFabricText(kStrayComma, "fabric.yaml"), 1, 1, kStrayCommaMessage);
  const std::string path = tempFile("stray.yaml", kStrayComma);
  auto fromFile = loadDeclarationFiles({path});
  expectOnly(fromFile, 1, 1, kStrayCommaMessage);
  EXPECT_EQ(fromFile.diagnostics[0].file, path);
  expectOnly(loadFabricFile(path), 1, 1, kStrayCommaMessage);
  std::filesystem::remove(path);
}

TEST(HostileInput, StrayCommaAfterAValidDocumentCostsOnlyItsOwnDocument) {
  // In the same document (no "---" between): that document is lost, as to any syntax error.
  expectOnly(loadDeclarationText("{kind: Partition, name: a}\n, x\n", "t.yaml"), 2, 1, kStrayCommaMessage);
  // After "---": the first document still counts (a missing reference would be reported).
  auto r = loadDeclarationText(
      "kind: Network\n"
      "name: n\n"
      "partition: nowhere\n"
      "---\n"
      "  , {network: back}]\n",
      "t.yaml");
  expectOnly(r, 5, 3, kStrayCommaMessage);
  // After an explicit document end, in the same chunk.
  expectOnly(loadDeclarationText("kind: Partition\nname: a\n...\n,\n", "t.yaml"), 4, 1, kStrayCommaMessage);
  // After a tag that yaml-cpp takes for an empty scalar.
  expectOnly(loadDeclarationText("!t ,\n", "t.yaml"), 1, 4, kStrayCommaMessage);
}

TEST(HostileInput, DeepNestingIsRefusedAtTheFirstLevelTooDeep) {
  // yaml-cpp recurses once per level; 0.7 stops itself at 500 with "bad file" at the end of
  // the text. Here the 65th collection is named.
  const std::string deep = std::string(65, '[') + std::string(65, ']') + "\n";
  expectOnly(loadDeclarationText(deep, "t.yaml"), 1, 65,
             "YAML nested more than 64 deep (collections inside collections; a declaration nests 4)");
  auto r = loadDeclarationText(std::string(200000, '[') + "\n", "t.yaml");
  ASSERT_EQ(r.diagnostics.size(), 1u) << listOf(r.diagnostics);
  EXPECT_EQ(r.diagnostics[0].line, 1);
  EXPECT_NE(r.diagnostics[0].message.find("YAML nested more than 64 deep"), std::string::npos);
  std::string dashes;
  for (int i = 0; i < 100000; ++i) dashes += "- ";
  r = loadDeclarationText(dashes + "x\n", "t.yaml");
  expectOnly(r, 1, 129, "YAML nested more than 64 deep (collections inside collections; a declaration nests 4)");
}

TEST(HostileInput, AliasesThatExpandPastTheNodeBudgetAreRefusedAtTheAlias) {
  // A "billion laughs": ten times ten times ... nodes by reference. yaml-cpp shares them;
  // whatever walks the tree would not.
  std::string laughs = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i < 10; ++i) {
    laughs += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [";
    for (int k = 0; k < 10; ++k) laughs += (k ? ", *a" : "*a") + std::to_string(i - 1);
    laughs += "]\n";
  }
  laughs += "kind: Partition\nname: *a9\n";
  // a4 stands for 111,111 nodes: 123,463 before the list of a5, then its eighth *a4 (line 6)
  // crosses 1,000,000.
  expectOnly(loadDeclarationText(laughs, "t.yaml"), 6, 45,
             "alias '*a4' takes the input past 1000000 YAML nodes (an alias counts as every node it stands for)");
}

TEST(HostileInput, AnAliasInsideTheNodeItNamesIsRefused) {
  expectOnly(loadDeclarationText("&a [*a]\n", "t.yaml"), 1, 5, "alias '*a' refers to a node that contains it");
  expectOnly(loadDeclarationText("kind: Partition\nname: &m {x: *m}\n", "t.yaml"), 2, 14,
             "alias '*m' refers to a node that contains it");
}

TEST(HostileInput, OrdinaryAliasesStillWork) {
  auto r = testing::load(
      "kind: Server\n"
      "name: web\n"
      "partition: prod\n"
      "pool: web\n"
      "vcpus: 2\n"
      "memory: &size 4GiB\n"
      "nics: [&nic {network: front}, *nic]\n"
      "description: *size\n");
  ASSERT_TRUE(r.ok()) << listOf(r.diagnostics);
  ASSERT_EQ(r.declarations.servers.size(), 1u);
  EXPECT_EQ(r.declarations.servers[0].nics.size(), 2u);
  EXPECT_EQ(r.declarations.servers[0].nics[1].network, "front");
}

TEST(HostileInput, AHugeScalarIsRefusedAtItsStart) {
  const std::string longest(65536, 'x');
  auto fits = loadDeclarationText("kind: Partition\nname: p\ndescription: " + longest + "\n", "t.yaml");
  EXPECT_TRUE(fits.ok()) << listOf(fits.diagnostics);
  expectOnly(loadDeclarationText("kind: Partition\nname: p\ndescription: " + longest + "y\n", "t.yaml"), 3, 14,
             "a YAML scalar of 65537 bytes; the most accepted is 65536");
  // A name too long to be valid is cut in the context of every other message of its object.
  auto r = loadDeclarationText("kind: Network\nname: " + std::string(1000, 'n') + "\nvlan: 0\n", "t.yaml");
  ASSERT_EQ(r.diagnostics.size(), 3u) << listOf(r.diagnostics);
  EXPECT_EQ(r.diagnostics[2].message,
            "Network '" + std::string(63, 'n') + "...': vlan: expected an integer 1..4094, got 0");
}

TEST(HostileInput, ManyEmptyDocumentsAreRefusedAtTheFirstTooMany) {
  std::string text;
  for (int i = 0; i < 50001; ++i) text += "---\n";
  expectOnly(loadDeclarationText(text, "t.yaml"), 50001, 1, "more than 50000 YAML documents in one input");
  expectOnly(loadDeclarationNames(text + "kind: Partition\nname: p\n", "t.yaml"), 50001, 1,
             "more than 50000 YAML documents in one input");
}

TEST(HostileInput, NulBytesAreRefusedWhereTheyAre) {
  const std::string text("kind: Partition\nname: a\0b\n", 26);
  expectOnly(loadDeclarationText(text, "t.yaml"), 2, 8,
             "character U+0000 is not allowed in YAML (a NUL byte: is this a binary or UTF-16 file?)");
  expectOnly(loadDeclarationText("kind: Partition\nname: a\x04"
                                 "b\n",
                                 "t.yaml"),
             2, 8, "character U+0004 is not allowed in YAML (no control character other than tab and line breaks is)");
  expectOnly(loadFabricText(std::string("\xFF\xFE"
                                        "b\0l\0",
                                        6),
                            "fabric.yaml"),
             1, 1, "not UTF-8 text: invalid byte 0xFF (a UTF-16 byte-order mark; save the file as UTF-8)");
}

TEST(HostileInput, InvalidUtf8IsRefusedAtTheFirstBadByte) {
  const char* message = "not UTF-8 text: invalid byte 0x";
  auto at = [&](const std::string& text, int line, int column, const std::string& byte) {
    expectOnly(loadDeclarationText(text, "t.yaml"), line, column, message + byte);
  };
  at("kind: Partition\nname: caf\xC3\n", 2, 10, "C3");          // truncated sequence
  at("kind: Partition\nname: \xC0\xAF\n", 2, 7, "C0");          // overlong '/'
  at("kind: Partition\nname: \xED\xA0\x80\n", 2, 7, "ED");      // a UTF-16 surrogate
  at("kind: Partition\nname: \xF4\x90\x80\x80\n", 2, 7, "F4");  // past U+10FFFF
  at("# \xBF\n", 1, 3, "BF");                                   // even in a comment
  // Valid UTF-8 is read as it is, a byte-order mark included.
  auto r = loadDeclarationText("\xEF\xBB\xBFkind: Partition\nname: p\ndescription: caf\xC3\xA9 \xF0\x9F\x9A\x80\t!\n",
                               "t.yaml");
  EXPECT_TRUE(r.ok()) << listOf(r.diagnostics);
}

TEST(HostileInput, AnInputPastTheSizeLimitIsRefusedWhole) {
  std::string text = "kind: Partition\nname: p\ndescription: x\n";
  text.resize((std::size_t{8} << 20) + 1, '#');
  expectOnly(loadDeclarationText(text, "t.yaml"), 0, 0,
             "the input is 8388609 bytes; the most read at once is 8388608 (split it into several applies)");
  // A file is not even read past the limit: a path may name a device.
  expectOnly(loadDeclarationFiles({"/dev/zero"}), 0, 0,
             "the file is larger than 8388608 bytes, the most read at once (split it into several files)");
}

TEST(HostileInput, AFlowCollectionLongerThanTheLookaheadIsRefused) {
  // yaml-cpp keeps every token of such a collection until it ends (~140 bytes each).
  std::string flow = "[";
  while (flow.size() < (std::size_t{256} << 10) + 65536) flow += "0,";
  expectOnly(loadDeclarationText(flow + "0]\n", "t.yaml"), 1, 1,
             "a YAML flow collection ([...] or {...}) or scalar after this point is longer than 262144 bytes, the "
             "most read ahead (write a long list as a block sequence, one '- item' per line)");
}

TEST(HostileInput, ReplicasPastTheObjectBudgetAreRefusedAtTheTemplate) {
  // 100,000 replicas with five NICs each would be 600,000 objects; nothing is expanded.
  auto r = testing::load(
      "kind: Server\n"
      "name: t\n"
      "partition: prod\n"
      "pool: web\n"
      "vcpus: 1\n"
      "memory: 1GiB\n"
      "nics: [{network: front}, {network: front}, {network: front}, {network: front}, {network: front}]\n"
      "replicas: 100000\n");
  expectOnly(r, 8, 11,
             "Server 't': replicas: this input would declare more than 500000 objects (replicas expanded, a server "
             "counting its NICs and disks), the most one load takes");
  std::string names;
  for (int i = 0; i < 6; ++i) names += "---\nkind: Server\nname: t" + std::to_string(i) + "\nreplicas: 100000\n";
  expectOnly(loadDeclarationNames(names, "t.yaml"), 24, 11,
             "Server 't5': this input would name more than 500000 objects (replicas expanded), the most one "
             "load takes");
}

TEST(HostileInput, OnlyTheFirstThousandProblemsAreKept) {
  std::string text = "kind: Partition\nname: p\n";
  for (int i = 0; i < 1500; ++i) text += "field" + std::to_string(i) + ": 1\n";
  auto r = loadDeclarationText(text, "t.yaml");
  ASSERT_EQ(r.diagnostics.size(), 1001u);
  EXPECT_TRUE(hasError(r, 3, 1, {"unknown field 'field0'"}));
  EXPECT_TRUE(hasError(r, 1002, 1, {"unknown field 'field999'"}));
  EXPECT_EQ(r.diagnostics.back().format(), "t.yaml: 500 more problems not shown (the first 1000 found are above)");
}

TEST(HostileInput, ManyIdentityRangesAreCheckedForOverlapsEachAgainstTheEarlierOnes) {
  // Every pair used to be compared: 500,000 ranges took over a minute.
  std::string text = "kind: IdentityPool\nname: many\nmacs:\n";
  char mac[32];
  for (int i = 0; i < 20000; ++i) {
    std::snprintf(mac, sizeof mac, "52:54:00:%02x:%02x:00", (i >> 8) & 0xff, i & 0xff);
    text += std::string("- ") + mac + "-" + std::string(mac, 15) + "0f\n";
  }
  text += "- 52:54:00:00:09:08-52:54:00:00:0a:01\n";  // in ranges 9 and 10
  auto r = loadDeclarationText(text, "t.yaml");
  ASSERT_EQ(r.diagnostics.size(), 1u) << listOf(r.diagnostics);
  EXPECT_TRUE(hasError(r, 20004, 3,
                       {"IdentityPool 'many': macs[20000]: MAC range overlaps IdentityPool 'many' macs[9] at "
                        "t.yaml:13:3"}));
}

}  // namespace
}  // namespace loom::config
