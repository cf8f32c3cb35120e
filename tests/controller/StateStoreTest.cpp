// The SQLite state store: what is committed is what a reopened store loads.
#include <gtest/gtest.h>

#include <filesystem>

#include "controller/StateStore.h"

namespace loom::controller {
namespace {

std::string freshPath(const char* name) {
  auto dir = std::filesystem::temp_directory_path() / ("loom-store-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto path = dir / name;
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path.string() + suffix);
  return path.string();
}

TEST(StateStore, ReopenedStoreLoadsWhatWasCommitted) {
  const auto path = freshPath("reopen.db");
  {
    auto store = openSqliteStateStore(path);
    ASSERT_TRUE(store) << store.error().message;
    Change c;
    c.putDeclarations.push_back({"Server", "web-01", R"({"name":"web-01"})"});
    c.putDeclarations.push_back({"Pool", "web", R"({"name":"web"})"});
    c.putBindings["web-01"] = "c1-s1";
    c.putBindings["web-02"] = "c1-s2";
    c.putBorrowed["c2-s7"] = "web";
    c.putIdentities.push_back(
        {"web-01", "default", {"4c4f4f4d-0000-0000-0000-000000000001", {"52:54:00:10:00:01", "52:54:00:10:00:02"}}});
    c.putBlades.push_back({"c1-s1", R"({"cores":16,"memory_mib":1024})", "maintenance", 42});
    c.putOperations.push_back({7, "c1-s1", "web-01", "start", "pending", 1, ""});
    c.putOperations.push_back({8, "c1-s1", "web-01", "define", "done", 1, ""});
    c.appendEvents.push_back({1, 100, "info", "c1-s1", "", "hello"});
    c.appendEvents.push_back({2, 101, "error", "", "web-01", "boom"});
    ASSERT_TRUE((*store)->commit(c));
    Change d;
    d.deleteBindings.push_back("web-02");
    d.putDeclarations.push_back({"Server", "web-01", R"({"name":"web-01","vcpus":4})"});
    ASSERT_TRUE((*store)->commit(d));
  }
  auto store = openSqliteStateStore(path);
  ASSERT_TRUE(store);
  auto st = (*store)->load();
  ASSERT_TRUE(st) << st.error().message;
  ASSERT_EQ(st->declarations.size(), 2u);
  EXPECT_EQ(st->declarations[0].body, R"({"name":"web-01","vcpus":4})");
  EXPECT_EQ(st->bindings, (std::map<std::string, std::string>{{"web-01", "c1-s1"}}));
  EXPECT_EQ(st->borrowed.at("c2-s7"), "web");
  ASSERT_EQ(st->identities.size(), 1u);
  EXPECT_EQ(st->identities[0].identity.macs.size(), 2u);
  EXPECT_EQ(st->identities[0].identity.uuid, "4c4f4f4d-0000-0000-0000-000000000001");
  ASSERT_EQ(st->blades.size(), 1u);
  EXPECT_EQ(st->blades[0].adminState, "maintenance");
  ASSERT_EQ(st->pendingOperations.size(), 1u);  // finished ones are history, not work
  EXPECT_EQ(st->pendingOperations[0].id, 7u);
  EXPECT_EQ(st->lastOperationId, 8u);
  EXPECT_EQ(st->lastEventId, 2u);
  auto ev = (*store)->events(1, 10);
  ASSERT_TRUE(ev);
  ASSERT_EQ(ev->size(), 1u);
  EXPECT_EQ((*ev)[0].message, "boom");
}

TEST(StateStore, UnopenablePathIsAnError) {
  auto store = openSqliteStateStore("/nonexistent-dir/sub/state.db");
  ASSERT_FALSE(store);
  EXPECT_NE(store.error().message.find("/nonexistent-dir/sub/state.db"), std::string::npos);
}

}  // namespace
}  // namespace loom::controller
