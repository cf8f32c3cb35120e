// The limits of detail::parseDocuments, each reached with small limits so the position
// where it is reached can be checked exactly (HostileInputTest reaches the real ones).
#include <gtest/gtest.h>

#include "config/detail/YamlDocuments.h"

namespace loom::config::detail {
namespace {

struct Parsed {
  Documents documents;
  std::vector<Diagnostic> diagnostics;
};

Parsed parse(const std::string& text, const YamlLimits& limits) {
  Diagnostics diagnostics;
  Parsed out;
  out.documents = parseDocuments(text, "t.yaml", diagnostics, limits);
  out.diagnostics = std::move(diagnostics).sorted({"t.yaml"});
  return out;
}

std::string only(const Parsed& p) {
  if (p.diagnostics.size() != 1) return std::to_string(p.diagnostics.size()) + " diagnostics";
  return p.diagnostics[0].format();
}

TEST(YamlDocuments, BuildsTheTreeWithPositionsInTheFile) {
  auto p = parse("a: 1\n---\nkind: Server\nnics: [{network: front}, ~]\n", {});
  ASSERT_TRUE(p.diagnostics.empty());
  ASSERT_EQ(p.documents.documents.size(), 2u);
  const Document& second = p.documents.documents[1];
  const YamlNode& root = *second.node;
  ASSERT_TRUE(root.isMap());
  ASSERT_EQ(root.size(), 2u);
  EXPECT_EQ(root.find("kind")->scalar(), "Server");
  const YamlNode* nics = root.find("nics");
  ASSERT_TRUE(nics && nics->isSequence());
  ASSERT_EQ(nics->size(), 2u);
  EXPECT_TRUE(nics->item(1).isNull());
  EXPECT_EQ(nics->item(0).find("network")->scalar(), "front");
  EXPECT_EQ(second.source.locate(nics->item(0).value(0)).format(), "t.yaml:4:18");
  EXPECT_EQ(root.find("missing"), nullptr);
}

TEST(YamlDocuments, TheNodeBudgetIsTheInputsNotEachDocuments) {
  YamlLimits limits;
  limits.maxNodes = 10;
  EXPECT_EQ(only(parse("[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n", limits)),
            "t.yaml:1:29: more than 10 YAML nodes (an alias counts as every node it stands for)");
  auto p = parse("[1, 2, 3, 4]\n---\n[5, 6, 7, 8]\n---\n[9]\n", limits);
  EXPECT_EQ(only(p), "t.yaml:5:1: more than 10 YAML nodes (an alias counts as every node it stands for)");
  EXPECT_TRUE(p.documents.documents.empty()) << "a budget of the whole input refuses all of it";
  // An alias costs what it stands for: 1 + 3 nodes here. 6 nodes, then b and *x make 11,
  // c and *x 16.
  limits.maxNodes = 12;
  EXPECT_EQ(only(parse("a: &x [1, 2, 3]\nb: *x\nc: *x\n", limits)),
            "t.yaml:3:4: alias '*x' takes the input past 12 YAML nodes (an alias counts as every node it stands for)");
}

TEST(YamlDocuments, TheDocumentLimitCountsDocumentsInsideOneChunkToo) {
  YamlLimits limits;
  limits.maxDocuments = 2;
  EXPECT_EQ(only(parse("a\n---\nb\n---\nc\n", limits)), "t.yaml:4:1: more than 2 YAML documents in one input");
  EXPECT_EQ(only(parse("a\n...\nb\n...\nc\n", limits)), "t.yaml:5:1: more than 2 YAML documents in one input");
  EXPECT_EQ(parse("a\n---\nb\n", limits).documents.documents.size(), 2u);
}

TEST(YamlDocuments, TheLookaheadLimitStopsLongFlowCollectionsButNotBlockOnes) {
  YamlLimits limits;
  limits.maxLookahead = 16384;
  // A flow collection at the top of a document, a block sequence's entry or inside another
  // flow collection may still turn out to be a mapping key: yaml-cpp holds it whole.
  std::string flow = "kind: x\nlist:\n- [";
  std::string block = "kind: x\nlist:\n";
  for (int i = 0; i < 10000; ++i) {
    flow += "item, ";
    block += "- item\n";
  }
  auto blockParsed = parse(block, limits);
  EXPECT_TRUE(blockParsed.diagnostics.empty()) << only(blockParsed);
  EXPECT_EQ(blockParsed.documents.documents[0].node->find("list")->size(), 10000u);
  // Reported at the last node the parser finished: the sequence whose entry it is.
  EXPECT_EQ(only(parse(flow + "last]\n", limits)),
            "t.yaml:3:1: a YAML flow collection ([...] or {...}) or scalar after this point is longer than 16384 "
            "bytes, the most read ahead (write a long list as a block sequence, one '- item' per line)");
}

TEST(YamlDocuments, PerDocumentLimitsCostOnlyThatDocument) {
  YamlLimits limits;
  limits.maxDepth = 2;
  limits.maxScalarBytes = 4;
  auto p = parse("[[[x]]]\n---\nok\n---\nlonger\n---\n[[y]]\n", limits);
  ASSERT_EQ(p.diagnostics.size(), 2u);
  EXPECT_EQ(p.diagnostics[0].format(),
            "t.yaml:1:3: YAML nested more than 2 deep (collections inside collections; a declaration nests 4)");
  EXPECT_EQ(p.diagnostics[1].format(), "t.yaml:5:1: a YAML scalar of 6 bytes; the most accepted is 4");
  ASSERT_EQ(p.documents.documents.size(), 2u);
  EXPECT_EQ(p.documents.documents[0].node->scalar(), "ok");
  EXPECT_TRUE(p.documents.incomplete);
}

}  // namespace
}  // namespace loom::config::detail
