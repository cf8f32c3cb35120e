// The API's blades, servers and pools as JSON text, written straight from the rooms with
// RapidJSON's Writer — no tree in between: a list of 10,000 blades is half a million JSON
// values, and building, printing and freeing them as nlohmann trees was most of the time
// `GET /v1/blades` took. Each field is computed only when the client asked for it
// (`?fields=`, FieldMask). Strings written are valid UTF-8: they come from JSON the agents
// sent or from declarations, and blade and relay names are checked.
//
// Read-only; core thread.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "controller/BladeRegistry.h"
#include "controller/DesiredState.h"
#include "controller/FailureDetector.h"
#include "controller/LeaseTable.h"
#include "controller/ModelJson.h"
#include "controller/QuorumKeeper.h"
#include "controller/Reconciler.h"
#include "controller/Replanner.h"
#include "controller/api/JsonText.h"

namespace loom::controller::api {

class Views {
 public:
  Views(const DesiredState& desired, const BladeRegistry& registry, const FailureDetector& detector,
        const Replanner& replanner, const Reconciler& reconciler, const LeaseTable& leases, const QuorumKeeper& quorum)
      : desired_(desired),
        registry_(registry),
        detector_(detector),
        replanner_(replanner),
        reconciler_(reconciler),
        leases_(leases),
        quorum_(quorum) {}

  std::string blade(const std::string& name, const KnownBlade& k, std::int64_t now, const FieldMask& fields = {}) const;
  // Every blade `sees` lets through, as a list answer (listText's layout), written into one
  // buffer.
  std::string blades(const std::function<bool(const std::string&)>& sees, std::int64_t now,
                     const FieldMask& fields) const;
  std::string server(const pool::Server& s, const FieldMask& fields = {}) const;
  std::string pool(const pool::Pool& p, const FieldMask& fields = {}) const;
  // pending | starting | running | moving | stopping | stopped | failed | unplaceable,
  // and why when it is failed or unplaceable.
  std::string serverState(const pool::Server& s, std::string* reason) const;

  static const std::vector<std::string>& bladeFields();
  static const std::vector<std::string>& serverFields();
  static const std::vector<std::string>& poolFields();

 private:
  void writeBlade(jsontext::JsonOut& w, const std::string& name, const KnownBlade& k, std::int64_t now,
                  const FieldMask& fields) const;

  const DesiredState& desired_;
  const BladeRegistry& registry_;
  const FailureDetector& detector_;
  const Replanner& replanner_;
  const Reconciler& reconciler_;
  const LeaseTable& leases_;
  const QuorumKeeper& quorum_;
};

// What a server's object says beyond its declaration (Views::server computes it from the
// rooms; a standby from its copy of the store, controller/api/StandbyViews.h).
struct ServerFacts {
  std::string state;   // computed only when "state" or "reason" is asked for
  std::string reason;  // why it is failed or unplaceable; "" otherwise
  const std::string* blade = nullptr;
  const pool::Identity* identity = nullptr;
  const std::string* home = nullptr;
  // Why its domain needs a restart ("memory 28GiB → 20GiB"), until the blade defined the
  // change (PlacementState::restart): `restart_pending`.
  const std::string* restart = nullptr;
};
std::string serverText(const pool::Server& s, const ServerFacts& facts, const FieldMask& fields = {});
// A pool's object; its blades and spares as `roles` (blade -> assignment) say.
std::string poolText(const pool::Pool& p, const std::map<std::string, pool::BladeAssignment>& roles,
                     const pool::Declarations& declarations, const FieldMask& fields = {});

// A list answer: one object a line, so it reads well in a terminal and greps.
std::string listText(const std::vector<std::string>& objects);

}  // namespace loom::controller::api
