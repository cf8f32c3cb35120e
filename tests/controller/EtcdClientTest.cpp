// The etcd client against a real etcd (tools/etcd.sh: one member, three where the cluster
// matters), and against a fake HTTP server for the answers a real etcd does not give
// (oversized, malformed, silent).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "controller/etcd/Base64.h"
#include "controller/etcd/EtcdClient.h"
#include "tests/support/EtcdCluster.h"

namespace loom::controller::etcd {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using R = Compare::Result;

class EtcdClientTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string why;
    // One member: quick to start (ctest runs each case in a process of its own). What
    // needs three (a leader among them, failing over) has a cluster of its own.
    cluster_ = test::EtcdCluster::start(1, why).release();
    if (!cluster_) why_ = new std::string(why);
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
    delete why_;
    why_ = nullptr;
  }
  void SetUp() override {
    if (!cluster_) {
      if (test::EtcdCluster::mustRun()) FAIL() << "etcd is required on CI: " << *why_;
      GTEST_SKIP() << "no etcd here: " << *why_;
    }
    prefix_ = std::string("/test/") + ::testing::UnitTest::GetInstance()->current_test_info()->name() + "/";
  }
  EtcdClient client() { return EtcdClient(cluster_->endpoints()); }

  static test::EtcdCluster* cluster_;
  static std::string* why_;
  std::string prefix_;
};
test::EtcdCluster* EtcdClientTest::cluster_ = nullptr;
std::string* EtcdClientTest::why_ = nullptr;

TEST(Base64, RoundTripsEveryByteAndRefusesWhatIsNotBase64) {
  std::string all;
  for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
  for (std::size_t len : {0, 1, 2, 3, 4, 5, 255, 256}) {
    const std::string s = all.substr(0, len);
    auto back = base64Decode(base64Encode(s));
    ASSERT_TRUE(back) << len;
    EXPECT_EQ(*back, s);
  }
  EXPECT_EQ(base64Encode("foo"), "Zm9v");
  EXPECT_EQ(base64Encode("fo"), "Zm8=");
  for (const char* bad : {"Zm9", "Zm9v!", "Zm=v", "Zm9*", "Z===", "Zm9=", "Zg=a"})
    EXPECT_FALSE(base64Decode(bad)) << bad;
}

TEST(EtcdEndpoints, ParsesAListAndNamesABadEntry) {
  auto eps = EtcdClient::parseEndpoints("127.0.0.1:2379,etcd-b:12379,[::1]:2379");
  ASSERT_TRUE(eps) << eps.error().message;
  EXPECT_EQ(*eps, (std::vector<std::string>{"127.0.0.1:2379", "etcd-b:12379", "[::1]:2379"}));
  for (const char* bad : {"", "host", "host:", ":2379", "a:1,b", "a:70000", "a:12x"}) {
    auto r = EtcdClient::parseEndpoints(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, Errc::Invalid);
  }
  EXPECT_EQ(EtcdClient::prefixEnd("/loom/"), "/loom0");
  EXPECT_EQ(EtcdClient::prefixEnd(std::string("a\xff", 2)), "b");
}

TEST_F(EtcdClientTest, PutRangeAndDeleteRoundTripBinaryKeysAndValues) {
  auto c = client();
  std::string binary;
  for (int i = 0; i < 256; ++i) binary += static_cast<char>(i);
  auto rev1 = c.put(prefix_ + "a", binary);
  ASSERT_TRUE(rev1) << rev1.error().message;
  auto rev2 = c.put(prefix_ + "b", "two");
  ASSERT_TRUE(rev2);
  EXPECT_GT(*rev2, *rev1);
  ASSERT_TRUE(c.put(prefix_ + "c", ""));

  auto one = c.range(prefix_ + "a");
  ASSERT_TRUE(one) << one.error().message;
  ASSERT_EQ(one->kvs.size(), 1u);
  EXPECT_EQ(one->kvs[0].value, binary);
  EXPECT_EQ(one->kvs[0].createRevision, *rev1);
  EXPECT_EQ(one->kvs[0].version, 1);

  auto page = c.rangePrefix(prefix_, 2);
  ASSERT_TRUE(page);
  ASSERT_EQ(page->kvs.size(), 2u);
  EXPECT_TRUE(page->more);
  EXPECT_EQ(page->count, 3);
  EXPECT_EQ(page->kvs[1].key, prefix_ + "b");
  // Reading at an older revision sees the store as it was.
  auto old = c.rangePrefix(prefix_, 0, *rev1);
  ASSERT_TRUE(old);
  EXPECT_EQ(old->kvs.size(), 1u);

  auto del = c.deleteRange(prefix_, EtcdClient::prefixEnd(prefix_));
  ASSERT_TRUE(del);
  EXPECT_EQ(del->deleted, 3);
  auto none = c.rangePrefix(prefix_);
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->kvs.empty());
}

TEST_F(EtcdClientTest, TxnOnCreateRevisionZeroLetsExactlyOneCampaignerWin) {
  auto c = client();
  const std::string key = prefix_ + "leader";
  auto campaign = [&](const std::string& me) {
    return c.txn({Compare::createRevision(key, R::Equal, 0)}, {Op::put(key, me)}, {Op::range(key)});
  };
  auto a = campaign("a");
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_TRUE(a->succeeded);
  auto b = campaign("b");
  ASSERT_TRUE(b);
  EXPECT_FALSE(b->succeeded);
  ASSERT_EQ(b->responses.size(), 1u);
  ASSERT_EQ(b->responses[0].type, Op::Type::Range);
  ASSERT_EQ(b->responses[0].range.kvs.size(), 1u);
  EXPECT_EQ(b->responses[0].range.kvs[0].value, "a");
  EXPECT_EQ(b->responses[0].range.kvs[0].createRevision, a->revision);
}

TEST_F(EtcdClientTest, TxnComparesValueVersionAndRevisionsWithEachRelation) {
  auto c = client();
  const std::string k = prefix_ + "k";
  ASSERT_TRUE(c.put(k, "m"));
  auto rev = c.put(k, "m");  // version 2
  ASSERT_TRUE(rev);
  auto holds = [&](Compare cmp) {
    auto t = c.txn({std::move(cmp)}, {}, {});
    EXPECT_TRUE(t) << (t ? "" : t.error().message);
    return t && t->succeeded;
  };
  EXPECT_TRUE(holds(Compare::value(k, R::Equal, "m")));
  EXPECT_TRUE(holds(Compare::value(k, R::NotEqual, "x")));
  EXPECT_TRUE(holds(Compare::value(k, R::Less, "n")));
  EXPECT_TRUE(holds(Compare::value(k, R::Greater, "l")));
  EXPECT_FALSE(holds(Compare::value(k, R::Greater, "m")));
  EXPECT_TRUE(holds(Compare::version(k, R::Equal, 2)));
  EXPECT_FALSE(holds(Compare::version(k, R::Less, 2)));
  EXPECT_TRUE(holds(Compare::modRevision(k, R::Equal, *rev)));
  EXPECT_TRUE(holds(Compare::createRevision(k, R::Less, *rev)));
  EXPECT_TRUE(holds(Compare::createRevision(k, R::NotEqual, 0)));
  // Every op kind in one txn, a nested txn included.
  TxnRequest inner;
  inner.compare.push_back(Compare::createRevision(prefix_ + "n", R::Equal, 0));
  inner.success.push_back(Op::put(prefix_ + "n", "nested"));
  auto t = c.txn({}, {Op::put(prefix_ + "p", "1"), Op::del(k), Op::range(prefix_ + "p"), Op::nested(inner)});
  ASSERT_TRUE(t) << t.error().message;
  ASSERT_EQ(t->responses.size(), 4u);
  EXPECT_EQ(t->responses[1].deleted, 1);
  ASSERT_EQ(t->responses[2].range.kvs.size(), 1u);
  ASSERT_TRUE(t->responses[3].txn);
  EXPECT_TRUE(t->responses[3].txn->succeeded);
  auto n = c.range(prefix_ + "n");
  ASSERT_TRUE(n);
  ASSERT_EQ(n->kvs.size(), 1u);
  EXPECT_EQ(n->kvs[0].value, "nested");
}

TEST_F(EtcdClientTest, ARefusedTxnSaysWhyAndNamesTheMember) {
  auto c = client();
  // Two writes of one key in one txn: etcd refuses it.
  auto t = c.txn({}, {Op::put(prefix_ + "d", "1"), Op::put(prefix_ + "d", "2")});
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().code, Errc::Invalid);
  EXPECT_NE(t.error().message.find("duplicate key"), std::string::npos) << t.error().message;
  EXPECT_NE(t.error().message.find("127.0.0.1:"), std::string::npos) << t.error().message;
}

TEST_F(EtcdClientTest, LeaseIsGrantedKeptAliveRevokedAndThenGone) {
  auto c = client();
  auto g = c.leaseGrant(1);
  ASSERT_TRUE(g) << g.error().message;
  EXPECT_GE(g->ttlSeconds, 1);
  ASSERT_TRUE(c.put(prefix_ + "owned", "x", g->id));
  auto ttl = c.leaseKeepAliveOnce(g->id);
  ASSERT_TRUE(ttl) << ttl.error().message;
  EXPECT_GE(*ttl, 1);
  ASSERT_TRUE(c.leaseRevoke(g->id));
  auto gone = c.range(prefix_ + "owned");
  ASSERT_TRUE(gone);
  EXPECT_TRUE(gone->kvs.empty());  // a revoked lease takes its keys
  auto after = c.leaseKeepAliveOnce(g->id);
  ASSERT_FALSE(after);
  EXPECT_EQ(after.error().code, Errc::NotFound) << after.error().message;
  auto again = c.leaseRevoke(g->id);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, Errc::NotFound);
}

TEST_F(EtcdClientTest, ALeaseNotKeptAliveExpiresWithItsKeys) {
  auto c = client();
  auto g = c.leaseGrant(1);
  ASSERT_TRUE(g);
  ASSERT_TRUE(c.put(prefix_ + "owned", "x", g->id));
  const auto deadline = Clock::now() + 5s;
  bool expired = false;
  while (!expired && Clock::now() < deadline) {
    std::this_thread::sleep_for(100ms);
    auto r = c.range(prefix_ + "owned");
    ASSERT_TRUE(r);
    expired = r->kvs.empty();
  }
  EXPECT_TRUE(expired);
  auto k = c.leaseKeepAliveOnce(g->id);
  ASSERT_FALSE(k);
  EXPECT_EQ(k.error().code, Errc::NotFound);
}

TEST_F(EtcdClientTest, WatchDeliversEveryChangeInOrderAndStopsWhenAsked) {
  auto c = client();
  auto start = c.put(prefix_ + "before", "0");
  ASSERT_TRUE(start);
  std::atomic<bool> stop{false};
  std::vector<WatchEvent> seen;
  std::vector<std::int64_t> revisions;
  std::mutex mu;
  Status result = okStatus();
  Clock::time_point stoppedAt;
  std::thread watcher([&] {
    EtcdClient w(cluster_->endpoints());
    result = w.watch(
        prefix_, EtcdClient::prefixEnd(prefix_), *start + 1,
        [&](const WatchBatch& b) {
          std::lock_guard<std::mutex> lock(mu);
          revisions.push_back(b.revision);
          for (const auto& e : b.events) seen.push_back(e);
        },
        stop);
  });
  ASSERT_TRUE(c.put(prefix_ + "a", "1"));
  ASSERT_TRUE(c.txn({}, {Op::put(prefix_ + "b", "2"), Op::put(prefix_ + "c", "3")}));
  ASSERT_TRUE(c.deleteRange(prefix_ + "a"));
  ASSERT_TRUE(c.put("/elsewhere", "not watched"));
  const auto deadline = Clock::now() + 5s;
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (seen.size() >= 4 || Clock::now() > deadline) break;
    }
    std::this_thread::sleep_for(10ms);
  }
  stoppedAt = Clock::now();
  stop = true;
  watcher.join();
  const auto stopTook = Clock::now() - stoppedAt;
  EXPECT_TRUE(result) << result.error().message;
  EXPECT_LT(stopTook, 500ms);
  ASSERT_EQ(seen.size(), 4u);
  EXPECT_EQ(seen[0].kv.key, prefix_ + "a");
  EXPECT_EQ(seen[0].kv.value, "1");
  EXPECT_EQ(seen[1].kv.key, prefix_ + "b");
  EXPECT_EQ(seen[1].kv.modRevision, seen[2].kv.modRevision);  // one txn, one revision
  EXPECT_EQ(seen[3].type, EventType::Delete);
  EXPECT_EQ(seen[3].kv.key, prefix_ + "a");
}

TEST_F(EtcdClientTest, WatchFromACompactedRevisionIsAConflict) {
  auto c = client();
  auto r1 = c.put(prefix_ + "x", "1");
  ASSERT_TRUE(r1);
  auto r2 = c.put(prefix_ + "x", "2");
  ASSERT_TRUE(r2);
  // Compaction is an admin call the client does not offer: etcdctl does it.
  const std::string cmd = "ETCDCTL_API=3 etcdctl --endpoints " + cluster_->endpointList() + " compaction " +
                          std::to_string(*r2) + " >/dev/null 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  std::atomic<bool> stop{false};
  auto s = c.watch(
      prefix_, EtcdClient::prefixEnd(prefix_), *r1, [](const WatchBatch&) {}, stop);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, Errc::Conflict) << s.error().message;
  EXPECT_NE(s.error().message.find("compacted"), std::string::npos) << s.error().message;
  auto old = c.range(prefix_ + "x", {}, 0, *r1);
  ASSERT_FALSE(old);
  EXPECT_EQ(old.error().code, Errc::Conflict) << old.error().message;
}

TEST(EtcdClientCluster, StatusShowsOneLeaderAndMemberListEveryMember) {
  std::string why;
  auto cluster = test::EtcdCluster::start(3, why);
  if (!cluster) {
    if (test::EtcdCluster::mustRun()) FAIL() << "etcd is required on CI: " << why;
    GTEST_SKIP() << "no etcd here: " << why;
  }
  EtcdClient c(cluster->endpoints());
  auto st = c.status();
  ASSERT_EQ(st.size(), 3u);
  int leaders = 0;
  for (const auto& s : st) {
    EXPECT_TRUE(s.reachable) << s.endpoint << ": " << s.error;
    EXPECT_EQ(s.version.rfind("3.", 0), 0u) << s.version;
    EXPECT_GT(s.raftTerm, 0u);
    EXPECT_GT(s.dbSize, 0);
    EXPECT_EQ(s.leaderId, st[0].leaderId);
    leaders += s.isLeader();
  }
  EXPECT_EQ(leaders, 1);
  auto members = c.memberList();
  ASSERT_TRUE(members) << members.error().message;
  ASSERT_EQ(members->size(), 3u);
  for (const auto& m : *members) {
    EXPECT_FALSE(m.name.empty());
    ASSERT_EQ(m.clientUrls.size(), 1u);
  }
}

TEST_F(EtcdClientTest, AnUnreachableFirstMemberIsPassedOver) {
  // A port nobody listens on, first in the list.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  const std::string dead = "127.0.0.1:" + std::to_string(ntohs(a.sin_port));
  ::close(fd);
  std::vector<std::string> eps{dead};
  eps.insert(eps.end(), cluster_->endpoints().begin(), cluster_->endpoints().end());
  EtcdClient c(eps);
  auto put = c.put(prefix_ + "k", "v");
  ASSERT_TRUE(put) << put.error().message;
  auto got = c.range(prefix_ + "k");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->kvs.size(), 1u);
  auto st = c.status();
  ASSERT_EQ(st.size(), 1 + cluster_->endpoints().size());
  EXPECT_FALSE(st[0].reachable);
  EXPECT_NE(st[0].error.find("connect"), std::string::npos) << st[0].error;
}

// ---- a fake gateway: answers every request on a connection with `answer`, or never.
class FakeGateway {
 public:
  explicit FakeGateway(std::string answer, bool silent = false) : answer_(std::move(answer)), silent_(silent) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(fd_, 8);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    endpoint_ = "127.0.0.1:" + std::to_string(ntohs(a.sin_port));
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeGateway() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  const std::string& endpoint() const { return endpoint_; }

 private:
  void serve() {
    std::vector<int> clients;
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) == 1) {
        int c = ::accept(fd_, nullptr, nullptr);
        if (c >= 0) {
          clients.push_back(c);
          // Read the request (headers and a small body), then answer.
          char buf[65536];
          pollfd q{c, POLLIN, 0};
          if (::poll(&q, 1, 1000) == 1) (void)::read(c, buf, sizeof buf);
          if (!silent_) {
            std::size_t off = 0;
            while (off < answer_.size()) {
              const auto n = ::write(c, answer_.data() + off, answer_.size() - off);
              if (n <= 0) break;
              off += static_cast<std::size_t>(n);
            }
          }
        }
      }
    }
    for (int c : clients) ::close(c);
  }

  std::string answer_;
  bool silent_;
  int fd_ = -1;
  std::string endpoint_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

std::string http200(const std::string& body) {
  return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + body;
}

TEST(EtcdClientBounds, AnAnswerDeclaringAHugeBodyIsRefusedBeforeItIsRead) {
  // 1 TiB declared, nothing sent: a client that believed it would allocate or wait.
  FakeGateway g("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1099511627776\r\n\r\n{");
  EtcdClient c({g.endpoint()});
  const auto t0 = Clock::now();
  auto r = c.put("k", "v");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::Io);
  EXPECT_NE(r.error().message.find("larger than"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find(g.endpoint()), std::string::npos) << r.error().message;
  EXPECT_LT(Clock::now() - t0, 500ms);
}

TEST(EtcdClientBounds, AChunkedAnswerPastTheLimitIsRefused) {
  EtcdClient::Options o;
  o.maxRangeBytes = 1 << 20;
  std::string body = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
  const std::string chunk(64 * 1024, 'x');
  for (int i = 0; i < 20; ++i) {
    char size[16];
    std::snprintf(size, sizeof size, "%zx\r\n", chunk.size());
    body += size + chunk + "\r\n";
  }
  FakeGateway g(body + "0\r\n\r\n");
  EtcdClient c({g.endpoint()}, o);
  auto r = c.range("k");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("larger than 1048576 bytes"), std::string::npos) << r.error().message;
}

TEST(EtcdClientBounds, MalformedAnswersAreErrorsThatNameTheMember) {
  for (const std::string& body :
       {std::string("not json"), std::string("[1,2]"), std::string(R"({"kvs":[{"key":"!!notbase64"}]})"),
        std::string(R"({"kvs":"nope"})"), std::string(R"({"header":{"revision":"12x"}})"),
        std::string(R"({"kvs":[{"key":"Zm9v","mod_revision":{}}]})")}) {
    FakeGateway g(http200(body));
    EtcdClient c({g.endpoint()});
    auto r = c.range("foo");
    ASSERT_FALSE(r) << body;
    EXPECT_EQ(r.error().code, Errc::Io) << body;
    EXPECT_NE(r.error().message.find("malformed answer"), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find(g.endpoint()), std::string::npos) << r.error().message;
  }
  FakeGateway garbage("this is not HTTP at all\r\n\r\n");
  EtcdClient c({garbage.endpoint()});
  auto r = c.range("foo");
  ASSERT_FALSE(r);
}

TEST(EtcdClientBounds, ASilentMemberTimesOutWithinTheCallTimeout) {
  FakeGateway g("", /*silent=*/true);
  EtcdClient c({g.endpoint()});
  c.setTimeout(300ms);
  const auto t0 = Clock::now();
  auto r = c.put("k", "v");
  const auto took = Clock::now() - t0;
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::Timeout);
  EXPECT_NE(r.error().message.find("unknown"), std::string::npos) << r.error().message;  // a write: outcome unknown
  EXPECT_GE(took, 290ms);
  EXPECT_LT(took, 600ms);
}

TEST(EtcdClientBounds, AWatchMessageWithoutEndPastTheLimitIsRefused) {
  EtcdClient::Options o;
  o.maxWatchMessageBytes = 256 * 1024;
  std::string body = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
  const std::string chunk(64 * 1024, 'x');
  for (int i = 0; i < 8; ++i) {
    char size[16];
    std::snprintf(size, sizeof size, "%zx\r\n", chunk.size());
    body += size + chunk + "\r\n";
  }
  FakeGateway g(body);
  EtcdClient c({g.endpoint()}, o);
  std::atomic<bool> stop{false};
  auto s = c.watch(
      "k", "", 0, [](const WatchBatch&) {}, stop);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("larger than 262144 bytes"), std::string::npos) << s.error().message;
}

}  // namespace
}  // namespace loom::controller::etcd
