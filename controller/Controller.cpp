#include "controller/Controller.h"

#include <algorithm>
#include <chrono>
#include <random>
#include <sstream>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <spdlog/spdlog.h>

#include "config/Loader.h"
#include "protocol/RelayEnvelope.h"

namespace loom::controller {
namespace {

// Store kind of a deleted server's marker (see Controller::deletedServers_).
constexpr const char* kTombstone = "Tombstone";

using protocol::Json;

Json inventoryJson(const protocol::BladeInventory& inv) {
  protocol::Register r;
  r.blade = "x";
  r.inventory = inv;
  return protocol::encode(r)["inventory"];
}

std::optional<protocol::BladeInventory> inventoryFrom(const std::string& text) {
  Json inv = Json::parse(text, nullptr, false);
  Json frame{{"type", "register"}, {"v", protocol::kVersion}, {"blade", "x"}, {"inventory", inv}, {"domains", Json::array()}};
  if (protocol::validate(frame)) return std::nullopt;
  return protocol::decodeRegister(frame).inventory;
}

std::vector<std::string> splitPath(const std::string& path) {
  std::vector<std::string> parts;
  std::string cur;
  for (char c : path) {
    if (c == '/') {
      if (!cur.empty()) parts.push_back(std::move(cur));
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) parts.push_back(std::move(cur));
  return parts;
}

ApiResponse jsonResponse(int status, const Json& body) { return {status, "application/json", body.dump(2) + "\n"}; }
ApiResponse textResponse(int status, std::string json) { return {status, "application/json", std::move(json) + "\n"}; }

// The API's blades, servers and pools are written as JSON text straight from the model
// (RapidJSON's Writer), with no tree in between: a list of 10,000 blades is half a million
// JSON values, and building, printing and freeing them as nlohmann trees was most of the
// time `GET /v1/blades` took. Strings written here are valid UTF-8: they come from JSON
// the agents sent or from declarations, and blade and relay names are checked.
using JsonOut = rapidjson::Writer<rapidjson::StringBuffer>;

void put(JsonOut& w, const char* key, std::string_view v) {
  w.Key(key);
  w.String(v.data(), static_cast<rapidjson::SizeType>(v.size()));
}
void put(JsonOut& w, const char* key, const std::string& v) { put(w, key, std::string_view(v)); }
void put(JsonOut& w, const char* key, const char* v) { put(w, key, std::string_view(v)); }
void put(JsonOut& w, const char* key, std::int64_t v) {
  w.Key(key);
  w.Int64(v);
}
void put(JsonOut& w, const char* key, std::uint64_t v) {
  w.Key(key);
  w.Uint64(v);
}
void put(JsonOut& w, const char* key, bool v) {
  w.Key(key);
  w.Bool(v);
}
void put(JsonOut& w, const char* key, const std::vector<std::string>& v) {
  w.Key(key);
  w.StartArray();
  for (const auto& e : v) w.String(e.data(), static_cast<rapidjson::SizeType>(e.size()));
  w.EndArray();
}
// A string, or null when it is empty.
void putOrNull(JsonOut& w, const char* key, std::string_view v) {
  if (!v.empty()) return put(w, key, v);
  w.Key(key);
  w.Null();
}

// One object's text: `write` fills it.
template <class Write>
std::string objectText(Write&& write) {
  rapidjson::StringBuffer sb;
  JsonOut w(sb);
  w.StartObject();
  write(w);
  w.EndObject();
  return {sb.GetString(), sb.GetSize()};
}

// A list answer: one object a line, so it reads well in a terminal and greps.
std::string listText(const std::vector<std::string>& objects) {
  std::size_t size = 4;
  for (const auto& o : objects) size += o.size() + 2;
  std::string out;
  out.reserve(size);
  out += '[';
  for (std::size_t i = 0; i < objects.size(); ++i) {
    out += i ? ",\n" : "\n";
    out += objects[i];
  }
  out += objects.empty() ? "]" : "\n]";
  return out;
}
ApiResponse errorResponse(int status, const std::string& message) { return jsonResponse(status, Json{{"error", message}}); }

Json planJson(const pool::Plan& p) {
  Json placements = Json::array(), unplaceable = Json::array(), steps = Json::array();
  for (const auto& pl : p.placements) {
    Json j{{"server", pl.server}, {"blade", pl.blade}};
    if (!pl.from.empty()) j["from"] = pl.from;
    placements.push_back(std::move(j));
  }
  for (const auto& u : p.unplaceable) unplaceable.push_back({{"server", u.server}, {"reason", u.reason}});
  for (const auto& s : p.steps) {
    Json j{{"kind", pool::toString(s.kind)}, {"blade", s.blade}, {"after", s.after}};
    if (!s.server.empty()) j["server"] = s.server;
    if (s.hypervisor) j["hypervisor"] = pool::toString(*s.hypervisor);
    steps.push_back(std::move(j));
  }
  return {{"placements", placements}, {"unplaceable", unplaceable}, {"steps", steps}, {"warnings", p.warnings}};
}

// Query values are numbers typed by people: never throw on them.
std::optional<std::uint64_t> parseUnsigned(const std::map<std::string, std::string>& q, const std::string& key) {
  auto it = q.find(key);
  if (it == q.end() || it->second.empty() || it->second.size() > 18) return std::nullopt;
  std::uint64_t v = 0;
  for (char c : it->second) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return v;
}

bool sameDomains(const std::map<std::string, protocol::ObservedDomain>& known, const std::vector<protocol::ObservedDomain>& reported) {
  if (known.size() != reported.size()) return false;
  for (const auto& d : reported) {
    auto it = known.find(d.name);
    if (it == known.end() || it->second.state != d.state || (!d.uuid.empty() && it->second.uuid != d.uuid)) return false;
  }
  return true;
}

bool truthy(const std::map<std::string, std::string>& q, const std::string& key) {
  auto it = q.find(key);
  return it != q.end() && (it->second.empty() || it->second == "1" || it->second == "true" || it->second == "yes");
}

}  // namespace

Controller::Controller(StateStore& store, ControllerOptions options, Send send, WallClock wallClock)
    : store_(store),
      options_(options),
      send_(std::move(send)),
      wallClock_(std::move(wallClock)),
      dispatcher_([](const std::string& line) { spdlog::warn("fabric: {}", line); }),
      quorum_(leases_, QuorumOptions{{options.commitMs ? options.commitMs : options.leaseMs * 2 / 5,
                                       options.attestMs ? options.attestMs : options.leaseMs * 2},
                                      options.quorumSize, options.quorumDebounceMs, 1000}),
      identities_(std::make_unique<pool::IdentityAllocator>(std::vector<pool::IdentityPool>{})) {
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
}

// ---------------------------------------------------------------------------------------
// Recovery

Status Controller::recover(std::int64_t now) {
  now_ = now;
  auto loaded = store_.load();
  if (!loaded) return loaded.error();
  StoredState& st = *loaded;
  std::vector<std::string> problems;
  std::vector<DeclarationRecord> records;
  records.reserve(st.declarations.size());
  for (auto& r : st.declarations) {
    if (r.kind == kTombstone) deletedServers_.insert(r.name);
    else records.push_back(std::move(r));
  }
  declarations_ = fromRecords(records, &problems);
  for (const auto& p : problems) spdlog::error("state store: {}", p);
  onDeclarationsChanged();
  placement_.bindings = std::move(st.bindings);
  placement_.home = std::move(st.placementMaps["home"]);
  for (const auto& [server, _] : st.placementMaps["held"]) placement_.held.insert(server);
  for (const auto& [server, _] : st.placementMaps["displaced"]) placement_.displaced.insert(server);
  placement_.borrowed = std::move(st.borrowed);
  identities_ = std::make_unique<pool::IdentityAllocator>(declarations_.identityPools);
  if (auto s = identities_->restore(st.identities); !s) return makeError(Errc::Internal, "restoring identities: " + s.error().message);
  for (const auto& b : st.blades) {
    BladeRuntime rt;
    if (auto inv = inventoryFrom(b.inventory)) rt.inventory = *inv;
    rt.adminState = b.adminState;
    rt.firstSeenMs = b.firstSeenMs;
    rt.lastHeartbeat = now;  // grace: agents re-register after a controller restart
    // The previous process may have renewed its lease just before it died.
    rt.leaseUntil = now + options_.leaseMs;
    leases_.grant(b.name, now);
    if (rt.adminState == "retired") ++retiredBlades_;
    else {
      rt.confirmed = false;
      ++unconfirmedBlades_;
    }
    auto [it, _] = blades_.emplace(b.name, std::move(rt));
    watchLiveness(it->first, it->second, now);
  }
  // Until each is heard, every blade not retired may hold the oldest version kept.
  std::vector<std::string> mayHold;
  for (const auto& [name, rt] : blades_)
    if (rt.adminState != "retired") mayHold.push_back(name);
  quorum_.restore(st.quorumVersions, mayHold, &problems);
  for (const auto& p : problems) spdlog::error("state store: {}", p);
  quorum_.markDirty(now);
  // Operations in flight when the controller stopped are not resent as such: the first
  // convergence after the agents re-register recomputes what is still needed from what
  // they report, which is the only trustworthy view after a crash.
  for (auto& op : st.pendingOperations) {
    op.state = "superseded";
    pending_.putOperations.push_back(op);
  }
  lastOperationId_ = st.lastOperationId;
  lastEventId_ = st.lastEventId;
  const std::uint64_t from = lastEventId_ > options_.eventMemory ? lastEventId_ - options_.eventMemory : 0;
  if (auto ev = store_.events(from, options_.eventMemory)) events_.assign(ev->begin(), ev->end());
  event("info", "", "",
        "controller started: " + std::to_string(declarations_.servers.size()) + " servers, " +
            std::to_string(blades_.size()) + " blades, " + std::to_string(placement_.bindings.size()) + " bindings recovered");
  // After a restart every agent reconnects at once: 10,000 agents on 2 shared cores took
  // 2-3 s (docs/PERFORMANCE.md; reckoned here as 0.5 ms a blade, with room). An agent's
  // last answer may be two beats old (one when every beat asks), and it fences a tenth of
  // the lease early: what is left of the lease must cover the reconnect.
  const std::int64_t reconnectMs = static_cast<std::int64_t>(blades_.size()) / 2;
  const std::int64_t answerAgeMs = (options_.leaseMs < 3 * options_.heartbeatMs ? 1 : 2) * options_.heartbeatMs;
  const std::int64_t leftMs = options_.leaseMs - answerAgeMs - options_.leaseMs / 10;
  if (!blades_.empty() && reconnectMs > leftMs)
    event("warning", "", "",
          "lease " + std::to_string(options_.leaseMs) + " ms is short for " + std::to_string(blades_.size()) +
              " blades: after a controller restart agents may run it out while they reconnect (up to " + std::to_string(reconnectMs) +
              " ms) and fence themselves; raise --lease-ms to " +
              std::to_string(((reconnectMs + answerAgeMs) * 10 / 9 + 999) / 1000 * 1000) + " or more");
  if (unconfirmedBlades_)
    event("info", "", "",
          "starts wait until the " + std::to_string(unconfirmedBlades_) +
              " blades known before the restart have registered again or been fenced: a server being moved may still run on one");
  dirty_ = true;
  identitiesDirty_ = true;
  flush();
  return okStatus();
}

void Controller::onDeclarationsChanged() {
  // A vector grown by doubling keeps up to half its size again as slack: at 100,000
  // servers of 400 bytes each, 12 MB held for nothing.
  declarations_.servers.shrink_to_fit();
  declarations_.pools.shrink_to_fit();
  serverIndex_.clear();
  serverIndex_.reserve(declarations_.servers.size());
  for (std::size_t i = 0; i < declarations_.servers.size(); ++i) serverIndex_[declarations_.servers[i].name] = i;
}

const pool::Server* Controller::findServer(const std::string& name) const {
  auto it = serverIndex_.find(name);
  return it == serverIndex_.end() ? nullptr : &declarations_.servers[it->second];
}

// ---------------------------------------------------------------------------------------
// Fabric

void Controller::onFrame(const std::string& blade, std::string_view bytes, std::int64_t now) {
  now_ = now;
  dispatcher_.dispatch(blade, blade, bytes);
}

void Controller::onParsedFrame(const std::string& blade, const Json& frame, std::int64_t now) {
  now_ = now;
  dispatcher_.dispatchParsed(blade, blade, frame);
}

void Controller::noteRejected(const std::string& peer, const protocol::Rejection& why) { dispatcher_.reject(peer, why); }

void Controller::onRegister(const std::string& blade, const Json& frame) {
  auto msg = protocol::decodeRegister(frame);
  if (msg.blade != blade) {
    // The routing id is what replies go to; a mismatch would send plans astray.
    dispatcher_.reject(blade, {"invalid", "register names blade '" + msg.blade + "' but the connection is '" + blade + "'"});
    return;
  }
  if (!protocol::isValidBladeName(blade)) {
    dispatcher_.reject(blade, {"invalid", "blade name '" + blade.substr(0, 64) + "' holds '/' or control characters"});
    return;
  }
  ++registrations_;
  auto [it, fresh] = blades_.try_emplace(blade);
  BladeRuntime& rt = it->second;
  const Json newInv = inventoryJson(msg.inventory);
  const bool inventoryChanged = fresh || inventoryJson(rt.inventory) != newInv;
  if (fresh) rt.firstSeenMs = wallClock_();
  rt.inventory = msg.inventory;
  if (inventoryChanged) {
    pending_.putBlades.push_back({blade, newInv.dump(), rt.adminState, rt.firstSeenMs});
    dirty_ = true;
  }
  rt.registered = true;
  rt.lastHeartbeat = now_;
  rt.lastSeq = 0;
  rt.leaseUntil = now_ + options_.leaseMs;
  leases_.grant(blade, now_, std::nullopt, msg.uptimeMs);
  if (inventoryChanged) quorum_.markDirty(now_);
  heardFrom(blade, rt);
  watchLiveness(blade, rt, now_);
  setDomains(blade, rt, msg.domains);
  if (!rt.confirmed) confirmBlade(rt);
  checkTrust(blade, rt);
  // The agent may have restarted: whatever was in flight to it is lost; resend.
  for (auto id : rt.queue)
    if (auto op = operations_.find(id); op != operations_.end()) op->second.inFlight = false;
  convergeQueue_.insert(blade);
  event("info", blade, "",
        std::string(fresh ? "blade registered" : "blade re-registered") + " (agent " + msg.agentVersion + ", " +
            std::to_string(msg.domains.size()) + " domains)");
  updateRoutine(blade, rt);
  // With a fabric thread, it answered the moment the frame arrived (ControllerLoop).
  if (!options_.fabricRenewsLeases)
    send_(blade, protocol::encode(protocol::Registered{options_.leaseMs, options_.heartbeatMs, msg.seq, leases_.stamp(now_)}));
  // Whatever it held before, it gets the current policy now.
  sendPolicy(blade, 0, true);
}

void Controller::updateRoutine(const std::string& blade, BladeRuntime& rt) {
  if (!options_.fabricRenewsLeases) return;  // no fabric thread: every beat comes here
  const bool routine = rt.registered && rt.health == pool::BladeState::Available && !rt.returned;
  if (routine == rt.routine) return;
  rt.routine = routine;
  leases_.setRoutine(blade, routine);
}

std::int64_t Controller::lastHeard(const std::string& blade, const BladeRuntime& rt) const {
  return rt.routine ? std::max(rt.lastHeartbeat, leases_.heard(blade)) : rt.lastHeartbeat;
}

void Controller::onHeartbeat(const std::string& blade, const Json& frame) {
  auto it = blades_.find(blade);
  if (it == blades_.end() || !it->second.registered) {
    // Typically a controller restart: the agent's registration was with the old process.
    // The beat's seq lets the agent tell a stale ask (its register is already on the way)
    // from a fresh one: at 10,000 blades a restart otherwise drew 2.3 registers a blade.
    send_(blade, protocol::encode(protocol::Reregister{frame.value("seq", std::uint64_t{0})}));
    return;
  }
  ++heartbeats_;
  BladeRuntime& rt = it->second;
  auto msg = protocol::decodeHeartbeat(frame);
  rt.lastHeartbeat = now_;
  rt.lastSeq = msg.seq;
  heardFrom(blade, rt);
  watchLiveness(blade, rt, now_);
  // The periodic full report (every 30th beat) usually repeats what is known: then
  // there is nothing to update and nothing to converge.
  if (msg.domains && !sameDomains(rt.domains, *msg.domains)) {
    setDomains(blade, rt, *msg.domains);
    convergeQueue_.insert(blade);
  }
  checkTrust(blade, rt);
  // The outage rule: a hold that begins or ends, the report of one that ended, the policy
  // when it holds another than the current one.
  if (msg.holding != rt.holding) {
    rt.holding = msg.holding;
    if (msg.holding) event("warning", blade, "", "blade holds its servers under its peers' shield, without a lease");
  }
  if (msg.held && (!rt.lastHold || rt.lastHold->ms != msg.held->ms || rt.lastHold->servers != msg.held->servers)) {
    rt.lastHold = msg.held;
    rt.lastHoldAtMs = wallClock_();
    event("warning", blade, "",
          "blade held " + std::to_string(msg.held->servers) + " server(s) for " + std::to_string(msg.held->ms) +
              " ms without the controller, under a shield from " + std::to_string(msg.held->support) + " of " +
              std::to_string(msg.held->members) + " peers");
  }
  sendPolicy(blade, msg.policyVersion, false);
  if (options_.fabricRenewsLeases) {
    if (auto at = leases_.lastRenewal(blade)) rt.leaseUntil = std::max(rt.leaseUntil, *at + options_.leaseMs);
    updateRoutine(blade, rt);
  } else if (leases_.heartbeat(blade, now_, true, {}, {msg.echo, msg.policyVersion, msg.shieldMs, msg.holding}).renewed) {
    rt.leaseUntil = now_ + options_.leaseMs;
    if (msg.ack) send_(blade, protocol::encode(protocol::LeaseRenewed{msg.seq, options_.leaseMs, leases_.stamp(now_)}));
  }
}

void Controller::sendPolicy(const std::string& blade, std::uint64_t echoed, bool force) {
  if (auto policy = quorum_.policyFor(blade, echoed, now_, force)) send_(blade, protocol::encode(*policy));
}

bool Controller::powerFencedBlade(const std::string&) const {
  // A BMC declared for the blade (kind: Blade) and a fence command to use it: not yet.
  return false;
}

void Controller::tendQuorum(std::int64_t now) {
  if (quorum_.due(now)) {
    std::vector<QuorumSets::Candidate> eligible;
    std::set<std::string> power;
    for (const auto& [name, rt] : blades_) {
      if (rt.adminState == "retired" || rt.health == pool::BladeState::Fenced) continue;
      if (powerFencedBlade(name)) power.insert(name);
      if (!rt.inventory.peerEndpoint.empty())
        eligible.push_back({name, rt.inventory.chassis, rt.inventory.peerEndpoint, rt.inventory.peerKey});
    }
    const auto before = quorum_.sets().current();
    const std::size_t was = before ? before->members.size() : 0;
    if (auto next = quorum_.update(std::move(eligible), std::move(power), now, [this](Change c) { return commitNow(std::move(c)); }))
      event("info", "", "",
            "outage policy " + std::to_string(next->version) + ": " + std::to_string(next->members.size()) +
                " blades in the quorum set (was " + std::to_string(was) + "), " + std::to_string(next->powerFenced.size()) +
                " power-fenced; loomd fences a silent blade by its lease only while it counts half of them");
  }
  quorum_.dropUnused(pending_);
}

void Controller::setDomains(const std::string& blade, BladeRuntime& rt, const std::vector<protocol::ObservedDomain>& domains) {
  for (const auto& [name, d] : rt.domains)
    if (d.state == pool::DomainState::Running) runningOn_[name].erase(blade);
  rt.domains.clear();
  for (const auto& d : domains) {
    rt.domains[d.name] = d;
    if (d.state == pool::DomainState::Running) runningOn_[d.name].insert(blade);
  }
}

void Controller::setDomainState(const std::string& blade, BladeRuntime& rt, const std::string& name, std::optional<pool::DomainState> state) {
  auto it = rt.domains.find(name);
  if (it != rt.domains.end() && it->second.state == pool::DomainState::Running) runningOn_[name].erase(blade);
  if (!state) {
    if (it != rt.domains.end()) rt.domains.erase(it);
    return;
  }
  auto& d = rt.domains[name];
  d.name = name;
  d.state = *state;
  if (auto id = identities_->find(name)) d.uuid = id->uuid;
  if (*state == pool::DomainState::Running) runningOn_[name].insert(blade);
}

void Controller::onStepResult(const std::string& blade, const Json& frame) {
  auto msg = protocol::decodeStepResult(frame);
  auto bit = blades_.find(blade);
  auto oit = operations_.find(msg.op);
  // Late answers (after a timeout was retried, or from before a restart) are harmless:
  // every step is idempotent, so only the current attempt's bookkeeping matters.
  if (bit == blades_.end() || oit == operations_.end() || oit->second.blade != blade) return;
  finishOperation(bit->second, msg.op, msg.ok, msg.error, now_);
  dispatch(blade, bit->second, now_);
}

void Controller::onEvent(const std::string& blade, const Json& frame) {
  auto msg = protocol::decodeEvent(frame);
  const std::string level = msg.level == "error" || msg.level == "warning" ? msg.level : "info";
  event(level, blade, msg.server, msg.message.substr(0, 1000));
}

// ---------------------------------------------------------------------------------------
// Operations

void Controller::enqueue(BladeRuntime& rt, Operation op) {
  op.id = ++lastOperationId_;
  rt.queue.push_back(op.id);
  rt.busyServers.insert(op.server);
  dispatchQueue_.insert(op.blade);
  pending_.putOperations.push_back({op.id, op.blade, op.server, pool::toString(op.kind), "pending", 0, ""});
  operations_.emplace(op.id, std::move(op));
}

void Controller::dispatch(const std::string& blade, BladeRuntime& rt, std::int64_t now) {
  dispatchQueue_.erase(blade);
  const bool cleaning = rt.health == pool::BladeState::Fenced && rt.returned;
  if (!rt.registered || (rt.health != pool::BladeState::Available && !cleaning) || rt.queue.empty()) return;
  // Per server strictly in order (define before start, stop before undefine); across
  // servers pipelined. A prepare-hypervisor step is a barrier for everything behind it.
  protocol::PlanMsg msg;
  std::set<std::string_view> seen;
  bool capped = false;
  for (auto id : rt.queue) {
    auto& op = operations_.at(id);
    const bool barrier = op.kind == pool::StepKind::PrepareHypervisor;
    if (barrier && !seen.empty()) break;
    if (!seen.insert(op.server).second) continue;
    if (!op.inFlight && op.notBefore <= now) {
      if (msg.steps.size() >= options_.maxStepsPerPlanMessage) {
        capped = true;
        break;
      }
      op.inFlight = true;
      op.deadline = now + options_.opTimeoutMs;
      opDeadlines_.emplace(op.deadline, op.id);
      ++op.attempts;
      msg.steps.push_back({op.id, op.kind, op.server, op.hypervisor, op.spec});
    }
    if (barrier) break;
  }
  // The rest goes in the next message, on the next tick.
  if (capped) dispatchQueue_.insert(blade);
  if (msg.steps.empty()) return;
  opsSent_ += msg.steps.size();
  send_(blade, protocol::encode(msg));
}

void Controller::finishOperation(BladeRuntime& rt, std::uint64_t id, bool ok, const std::string& error, std::int64_t now) {
  auto it = operations_.find(id);
  if (it == operations_.end()) return;
  Operation& op = it->second;
  if (!ok && op.attempts < options_.opMaxAttempts) {
    ++opsRetried_;
    op.inFlight = false;
    op.notBefore = now + (options_.opBackoffMs << std::min(op.attempts - 1, 10));
    if (op.attempts == 1)
      event("warning", op.blade, op.server, std::string(pool::toString(op.kind)) + " failed, retrying: " + error);
    nextTick_ = std::min(nextTick_, op.notBefore);
    backoffEnds_.emplace(op.notBefore, op.blade);
    return;
  }
  pending_.putOperations.push_back({op.id, op.blade, op.server, pool::toString(op.kind), ok ? "done" : "failed", op.attempts, error});
  using pool::StepKind;
  const std::string server = op.server, blade = op.blade;
  const StepKind kind = op.kind;
  std::vector<std::uint64_t> drop{id};
  if (ok) {
    if (kind == StepKind::Define) setDomainState(blade, rt, server, rt.domains.count(server) ? rt.domains[server].state : pool::DomainState::Shutoff);
    else if (kind == StepKind::Start) setDomainState(blade, rt, server, pool::DomainState::Running);
    else if (kind == StepKind::Stop) setDomainState(blade, rt, server, pool::DomainState::Shutoff);
    else if (kind == StepKind::Undefine) setDomainState(blade, rt, server, std::nullopt);
    else if (kind == StepKind::PrepareHypervisor) rt.inventory.personality = op.hypervisor;
    if (kind == StepKind::Start) serverFaults_.erase(server);
    // A stop may unblock a start elsewhere (a move waits for it: invariant 1).
    if (kind == StepKind::Stop || kind == StepKind::Undefine)
      if (auto b = placement_.bindings.find(server); b != placement_.bindings.end() && b->second != blade)
        convergeQueue_.insert(b->second);
    if (kind == StepKind::Stop) checkTrust(blade, rt);
  } else {
    ++opsFailed_;
    const std::string why = std::string(pool::toString(kind)) + " failed after " + std::to_string(op.attempts) + " attempts: " + error;
    event("error", blade, server, why);
    serverFaults_[server] = why;
    retryServerAt_[server] = now + options_.opTimeoutMs * 2;
    // The later steps for this server depended on this one.
    for (auto qid : rt.queue)
      if (qid != id && operations_.at(qid).server == server && !operations_.at(qid).inFlight) drop.push_back(qid);
  }
  for (auto d : drop) {
    rt.queue.erase(std::remove(rt.queue.begin(), rt.queue.end(), d), rt.queue.end());
    if (d != id) {
      auto& o = operations_.at(d);
      pending_.putOperations.push_back({o.id, o.blade, o.server, pool::toString(o.kind), "cancelled", o.attempts, "an earlier step failed"});
    }
    operations_.erase(d);
  }
  bool stillBusy = false;
  for (auto qid : rt.queue) stillBusy = stillBusy || operations_.at(qid).server == server;
  if (!stillBusy) rt.busyServers.erase(server);
}

std::optional<protocol::ServerSpec> Controller::domainSpec(const std::string& name) const {
  const pool::Server* s = findServer(name);
  auto id = s ? identities_->find(name) : std::nullopt;
  if (!id) return std::nullopt;
  protocol::ServerSpec spec;
  spec.name = s->name;
  spec.uuid = id->uuid;
  spec.vcpus = s->vcpus;
  spec.memoryMib = s->memory;
  for (std::size_t i = 0; i < s->nics.size(); ++i) {
    protocol::ServerSpec::Nic nic;
    nic.network = s->nics[i].network;
    nic.mac = i < id->macs.size() ? id->macs[i] : s->nics[i].mac;
    for (const auto& n : declarations_.networks)
      if (n.name == nic.network) nic.vlan = n.vlan;
    spec.nics.push_back(std::move(nic));
  }
  for (const auto& d : s->disks) {
    // The model leaves the format empty to mean "from the file name"; drivers want it said.
    std::string format = d.format;
    if (format.empty()) format = d.image.size() > 6 && d.image.ends_with(".qcow2") ? "qcow2" : "raw";
    spec.disks.push_back({d.image, format, d.readOnly});
  }
  spec.kernel = s->boot.kernel;
  spec.initrd = s->boot.initrd;
  spec.cmdline = s->boot.cmdline;
  if (s->xenType) spec.xenType = *s->xenType;
  return spec;
}

// Desired (bindings, power) against observed (the agent's domains) for one blade.
void Controller::converge(const std::string& blade, BladeRuntime& rt, std::int64_t now) {
  // A fenced blade that came back is only cleaned: what still runs there stops, nothing
  // starts, until it reports no servers running (checkTrust).
  const bool cleaning = rt.health == pool::BladeState::Fenced && rt.returned;
  if (!rt.registered || (rt.health != pool::BladeState::Available && !cleaning) || rt.adminState == "retired") return;
  if (auto it = byBlade_.find(blade); it != byBlade_.end() && !cleaning && unconfirmedBlades_ == 0) {
    for (const auto& server : it->second) {
      if (rt.busyServers.count(server)) continue;
      const pool::Server* decl = findServer(server);
      if (!decl || decl->power == pool::PowerState::Off) continue;
      auto d = rt.domains.find(server);
      if (d != rt.domains.end() && d->second.state == pool::DomainState::Running) continue;
      // Invariant 1: never start a server while another blade may still run it; the
      // stop there (or, later, its fencing) comes first.
      bool elsewhere = false;
      if (auto r = runningOn_.find(server); r != runningOn_.end())
        for (const auto& other : r->second) elsewhere = elsewhere || other != blade;
      if (elsewhere) continue;
      if (auto r = retryServerAt_.find(server); r != retryServerAt_.end()) {
        if (r->second > now) continue;
        retryServerAt_.erase(r);
      }
      auto spec = domainSpec(server);
      if (!spec) continue;
      enqueue(rt, {0, blade, server, pool::StepKind::Define, spec, "", 0, false, 0, 0});
      enqueue(rt, {0, blade, server, pool::StepKind::Start, std::nullopt, "", 0, false, 0, 0});
    }
  }
  for (const auto& [name, d] : rt.domains) {
    if (rt.busyServers.count(name)) continue;
    const pool::Server* decl = findServer(name);
    if (!decl && deletedServers_.count(name)) {
      // A deleted server: it stops and its definition goes, wherever it still is.
      if (d.state == pool::DomainState::Running || d.state == pool::DomainState::Paused) enqueue(rt, {0, blade, name, pool::StepKind::Stop, std::nullopt, "", 0, false, 0, 0});
      enqueue(rt, {0, blade, name, pool::StepKind::Undefine, std::nullopt, "", 0, false, 0, 0});
      continue;
    }
    if (!decl) {
      // Not ours: report once, never touch a guest Loom did not declare.
      if (rt.warnedForeign.insert(name).second) event("warning", blade, name, "domain '" + name + "' is not a declared server; left alone");
      continue;
    }
    auto b = placement_.bindings.find(name);
    const bool boundHere = b != placement_.bindings.end() && b->second == blade;
    if (boundHere) continue;
    const bool boundElsewhere = b != placement_.bindings.end();
    if (d.state == pool::DomainState::Running || d.state == pool::DomainState::Paused) enqueue(rt, {0, blade, name, pool::StepKind::Stop, std::nullopt, "", 0, false, 0, 0});
    if (boundElsewhere) enqueue(rt, {0, blade, name, pool::StepKind::Undefine, std::nullopt, "", 0, false, 0, 0});
  }
  dispatch(blade, rt, now);
}

// ---------------------------------------------------------------------------------------
// Planning

pool::Inventory Controller::inventory() const {
  pool::Inventory inv;
  inv.blades.reserve(blades_.size());
  for (const auto& [name, rt] : blades_) {
    pool::Blade b;
    b.name = name;
    b.chassis = rt.inventory.chassis;
    b.slot = rt.inventory.slot;
    b.sockets = rt.inventory.sockets;
    b.cores = rt.inventory.cores;
    b.memory = rt.inventory.memoryMib;
    b.model = rt.inventory.cpuModel;
    for (const auto& h : rt.inventory.hypervisors)
      if (auto hv = pool::parseHypervisor(h)) b.hypervisors.add(*hv);
    if (!rt.inventory.personality.empty()) b.personality = pool::parseHypervisor(rt.inventory.personality);
    b.state = displayState(name, rt);
    inv.blades.push_back(std::move(b));
  }
  return inv;
}

pool::BladeState Controller::displayState(const std::string& blade, const BladeRuntime& rt) const {
  if (rt.adminState == "retired") return pool::BladeState::Retired;
  if (rt.adminState == "maintenance") return pool::BladeState::Maintenance;
  if (rt.health != pool::BladeState::Available) return rt.health;
  auto role = roles_.find(blade);
  if (role != roles_.end() && role->second.role == pool::BladeRole::Spare) return pool::BladeState::Spare;
  if (auto b = byBlade_.find(blade); b != byBlade_.end() && !b->second.empty()) return pool::BladeState::Active;
  return pool::BladeState::Available;
}

void Controller::replan(std::int64_t now, Json* planOut) {
  dirty_ = false;
  lastPlanAt_ = now;
  Change change;
  if (identitiesDirty_) {
    // Every declared server gets its identity as soon as it is declared: it is its
    // identity for life, shown by `server list` even before it runs.
    identitiesDirty_ = false;
    std::map<std::string, std::string> poolIdentity;
    for (const auto& p : declarations_.pools) poolIdentity[p.name] = p.identityPool;
    for (const auto& s : declarations_.servers) {
      auto handedOut = identities_->ensure(s, poolIdentity[s.pool]);
      if (!handedOut) {
        if (serverFaults_[s.name] != handedOut.error().message) event("error", "", s.name, "identity: " + handedOut.error().message);
        serverFaults_[s.name] = handedOut.error().message;
        continue;
      }
      // New values are persisted with this replan's change; they stay listed until a
      // commit took them (a failed commit is retried by the next replan).
      if (*handedOut) identitiesToPersist_[s.name] = poolIdentity[s.pool];
    }
  }
  for (const auto& [name, identityPool] : identitiesToPersist_)
    if (auto id = identities_->find(name)) change.putIdentities.push_back({name, identityPool, *id});
  const auto t0 = std::chrono::steady_clock::now();
  pool::Plan p = pool::plan(declarations_, inventory(), placement_, now);
  planSecondsLast_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  planSecondsSum_ += planSecondsLast_;
  ++plans_;
  // Servers without an identity must not be bound: they could not be started.
  for (auto it = p.next.bindings.begin(); it != p.next.bindings.end();)
    it = identities_->holds(it->first) ? std::next(it) : p.next.bindings.erase(it);
  for (const auto& [s, b] : p.next.bindings)
    if (auto old = placement_.bindings.find(s); old == placement_.bindings.end() || old->second != b) change.putBindings[s] = b;
  for (const auto& [s, b] : placement_.bindings)
    if (!p.next.bindings.count(s)) change.deleteBindings.push_back(s);
  for (const auto& [b, pl] : p.next.borrowed)
    if (auto old = placement_.borrowed.find(b); old == placement_.borrowed.end() || old->second != pl) change.putBorrowed[b] = pl;
  for (const auto& [b, pl] : placement_.borrowed)
    if (!p.next.borrowed.count(b)) change.deleteBorrowed.push_back(b);
  for (const auto& [s, b] : p.next.home)
    if (auto old = placement_.home.find(s); old == placement_.home.end() || old->second != b) change.putPlacement[{"home", s}] = b;
  for (const auto& [s, b] : placement_.home)
    if (!p.next.home.count(s)) change.deletePlacement.emplace_back("home", s);
  for (const auto& [name, after, before] : {std::tuple{"held", &p.next.held, &placement_.held},
                                            std::tuple{"displaced", &p.next.displaced, &placement_.displaced}}) {
    for (const auto& s : *after)
      if (!before->count(s)) change.putPlacement[{name, s}] = "";
    for (const auto& s : *before)
      if (!after->count(s)) change.deletePlacement.emplace_back(name, s);
  }
  // The placement is durable before any agent hears of it: after a crash the restarted
  // controller drives the same bindings, so a server is never started in two places.
  if (auto s = commitNow(std::move(change)); !s) {
    spdlog::error("replan not persisted, retrying: {}", s.error().message);
    dirty_ = true;
    return;
  }
  identitiesToPersist_.clear();
  std::set<std::string> changedBlades;
  for (const auto& [s, b] : p.next.bindings)
    if (auto old = placement_.bindings.find(s); old == placement_.bindings.end() || old->second != b) {
      changedBlades.insert(b);
      if (old != placement_.bindings.end()) changedBlades.insert(old->second);
    }
  for (const auto& [s, b] : placement_.bindings)
    if (!p.next.bindings.count(s)) changedBlades.insert(b);
  placement_ = std::move(p.next);
  byBlade_.clear();
  for (const auto& [s, b] : placement_.bindings) byBlade_[b].push_back(s);
  std::map<std::string, pool::BladeAssignment> roles;
  for (const auto& a : p.blades) roles[a.blade] = a;
  // Failover: each server that left a fenced blade is an event saying where it went and why
  // there (the roles before the plan tell a spare from a blade it was packed onto).
  for (const auto& pl : p.placements) {
    if (pl.from.empty()) continue;
    auto from = blades_.find(pl.from);
    if (from == blades_.end() || from->second.health != pool::BladeState::Fenced) continue;
    ++failovers_;
    std::string how = "packed onto a blade of its pool";
    auto before = roles_.find(pl.blade);
    const std::string lender = before == roles_.end() ? std::string("?") : before->second.pool;
    if (auto r = roles.find(pl.blade); r != roles.end() && r->second.role == pool::BladeRole::Borrowed) {
      how = "borrowed from spare pool " + lender;
      for (const auto& step : p.steps)
        if (step.kind == pool::StepKind::PrepareHypervisor && step.blade == pl.blade && step.hypervisor)
          how += ", repurposed as a " + std::string(pool::toString(*step.hypervisor)) + " blade";
    } else if (before != roles_.end() && before->second.role == pool::BladeRole::Spare) {
      how = "a spare of pool " + lender;
    }
    event("warning", pl.blade, pl.server, "failover: " + pl.server + " from fenced blade " + pl.from + " to " + pl.blade + " (" + how + ")");
  }
  roles_ = std::move(roles);
  std::map<std::string, std::string> unplaceable;
  for (const auto& u : p.unplaceable) {
    if (auto old = unplaceable_.find(u.server); old == unplaceable_.end() || old->second != u.reason)
      event("warning", "", u.server, "unplaceable: " + u.reason);
    unplaceable[u.server] = u.reason;
  }
  unplaceable_ = std::move(unplaceable);
  for (const auto& w : p.warnings)
    if (seenWarnings_.insert(w).second) event("warning", "", "", w);
  for (const auto& step : p.steps) {
    if (step.kind != pool::StepKind::PrepareHypervisor || !step.hypervisor) continue;
    auto it = blades_.find(step.blade);
    if (it == blades_.end() || it->second.busyServers.count("")) continue;
    enqueue(it->second, {0, step.blade, "", pool::StepKind::PrepareHypervisor, std::nullopt, pool::toString(*step.hypervisor), 0, false, 0, 0});
    changedBlades.insert(step.blade);
  }
  // The plan itself is not kept: at 100,000 servers it is a second copy of the placement.
  if (planOut) *planOut = planJson(p);
  for (const auto& b : changedBlades) convergeQueue_.insert(b);
}

void Controller::recheckLiveness(const std::string& blade, BladeRuntime& rt, std::int64_t at) {
  rt.livenessAt = at;
  livenessDue_.emplace(at, blade);
}

void Controller::watchLiveness(const std::string& blade, BladeRuntime& rt, std::int64_t now) {
  if (rt.adminState == "retired" || rt.health == pool::BladeState::Fenced || rt.heldByStorm) return;
  // Silence strictly longer than a limit changes the state (see detectFailures); a failed
  // blade is looked at again when the lease we granted it has run out, plus the margin.
  std::int64_t due = 0;
  switch (rt.health) {
    case pool::BladeState::Suspect: due = rt.lastHeartbeat + options_.deadMs + 1; break;
    case pool::BladeState::Failed: due = rt.leaseUntil + options_.fenceMarginMs; break;
    default: due = rt.lastHeartbeat + options_.suspectMs + 1; break;
  }
  due = std::max(due, now + 1);
  // An entry that comes due no later is there already: when it does, the blade is put
  // back for its then due time. Only an earlier due time needs a new entry.
  if (rt.livenessAt != 0 && rt.livenessAt <= due) return;
  rt.livenessAt = due;
  livenessDue_.emplace(due, blade);
}

// Only blades whose silence may have crossed a limit are looked at: each watched blade
// has one entry in livenessDue_, due when its silence would cross the next limit as of
// its last heartbeat. A blade heard since is simply put back for its new due time, so
// 10,000 heartbeating blades cost a few thousand heap operations a second, no scan.
//
// available -> suspect -> failed: marks only; a silent blade may still run its servers
// (invariant 1), so the planner keeps them bound there. failed -> fenced: the lease we
// last granted has expired (the agent, or its watchdog, ended its domains by then) and
// the storm guard is down; only then do its servers fail over.
void Controller::detectFailures(std::int64_t now) {
  while (!livenessDue_.empty() && livenessDue_.top().first <= now) {
    const auto [due, name] = livenessDue_.top();
    livenessDue_.pop();
    auto it = blades_.find(name);
    if (it == blades_.end() || it->second.livenessAt != due) continue;  // superseded by an earlier entry
    BladeRuntime& rt = it->second;
    rt.livenessAt = 0;
    if (rt.adminState == "retired" || rt.health == pool::BladeState::Fenced) continue;
    rt.lastHeartbeat = lastHeard(name, rt);
    std::int64_t silence = now - rt.lastHeartbeat;
    if (rt.routine && silence > options_.suspectMs) {
      // Its beats stay in the fabric thread: have them handed on from now, then look
      // again, counting one that arrived in between.
      rt.routine = false;
      rt.lastHeartbeat = std::max(rt.lastHeartbeat, leases_.setRoutine(name, false));
      silence = now - rt.lastHeartbeat;
      if (silence <= options_.suspectMs) updateRoutine(name, rt);
    }
    if (rt.health == pool::BladeState::Available && silence > options_.suspectMs) {
      event("warning", name, "", "blade suspect: no heartbeat for " + std::to_string(silence) + " ms");
      setHealth(rt, pool::BladeState::Suspect, now);
    }
    if (rt.health == pool::BladeState::Suspect && silence > options_.deadMs) {
      event("error", name, "", "blade failed: no heartbeat for " + std::to_string(silence) +
                                   " ms; its servers stay bound to it until it is fenced (its lease runs out in " +
                                   std::to_string(std::max<std::int64_t>(0, rt.leaseUntil - now)) + " ms)");
      setHealth(rt, pool::BladeState::Failed, now);
      startFenceCommand(name, rt);
    }
    if (auto at = leases_.lastRenewal(name)) rt.leaseUntil = std::max(rt.leaseUntil, *at + options_.leaseMs);
    if (rt.health == pool::BladeState::Failed && now >= rt.leaseUntil + options_.fenceMarginMs) {
      if (stormActive_) {
        rt.heldByStorm = true;  // looked at again when the guard lifts (setHealth)
        continue;
      }
      // A blade that may run a power-fenced policy never fences itself: only its BMC
      // (the fence command) or an operator can say its servers are gone.
      if (quorum_.mayBePowerFenced(name)) {
        if (!rt.withheldNoted) {
          rt.withheldNoted = true;
          event("error", name, "",
                "blade not fenced by its lease: it is power-fenced (it never fences itself); its servers stay bound to it "
                "until the fence command confirms power-off");
        }
        recheckLiveness(name, rt, now + 1000);
        continue;
      }
      // Atomic with the fabric thread's renewals: a heartbeat it answered a moment ago
      // (still on its way to us) wins, and none is answered after this. And only while we
      // count a quorum: then no shield can keep its servers running (docs/FENCING.md).
      const auto verdict = leases_.fenceIfExpired(name, now, options_.leaseMs + options_.fenceMarginMs);
      if (verdict == LeaseTable::Fence::LeaseLive) {
        if (auto at = leases_.lastRenewal(name)) rt.leaseUntil = std::max(rt.leaseUntil, *at + options_.leaseMs);
        watchLiveness(name, rt, now);
        continue;
      }
      if (verdict == LeaseTable::Fence::NoQuorum) {
        if (!rt.withheldNoted) {
          rt.withheldNoted = true;
          ++fencesWithheld_;
          const auto count = leases_.countQuorum(now);
          event("error", name, "",
                "blade not fenced: its lease ran out, but loomd counts " + std::to_string(count.counted) + " of the " +
                    std::to_string(count.members) +
                    " quorum members (it needs half), so the blade may hold its servers under its peers' shield; "
                    "its servers stay bound to it");
        }
        recheckLiveness(name, rt, now + 250);
        continue;
      }
      ++fencesByLease_;
      fence(name, rt,
            "lease expired " + std::to_string(now - rt.leaseUntil) + " ms ago (margin " + std::to_string(options_.fenceMarginMs) +
                " ms), no heartbeat for " + std::to_string(silence) + " ms; its agent or its watchdog ended its domains by then",
            now);
      continue;
    }
    watchLiveness(name, rt, now);
  }
}

namespace {
bool silent(pool::BladeState s) { return s == pool::BladeState::Suspect || s == pool::BladeState::Failed; }
}  // namespace

void Controller::setHealth(BladeRuntime& rt, pool::BladeState next, std::int64_t now) {
  if (rt.health == next) return;
  if (silent(rt.health) != silent(next)) {
    if (silent(next)) ++silentBlades_;
    else --silentBlades_;
  }
  if (silent(next)) {
    // Whatever was in flight to it is lost with it; resent once it is heard again.
    for (auto id : rt.queue) operations_.at(id).inFlight = false;
  }
  rt.health = next;
  dirty_ = true;
  const bool up = stormGuardUp();
  if (up == stormActive_) return;
  stormActive_ = up;
  const std::size_t total = blades_.size() - retiredBlades_;
  const std::string counts = std::to_string(silentBlades_) + " of " + std::to_string(total) + " blades";
  if (up) {
    ++stormsRaised_;
    event("error", "", "",
          "fencing suspended: " + counts + " are silent at once (more than " + std::to_string(static_cast<int>(options_.stormShare * 100)) +
              "%); more likely this controller is cut off than they all died, so nothing is fenced and no server moves "
              "until they are heard again or fewer are silent");
    return;
  }
  event("warning", "", "", "fencing resumed: " + counts + " silent");
  for (auto& [name, other] : blades_) {
    if (other.health != pool::BladeState::Failed) continue;
    other.heldByStorm = false;
    startFenceCommand(name, other);
    watchLiveness(name, other, now);
  }
}

void Controller::confirmBlade(BladeRuntime& rt) {
  rt.confirmed = true;
  if (--unconfirmedBlades_ > 0) return;
  event("info", "", "", "every blade known before the restart has registered again or been fenced: starts resume");
  for (const auto& [name, _] : blades_) convergeQueue_.insert(name);
}

bool Controller::stormGuardUp() const {
  const std::size_t total = blades_.size() - retiredBlades_;
  return silentBlades_ >= options_.stormMinBlades && static_cast<double>(silentBlades_) > options_.stormShare * static_cast<double>(total);
}

void Controller::heardFrom(const std::string& blade, BladeRuntime& rt) {
  rt.heldByStorm = false;
  rt.withheldNoted = false;
  if (rt.health == pool::BladeState::Fenced) {
    if (!rt.returned)
      event("warning", blade, "", "blade heard again after being fenced: not trusted until it reports no servers running");
    rt.returned = true;
    convergeQueue_.insert(blade);
    return;
  }
  if (rt.health == pool::BladeState::Available) return;
  event("info", blade, "", std::string("blade heard again after being ") + pool::toString(rt.health));
  setHealth(rt, pool::BladeState::Available, now_);
  convergeQueue_.insert(blade);
}

void Controller::checkTrust(const std::string& blade, BladeRuntime& rt) {
  if (rt.health != pool::BladeState::Fenced || !rt.returned) return;
  std::size_t running = 0;
  for (const auto& [name, d] : rt.domains)
    if ((d.state == pool::DomainState::Running || d.state == pool::DomainState::Paused) && (findServer(name) || deletedServers_.count(name))) ++running;
  if (running) return;  // converge stops them; the stop results bring us back here
  rt.returned = false;
  leases_.unfence(blade);
  event("info", blade, "", "blade trusted again: it reports no servers running and rejoins the fabric");
  quorum_.markDirty(now_);
  setHealth(rt, pool::BladeState::Available, now_);
  lastPlanAt_ = now_ - options_.replanMinIntervalMs;
  convergeQueue_.insert(blade);
}

void Controller::fence(const std::string& blade, BladeRuntime& rt, const std::string& reason, std::int64_t now) {
  setHealth(rt, pool::BladeState::Fenced, now);
  // Its servers are gone (it fenced itself, or its power is off): it holds no shield and
  // leaves the quorum set.
  quorum_.forget(blade);
  quorum_.markDirty(now);
  rt.holding = false;
  rt.heldByStorm = false;
  rt.returned = false;
  event("error", blade, "", "blade fenced: " + reason);
  // Nothing queued for it still makes sense: its servers are about to be placed elsewhere.
  for (auto id : rt.queue) {
    auto op = operations_.find(id);
    if (op == operations_.end()) continue;
    pending_.putOperations.push_back({id, op->second.blade, op->second.server, pool::toString(op->second.kind), "cancelled", op->second.attempts, "blade fenced"});
    operations_.erase(op);
  }
  rt.queue.clear();
  rt.busyServers.clear();
  // Its domains ended with the lease (or the power): no longer "running elsewhere" for
  // the invariant-1 guard that holds back a start on another blade.
  std::vector<std::string> ended;
  for (const auto& [name, d] : rt.domains)
    if (d.state == pool::DomainState::Running || d.state == pool::DomainState::Paused) ended.push_back(name);
  for (const auto& name : ended) {
    setDomainState(blade, rt, name, pool::DomainState::Shutoff);
    // A server already bound elsewhere (an operator move off this blade) was waiting for
    // it to stop here: it may start now.
    if (auto b = placement_.bindings.find(name); b != placement_.bindings.end() && b->second != blade) convergeQueue_.insert(b->second);
  }
  if (!rt.confirmed) confirmBlade(rt);
  lastPlanAt_ = now - options_.replanMinIntervalMs;
}

namespace {
// One value for /bin/sh, whatever it contains (a hostname comes from the network).
std::string shellQuote(const std::string& v) {
  std::string out = "'";
  for (char c : v) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}
}  // namespace

void Controller::startFenceCommand(const std::string& blade, BladeRuntime& rt) {
  if (options_.fenceCommand.empty() || !fenceRunner_ || rt.fenceCommandRunning || stormActive_) return;
  const std::map<std::string, std::string> values{{"{blade}", blade},
                                                  {"{chassis}", rt.inventory.chassis},
                                                  {"{slot}", std::to_string(rt.inventory.slot)},
                                                  {"{hostname}", rt.inventory.hostname}};
  std::string command;
  const std::string& t = options_.fenceCommand;
  for (std::size_t i = 0; i < t.size();) {
    bool replaced = false;
    for (const auto& [key, value] : values) {
      if (t.compare(i, key.size(), key) != 0) continue;
      command += shellQuote(value);
      i += key.size();
      replaced = true;
      break;
    }
    if (!replaced) command += t[i++];
  }
  rt.fenceCommandRunning = true;
  event("info", blade, "", "fence command started: " + command);
  fenceRunner_(blade, command);
}

void Controller::onFenceResult(const std::string& blade, bool ok, const std::string& detail, std::int64_t now) {
  now_ = now;
  auto it = blades_.find(blade);
  if (it == blades_.end()) return;
  BladeRuntime& rt = it->second;
  rt.fenceCommandRunning = false;
  if (!ok) {
    ++fenceCommandFailures_;
    event("error", blade, "", "fence command failed: " + detail + "; its servers wait for its lease to expire");
    return;
  }
  if (rt.health == pool::BladeState::Fenced) {
    event("info", blade, "", "fence command confirmed power-off (the blade was fenced already)");
    return;
  }
  // Power-off is a fact, whatever the blade did meanwhile: its domains are gone.
  ++fencesByCommand_;
  leases_.fence(blade);
  fence(blade, rt, "fence command confirmed power-off" + (detail.empty() ? std::string() : " (" + detail + ")"), now);
}

void Controller::forgiveStall(std::int64_t gapMs) {
  for (auto& [_, rt] : blades_) rt.lastHeartbeat += gapMs;
  spdlog::warn("controller loop stalled for {} ms; blade liveness clocks extended by as much", gapMs);
}

void Controller::tick(std::int64_t now) {
  now_ = now;
  detectFailures(now);
  tendQuorum(now);
  // Timeouts: an unanswered step counts as a failed attempt. Entries of operations that
  // were answered, or resent since (another deadline), are stale and skipped.
  std::vector<std::uint64_t> expired;
  while (!opDeadlines_.empty() && opDeadlines_.top().first <= now) {
    const auto [deadline, id] = opDeadlines_.top();
    opDeadlines_.pop();
    if (auto op = operations_.find(id); op != operations_.end() && op->second.inFlight && op->second.deadline == deadline)
      expired.push_back(id);
  }
  for (auto id : expired) {
    auto op = operations_.find(id);
    if (op == operations_.end() || !op->second.inFlight) continue;
    auto bit = blades_.find(op->second.blade);
    if (bit == blades_.end()) continue;
    dispatchQueue_.insert(bit->first);  // what the failure unblocked, or the retry
    finishOperation(bit->second, id, false, "no answer within " + std::to_string(options_.opTimeoutMs) + " ms", now);
  }
  // Backoffs that ended.
  while (!backoffEnds_.empty() && backoffEnds_.top().first <= now) {
    dispatchQueue_.insert(backoffEnds_.top().second);
    backoffEnds_.pop();
  }
  // Blades whose retry window for a failed server closed.
  if (!retryServerAt_.empty() && now - lastRetryScan_ >= 100) {
    lastRetryScan_ = now;
    for (const auto& [server, at] : retryServerAt_)
      if (at <= now)
        if (auto b = placement_.bindings.find(server); b != placement_.bindings.end()) convergeQueue_.insert(b->second);
  }
  if (dirty_ && now - lastPlanAt_ >= options_.replanMinIntervalMs) replan(now);
  if (!convergeQueue_.empty()) {
    auto queue = std::move(convergeQueue_);
    convergeQueue_.clear();
    for (const auto& b : queue)
      if (auto it = blades_.find(b); it != blades_.end()) converge(b, it->second, now);
  }
  // Blades with steps to send that converge did not already send (new operations,
  // retries, the rest of a capped message).
  if (!dispatchQueue_.empty()) {
    auto queue = std::move(dispatchQueue_);
    dispatchQueue_.clear();
    for (const auto& b : queue)
      if (auto it = blades_.find(b); it != blades_.end()) dispatch(b, it->second, now);
  }
  flush();
  wakeWaiters(now, false);
  nextTick_ = now + (dirty_ ? options_.replanMinIntervalMs : 100);
  // A fence is due at an exact time (lease + margin): every millisecond past it is
  // failover time.
  if (!livenessDue_.empty()) nextTick_ = std::min(nextTick_, livenessDue_.top().first);
  nextTick_ = std::min(nextTick_, quorum_.dueAt());
}

// ---------------------------------------------------------------------------------------
// Store and events

void Controller::event(const std::string& level, const std::string& blade, const std::string& server, const std::string& message) {
  EventRecord e{++lastEventId_, wallClock_(), level, blade, server, message};
  if (level == "error") spdlog::error("event: {}{}{}", blade.empty() ? "" : blade + ": ", server.empty() ? "" : server + ": ", message);
  else spdlog::info("event: {}{}{}", blade.empty() ? "" : blade + ": ", server.empty() ? "" : server + ": ", message);
  events_.push_back(e);
  while (events_.size() > options_.eventMemory) events_.pop_front();
  pending_.appendEvents.push_back(std::move(e));
}

Status Controller::commitNow(Change change) {
  Change all = std::move(pending_);
  pending_ = Change{};
  all.merge(std::move(change));
  auto s = store_.commit(all);
  if (!s) {
    // Keep the batched part (events, operations) for the next flush; drop the rest,
    // which the caller reports as not acknowledged.
    pending_.appendEvents = std::move(all.appendEvents);
    pending_.putOperations = std::move(all.putOperations);
  }
  return s;
}

void Controller::flush() {
  if (pending_.empty()) return;
  Change c = std::move(pending_);
  pending_ = Change{};
  if (auto s = store_.commit(c); !s) {
    spdlog::error("state store write failed (will retry): {}", s.error().message);
    pending_ = std::move(c);
  }
}

void Controller::wakeWaiters(std::int64_t now, bool /*expiredOnly*/) {
  if (waiters_.empty()) return;
  std::vector<EventWaiter> keep;
  for (auto& w : waiters_) {
    const bool hasNew = !events_.empty() && events_.back().id > w.since;
    if (!hasNew && w.deadline > now) {
      keep.push_back(std::move(w));
      continue;
    }
    Json out = Json::array();
    for (const auto& e : events_)
      if (e.id > w.since && out.size() < w.limit)
        out.push_back({{"id", e.id}, {"time_ms", e.timeMs}, {"level", e.level}, {"blade", e.blade}, {"server", e.server}, {"message", e.message}});
    w.reply(jsonResponse(200, out));
  }
  waiters_ = std::move(keep);
}

// ---------------------------------------------------------------------------------------
// HTTP API

namespace {
// The list request's `?fields=`, checked against the object's fields.
Result<FieldMask> listFields(const ApiRequest& req, const std::vector<std::string>& known) {
  auto it = req.query.find("fields");
  return it == req.query.end() ? Result<FieldMask>(FieldMask{}) : FieldMask::parse(it->second, known);
}
}  // namespace

void Controller::handleApi(const ApiRequest& req, std::int64_t now, Reply reply) {
  now_ = now;
  const auto parts = splitPath(req.path);
  const bool get = req.method == "GET", post = req.method == "POST";
  try {
    if (parts.size() == 1 && parts[0] == "metrics" && get) return reply({200, "text/plain; version=0.0.4", metrics()});
    if (parts.empty() || parts[0] != "v1") return reply(errorResponse(404, "no such endpoint '" + req.path.substr(0, 200) + "'"));
    const std::string noun = parts.size() > 1 ? parts[1] : "";
    if (noun == "apply" && parts.size() == 2) {
      if (!post) return reply(errorResponse(405, "use POST for /v1/apply"));
      return reply(apiApply(req, now));
    }
    if (noun == "delete" && parts.size() == 2) {
      if (!post) return reply(errorResponse(405, "use POST for /v1/delete"));
      return reply(apiDelete(req, now));
    }
    if (noun == "capacity" && parts.size() == 2 && get) return reply(jsonResponse(200, capacityJson()));
    if (noun == "events" && parts.size() == 2 && get) return apiEvents(req, now, std::move(reply));
    if (noun == "health" && parts.size() == 2) return reply(jsonResponse(200, Json{{"ok", true}}));
    if (noun == "blades") {
      if (parts.size() == 2 && get) {
        auto fields = listFields(req, bladeFields());
        if (!fields) return reply(errorResponse(400, fields.error().message));
        std::vector<std::string> out;
        out.reserve(blades_.size());
        for (const auto& [name, rt] : blades_) out.push_back(bladeText(name, rt, *fields));
        return reply(textResponse(200, listText(out)));
      }
      auto it = parts.size() >= 3 ? blades_.find(parts[2]) : blades_.end();
      if (it == blades_.end()) return reply(errorResponse(404, "unknown blade '" + (parts.size() >= 3 ? parts[2] : "") + "'"));
      if (parts.size() == 3 && get) return reply(textResponse(200, bladeText(it->first, it->second)));
      if (parts.size() == 4 && post && (parts[3] == "drain" || parts[3] == "undrain"))
        return reply(apiDrain(parts[2], parts[3] == "drain", now));
      if (parts.size() == 4 && post && parts[3] == "retire") return reply(apiRetire(parts[2], now));
    }
    if (noun == "servers") {
      if (parts.size() == 2 && get) {
        auto fields = listFields(req, serverFields());
        if (!fields) return reply(errorResponse(400, fields.error().message));
        std::vector<std::string> out;
        out.reserve(declarations_.servers.size());
        for (const auto& s : declarations_.servers) out.push_back(serverText(s, *fields));
        return reply(textResponse(200, listText(out)));
      }
      const pool::Server* s = parts.size() >= 3 ? findServer(parts[2]) : nullptr;
      if (!s) return reply(errorResponse(404, "unknown server '" + (parts.size() >= 3 ? parts[2] : "") + "'"));
      if (parts.size() == 3 && get) return reply(textResponse(200, serverText(*s)));
      if (parts.size() == 4 && post && (parts[3] == "start" || parts[3] == "stop"))
        return reply(apiPower(parts[2], parts[3] == "start", now));
      if (parts.size() == 4 && post && parts[3] == "move") return reply(apiMove(parts[2], req, now));
    }
    if (noun == "pools") {
      if (parts.size() == 2 && get) {
        auto fields = listFields(req, poolFields());
        if (!fields) return reply(errorResponse(400, fields.error().message));
        std::vector<std::string> out;
        for (const auto& p : declarations_.pools) out.push_back(poolText(p, *fields));
        return reply(textResponse(200, listText(out)));
      }
      if (parts.size() == 3 && get) {
        for (const auto& p : declarations_.pools)
          if (p.name == parts[2]) return reply(textResponse(200, poolText(p)));
        return reply(errorResponse(404, "unknown pool '" + parts[2] + "'"));
      }
    }
    if (noun == "partitions" && parts.size() == 2 && get) {
      Json out = Json::array();
      for (const auto& part : declarations_.partitions) {
        Json pools = Json::array(), networks = Json::array();
        std::size_t servers = 0;
        for (const auto& p : declarations_.pools)
          if (p.partition == part.name) pools.push_back(p.name);
        for (const auto& n : declarations_.networks)
          if (n.partition == part.name) networks.push_back(n.name);
        for (const auto& s : declarations_.servers) servers += s.partition == part.name;
        out.push_back({{"name", part.name}, {"pools", pools}, {"networks", networks}, {"servers", servers}});
      }
      return reply(jsonResponse(200, out));
    }
    return reply(errorResponse(404, "no such endpoint '" + req.method + " " + req.path.substr(0, 200) + "'"));
  } catch (const std::exception& e) {
    // Never crash on a request: a bug here is a 500 and a log line.
    spdlog::error("api: {} {}: {}", req.method, req.path.substr(0, 200), e.what());
    return reply(errorResponse(500, std::string("internal error: ") + e.what()));
  }
}

ApiResponse Controller::apiApply(const ApiRequest& req, std::int64_t now) {
  const auto src = req.query.count("source") ? req.query.at("source") : std::string("request");
  // The body is validated together with what is applied already (its objects replacing
  // theirs), so servers.yaml may name the pools pools.yaml declared earlier.
  auto loaded = config::loadDeclarationTextOnto(declarations_, req.body, src);
  if (!loaded.ok()) {
    Json diags = Json::array();
    for (const auto& d : loaded.diagnostics) diags.push_back(d.format());
    return jsonResponse(400, Json{{"error", "invalid declarations"}, {"diagnostics", diags}});
  }
  const bool dryRun = truthy(req.query, "dry_run") || truthy(req.query, "dry-run");
  // Diff by (kind, name) against what is applied now: only the body's objects can differ.
  std::set<std::pair<std::string, std::string>> named(loaded.objects.begin(), loaded.objects.end());
  std::map<std::pair<std::string, std::string>, std::string> current;
  for (auto& r : toRecords(declarations_))
    if (named.count({r.kind, r.name})) current[{r.kind, r.name}] = std::move(r.body);
  Json created = Json::array(), changed = Json::array();
  std::size_t unchanged = 0;
  Change change;
  bool identityPoolsChanged = false;
  for (auto& r : toRecords(loaded.declarations)) {
    if (!named.count({r.kind, r.name})) continue;
    auto it = current.find({r.kind, r.name});
    Json label{{"kind", r.kind}, {"name", r.name}};
    if (it == current.end()) created.push_back(label);
    else if (it->second != r.body) changed.push_back(label);
    else {
      ++unchanged;
      continue;
    }
    identityPoolsChanged = identityPoolsChanged || r.kind == "IdentityPool";
    if (r.kind == "Server" && deletedServers_.count(r.name)) change.deleteDeclarations.emplace_back(kTombstone, r.name);
    change.putDeclarations.push_back(std::move(r));
  }
  Json diff{{"created", created}, {"changed", changed}, {"deleted", Json::array()}, {"unchanged", unchanged}};
  if (dryRun) {
    auto t0 = std::chrono::steady_clock::now();
    pool::Plan p = pool::plan(loaded.declarations, inventory(), placement_, now);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return jsonResponse(200, Json{{"dry_run", true}, {"diff", diff}, {"created", created}, {"changed", changed},
                                  {"deleted", Json::array()}, {"plan", planJson(p)}, {"plan_seconds", secs}});
  }
  if (auto s = commitNow(std::move(change)); !s) return errorResponse(503, "not applied, the state store failed: " + s.error().message);
  ++applies_;
  declarations_ = std::move(loaded.declarations);
  for (const auto& [kind, name] : loaded.objects)
    if (kind == "Server") deletedServers_.erase(name);
  onDeclarationsChanged();
  if (identityPoolsChanged) {
    auto records = identities_->records();
    identities_ = std::make_unique<pool::IdentityAllocator>(declarations_.identityPools);
    if (auto s = identities_->restore(records); !s) spdlog::error("identity pools changed: {}", s.error().message);
  }
  event("info", "", "",
        "applied " + src + ": " + std::to_string(created.size()) + " created, " + std::to_string(changed.size()) + " changed");
  identitiesDirty_ = true;
  Json plan;  // stays null if the placement could not be persisted (it is retried)
  replan(now, &plan);
  flush();
  return jsonResponse(200, Json{{"dry_run", false}, {"diff", diff}, {"created", created}, {"changed", changed},
                                {"deleted", Json::array()}, {"plan", std::move(plan)}, {"plan_seconds", planSecondsLast_}});
}

ApiResponse Controller::apiDelete(const ApiRequest& req, std::int64_t now) {
  const auto src = req.query.count("source") ? req.query.at("source") : std::string("request");
  // Only the documents' kinds and names matter: the file that created the objects, or
  // a trimmed one, both work.
  auto loaded = config::loadDeclarationNames(req.body, src);
  if (!loaded.ok()) {
    Json diags = Json::array();
    for (const auto& d : loaded.diagnostics) diags.push_back(d.format());
    return jsonResponse(400, Json{{"error", "invalid declarations"}, {"diagnostics", diags}});
  }
  if (loaded.objects.empty()) return errorResponse(400, "nothing to delete: the body declares no objects");
  std::set<std::pair<std::string, std::string>> doomed(loaded.objects.begin(), loaded.objects.end());
  std::set<std::pair<std::string, std::string>> declared;
  for (const auto& x : declarations_.partitions) declared.emplace("Partition", x.name);
  for (const auto& x : declarations_.networks) declared.emplace("Network", x.name);
  for (const auto& x : declarations_.identityPools) declared.emplace("IdentityPool", x.name);
  for (const auto& x : declarations_.pools) declared.emplace("Pool", x.name);
  for (const auto& x : declarations_.servers) declared.emplace("Server", x.name);
  for (const auto& [kind, name] : loaded.objects)
    if (!declared.count({kind, name})) return errorResponse(404, kind + " '" + name + "' is not declared");
  auto keep = [&](const char* kind, auto& objects) {
    objects.erase(std::remove_if(objects.begin(), objects.end(), [&](const auto& o) { return doomed.count({kind, o.name}) > 0; }),
                  objects.end());
  };
  pool::Declarations remaining = declarations_;
  keep("Partition", remaining.partitions);
  keep("Network", remaining.networks);
  keep("IdentityPool", remaining.identityPools);
  keep("Pool", remaining.pools);
  keep("Server", remaining.servers);
  if (auto check = config::validateDeclarations(remaining, "remaining declarations"); !check.ok()) {
    Json diags = Json::array();
    for (const auto& d : check.diagnostics) diags.push_back(d.message);
    return jsonResponse(409, Json{{"error", "still referenced: " + check.diagnostics.front().message}, {"diagnostics", diags}});
  }
  // Identities are never handed out twice, so the pool they came from must stay known.
  for (const auto& [kind, name] : loaded.objects) {
    if (kind != "IdentityPool") continue;
    for (const auto& r : identities_->records())
      if (r.identityPool == name || r.identityPool.empty())
        return errorResponse(409, "IdentityPool '" + name + "' has handed out identities, which are never reused; it cannot be deleted");
  }
  Json deleted = Json::array();
  for (const auto& [kind, name] : loaded.objects) deleted.push_back({{"kind", kind}, {"name", name}});
  if (truthy(req.query, "dry_run") || truthy(req.query, "dry-run")) {
    pool::Plan p = pool::plan(remaining, inventory(), placement_, now);
    return jsonResponse(200, Json{{"dry_run", true}, {"deleted", deleted}, {"plan", planJson(p)}});
  }
  Change change;
  std::vector<std::string> servers;
  for (const auto& [kind, name] : loaded.objects) {
    change.deleteDeclarations.emplace_back(kind, name);
    if (kind != "Server") continue;
    servers.push_back(name);
    change.putDeclarations.push_back({kTombstone, name, "{}"});
  }
  // Released identities stay used forever (pool::IdentityAllocator::release).
  auto released = std::make_unique<pool::IdentityAllocator>(*identities_);
  for (const auto& name : servers) released->release(name);
  std::set<std::string> gone(servers.begin(), servers.end());
  for (const auto& r : released->records())
    if (r.released && gone.count(r.server)) change.putIdentities.push_back(r);
  for (const auto& name : servers) {
    if (placement_.held.count(name)) change.deletePlacement.emplace_back("held", name);
    if (placement_.home.count(name)) change.deletePlacement.emplace_back("home", name);
    if (placement_.displaced.count(name)) change.deletePlacement.emplace_back("displaced", name);
  }
  if (auto s = commitNow(std::move(change)); !s) return errorResponse(503, "not deleted, the state store failed: " + s.error().message);
  identities_ = std::move(released);
  for (const auto& name : servers) {
    identitiesToPersist_.erase(name);
    deletedServers_.insert(name);
    serverFaults_.erase(name);
    retryServerAt_.erase(name);
    placement_.held.erase(name);
    placement_.home.erase(name);
    placement_.displaced.erase(name);
    // Where it runs now, it stops (convergence; the binding goes with the replan).
    if (auto r = runningOn_.find(name); r != runningOn_.end())
      for (const auto& b : r->second) convergeQueue_.insert(b);
  }
  declarations_ = std::move(remaining);
  onDeclarationsChanged();
  if (std::any_of(loaded.objects.begin(), loaded.objects.end(), [](const auto& o) { return o.first == "IdentityPool"; })) {
    auto records = identities_->records();
    identities_ = std::make_unique<pool::IdentityAllocator>(declarations_.identityPools);
    if (auto s = identities_->restore(records); !s) spdlog::error("identity pools changed: {}", s.error().message);
  }
  ++applies_;
  event("info", "", "", "deleted " + src + ": " + std::to_string(loaded.objects.size()) + " objects");
  identitiesDirty_ = true;
  Json plan;
  replan(now, &plan);
  flush();
  return jsonResponse(200, Json{{"dry_run", false}, {"deleted", deleted}, {"plan", std::move(plan)}});
}

ApiResponse Controller::apiDrain(const std::string& blade, bool drain, std::int64_t now) {
  auto& rt = blades_.at(blade);
  if (rt.adminState == "retired") return errorResponse(409, "blade '" + blade + "' is retired");
  const std::string next = drain ? "maintenance" : "";
  if (rt.adminState != next) {
    Change c;
    c.putBlades.push_back({blade, inventoryJson(rt.inventory).dump(), next, rt.firstSeenMs});
    if (auto s = commitNow(std::move(c)); !s) return errorResponse(503, "not changed, the state store failed: " + s.error().message);
    rt.adminState = next;
    event("info", blade, "", drain ? "blade drained (maintenance)" : "blade undrained");
    dirty_ = true;
    lastPlanAt_ = now - options_.replanMinIntervalMs;
  }
  return textResponse(200, bladeText(blade, rt));
}

ApiResponse Controller::apiRetire(const std::string& blade, std::int64_t now) {
  auto& rt = blades_.at(blade);
  if (rt.adminState == "retired") return textResponse(200, bladeText(blade, rt));  // idempotent
  std::size_t held = 0;
  if (auto b = byBlade_.find(blade); b != byBlade_.end()) held = b->second.size();
  // A server still running here while bound elsewhere (a move in progress) counts too.
  for (const auto& [name, d] : rt.domains)
    if (d.state == pool::DomainState::Running && findServer(name) && placement_.bindings.count(name) && placement_.bindings.at(name) != blade) ++held;
  if (held)
    return errorResponse(409, "blade " + blade + " still holds " + std::to_string(held) + (held == 1 ? " server" : " servers") +
                                  "; drain it first");
  Change c;
  c.putBlades.push_back({blade, inventoryJson(rt.inventory).dump(), "retired", rt.firstSeenMs});
  if (auto s = commitNow(std::move(c)); !s) return errorResponse(503, "not retired, the state store failed: " + s.error().message);
  rt.adminState = "retired";
  ++retiredBlades_;
  quorum_.forget(blade);
  quorum_.markDirty(now);
  if (!rt.confirmed) confirmBlade(rt);
  setHealth(rt, pool::BladeState::Available, now);  // out of the storm guard's count
  event("info", blade, "", "blade retired: it takes no servers again");
  dirty_ = true;
  lastPlanAt_ = now - options_.replanMinIntervalMs;
  return textResponse(200, bladeText(blade, rt));
}

ApiResponse Controller::apiMove(const std::string& name, const ApiRequest& req, std::int64_t now) {
  Json body = Json::parse(req.body, nullptr, false);
  if (!body.is_object() || !body.contains("to") || !body["to"].is_string() || body["to"].get<std::string>().empty())
    return errorResponse(400, "move wants a JSON body {\"to\": \"BLADE\"}");
  const std::string to = body["to"].get<std::string>();
  if (!blades_.count(to)) return errorResponse(404, "unknown blade '" + to + "'");
  const pool::Server& s = declarations_.servers[serverIndex_.at(name)];
  if (s.power == pool::PowerState::Off) return errorResponse(409, "server '" + name + "' is powered off; start it first");
  auto bound = placement_.bindings.find(name);
  if (bound != placement_.bindings.end() && bound->second == to) return textResponse(200, serverText(s));  // already there
  if (auto why = pool::checkMove(declarations_, inventory(), placement_, name, to)) return errorResponse(409, *why);
  const std::string from = bound == placement_.bindings.end() ? "" : bound->second;
  Change c;
  c.putBindings[name] = to;
  // The operator's choice is where it belongs now: no failback undoes it.
  if (placement_.held.count(name)) c.deletePlacement.emplace_back("held", name);
  if (placement_.home.count(name)) c.deletePlacement.emplace_back("home", name);
  if (placement_.displaced.count(name)) c.deletePlacement.emplace_back("displaced", name);
  if (auto st = commitNow(std::move(c)); !st) return errorResponse(503, "not moved, the state store failed: " + st.error().message);
  // The binding is durable before anyone acts on it. Convergence then stops the server on
  // `from` and starts it on `to` only once no other blade reports it running (invariant 1).
  placement_.bindings[name] = to;
  placement_.held.erase(name);
  placement_.home.erase(name);
  placement_.displaced.erase(name);
  if (!from.empty()) {
    auto& list = byBlade_[from];
    list.erase(std::remove(list.begin(), list.end(), name), list.end());
    convergeQueue_.insert(from);
  }
  byBlade_[to].push_back(name);
  convergeQueue_.insert(to);
  for (const auto& b : runningOn_[name]) convergeQueue_.insert(b);
  serverFaults_.erase(name);
  retryServerAt_.erase(name);
  event("info", to, name, "server moved by the operator" + (from.empty() ? std::string() : " from " + from) + " to " + to);
  dirty_ = true;
  lastPlanAt_ = now - options_.replanMinIntervalMs;
  return textResponse(200, serverText(s));
}

Json Controller::capacityJson() const {
  Json out = Json::array();
  for (const auto& c : pool::capacity(declarations_, inventory(), placement_))
    out.push_back({{"pool", c.pool},
                   {"blades", c.blades},
                   {"spares", c.spares},
                   {"spares_declared", c.sparesDeclared},
                   {"cores_total", c.coresTotal},
                   {"cores_used", c.coresUsed},
                   {"memory_total_mib", c.memoryTotal},
                   {"memory_used_mib", c.memoryUsed},
                   {"servers", c.servers},
                   {"survivable_failures", c.survivableFailures},
                   {"spares_promise_met", c.sparesPromiseMet},
                   {"warning", c.warning}});
  return out;
}

ApiResponse Controller::apiPower(const std::string& name, bool on, std::int64_t now) {
  pool::Server& s = declarations_.servers[serverIndex_.at(name)];
  const auto want = on ? pool::PowerState::On : pool::PowerState::Off;
  if (s.power != want) {
    pool::Server copy = s;
    copy.power = want;
    Change c;
    c.putDeclarations.push_back({"Server", name, toJson(copy).dump()});
    if (auto st = commitNow(std::move(c)); !st) return errorResponse(503, "not changed, the state store failed: " + st.error().message);
    s.power = want;
    serverFaults_.erase(name);
    retryServerAt_.erase(name);
    event("info", "", name, on ? "server start requested" : "server stop requested");
    dirty_ = true;
    lastPlanAt_ = now - options_.replanMinIntervalMs;
    // A stop is carried out by convergence on the blade that runs it.
    for (const auto& b : runningOn_[name]) convergeQueue_.insert(b);
  }
  return textResponse(200, serverText(s));
}

void Controller::apiEvents(const ApiRequest& req, std::int64_t now, Reply reply) {
  const std::uint64_t since = parseUnsigned(req.query, "since").value_or(0);
  const std::size_t limit = static_cast<std::size_t>(std::min<std::uint64_t>(parseUnsigned(req.query, "limit").value_or(1000), 10000));
  const std::uint64_t wait = std::min<std::uint64_t>(parseUnsigned(req.query, "wait").value_or(0), 300);
  if (!events_.empty() && since + 1 < events_.front().id) {
    // Older than what is kept in memory: from the store.
    auto ev = store_.events(since, limit);
    if (!ev) return reply(errorResponse(503, ev.error().message));
    Json out = Json::array();
    for (const auto& e : *ev)
      out.push_back({{"id", e.id}, {"time_ms", e.timeMs}, {"level", e.level}, {"blade", e.blade}, {"server", e.server}, {"message", e.message}});
    return reply(jsonResponse(200, out));
  }
  waiters_.push_back({since, limit, now + static_cast<std::int64_t>(wait) * 1000, std::move(reply)});
  wakeWaiters(now, false);
}

// ---------------------------------------------------------------------------------------
// Views

namespace {
const std::vector<std::string> kNoStrings;  // an empty list to refer to, not to copy into
}  // namespace

const std::vector<std::string>& Controller::bladeFields() {
  static const std::vector<std::string> fields{
      "name",   "chassis", "slot",   "cores",      "memory_mib", "hypervisor", "hypervisors",        "state",
      "pool",   "role",    "servers", "online",    "relay",      "driver",     "cpu_model",          "domains",
      "pending_operations", "heartbeat_age_ms", "lease_left_ms", "trusted", "fence_command_running",
      "fencing", "quorum_member", "holding", "last_hold"};
  return fields;
}

std::string Controller::bladeText(const std::string& name, const BladeRuntime& rt, const FieldMask& fields) const {
  // Each field is computed only when asked for: a list of 10,000 blades for a table needs
  // nine of them.
  std::string poolName, role = "unassigned";
  if (auto r = roles_.find(name); r != roles_.end()) {
    poolName = r->second.pool;
    role = pool::toString(r->second.role);
  }
  return objectText([&](JsonOut& w) {
    if (fields.has("name")) put(w, "name", name);
    if (fields.has("chassis")) put(w, "chassis", rt.inventory.chassis);
    if (fields.has("slot")) put(w, "slot", std::int64_t{rt.inventory.slot});
    if (fields.has("cores")) put(w, "cores", std::uint64_t{rt.inventory.cores});
    if (fields.has("memory_mib")) put(w, "memory_mib", std::uint64_t{rt.inventory.memoryMib});
    if (fields.has("hypervisor")) {
      std::string hypervisor = rt.inventory.personality;
      if (hypervisor.empty())
        for (const auto& p : declarations_.pools)
          if (p.name == poolName && p.hypervisor) hypervisor = pool::toString(*p.hypervisor);
      if (hypervisor.empty() && rt.inventory.hypervisors.size() == 1) hypervisor = rt.inventory.hypervisors[0];
      put(w, "hypervisor", hypervisor);
    }
    if (fields.has("hypervisors")) put(w, "hypervisors", rt.inventory.hypervisors);
    if (fields.has("state")) put(w, "state", pool::toString(displayState(name, rt)));
    if (fields.has("pool")) putOrNull(w, "pool", poolName);
    if (fields.has("role")) put(w, "role", role);
    if (fields.has("servers")) {
      auto b = byBlade_.find(name);
      put(w, "servers", b == byBlade_.end() ? kNoStrings : b->second);
    }
    if (fields.has("online")) put(w, "online", rt.registered && rt.health == pool::BladeState::Available);
    if (fields.has("relay")) {
      const std::string via = leases_.route(name);
      putOrNull(w, "relay", via.compare(0, protocol::kRelayIdPrefix.size(), protocol::kRelayIdPrefix) == 0
                                ? std::string_view(via).substr(protocol::kRelayIdPrefix.size())
                                : std::string_view(via));
    }
    if (fields.has("driver")) put(w, "driver", rt.inventory.driver);
    if (fields.has("cpu_model")) put(w, "cpu_model", rt.inventory.cpuModel);
    if (fields.has("domains")) put(w, "domains", std::uint64_t{rt.domains.size()});
    if (fields.has("pending_operations")) put(w, "pending_operations", std::uint64_t{rt.queue.size()});
    if (rt.registered) {
      if (fields.has("heartbeat_age_ms")) put(w, "heartbeat_age_ms", std::int64_t{now_ - lastHeard(name, rt)});
      if (fields.has("lease_left_ms")) {
        std::int64_t leaseUntil = rt.leaseUntil;
        if (auto at = leases_.lastRenewal(name); at && options_.fabricRenewsLeases) leaseUntil = std::max(leaseUntil, *at + options_.leaseMs);
        put(w, "lease_left_ms", std::max<std::int64_t>(0, leaseUntil - now_));
      }
    }
    if (rt.health == pool::BladeState::Fenced && fields.has("trusted")) put(w, "trusted", false);
    if (rt.fenceCommandRunning && fields.has("fence_command_running")) put(w, "fence_command_running", true);
    if (fields.has("fencing")) put(w, "fencing", quorum_.isPowerFenced(name) ? "power" : "lease");
    if (fields.has("quorum_member")) put(w, "quorum_member", quorum_.isMember(name));
    if (rt.holding && fields.has("holding")) put(w, "holding", true);
    if (rt.lastHold && fields.has("last_hold")) {
      w.Key("last_hold");
      w.StartObject();
      put(w, "ms", std::int64_t{rt.lastHold->ms});
      put(w, "servers", std::uint64_t{rt.lastHold->servers});
      put(w, "support", std::uint64_t{rt.lastHold->support});
      put(w, "members", std::uint64_t{rt.lastHold->members});
      put(w, "reported_ms", std::int64_t{rt.lastHoldAtMs});
      w.EndObject();
    }
  });
}

std::string Controller::serverState(const pool::Server& s, std::string* reason) const {
  auto running = runningOn_.find(s.name);
  const std::size_t runCount = running == runningOn_.end() ? 0 : running->second.size();
  auto fault = serverFaults_.find(s.name);
  if (s.power == pool::PowerState::Off) return runCount ? "stopping" : "stopped";
  auto b = placement_.bindings.find(s.name);
  if (b == placement_.bindings.end()) {
    if (auto u = unplaceable_.find(s.name); u != unplaceable_.end()) {
      *reason = u->second;
      return "unplaceable";
    }
    if (fault != serverFaults_.end()) {
      *reason = fault->second;
      return "failed";
    }
    return "pending";
  }
  const bool here = runCount && running->second.count(b->second);
  if (here && runCount == 1) return "running";
  if (runCount && !here) return "moving";
  if (fault != serverFaults_.end()) {
    *reason = fault->second;
    return "failed";
  }
  return "starting";
}

const std::vector<std::string>& Controller::serverFields() {
  static const std::vector<std::string> fields{"name",  "partition", "pool",     "blade",         "state",  "vcpus", "memory_mib",
                                               "uuid",  "macs",      "power",    "priority",      "anti_affinity", "reason", "home"};
  return fields;
}

std::string Controller::serverText(const pool::Server& s, const FieldMask& fields) const {
  std::string reason;
  const bool wantsState = fields.has("state") || fields.has("reason");
  const std::string state = wantsState ? serverState(s, &reason) : std::string();
  const auto id = fields.has("uuid") || fields.has("macs") ? identities_->find(s.name) : std::nullopt;
  return objectText([&](JsonOut& w) {
    if (fields.has("name")) put(w, "name", s.name);
    if (fields.has("partition")) put(w, "partition", s.partition);
    if (fields.has("pool")) put(w, "pool", s.pool);
    if (fields.has("blade")) {
      auto b = placement_.bindings.find(s.name);
      putOrNull(w, "blade", b == placement_.bindings.end() ? std::string_view() : std::string_view(b->second));
    }
    if (fields.has("state")) put(w, "state", state);
    if (fields.has("vcpus")) put(w, "vcpus", std::uint64_t{s.vcpus});
    if (fields.has("memory_mib")) put(w, "memory_mib", std::uint64_t{s.memory});
    if (fields.has("uuid")) putOrNull(w, "uuid", id ? std::string_view(id->uuid) : std::string_view());
    if (fields.has("macs")) put(w, "macs", id ? id->macs : kNoStrings);
    if (fields.has("power")) put(w, "power", pool::toString(s.power));
    if (fields.has("priority")) put(w, "priority", std::int64_t{s.priority});
    if (fields.has("anti_affinity")) put(w, "anti_affinity", s.antiAffinity);
    if (!reason.empty() && fields.has("reason")) put(w, "reason", reason);
    // Where it ran before a failover moved it (failback: auto takes it back there).
    if (auto h = placement_.home.find(s.name); h != placement_.home.end() && fields.has("home")) put(w, "home", h->second);
  });
}

const std::vector<std::string>& Controller::poolFields() {
  static const std::vector<std::string> fields{"name",        "partition",  "hypervisor", "blades",      "spares",
                                               "spare_blades", "spare_pool", "failover",   "borrow_from", "servers"};
  return fields;
}

std::string Controller::poolText(const pool::Pool& p, const FieldMask& fields) const {
  auto bladesOf = [&](bool sparesOnly) {
    std::vector<std::string> out;
    for (const auto& [name, a] : roles_)
      if (a.pool == p.name && (!sparesOnly || a.role == pool::BladeRole::Spare)) out.push_back(name);
    return out;
  };
  return objectText([&](JsonOut& w) {
    if (fields.has("name")) put(w, "name", p.name);
    if (fields.has("partition")) put(w, "partition", p.partition);
    if (fields.has("hypervisor")) putOrNull(w, "hypervisor", p.hypervisor ? pool::toString(*p.hypervisor) : "");
    if (fields.has("blades")) put(w, "blades", bladesOf(false));
    if (fields.has("spares")) put(w, "spares", std::uint64_t{p.spares});
    if (fields.has("spare_blades")) put(w, "spare_blades", bladesOf(true));
    if (fields.has("spare_pool")) put(w, "spare_pool", p.sparePool);
    if (fields.has("failover")) put(w, "failover", pool::toString(p.failover));
    if (fields.has("borrow_from")) put(w, "borrow_from", p.borrowFrom);
    if (fields.has("servers")) {
      w.Key("servers");
      w.StartArray();
      for (const auto& s : declarations_.servers)
        if (s.pool == p.name) w.String(s.name.data(), static_cast<rapidjson::SizeType>(s.name.size()));
      w.EndArray();
    }
  });
}

std::string Controller::metrics() const {
  std::ostringstream o;
  std::map<std::string, std::size_t> bladeStates, serverStates;
  for (const char* s : {"discovered", "available", "active", "spare", "suspect", "failed", "fenced", "maintenance", "retired"}) bladeStates[s] = 0;
  for (const char* s : {"pending", "placing", "starting", "running", "stopping", "stopped", "failed", "unplaceable", "moving"}) serverStates[s] = 0;
  for (const auto& [name, rt] : blades_) ++bladeStates[pool::toString(displayState(name, rt))];
  std::string reason;
  for (const auto& s : declarations_.servers) ++serverStates[serverState(s, &reason)];
  o << "# HELP loom_blades Blades by state.\n# TYPE loom_blades gauge\n";
  for (const auto& [s, n] : bladeStates) o << "loom_blades{state=\"" << s << "\"} " << n << "\n";
  o << "# HELP loom_servers Logical servers by state.\n# TYPE loom_servers gauge\n";
  for (const auto& [s, n] : serverStates) o << "loom_servers{state=\"" << s << "\"} " << n << "\n";
  o << "# HELP loom_plan_seconds Planner run time.\n# TYPE loom_plan_seconds summary\n"
    << "loom_plan_seconds_sum " << planSecondsSum_ << "\nloom_plan_seconds_count " << plans_ << "\n"
    << "# HELP loom_plan_last_seconds Duration of the latest plan.\n# TYPE loom_plan_last_seconds gauge\n"
    << "loom_plan_last_seconds " << planSecondsLast_ << "\n";
  o << "# HELP loom_heartbeats_total Heartbeats received.\n# TYPE loom_heartbeats_total counter\nloom_heartbeats_total " << heartbeats_ + leases_.kept() << "\n";
  o << "# HELP loom_registrations_total Agent registrations.\n# TYPE loom_registrations_total counter\nloom_registrations_total "
    << registrations_ << "\n";
  std::set<std::string> relays;
  std::size_t relayed = 0, direct = 0;
  for (const auto& [name, rt] : blades_) {
    if (!rt.registered) continue;
    std::string via = leases_.route(name);
    if (via.empty()) ++direct;
    else relays.insert(std::move(via)), ++relayed;
  }
  o << "# HELP loom_fabric_relays Fabric relays carrying registered blades.\n# TYPE loom_fabric_relays gauge\nloom_fabric_relays "
    << relays.size() << "\n";
  o << "# HELP loom_fabric_blades Registered blades by how they reach the controller.\n# TYPE loom_fabric_blades gauge\n"
    << "loom_fabric_blades{via=\"direct\"} " << direct << "\nloom_fabric_blades{via=\"relay\"} " << relayed << "\n";
  o << "# HELP loom_fabric_messages_total Fabric messages accepted.\n# TYPE loom_fabric_messages_total counter\n"
    << "loom_fabric_messages_total " << dispatcher_.accepted() << "\n";
  o << "# HELP loom_fabric_rejected_total Fabric frames or connections refused, by reason.\n# TYPE loom_fabric_rejected_total counter\n";
  std::map<std::string, std::uint64_t> rejected = dispatcher_.rejected();
  for (const char* k : {"malformed", "unknown-type", "bad-version", "invalid", "auth"}) rejected.try_emplace(k, 0);
  for (const auto& [k, n] : rejected) o << "loom_fabric_rejected_total{reason=\"" << k << "\"} " << n << "\n";
  o << "# HELP loom_operations_total Plan steps sent, retried, failed.\n# TYPE loom_operations_total counter\n"
    << "loom_operations_total{result=\"sent\"} " << opsSent_ << "\nloom_operations_total{result=\"retried\"} " << opsRetried_
    << "\nloom_operations_total{result=\"failed\"} " << opsFailed_ << "\n";
  o << "# HELP loom_operations_pending Operations queued or in flight.\n# TYPE loom_operations_pending gauge\nloom_operations_pending "
    << operations_.size() << "\n";
  o << "# HELP loom_fences_total Blades fenced, by what confirmed it.\n# TYPE loom_fences_total counter\n"
    << "loom_fences_total{by=\"lease\"} " << fencesByLease_ << "\nloom_fences_total{by=\"command\"} " << fencesByCommand_ << "\n";
  o << "# HELP loom_fence_command_failures_total Fence commands that did not confirm power-off.\n"
       "# TYPE loom_fence_command_failures_total counter\nloom_fence_command_failures_total "
    << fenceCommandFailures_ << "\n";
  o << "# HELP loom_failovers_total Servers placed elsewhere after their blade was fenced.\n"
       "# TYPE loom_failovers_total counter\nloom_failovers_total "
    << failovers_ << "\n";
  o << "# HELP loom_fencing_suspended 1 while the storm guard holds all fencing.\n# TYPE loom_fencing_suspended gauge\n"
       "loom_fencing_suspended "
    << (stormActive_ ? 1 : 0) << "\n";
  o << "# HELP loom_fencing_storms_total Times the storm guard went up.\n# TYPE loom_fencing_storms_total counter\n"
       "loom_fencing_storms_total "
    << stormsRaised_ << "\n";
  {
    const auto q = leases_.countQuorum(now_);
    const auto* current = quorum_.sets().current();
    o << "# HELP loom_quorum_members Blades in the current quorum set (docs/FENCING.md).\n# TYPE loom_quorum_members gauge\n"
      << "loom_quorum_members " << q.members << "\n"
      << "# HELP loom_quorum_counted Members whose promises loomd holds now (committed, shielding no one).\n"
         "# TYPE loom_quorum_counted gauge\nloom_quorum_counted "
      << q.counted << "\n"
      << "# HELP loom_quorum_held 1 while loomd counts a quorum of every retained version (it may fence by lease).\n"
         "# TYPE loom_quorum_held gauge\nloom_quorum_held "
      << (q.held ? 1 : 0) << "\n"
      << "# HELP loom_quorum_version The current outage policy version.\n# TYPE loom_quorum_version gauge\nloom_quorum_version "
      << (current ? current->version : 0) << "\n"
      << "# HELP loom_quorum_versions_retained Policy versions a blade may still hold.\n"
         "# TYPE loom_quorum_versions_retained gauge\nloom_quorum_versions_retained "
      << quorum_.sets().retained().size() << "\n"
      << "# HELP loom_fences_withheld_total Silent blades not fenced by their lease for want of a quorum.\n"
         "# TYPE loom_fences_withheld_total counter\nloom_fences_withheld_total "
      << fencesWithheld_ << "\n";
  }
  o << "# HELP loom_applies_total Declarations applied.\n# TYPE loom_applies_total counter\nloom_applies_total " << applies_ << "\n";
  return o.str();
}

}  // namespace loom::controller
