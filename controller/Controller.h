// The controller core: the thin center of loomd's rooms. It owns them and the core
// thread's view of time, routes what comes in — agent frames (a dispatch table), API
// requests (a routing table), timers (tick) — to the room whose job it is, and wires what
// one room decides into the next. Every piece of mutable state lives in a room and is
// touched by the core thread only; the LeaseTable is shared with the fabric thread.
// Sockets and HTTP are outside: frames come in through onFrame(), requests through
// handleApi(), and frames go out through the Send callback. Time is an argument, so tests
// step it. The rooms and their flow: controller/README.md ("Rooms").
//
//   Journal        batched and immediate store writes
//   EventLog       events and their long-polls
//   DesiredState   declarations, tombstones, identities; apply/delete drafts
//   BladeRegistry  inventory, admin state, reported domains
//   FailureDetector  suspect/failed/fenced, storm guard, trust, fence commands, restart gate
//   QuorumKeeper   the outage rule's policy versions (docs/FENCING.md)
//   Replanner      the placement, full plans, made durable before anyone acts
//   Reconciler     operations: dispatch, timeouts, retries, backoff
//   access/        tokens, the access check, the audit log
//   api/           routing table, endpoints, views
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "controller/BladeRegistry.h"
#include "controller/ControllerOptions.h"
#include "controller/DesiredState.h"
#include "controller/EventLog.h"
#include "controller/FailureDetector.h"
#include "controller/Journal.h"
#include "controller/Leadership.h"
#include "controller/LeaseTable.h"
#include "controller/ModelJson.h"
#include "controller/QuorumKeeper.h"
#include "controller/Reconciler.h"
#include "controller/Replanner.h"
#include "controller/StateStore.h"
#include "controller/access/AccessGate.h"
#include "controller/access/AuditLog.h"
#include "controller/access/DeclaredScope.h"
#include "controller/access/TokenTable.h"
#include "controller/api/AccessEndpoints.h"
#include "controller/api/Api.h"
#include "controller/api/ApiRouter.h"
#include "controller/api/Endpoints.h"
#include "controller/api/Views.h"
#include "pool/Planner.h"
#include "protocol/Dispatcher.h"
#include "protocol/Messages.h"

namespace loom::controller {

class Controller final : private FailureDetector::Listener, private api::Endpoints::Planning {
 public:
  // A frame for the agent of `blade`: its bytes, one JSON object (docs/PROTOCOL.md).
  using Send = std::function<void(const std::string& blade, std::string frame)>;
  using Reply = std::function<void(ApiResponse)>;
  using WallClock = std::function<std::int64_t()>;  // ms since the epoch, for event stamps
  // Starts the fence command for a blade, asynchronously; its outcome comes back through
  // onFenceResult() on the controller's thread.
  using FenceRunner = FailureDetector::FenceRunner;

  // `leadership` (it must outlive the Controller) says whether this loomd may act and under
  // which epoch (controller/Leadership.h): frames it sends carry its epoch, and while it does
  // not act the core takes in no frame, ticks no timer, sends no step and fences nothing.
  // The default, solo, always acts: one loomd on its own store, as before replicas.
  Controller(StateStore& store, ControllerOptions options, Send send, WallClock wallClock,
             const Leadership& leadership = Leadership::soloDefault());
  Controller(const Controller&) = delete;
  Controller& operator=(const Controller&) = delete;

  // Loads the stored state; every blade known from the store gets a grace period of
  // deadMs from `now` to show up again before it is suspected.
  Status recover(std::int64_t now);

  // Without one, a configured fence command is never run (tests; lease fencing only).
  void setFenceRunner(FenceRunner runner) { detector_.setFenceRunner(std::move(runner)); }
  // Called once, on the core thread, when a change's outcome in the store is unknown (a
  // commit timed out: it may have landed). The core writes nothing more after it; its
  // owner ends the term so that the next one loads the store (controller/Journal.h).
  void onStoreBehind(std::function<void(const Error&)> handler) { journal_.setBehind(std::move(handler)); }
  // The fence command for `blade` finished: `ok` means it confirmed power-off.
  void onFenceResult(const std::string& blade, bool ok, const std::string& detail, std::int64_t now);

  // One frame from the agent with routing id `blade`. Dropped (counted) while not acting.
  void onFrame(const std::string& blade, std::string_view bytes, std::int64_t now);
  // The same for a frame the fabric thread already parsed (protocol::parseFrame accepted it).
  void onParsedFrame(const std::string& blade, const protocol::Json& frame, std::int64_t now);
  // A refusal outside the frame (authentication, bad envelope), for the counters.
  void noteRejected(const std::string& peer, const protocol::Rejection& why);

  // Timers: liveness, operation timeouts and retries, replanning, long-poll expiry,
  // flushing of batched store writes. Call often (every few tens of ms). While not acting
  // only long-polls are woken; when acting resumes, the blades' silence clocks are
  // extended by the time it did not act (their frames were dropped, not queued: it heard
  // nothing), as for a stall.
  void tick(std::int64_t now);
  // The core thread was busy for `gapMs` (a big apply, a slow disk): the blades'
  // heartbeats of that time wait unread in the socket, so their silence clocks are
  // extended by as much. Without it, one 7 s apply of 100,000 servers marked every blade
  // of the fabric failed.
  void forgiveStall(std::int64_t gapMs) { detector_.forgiveStall(gapMs); }
  // The earliest time tick() has work to do, for the caller's poll timeout.
  std::int64_t nextTickAt() const { return nextTick_; }

  // HTTP API. `reply` is called exactly once, possibly later (long-poll of events).
  void handleApi(ApiRequest request, std::int64_t now, const Reply& reply);
  // One more route, checked like the core's own (a replica's GET /v1/status).
  void addRoute(const std::string& method, const std::string& pattern, access::RouteAccess access,
                api::ApiRouter::Simple handler) {
    router_.add(method, pattern, access, std::move(handler));
  }

  // Shared with the fabric thread (thread-safe).
  LeaseTable& leases() { return leases_; }
  const Leadership& leadership() const { return leadership_; }
  // Frames handed to the core while it did not act, dropped.
  std::uint64_t droppedNotActing() const { return droppedNotActing_; }

  // Introspection for tests.
  const pool::PlacementState& placement() const { return replanner_.placement(); }
  std::uint64_t rejectedTotal() const { return dispatcher_.rejectedTotal(); }

 private:
  // Fabric handlers (the dispatch table's entries).
  void onRegister(const std::string& blade, const protocol::Json& frame);
  void onHeartbeat(const std::string& blade, const protocol::Json& frame);
  void onStepResult(const std::string& blade, const protocol::Json& frame);
  void onEvent(const std::string& blade, const protocol::Json& frame);
  // The outage rule's core half: a new quorum version when the eligible or power-fenced
  // blades changed (durable first), versions no blade may hold dropped, and the policy
  // sent to a blade whose beats show another (docs/FENCING.md).
  void tendQuorum(std::int64_t now);
  void sendPolicy(const std::string& blade, std::uint64_t echoed, bool force);
  // Its BMC is the authority: a fence command is configured and the blade has one.
  bool powerFencedBlade(const std::string& blade) const;
  // A full plan, its changes handed to the reconciler.
  std::string replan(std::int64_t now, bool wantPlan);
  std::string metrics() const;
  void warnAboutTheLease();

  // FailureDetector::Listener
  void healthChanged(const std::string& blade, pool::BladeState from) override;
  void fenced(const std::string& blade) override;
  void startsResume() override;
  // api::Endpoints::Planning
  std::string planNow(std::int64_t now) override { return replan(now, true); }
  void bladeChanged(const std::string& blade, std::int64_t now) override;
  void bladesDeclared(std::int64_t now) override;
  void serverChanged(const std::string& server, std::int64_t now) override;

  // Frames out as bytes. The plan frames are written as text (protocol/PlanFrameWriter.h);
  // the rest, small and rare, are built as JSON and dumped here.
  struct Outgoing {
    Send send;
    void operator()(const std::string& blade, std::string bytes) const { send(blade, std::move(bytes)); }
    void operator()(const std::string& blade, const protocol::Json& frame) const { send(blade, frame.dump()); }
  };

  ControllerOptions options_;
  const Leadership& leadership_;
  Outgoing send_;
  WallClock wallClock_;
  protocol::Dispatcher<std::string> dispatcher_;
  LeaseTable leases_;
  QuorumKeeper quorum_;
  Journal journal_;
  EventLog events_;
  DesiredState desired_;
  BladeRegistry registry_;
  FailureDetector detector_;
  Replanner replanner_;
  Reconciler reconciler_;
  api::Views views_;
  access::TokenTable tokens_;
  access::AuditLog audit_;
  access::DeclaredScope scope_;
  access::AccessGate gate_;
  api::Endpoints endpoints_;
  api::AccessEndpoints accessEndpoints_;
  api::ApiRouter router_;
  std::int64_t now_ = 0;
  std::int64_t nextTick_ = 0;
  std::uint64_t heartbeats_ = 0;
  std::uint64_t droppedNotActing_ = 0;
  std::int64_t notActingSince_ = -1;  // the first tick that found it not acting; -1: acting
  std::uint64_t actingEpoch_ = 0;     // the epoch of the term it last acted in (0: solo)
};

}  // namespace loom::controller
