// The leader election of loomd replicas (controller/Election.h) against a real etcd
// cluster (tools/etcd.sh: short raft timings, so a 1 s lease is granted as asked).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

#include "controller/ControllerLoop.h"
#include "controller/Election.h"
#include "controller/etcd/EtcdClient.h"
#include "tests/support/EtcdCluster.h"

namespace loom::controller {
namespace {

using namespace std::chrono_literals;

std::int64_t now() { return ControllerLoop::monotonicMs(); }

// Starts `members` etcd members into `var`, or skips the test (fails it on CI, where etcd
// is installed) when etcd cannot start here.
#define START_ETCD_OR_SKIP(var, members)                                                      \
  do {                                                                                        \
    std::string why_;                                                                         \
    var = ::loom::test::EtcdCluster::start(members, why_);                                    \
    if (!var) {                                                                               \
      if (::loom::test::EtcdCluster::mustRun()) FAIL() << "etcd is required on CI: " << why_; \
      GTEST_SKIP() << "no etcd here: " << why_;                                               \
    }                                                                                         \
  } while (0)

ElectionOptions options(const std::vector<std::string>& endpoints, const std::string& name) {
  ElectionOptions o;
  o.endpoints = endpoints;
  o.prefix = "/loom-election-test";
  o.self = {name, "http://" + name + ":7780", "tcp://" + name + ":7700", 0};
  o.ttlSeconds = 1;
  return o;
}

// Campaigns on a thread of its own; the epoch arrives through the future.
struct Candidate {
  Candidate(const std::vector<std::string>& endpoints, const std::string& name)
      : leadership(Leadership::replica(now)), election(options(endpoints, name), leadership, now) {}
  void campaign() {
    won = std::async(std::launch::async, [this] { return election.campaign([this] { ++lost; }); });
  }
  Leadership leadership;
  Election election;
  std::future<std::optional<std::uint64_t>> won;
  std::atomic<int> lost{0};
};

TEST(Election, OneReplicaLeadsAndTheOtherTakesOverWithAHigherEpochWhenItResigns) {
  std::unique_ptr<test::EtcdCluster> etcd;
  START_ETCD_OR_SKIP(etcd, 1);
  Candidate a(etcd->endpoints(), "a"), b(etcd->endpoints(), "b");
  ASSERT_TRUE(a.election.start().ok());
  ASSERT_TRUE(b.election.start().ok());
  a.campaign();
  ASSERT_EQ(a.won.wait_for(5s), std::future_status::ready);
  const auto epochA = a.won.get();
  ASSERT_TRUE(epochA.has_value());
  EXPECT_TRUE(a.leadership.actingNow());
  EXPECT_EQ(a.leadership.epoch(), *epochA);
  // The term is no longer than the lease: it ends before etcd could expire it.
  EXPECT_LE(a.leadership.actUntil() - now(), 1000);

  b.campaign();
  // b stands by while a renews, well past a's lease.
  EXPECT_EQ(b.won.wait_for(2500ms), std::future_status::timeout);
  EXPECT_FALSE(b.leadership.actingNow());
  ASSERT_TRUE(b.election.leader().has_value());
  EXPECT_EQ(b.election.leader()->name, "a");
  EXPECT_EQ(b.election.leader()->epoch, *epochA);
  EXPECT_TRUE(a.leadership.actingNow()) << "a renewed its term all along";

  const auto resigned = now();
  a.election.resign();
  EXPECT_FALSE(a.leadership.actingNow());
  ASSERT_EQ(b.won.wait_for(2s), std::future_status::ready);
  const auto epochB = b.won.get();
  ASSERT_TRUE(epochB.has_value());
  EXPECT_GT(*epochB, *epochA);
  // Handing over does not wait for the lease: the standby's next poll finds the key gone.
  EXPECT_LT(now() - resigned, 1000);
  EXPECT_TRUE(b.leadership.actingNow());
  EXPECT_EQ(a.lost.load(), 0) << "a resigned: no lost-term callback";
}

TEST(Election, ALeaderCutFromEtcdStopsActingBeforeAStandbyCanWin) {
  std::unique_ptr<test::EtcdCluster> etcd;
  START_ETCD_OR_SKIP(etcd, 3);
  const auto& all = etcd->endpoints();
  // a reaches etcd only through member 1; b through members 2 and 3.
  Candidate a({all[0]}, "a"), b({all[1], all[2]}, "b");
  ASSERT_TRUE(a.election.start().ok());
  a.campaign();
  ASSERT_EQ(a.won.wait_for(5s), std::future_status::ready);
  ASSERT_TRUE(a.won.get().has_value());
  ASSERT_TRUE(b.election.start().ok());
  b.campaign();
  ASSERT_EQ(b.won.wait_for(1500ms), std::future_status::timeout);

  // The end of a's term as it stood last (the Leadership forgets it once revoked).
  std::atomic<std::int64_t> stopped{0};
  std::atomic<bool> watching{true};
  std::thread watch([&] {
    while (watching)
      if (const auto until = a.leadership.actUntil(); until > 0) {
        stopped = until;
        std::this_thread::sleep_for(5ms);
      } else {
        std::this_thread::sleep_for(1ms);
      }
  });
  ASSERT_TRUE(etcd->killMember(0));  // 0-based: the member a knows
  // a can no longer renew: its Leadership stops by its own clock, and the lost-term
  // callback follows; b wins only once etcd expired a's lease.
  const bool decided = b.won.wait_for(10s) == std::future_status::ready;
  const std::int64_t won = now();
  watching = false;
  watch.join();
  ASSERT_TRUE(decided);
  ASSERT_TRUE(b.won.get().has_value());
  EXPECT_FALSE(a.leadership.actingNow());
  EXPECT_LT(stopped.load(), won) << "a acted until " << stopped.load() << ", b won at " << won;
  std::printf("margin: the cut leader stopped acting %lld ms before the standby won\n",
              static_cast<long long>(won - stopped.load()));
  for (int i = 0; i < 50 && a.lost.load() == 0; ++i) std::this_thread::sleep_for(20ms);
  EXPECT_EQ(a.lost.load(), 1);
}

TEST(Election, ALeaderWhoseKeyIsDeletedEndsItsTermAtItsNextRenewal) {
  std::unique_ptr<test::EtcdCluster> etcd;
  START_ETCD_OR_SKIP(etcd, 1);
  Candidate a(etcd->endpoints(), "a"), b(etcd->endpoints(), "b");
  ASSERT_TRUE(a.election.start().ok());
  ASSERT_TRUE(b.election.start().ok());
  a.campaign();
  ASSERT_EQ(a.won.wait_for(5s), std::future_status::ready);
  ASSERT_TRUE(a.won.get().has_value());
  b.campaign();
  ASSERT_EQ(b.won.wait_for(600ms), std::future_status::timeout);
  // An operator's `etcdctl del /loom-election-test/leader`: a's lease lives on, its key not.
  etcd::EtcdClient client(etcd->endpoints());
  ASSERT_TRUE(client.deleteRange(a.election.leaderKey()).ok());
  ASSERT_EQ(b.won.wait_for(3s), std::future_status::ready);
  ASSERT_TRUE(b.won.get().has_value());
  // a stops at its next renewal (every ttl/4) while b may win at its next poll (100 ms):
  // for up to a renewal both may act — an operator's deletion is not an expiry, and nothing
  // tells them apart. The store's guard refuses a's writes, and agents that heard b refuse
  // a's frames (controller/README "Replicas").
  for (int i = 0; i < 50 && a.lost.load() == 0; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(a.lost.load(), 1);
  EXPECT_FALSE(a.leadership.actingNow());
  EXPECT_TRUE(b.leadership.actingNow());
}

TEST(Election, StopEndsACampaignThatCannotWin) {
  std::unique_ptr<test::EtcdCluster> etcd;
  START_ETCD_OR_SKIP(etcd, 1);
  Candidate a(etcd->endpoints(), "a"), b(etcd->endpoints(), "b");
  ASSERT_TRUE(a.election.start().ok());
  ASSERT_TRUE(b.election.start().ok());
  a.campaign();
  ASSERT_EQ(a.won.wait_for(5s), std::future_status::ready);
  b.campaign();
  b.election.stop();
  ASSERT_EQ(b.won.wait_for(2s), std::future_status::ready);
  EXPECT_FALSE(b.won.get().has_value());
}

TEST(Election, StartSaysWhenEtcdCannotBeReached) {
  auto leadership = Leadership::replica(now);
  // A port where nothing listens.
  Election e(options({"127.0.0.1:1"}, "a"), leadership, now);
  const auto s = e.start();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("etcd"), std::string::npos) << s.error().message;
}

}  // namespace
}  // namespace loom::controller
