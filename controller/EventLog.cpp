#include "controller/EventLog.h"

#include <spdlog/spdlog.h>

namespace loom::controller {

void EventLog::add(const std::string& level, const std::string& blade, const std::string& server,
                   const std::string& message) {
  EventRecord e{++lastId_, wallClock_(), level, blade, server, message};
  if (level == "error")
    spdlog::error("event: {}{}{}", blade.empty() ? "" : blade + ": ", server.empty() ? "" : server + ": ", message);
  else
    spdlog::info("event: {}{}{}", blade.empty() ? "" : blade + ": ", server.empty() ? "" : server + ": ", message);
  events_.push_back(e);
  while (events_.size() > memory_) events_.pop_front();
  Change& pending = journal_.pending();
  pending.appendEvents.push_back(std::move(e));
  if (lastId_ > retention_) pending.dropEventsThrough = lastId_ - retention_;
}

void EventLog::restore(std::uint64_t lastId) {
  lastId_ = lastId;
  const std::uint64_t from = lastId_ > memory_ ? lastId_ - memory_ : 0;
  if (auto ev = journal_.store().events(from, memory_)) events_.assign(ev->begin(), ev->end());
}

Status EventLog::wait(std::uint64_t since, std::size_t limit, std::int64_t deadline, std::int64_t now, Answer answer,
                      Filter filter) {
  if (!events_.empty() && since + 1 < events_.front().id) {
    // Older than what is kept in memory: from the store.
    auto ev = journal_.store().events(since, limit);
    if (!ev) return ev.error();
    if (filter) std::erase_if(*ev, [&](const EventRecord& e) { return !filter(e); });
    answer(std::move(*ev));
    return okStatus();
  }
  waiters_.push_back({since, limit, deadline, std::move(answer), std::move(filter)});
  wake(now);
  return okStatus();
}

void EventLog::wake(std::int64_t now) {
  if (waiters_.empty()) return;
  std::vector<Waiter> keep;
  for (auto& w : waiters_) {
    const bool news = !events_.empty() && events_.back().id > w.since;
    if (!news && w.deadline > now) {
      keep.push_back(std::move(w));
      continue;
    }
    std::vector<EventRecord> out;
    for (const auto& e : events_)
      if (e.id > w.since && out.size() < w.limit && (!w.filter || w.filter(e))) out.push_back(e);
    if (out.empty() && w.deadline > now) {
      // Only events this waiter does not see: it waits on past them.
      w.since = events_.back().id;
      keep.push_back(std::move(w));
      continue;
    }
    w.answer(std::move(out));
  }
  waiters_ = std::move(keep);
}

}  // namespace loom::controller
