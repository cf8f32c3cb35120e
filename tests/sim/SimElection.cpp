#include "tests/sim/SimElection.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace loom::sim {

SimElection::SimElection(Options options, controller::Leadership& leadership, Io io, std::int64_t now)
    : options_(std::move(options)), leadership_(leadership), io_(std::move(io)), nextTurnAt_(now) {}

// Election::run() builds its client with this timeout.
std::int64_t SimElection::callTimeoutMs() const { return std::max<std::int64_t>(100, options_.ttlSeconds * 250); }

// Election::actingDeadline().
std::int64_t SimElection::actingDeadline(std::int64_t sent) const {
  return sent + static_cast<std::int64_t>(static_cast<double>(grantedTtlMs_) * (1.0 - options_.clockRate)) -
         options_.marginMs;
}

// Election::campaign(): wantToLead_, and the loop is woken (changed_.notify_all()).
void SimElection::campaign(std::int64_t now) {
  wantToLead_ = true;
  if (!inFlight_) nextTurnAt_ = now;
}

// Election::resign(): Leadership revoked at once; the loop ends the term (and revokes
// the lease) when it next turns, after the call it may be blocked in.
void SimElection::resign(std::int64_t now) {
  wantToLead_ = false;  // main does not campaign again (it stops, or campaigns anew later)
  if (epoch_ == 0) return;
  resignAsked_ = true;
  leadership_.revoke();
  if (!inFlight_) nextTurnAt_ = now;
}

void SimElection::send(Op op, Step step, std::int64_t now, std::int64_t lease) {
  Call c;
  c.id = ++nextCallId_;
  c.op = op;
  c.lease = lease;
  if (op == Op::Grant) c.ttlSeconds = options_.ttlSeconds;
  if (op == Op::Campaign) c.holder = options_.name;
  inFlight_ = InFlight{c, step, now + callTimeoutMs()};
  io_.send(c);
}

void SimElection::onTimer(std::int64_t now) {
  if (inFlight_) {
    if (now < inFlight_->deadline) return;
    // The client gave up: the call returns an error.
    Reply timeout;
    timeout.ok = false;
    timeout.code = Errc::Timeout;
    timeout.message = "etcd: timed out";
    return complete(timeout, now);
  }
  if (now >= nextTurnAt_) turn(now);
}

void SimElection::reply(std::uint64_t id, const Reply& r, std::int64_t now, std::int64_t arrivedAt) {
  if (!inFlight_ || inFlight_->call.id != id) return;  // one that already timed out
  if (arrivedAt > inFlight_->deadline) return onTimer(now);
  complete(r, now);
}

void SimElection::complete(const Reply& r, std::int64_t now) {
  const InFlight done = *inFlight_;
  inFlight_.reset();
  continueAfter(done.step, done.call, r, now);
}

// Election::run()'s loop body.
void SimElection::turn(std::int64_t now) {
  if (epoch_ != 0) {
    if (resignAsked_) return endTerm("resigned", true, now);
    if (now >= actUntil_) return endTerm("its lease could not be renewed in time", false, now);
    if (now >= nextRenewAt_) {
      // Election::renew(): `sent` is read right before the call.
      sent_ = now;
      return send(Op::KeepAlive, Step::Renew, now, leaseId_);
    }
    return waitFrom(now);
  }
  // Election::tryToWin(): who leads now, and whether the key is vacant.
  wantedAtLook_ = wantToLead_;
  send(Op::Range, Step::Look, now);
}

void SimElection::waitFrom(std::int64_t now) {
  const std::int64_t wakeAt = epoch_ ? std::min(nextRenewAt_, actUntil_) : now + options_.pollMs;
  nextTurnAt_ = now + std::clamp<std::int64_t>(wakeAt - now, 1, options_.pollMs);
}

void SimElection::continueAfter(Step step, const Call& call, const Reply& r, std::int64_t now) {
  switch (step) {
    case Step::Look: {
      if (r.ok) leaderSeen_ = r.createRevision ? std::optional(r.holder) : std::nullopt;
      const bool vacant = r.ok && r.createRevision == 0;
      if (!wantedAtLook_ || !vacant) return waitFrom(now);
      // Vacant: campaign. The lease's clock starts before the grant is sent.
      sent_ = now;
      return send(Op::Grant, Step::Grant, now);
    }
    case Step::Grant:
      if (!r.ok) {
        spdlog::warn("election: cannot get an etcd lease: {}", r.message);
        return waitFrom(now);
      }
      pendingLease_ = r.lease;
      pendingTtlSeconds_ = r.ttlSeconds;
      return send(Op::Campaign, Step::Txn, now, r.lease);
    case Step::Txn: {
      if (!r.ok || !r.succeeded) {
        if (!r.ok) spdlog::warn("election: campaign failed: {}", r.message);
        return send(Op::Revoke, Step::RevokeFailedCampaign, now, pendingLease_);
      }
      leaseId_ = pendingLease_;
      grantedTtlMs_ = pendingTtlSeconds_ * 1000;
      renewEveryMs_ = std::max<std::int64_t>(50, grantedTtlMs_ / 4);
      actUntil_ = actingDeadline(sent_);
      nextRenewAt_ = sent_ + renewEveryMs_;
      if (now >= actUntil_) {
        // The campaign took longer than the lease is safe for: give it back.
        return send(Op::Revoke, Step::GiveBack, now, leaseId_);
      }
      epoch_ = static_cast<std::uint64_t>(r.revision);
      wantToLead_ = false;  // campaign() returns
      leaderSeen_ = options_.name;
      leadership_.grant(epoch_, actUntil_);
      spdlog::info("election: won epoch {} (etcd lease {} s; acting at most {} ms past each renewal)", epoch_,
                   pendingTtlSeconds_, actUntil_ - sent_);
      waitFrom(now);
      if (io_.won) io_.won(epoch_);
      return;
    }
    case Step::RevokeFailedCampaign:
      return waitFrom(now);
    case Step::GiveBack:
      leaseId_ = 0;
      return waitFrom(now);
    case Step::Renew: {
      if (epoch_ == 0 || leaseId_ != call.lease) return waitFrom(now);
      if (!r.ok && r.code == Errc::NotFound) return endTerm("etcd says its lease is gone", false, now);
      if (!r.ok) {
        // Tried again at the next turn, until actUntil passes.
        nextRenewAt_ = now + std::max<std::int64_t>(20, renewEveryMs_ / 4);
        spdlog::warn("election: renewing epoch {} failed ({} ms of the term left): {}", epoch_, actUntil_ - now,
                     r.message);
        return waitFrom(now);
      }
      actUntil_ = std::max(actUntil_, actingDeadline(sent_));
      nextRenewAt_ = sent_ + renewEveryMs_;
      // As Election::renew(): granted again even when resign() revoked it while this
      // renewal was in flight (the term is gone by then; the loop revokes at its next turn).
      if (resignAsked_)
        spdlog::warn("election: epoch {} granted again after resign() (a renewal was in flight)", epoch_);
      leadership_.grant(epoch_, actUntil_);
      return waitFrom(now);
    }
    case Step::RevokeAtEnd:
      if (!r.ok) spdlog::warn("election: revoking the lease of a term failed (it expires on its own): {}", r.message);
      // endTerm() is followed by `continue`: the loop turns again at once.
      nextTurnAt_ = now;
      return;
  }
}

// Election::endTerm().
void SimElection::endTerm(const char* why, bool revoke, std::int64_t now) {
  leadership_.revoke();
  const std::uint64_t epoch = epoch_;
  const std::int64_t id = leaseId_;
  epoch_ = 0;
  leaseId_ = 0;
  resignAsked_ = false;
  leaderSeen_.reset();
  spdlog::log(revoke ? spdlog::level::info : spdlog::level::warn, "election: term {} ended: {}", epoch, why);
  if (!revoke && io_.lost) io_.lost(why);
  if (revoke && id) return send(Op::Revoke, Step::RevokeAtEnd, now, id);
  nextTurnAt_ = now;  // `continue`
}

}  // namespace loom::sim
