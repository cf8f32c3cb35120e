// The controller core: every piece of loomd's mutable state (declarations, inventory,
// placement, identities, operations, events) lives here and is touched by one thread
// only. Sockets and HTTP are outside: frames come in through onFrame(), requests
// through handleApi(), and frames go out through the Send callback. Time is an
// argument, so tests step it.
//
// Flow (see controller/README.md):
//   apply / register / heartbeat / drain ... -> markDirty
//   tick(): failure detector -> plan (pool::plan) -> persist placement + identities
//           -> converge each blade (desired bindings vs observed domains) -> operations
//           -> dispatch in order per blade, with timeout, retry and backoff -> events
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "controller/LeaseTable.h"
#include "controller/ModelJson.h"
#include "controller/QuorumKeeper.h"
#include "controller/StateStore.h"
#include "pool/IdentityAllocator.h"
#include "pool/Planner.h"
#include "protocol/Dispatcher.h"
#include "protocol/Messages.h"

namespace loom::controller {

struct ControllerOptions {
  std::int64_t heartbeatMs = 1000;  // told to agents
  std::int64_t leaseMs = 5000;      // told to agents; renewed by every heartbeat
  std::int64_t suspectMs = 2500;    // silence after which a blade is suspect
  std::int64_t deadMs = 4000;       // silence after which a blade is failed
  // A failed blade is fenced (its servers may run elsewhere) once the lease the
  // controller last granted it has expired plus this margin: the agent's clock may run
  // slower than ours (rate drift), and the lease-renewed frame takes time to arrive.
  std::int64_t fenceMarginMs = 250;
  // Run when a blade is failed, by /bin/sh -c, with {blade} {chassis} {slot} {hostname}
  // replaced by shell-quoted values; exit 0 means power-off confirmed (IPMI, Redfish).
  std::string fenceCommand;
  std::int64_t fenceTimeoutMs = 20000;
  // Fencing-storm guard: while more than this share of the (non-retired) blades are
  // silent, and at least stormMinBlades of them, nothing is fenced: more likely the
  // controller is cut off than half the fabric dead.
  double stormShare = 0.5;
  std::size_t stormMinBlades = 3;
  // Set when another thread answers heartbeats (lease-renewed) and registers (registered)
  // as they arrive (loomd's fabric thread, through leases()); otherwise the controller
  // answers them itself.
  bool fabricRenewsLeases = false;
  std::int64_t opTimeoutMs = 15000; // an operation not answered by then is retried
  int opMaxAttempts = 4;            // then it becomes a fault event
  std::int64_t opBackoffMs = 500;   // first retry delay, doubled each attempt
  std::int64_t replanMinIntervalMs = 100;  // debounce for bursts of changes
  std::size_t maxStepsPerPlanMessage = 64;
  std::size_t eventMemory = 10000;  // events kept in memory for /v1/events
  // The outage rule (docs/FENCING.md). 0: the defaults, 0.4 and 2 leases.
  std::int64_t commitMs = 0;      // C: how long a blade promises not to attest after our stamp
  std::int64_t attestMs = 0;      // V: how long one attestation shields
  std::size_t quorumSize = 64;    // the quorum set's most members
  std::int64_t quorumDebounceMs = 1000;
  std::uint32_t stampTag = 0;     // this process's stamp tag; 0: random (tests fix it)
};

struct ApiRequest {
  std::string method;  // "GET", "POST"
  std::string path;    // "/v1/blades/c1-s1"
  std::map<std::string, std::string> query;
  std::string body;
};

struct ApiResponse {
  int status = 200;
  std::string contentType = "application/json";
  std::string body;
};

class Controller {
 public:
  using Send = std::function<void(const std::string& blade, const protocol::Json& frame)>;
  using Reply = std::function<void(ApiResponse)>;
  using WallClock = std::function<std::int64_t()>;  // ms since the epoch, for event stamps
  // Starts the fence command for a blade, asynchronously; its outcome comes back through
  // onFenceResult() on the controller's thread.
  using FenceRunner = std::function<void(const std::string& blade, const std::string& command)>;

  Controller(StateStore& store, ControllerOptions options, Send send, WallClock wallClock);

  // Loads the stored state; every blade known from the store gets a grace period of
  // deadMs from `now` to show up again before it is suspected.
  Status recover(std::int64_t now);

  // Without one, a configured fence command is never run (tests; lease fencing only).
  void setFenceRunner(FenceRunner runner) { fenceRunner_ = std::move(runner); }
  // The fence command for `blade` finished: `ok` means it confirmed power-off.
  void onFenceResult(const std::string& blade, bool ok, const std::string& detail, std::int64_t now);

  // One frame from the agent with routing id `blade`.
  void onFrame(const std::string& blade, std::string_view bytes, std::int64_t now);
  // The same for a frame the fabric thread already parsed (protocol::parseFrame accepted it).
  void onParsedFrame(const std::string& blade, const protocol::Json& frame, std::int64_t now);
  // A refusal outside the frame (authentication, bad envelope), for the counters.
  void noteRejected(const std::string& peer, const protocol::Rejection& why);

  // Timers: liveness, operation timeouts and retries, replanning, long-poll expiry,
  // flushing of batched store writes. Call often (every few tens of ms).
  void tick(std::int64_t now);
  // The core thread was busy for `gapMs` (a big apply, a slow disk): the blades'
  // heartbeats of that time wait unread in the socket, so their silence clocks are
  // extended by as much. Without it, one 7 s apply of 100,000 servers marked every blade
  // of the fabric failed.
  void forgiveStall(std::int64_t gapMs);
  // The earliest time tick() has work to do, for the caller's poll timeout.
  std::int64_t nextTickAt() const { return nextTick_; }

  // HTTP API. `reply` is called exactly once, possibly later (long-poll of events).
  void handleApi(const ApiRequest& request, std::int64_t now, Reply reply);

  // Shared with the fabric thread (thread-safe).
  LeaseTable& leases() { return leases_; }

  // Introspection for tests.
  const pool::PlacementState& placement() const { return placement_; }
  std::uint64_t rejectedTotal() const { return dispatcher_.rejectedTotal() + extraRejected_; }

 private:
  struct Operation {
    std::uint64_t id = 0;
    std::string blade, server;
    pool::StepKind kind = pool::StepKind::Define;
    std::optional<protocol::ServerSpec> spec;
    std::string hypervisor;
    int attempts = 0;
    bool inFlight = false;
    std::int64_t deadline = 0;      // when in flight
    std::int64_t notBefore = 0;     // backoff
  };

  struct BladeRuntime {
    protocol::BladeInventory inventory;
    std::string adminState;  // "" | "maintenance" | "retired"
    std::int64_t firstSeenMs = 0;
    bool registered = false;  // registered since this controller started
    std::int64_t lastHeartbeat = 0;
    std::uint64_t lastSeq = 0;
    pool::BladeState health = pool::BladeState::Available;  // Available | Suspect | Failed | Fenced
    // The latest lease granted, on our clock: the agent's own deadline is no later,
    // because it counts from when it sent the heartbeat we answered.
    std::int64_t leaseUntil = 0;
    bool fenceCommandRunning = false;
    bool returned = false;     // fenced, then heard from again: not trusted until clean
    bool heldByStorm = false;  // its fencing waits for the storm guard to lift
    // False from a restart until it registers again (we know what it runs) or is fenced.
    bool confirmed = true;
    std::map<std::string, protocol::ObservedDomain> domains;
    std::deque<std::uint64_t> queue;  // operation ids, in dispatch order
    std::set<std::string> busyServers; // servers with an operation queued here
    std::set<std::string> warnedForeign;  // unmanaged domains already reported
    std::int64_t livenessAt = 0;  // due time of its live entry in livenessDue_ (0: none)
    // Its plain heartbeats stay in the fabric thread (LeaseTable::setRoutine): registered,
    // healthy, trusted. lastHeartbeat is then brought up to date from leases_ when read.
    bool routine = false;
    // The outage rule: it runs servers under its peers' shield, without a lease (as its
    // beats say), and the last hold it reported once the controller heard it again.
    bool holding = false;
    std::optional<protocol::Heartbeat::Held> lastHold;
    std::int64_t lastHoldAtMs = 0;   // wall clock, when it was reported
    bool withheldNoted = false;      // "fencing withheld" said for this silence
  };

  // Min-heap of (time, key): tick() pops what is due, so its cost follows the work to
  // do, not the size of the fabric. Entries are not removed when they go stale; each
  // is checked against the current state when it comes due.
  template <typename Key>
  using TimerHeap = std::priority_queue<std::pair<std::int64_t, Key>, std::vector<std::pair<std::int64_t, Key>>,
                                        std::greater<std::pair<std::int64_t, Key>>>;

  struct EventWaiter {
    std::uint64_t since;
    std::size_t limit;
    std::int64_t deadline;
    Reply reply;
  };

  // Fabric handlers (the dispatch table's entries).
  void onRegister(const std::string& blade, const protocol::Json& frame);
  void onHeartbeat(const std::string& blade, const protocol::Json& frame);
  void onStepResult(const std::string& blade, const protocol::Json& frame);
  void onEvent(const std::string& blade, const protocol::Json& frame);

  // Planning and convergence.
  // `planOut`: the plan as the API shows it (apply, delete), when asked.
  void replan(std::int64_t now, Json* planOut = nullptr);
  void converge(const std::string& blade, BladeRuntime& rt, std::int64_t now);
  void enqueue(BladeRuntime& rt, Operation op);
  void dispatch(const std::string& blade, BladeRuntime& rt, std::int64_t now);
  void finishOperation(BladeRuntime& rt, std::uint64_t id, bool ok, const std::string& error, std::int64_t now);
  void detectFailures(std::int64_t now);
  // Puts the blade's next liveness check (suspect, failed, fenced) in livenessDue_.
  void watchLiveness(const std::string& blade, BladeRuntime& rt, std::int64_t now);
  // Looks at the blade again at `at` whatever its state (a fence held back).
  void recheckLiveness(const std::string& blade, BladeRuntime& rt, std::int64_t at);
  // Every health change goes through here: it keeps the silent-blade count of the storm
  // guard, and raises or lifts the guard.
  void setHealth(BladeRuntime& rt, pool::BladeState next, std::int64_t now);
  // The blade was heard (register, heartbeat): suspect/failed blades recover; a fenced
  // one is only "returned" until it reports no servers running (checkTrust).
  void heardFrom(const std::string& blade, BladeRuntime& rt);
  void checkTrust(const std::string& blade, BladeRuntime& rt);
  // Tells the fabric thread whether the blade's plain heartbeats need reach the core.
  void updateRoutine(const std::string& blade, BladeRuntime& rt);
  // When the blade was last heard: by the core, or by the fabric thread alone.
  std::int64_t lastHeard(const std::string& blade, const BladeRuntime& rt) const;
  // Its servers may now run elsewhere: cancels its operations and forgets its domains as
  // running (they ended with the lease, or with the power).
  void fence(const std::string& blade, BladeRuntime& rt, const std::string& reason, std::int64_t now);
  bool stormGuardUp() const;
  // After a restart nothing starts until every blade known before is confirmed: a server
  // being moved may still run on one we have not heard from (invariant 1).
  void confirmBlade(BladeRuntime& rt);
  void startFenceCommand(const std::string& blade, BladeRuntime& rt);
  // The outage rule's core half: a new quorum version when the eligible or power-fenced
  // blades changed (durable first), versions no blade may hold dropped, and the policy
  // sent to a blade whose beats show another (docs/FENCING.md).
  void tendQuorum(std::int64_t now);
  void sendPolicy(const std::string& blade, std::uint64_t echoed, bool force);
  // Its BMC is the authority: a fence command is configured and the blade has one.
  bool powerFencedBlade(const std::string& blade) const;
  void setDomains(const std::string& blade, BladeRuntime& rt, const std::vector<protocol::ObservedDomain>& domains);
  // nullopt forgets the domain (undefined).
  void setDomainState(const std::string& blade, BladeRuntime& rt, const std::string& name, std::optional<pool::DomainState> state);
  // What the blade needs to run `server` (the define step's spec); nullopt when it is not
  // declared or has no identity yet.
  std::optional<protocol::ServerSpec> domainSpec(const std::string& server) const;

  // State views.
  pool::Inventory inventory() const;
  pool::BladeState displayState(const std::string& blade, const BladeRuntime& rt) const;
  std::string serverState(const pool::Server& s, std::string* reason) const;
  // The API's objects as JSON text; `fields` limits a list's objects to what the client
  // asked for.
  std::string bladeText(const std::string& name, const BladeRuntime& rt, const FieldMask& fields = {}) const;
  std::string serverText(const pool::Server& s, const FieldMask& fields = {}) const;
  std::string poolText(const pool::Pool& p, const FieldMask& fields = {}) const;
  static const std::vector<std::string>& bladeFields();
  static const std::vector<std::string>& serverFields();
  static const std::vector<std::string>& poolFields();
  const pool::Server* findServer(const std::string& name) const;

  // API handlers.
  ApiResponse apiApply(const ApiRequest& req, std::int64_t now);
  ApiResponse apiDelete(const ApiRequest& req, std::int64_t now);
  ApiResponse apiDrain(const std::string& blade, bool drain, std::int64_t now);
  ApiResponse apiRetire(const std::string& blade, std::int64_t now);
  ApiResponse apiMove(const std::string& server, const ApiRequest& req, std::int64_t now);
  Json capacityJson() const;
  ApiResponse apiPower(const std::string& server, bool on, std::int64_t now);
  void apiEvents(const ApiRequest& req, std::int64_t now, Reply reply);
  std::string metrics() const;

  // Store and events.
  void event(const std::string& level, const std::string& blade, const std::string& server, const std::string& message);
  Status commitNow(Change change);  // flushes pending_ with it; durable on success
  void flush();
  void wakeWaiters(std::int64_t now, bool expiredOnly);
  // Declarations were replaced: trims their vectors and rebuilds the name index.
  void onDeclarationsChanged();

  StateStore& store_;
  ControllerOptions options_;
  Send send_;
  WallClock wallClock_;
  protocol::Dispatcher<std::string> dispatcher_;
  FenceRunner fenceRunner_;
  LeaseTable leases_;
  QuorumKeeper quorum_;
  std::size_t silentBlades_ = 0;   // suspect or failed
  std::size_t retiredBlades_ = 0;
  std::size_t unconfirmedBlades_ = 0;
  bool stormActive_ = false;
  std::uint64_t extraRejected_ = 0;
  std::map<std::string, std::uint64_t> extraRejectedByKind_;

  pool::Declarations declarations_;
  std::unordered_map<std::string, std::size_t> serverIndex_;  // name -> declarations_.servers index
  std::map<std::string, BladeRuntime> blades_;                // ordered: stable API output
  pool::PlacementState placement_;
  std::unique_ptr<pool::IdentityAllocator> identities_;
  // Servers whose identity changed and is not in the store yet -> their identity pool.
  std::map<std::string, std::string> identitiesToPersist_;
  bool identitiesDirty_ = true;                                  // declarations changed since the last assign pass
  std::unordered_map<std::string, std::set<std::string>> runningOn_;  // server -> blades reporting it running
  std::unordered_map<std::string, std::vector<std::string>> byBlade_;  // blade -> servers bound to it
  std::set<std::string> convergeQueue_;                          // blades to converge on the next tick
  std::set<std::string> dispatchQueue_;                          // blades with steps to send on the next tick
  TimerHeap<std::string> livenessDue_;    // (when its silence must be looked at, blade): one per watched blade
  TimerHeap<std::uint64_t> opDeadlines_;  // (deadline, operation id), pushed when a step is sent
  TimerHeap<std::string> backoffEnds_;    // (notBefore, blade) of operations waiting to be retried
  std::unordered_map<std::string, std::int64_t> retryServerAt_;  // server -> not before (after a fault)
  std::map<std::string, pool::BladeAssignment> roles_;       // blade -> its assignment in the latest plan
  std::map<std::string, std::string> unplaceable_;           // server -> reason
  std::map<std::string, std::string> serverFaults_;          // server -> last fault
  std::set<std::string> seenWarnings_;
  // Deleted servers (persisted as "Tombstone" records until a server of that name is
  // declared again): their domains are stopped and undefined wherever they are seen,
  // unlike domains Loom never declared, which are left alone.
  std::set<std::string> deletedServers_;

  std::unordered_map<std::uint64_t, Operation> operations_;
  std::uint64_t lastOperationId_ = 0;

  std::deque<EventRecord> events_;
  std::uint64_t lastEventId_ = 0;
  std::vector<EventWaiter> waiters_;

  Change pending_;  // batched writes nobody waits on (operation results, events)
  bool dirty_ = true;
  std::int64_t lastPlanAt_ = -1'000'000'000;
  std::int64_t nextTick_ = 0;
  std::int64_t lastRetryScan_ = 0;
  std::int64_t now_ = 0;

  // Metrics.
  std::uint64_t heartbeats_ = 0, registrations_ = 0, plans_ = 0, opsSent_ = 0, opsFailed_ = 0, opsRetried_ = 0;
  double planSecondsSum_ = 0, planSecondsLast_ = 0;
  std::uint64_t applies_ = 0;
  std::uint64_t fencesByLease_ = 0, fencesByCommand_ = 0, fenceCommandFailures_ = 0, failovers_ = 0, stormsRaised_ = 0;
  std::uint64_t fencesWithheld_ = 0;  // lease fences held back for want of a quorum
};

}  // namespace loom::controller
