// The room of the controller core that keeps the outage rule's policy (docs/FENCING.md):
// the versioned quorum sets (which blades are members, which are power-fenced), kept in
// the store before any blade hears of a version; what each blade holds, from what was sent
// to it and what it echoes; which versions may still be held; and the fence test's half
// that lives on the core thread: may this blade be fenced by its lease at all (a blade
// that may run a power-fenced policy never fences itself, so it may not).
//
// Core thread only. The fabric thread sees the retained versions through the LeaseTable,
// which this room publishes to.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "controller/LeaseTable.h"
#include "controller/Quorum.h"
#include "controller/StateStore.h"
#include "protocol/Messages.h"

namespace loom::controller {

struct QuorumOptions {
  QuorumTiming timing;
  std::size_t maxMembers = 64;
  // A change of the eligible blades waits this long for more (a fabric booting registers
  // its blades within a second or two: one version, not one per blade).
  std::int64_t debounceMs = 1000;
  // A blade whose beats show an older policy is sent the current one at most this often.
  std::int64_t resendMs = 1000;
};

class QuorumKeeper {
 public:
  QuorumKeeper(LeaseTable& leases, QuorumOptions options)
      : leases_(leases), options_(options), sets_(options.maxMembers) {}

  // After a restart: the stored versions, and every blade that may hold one (neither
  // retired nor known to be fenced). Unreadable records are reported in `problems` and
  // skipped.
  void restore(const std::map<std::uint64_t, std::string>& records, const std::vector<std::string>& blades,
               std::vector<std::string>* problems);

  // The eligible blades or the power-fenced ones may have changed: looked at again by
  // update() once the debounce has passed.
  void markDirty(std::int64_t now);
  bool due(std::int64_t now) const { return dirty_ && now >= dirtySince_ + options_.debounceMs; }
  std::int64_t dueAt() const { return dirty_ ? dirtySince_ + options_.debounceMs : INT64_MAX; }
  // Computes the next version from what is eligible now. A new version is committed with
  // `commit` before any blade can be sent it or the fence test uses it; when the commit
  // fails nothing changed (and update is due again).
  using Commit = std::function<Status(Change)>;
  std::optional<QuorumVersion> update(std::vector<QuorumSets::Candidate> eligible, std::set<std::string> powerFenced,
                                      std::int64_t now, const Commit& commit);
  // Makes the retained versions the fence test's.
  void publish();

  // The policy message for `blade` when the version it echoed is not the current one (0:
  // it holds none, or unknown), at most every resendMs; `force`: now (after a register).
  std::optional<protocol::Policy> policyFor(const std::string& blade, std::uint64_t echoed, std::int64_t now,
                                            bool force = false);
  // The blade holds no shield and never will under what it had: fenced or retired.
  void forget(const std::string& blade);
  // Drops versions no blade may hold any more; their records go into `change`.
  void dropUnused(Change& change);

  bool mayBePowerFenced(const std::string& blade) const { return sets_.mayBePowerFenced(blade); }
  bool isMember(const std::string& blade) const;
  bool isPowerFenced(const std::string& blade) const;
  const QuorumSets& sets() const { return sets_; }
  const QuorumTiming& timing() const { return options_.timing; }

 private:
  protocol::Policy policyOf(const QuorumVersion& v, const std::string& blade) const;

  LeaseTable& leases_;
  QuorumOptions options_;
  QuorumSets sets_;
  bool dirty_ = false;
  std::int64_t dirtySince_ = 0;
  std::map<std::string, std::int64_t> lastSent_;  // blade -> when its policy was last sent
};

}  // namespace loom::controller
