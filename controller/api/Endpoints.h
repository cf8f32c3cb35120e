// The API's endpoints (docs/API.md): declarations (apply, delete, their dry runs), blades
// (list, show, drain, undrain, retire, fence: an operator's power-off confirmation), servers (list, show, start, stop,
// move, reset), pools, partitions, capacity, events. Each answers from the rooms; a change is durable before it is
// acknowledged (the rooms draft it, the Journal commits it, the rooms adopt it), and what follows — a plan, operations
// — is the core's, through Planning.
//
// Who may call which endpoint is declared with each route (install()) and checked by the
// router before the handler runs (controller/access/AccessGate.h); a handler only leaves
// out of its lists what a partition-scoped caller does not see.
//
// Core thread only.
#pragma once

#include <cstdint>
#include <string>

#include "controller/BladeRegistry.h"
#include "controller/DesiredState.h"
#include "controller/EventLog.h"
#include "controller/FailureDetector.h"
#include "controller/Journal.h"
#include "controller/Reconciler.h"
#include "controller/Replanner.h"
#include "controller/access/AuditLog.h"
#include "controller/api/ApiRouter.h"
#include "controller/api/Views.h"

namespace loom::controller::api {

class Endpoints {
 public:
  // What the core does after a change the endpoints made.
  struct Planning {
    virtual ~Planning() = default;
    // A full plan now (declarations changed): the plan as the API shows it (planText),
    // empty when it could not be persisted (it is retried).
    virtual std::string planNow(std::int64_t now) = 0;
    // An admin state changed (drain, undrain, retire), or an operator confirmed its power-off.
    virtual void bladeChanged(const std::string& blade, std::int64_t now) = 0;
    // Blade declarations (kind: Blade: BMCs) were applied or deleted.
    virtual void bladesDeclared(std::int64_t now) = 0;
    // A server was started, stopped, moved or reset by an operator.
    virtual void serverChanged(const std::string& server, std::int64_t now) = 0;
  };

  // `scope`: where objects are, for what a partition-scoped caller sees in lists; `audit`
  // hears the objects an apply or a delete names.
  Endpoints(DesiredState& desired, BladeRegistry& registry, FailureDetector& detector, Replanner& replanner,
            Reconciler& reconciler, Journal& journal, EventLog& events, const Views& views, Planning& planning,
            const access::Scope& scope, access::AuditLog& audit)
      : desired_(desired),
        registry_(registry),
        detector_(detector),
        replanner_(replanner),
        reconciler_(reconciler),
        journal_(journal),
        events_(events),
        views_(views),
        planning_(planning),
        scope_(scope),
        audit_(audit) {}

  // Adds every endpoint to `router`.
  void install(ApiRouter& router);

  std::uint64_t applies() const { return applies_; }

 private:
  ApiResponse apply(const ApiRequest& req, std::int64_t now);
  ApiResponse remove(const ApiRequest& req, std::int64_t now);
  ApiResponse drain(const std::string& blade, bool drain, std::int64_t now);
  ApiResponse retire(const std::string& blade, std::int64_t now);
  ApiResponse fence(const std::string& blade, const ApiRequest& req, std::int64_t now);
  ApiResponse move(const std::string& server, const ApiRequest& req, std::int64_t now);
  ApiResponse power(const std::string& server, bool on, std::int64_t now);
  // A restart on the server's blade now (stop, define, start): PlacementState::restart.
  ApiResponse reset(const std::string& server, const ApiRequest& req, std::int64_t now);
  void events(const ApiRequest& req, std::int64_t now, const Reply& reply);
  ApiResponse capacity(const ApiCaller& caller) const;
  ApiResponse partitions(const ApiCaller& caller) const;
  // What a partition-scoped caller sees (an unscoped one sees everything).
  bool sees(const ApiCaller& caller, const EventRecord& event) const;
  bool seesBlade(const ApiCaller& caller, const std::string& blade) const {
    return caller.partition.empty() || scope_.bladeServes(blade, caller.partition);
  }

  DesiredState& desired_;
  BladeRegistry& registry_;
  FailureDetector& detector_;
  Replanner& replanner_;
  Reconciler& reconciler_;
  Journal& journal_;
  EventLog& events_;
  const Views& views_;
  Planning& planning_;
  const access::Scope& scope_;
  access::AuditLog& audit_;
  std::uint64_t applies_ = 0;
};

// GET /v1/partitions's answer (those `caller` sees); GET /v1/events's.
Json partitionsJson(const pool::Declarations& declarations, const ApiCaller& caller = {});
// GET /v1/declarations[?kind=KIND&name=NAME]: what is declared, each object as the YAML
// document that declares it (config::writeDeclarations), those the caller may see (a
// partition-scoped token: its partition and what is in it). 400 for an unknown kind, 404
// when NAME is not declared (a replica's name answers its template).
ApiResponse declarationsAnswer(const pool::Declarations& declarations, const ApiRequest& request);
Json eventsJson(const std::vector<EventRecord>& events);

}  // namespace loom::controller::api
