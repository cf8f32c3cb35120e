// One blade's side of the outage rule (docs/FENCING.md, "What each side does"):
//   - the promises it makes: after every stamp of loomd it receives, no attestation for the
//     commit window; every attestation it gives is reported in its heartbeats until it ends;
//   - the answers it gives its peers ("have you lost loomd?");
//   - the shield it earns from them when it has lost loomd: until the time a strict
//     majority of its quorum set attested for, counted from its own asks.
// The Agent runs its servers while it holds a lease or this shield, and renews its
// watchdog to the later of the two.
//
// Pure and single-threaded: every time is the agent's monotonic milliseconds, passed in;
// sending the asks is the caller's business.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace loom::agent {

// What loomd told this blade about the rule (the `policy` message).
struct QuorumPolicy {
  std::uint64_t version = 0;         // 0: none yet
  bool powerFenced = false;          // its BMC is the authority: it never fences itself
  std::int64_t commitMs = 0;         // C
  std::int64_t attestMs = 0;         // V
  std::vector<std::string> members;  // the quorum set's blades
};

struct PeerAnswer {
  bool attest = false;
  std::int64_t validMs = 0;  // when attesting: V
  std::int64_t retryMs = 0;  // when not: how long until it could
};

class Shield {
 public:
  // `processStart`: when this agent process started. A previous process of this agent may
  // have promised or attested just before it ended; the first policy accounts for it.
  Shield(std::string self, std::int64_t processStart);

  // A newer policy replaces the current one (an older or equal version is ignored: it
  // crossed a newer one). Returns whether it was taken.
  bool setPolicy(QuorumPolicy policy);
  const QuorumPolicy& policy() const { return policy_; }

  // A stamp of loomd was received at `now` (`registered`, `lease-renewed`).
  void heardController(std::int64_t now);
  // The lease now ends at `deadline` (L = leaseMs, H = heartbeatMs). Asks are due from
  // deadline - (L - C - H) at the latest, even with loomd heard within C: a lease that
  // answered an old frame (a late registration) is shorter than L - H after its stamp, and
  // waiting for C would leave no time to collect answers. In the steady state that time
  // is later than the last stamp + C, so nothing changes there.
  void leaseEndsAt(std::int64_t deadline, std::int64_t leaseMs, std::int64_t heartbeatMs);
  std::int64_t lastHeardController() const { return lastStamp_; }

  // The answer to a peer's ask received at `now`; an attestation is remembered (and
  // reported by attestingMs) until it ends.
  PeerAnswer answer(std::int64_t now);
  // How long attestations this blade gave still run at `now` (the heartbeat's `shield_ms`).
  std::int64_t attestingMs(std::int64_t now) const { return attestUntil_ > now ? attestUntil_ - now : 0; }

  struct Ask {
    std::string member;
    std::uint64_t seq = 0;
  };
  // The asks to send now, recorded as sent at `now`: to every member whose credit is missing
  // or half spent, once loomd has been silent for the commit window (no member that heard
  // it as late as this blade could attest sooner) or the lease is short (leaseEndsAt). Its own attestation, when it is
  // a member, is taken here too (no message). Nothing for a power-fenced blade or without a policy.
  std::vector<Ask> asksDue(std::int64_t now);
  // `member`'s answer to ask `seq`, received at `now`. Answers to asks it does not know
  // (never sent, or forgotten) are ignored.
  void onAnswer(const std::string& member, std::uint64_t seq, const PeerAnswer& answer, std::int64_t now);

  // Until when the answers received so far shield this blade: the (|Q|/2+1)-th largest
  // credit. 0 when they do not (fewer members attested, or no members).
  std::int64_t shieldEnd() const { return shieldEnd_; }
  // When asksDue may have something to send (max when nothing is pending).
  std::int64_t nextDueAt() const;
  // Live credits at `now` and the size of the quorum set, for logs and events.
  std::pair<std::size_t, std::size_t> support(std::int64_t now) const;

  // It fenced itself: what it earned shields nothing any more (its servers are gone), and
  // it starts afresh. Its own promises stay.
  void drop();

 private:
  struct Peer {
    std::int64_t credit = 0;                                   // shielded until then, counted from our ask
    std::int64_t nextAskAt = 0;                                // due then: credit half spent, retry, or resend
    std::deque<std::pair<std::uint64_t, std::int64_t>> asked;  // (seq, when), recent, unanswered
  };
  void recompute();
  bool quiet(std::int64_t now) const;
  // When asks are due at the latest because the lease is short (max: no lease).
  std::int64_t shortLeaseAt() const;

  std::string self_;
  std::int64_t processStart_;
  QuorumPolicy policy_;
  std::int64_t noAttestUntil_;
  std::int64_t attestUntil_ = 0;
  std::int64_t lastStamp_;
  std::uint64_t seq_ = 0;
  std::map<std::string, Peer> peers_;  // members only (self included when a member)
  std::int64_t shieldEnd_ = 0;
  std::int64_t leaseEnd_ = 0, leaseMs_ = 0, heartbeatMs_ = 0;  // leaseEndsAt; 0: no lease
};

}  // namespace loom::agent
