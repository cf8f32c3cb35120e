// The event log is bounded in the store (--event-retention): the newest events stay, the
// older ones go in the commits that append newer ones, and after a restart numbering goes
// on after the newest (an id is never handed out twice).
#include <gtest/gtest.h>

#include "tests/controller/ControllerHarness.h"

namespace loom::controller::testing {
namespace {

std::vector<std::uint64_t> storedIds(StateStore& store) {
  std::vector<std::uint64_t> ids;
  auto events = store.events(0, 1000);
  EXPECT_TRUE(events) << events.error().message;
  if (events)
    for (const auto& e : *events) ids.push_back(e.id);
  return ids;
}

TEST(EventRetention, TheStoreKeepsTheNewestEventsAndNumberingGoesOnAfterARestart) {
  ControllerOptions o;
  o.eventMemory = 2;
  o.eventRetention = 4;
  Harness h("event-retention.db", o);
  for (int i = 1; i <= 6; ++i) h.registerBlade("c1-s" + std::to_string(i));
  h.run(2000);
  const auto ids = storedIds(*h.store);
  ASSERT_EQ(ids.size(), 4u) << "the store keeps --event-retention events";
  const std::uint64_t newest = ids.back();
  EXPECT_GT(newest, 4u) << "more events were written than are kept";
  EXPECT_EQ(ids.front(), newest - 3) << "the newest ones";

  h.reopen();
  h.registerBlade("c1-s7");
  h.run(2000);
  const auto after = storedIds(*h.store);
  ASSERT_FALSE(after.empty());
  EXPECT_GT(after.back(), newest) << "numbering goes on after the newest event";
  EXPECT_LE(after.size(), 4u);
}

}  // namespace
}  // namespace loom::controller::testing
