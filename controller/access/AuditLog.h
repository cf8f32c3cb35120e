// The audit log (DESIGN.md section 8; controller/README.md, "Access"): every change
// request and every refused request, with who (token id and role), from where (the peer's
// address), what (method, path, the objects named), the answer's status and outcome, and
// when. GET /v1/audit reads it (admin).
//
// Durable before the change is acknowledged: a change request's record rides with the
// store commit that makes the change (Journal::Rider), so a change whose record cannot
// be written is not made. A change request that commits nothing (a dry run, a drain of a
// drained blade, a fence confirmation) has its record committed before it is answered;
// one that failed (4xx, 5xx) changed nothing, and its record is batched like events.
//
// Bounded: the store keeps the latest `retention` records (the older ones are deleted in
// the same commits that append). Refusals cannot make an unauthenticated caller a
// writer of the store: in each window (10 s) the first `refusalBurst` refusals are
// recorded one by one; the rest are counted, by status and reason, and each count is
// written as one record when the window ends ("refused 5,000 more times ... from 37
// sources"). So refusals add at most refusalBurst + 16 records a window, whatever the
// rate, and memory holds at most 16 counters.
//
// Core thread only.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "controller/Journal.h"
#include "controller/StateStore.h"
#include "controller/api/ApiRouter.h"

namespace loom::controller::access {

struct AuditOptions {
  std::size_t retention = 100000;
  std::int64_t refusalWindowMs = 10000;
  std::size_t refusalBurst = 50;
};

class AuditLog final : public api::ApiRouter::Observer, public Journal::Rider {
 public:
  using WallClock = std::function<std::int64_t()>;  // ms since the epoch
  using Answer = std::function<void(std::vector<AuditRecord>)>;

  AuditLog(Journal& journal, WallClock wallClock, AuditOptions options);

  // After a restart: numbering goes on after the store's latest record.
  void restore(std::uint64_t lastId) { lastId_ = lastId; }
  std::uint64_t lastId() const { return lastId_; }

  // ApiRouter::Observer
  void refused(const ApiRequest& request, const Verdict& verdict) override;
  void changing(const ApiRequest& request, const Verdict& verdict) override;
  void changed(const ApiResponse& response) override;
  // The objects the change being made names, when its handler knows them better than its
  // route (an apply's created and changed objects).
  void noteTargets(const std::string& targets);

  // Journal::Rider
  void ride(Change& change) override;
  void landed(bool ok) override;

  // Writes the refusal counts of a window that ended; answers long-polls. Every tick.
  void tick(std::int64_t now);
  // Records after `since` (at most `limit`, optionally only token `token`'s), from the
  // store once the batch is written: at once when there are some or `deadline` (core
  // time) passed, else when the next comes (tick).
  Status wait(std::uint64_t since, std::size_t limit, const std::string& token, std::int64_t deadline, std::int64_t now,
              Answer answer);

 private:
  struct Refusals {
    std::uint64_t count = 0;
    std::set<std::string> sources;  // at most 64 kept
    std::string lastSource, lastToken, lastPath, lastMethod;
  };
  struct Waiter {
    std::uint64_t since;
    std::size_t limit;
    std::string token;
    std::int64_t deadline;
    Answer answer;
  };
  struct Current {
    bool active = false;
    bool riding = false;
    bool written = false;
    AuditRecord record;
  };

  void append(Change& change, AuditRecord record);
  Result<std::vector<AuditRecord>> read(std::uint64_t since, std::size_t limit, const std::string& token);
  void endWindow(std::int64_t wall);

  Journal& journal_;
  WallClock wallClock_;
  AuditOptions options_;
  std::uint64_t lastId_ = 0;
  Current current_;
  std::int64_t windowStart_ = 0;
  std::size_t windowRecorded_ = 0;
  std::map<std::string, Refusals> counted_;  // by "STATUS reason"
  std::vector<Waiter> waiters_;
};

// GET /v1/audit's answer.
api::Json auditJsonList(const std::vector<AuditRecord>& records);

}  // namespace loom::controller::access
