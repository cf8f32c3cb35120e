// A change whose outcome in the store is unknown (the commit timed out: etcd may have
// applied it and lost the answer). The core must not go on from memory that may be behind
// the store: loom-sim found an acknowledged apply undone that way (seed 10851,
// replicas-chaos): apply A->B times out but lands; apply B->A is "unchanged" from memory,
// writes nothing and answers 200; the next leader loads B. controller/Journal.h.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "controller/Controller.h"
#include "tests/controller/ControllerBuilders.h"
#include "tests/support/TestToken.h"

namespace loom::controller {
namespace {

using protocol::Json;
using testing::web;
using testing::yaml;

// SQLite underneath. Armed, the next commit is applied and then reported as a timeout;
// refusing, the next one fails without being applied (etcd without a quorum, refused).
class LandsUnanswered final : public StateStore {
 public:
  explicit LandsUnanswered(std::unique_ptr<StateStore> inner) : inner_(std::move(inner)) {}
  Result<StoredState> load() override { return inner_->load(); }
  Status commit(const Change& change) override {
    ++commits;
    if (refusing) {
      refusing = false;
      return makeError(Errc::Unavailable, "etcd store: commit: no quorum; nothing was written");
    }
    if (auto s = inner_->commit(change); !s) return s;
    if (!armed) return okStatus();
    armed = false;
    return makeError(Errc::Timeout, "etcd store: commit: no answer within 2000 ms (whether it was applied is unknown)");
  }
  Result<std::vector<EventRecord>> events(std::uint64_t sinceId, std::size_t limit) override {
    return inner_->events(sinceId, limit);
  }
  bool armed = false;
  bool refusing = false;
  int commits = 0;

 private:
  std::unique_ptr<StateStore> inner_;
};

struct Core {
  std::string path;
  std::unique_ptr<LandsUnanswered> store;
  std::unique_ptr<Controller> controller;
  std::int64_t now = 1000;

  explicit Core(const std::string& name) {
    auto dir = std::filesystem::temp_directory_path() / ("loom-behind-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    path = (dir / name).string();
    for (const char* s : {"", "-wal", "-shm"}) std::filesystem::remove(path + s);
    open();
  }
  void open() {
    controller.reset();
    store.reset();
    store = std::make_unique<LandsUnanswered>(std::move(openSqliteStateStore(path)).value());
    controller = std::make_unique<Controller>(
        *store, ::loom::testing::withTestAdmin({}), [](const std::string&, std::string) {}, [] { return 1; });
    EXPECT_TRUE(controller->recover(now));
  }
  ApiResponse api(const std::string& method, const std::string& target, const std::string& body = "") {
    ApiResponse out{0, "", ""};
    controller->handleApi(::loom::testing::asAdmin({method, target, {}, body}), now,
                          [&](ApiResponse r) { out = std::move(r); });
    return out;
  }
  std::uint64_t memoryOf(const std::string& server) {
    return Json::parse(api("GET", "/v1/servers/" + server).body)["memory_mib"].get<std::uint64_t>();
  }
};

std::string withMemory(pool::MiB mib) {
  auto d = web(1);
  d.servers[0].memory = mib;
  return yaml(d);
}

TEST(StoreBehind, AnApplyWhoseCommitWentUnansweredIsReportedAsUnknownAndNothingIsDecidedFromMemoryAfterIt) {
  Core c("apply-unanswered");
  ASSERT_EQ(c.api("POST", "/v1/apply", withMemory(2048)).status, 200);
  int told = 0;
  c.controller->onStoreBehind([&](const Error& e) {
    ++told;
    EXPECT_EQ(e.code, Errc::Timeout);
  });

  c.store->armed = true;
  const auto unknown = c.api("POST", "/v1/apply", withMemory(4096));
  EXPECT_EQ(unknown.status, 503);
  const Json body = Json::parse(unknown.body);
  EXPECT_EQ(body["outcome"], "unknown") << unknown.body;
  EXPECT_NE(body["error"].get<std::string>().find("may have applied"), std::string::npos) << unknown.body;
  EXPECT_EQ(told, 1) << "the owner is told, so the term ends";

  // Back to 2048: memory says "unchanged", the store says 4096. Answering 200 here is the
  // lost acknowledged apply; the core refuses and writes nothing.
  const int before = c.store->commits;
  const auto back = c.api("POST", "/v1/apply", withMemory(2048));
  EXPECT_EQ(back.status, 503) << back.body;
  EXPECT_NE(back.body.find("term is ending"), std::string::npos) << back.body;
  EXPECT_EQ(c.store->commits, before) << "nothing more reaches the store";
  EXPECT_EQ(told, 1) << "told once";

  // The next term (a restart here; a new leader on etcd) starts from the store: the change
  // that went unanswered is there whole, and a new apply is judged against it.
  c.open();
  EXPECT_EQ(c.memoryOf("web-0"), 4096u);
  ASSERT_EQ(c.api("POST", "/v1/apply", withMemory(2048)).status, 200);
  c.open();
  EXPECT_EQ(c.memoryOf("web-0"), 2048u) << "the acknowledged apply survives the next term";
}

TEST(StoreBehind, AFailedCommitThatSurelyWroteNothingLeavesTheTermServing) {
  Core c("apply-failed");
  ASSERT_EQ(c.api("POST", "/v1/apply", withMemory(2048)).status, 200);
  int told = 0;
  c.controller->onStoreBehind([&](const Error&) { ++told; });
  c.store->refusing = true;
  const auto refused = c.api("POST", "/v1/apply", withMemory(4096));
  EXPECT_EQ(refused.status, 503);
  EXPECT_NE(refused.body.find("not applied"), std::string::npos) << refused.body;
  EXPECT_EQ(c.memoryOf("web-0"), 2048u);
  // Tried again, it is applied as usual: the term goes on.
  EXPECT_EQ(c.api("POST", "/v1/apply", withMemory(4096)).status, 200);
  EXPECT_EQ(told, 0);
  EXPECT_EQ(c.memoryOf("web-0"), 4096u);
}

}  // namespace
}  // namespace loom::controller
