// The agent's half of the outage rule (node-agent/Shield.h): the promises it keeps and the
// shield it earns.
#include <gtest/gtest.h>

#include <map>

#include "node-agent/Shield.h"

namespace loom::agent {
namespace {

constexpr std::int64_t kCommit = 2500, kAttest = 10000;

QuorumPolicy policy(std::vector<std::string> members, std::uint64_t version = 1) {
  return {version, false, kCommit, kAttest, std::move(members)};
}

// Asks every due member and has those in `yes` attest (`valid` ms), the others refuse.
void answerAll(Shield& s, std::int64_t now, const std::set<std::string>& yes, std::int64_t latency = 5) {
  for (const auto& a : s.asksDue(now)) {
    PeerAnswer ans = yes.count(a.member) ? PeerAnswer{true, kAttest, 0} : PeerAnswer{false, 0, 1000};
    s.onAnswer(a.member, a.seq, ans, now + latency);
  }
}

TEST(Shield, AttestsOnlyOnceTheCommitWindowAfterTheLastStampHasPassed) {
  Shield s("a", 0);
  EXPECT_FALSE(s.answer(100).attest);  // no policy: it knows no rule to follow
  s.setPolicy(policy({"a", "b", "c"}));
  const std::int64_t t = 30000;  // long after this process started
  s.heardController(t);
  auto early = s.answer(t + kCommit - 1);
  EXPECT_FALSE(early.attest);
  EXPECT_EQ(early.retryMs, 1);
  EXPECT_EQ(s.attestingMs(t + kCommit - 1), 0);
  auto yes = s.answer(t + kCommit);
  EXPECT_TRUE(yes.attest);
  EXPECT_EQ(yes.validMs, kAttest);
  EXPECT_EQ(s.attestingMs(t + kCommit), kAttest);  // reported until it ends
  EXPECT_EQ(s.attestingMs(t + kCommit + kAttest), 0);
}

TEST(Shield, ANewProcessCoversWhatItsPredecessorMayHavePromised) {
  Shield s("a", 50000);  // started at 50 s: an old process may have heard loomd at 49.9 s
  s.setPolicy(policy({"a", "b", "c"}));
  EXPECT_FALSE(s.answer(50000 + kCommit - 1).attest);
  EXPECT_EQ(s.attestingMs(50000), kAttest);  // and may have attested at 49.9 s
}

TEST(Shield, ShieldsWithAStrictMajorityCountedFromItsOwnAsks) {
  Shield s("a", 0);
  s.setPolicy(policy({"a", "b", "c", "d", "e"}));
  s.heardController(0);
  // It asks nobody before loomd has been quiet for the commit window.
  EXPECT_TRUE(s.asksDue(kCommit - 1).empty());
  const std::int64_t t = kCommit;
  answerAll(s, t, {"b", "c"});
  // a (itself), b, c: 3 of 5. Credits count from the ask at t, less 2 % and 10 ms.
  EXPECT_EQ(s.shieldEnd(), t + 9800 - 10);
  EXPECT_EQ(s.support(t + 1).first, 3u);
}

TEST(Shield, TwoOfFourIsNoShield) {
  Shield s("a", 0);
  s.setPolicy(policy({"a", "b", "c", "d"}));
  answerAll(s, kCommit, {"b"});
  EXPECT_EQ(s.shieldEnd(), 0);
  answerAll(s, kCommit + 1100, {"b", "c"});  // asked again after its 1 s refusal, c attests: 3 of 4
  EXPECT_GT(s.shieldEnd(), kCommit + 1100);
}

TEST(Shield, AsksNothingWhileLoomdIsHeardAndNothingWhenPowerFenced) {
  Shield s("a", 0);
  s.setPolicy(policy({"a", "b", "c"}));
  for (std::int64_t t = 0; t < 20000; t += 500) {
    s.heardController(t);
    EXPECT_TRUE(s.asksDue(t + 100).empty()) << t;
  }
  Shield p("a", 0);
  QuorumPolicy power = policy({"a", "b", "c"});
  power.powerFenced = true;
  p.setPolicy(power);
  EXPECT_TRUE(p.asksDue(60000).empty());
}

TEST(Shield, RenewsBeforeTheCreditsRunOutSoTheShieldNeverLapses) {
  Shield s("a", 0);
  s.setPolicy(policy({"a", "b", "c"}));
  s.heardController(0);
  std::int64_t lapses = 0, held = 0;
  for (std::int64_t t = kCommit; t < 120000; t += 100) {
    answerAll(s, t, {"b", "c"});
    if (t > kCommit + 200) (s.shieldEnd() > t ? held : lapses)++;
  }
  EXPECT_EQ(lapses, 0);
  EXPECT_GT(held, 1000);
}

TEST(Shield, IgnoresAnswersToAsksItNeverSentAndRetriesARefusalLater) {
  Shield s("a", 0);
  s.setPolicy(policy({"a", "b", "c"}));
  s.onAnswer("b", 77, {true, kAttest, 0}, kCommit);
  s.onAnswer("c", 78, {true, kAttest, 0}, kCommit);
  EXPECT_EQ(s.shieldEnd(), 0);
  auto asks = s.asksDue(kCommit);
  ASSERT_EQ(asks.size(), 2u);
  for (const auto& a : asks) s.onAnswer(a.member, a.seq, {false, 0, 800}, kCommit + 5);
  EXPECT_TRUE(s.asksDue(kCommit + 500).empty());  // the refusals said 800 ms
  EXPECT_EQ(s.asksDue(kCommit + 805).size(), 2u);
}

TEST(Shield, AnOlderPolicyCannotReplaceANewerOne) {
  Shield s("a", 0);
  EXPECT_TRUE(s.setPolicy(policy({"a", "b", "c"}, 2)));
  EXPECT_FALSE(s.setPolicy(policy({"a"}, 1)));
  EXPECT_EQ(s.policy().members.size(), 3u);
}

TEST(Shield, DroppingAfterASelfFenceForgetsTheCredits) {
  Shield s("a", 0);
  s.setPolicy(policy({"a", "b", "c"}));
  answerAll(s, kCommit, {"b", "c"});
  ASSERT_GT(s.shieldEnd(), kCommit);
  s.drop();
  EXPECT_EQ(s.shieldEnd(), 0);
}

}  // namespace
}  // namespace loom::agent
