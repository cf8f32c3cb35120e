// The events an operator reads (`loomctl events`, GET /v1/events): numbered, stamped
// with the wall clock, kept in memory (the latest `memory` of them) and batched into the
// store through the Journal (which keeps the latest `retention`), and the long-polls that
// wait for the next one.
//
// Core thread only. add() is cheap: a deque push and a log line.
#pragma once

#include <algorithm>
#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <vector>

#include "controller/Journal.h"
#include "controller/StateStore.h"

namespace loom::controller {

class EventLog {
 public:
  using WallClock = std::function<std::int64_t()>;  // ms since the epoch
  using Answer = std::function<void(std::vector<EventRecord>)>;
  // Which events a waiter wants (a partition-scoped caller's); empty: all.
  using Filter = std::function<bool(const EventRecord&)>;

  // The store keeps the latest `retention` events (at least `memory`): each commit that
  // appends also deletes what fell out of that window.
  EventLog(Journal& journal, WallClock wallClock, std::size_t memory, std::uint64_t retention)
      : journal_(journal),
        wallClock_(std::move(wallClock)),
        memory_(memory),
        retention_(std::max<std::uint64_t>(retention, memory)) {}

  // `level`: "info", "warning" or "error" (errors are also logged as errors).
  void add(const std::string& level, const std::string& blade, const std::string& server, const std::string& message);
  // After a restart: numbering goes on after `lastId`, the store's latest event; the
  // latest `memory` are read back.
  void restore(std::uint64_t lastId);

  // Answers `answer` exactly once with the events after `since` (at most `limit`): at
  // once when there are some or `deadline` has passed, else when the next one comes or
  // wake() finds the deadline passed. Events older than memory come from the store; a
  // failing store is the error, and `answer` is then never called. With a filter, only
  // the events it takes count (a wait for them goes on past others').
  Status wait(std::uint64_t since, std::size_t limit, std::int64_t deadline, std::int64_t now, Answer answer,
              Filter filter = {});
  // Answers the waits that have news or whose deadline passed.
  void wake(std::int64_t now);

  std::uint64_t lastId() const { return lastId_; }

 private:
  struct Waiter {
    std::uint64_t since;
    std::size_t limit;
    std::int64_t deadline;
    Answer answer;
    Filter filter;
  };

  Journal& journal_;
  WallClock wallClock_;
  std::size_t memory_;
  std::uint64_t retention_;
  std::deque<EventRecord> events_;
  std::uint64_t lastId_ = 0;
  std::vector<Waiter> waiters_;
};

}  // namespace loom::controller
