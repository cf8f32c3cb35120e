// controller/Election.cpp's election loop as the simulator runs it: the same rules, turned
// inside out. Election has a thread that blocks in etcd calls; here each call is sent (Io::send)
// and the loop goes on when its reply or its timeout comes, so one thread drives every
// replica on virtual time. A MIRROR, not the real code: Election's decisions are bound up
// with its blocking calls and its mutex (tests/sim/README.md, "Replicas", says what a shared
// pure class would take). Keep the two in step; each step below names what it mirrors.
//
// The rules (Election.h): a standby looks at the leader key every pollMs; when it is vacant
// and main wants to lead (campaign()), it takes a lease (the time before the grant is sent is
// `sent`) and creates the key under it in one txn; the key's create revision is the epoch.
// Leading, it renews every ttl/4, and acts only until
//   actUntil = sent + ttl * (1 - clockRate) - margin
// of the last renewal the store answered (Leadership::grant). The term ends at actUntil,
// when the store says the lease is gone, or on resign() (which revokes the lease). Every
// etcd call gives up after the client's timeout, max(100 ms, ttl / 4).
//
// Single-threaded; times are the replica's own monotonic clock (ms).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "controller/Leadership.h"
#include "loom/Result.h"

namespace loom::sim {

class SimElection {
 public:
  struct Options {
    std::string name;             // the replica's (the leader key's value)
    std::int64_t ttlSeconds = 1;  // ElectionOptions::ttlSeconds
    double clockRate = 0.01;      // ElectionOptions::clockRate
    std::int64_t marginMs = 100;  // ElectionOptions::marginMs
    std::int64_t pollMs = 100;    // ElectionOptions::pollMs
  };

  enum class Op : std::uint8_t { Range, Grant, Campaign, KeepAlive, Revoke };
  struct Call {
    std::uint64_t id = 0;
    Op op = Op::Range;
    std::int64_t lease = 0;       // Campaign, KeepAlive, Revoke
    std::int64_t ttlSeconds = 0;  // Grant
    std::string holder;           // Campaign: the key's value
  };
  struct Reply {
    bool ok = true;
    Errc code = Errc::Internal;  // when not ok: Timeout when no answer came in time
    std::string message;
    std::int64_t createRevision = 0;  // Range: the leader key's (0: vacant)
    std::string holder;               // Range
    std::int64_t lease = 0;           // Grant
    std::int64_t ttlSeconds = 0;      // Grant, KeepAlive
    bool succeeded = false;           // Campaign
    std::int64_t revision = 0;        // Campaign: the new key's create revision
  };
  struct Io {
    std::function<void(const Call&)> send;         // to the store; reply() or its timeout follows
    std::function<void(std::uint64_t epoch)> won;  // campaign() returned: main builds the term
    std::function<void(const char* why)> lost;     // the term ended without resign(): tear it down
  };

  SimElection(Options options, controller::Leadership& leadership, Io io, std::int64_t now);

  // Main waits in Election::campaign(): from now on a vacant key is contested.
  void campaign(std::int64_t now);
  // Election::resign(): acting stops now; the lease is revoked once the call in flight ends.
  void resign(std::int64_t now);
  // The reply to call `id` (ignored unless it is the one in flight), which reached the
  // process at `arrivedAt` (earlier than now when it waited for a frozen process): one
  // that arrived after the call's timeout is that timeout.
  void reply(std::uint64_t id, const Reply& r, std::int64_t now, std::int64_t arrivedAt);
  // The loop's timers: a call's timeout, the next turn.
  void onTimer(std::int64_t now);
  // When onTimer() is next due (local ms).
  std::int64_t nextTimerAt() const { return inFlight_ ? inFlight_->deadline : nextTurnAt_; }

  std::uint64_t epoch() const { return epoch_; }
  bool leading() const { return epoch_ != 0; }
  std::int64_t actUntil() const { return actUntil_; }
  std::int64_t callTimeoutMs() const;
  // Who holds the key, as last seen (Election::leader()).
  const std::optional<std::string>& leaderSeen() const { return leaderSeen_; }

 private:
  // What the thread was doing when it made the call in flight.
  enum class Step : std::uint8_t { Look, Grant, Txn, RevokeFailedCampaign, GiveBack, Renew, RevokeAtEnd };
  struct InFlight {
    Call call;
    Step step;
    std::int64_t deadline = 0;
  };

  // Election::run()'s loop body, when no call is in flight.
  void turn(std::int64_t now);
  void send(Op op, Step step, std::int64_t now, std::int64_t lease = 0);
  void complete(const Reply& r, std::int64_t now);
  void continueAfter(Step step, const Call& call, const Reply& r, std::int64_t now);
  // The loop's bottom: wait until the next renewal or actUntil (leading), or pollMs.
  void waitFrom(std::int64_t now);
  void endTerm(const char* why, bool revoke, std::int64_t now);
  std::int64_t actingDeadline(std::int64_t sent) const;

  Options options_;
  controller::Leadership& leadership_;
  Io io_;
  std::uint64_t nextCallId_ = 0;
  std::optional<InFlight> inFlight_;
  std::int64_t nextTurnAt_ = 0;
  bool wantToLead_ = false;
  bool resignAsked_ = false;
  bool wantedAtLook_ = false;  // tryToWin's `want`, read before its range
  std::optional<std::string> leaderSeen_;
  // The term (Election's fields of the same names).
  std::int64_t leaseId_ = 0;
  std::uint64_t epoch_ = 0;
  std::int64_t grantedTtlMs_ = 0;
  std::int64_t renewEveryMs_ = 0;
  std::int64_t nextRenewAt_ = 0;
  std::int64_t actUntil_ = 0;
  std::int64_t sent_ = 0;          // the campaign's or the renewal's send time
  std::int64_t pendingLease_ = 0;  // a granted lease not yet the term's
  std::int64_t pendingTtlSeconds_ = 0;
};

}  // namespace loom::sim
