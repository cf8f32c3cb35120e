// The operations: the steps sent to agents, each with an id, tracked until its blade
// answers. Per blade, a server's steps go strictly one after another (define before
// start, stop before undefine) and different servers' steps pipelined, a prepare-
// hypervisor step a barrier; an unanswered step times out and is retried with backoff,
// and after opMaxAttempts it is a fault (the server shows `failed`; its starts wait
// 2 x opTimeoutMs before they are tried again). Nothing starts while the failure detector
// holds starts after a restart.
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
#include "controller/Replanner.h"
#include "pool/Planner.h"
#include "protocol/Messages.h"

namespace loom::controller {

class Reconciler {
 public:
  using Send = std::function<void(const std::string& blade, const protocol::Json& frame)>;
  // A step finished on `blade`: what it changed (domains) is recorded already.
  using StepDone = std::function<void(const std::string& blade, const std::string& server, pool::StepKind kind)>;

  Reconciler(const ControllerOptions& options, Journal& journal, EventLog& events, const DesiredState& desired,
             BladeRegistry& registry, const Replanner& replanner, const FailureDetector& detector, Send send, StepDone done)
      : options_(options), journal_(journal), events_(events), desired_(desired), registry_(registry), replanner_(replanner),
        detector_(detector), send_(std::move(send)), done_(std::move(done)) {}

  // After a restart: ids go on after `lastId`; operations in flight when the controller
  // stopped are superseded (what is still needed is recomputed from what agents report).
  void restore(std::uint64_t lastId, std::vector<OperationRecord> inFlight);

  // The blade's desired and observed state may differ now: converge it on the next tick.
  void reconsider(const std::string& blade) { convergeQueue_.insert(blade); }
  void reconsiderAll();
  // Prepare-hypervisor steps of a plan.
  void prepare(const std::vector<pool::Step>& steps);
  // The agent answered operation `op`.
  void onStepResult(const std::string& blade, std::uint64_t op, bool ok, const std::string& error, std::int64_t now);
  // What was in flight to the blade is lost (it went silent, or its agent restarted): resent.
  void lost(const std::string& blade);
  // The blade was fenced: nothing queued for it makes sense any more.
  void cancelAll(const std::string& blade, const std::string& why);
  // An operator started, stopped or moved the server: its fault and retry window go.
  void forgive(const std::string& server);

  // Timeouts, ended backoffs, closed retry windows, convergence, dispatch.
  void tick(std::int64_t now);
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
    int attempts = 0;
    bool inFlight = false;
    std::int64_t deadline = 0;   // when in flight
    std::int64_t notBefore = 0;  // backoff
  };
  struct Queue {
    std::deque<std::uint64_t> ops;      // in dispatch order
    std::set<std::string> busyServers;  // servers with an operation queued here
  };
  template <typename Key>
  using TimerHeap = std::priority_queue<std::pair<std::int64_t, Key>, std::vector<std::pair<std::int64_t, Key>>,
                                        std::greater<std::pair<std::int64_t, Key>>>;

  void converge(const std::string& blade, std::int64_t now);
  void enqueue(Operation op);
  void dispatch(const std::string& blade, std::int64_t now);
  void finish(std::uint64_t id, bool ok, const std::string& error, std::int64_t now);
  void record(const Operation& op, const char* state, const std::string& error);

  const ControllerOptions& options_;
  Journal& journal_;
  EventLog& events_;
  const DesiredState& desired_;
  BladeRegistry& registry_;
  const Replanner& replanner_;
  const FailureDetector& detector_;
  Send send_;
  StepDone done_;
  std::unordered_map<std::uint64_t, Operation> operations_;
  std::unordered_map<std::string, Queue> queues_;                // blade -> its operations
  std::uint64_t lastId_ = 0;
  std::set<std::string> convergeQueue_;                          // blades to converge on the next tick
  std::set<std::string> dispatchQueue_;                          // blades with steps to send on the next tick
  TimerHeap<std::uint64_t> deadlines_;                           // (deadline, operation id), pushed when sent
  TimerHeap<std::string> backoffEnds_;                           // (notBefore, blade) of operations to retry
  std::unordered_map<std::string, std::int64_t> retryServerAt_;  // server -> not before (after a fault)
  std::map<std::string, std::string> faults_;                    // server -> last fault
  std::int64_t lastRetryScan_ = 0;
  std::int64_t nextDue_ = INT64_MAX;
  Counters counters_;
};

}  // namespace loom::controller
