// Completion and line splitting in-process: the logic the shell and the bash script
// share, with names from a fixed table instead of a controller.
#include <gtest/gtest.h>

#include "tools/loomctl/App.h"

namespace {

using loom::loomctl::complete;
using loom::loomctl::splitWords;

std::vector<std::string> fixedNames(const std::string& what) {
  if (what == "blades") return {"c1-s1", "c1-s2", "c2-s1"};
  if (what == "pools") return {"db", "web"};
  if (what == "servers") return {"web-0", "web-1"};
  if (what == "chassis") return {"c1", "c2"};
  if (what == "partitions") return {"dev", "prod"};
  return {};
}

std::vector<std::string> words(std::initializer_list<const char*> w) { return {w.begin(), w.end()}; }

TEST(Completion, OffersNounsAtTheTop) {
  auto c = complete(words({""}), fixedNames, false);
  for (const char* noun :
       {"apply", "blade", "capacity", "delete", "events", "fabric", "plan", "pool", "server", "shell", "validate"})
    EXPECT_NE(std::find(c.words.begin(), c.words.end(), noun), c.words.end()) << noun;
  EXPECT_EQ(complete(words({"bl"}), fixedNames, false).words, words({"blade"}));
}

TEST(Completion, ShellAddsItsOwnWordsAndHidesShell) {
  auto c = complete(words({""}), fixedNames, true);
  EXPECT_NE(std::find(c.words.begin(), c.words.end(), "exit"), c.words.end());
  EXPECT_EQ(std::find(c.words.begin(), c.words.end(), "shell"), c.words.end());
}

TEST(Completion, OffersVerbsOfANoun) {
  EXPECT_EQ(complete(words({"blade", ""}), fixedNames, false).words,
            words({"drain", "fence", "list", "retire", "show", "undrain"}));
  EXPECT_EQ(complete(words({"server", "m"}), fixedNames, false).words, words({"move"}));
}

TEST(Completion, OffersLiveNamesForTheNameArgument) {
  EXPECT_EQ(complete(words({"blade", "show", "c1"}), fixedNames, false).words, words({"c1-s1", "c1-s2"}));
  EXPECT_EQ(complete(words({"server", "stop", ""}), fixedNames, false).words, words({"web-0", "web-1"}));
  EXPECT_EQ(complete(words({"pool", "show", "w"}), fixedNames, false).words, words({"web"}));
  // Only one NAME: after it, nothing more to name.
  EXPECT_TRUE(complete(words({"blade", "show", "c1-s1", "c"}), fixedNames, false).words.empty());
}

TEST(Completion, OffersFlagsAndTheirValues) {
  auto flags = complete(words({"blade", "list", "--"}), fixedNames, false).words;
  for (const char* f : {"--pool", "--chassis", "--state", "--selector", "--output", "--controller", "--help"})
    EXPECT_NE(std::find(flags.begin(), flags.end(), f), flags.end()) << f;
  EXPECT_EQ(complete(words({"blade", "list", "--pool", ""}), fixedNames, false).words, words({"db", "web"}));
  EXPECT_EQ(complete(words({"-o", "j"}), fixedNames, false).words, words({"json"}));
  EXPECT_EQ(complete(words({"server", "move", "web-0", "--to", "c2"}), fixedNames, false).words, words({"c2-s1"}));
  EXPECT_TRUE(complete(words({"apply", "-f", ""}), fixedNames, false).files);
  EXPECT_EQ(complete(words({"blade", "fence", "c1-s1", "--conf"}), fixedNames, false).words,
            words({"--confirm-powered-off"}));
  // A flag's value is skipped when finding the command: `-o json blade` still completes verbs.
  EXPECT_EQ(complete(words({"-o", "json", "blade", "li"}), fixedNames, false).words, words({"list"}));
}

// Each noun's --state offers that noun's states, and only those.
TEST(Completion, StateOffersTheNounsStates) {
  const auto blades = complete(words({"blade", "list", "--state", ""}), fixedNames, false).words;
  EXPECT_NE(std::find(blades.begin(), blades.end(), "maintenance"), blades.end());
  EXPECT_NE(std::find(blades.begin(), blades.end(), "fenced"), blades.end());
  EXPECT_EQ(std::find(blades.begin(), blades.end(), "running"), blades.end()) << "a server state";
  EXPECT_EQ(complete(words({"server", "list", "--state", "st"}), fixedNames, false).words,
            words({"starting", "stopped", "stopping"}));
  EXPECT_EQ(complete(words({"blade", "list", "--state", "st"}), fixedNames, false).words, words({}));
}

// `get KIND`: the kinds it takes.
TEST(Completion, GetOffersTheDeclaredKinds) {
  EXPECT_EQ(complete(words({"get", "p"}), fixedNames, false).words, words({"partition", "pool"}));
  EXPECT_EQ(complete(words({"get", "pool", "w"}), fixedNames, false).words, words({"web"}));
  EXPECT_EQ(complete(words({"partition", "show", "p"}), fixedNames, false).words, words({"prod"}));
}

TEST(SplitWords, QuotesAndEscapesAsAShellDoes) {
  std::vector<std::string> w;
  bool blank = false;
  ASSERT_TRUE(splitWords(R"(apply -f "my file.yaml" --x='a b' c\ d)", w, &blank));
  EXPECT_EQ(w, words({"apply", "-f", "my file.yaml", "--x=a b", "c d"}));
  EXPECT_FALSE(blank);
  ASSERT_TRUE(splitWords("blade show ", w, &blank));
  EXPECT_TRUE(blank);
  EXPECT_FALSE(splitWords("echo 'unterminated", w));
}

}  // namespace
