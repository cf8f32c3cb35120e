#include "controller/api/Endpoints.h"

#include <algorithm>
#include <cctype>
#include <optional>

#include "config/DeclarationWriter.h"
#include "config/ValueSyntax.h"
#include "controller/ModelJson.h"

namespace loom::controller::api {
namespace {

// A change the store did not take. With Errc::Timeout it may have landed all the same
// (never in part): the client is told so, and this term ends (controller/Journal.h).
// An apply's or a delete's answer: `head`'s fields, then "plan", the plan's text
// (planText; null when it is not persisted yet) spliced in rather than parsed into the
// tree (at 10,000 servers the plan is 20,000 steps), then "plan_seconds" when given: the
// keys in the order nlohmann writes them (every key of `head` sorts before "plan").
ApiResponse withPlan(const Json& head, const std::string& plan, std::optional<double> seconds = std::nullopt) {
  std::string body = head.dump(-1, ' ', false, Json::error_handler_t::replace);  // see api::json
  body.pop_back();                                                               // the closing brace
  body += ",\"plan\":";
  body += plan.empty() ? "null" : plan;
  if (seconds) body += ",\"plan_seconds\":" + Json(*seconds).dump();
  body += '}';
  return text(200, std::move(body));
}

ApiResponse notStored(const std::string& what, const Error& e) {
  if (e.code == Errc::Timeout)
    return json(503,
                Json{{"error", "perhaps " + what + ": the state store did not answer in time and may have applied " +
                                   "the change (" + e.message +
                                   "); this controller hands over and the next leader loads the store: read it " +
                                   "back before trying again"},
                     {"outcome", "unknown"}});
  return error(503, "not " + what + ", the state store failed: " + e.message);
}

// The list request's `?fields=`, checked against the object's fields.
Result<FieldMask> listFields(const ApiRequest& req, const std::vector<std::string>& known) {
  auto it = req.query.find("fields");
  return it == req.query.end() ? Result<FieldMask>(FieldMask{}) : FieldMask::parse(it->second, known);
}

Json labels(const std::vector<ObjectName>& objects) {
  Json out = Json::array();
  for (const auto& [kind, name] : objects) out.push_back({{"kind", kind}, {"name", name}});
  return out;
}

// "Server/web-1,Pool/web" for the audit log, at most 20 named.
std::string targetsText(const std::vector<ObjectName>& a, const std::vector<ObjectName>& b) {
  std::string out;
  std::size_t n = 0;
  for (const auto* list : {&a, &b})
    for (const auto& [kind, name] : *list) {
      if (n++ == 20) continue;
      if (!out.empty()) out += ",";
      out += kind + "/" + name;
    }
  if (n > 20) out += " and " + std::to_string(n - 20) + " more";
  return out;
}

Json diagnosticsJson(const std::vector<std::string>& diagnostics) {
  Json out = Json::array();
  for (const auto& d : diagnostics) out.push_back(d);
  return out;
}

std::string sourceOf(const ApiRequest& req) {
  auto it = req.query.find("source");
  return it == req.query.end() ? std::string("request") : it->second;
}

// The pools whose `spares` promise the placement would not keep (pool::capacity), those
// the caller sees: "pool web: ..." each.
Json sparesWarnings(const std::vector<pool::PoolCapacity>& capacity, const pool::Declarations& d,
                    const ApiCaller& caller) {
  Json out = Json::array();
  for (const auto& c : capacity) {
    if (c.sparesPromiseMet) continue;
    auto p = std::find_if(d.pools.begin(), d.pools.end(), [&](const pool::Pool& x) { return x.name == c.pool; });
    if (p == d.pools.end() || !caller.sees(p->partition)) continue;
    // pool::capacity's warning names the pool and says why ("pool web: spares: 2 promised
    // but it survives 1 blade failure ...").
    out.push_back(!c.warning.empty() ? c.warning
                                     : "pool " + c.pool + ": spares promise not met (" + std::to_string(c.spares) +
                                           " of " + std::to_string(c.sparesDeclared) + " spares)");
  }
  return out;
}

// What an apply or a delete event says of where it came from: the files (`files`, as
// loomctl sends them; else the source name) and whose token, bounded and printable.
std::string changeOrigin(const ApiRequest& req, const std::string& source) {
  auto it = req.query.find("files");
  std::string files = it == req.query.end() || it->second.empty() ? source : it->second;
  std::erase_if(files,
                [](char c) { return static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f; });
  if (files.size() > 200) files = files.substr(0, 197) + "...";
  if (req.caller.tokenId.empty()) return files;
  return files + " (token " + req.caller.tokenId + ", " + req.caller.role + ")";
}

bool dryRun(const ApiRequest& req) { return flagParam(req.query, "dry_run") || flagParam(req.query, "dry-run"); }

bool namesKind(const std::vector<ObjectName>& objects, const char* kind) {
  return std::any_of(objects.begin(), objects.end(), [&](const auto& o) { return o.first == kind; });
}

// Who confirmed, as the request says it (loomctl sends USER@HOST; tokens will say it
// better, DESIGN.md section 8), bounded.
std::string operatorName(const Json& body) {
  std::string by = body.contains("by") && body["by"].is_string() ? body["by"].get<std::string>() : "";
  // ASCII only: a name cut in the middle of a UTF-8 sequence would make the event bad JSON.
  std::erase_if(by,
                [](char c) { return static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f; });
  if (by.size() > 64) by.resize(64);
  return by.empty() ? "an operator through the API" : "by operator '" + by + "' through the API";
}

}  // namespace

void Endpoints::install(ApiRouter& r) {
  using P = ApiRouter::Params;
  using access::Access;
  using access::ObjectKind;
  using access::RouteAccess;
  const RouteAccess read{Access::Read}, bladeRead{Access::Read, ObjectKind::Blade},
      serverRead{Access::Read, ObjectKind::Server}, poolRead{Access::Read, ObjectKind::Pool};
  r.add("POST", "/v1/apply", RouteAccess{Access::Change, ObjectKind::ApplyBody},
        ApiRouter::Simple([this](const ApiRequest& q, const P&, std::int64_t now) { return apply(q, now); }));
  r.add("POST", "/v1/delete", RouteAccess{Access::Change, ObjectKind::DeleteBody},
        ApiRouter::Simple([this](const ApiRequest& q, const P&, std::int64_t now) { return remove(q, now); }));
  r.add("GET", "/v1/capacity", read,
        ApiRouter::Simple([this](const ApiRequest& q, const P&, std::int64_t) { return capacity(q.caller); }));
  r.add("GET", "/v1/partitions", read,
        ApiRouter::Simple([this](const ApiRequest& q, const P&, std::int64_t) { return partitions(q.caller); }));
  r.add("GET", "/v1/declarations", read, ApiRouter::Simple([this](const ApiRequest& q, const P&, std::int64_t) {
          return declarationsAnswer(desired_.declarations(), q);
        }));
  r.add("GET", "/v1/events", read,
        ApiRouter::Handler(
            [this](const ApiRequest& q, const P&, std::int64_t now, const Reply& reply) { events(q, now, reply); }));
  for (const char* method : {"GET", "POST"})
    r.add(method, "/v1/health", RouteAccess{Access::Open},
          ApiRouter::Simple([](const ApiRequest&, const P&, std::int64_t) {
            return json(200, Json{{"ok", true}});
          }));

  r.add("GET", "/v1/blades", read, ApiRouter::Simple([this](const ApiRequest& q, const P&, std::int64_t now) {
          auto fields = listFields(q, Views::bladeFields());
          if (!fields) return error(400, fields.error().message);
          return text(200,
                      views_.blades([&](const std::string& name) { return seesBlade(q.caller, name); }, now, *fields));
        }));
  r.add("GET", "/v1/blades/:name", bladeRead,
        ApiRouter::Simple([this](const ApiRequest&, const P& p, std::int64_t now) {
          const KnownBlade* k = registry_.find(p[0]);
          return k ? text(200, views_.blade(p[0], *k, now)) : error(404, "unknown blade '" + p[0] + "'");
        }));
  for (const char* verb : {"drain", "undrain", "retire"})
    r.add("POST", std::string("/v1/blades/:name/") + verb,
          RouteAccess{std::string(verb) == "retire" ? Access::Admin : Access::OperateBlade, ObjectKind::Blade},
          ApiRouter::Simple([this, verb = std::string(verb)](const ApiRequest&, const P& p, std::int64_t now) {
            if (!registry_.find(p[0])) return error(404, "unknown blade '" + p[0] + "'");
            return verb == "retire" ? retire(p[0], now) : drain(p[0], verb == "drain", now);
          }));
  r.add("POST", "/v1/blades/:name/fence", RouteAccess{Access::Admin, ObjectKind::Blade},
        ApiRouter::Simple([this](const ApiRequest& q, const P& p, std::int64_t now) {
          if (!registry_.find(p[0])) return error(404, "unknown blade '" + p[0] + "'");
          return fence(p[0], q, now);
        }));

  r.add("GET", "/v1/servers", read, ApiRouter::Simple([this](const ApiRequest& q, const P&, std::int64_t) {
          auto fields = listFields(q, Views::serverFields());
          if (!fields) return error(400, fields.error().message);
          std::vector<std::string> out;
          out.reserve(desired_.declarations().servers.size());
          for (const auto& s : desired_.declarations().servers)
            if (q.caller.sees(s.partition)) out.push_back(views_.server(s, *fields));
          return text(200, listText(out));
        }));
  r.add("GET", "/v1/servers/:name", serverRead, ApiRouter::Simple([this](const ApiRequest&, const P& p, std::int64_t) {
          const pool::Server* s = desired_.findServer(p[0]);
          return s ? text(200, views_.server(*s)) : error(404, "unknown server '" + p[0] + "'");
        }));
  for (const char* verb : {"start", "stop", "move", "reset"})
    r.add("POST", std::string("/v1/servers/:name/") + verb, RouteAccess{Access::OperateServer, ObjectKind::Server},
          ApiRouter::Simple([this, verb = std::string(verb)](const ApiRequest& q, const P& p, std::int64_t now) {
            if (!desired_.findServer(p[0])) return error(404, "unknown server '" + p[0] + "'");
            if (verb == "move") return move(p[0], q, now);
            if (verb == "reset") return reset(p[0], q, now);
            return power(p[0], verb == "start", now);
          }));

  r.add("GET", "/v1/pools", read, ApiRouter::Simple([this](const ApiRequest& q, const P&, std::int64_t) {
          auto fields = listFields(q, Views::poolFields());
          if (!fields) return error(400, fields.error().message);
          std::vector<std::string> out;
          for (const auto& p : desired_.declarations().pools)
            if (q.caller.sees(p.partition)) out.push_back(views_.pool(p, *fields));
          return text(200, listText(out));
        }));
  r.add("GET", "/v1/pools/:name", poolRead, ApiRouter::Simple([this](const ApiRequest&, const P& p, std::int64_t) {
          for (const auto& pool : desired_.declarations().pools)
            if (pool.name == p[0]) return text(200, views_.pool(pool));
          return error(404, "unknown pool '" + p[0] + "'");
        }));
}

bool Endpoints::sees(const ApiCaller& caller, const EventRecord& e) const {
  if (caller.partition.empty()) return true;
  if (!e.server.empty()) {
    const auto part = scope_.partitionOf(access::ObjectKind::Server, e.server);
    return part && *part == caller.partition;
  }
  return !e.blade.empty() && scope_.bladeServes(e.blade, caller.partition);
}

ApiResponse Endpoints::apply(const ApiRequest& req, std::int64_t now) {
  ApplyDraft draft = desired_.draftApply(req.body, sourceOf(req));
  if (!draft.diagnostics.empty())
    return json(400, Json{{"error", "invalid declarations"}, {"diagnostics", diagnosticsJson(draft.diagnostics)}});
  const Json created = labels(draft.created), changed = labels(draft.changed);
  if (!dryRun(req)) audit_.noteTargets(targetsText(draft.created, draft.changed));
  Json diff{{"created", created}, {"changed", changed}, {"deleted", Json::array()}, {"unchanged", draft.unchanged}};
  // Field by field: {"Server/big": [{"field":"memory","from":"28GiB","to":"20GiB","effect":"restart"}]};
  // the running servers whose definition changes restart (docs/SERVERS.md).
  Json fields = Json::object();
  std::map<std::string, std::string> reasons;
  for (const auto& [server, changes] : draft.serverChanges) {
    Json list = Json::array();
    for (const auto& c : changes)
      list.push_back({{"field", c.field}, {"from", c.from}, {"to", c.to}, {"effect", pool::toString(c.effect)}});
    fields["Server/" + server] = std::move(list);
    reasons[server] = pool::restartReason(changes);
  }
  const auto restarts = replanner_.restartsFor(reasons);
  diff["fields"] = std::move(fields);
  diff["restarts"] = restarts;
  if (dryRun(req)) {
    double secs = 0;
    pool::Plan p = replanner_.preview(draft.declarations, now, &secs, &restarts);
    const Json warnings = sparesWarnings(pool::capacity(draft.declarations, replanner_.inventory(), p.next),
                                         draft.declarations, req.caller);
    return withPlan(Json{{"dry_run", true},
                         {"diff", diff},
                         {"created", created},
                         {"changed", changed},
                         {"deleted", Json::array()},
                         {"capacity_warnings", warnings}},
                    planText(p), secs);
  }
  replanner_.restartChange(restarts, draft.change);
  if (auto s = journal_.commitNow(std::move(draft.change)); !s) return notStored("applied", s.error());
  replanner_.restart(restarts);
  for (const auto& [server, why] : restarts) events_.add("info", "", server, "restart pending: " + why);
  ++applies_;
  const std::string source = draft.source;
  const bool blades = namesKind(draft.created, "Blade") || namesKind(draft.changed, "Blade");
  desired_.adopt(std::move(draft));
  events_.add("info", "", "",
              "applied " + changeOrigin(req, source) + ": " + std::to_string(created.size()) + " created, " +
                  std::to_string(changed.size()) + " changed");
  if (blades) planning_.bladesDeclared(now);
  const std::string plan = planning_.planNow(now);  // empty if the placement could not be persisted (retried)
  // No capacity_warnings here: pool::capacity over the whole fabric is a third of a
  // 10,000-server apply's CPU on the core thread (bench_apply 0.28 -> 0.45 s); the dry run
  // answers them, and loomctl asks GET /v1/capacity after an apply from a script.
  return withPlan(
      Json{{"dry_run", false}, {"diff", diff}, {"created", created}, {"changed", changed}, {"deleted", Json::array()}},
      plan, replanner_.counters().secondsLast);
}

ApiResponse Endpoints::remove(const ApiRequest& req, std::int64_t now) {
  DeleteDraft draft = desired_.draftDelete(req.body, sourceOf(req));
  if (draft.status != 200) {
    if (draft.diagnostics.empty()) return error(draft.status, draft.error);
    return json(draft.status, Json{{"error", draft.error}, {"diagnostics", diagnosticsJson(draft.diagnostics)}});
  }
  const Json deleted = labels(draft.objects);
  if (dryRun(req)) {
    pool::Plan p = replanner_.preview(draft.remaining, now);
    return withPlan(Json{{"dry_run", true}, {"deleted", deleted}}, planText(p));
  }
  audit_.noteTargets(targetsText(draft.objects, {}));
  replanner_.forgetChange(draft.servers, draft.change);
  if (auto s = journal_.commitNow(std::move(draft.change)); !s) return notStored("deleted", s.error());
  const std::vector<std::string> servers = draft.servers;
  const std::string source = draft.source;
  const std::size_t count = draft.objects.size();
  const bool blades = namesKind(draft.objects, "Blade");
  desired_.adopt(std::move(draft));
  replanner_.forget(servers);
  // Where it runs now, it stops and its definition goes (the plan, from its tombstone).
  for (const auto& name : servers) reconciler_.forgive(name);
  ++applies_;
  events_.add("info", "", "", "deleted " + changeOrigin(req, source) + ": " + std::to_string(count) + " objects");
  if (blades) planning_.bladesDeclared(now);
  return withPlan(Json{{"dry_run", false}, {"deleted", deleted}}, planning_.planNow(now));
}

ApiResponse Endpoints::drain(const std::string& blade, bool drain, std::int64_t now) {
  const KnownBlade& k = *registry_.find(blade);
  if (k.adminState == "retired") return error(409, "blade '" + blade + "' is retired");
  const std::string next = drain ? "maintenance" : "";
  if (k.adminState != next) {
    Change c;
    c.putBlades.push_back(registry_.adminRecord(blade, next));
    if (auto s = journal_.commitNow(std::move(c)); !s) return notStored("changed", s.error());
    registry_.setAdminState(blade, next);
    events_.add("info", blade, "", drain ? "blade drained (maintenance)" : "blade undrained");
    planning_.bladeChanged(blade, now);
  }
  return text(200, views_.blade(blade, k, now));
}

ApiResponse Endpoints::retire(const std::string& blade, std::int64_t now) {
  const KnownBlade& k = *registry_.find(blade);
  if (k.adminState == "retired") return text(200, views_.blade(blade, k, now));  // idempotent
  std::size_t held = replanner_.serversOn(blade).size();
  // A server still running here while bound elsewhere (a move in progress) counts too.
  for (const auto& [name, d] : k.domains) {
    const std::string* bound = replanner_.bladeOf(name);
    if (d.state == pool::DomainState::Running && desired_.findServer(name) && bound && *bound != blade) ++held;
  }
  if (held)
    return error(409, "blade " + blade + " still holds " + std::to_string(held) + (held == 1 ? " server" : " servers") +
                          "; drain it first");
  Change c;
  c.putBlades.push_back(registry_.adminRecord(blade, "retired"));
  if (auto s = journal_.commitNow(std::move(c)); !s) return notStored("retired", s.error());
  registry_.setAdminState(blade, "retired");
  detector_.retire(blade, now);
  events_.add("info", blade, "", "blade retired: it takes no servers again");
  planning_.bladeChanged(blade, now);
  return text(200, views_.blade(blade, k, now));
}

ApiResponse Endpoints::fence(const std::string& blade, const ApiRequest& req, std::int64_t now) {
  Json body = Json::parse(req.body, nullptr, false);
  if (!body.is_object() || !body.contains("confirm_powered_off") || body["confirm_powered_off"] != true)
    return error(400,
                 "fence wants a JSON body {\"confirm_powered_off\": true}: your confirmation that blade " + blade +
                     " is powered off (its BMC cannot say so). loomd then treats it as fenced and restarts its servers "
                     "elsewhere; if it is in fact still running, they run twice");
  const KnownBlade& k = *registry_.find(blade);
  switch (detector_.confirmPoweredOff(blade, operatorName(body), now)) {
    case FailureDetector::Confirmation::Heard:
      return error(409, "blade " + blade + " is heard (last heartbeat " +
                            std::to_string(now - detector_.lastHeard(blade)) +
                            " ms ago): refusing to fence a live blade by hand");
    case FailureDetector::Confirmation::Retired:
      return error(409, "blade " + blade + " is retired");
    case FailureDetector::Confirmation::AlreadyFenced:  // idempotent
    case FailureDetector::Confirmation::Fenced:         // its health change replans
      break;
  }
  return text(200, views_.blade(blade, k, now));
}

ApiResponse Endpoints::move(const std::string& name, const ApiRequest& req, std::int64_t now) {
  Json body = Json::parse(req.body, nullptr, false);
  if (!body.is_object() || !body.contains("to") || !body["to"].is_string() || body["to"].get<std::string>().empty())
    return error(400, "move wants a JSON body {\"to\": \"BLADE\"}");
  const std::string to = body["to"].get<std::string>();
  if (!registry_.find(to) || !seesBlade(req.caller, to)) return error(404, "unknown blade '" + to + "'");
  const pool::Server& s = *desired_.findServer(name);
  if (s.power == pool::PowerState::Off) return error(409, "server '" + name + "' is powered off; start it first");
  const std::string* bound = replanner_.bladeOf(name);
  if (bound && *bound == to) return text(200, views_.server(s));  // already there
  if (auto why = replanner_.checkMove(name, to)) return error(409, *why);
  const std::string from = bound ? *bound : std::string();
  if (auto st = journal_.commitNow(replanner_.moveChange(name, to)); !st) return notStored("moved", st.error());
  // The binding is durable before anyone acts on it. The plan then stops the server on
  // `from` and starts it on `to` only once no other blade reports it running (invariant 1).
  replanner_.move(name, to);
  events_.add("info", to, name,
              "server moved by the operator" + (from.empty() ? std::string() : " from " + from) + " to " + to);
  planning_.serverChanged(name, now);
  return text(200, views_.server(s));
}

ApiResponse Endpoints::power(const std::string& name, bool on, std::int64_t now) {
  if (auto record = desired_.powerRecord(name, on)) {
    Change c;
    c.putDeclarations.push_back(std::move(*record));
    if (auto st = journal_.commitNow(std::move(c)); !st) return notStored("changed", st.error());
    desired_.setPower(name, on);
    events_.add("info", "", name, on ? "server start requested" : "server stop requested");
    planning_.serverChanged(name, now);
  }
  return text(200, views_.server(*desired_.findServer(name)));
}

ApiResponse Endpoints::reset(const std::string& name, const ApiRequest& req, std::int64_t now) {
  const pool::Server& s = *desired_.findServer(name);
  if (s.power == pool::PowerState::Off)
    return error(409,
                 "server '" + name + "' is powered off: nothing runs to reset; start it with loomctl server start");
  const std::string* bound = replanner_.bladeOf(name);
  if (!bound) return error(409, "server '" + name + "' is not placed on any blade: nothing runs to reset");
  // A reset is a restart the operator asks for: stop, define afresh, start, on the same
  // blade (docs/SERVERS.md). It joins a restart already pending rather than adding one.
  const std::string who = req.caller.tokenId.empty()
                              ? std::string("reset by the operator")
                              : "reset by token " + req.caller.tokenId + " (" + req.caller.role + ")";
  if (const std::string* pending = replanner_.restartPending(name); pending && pending->find(who) != std::string::npos)
    return text(200, views_.server(s));  // asked for already: one reset, not two
  const auto restarts = replanner_.restartsFor({{name, who}});
  Change c;
  replanner_.restartChange(restarts, c);
  if (auto st = journal_.commitNow(std::move(c)); !st) return notStored("reset", st.error());
  replanner_.restart(restarts);
  events_.add("info", *bound, name, "server " + who + ": it stops, is defined afresh and starts on " + *bound);
  planning_.serverChanged(name, now);
  return text(200, views_.server(s));
}

void Endpoints::events(const ApiRequest& req, std::int64_t now, const Reply& reply) {
  std::uint64_t since = unsignedParam(req.query, "since").value_or(0);
  std::size_t limit =
      static_cast<std::size_t>(std::min<std::uint64_t>(unsignedParam(req.query, "limit").value_or(1000), 10000));
  if (const auto tail = unsignedParam(req.query, "tail")) {
    // The latest `tail` events (then `since` is where a follow goes on from).
    limit = static_cast<std::size_t>(std::min<std::uint64_t>(*tail, 10000));
    since = events_.lastId() > limit ? events_.lastId() - limit : 0;
  }
  const std::uint64_t wait = std::min<std::uint64_t>(unsignedParam(req.query, "wait").value_or(0), 300);
  auto answer = [reply](const std::vector<EventRecord>& events) { reply(json(200, eventsJson(events))); };
  EventLog::Filter filter;
  if (!req.caller.partition.empty())
    filter = [this, caller = req.caller](const EventRecord& e) { return sees(caller, e); };
  if (auto s = events_.wait(since, limit, now + static_cast<std::int64_t>(wait) * 1000, now, answer, filter); !s)
    reply(error(503, s.error().message));
}

ApiResponse Endpoints::capacity(const ApiCaller& caller) const {
  Json out = Json::array();
  for (const auto& c : replanner_.capacity()) {
    if (!caller.partition.empty()) {
      const auto part = scope_.partitionOf(access::ObjectKind::Pool, c.pool);
      if (!part || *part != caller.partition) continue;
    }
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
  }
  return json(200, out);
}

ApiResponse Endpoints::partitions(const ApiCaller& caller) const {
  return json(200, partitionsJson(desired_.declarations(), caller));
}

Json partitionsJson(const pool::Declarations& d, const ApiCaller& caller) {
  Json out = Json::array();
  for (const auto& part : d.partitions) {
    if (!caller.sees(part.name)) continue;
    Json pools = Json::array(), networks = Json::array();
    std::size_t servers = 0;
    for (const auto& p : d.pools)
      if (p.partition == part.name) pools.push_back(p.name);
    for (const auto& n : d.networks)
      if (n.partition == part.name) networks.push_back(n.name);
    for (const auto& s : d.servers) servers += s.partition == part.name;
    out.push_back({{"name", part.name}, {"pools", pools}, {"networks", networks}, {"servers", servers}});
  }
  return out;
}

// What loomctl's tables of networks and identity pools show, beside the document.
Json specOf(const pool::Declarations& d, const std::string& kind, const std::string& name) {
  Json spec = Json::object();
  if (kind == "Network") {
    for (const auto& n : d.networks)
      if (n.name == name) spec = {{"partition", n.partition}, {"vlan", n.vlan ? Json(*n.vlan) : Json()}};
  } else if (kind == "IdentityPool") {
    for (const auto& i : d.identityPools) {
      if (i.name != name) continue;
      Json macs = Json::array(), uuids = Json::array(), pools = Json::array();
      for (const auto& m : i.macs) macs.push_back(macToString(m.first) + "-" + macToString(m.last));
      for (const auto& u : i.uuids) uuids.push_back(config::formatUuidRange(u));
      // A pool naming none uses "default", or the only identity pool there is.
      const bool implicit = name == "default" || d.identityPools.size() == 1;
      for (const auto& p : d.pools)
        if (p.identityPool == name || (p.identityPool.empty() && implicit && !p.sparePool)) pools.push_back(p.name);
      spec = {{"macs", macs}, {"uuids", uuids}, {"pools", pools}};
    }
  }
  return spec;
}

ApiResponse declarationsAnswer(const pool::Declarations& d, const ApiRequest& req) {
  static const std::vector<std::string> kKinds{"Partition", "Network", "IdentityPool", "Pool", "Server", "Blade"};
  const auto kindIt = req.query.find("kind");
  const auto nameIt = req.query.find("name");
  const std::string kind = kindIt == req.query.end() ? "" : kindIt->second;
  std::string name = nameIt == req.query.end() ? "" : nameIt->second;
  if (!kind.empty() && std::find(kKinds.begin(), kKinds.end(), kind) == kKinds.end())
    return error(400, "unknown kind '" + kind + "' (known: Partition, Network, IdentityPool, Pool, Server, Blade)");
  if (!name.empty() && kind.empty()) return error(400, "name needs a kind");
  if (kind == "Server")  // a replica is declared by its template
    for (const auto& s : d.servers)
      if (s.name == name && !s.template_.empty()) name = s.template_;
  Json out = Json::array();
  for (auto& w : config::writeDeclarations(d)) {
    if ((!kind.empty() && w.kind != kind) || (!name.empty() && w.name != name)) continue;
    // A partition's token sees its partition and what is in it; identity pools, blades
    // and shared spare pools are the fabric's.
    if (!req.caller.partition.empty() && w.partition != req.caller.partition) continue;
    Json doc{{"kind", w.kind}, {"name", w.name}, {"partition", w.partition}};
    if (Json spec = specOf(d, w.kind, w.name); !spec.empty()) doc["spec"] = std::move(spec);
    doc["yaml"] = std::move(w.yaml);
    out.push_back(std::move(doc));
  }
  if (!name.empty() && out.empty()) {
    const std::string noun = kind == "IdentityPool" ? "identity pool"
                             : kind == "Blade"
                                 ? "blade declaration"
                                 : [&] {
                                     std::string n = kind;
                                     n[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(n[0])));
                                     return n;
                                   }();
    return error(404, "unknown " + noun + " '" + name + "'");
  }
  return json(200, out);
}

Json eventsJson(const std::vector<EventRecord>& events) {
  Json out = Json::array();
  for (const auto& e : events)
    out.push_back({{"id", e.id},
                   {"time_ms", e.timeMs},
                   {"level", e.level},
                   {"blade", e.blade},
                   {"server", e.server},
                   {"message", e.message}});
  return out;
}

}  // namespace loom::controller::api
