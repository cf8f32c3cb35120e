// The controller's half of the outage rule (docs/FENCING.md): what each blade has promised
// (Promises, kept per blade in the LeaseTable and updated by the fabric thread), the
// versioned quorum sets (QuorumSets, owned by the core), and the test that joins them
// (countsQuorum): loomd may fence a silent lease-route blade only while it counts a quorum
// of every retained version, which makes a shield on the other side impossible.
//
// Pure: no locks, no clock, no I/O. Times are the controller's monotonic milliseconds.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace loom::controller {

inline constexpr std::int64_t kNeverMs = INT64_MIN / 2;

// C and V of docs/FENCING.md: how long a blade promises not to attest after hearing us,
// and how long one attestation shields.
struct QuorumTiming {
  std::int64_t commitMs = 2500;
  std::int64_t attestMs = 10000;
};

// One blade's promises, as far as the frames received from it prove them.
struct Promises {
  // Until when it will not attest (lower bound): from the stamps it echoed.
  std::int64_t committedUntil = kNeverMs;
  // Until when an attestation it gave may still shield someone (upper bound).
  std::int64_t shieldEnd = kNeverMs;

  // A heartbeat received at `now`. `echoSentAt`: when we sent the stamp it echoes, if
  // that stamp is this process's; `attestingMs`: what it reports of its attestations.
  void onHeartbeat(std::int64_t now, std::optional<std::int64_t> echoSentAt, std::int64_t attestingMs,
                   const QuorumTiming& timing);
  // A register received at `now` from an agent process `uptimeMs` old: a previous process of
  // that agent may have attested just before it ended.
  void onRegister(std::int64_t now, std::int64_t uptimeMs, const QuorumTiming& timing);
  // Counted towards our quorum at `now`: committed, and shielding no one.
  bool counted(std::int64_t now) const { return committedUntil > now && shieldEnd <= now; }
};

struct QuorumMember {
  std::string blade;
  std::string endpoint;  // its peer channel (tcp://ADDR:PORT)
  std::string key;       // its CurveZMQ public key (Z85), or empty with --insecure
  bool operator==(const QuorumMember&) const = default;
};

// One version of the policy loomd sends its blades: the quorum set, and which blades are
// power-fenced (their BMC is the authority; they never fence themselves). A change of
// either makes a new version, so that what a blade may hold is always a version.
struct QuorumVersion {
  std::uint64_t version = 0;
  std::vector<QuorumMember> members;  // sorted by blade
  std::set<std::string> powerFenced;

  // The stored form (StateStore::quorumVersions): JSON text.
  std::string record() const;
  static std::optional<QuorumVersion> fromRecord(std::uint64_t version, const std::string& text);
  bool isMember(const std::string& blade) const;
};

// The quorum set and its retained versions (docs/FENCING.md, "retains"). A blade's agent
// shields itself against the version it holds; we may have sent it a newer one that has
// not arrived, and versions only grow on an agent. So we keep every version from the
// lowest one a blade that may still hold a shield could hold (its floor: the version it
// last echoed, or the first we sent it before it echoed any) up to the current one.
class QuorumSets {
 public:
  struct Candidate {
    std::string blade, chassis, endpoint, key;
  };

  explicit QuorumSets(std::size_t maxMembers = 64) : maxMembers_(maxMembers) {}

  // After a restart: the versions the previous process retained (from the store) and the
  // blades that may hold one (every blade neither fenced nor retired): until each is heard,
  // it may hold the oldest.
  void restore(std::vector<QuorumVersion> retained, const std::vector<std::string>& blades);

  // The newest version, or null before the first.
  const QuorumVersion* current() const { return retained_.empty() ? nullptr : &retained_.back(); }
  const std::vector<QuorumVersion>& retained() const { return retained_; }

  // The blades that may be members now (a peer endpoint; neither fenced nor retired), and
  // the power-fenced blades. Members that are still eligible stay; others join, spread
  // over chassis, up to the maximum. Returns the new current version when the set, a
  // member's endpoint or key, or the power-fenced blades changed.
  std::optional<QuorumVersion> update(std::vector<Candidate> eligible, std::set<std::string> powerFenced = {});

  // Whether `blade` may be running under a version that makes it power-fenced, which never
  // fences itself: then it must not be fenced by its lease.
  bool mayBePowerFenced(const std::string& blade) const;

  // We sent `blade` the policy of `version`.
  void noteSent(const std::string& blade, std::uint64_t version);
  // `blade` says it holds `version` (0: none).
  void noteEcho(const std::string& blade, std::uint64_t version);
  // `blade` holds no shield and never will under what it had: fenced (it fenced itself, or
  // its power is off) or retired.
  void forget(const std::string& blade);

  // Drops the versions below every floor (never the current one); returns them, oldest
  // first, so the caller deletes their records.
  std::vector<std::uint64_t> dropUnused();

  // The lowest version `blade` may hold, if it may hold one.
  std::optional<std::uint64_t> floor(const std::string& blade) const;

 private:
  std::size_t maxMembers_;
  std::vector<QuorumVersion> retained_;          // ascending versions; back() is current
  std::map<std::string, std::uint64_t> floors_;  // blades that may hold a shield
};

// True when, for every version, the counted members are at least half of its members (ties
// go to the controller, docs/FENCING.md "An even split"). True with no version or an empty
// one: then no blade can hold a shield, and leases alone decide, as before this rule.
bool countsQuorum(const std::vector<QuorumVersion>& retained, const std::function<bool(const std::string&)>& counted);

}  // namespace loom::controller
