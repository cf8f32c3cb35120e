// The agent's half of the leader's fencing token (docs/FENCING.md, "Replicas: the epoch").
//
// With several loomd on etcd, every frame the leader sends an agent — registered,
// lease-renewed, reregister, plan, policy — carries `epoch`, the election revision of its
// term. The guard remembers the highest epoch this blade has seen and refuses any of those
// frames stamped with a lower one: it comes from a leader that has since been replaced
// (frozen, cut off, or simply slow to be heard) and must not act here. A higher epoch is a
// new leader: accepted, and from then on the bar.
//
// What a refusal means, by frame:
//   registered, lease-renewed  no lease and no stamp from it: the blade renews with the
//                              leader it follows (its register is sent again until one
//                              answers), or holds under its peers' shield as in an outage.
//   reregister                 not obeyed: the stale loomd's forgetting says nothing.
//   plan                       no step is run and no step-result is sent, not even for a
//                              step already done (the cached answer belongs to the leader
//                              that asked): the old leader cannot act on it, and the new
//                              one plans from what this blade reports, not from what the
//                              old one had in flight. For the same reason a step of the
//                              old leader still running on the agent's worker when the
//                              epoch rises is not answered when it ends, and the same op
//                              id from the new leader is refused (an error result it
//                              retries) until it has ended.
//   policy                     not taken: the outage policy is the leader's to set.
//
// Epoch 0 (the field left out) is a loomd alone on its store, which has no rival to be
// fenced from: accepted, and it leaves the bar where it is. A replica's epoch is an etcd
// revision, never 0, so no stale replica can slip under the bar with it; refusing 0 would
// make an operator's move from replicas back to one loomd a fabric-wide outage (every
// agent keeps its bar in --state-dir).
//
// The bar is kept in `path` (--state-dir/BLADE.epoch) when given, written before the frame
// that raised it is handled, so a restarted agent still refuses what it refused before.
// Refusals are counted, and logged once per epoch. Single-threaded (the agent's thread).
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <string_view>

namespace loom::agent {

class EpochGuard {
 public:
  // `path` empty: the bar lives only as long as the process.
  EpochGuard(std::string blade, std::string path);

  // Reads the kept bar (a missing file: 0; an unreadable one is warned about and ignored).
  void load();

  enum class Verdict {
    Accept,  // the bar's epoch, or 0
    Raise,   // a newer leader: accepted, and the bar raised (and kept) first
    Refuse,  // older than the bar: drop the frame
  };
  // The verdict on a frame of `type` stamped `epoch`.
  Verdict admit(std::uint64_t epoch, std::string_view type);

  std::uint64_t highest() const { return highest_; }
  std::uint64_t refused() const { return refused_; }

 private:
  void save() const;

  std::string blade_;
  std::string path_;
  std::uint64_t highest_ = 0;
  std::uint64_t refused_ = 0;
  std::set<std::uint64_t> logged_;  // epochs whose refusal was logged (a bounded few)
};

}  // namespace loom::agent
