// The operations: the plan's steps, each with an id, sent to agents and tracked until
// their blade answers. The reconciler derives no step of its own (one plan:
// controller/README.md): it adopts the Replanner's complete step lists blade by blade,
// matching them against the operations it has — a queued operation still planned is
// kept (its attempts and backoff too), one no longer planned is cancelled, a sent one
// runs out (it cannot be recalled; every step is idempotent) — and the plan's `after`
// become dependencies between operations, across blades.
//
// What it keeps for itself: per blade, a server's steps go strictly one after another
// and different servers' steps pipelined, a prepare-hypervisor step a barrier; a step
// leaves only when everything it waits for succeeded; an unanswered step times out and
// is retried with backoff, and after opMaxAttempts it is a fault (the server shows
// `failed`; no new define or start for it until 2 x opTimeoutMs have passed). A Define or
// Start leaves only while the restart gate is open, the server is still bound to that
// blade, no other blade reports it running and none is starting it (invariant 1, checked
// again at the last moment); one held back because another blade is starting it leaves
// when that start ends, answered or cancelled (the plan need not change for it to go).
//
// Only a loomd that acts sends (controller/Leadership.h): dispatch asks right before a
// plan leaves and, while not acting, keeps the blade's steps queued, unsent, for the next
// turn; every plan carries the epoch it was sent under.
//
// Core thread only.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <queue>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "controller/BladeRegistry.h"
#include "controller/ControllerOptions.h"
#include "controller/DesiredState.h"
#include "controller/EventLog.h"
#include "controller/FailureDetector.h"
#include "controller/Journal.h"
#include "controller/Leadership.h"
#include "controller/Replanner.h"
#include "pool/Planner.h"
#include "protocol/Messages.h"

namespace loom::controller {

class Reconciler {
 public:
  // A plan frame's bytes for the agent of `blade`.
  using Send = std::function<void(const std::string& blade, std::string frame)>;
  // Wants the blade's steps planned again (a retry window closed, a dependency vanished).
  using Replan = std::function<void(const std::string& blade)>;
  // A step finished well on `blade`; what it changed (domains) is recorded already.
  // `current`: for a define of a server with a restart pending, whether it defined the
  // server's spec as declared now (false for any other step).
  using StepDone =
      std::function<void(const std::string& blade, const std::string& server, pool::StepKind kind, bool current)>;

  Reconciler(const ControllerOptions& options, Journal& journal, EventLog& events, const DesiredState& desired,
             BladeRegistry& registry, const Replanner& replanner, const FailureDetector& detector,
             const Leadership& leadership, Send send, Replan replan, StepDone done)
      : options_(options),
        journal_(journal),
        events_(events),
        desired_(desired),
        registry_(registry),
        replanner_(replanner),
        detector_(detector),
        leadership_(leadership),
        send_(std::move(send)),
        replan_(std::move(replan)),
        done_(std::move(done)) {}

  // After a restart: ids go on after `lastId`; operations in flight when the controller
  // stopped are superseded (what is still needed is planned from what agents report).
  void restore(std::uint64_t lastId, std::vector<OperationRecord> inFlight);

  // Adopts the complete steps of the blades `steps` names; idempotent for the same steps.
  void adopt(const Replanner::Steps& steps, std::int64_t now);
  // The agent answered operation `op`.
  void onStepResult(const std::string& blade, std::uint64_t op, bool ok, const std::string& error, std::int64_t now);
  // What was in flight to the blade is lost (it went silent, or its agent restarted): resent.
  void lost(const std::string& blade);
  // The blade was fenced: nothing queued for it makes sense any more.
  void cancelAll(const std::string& blade, const std::string& why);
  // An operator started, stopped or moved the server: its fault and retry window go.
  void forgive(const std::string& server);
  // The restart gate opened: held defines and starts may leave.
  void startsResume();

  // Timeouts, ended backoffs, closed retry windows (before a plan is adopted).
  void expire(std::int64_t now);
  // Sends what may leave now on the blades that have something new (after adoption).
  void dispatchPending(std::int64_t now);
  std::int64_t nextDue() const { return nextDue_; }

  const std::string* fault(const std::string& server) const;
  std::size_t queued(const std::string& blade) const;
  std::size_t size() const { return operations_.size(); }
  struct Counters {
    std::uint64_t sent = 0, failed = 0, retried = 0;
  };
  const Counters& counters() const { return counters_; }

 private:
  struct Operation {
    std::uint64_t id = 0;
    std::string blade, server;
    pool::StepKind kind = pool::StepKind::Define;
    std::optional<protocol::ServerSpec> spec;
    std::string hypervisor;
    std::vector<std::uint64_t> after;  // operations that must have succeeded first
    int attempts = 0;
    bool inFlight = false;
    // Sent, then no longer planned: it runs out and is not retried (adopt).
    bool unplanned = false;
    std::int64_t deadline = 0;   // when in flight
    std::int64_t notBefore = 0;  // backoff
  };
  template <typename Key>
  using TimerHeap = std::priority_queue<std::pair<std::int64_t, Key>, std::vector<std::pair<std::int64_t, Key>>,
                                        std::greater<std::pair<std::int64_t, Key>>>;

  std::uint64_t create(const std::string& blade, const pool::Step& step);
  void dispatch(const std::string& blade, std::int64_t now);
  // Whether a define or start of `op` may leave now (invariant 1, the restart gate).
  bool mayStart(const Operation& op) const;
  void finish(std::uint64_t id, bool ok, const std::string& error, std::int64_t now);
  // Removes operations from their queues and the books; what depends on them is
  // cancelled too (its blade planned again). `state`: cancelled, done, failed.
  void drop(std::vector<std::uint64_t> ids, const char* state, const std::string& why);
  void record(const Operation& op, const char* state, const std::string& error);

  const ControllerOptions& options_;
  Journal& journal_;
  EventLog& events_;
  const DesiredState& desired_;
  BladeRegistry& registry_;
  const Replanner& replanner_;
  const FailureDetector& detector_;
  const Leadership& leadership_;
  Send send_;
  Replan replan_;
  StepDone done_;
  std::unordered_map<std::uint64_t, Operation> operations_;
  std::unordered_map<std::string, std::deque<std::uint64_t>> queues_;         // blade -> operations, in dispatch order
  std::unordered_map<std::uint64_t, std::vector<std::uint64_t>> dependents_;  // operation -> those waiting for it
  std::unordered_map<std::string, std::string> starting_;  // server -> blade a define/start is in flight to
  // server -> blades holding a define/start of it back because starting_ names another
  // blade: dispatched again when that entry goes (nothing else would wake them: the plan
  // does not change when a start elsewhere is cancelled or fails for good).
  std::unordered_map<std::string, std::set<std::string>> heldByStart_;
  std::uint64_t lastId_ = 0;
  std::set<std::string> dispatchQueue_;                          // blades with steps to send
  TimerHeap<std::uint64_t> deadlines_;                           // (deadline, operation id), pushed when sent
  TimerHeap<std::string> backoffEnds_;                           // (notBefore, blade) of operations to retry
  std::unordered_map<std::string, std::int64_t> retryServerAt_;  // server -> no define/start before (after a fault)
  std::map<std::string, std::string> faults_;                    // server -> last fault
  std::int64_t lastRetryScan_ = 0;
  std::int64_t nextDue_ = INT64_MAX;
  Counters counters_;
};

}  // namespace loom::controller
