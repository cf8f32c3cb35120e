// What operators declared: the declarations (partitions, networks, identity pools, pools,
// servers, blades and their BMCs), the deleted servers (tombstones, persisted until the name is declared again),
// and every server's identity (UUID, MACs; pool::IdentityAllocator, never handed out
// twice). Apply and delete are drafted here — read, validated against what is applied,
// diffed, turned into one store Change — and adopted only once that change is durable,
// so a failed commit changes nothing.
//
// Core thread only.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "controller/StateStore.h"
#include "pool/IdentityAllocator.h"
#include "pool/Model.h"
#include "pool/ServerChange.h"
#include "protocol/ServerSpec.h"

namespace loom::controller {

class EventLog;

// Store kind of a deleted server's marker.
inline constexpr const char* kTombstone = "Tombstone";

using ObjectName = std::pair<std::string, std::string>;  // (kind, name)

// An apply's body, read against what is applied.
struct ApplyDraft {
  std::vector<std::string> diagnostics;  // "FILE:LINE:COL: ..."; none when it can be applied
  pool::Declarations declarations;       // everything, as it would be after the apply
  std::vector<ObjectName> objects;       // what the body names (also when it has diagnostics)
  std::vector<ObjectName> created, changed;
  std::size_t unchanged = 0;
  // Of each changed server, the fields that change (pool::diffServer), in `changed` order.
  std::vector<std::pair<std::string, std::vector<pool::FieldChange>>> serverChanges;
  Change change;  // the records to commit
  bool identityPoolsChanged = false;
  std::string source;
};

// A delete's body, read against what is applied.
struct DeleteDraft {
  int status = 200;  // 400 unreadable, 404 not declared, 409 still referenced
  std::string error;
  std::vector<std::string> diagnostics;
  pool::Declarations remaining;
  std::vector<ObjectName> objects;
  std::vector<std::string> servers;  // the servers it deletes
  Change change;                     // declarations gone, tombstones, released identities
  std::shared_ptr<pool::IdentityAllocator> released;
  std::string source;
};

class DesiredState {
 public:
  DesiredState();

  // After a restart: declarations and tombstones from their records (unreadable ones are
  // reported in `problems` and skipped), identities as handed out.
  Status restore(std::vector<DeclarationRecord> records, const std::vector<pool::IdentityRecord>& identities,
                 std::vector<std::string>* problems);

  const pool::Declarations& declarations() const { return declarations_; }
  const pool::Server* findServer(const std::string& name) const;
  const pool::Pool* findPool(std::string_view name) const;
  // The BMC declared for a blade (kind: Blade), or null: the blade need not have
  // registered, nor be known at all.
  const pool::Bmc* bmc(const std::string& blade) const;
  bool isDeleted(const std::string& name) const { return deleted_.contains(name); }
  const pool::IdentityAllocator& identities() const { return *identities_; }

  ApplyDraft draftApply(const std::string& body, const std::string& source) const;
  void adopt(ApplyDraft&& draft);  // its change is durable
  DeleteDraft draftDelete(const std::string& body, const std::string& source) const;
  void adopt(DeleteDraft&& draft);  // its change is durable

  // The record that powers `server` on or off; nullopt when it is so already.
  std::optional<DeclarationRecord> powerRecord(const std::string& server, bool on) const;
  void setPower(const std::string& server, bool on);  // its record is durable

  // Every declared server gets its identity once it is declared (it is its identity for
  // life, shown before it ever runs). Runs after a change of declarations; new values are
  // added to `change` until identitiesPersisted() says a commit took them. A server the
  // identity pools cannot serve gets an error event once and an identity fault.
  void assignIdentities(Change& change, EventLog& events);
  void identitiesPersisted() { identitiesToPersist_.clear(); }
  const std::string* identityFault(const std::string& server) const;
  void clearIdentityFault(const std::string& server) { identityFaults_.erase(server); }

  // What a blade needs to run `server` (a define step's spec); nullopt when it is not
  // declared or has no identity yet.
  std::optional<protocol::ServerSpec> spec(const std::string& server) const;

 private:
  // Declarations were replaced: trims their vectors, rebuilds the name index, and keeps
  // declarations_.deleted (what the planner reads) the tombstones.
  void changed();
  void rebuildIdentities();

  pool::Declarations declarations_;
  std::unordered_map<std::string, std::size_t> serverIndex_;   // name -> declarations_.servers index
  std::unordered_map<std::string, std::size_t> bladeIndex_;    // name -> declarations_.blades index
  std::map<std::string, std::size_t, std::less<>> poolIndex_;  // name -> declarations_.pools index
  std::set<std::string> deleted_;
  std::shared_ptr<pool::IdentityAllocator> identities_;
  std::map<std::string, std::string> identitiesToPersist_;  // server -> identity pool
  std::map<std::string, std::string> identityFaults_;       // server -> why it has none
  bool identitiesDirty_ = true;
};

}  // namespace loom::controller
