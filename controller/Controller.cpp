#include "controller/Controller.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <random>

#include "protocol/RelayEnvelope.h"
#include "protocol/Validation.h"

namespace loom::controller {

using protocol::Json;

Controller::Controller(StateStore& store, ControllerOptions options, Send send, WallClock wallClock,
                       const Leadership& leadership)
    : options_(std::move(options)),
      leadership_(leadership),
      send_{std::move(send)},
      wallClock_(std::move(wallClock)),
      dispatcher_([](const std::string& line) { spdlog::warn("fabric: {}", line); }),
      quorum_(leases_, QuorumOptions{{options_.commitMs ? options_.commitMs : options_.leaseMs * 2 / 5,
                                      options_.attestMs ? options_.attestMs : options_.leaseMs * 2},
                                     options_.quorumSize,
                                     options_.quorumDebounceMs,
                                     1000}),
      journal_(store),
      events_(journal_, wallClock_, options_.eventMemory, options_.eventRetention),
      registry_(journal_),
      detector_(options_, leases_, quorum_, registry_, desired_, events_, *this, wallClock_, leadership_),
      replanner_(options_, desired_, registry_, detector_, journal_, events_),
      reconciler_(
          options_, journal_, events_, desired_, registry_, replanner_, detector_, leadership_,
          [this](const std::string& blade, std::string frame) { send_(blade, std::move(frame)); },
          [this](const std::string& blade) { replanner_.touch(blade); },
          [this](const std::string& blade, const std::string& server, pool::StepKind kind, bool current) {
            if (kind == pool::StepKind::Stop) detector_.checkTrust(blade, now_);
            if (kind == pool::StepKind::Define && current) replanner_.redefined(server, blade);
          }),
      views_(desired_, registry_, detector_, replanner_, reconciler_, leases_, quorum_),
      audit_(journal_, wallClock_, access::AuditOptions{options_.auditRetention}),
      scope_(desired_, replanner_.roles(), replanner_.placement().borrowed,
             [this](const std::string& blade) { return registry_.find(blade) != nullptr; }),
      gate_(tokens_, scope_, wallClock_),
      endpoints_(desired_, registry_, detector_, replanner_, reconciler_, journal_, events_, views_, *this, scope_,
                 audit_),
      accessEndpoints_(tokens_, audit_, journal_, events_, desired_, wallClock_) {
  using namespace protocol;
  // Stamps of this process: its own tag, so an echo of an earlier process's stamp proves
  // nothing (docs/FENCING.md); times on the monotonic clock `now` is read from.
  std::uint32_t tag = options_.stampTag;
  if (tag == 0) tag = static_cast<std::uint32_t>(std::random_device{}()) & fencing::kStampTagMask;
  leases_.configureQuorum(tag, 0, quorum_.timing());
  dispatcher_.on(type::kRegister, [this](const std::string& b, const Json& f) { onRegister(b, f); });
  dispatcher_.on(type::kHeartbeat, [this](const std::string& b, const Json& f) { onHeartbeat(b, f); });
  dispatcher_.on(type::kStepResult, [this](const std::string& b, const Json& f) { onStepResult(b, f); });
  dispatcher_.on(type::kEvent, [this](const std::string& b, const Json& f) { onEvent(b, f); });
  // What a blade reports goes to the planner as it arrives; its steps follow on the tick.
  registry_.onReport(
      [this](const std::string& blade, const std::string* domain) { replanner_.observe(blade, domain); });
  endpoints_.install(router_);
  accessEndpoints_.install(router_);
  router_.add("GET", "/metrics", access::RouteAccess{access::Access::ReadFabric},
              api::ApiRouter::Simple([this](const ApiRequest&, const api::ApiRouter::Params&, std::int64_t) {
                return ApiResponse{200, "text/plain; version=0.0.4", metrics()};
              }));
  router_.setGate(&gate_, &audit_);
}

// ---------------------------------------------------------------------------------------
// Fabric

void Controller::onFrame(const std::string& blade, std::string_view bytes, std::int64_t now) {
  now_ = now;
  if (!leadership_.acting(now)) {
    ++droppedNotActing_;
    return;
  }
  dispatcher_.dispatch(blade, blade, bytes);
}

void Controller::onParsedFrame(const std::string& blade, const Json& frame, std::int64_t now) {
  now_ = now;
  if (!leadership_.acting(now)) {
    ++droppedNotActing_;
    return;
  }
  dispatcher_.dispatchParsed(blade, blade, frame);
}

void Controller::noteRejected(const std::string& peer, const protocol::Rejection& why) {
  dispatcher_.reject(peer, why);
}

void Controller::onRegister(const std::string& blade, const Json& frame) {
  auto msg = protocol::decodeRegister(frame);
  if (msg.blade != blade) {
    // The routing id is what replies go to; a mismatch would send plans astray.
    dispatcher_.reject(blade,
                       {"invalid", "register names blade '" + msg.blade + "' but the connection is '" + blade + "'"});
    return;
  }
  if (!protocol::isValidBladeName(blade)) {
    dispatcher_.reject(blade, {"invalid", "blade name '" + blade.substr(0, 64) + "' holds '/' or control characters"});
    return;
  }
  const auto reg = registry_.registerBlade(blade, msg, wallClock_());
  if (reg.inventoryChanged) {
    replanner_.markDirty(now_);
    quorum_.markDirty(now_);
  }
  leases_.grant(blade, now_, std::nullopt, msg.uptimeMs);
  detector_.registered(blade, now_);
  replanner_.bladeChanged(blade);  // steps reach it now
  // The agent may have restarted: whatever was in flight to it is lost; resend.
  reconciler_.lost(blade);
  events_.add("info", blade, "",
              std::string(reg.fresh ? "blade registered" : "blade re-registered") + " (agent " + msg.agentVersion +
                  ", " + std::to_string(msg.domains.size()) + " domains)");
  // With a fabric thread, it answered the moment the frame arrived (ControllerLoop).
  if (!options_.fabricRenewsLeases)
    send_(blade, protocol::encode(protocol::Registered{options_.leaseMs, options_.heartbeatMs, msg.seq,
                                                       leases_.stamp(now_), leadership_.epoch()}));
  // Whatever it held before, it gets the current policy now.
  sendPolicy(blade, 0, true);
}

void Controller::onHeartbeat(const std::string& blade, const Json& frame) {
  const KnownBlade* known = registry_.find(blade);
  if (!known || !known->registered) {
    // Typically a controller restart: the agent's registration was with the old process.
    // The beat's seq lets the agent tell a stale ask (its register is already on the way)
    // from a fresh one: at 10,000 blades a restart otherwise drew 2.3 registers a blade.
    send_(blade, protocol::encode(protocol::Reregister{frame.value("seq", std::uint64_t{0}), leadership_.epoch()}));
    return;
  }
  ++heartbeats_;
  auto msg = protocol::decodeHeartbeat(frame);
  detector_.heartbeat(blade, now_);
  // The periodic full report (every 30th beat) usually repeats what is known: then
  // there is nothing to update and nothing to converge.
  if (msg.domains) registry_.report(blade, *msg.domains);
  detector_.checkTrust(blade, now_);
  // The outage rule: a hold that begins or ends, the report of one that ended, the policy
  // when it holds another than the current one.
  detector_.holds(blade, msg);
  sendPolicy(blade, msg.policyVersion, false);
  if (options_.fabricRenewsLeases) {
    detector_.leaseRenewed(blade, std::nullopt);
  } else if (leases_.heartbeat(blade, now_, true, {}, {msg.echo, msg.policyVersion, msg.shieldMs, msg.holding})
                 .renewed) {
    detector_.leaseRenewed(blade, now_);
    if (msg.ack)
      send_(blade, protocol::encode(
                       protocol::LeaseRenewed{msg.seq, options_.leaseMs, leases_.stamp(now_), leadership_.epoch()}));
  }
}

void Controller::onStepResult(const std::string& blade, const Json& frame) {
  auto msg = protocol::decodeStepResult(frame);
  if (!registry_.find(blade)) return;
  reconciler_.onStepResult(blade, msg.op, msg.ok, msg.error, now_);
}

void Controller::onEvent(const std::string& blade, const Json& frame) {
  auto msg = protocol::decodeEvent(frame);
  const std::string level = msg.level == "error" || msg.level == "warning" ? msg.level : "info";
  events_.add(level, blade, msg.server, msg.message.substr(0, 1000));
}

void Controller::onFenceResult(const std::string& blade, bool ok, const std::string& detail, std::int64_t now) {
  now_ = now;
  detector_.onFenceResult(blade, ok, detail, now);
}

// ---------------------------------------------------------------------------------------
// The outage rule

void Controller::sendPolicy(const std::string& blade, std::uint64_t echoed, bool force) {
  if (auto policy = quorum_.policyFor(blade, echoed, now_, force)) {
    policy->epoch = leadership_.epoch();
    send_(blade, protocol::encode(*policy));
  }
}

bool Controller::powerFencedBlade(const std::string& blade) const {
  return !options_.fenceCommand.empty() && desired_.bmc(blade) != nullptr;
}

void Controller::tendQuorum(std::int64_t now) {
  if (quorum_.due(now)) {
    std::vector<QuorumSets::Candidate> eligible;
    std::set<std::string> power;
    for (const auto& [name, k] : registry_.all()) {
      if (k.adminState == "retired" || detector_.health(name) == pool::BladeState::Fenced) continue;
      if (powerFencedBlade(name)) power.insert(name);
      if (!k.inventory.peerEndpoint.empty())
        eligible.push_back({name, k.inventory.chassis, k.inventory.peerEndpoint, k.inventory.peerKey});
    }
    const auto before = quorum_.sets().current();
    const std::size_t was = before ? before->members.size() : 0;
    if (auto next = quorum_.update(std::move(eligible), std::move(power), now,
                                   [this](Change c) { return journal_.commitNow(std::move(c)); }))
      events_.add("info", "", "",
                  "outage policy " + std::to_string(next->version) + ": " + std::to_string(next->members.size()) +
                      " blades in the quorum set (was " + std::to_string(was) + "), " +
                      std::to_string(next->powerFenced.size()) +
                      " power-fenced; loomd fences a silent blade by its lease only while it counts half of them");
  }
  quorum_.dropUnused(journal_.pending());
}

// ---------------------------------------------------------------------------------------
// What one room's verdict means for the others

void Controller::healthChanged(const std::string& blade, pool::BladeState) {
  // Whatever was in flight to a blade gone silent is lost with it; resent once it is heard.
  const auto health = detector_.health(blade);
  if (health == pool::BladeState::Suspect || health == pool::BladeState::Failed) reconciler_.lost(blade);
  replanner_.bladeChanged(blade);
}

void Controller::fenced(const std::string& blade) {
  // Nothing queued for it still makes sense: its servers are about to be placed elsewhere.
  reconciler_.cancelAll(blade, "blade fenced");
  // Its domains ended with the lease (or the power): no longer "running elsewhere" for
  // invariant 1; a server bound elsewhere that waited for it may start now (the plan).
  registry_.endDomains(blade);
}

void Controller::startsResume() { reconciler_.startsResume(); }

void Controller::bladeChanged(const std::string& blade, std::int64_t) { replanner_.bladeChanged(blade); }

// A BMC declared or deleted: which blades are power-fenced may have changed (a new policy).
void Controller::bladesDeclared(std::int64_t now) { quorum_.markDirty(now); }

void Controller::serverChanged(const std::string& server, std::int64_t now) {
  reconciler_.forgive(server);
  replanner_.markDirty(now, true);
}

// ---------------------------------------------------------------------------------------
// Planning and timers

std::string Controller::replan(std::int64_t now, bool wantPlan) {
  std::string plan;
  auto steps = replanner_.replan(now, wantPlan ? &plan : nullptr);
  if (!steps) return {};
  reconciler_.adopt(*steps, now);
  // An apply answers once its placement is durable; the steps leave on the next tick.
  if (wantPlan) journal_.flush();
  return plan;
}

void Controller::tick(std::int64_t now) {
  now_ = now;
  if (!leadership_.acting(now)) {
    // Another loomd may lead: nothing here decides, sends or writes (docs/FENCING.md,
    // "Replicas: the epoch"). Long-polls still end on time.
    if (notActingSince_ < 0) {
      notActingSince_ = now;
      spdlog::warn("not acting (epoch {}): no frames, steps or fences until this loomd leads again",
                   leadership_.epoch());
    }
    events_.wake(now);
    nextTick_ = now + 100;
    return;
  }
  if (notActingSince_ >= 0) {
    // The fabric dropped every frame meanwhile: silence then says nothing about a blade.
    spdlog::info("acting again (epoch {}) after {} ms", leadership_.epoch(), now - notActingSince_);
    detector_.forgiveStall(now - notActingSince_);
    notActingSince_ = -1;
  }
  if (leadership_.epoch() != actingEpoch_) {
    // A term of its own begins (replicas): whatever the previous leader granted must run out
    // before a blade is fenced by its lease.
    actingEpoch_ = leadership_.epoch();
    spdlog::info("leading under epoch {}: no blade is fenced by its lease before {} ms from now", actingEpoch_,
                 options_.leaseMs + options_.fenceMarginMs);
    detector_.termStarted(now);
  }
  detector_.tick(now);
  tendQuorum(now);
  reconciler_.expire(now);
  // Declarations, new inventory, recovery: a full plan. Blade events: the kept planner.
  if (replanner_.due(now))
    replan(now, false);
  else
    for (const auto& steps : replanner_.react(now)) reconciler_.adopt(steps, now);
  reconciler_.dispatchPending(now);
  audit_.tick(now);
  journal_.flush();
  events_.wake(now);
  nextTick_ = now + (replanner_.dirty() ? options_.replanMinIntervalMs : 100);
  // A fence is due at an exact time (lease + margin): every millisecond past it is
  // failover time.
  nextTick_ = std::min({nextTick_, detector_.nextDue(), reconciler_.nextDue(), quorum_.dueAt()});
}

void Controller::handleApi(ApiRequest req, std::int64_t now, const Reply& reply) {
  now_ = now;
  router_.route(std::move(req), now, reply);
}

}  // namespace loom::controller
