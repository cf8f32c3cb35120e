// The blades loomd knows: each one's inventory and administrative state (drained,
// retired), which survive restarts, whether it registered with this process, and the
// domains its agent reports (with, per server, the blades that report it running). It
// decides nothing: liveness is the FailureDetector's, placement the Replanner's.
//
// Core thread only. Changes of inventory and admin state are written through the
// Journal: a registration's batched, an operator's drain committed by the caller.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "controller/Journal.h"
#include "pool/Model.h"
#include "protocol/Messages.h"

namespace loom::controller {

struct KnownBlade {
  protocol::BladeInventory inventory;
  std::string adminState;  // "" | "maintenance" | "retired"
  std::int64_t firstSeenMs = 0;
  bool registered = false;                                  // registered since this controller started
  std::map<std::string, protocol::ObservedDomain> domains;  // what its agent reports
  std::set<std::string> warnedForeign;                      // domains Loom did not declare, already reported
};

class BladeRegistry {
 public:
  explicit BladeRegistry(Journal& journal) : journal_(journal) {}

  // Called after what a blade reports changed: one domain (`domain`), or all it reports
  // (null: its domains, its personality). The planner is told.
  using Observer = std::function<void(const std::string& blade, const std::string* domain)>;
  void onReport(Observer observer) { observer_ = std::move(observer); }

  // After a restart: the blades known before, none registered yet.
  void restore(const std::vector<BladeRecord>& records);

  struct Registration {
    bool fresh = false;             // never seen before
    bool inventoryChanged = false;  // persisted (batched)
  };
  // A register frame the dispatcher accepted for `blade` (its routing id). Replaces the
  // inventory and the domains; idempotent.
  Registration registerBlade(const std::string& blade, const protocol::Register& msg, std::int64_t wallMs);
  // A domain list from a heartbeat; false (and nothing changed) when it repeats what is
  // known — the periodic full report usually does.
  bool report(const std::string& blade, const std::vector<protocol::ObservedDomain>& domains);
  // One domain changed (a step's result); nullopt: it is gone (undefined).
  void setDomain(const std::string& blade, const std::string& name, std::optional<pool::DomainState> state,
                 const std::string& uuid = {});
  // Its domains ended (a fence: lease or power): running and paused ones are shut off.
  // Returns their names.
  std::vector<std::string> endDomains(const std::string& blade);
  // A prepare-hypervisor step made it run `hypervisor` now.
  void setPersonality(const std::string& blade, const std::string& hypervisor);

  // The record that puts `blade` in admin state `state`, to commit; then setAdminState.
  BladeRecord adminRecord(const std::string& blade, const std::string& state) const;
  void setAdminState(const std::string& blade, const std::string& state);

  KnownBlade* find(const std::string& blade);
  const KnownBlade* find(const std::string& blade) const;
  const std::map<std::string, KnownBlade>& all() const { return blades_; }  // ordered: stable API output
  // The blades that report `server` running.
  const std::set<std::string>& runningOn(const std::string& server) const;
  // True the first time `domain` on `blade` is asked about: foreign domains are reported once.
  bool firstSight(const std::string& blade, const std::string& domain);
  std::uint64_t registrations() const { return registrations_; }

 private:
  void indexRunning(const std::string& blade, const protocol::ObservedDomain& d, bool add);

  void told(const std::string& blade, const std::string* domain = nullptr) {
    if (observer_) observer_(blade, domain);
  }
  void setDomainQuietly(KnownBlade& k, const std::string& blade, const std::string& name,
                        std::optional<pool::DomainState> state, const std::string& uuid);

  Journal& journal_;
  Observer observer_;
  std::map<std::string, KnownBlade> blades_;
  std::unordered_map<std::string, std::set<std::string>> runningOn_;  // server -> blades reporting it running
  std::uint64_t registrations_ = 0;
};

// The inventory as stored and as agents send it; and back (nullopt: it does not validate).
protocol::Json inventoryJson(const protocol::BladeInventory& inventory);
std::optional<protocol::BladeInventory> inventoryFrom(const std::string& text);

}  // namespace loom::controller
