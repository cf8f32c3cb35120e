// The controller's half of the outage rule (controller/Quorum.h), and the rule's claim
// itself (docs/FENCING.md, "The proof"), checked with both halves' real code under a seeded
// model of clocks, delays, losses and partitions.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <queue>
#include <random>

#include "controller/LeaseTable.h"
#include "controller/Quorum.h"
#include "node-agent/Shield.h"
#include "protocol/Fencing.h"

namespace loom::controller {
namespace {

using protocol::fencing::makeStamp;
using protocol::fencing::stampTime;

const QuorumTiming kTiming{2500, 10000};

QuorumSets::Candidate candidate(const std::string& blade, const std::string& chassis = "c1") {
  return {blade, chassis, "tcp://127.0.0.1:7702", ""};
}

std::vector<std::string> names(const QuorumVersion& v) {
  std::vector<std::string> out;
  for (const auto& m : v.members) out.push_back(m.blade);
  return out;
}

TEST(Promises, AnEchoedStampCommitsForLessThanTheWindowFromItsSend) {
  Promises p;
  EXPECT_FALSE(p.counted(0));
  p.onHeartbeat(1000, 900, 0, kTiming);
  EXPECT_TRUE(p.counted(1000));
  EXPECT_TRUE(p.counted(900 + 2400));   // 2500 less 2 % and the slack
  EXPECT_FALSE(p.counted(900 + 2500));  // never the whole window
  // An older echo moves nothing back.
  p.onHeartbeat(1200, 100, 0, kTiming);
  EXPECT_TRUE(p.counted(3000));
}

TEST(Promises, AReportedAttestationKeepsTheBladeUncountedLongerThanItSaid) {
  Promises p;
  p.onHeartbeat(1000, 1000, 300, kTiming);
  EXPECT_FALSE(p.counted(1300));  // it is shielding someone for 300 ms more, by its clock
  EXPECT_FALSE(p.counted(1300 + 9));
  EXPECT_TRUE(p.counted(1000 + 300 + 300 * 3 / 100 + 1 + 10 + 1));
}

TEST(Promises, AYoungAgentProcessMayHaveAttestedBeforeItStarted) {
  Promises p;
  p.onRegister(1000, 4000, kTiming);  // up 4 s: a previous process may have attested 6 s more
  p.onHeartbeat(6900, 6900, 0, kTiming);
  EXPECT_FALSE(p.counted(7000));  // 6000 ms, bounded from above: 6191
  EXPECT_TRUE(p.counted(1000 + 6192));
  Promises old;
  old.onRegister(1000, 10000, kTiming);  // older than an attestation: nothing to fear
  old.onHeartbeat(1000, 1000, 0, kTiming);
  EXPECT_TRUE(old.counted(1001));
}

TEST(Stamps, CarryTheSendTimeAndOnlyTheirIncarnationReadsThem) {
  const auto s = makeStamp(0xabcde, 123456);
  EXPECT_EQ(stampTime(s, 0xabcde), 123456);
  EXPECT_FALSE(stampTime(s, 0xabcdf).has_value());
}

TEST(QuorumSets, MembersStayAndNewcomersSpreadOverChassis) {
  QuorumSets sets(4);
  auto v1 = sets.update({candidate("a1", "a"), candidate("a2", "a"), candidate("a3", "a"), candidate("b1", "b")});
  ASSERT_TRUE(v1);
  EXPECT_EQ(v1->version, 1u);
  EXPECT_EQ(names(*v1), (std::vector<std::string>{"a1", "a2", "a3", "b1"}));
  // The same eligible set: no new version.
  EXPECT_FALSE(sets.update({candidate("a1", "a"), candidate("a2", "a"), candidate("a3", "a"), candidate("b1", "b")}));
  // a2 is fenced; c1 and b2 are eligible: one place, taken by the chassis with fewest (c).
  auto v2 = sets.update(
      {candidate("a1", "a"), candidate("a3", "a"), candidate("b1", "b"), candidate("b2", "b"), candidate("c1", "c")});
  ASSERT_TRUE(v2);
  EXPECT_EQ(v2->version, 2u);
  EXPECT_EQ(names(*v2), (std::vector<std::string>{"a1", "a3", "b1", "c1"}));
}

TEST(QuorumSets, AVersionIsKeptWhileABladeThatMayHoldItIsNotFenced) {
  QuorumSets sets;
  sets.update({candidate("a"), candidate("b"), candidate("c")});
  for (auto b : {"a", "b", "c"}) sets.noteSent(b, 1);
  sets.update({candidate("a"), candidate("b"), candidate("c"), candidate("d")});
  for (auto b : {"a", "b", "c", "d"}) sets.noteSent(b, 2);
  EXPECT_TRUE(sets.dropUnused().empty());  // nobody echoed 2 yet
  sets.noteEcho("a", 2);
  sets.noteEcho("b", 2);
  sets.noteEcho("d", 2);
  EXPECT_TRUE(sets.dropUnused().empty());  // c may still hold 1 (cut off, say)
  EXPECT_EQ(sets.retained().size(), 2u);
  sets.forget("c");  // fenced: it holds no shield
  EXPECT_EQ(sets.dropUnused(), std::vector<std::uint64_t>{1});
  EXPECT_EQ(sets.retained().size(), 1u);
}

TEST(QuorumSets, AfterARestartEveryKnownBladeMayHoldTheOldestRetainedVersion) {
  QuorumSets sets;
  sets.restore({{3, {{"a", "", ""}}, {}}, {2, {{"a", "", ""}, {"b", "", ""}}, {}}}, {"a", "b"});
  EXPECT_EQ(sets.current()->version, 3u);
  EXPECT_EQ(sets.floor("b"), 2u);
  sets.noteSent("b", 3);  // a send does not lower or raise what it may hold
  EXPECT_EQ(sets.floor("b"), 2u);
  sets.noteEcho("a", 3);
  EXPECT_TRUE(sets.dropUnused().empty());
  sets.noteEcho("b", 3);
  EXPECT_EQ(sets.dropUnused(), std::vector<std::uint64_t>{2});
  auto v4 = sets.update({candidate("a"), candidate("b")});
  ASSERT_TRUE(v4);
  EXPECT_EQ(v4->version, 4u);
}

TEST(LeaseTable, TheFirstEchoOfAPolicyVersionReachesTheCore) {
  // The fabric thread keeps a routine blade's plain beats to itself; the core raises a
  // blade's floor (and drops versions nobody holds) only from the echoes it is handed.
  LeaseTable leases;
  leases.publishQuorum(std::make_shared<const std::vector<QuorumVersion>>(
      std::vector<QuorumVersion>{{1, {{"a", "", ""}}, {}}, {2, {{"a", "", ""}, {"b", "", ""}}, {}}}));
  leases.grant("a", 0);
  leases.setRoutine("a", true);
  EXPECT_FALSE(leases.heartbeat("a", 100, false, {}, {0, 1, 0, false}).keep);  // holds an old version
  EXPECT_FALSE(leases.heartbeat("a", 200, false, {}, {0, 2, 0, false}).keep);  // its first echo of 2
  EXPECT_TRUE(leases.heartbeat("a", 300, false, {}, {0, 2, 0, false}).keep);   // routine again
}

TEST(CountsQuorum, HalfOfEveryRetainedVersionIsEnoughAndLessIsNot) {
  std::vector<QuorumVersion> v{{1, {{"a", "", ""}, {"b", "", ""}, {"c", "", ""}, {"d", "", ""}}, {}}};
  auto in = [](std::set<std::string> s) { return [s](const std::string& b) { return s.count(b) > 0; }; };
  EXPECT_TRUE(countsQuorum(v, in({"a", "b"})));  // an even split: the tie is ours
  EXPECT_FALSE(countsQuorum(v, in({"a"})));
  v.push_back({2, {{"a", "", ""}, {"e", "", ""}}, {}});
  EXPECT_FALSE(countsQuorum(v, in({"b", "c"})));  // half of version 1, none of version 2
  EXPECT_TRUE(countsQuorum(v, in({"a", "b"})));
  EXPECT_TRUE(countsQuorum({}, in({})));
}

// ---------------------------------------------------------------------------------------
// The claim, by model checking with the real halves: at no real time does loomd count a
// quorum while a blade holds a shield (docs/FENCING.md). One controller and N agents; every
// process has its own clock (offset, rate within ±0.45 %); frames are delayed, dropped,
// reordered; links are cut and healed at random; agents restart (a new Shield, as a new
// process) and the controller restarts (a new incarnation: old stamps count for nothing).
class Model {
 public:
  Model(std::uint64_t seed, int agents) : rng_(seed), n_(agents) {
    std::uniform_real_distribution<double> rate(-0.0045, 0.0045), offset(0, 1e6);
    ctl_ = {rate(rng_), offset(rng_)};
    for (int i = 0; i < n_; ++i) {
      clocks_.push_back({rate(rng_), offset(rng_)});
      shields_.emplace_back(name(i), local(i, 0));
      promises_.emplace_back();
    }
    for (int i = 0; i < n_; ++i) version_.members.push_back({name(i), "", ""});
    cut_.assign(n_ + 1, std::vector<bool>(n_ + 1, false));
    for (int i = 0; i < n_; ++i) shields_[i].setPolicy(policy());
    for (int i = 0; i < n_; ++i) schedule(0, [this, i] { heartbeat(i); });
    for (int i = 0; i < n_; ++i) schedule(0, [this, i] { tick(i); });
    schedule(0, [this] { renewals(); });
    schedule(0, [this] { chaos(); });
  }

  // Runs until `endMs`; returns the first violation's description, or empty.
  std::string run(double endMs) {
    while (!events_.empty() && events_.top().at <= endMs) {
      auto e = events_.top();
      events_.pop();
      now_ = e.at;
      e.what();
      if (auto v = check(); !v.empty()) return v;
    }
    return {};
  }
  int shieldedChecks() const { return shielded_; }
  int quorumChecks() const { return quorum_; }

 private:
  struct Clock {
    double rate, offset;
  };
  struct Event {
    double at;
    std::uint64_t order;
    std::function<void()> what;
    bool operator>(const Event& o) const { return at != o.at ? at > o.at : order > o.order; }
  };

  static std::string name(int i) { return "b" + std::to_string(i); }
  std::int64_t local(int i, double t) const {
    return static_cast<std::int64_t>(t * (1 + clocks_[i].rate) + clocks_[i].offset);
  }
  std::int64_t ctl(double t) const { return static_cast<std::int64_t>(t * (1 + ctl_.rate) + ctl_.offset); }
  agent::QuorumPolicy policy() const {
    agent::QuorumPolicy p{1, false, kTiming.commitMs, kTiming.attestMs, {}};
    for (int i = 0; i < n_; ++i) p.members.push_back(name(i));
    return p;
  }
  void schedule(double at, std::function<void()> f) { events_.push({at, ++order_, std::move(f)}); }
  // A frame on link (from, to), index n_ being the controller.
  void send(int from, int to, std::function<void()> deliver) {
    if (cut_[from][to] || drop_(rng_) < 0.05) return;
    std::exponential_distribution<double> delay(1.0 / 40);
    const double at = now_ + delay(rng_);
    schedule(at, [this, from, to, deliver = std::move(deliver)] {
      if (!cut_[from][to]) deliver();  // cut while in flight: lost
    });
  }

  void heartbeat(int i) {
    schedule(now_ + 200, [this, i] { heartbeat(i); });
    if (down_[i]) return;
    const auto at = local(i, now_);
    const auto echo = echo_[i];
    const auto attesting = shields_[i].attestingMs(at);
    send(i, n_, [this, i, echo, attesting] {
      if (ctlDown_) return;
      std::optional<std::int64_t> sent;
      if (echo) sent = stampTime(*echo, tag_);
      promises_[i].onHeartbeat(ctl(now_) - ctlStart_, sent, attesting, kTiming);
    });
  }
  // The agent's timer, every 10 ms: its asks (and, through run(), a look at the claim).
  void tick(int i) {
    schedule(now_ + 10, [this, i] { tick(i); });
    if (down_[i]) return;
    for (const auto& a : shields_[i].asksDue(local(i, now_))) ask(i, a);
  }
  void renewals() {
    schedule(now_ + 200, [this] { renewals(); });
    if (ctlDown_) return;
    for (int i = 0; i < n_; ++i) {
      const auto stamp = makeStamp(tag_, ctl(now_) - ctlStart_);
      send(n_, i, [this, i, stamp] {
        if (down_[i]) return;
        shields_[i].heardController(local(i, now_));
        echo_[i] = stamp;
      });
    }
  }
  void ask(int i, const agent::Shield::Ask& a) {
    const int j = std::stoi(a.member.substr(1));
    send(i, j, [this, i, j, seq = a.seq] {
      if (down_[j]) return;
      const auto answer = shields_[j].answer(local(j, now_));
      send(j, i, [this, i, j, seq, answer] {
        if (!down_[i]) shields_[i].onAnswer(name(j), seq, answer, local(i, now_));
      });
    });
  }
  void chaos() {
    schedule(now_ + std::uniform_real_distribution<double>(100, 3000)(rng_), [this] { chaos(); });
    std::uniform_int_distribution<int> pick(0, 9);
    const int what = pick(rng_);
    std::uniform_int_distribution<int> node(0, n_);
    if (what < 4) {  // cut or heal a random set of links
      const bool cutting = what < 2;
      const int a = node(rng_);
      for (int b = 0; b <= n_; ++b)
        if (b != a && drop_(rng_) < 0.6) cut_[a][b] = cut_[b][a] = cutting;
    } else if (what < 6) {  // a partition: a random side, cut from the rest
      std::vector<bool> side(n_ + 1);
      for (auto&& s : side) s = drop_(rng_) < 0.5;
      for (int a = 0; a <= n_; ++a)
        for (int b = 0; b <= n_; ++b) cut_[a][b] = side[a] != side[b];
    } else if (what == 6) {  // heal everything
      for (auto& row : cut_) std::fill(row.begin(), row.end(), false);
    } else if (what == 7) {  // an agent process restarts (after a moment down)
      const int i = std::uniform_int_distribution<int>(0, n_ - 1)(rng_);
      down_[i] = true;
      schedule(now_ + 300, [this, i] {
        shields_[i] = agent::Shield(name(i), local(i, now_));
        shields_[i].setPolicy(policy());
        echo_[i].reset();
        down_[i] = false;
        // Its register, once loomd hears it.
        send(i, n_, [this, i, at = local(i, now_)] {
          if (!ctlDown_) promises_[i].onRegister(ctl(now_) - ctlStart_, local(i, now_) - at, kTiming);
        });
      });
    } else if (what == 8) {  // loomd restarts: a new incarnation knows no promise
      ctlDown_ = true;
      schedule(now_ + 500, [this] {
        ctlDown_ = false;
        tag_ = (tag_ + 1) & protocol::fencing::kStampTagMask;
        ctlStart_ = ctl(now_);
        for (auto& p : promises_) p = Promises{};
      });
    } else {  // loomd frozen for a while: it runs nothing, sends nothing
      ctlDown_ = true;
      schedule(now_ + std::uniform_real_distribution<double>(1000, 15000)(rng_), [this] { ctlDown_ = false; });
    }
  }

  std::string check() {
    const auto t = ctl(now_) - ctlStart_;
    const bool quorum = !ctlDown_ && countsQuorum({version_}, [&](const std::string& b) {
      return promises_[std::stoi(b.substr(1))].counted(t);
    });
    quorum_ += quorum;
    for (int i = 0; i < n_; ++i) {
      const bool shielded = !down_[i] && shields_[i].shieldEnd() > local(i, now_);
      shielded_ += shielded;
      if (quorum && shielded)
        return "at " + std::to_string(now_) + " ms loomd counts a quorum while " + name(i) + " holds a shield until " +
               std::to_string(shields_[i].shieldEnd() - local(i, now_)) + " ms from now";
    }
    return {};
  }

  std::mt19937_64 rng_;
  std::uniform_real_distribution<double> drop_{0, 1};
  int n_;
  Clock ctl_;
  std::vector<Clock> clocks_;
  std::vector<agent::Shield> shields_;
  std::vector<Promises> promises_;
  std::map<int, std::optional<std::uint64_t>> echo_;
  std::map<int, bool> down_;
  std::vector<std::vector<bool>> cut_;
  QuorumVersion version_{1, {}, {}};
  std::priority_queue<Event, std::vector<Event>, std::greater<>> events_;
  std::uint64_t order_ = 0;
  double now_ = 0;
  bool ctlDown_ = false;
  std::uint32_t tag_ = 7;
  std::int64_t ctlStart_ = 0;
  int shielded_ = 0, quorum_ = 0;
};

TEST(OutageRule, NoShieldWhileLoomdCountsAQuorumUnderSeededChaos) {
  int shielded = 0, quorum = 0;
  for (std::uint64_t seed = 1; seed <= 200; ++seed) {
    for (int agents : {3, 4, 5}) {
      Model m(seed, agents);
      const auto violation = m.run(60000);
      ASSERT_TRUE(violation.empty()) << "seed " << seed << ", " << agents << " agents: " << violation;
      shielded += m.shieldedChecks();
      quorum += m.quorumChecks();
    }
  }
  // The model must exercise both sides, or it proves nothing.
  EXPECT_GT(shielded, 1000);
  EXPECT_GT(quorum, 1000);
}

}  // namespace
}  // namespace loom::controller
