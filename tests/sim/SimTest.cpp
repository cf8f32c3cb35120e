// The simulator's own parts: its store keeps loomd's contract, its clocks convert both
// ways, its network cuts and holds, its judges see what they must on histories made by
// hand (so a judge that cannot fail would show here), and a seed replays bit for bit.
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <deque>

#include "tests/sim/Invariants.h"
#include "tests/sim/MemoryStateStore.h"
#include "tests/sim/ProcessClock.h"
#include "tests/sim/SimElection.h"
#include "tests/sim/SimStore.h"
#include "tests/sim/Simulation.h"

namespace loom::sim {
namespace {

TEST(MemoryStateStore, LoadsWhatWasCommittedAsSqliteWould) {
  MemoryStateStore store;
  controller::Change c;
  c.putDeclarations.push_back({"Server", "web-01", R"({"name":"web-01"})"});
  c.putDeclarations.push_back({"Pool", "web", R"({"name":"web"})"});
  c.putBindings["web-01"] = "c1-s1";
  c.putBindings["web-02"] = "c1-s2";
  c.putIdentities.push_back({"web-01", "default", {"4c4f4f4d-0000-0000-0000-000000000001", {"52:54:00:10:00:01"}}});
  c.putBlades.push_back({"c1-s1", R"({"cores":16})", "maintenance", 42});
  c.putOperations.push_back({7, "c1-s1", "web-01", "start", "pending", 1, ""});
  c.putOperations.push_back({8, "c1-s1", "web-01", "define", "done", 1, ""});
  c.appendEvents.push_back({1, 100, "info", "c1-s1", "", "hello"});
  c.appendEvents.push_back({2, 101, "error", "", "web-01", "boom"});
  ASSERT_TRUE(store.commit(c));
  controller::Change d;
  d.deleteBindings.push_back("web-02");
  d.putDeclarations.push_back({"Server", "web-01", R"({"name":"web-01","vcpus":4})"});
  d.putBlades.push_back({"c1-s1", R"({"cores":8})", "", 99});
  ASSERT_TRUE(store.commit(d));

  auto st = store.load();
  ASSERT_TRUE(st);
  ASSERT_EQ(st->declarations.size(), 2u);
  EXPECT_EQ(st->declarations[0].body,
            R"({"name":"web-01","vcpus":4})");  // an upsert keeps its place
  EXPECT_EQ(st->bindings, (std::map<std::string, std::string>{{"web-01", "c1-s1"}}));
  ASSERT_EQ(st->blades.size(), 1u);
  EXPECT_EQ(st->blades[0].adminState, "");
  EXPECT_EQ(st->blades[0].firstSeenMs, 42);  // first seen stays
  ASSERT_EQ(st->pendingOperations.size(), 1u);
  EXPECT_EQ(st->pendingOperations[0].id, 7u);
  EXPECT_EQ(st->lastOperationId, 8u);
  EXPECT_EQ(st->lastEventId, 2u);
  auto ev = store.events(1, 10);
  ASSERT_TRUE(ev);
  ASSERT_EQ(ev->size(), 1u);
  EXPECT_EQ((*ev)[0].message, "boom");
}

TEST(MemoryStateStore, AFailingCommitAppliesNothing) {
  MemoryStateStore store;
  store.setFailing(true);
  controller::Change c;
  c.putBindings["web-01"] = "c1-s1";
  EXPECT_FALSE(store.commit(c));
  store.setFailing(false);
  EXPECT_TRUE(store.load()->bindings.empty());
}

TEST(ProcessClock, RealAtIsTheFirstMillisecondTheLocalClockReachesIt) {
  for (std::int64_t ppm : {-5000, -1234, 0, 777, 5000}) {
    ProcessClock c(123'456'789, ppm);
    for (std::int64_t t : {0, 1, 999, 5000, 86'400'000}) {
      const std::int64_t l = c.local(t);
      const std::int64_t r = c.realAt(l);
      EXPECT_LE(r, t) << ppm;
      EXPECT_GE(c.local(r), l);
      if (r > 0) {
        EXPECT_LT(c.local(r - 1), l);
      }
    }
  }
  ProcessClock fast(0, 5000);
  EXPECT_EQ(fast.local(10'000), 10'050);  // 0.5 % fast
  EXPECT_EQ(fast.realAt(10'050), 10'000);
}

TEST(Network, CutDropsOrHoldsAndFifoKeepsOrder) {
  std::vector<std::pair<std::int64_t, std::uint64_t>> delivered;
  NetworkProfile profile;
  profile.fifo = true;
  Network net(3, profile, Rng(7), [&](std::int64_t at, Packet p) { delivered.emplace_back(at, p.id); });
  for (std::uint64_t i = 1; i <= 50; ++i)
    net.send(Packet{i, 1, 0, Channel::Fabric, "x", 0, 0, false}, static_cast<std::int64_t>(i));
  ASSERT_EQ(delivered.size(), 50u);
  for (std::size_t i = 1; i < delivered.size(); ++i) EXPECT_LE(delivered[i - 1].first, delivered[i].first);
  delivered.clear();
  net.cut(0, 1, /*hold=*/false, 100);
  net.send(Packet{60, 1, 0, Channel::Fabric, "x", 0, 0, false}, 100);
  EXPECT_TRUE(delivered.empty());
  net.uncut(0, 1, false, 200);
  EXPECT_TRUE(delivered.empty());  // lost, not held
  net.cut(0, 1, /*hold=*/true, 300);
  net.send(Packet{61, 1, 0, Channel::Fabric, "x", 0, 0, false}, 300);
  EXPECT_TRUE(delivered.empty());
  EXPECT_EQ(net.state(1, 0), LinkState::Cut);
  net.uncut(0, 1, true, 5000);
  ASSERT_EQ(delivered.size(), 1u);  // retransmitted once healed
  EXPECT_GE(delivered[0].first, 5000);
  EXPECT_EQ(net.state(0, 1), LinkState::Up);
}

std::vector<std::string> names(int blades) {
  std::vector<std::string> n{"loomd"};
  for (int i = 1; i <= blades; ++i) n.push_back("b" + std::to_string(i));
  return n;
}

// Five blades, all running since 0, every link up since 0.
OutageJudge healthyFabric(int blades = 5) {
  OutageJudge j(blades, Windows::forLease(5000, 50));
  for (int n = 0; n <= blades; ++n) j.setRunning(n, true, 0);
  // Every blade holds a policy whose quorum set is the whole fabric.
  std::vector<int> all;
  for (int n = 1; n <= blades; ++n) all.push_back(n);
  for (int n = 1; n <= blades; ++n) j.setMembers(n, all);
  return j;
}

TEST(OutageJudge, ASelfFenceWhileLoomdIsFrozenIsAViolation) {
  auto j = healthyFabric();
  j.setRunning(0, false, 60'000);              // loomd SIGSTOPped
  EXPECT_FALSE(j.judge(1, 61'000, names(5)));  // too early: no peer may attest yet
  auto v = j.judge(1, 60'000 + j.windows().controllerOutMs, names(5));
  ASSERT_TRUE(v);
  EXPECT_NE(v->find("5 of the 5 blades of its quorum set could shield it"), std::string::npos) << *v;
}

TEST(OutageJudge, CountsTheQuorumSetOfTheBladesPolicy) {
  auto j = healthyFabric(7);
  for (int b : {1, 2, 3}) j.setLink(0, b, LinkState::Cut, 60'000);  // loomd keeps b4..b7
  EXPECT_FALSE(j.judge(1, 70'000, names(7)));                       // 3 of 7: no shield, it must fence itself
  j.setMembers(1, {1, 2, 3, 4, 5});                                 // loomd fenced b6 and b7 earlier: 3 of 5
  EXPECT_TRUE(j.judge(1, 70'000, names(7)));
  j.setMembers(1, {});  // never told who its peers are: it could ask no one
  EXPECT_FALSE(j.judge(1, 70'000, names(7)));
}

TEST(OutageJudge, ABladeCutOffAloneMayFenceItself) {
  auto j = healthyFabric();
  for (int n = 0; n <= 5; ++n)
    if (n != 3) j.setLink(3, n, LinkState::Cut, 60'000);
  EXPECT_FALSE(j.judge(3, 70'000, names(5)));
}

TEST(OutageJudge, AChassisCutFromLoomdWhosePeersStillHearItMayFence) {
  auto j = healthyFabric();
  j.setLink(0, 1, LinkState::Cut, 60'000);  // b1 and b2 lost their relay pair
  j.setLink(0, 2, LinkState::Cut, 60'000);
  EXPECT_FALSE(j.judge(1, 70'000, names(5)));  // b3..b5 hear loomd: no shield for b1
}

TEST(OutageJudge, AMajorityThatLostLoomdShieldsEachOther) {
  auto j = healthyFabric();
  for (int a : {0, 4, 5})  // loomd left with a minority {b4, b5}
    for (int b : {1, 2, 3}) j.setLink(a, b, LinkState::Cut, 60'000);
  EXPECT_TRUE(j.judge(2, 70'000, names(5)));
  EXPECT_FALSE(j.judge(4, 70'000, names(5)));  // b4 is on loomd's side: no peer of it lost loomd
}

TEST(OutageJudge, AnEvenSplitShieldsNeitherHalf) {
  auto j = healthyFabric(4);
  for (int a : {0, 1, 2})
    for (int b : {3, 4}) j.setLink(a, b, LinkState::Cut, 60'000);
  EXPECT_FALSE(j.judge(3, 70'000, names(4)));
}

TEST(OutageJudge, AFrozenOrRecentlyRestartedBladeIsNotJudged) {
  auto j = healthyFabric();
  j.setRunning(0, false, 60'000);
  j.setRunning(2, false, 61'000);
  j.setRunning(2, true, 64'000);
  EXPECT_FALSE(j.judge(2, 66'000, names(5)));
  // Nor counted as a shield: 4 of 5 remain, still a majority for b1.
  EXPECT_TRUE(j.judge(1, 66'000, names(5)));
}

TEST(OutageJudge, RecentlyHealedLinksDoNotCount) {
  auto j = healthyFabric();
  j.setRunning(0, false, 60'000);
  for (int b : {2, 3, 4}) {
    j.setLink(1, b, LinkState::Cut, 10'000);
    j.setLink(1, b, LinkState::Up, 59'000);  // up again, but for less than W at 66 s
  }
  EXPECT_FALSE(j.judge(1, 66'000, names(5)));
}

TEST(DoubleRunJudge, ServerOnTwoBladesAtOnce) {
  DoubleRunJudge j;
  EXPECT_FALSE(j.update("b1", {{"u1", "web-0"}}, 10));
  EXPECT_FALSE(j.update("b2", {{"u2", "web-1"}}, 11));
  EXPECT_FALSE(j.update("b1", {}, 12));
  EXPECT_FALSE(j.update("b2", {{"u2", "web-1"}, {"u1", "web-0"}}, 13));  // moved: stopped first
  auto v = j.update("b1", {{"u1", "web-0"}}, 14);
  ASSERT_TRUE(v);
  EXPECT_NE(v->find("web-0"), std::string::npos);
}

// ---- The simulated etcd

controller::Change aBinding(const std::string& server, const std::string& blade) {
  controller::Change c;
  c.putBindings[server] = blade;
  return c;
}

TEST(SimStore, ALeaseExpiresItsTtlAfterTheLastKeepAliveItReceivedNeverEarlier) {
  SimStore store(1);
  const auto lease = store.grant(1, 10'000);
  EXPECT_EQ(lease.ttlSeconds, 1);
  ASSERT_TRUE(store.keepAlive(lease.id, 10'600));
  ASSERT_TRUE(store.campaign("loomd-a", lease.id, 10'700)->succeeded);
  EXPECT_TRUE(store.leader(11'599));   // 999 ms after the last keep-alive: still there
  EXPECT_FALSE(store.leader(11'600));  // its ttl after it: gone, and the key with it
  auto again = store.keepAlive(lease.id, 11'601);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, Errc::NotFound);
}

TEST(SimStore, GrantsAtLeastItsMinimumTtl) {
  SimStore store(2);
  EXPECT_EQ(store.grant(1, 0).ttlSeconds, 2);
  EXPECT_EQ(store.grant(3, 0).ttlSeconds, 3);
}

TEST(SimStore, TheLeaderKeysCreateRevisionIsTheEpochAndOnlyGrows) {
  SimStore store(1);
  const auto a = store.grant(1, 0), b = store.grant(1, 0);
  auto won = store.campaign("loomd-a", a.id, 0);
  ASSERT_TRUE(won && won->succeeded);
  const std::int64_t first = won->revision;
  EXPECT_EQ(store.leader(0)->createRevision, first);
  EXPECT_FALSE(store.campaign("loomd-b", b.id, 1)->succeeded);  // taken: create-if-absent
  ASSERT_TRUE(store.commit(aBinding("web-0", "c1-s1"), static_cast<std::uint64_t>(first), 2));
  store.revoke(a.id, 3);  // resign: the key goes at once
  EXPECT_FALSE(store.leader(3));
  won = store.campaign("loomd-b", b.id, 4);
  ASSERT_TRUE(won && won->succeeded);
  EXPECT_GT(won->revision, first + 1);  // the commit and the deletion were writes too
  EXPECT_EQ(store.leader(4)->holder, "loomd-b");
  store.revoke(b.id, 5);
  EXPECT_FALSE(store.campaign("loomd-a", a.id, 6)) << "a put under a lease that is gone fails the txn";
}

TEST(SimStore, ACommitOfAPastTermWritesNothingAndFails) {
  SimStore store(1);
  const auto a = store.grant(1, 0);
  const auto epoch = static_cast<std::uint64_t>(store.campaign("loomd-a", a.id, 0)->revision);
  std::vector<std::pair<std::uint64_t, std::int64_t>> applied;
  store.onCommitApplied = [&](std::uint64_t e, std::int64_t key) { applied.emplace_back(e, key); };
  ASSERT_TRUE(store.commit(aBinding("web-0", "c1-s1"), epoch, 100));
  // The lease runs out; the next leader's term begins.
  const auto b = store.grant(1, 2000);
  const auto next = static_cast<std::uint64_t>(store.campaign("loomd-b", b.id, 2000)->revision);
  auto stale = store.commit(aBinding("web-0", "c2-s9"), epoch, 2001);
  ASSERT_FALSE(stale);
  EXPECT_EQ(stale.error().code, Errc::Conflict);
  EXPECT_EQ(store.load(2001)->bindings.at("web-0"), "c1-s1");
  EXPECT_EQ(store.commitsRefused(), 1u);
  ASSERT_TRUE(store.commit(aBinding("web-0", "c2-s1"), next, 2002));
  ASSERT_EQ(applied.size(), 2u);
  EXPECT_EQ(applied[1], std::make_pair(next, static_cast<std::int64_t>(next)));
  // With the guard off (only to show the judge can fail) the past term's write lands.
  store.setGuardEnforced(false);
  ASSERT_TRUE(store.commit(aBinding("web-0", "c2-s9"), epoch, 2003));
  EXPECT_EQ(applied.back(), std::make_pair(epoch, static_cast<std::int64_t>(next)));
}

TEST(SimStore, WithoutQuorumNoLeaseExpiresAndEachGetsAFullTtlWhenItReturns) {
  SimStore store(1);
  const auto a = store.grant(1, 0);
  ASSERT_TRUE(store.campaign("loomd-a", a.id, 0)->succeeded);
  store.setQuorum(false, 500);
  EXPECT_FALSE(store.hasQuorum());
  EXPECT_TRUE(store.leader(30'000));  // the lessor cannot revoke
  store.setQuorum(true, 30'000);
  EXPECT_TRUE(store.leader(30'999));
  EXPECT_FALSE(store.leader(31'000));
  // A lease that ran out before the quorum was lost stays gone.
  const auto b = store.grant(1, 40'000);
  ASSERT_TRUE(store.campaign("loomd-b", b.id, 40'000)->succeeded);
  store.setQuorum(false, 41'500);
  store.setQuorum(true, 50'000);
  EXPECT_FALSE(store.leader(50'000));
}

// ---- The election's mirror, against the store directly (no network: each call answered
// at once, unless the test holds it)

struct ElectionRig {
  SimStore store{1};
  std::int64_t now = 1'000'000;  // the replica's clock; the store's runs 1 000 000 behind
  controller::Leadership leadership{controller::Leadership::Mode::Replica, [this] { return now; }};
  std::deque<SimElection::Call> held;
  bool hold = false;
  std::vector<std::uint64_t> won;
  std::vector<std::string> lost;
  std::unique_ptr<SimElection> election;

  explicit ElectionRig(std::int64_t marginMs = 100) {
    SimElection::Options o;
    o.name = "loomd-a";
    o.marginMs = marginMs;
    SimElection::Io io;
    io.send = [this](const SimElection::Call& c) {
      if (hold) return held.push_back(c);
      answer(c);
    };
    io.won = [this](std::uint64_t e) { won.push_back(e); };
    io.lost = [this](const char* why) { lost.emplace_back(why); };
    election = std::make_unique<SimElection>(o, leadership, std::move(io), now);
  }
  SimElection::Reply reply(const SimElection::Call& c) {
    const std::int64_t at = now - 1'000'000;
    SimElection::Reply r;
    switch (c.op) {
      case SimElection::Op::Range:
        if (auto l = store.leader(at)) r.createRevision = l->createRevision;
        break;
      case SimElection::Op::Grant: {
        auto g = store.grant(c.ttlSeconds, at);
        r.lease = g.id;
        r.ttlSeconds = g.ttlSeconds;
        break;
      }
      case SimElection::Op::Campaign: {
        auto w = store.campaign(c.holder, c.lease, at);
        r.succeeded = w && w->succeeded;
        r.revision = w ? w->revision : 0;
        break;
      }
      case SimElection::Op::KeepAlive:
        if (auto t = store.keepAlive(c.lease, at); !t) {
          r.ok = false;
          r.code = t.error().code;
        }
        break;
      case SimElection::Op::Revoke:
        store.revoke(c.lease, at);
        break;
    }
    return r;
  }
  // Replies are delivered from the test's own loop, not from inside send().
  std::deque<std::pair<std::uint64_t, SimElection::Reply>> replies;
  void answer(const SimElection::Call& c) { replies.emplace_back(c.id, reply(c)); }
  // Runs the election until `until` on its clock: timers, then the replies due.
  void runUntil(std::int64_t until) {
    while (true) {
      if (!replies.empty()) {
        auto [id, r] = replies.front();
        replies.pop_front();
        election->reply(id, r, now, now);
        continue;
      }
      const std::int64_t next = election->nextTimerAt();
      if (next > until) break;
      now = std::max(now, next);
      election->onTimer(now);
    }
    now = until;
  }
};

TEST(SimElection, WinsAVacantKeyAndActsUntilSentPlusTtlTimesOneMinusRhoMinusMargin) {
  ElectionRig rig;
  const std::int64_t start = rig.now;
  rig.election->campaign(rig.now);
  rig.runUntil(start + 1);
  ASSERT_EQ(rig.won.size(), 1u);
  EXPECT_EQ(rig.election->epoch(), rig.won[0]);
  EXPECT_EQ(rig.leadership.epoch(), rig.won[0]);
  // Granted 1 s: acting 1000 * 0.99 - 100 = 890 ms past the grant's send time.
  EXPECT_EQ(rig.leadership.actUntil(), start + 890);
  EXPECT_TRUE(rig.leadership.acting(start + 889));
  EXPECT_FALSE(rig.leadership.acting(start + 890));
}

TEST(SimElection, RenewsEveryQuarterTtlAndActsFromTheLastAnsweredRenewal) {
  ElectionRig rig;
  const std::int64_t start = rig.now;
  rig.election->campaign(rig.now);
  rig.runUntil(start + 10'000);
  EXPECT_EQ(rig.won.size(), 1u);
  EXPECT_TRUE(rig.lost.empty());
  // The last renewal was sent at a multiple of 250 ms after the campaign's send time.
  EXPECT_EQ(rig.leadership.actUntil(), start + 10'000 + 890);
  // The store stops answering: acting ends 890 ms after the last answered renewal's send.
  rig.hold = true;
  rig.runUntil(start + 10'889);
  EXPECT_TRUE(rig.leadership.acting(rig.now));
  rig.runUntil(start + 10'890);
  EXPECT_FALSE(rig.leadership.acting(rig.now)) << "by its clock, whatever the election's thread is doing";
  // The election's thread, blocked in a renewal until the client gives up, then ends the term.
  rig.runUntil(start + 10'890 + rig.election->callTimeoutMs());
  ASSERT_EQ(rig.lost.size(), 1u);
  EXPECT_EQ(rig.lost[0], "its lease could not be renewed in time");
  EXPECT_FALSE(rig.election->leading());
}

TEST(SimElection, AStandbyWinsOnlyOnceTheStoreExpiredTheLease) {
  ElectionRig rig;
  // Another replica holds the key under a lease that expires at 5 s on the store's clock.
  const auto other = rig.store.grant(5, 0);
  const auto theirs = rig.store.campaign("loomd-b", other.id, 0)->revision;
  rig.election->campaign(rig.now);
  rig.runUntil(1'000'000 + 4'999);
  EXPECT_TRUE(rig.won.empty());
  EXPECT_FALSE(rig.leadership.acting(rig.now));
  rig.runUntil(1'000'000 + 5'200);  // expired at 5 s; a standby looks every 100 ms
  ASSERT_EQ(rig.won.size(), 1u);
  EXPECT_GT(static_cast<std::int64_t>(rig.won[0]), theirs);
}

TEST(SimElection, ResignStopsActingAtOnceAndRevokesTheLease) {
  ElectionRig rig;
  rig.election->campaign(rig.now);
  rig.runUntil(rig.now + 600);
  ASSERT_TRUE(rig.leadership.acting(rig.now));
  rig.election->resign(rig.now);
  EXPECT_FALSE(rig.leadership.acting(rig.now));
  rig.runUntil(rig.now + 1);
  EXPECT_FALSE(rig.store.leader(rig.now - 1'000'000)) << "revoked: a standby need not wait for the TTL";
  EXPECT_TRUE(rig.lost.empty()) << "a resignation is not a lost term";
}

TEST(SimElection, AWinThatTookLongerThanTheLeaseIsSafeForIsGivenBack) {
  ElectionRig rig(/*marginMs=*/600);  // acting only 1000 * 0.99 - 600 = 390 ms past the grant's send
  const std::int64_t start = rig.now;
  rig.hold = true;
  rig.election->campaign(rig.now);
  auto release = [&](std::int64_t at) {
    rig.runUntil(at);
    ASSERT_EQ(rig.held.size(), 1u);
    const auto call = rig.held.front();
    rig.held.clear();
    rig.answer(call);
    rig.runUntil(at);
  };
  release(start + 10);   // the range: vacant; the grant is sent now, and the term's clock starts
  release(start + 250);  // the grant, 240 ms later (inside the client's 250 ms); the txn is sent
  release(start + 490);  // the txn: won, 480 ms after the grant's send, past the 390 ms allowed
  EXPECT_TRUE(rig.won.empty());
  EXPECT_FALSE(rig.leadership.acting(rig.now));
  ASSERT_EQ(rig.held.size(), 1u);
  EXPECT_EQ(rig.held.front().op, SimElection::Op::Revoke);
}

// ---- The replicas' judges

TEST(ActingJudge, TwoReplicasActingAtOnceIsAViolationReportedOnce) {
  ActingJudge j;
  EXPECT_FALSE(j.judge({{"loomd-a", 2, 100, 900}}, 10));
  auto v = j.judge({{"loomd-a", 2, 100, 900}, {"loomd-b", 35, 5000, 5890}}, 11);
  ASSERT_TRUE(v);
  EXPECT_NE(v->find("loomd-b (epoch 35"), std::string::npos) << *v;
  EXPECT_FALSE(j.judge({{"loomd-a", 2, 101, 900}, {"loomd-b", 35, 5001, 5890}}, 12));
}

TEST(AckJudge, AnAcknowledgedApplySurvivesAndAnUnansweredOneIsThereOrNot) {
  AckJudge j;
  j.start("off");
  EXPECT_FALSE(j.judge("off"));
  EXPECT_TRUE(j.judge("on"));
  j.applied("on", AckJudge::Outcome::Unknown);  // timed out: either
  EXPECT_FALSE(j.judge("on"));
  EXPECT_FALSE(j.judge("off"));
  j.applied("off", AckJudge::Outcome::Acknowledged);
  EXPECT_TRUE(j.judge("on")) << "an acknowledged change lost";
  j.applied("on", AckJudge::Outcome::Refused);  // 4xx: nothing changed
  EXPECT_TRUE(j.judge("on"));
}

class Simulator : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { spdlog::set_level(spdlog::level::off); }
  static RunResult run(const std::string& scenario, std::uint64_t seed, SimOptions options = {}) {
    ScenarioPlan plan;
    std::string error;
    EXPECT_TRUE(makeScenario(scenario, seed, plan, error)) << error;
    options.traceTail = 20;
    return runSimulation(plan, seed, options);
  }
};

TEST_F(Simulator, ASeedReplaysBitForBit) {
  for (std::uint64_t seed : {3u, 4u}) {
    auto a = run("chaos", seed), b = run("chaos", seed);
    EXPECT_EQ(a.traceHash, b.traceHash) << "seed " << seed;
    EXPECT_EQ(a.stats.events, b.stats.events);
    EXPECT_EQ(a.violations.size(), b.violations.size());
  }
  EXPECT_NE(run("chaos", 3).traceHash, run("chaos", 5).traceHash);
}

TEST_F(Simulator, AQuietFabricConvergesWithNothingEndedByItsOwnHand) {
  // blade-frozen's freeze left out: nothing happens but the declarations.
  SimOptions options;
  options.disabledFaults = {0};
  auto r = run("blade-frozen", 11, options);
  EXPECT_TRUE(r.violations.empty()) << (r.violations.empty() ? "" : r.violations[0].what);
  EXPECT_GE(r.convergedAt, 0);
  EXPECT_EQ(r.stats.selfFencedDomains + r.stats.watchdogDomains, 0u);
  EXPECT_GT(r.stats.starts, 4u);
}

// ---- Replicas

TEST_F(Simulator, ReplicasHandOverAKilledLeaderWithEveryJudgeQuiet) {
  for (std::uint64_t seed : {1u, 2u, 3u}) {
    auto r = run("leader-killed", seed);
    EXPECT_TRUE(r.violations.empty()) << "seed " << seed << ": " << (r.violations.empty() ? "" : r.violations[0].what);
    EXPECT_GE(r.stats.terms, 2u) << "seed " << seed << ": a standby took over";
    EXPECT_GE(r.convergedAt, 0);
    EXPECT_EQ(r.stats.selfFencedDomains + r.stats.watchdogDomains, 0u) << "a takeover stops no server";
  }
}

TEST_F(Simulator, AFrozenLeadersQueuedRequestIsRefusedByTheStoresGuard) {
  // Seed 138: the leader is frozen 2.8 s; a stop sent to it waits in its socket and, at
  // SIGCONT, its core (no longer acting) tries to commit it under epoch 2, long replaced.
  auto r = run("leader-frozen", 138);
  EXPECT_TRUE(r.violations.empty()) << (r.violations.empty() ? "" : r.violations[0].what);
  EXPECT_GE(r.stats.commitsRefused, 1u);
  EXPECT_GE(r.stats.framesDroppedNotActing, 1u) << "the frames that queued while it was frozen";
  // Without the guard the same commit lands, and the judge says so.
  SimOptions noGuard;
  noGuard.storeGuard = false;
  EXPECT_TRUE(run("leader-frozen", 138, noGuard).has(Violation::Kind::PastTermCommit));
}

TEST_F(Simulator, TheOneActingJudgeCatchesALeaderThatActsPastItsLease) {
  // A margin of -300 ms lets a leader cut from the store act 200 ms past its lease.
  SimOptions lax;
  lax.electionMarginMs = -300;
  int caught = 0;
  for (std::uint64_t seed = 1; seed <= 10; ++seed) {
    EXPECT_FALSE(run("leader-cut-from-store", seed).has(Violation::Kind::TwoActing)) << "seed " << seed;
    caught += run("leader-cut-from-store", seed, lax).has(Violation::Kind::TwoActing);
  }
  EXPECT_GT(caught, 0);
}

TEST_F(Simulator, Invariant7JudgesThePeersShieldWhenNoReplicaCanAct) {
  // Seed 2: the store loses its quorum for 16.7 s: no replica acts; the blades hold under
  // their peers' shield. Without the peer channel they cannot, and the judge sees it.
  auto r = run("store-quorum-lost", 2);
  EXPECT_TRUE(r.violations.empty()) << (r.violations.empty() ? "" : r.violations[0].what);
  EXPECT_EQ(r.stats.selfFencedDomains + r.stats.watchdogDomains, 0u);
  SimOptions noPeers;
  noPeers.peerChannel = false;
  EXPECT_TRUE(run("store-quorum-lost", 2, noPeers).has(Violation::Kind::Invariant7));
}

TEST_F(Simulator, AReplicasSeedReplaysBitForBit) {
  for (std::uint64_t seed : {5u, 9u}) {
    auto a = run("replicas", seed), b = run("replicas", seed);
    EXPECT_EQ(a.traceHash, b.traceHash) << "seed " << seed;
    EXPECT_EQ(a.stats.events, b.stats.events);
  }
}

}  // namespace
}  // namespace loom::sim
