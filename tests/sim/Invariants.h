// The simulator's judges. They see the world, never the code under test: which
// processes ran, which links were up, which domains ran where (from the blades' test
// drivers), so they stay valid whatever the agent and controller do inside.
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "tests/sim/SimNetwork.h"

namespace loom::sim {

inline constexpr std::int64_t kNotSince = std::numeric_limits<std::int64_t>::max();

// Invariant 1: no server (by uuid) runs on two blades at the same virtual time.
class DoubleRunJudge {
 public:
  // What blade `blade` runs now (uuid -> domain name), polled from its driver. Returns a
  // description of the first server found running on two blades, if this made one.
  std::optional<std::string> update(const std::string& blade, const std::map<std::string, std::string>& running,
                                    std::int64_t now);

 private:
  struct Run {
    std::string domain;
    std::int64_t since = 0;
  };
  std::map<std::string, std::map<std::string, Run>> byUuid_;  // uuid -> blade -> run
  std::map<std::string, std::set<std::string>> byBlade_;      // blade -> uuids
};

// Invariant 7: no healthy blade stops a server while the control plane is unreachable.
//
// A blade B that ends its own domains at t (its agent's self-fence, or its watchdog) is
// judged. It is a violation iff
//   (a) B's agent ran, neither frozen nor crashed, throughout [t - W, t]; and
//   (b) a strict majority of B's quorum set could shield B: each such P (B itself
//       included) ran throughout [t - W, t], its link with B was Up throughout
//       [t - W, t], and P was out of loomd's reach throughout [t - A, t] (loomd frozen or
//       down, or the link P-loomd cut).
// B's quorum set is the members of the last `policy` frame loomd delivered to it (seen on
// the wire, like everything else here): the fabric as the rule counts it, without the
// blades loomd fenced. A blade that never received one cannot be shielded: not judged.
// (b)'s last clause is what docs/FENCING.md lets a peer attest on: a blade cut from loomd
// whose peers still hear loomd (a chassis whose relay pair is gone, a minority) has no
// shield and must fence itself; a blade whose majority lost loomd too must not.
// W (links and processes stable) and A (the majority out of loomd's reach) are
// parameters; see Windows.
struct Windows {
  std::int64_t stableMs = 0;         // W
  std::int64_t controllerOutMs = 0;  // A
  // W = L + C + 4 RTT: a lease, the commit window after it during which no peer may
  // attest, and round trips for an ask and its re-ask. A = C(1 + 2 rho) + 2 RTT + 10 ms:
  // the earliest a peer that lost loomd may attest, stretched by the clock error, plus an
  // ask and its answer. C = 0.4 L (FENCING's default), rho = 1 %, RTT = 2 x the longest
  // delay of an Up link.
  static Windows forLease(std::int64_t leaseMs, std::int64_t maxUpDelayMs);
};

class OutageJudge {
 public:
  OutageJudge(int blades, Windows windows);
  // Node 0 is loomd, 1..blades the blades. `running`: neither frozen nor crashed.
  void setRunning(int node, bool running, std::int64_t now);
  void setLink(int a, int b, LinkState state, std::int64_t now);
  // loomd delivered blade `node` a policy whose members are these nodes.
  void setMembers(int node, std::vector<int> members);
  // B (a node >= 1) ended its own domains at `now`: the violation, described, or nothing.
  std::optional<std::string> judge(int blade, std::int64_t now, const std::vector<std::string>& names) const;
  const Windows& windows() const { return windows_; }

 private:
  void refreshOut(int blade, std::int64_t now);
  std::int64_t& upSince(int a, int b);
  std::int64_t upSince(int a, int b) const;

  int blades_;
  Windows windows_;
  std::vector<std::int64_t> runningSince_;  // per node; kNotSince while not running
  std::vector<std::int64_t> upSince_;       // per pair; kNotSince while not Up
  std::vector<LinkState> toController_;     // per blade
  std::vector<std::vector<int>> members_;   // per blade: its policy's members
  std::vector<std::int64_t> outSince_;      // per blade: out of loomd's reach since; kNotSince while in reach
};

// Replicas: at most one loomd acts at any virtual instant. Each replica's Leadership is
// asked against that replica's own clock (ProcessClock: any two rates within 1 %, the rho
// Election's actUntil allows for) after every event; a frozen replica counts, for a
// Leadership that still says "acting" would act the moment it is thawed. A term begins
// with an event (its grant), so an overlap is always seen at one. Reported once per pair
// of epochs.
class ActingJudge {
 public:
  struct Actor {
    std::string name;
    std::uint64_t epoch = 0;
    std::int64_t localNow = 0;
    std::int64_t actUntil = 0;  // on its clock
  };
  std::optional<std::string> judge(const std::vector<Actor>& acting, std::int64_t now);

 private:
  std::set<std::pair<std::uint64_t, std::uint64_t>> reported_;
};

// Replicas: an acknowledged change survives a takeover, and one left unanswered (a
// timeout, a leader that froze or was replaced under it) is either there or absent,
// never half. Followed on one field that the replica scenarios change only by apply:
// server `cold`'s power. At the end the leader's view must be the last acknowledged
// value, or the value of an apply sent after it that got no answer.
class AckJudge {
 public:
  void start(const std::string& power) {
    acked_ = power;
    since_.clear();
    active_ = true;
  }
  bool active() const { return active_; }
  // An apply that set `power`: answered 200, or maybe applied (no answer, 5xx), or
  // certainly not (4xx: nothing changed).
  enum class Outcome : std::uint8_t { Acknowledged, Unknown, Refused };
  void applied(const std::string& power, Outcome outcome);
  std::optional<std::string> judge(const std::string& shown) const;

 private:
  bool active_ = false;
  std::string acked_;
  std::set<std::string> since_;  // unanswered since the last acknowledged
};

}  // namespace loom::sim
