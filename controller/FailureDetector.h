// The failure detector: which blades are alive, which may be fenced, and when.
//
//   heard ─► available ─(suspectMs silent)─► suspect ─(deadMs)─► failed ─(fence)─► fenced
//                                                                 │ fence command ┘  │ heard again
//                                                                 ▼                  ▼
//                                                     storm guard: nothing fenced   returned (cleaned,
//                                                     while too many are silent     trusted again once it
//                                                                                   runs no server)
//
// A silent blade may still run its servers (invariant 1): it is fenced — its servers may
// run elsewhere — only once its lease has run out (mayFenceByLease, the one place that
// decides it, atomic with the fabric thread's renewals through LeaseTable::fenceIfExpired
// and only while loomd counts a quorum: docs/FENCING.md), or its fence command confirmed
// power-off, or an operator did (confirmPoweredOff). A power-fenced blade (its BMC is the
// authority: it never fences itself) is never fenced by its lease; its fence command is
// retried with backoff until it succeeds. After a restart every known blade gets a fresh
// lease's grace, and starts wait until each has registered again or been fenced (the
// restart gate).
//
// Only a loomd that acts (controller/Leadership.h) fences: the lease decision and the start
// of a fence command each ask right before, against the clock; a fence command's success
// reported after the term ended fences nothing (the next leader runs its own).
//
// Each watched blade has one entry in a timer heap, due when its silence would cross the
// next limit, so tick() costs what is due, not the fabric. Core thread only; LeaseTable
// is shared with the fabric thread.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <queue>
#include <string>
#include <unordered_map>
#include <vector>

#include "controller/BladeRegistry.h"
#include "controller/ControllerOptions.h"
#include "controller/DesiredState.h"
#include "controller/EventLog.h"
#include "controller/Leadership.h"
#include "controller/LeaseTable.h"
#include "controller/QuorumKeeper.h"
#include "pool/Model.h"
#include "protocol/Messages.h"

namespace loom::controller {

// What the detector knows of one blade.
struct Liveness {
  std::int64_t lastHeartbeat = 0;  // when the core last heard it (see FailureDetector::lastHeard)
  pool::BladeState health = pool::BladeState::Available;  // Available | Suspect | Failed | Fenced
  // The latest lease granted, on our clock: the agent's own deadline is no later,
  // because it counts from when it sent the heartbeat we answered.
  std::int64_t leaseUntil = 0;
  bool fenceCommandRunning = false;
  // Fence commands run since it failed; a power-fenced blade's failed one is run again at
  // nextFenceAt (0: none due), after a backoff of 2, 4, 8 ... 60 s.
  int fenceAttempts = 0;
  std::int64_t nextFenceAt = 0;
  std::string lastFenceError;  // the last failure's detail ("" after a success or when heard)
  std::string lastFenceKind;   // ... and its kind: one error event per kind, not per attempt
  bool returned = false;       // fenced, then heard from again: not trusted until clean
  bool heldByStorm = false;    // its fencing waits for the storm guard to lift
  // False from a restart until it registers again (we know what it runs) or is fenced.
  bool confirmed = true;
  std::int64_t livenessAt = 0;  // due time of its live entry in the heap (0: none)
  // Its plain heartbeats stay in the fabric thread (LeaseTable::setRoutine): registered,
  // healthy, trusted. lastHeartbeat is then brought up to date from the LeaseTable.
  bool routine = false;
  // The outage rule: it runs servers under its peers' shield, without a lease (as its
  // beats say), and the last hold it reported once the controller heard it again.
  bool holding = false;
  std::optional<protocol::Heartbeat::Held> lastHold;
  std::int64_t lastHoldAtMs = 0;  // wall clock, when it was reported
  bool withheldNoted = false;     // "not fenced" said for this silence
};

class FailureDetector {
 public:
  // What the core does about the detector's verdicts.
  struct Listener {
    virtual ~Listener() = default;
    // Its health changed, or it was trusted again: what it may run, and whether steps
    // reach it, may have changed.
    virtual void healthChanged(const std::string& blade, pool::BladeState from) = 0;
    // Fenced (lease or power): its domains ended, its operations are void.
    virtual void fenced(const std::string& blade) = 0;
    // Every blade known before a restart registered again or was fenced: starts may go.
    virtual void startsResume() = 0;
  };
  // Starts the fence command for a blade, asynchronously (onFenceResult answers).
  using FenceRunner = std::function<void(const std::string& blade, const std::string& command)>;
  using WallClock = std::function<std::int64_t()>;

  FailureDetector(const ControllerOptions& options, LeaseTable& leases, QuorumKeeper& quorum, BladeRegistry& registry,
                  const DesiredState& desired, EventLog& events, Listener& listener, WallClock wallClock,
                  const Leadership& leadership)
      : options_(options),
        leases_(leases),
        quorum_(quorum),
        registry_(registry),
        desired_(desired),
        events_(events),
        listener_(listener),
        wallClock_(std::move(wallClock)),
        leadership_(leadership) {}

  void setFenceRunner(FenceRunner runner) { fenceRunner_ = std::move(runner); }

  // A blade known before a restart (`retired` or not): a lease's grace from `now`; not
  // retired ones are unconfirmed until they register again or are fenced.
  void restore(const std::string& blade, bool retired, std::int64_t now);

  // Heard from (register, heartbeat): silence clock, recovery from suspect/failed, a
  // fenced blade becomes `returned`. A registration also grants a fresh lease and
  // confirms the blade after a restart.
  void registered(const std::string& blade, std::int64_t now);
  void heartbeat(const std::string& blade, std::int64_t now);
  // The lease was renewed: by us at `now`, or by the fabric thread (nullopt: read it).
  void leaseRenewed(const std::string& blade, std::optional<std::int64_t> now);
  // What a heartbeat says of the outage rule (holding, a hold that ended).
  void holds(const std::string& blade, const protocol::Heartbeat& msg);
  // Its domains changed: a returned blade that runs no server is trusted again.
  void checkTrust(const std::string& blade, std::int64_t now);

  // Liveness of the blades whose silence may have crossed a limit; fences.
  void tick(std::int64_t now);
  std::int64_t nextDue() const {
    return std::min(due_.empty() ? INT64_MAX : due_.top().first, fenceDue_.empty() ? INT64_MAX : fenceDue_.top().first);
  }
  void onFenceResult(const std::string& blade, bool ok, const std::string& detail, std::int64_t now);
  // An operator says the blade is powered off (its BMC is dead; they pulled the plug): it is
  // fenced as if its fence command had confirmed it, `who` named in the event. Refused for
  // a blade that is heard (Heard: fencing a live blade by hand would run its servers twice)
  // or retired; idempotent for a fenced one.
  enum class Confirmation { Fenced, AlreadyFenced, Heard, Retired };
  Confirmation confirmPoweredOff(const std::string& blade, const std::string& who, std::int64_t now);
  // Retired by an operator: out of the storm guard's count, the quorum and the gate.
  void retire(const std::string& blade, std::int64_t now);
  // The core was busy for gapMs: every silence clock is extended by as much.
  void forgiveStall(std::int64_t gapMs);
  // This loomd began to lead (replicas, docs/FENCING.md "Replicas: the epoch"): the
  // previous leader may have renewed any blade's lease until a moment ago, so no blade is
  // fenced by its lease before a whole lease plus the margin from `now`.
  void termStarted(std::int64_t now) { leaseFloor_ = now; }

  const Liveness* find(const std::string& blade) const;
  pool::BladeState health(const std::string& blade) const;
  // When it was last heard: by the core, or by the fabric thread alone.
  std::int64_t lastHeard(const std::string& blade) const;
  // Heard within suspectMs: what "online" means for a retired blade, whose health is no
  // longer tracked.
  bool heardRecently(const std::string& blade, std::int64_t now) const;
  std::int64_t leaseLeft(const std::string& blade, std::int64_t now) const;
  // lastHeard and leaseLeft from a liveness and a lease entry the caller looked up already.
  std::int64_t lastHeard(const Liveness& l, const LeaseTable::Seen& seen) const {
    return l.routine ? std::max(l.lastHeartbeat, seen.heard) : l.lastHeartbeat;
  }
  bool heardRecently(const Liveness& l, const LeaseTable::Seen& seen, std::int64_t now) const {
    return now - lastHeard(l, seen) <= options_.suspectMs;
  }
  std::int64_t leaseLeft(const Liveness& l, const LeaseTable::Seen& seen, std::int64_t now) const {
    std::int64_t until = l.leaseUntil;
    if (seen.renewal && options_.fabricRenewsLeases) until = std::max(until, *seen.renewal + options_.leaseMs);
    return std::max<std::int64_t>(0, until - now);
  }
  // Steps reach it: registered, healthy or a returned fenced blade being cleaned, not retired.
  bool takesSteps(const std::string& blade) const;
  bool cleaning(const std::string& blade) const;
  std::size_t unconfirmed() const { return unconfirmed_; }
  bool stormActive() const { return stormActive_; }

  struct Counters {
    std::uint64_t byLease = 0, byCommand = 0, byOperator = 0, commandFailures = 0, commandRetries = 0, storms = 0,
                  withheld = 0;
  };
  const Counters& counters() const { return counters_; }

 private:
  enum class Verdict { Fence, Wait, Held };
  // The one decision: may this failed, silent blade be fenced by its lease now? Fence
  // (and it is fenced in the LeaseTable, so no renewal follows), Wait (looked at again:
  // a renewal won, no quorum, a power-fenced policy), Held (the storm guard).
  Verdict mayFenceByLease(const std::string& blade, Liveness& l, std::int64_t now);
  Liveness& at(const std::string& blade) { return blades_[blade]; }
  void watch(const std::string& blade, Liveness& l, std::int64_t now);
  void recheck(const std::string& blade, Liveness& l, std::int64_t at);
  void setHealth(const std::string& blade, Liveness& l, pool::BladeState next, std::int64_t now);
  void heardFrom(const std::string& blade, Liveness& l, std::int64_t now);
  void updateRoutine(const std::string& blade, Liveness& l);
  void fence(const std::string& blade, Liveness& l, const std::string& reason, std::int64_t now);
  void confirm(Liveness& l);
  bool stormGuardUp() const;
  void startFenceCommand(const std::string& blade, Liveness& l, std::int64_t now);
  // The template with {blade} {chassis} {slot} {hostname} {bmc_address} {bmc_port}
  // {bmc_user} {bmc_password_file} replaced by shell-quoted values; nullopt when it names a
  // BMC field and the blade has no BMC declared (such a command could only fail).
  std::optional<std::string> fenceCommandFor(const std::string& blade, const KnownBlade& k) const;
  void retryFenceCommands(std::int64_t now);
  std::size_t activeBlades() const { return registry_.all().size() - retired_; }

  // Min-heap of (due time, blade); stale entries are skipped when they come due.
  using Heap =
      std::priority_queue<std::pair<std::int64_t, std::string>, std::vector<std::pair<std::int64_t, std::string>>,
                          std::greater<std::pair<std::int64_t, std::string>>>;

  const ControllerOptions& options_;
  LeaseTable& leases_;
  QuorumKeeper& quorum_;
  BladeRegistry& registry_;
  const DesiredState& desired_;
  EventLog& events_;
  Listener& listener_;
  WallClock wallClock_;
  const Leadership& leadership_;
  FenceRunner fenceRunner_;
  std::unordered_map<std::string, Liveness> blades_;
  Heap due_;
  Heap fenceDue_;           // (nextFenceAt, blade): fence commands to run again
  std::size_t silent_ = 0;  // suspect or failed
  std::size_t retired_ = 0;
  std::size_t unconfirmed_ = 0;
  bool stormActive_ = false;
  std::int64_t leaseFloor_ = INT64_MIN / 2;  // termStarted()
  Counters counters_;
};

}  // namespace loom::controller
