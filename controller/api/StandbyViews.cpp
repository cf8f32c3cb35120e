#include "controller/api/StandbyViews.h"

#include <spdlog/spdlog.h>

#include "controller/ModelJson.h"
#include "controller/Replanner.h"
#include "controller/api/Endpoints.h"
#include "controller/api/JsonText.h"
#include "controller/api/Views.h"

namespace loom::controller::api {
namespace {

using namespace jsontext;

std::vector<std::string> splitPath(const std::string& path) {
  std::vector<std::string> parts;
  std::size_t from = 0;
  while (from < path.size()) {
    const std::size_t slash = std::min(path.find('/', from), path.size());
    if (slash > from) parts.push_back(path.substr(from, slash - from));
    from = slash + 1;
  }
  return parts;
}

Result<FieldMask> listFields(const ApiRequest& req, const std::vector<std::string>& known) {
  auto it = req.query.find("fields");
  return it == req.query.end() ? Result<FieldMask>(FieldMask{}) : FieldMask::parse(it->second, known);
}

}  // namespace

StandbyViews::StandbyViews(StoredState st, WallClock wallClock)
    : scope_(desired_, roles_, placement_.borrowed,
             [this](const std::string& blade) { return blades_.contains(blade); }),
      gate_(tokens_, scope_, std::move(wallClock)) {
  tokens_.restore(std::move(st.tokens));
  std::vector<std::string> problems;
  if (auto s = desired_.restore(std::move(st.declarations), st.identities, &problems); !s)
    spdlog::error("standby views: {}", s.error().message);
  for (const auto& p : problems) spdlog::debug("standby views: {}", p);
  placement_.bindings = std::move(st.bindings);
  placement_.home = std::move(st.placementMaps["home"]);
  for (const auto& [server, _] : st.placementMaps["held"]) placement_.held.insert(server);
  for (const auto& [server, _] : st.placementMaps["displaced"]) placement_.displaced.insert(server);
  placement_.restart = std::move(st.placementMaps["restart"]);
  placement_.borrowed = std::move(st.borrowed);
  for (const auto& [s, b] : placement_.bindings) byBlade_[b].push_back(s);

  pool::Inventory inventory;
  inventory.blades.reserve(st.blades.size());
  for (auto& r : st.blades) {
    Blade b;
    if (auto inv = inventoryFrom(r.inventory)) b.inventory = std::move(*inv);
    b.adminState = r.adminState;
    pool::Blade pb = plannerBlade(r.name, b.inventory);
    // Health is the leader's: membership is reckoned with every blade healthy.
    pb.state = r.adminState == "retired"       ? pool::BladeState::Retired
               : r.adminState == "maintenance" ? pool::BladeState::Maintenance
                                               : pool::BladeState::Available;
    pb.reachable = false;  // no step is planned to reach it from here
    inventory.blades.push_back(std::move(pb));
    blades_.emplace(r.name, std::move(b));
  }
  // The planner's membership: which pool each blade is in and in which role. Its steps
  // are not for a standby to take.
  const pool::Plan plan = pool::plan(desired_.declarations(), inventory, placement_, 0);
  for (const auto& a : plan.blades) roles_[a.blade] = a;

  // The leader's read routes (Endpoints::install), declared alike.
  using access::Access;
  using access::ObjectKind;
  using access::RouteAccess;
  using P = ApiRouter::Params;
  auto view = [this](const ApiRequest& q, const P&, std::int64_t) { return viewAnswer(q); };
  router_.add("GET", "/v1/partitions", RouteAccess{Access::Read}, ApiRouter::Simple(view));
  router_.add("GET", "/v1/declarations", RouteAccess{Access::Read}, ApiRouter::Simple(view));
  router_.add("GET", "/v1/blades", RouteAccess{Access::Read}, ApiRouter::Simple(view));
  router_.add("GET", "/v1/blades/:name", RouteAccess{Access::Read, ObjectKind::Blade}, ApiRouter::Simple(view));
  router_.add("GET", "/v1/servers", RouteAccess{Access::Read}, ApiRouter::Simple(view));
  router_.add("GET", "/v1/servers/:name", RouteAccess{Access::Read, ObjectKind::Server}, ApiRouter::Simple(view));
  router_.add("GET", "/v1/pools", RouteAccess{Access::Read}, ApiRouter::Simple(view));
  router_.add("GET", "/v1/pools/:name", RouteAccess{Access::Read, ObjectKind::Pool}, ApiRouter::Simple(view));
  router_.setGate(&gate_);
}

ApiResponse StandbyViews::answer(const ApiRequest& req) const {
  ApiResponse out{404, "application/json", ""};
  router_.route(req, 0, [&out](ApiResponse r) { out = std::move(r); });
  return out;
}

access::Verdict StandbyViews::check(const ApiRequest& req, access::Access access) const {
  return gate_.check(req, access::RouteAccess{access}, {});
}

bool StandbyViews::sees(const ApiCaller& caller, const EventRecord& e) const {
  if (caller.partition.empty()) return true;
  if (!e.server.empty()) {
    const auto part = scope_.partitionOf(access::ObjectKind::Server, e.server);
    return part && *part == caller.partition;
  }
  return !e.blade.empty() && scope_.bladeServes(e.blade, caller.partition);
}

bool StandbyViews::serves(const ApiRequest& req) {
  if (req.method != "GET") return false;
  const auto parts = splitPath(req.path);
  if (parts.size() < 2 || parts.size() > 3 || parts[0] != "v1") return false;
  const std::string& noun = parts[1];
  if (noun == "blades" || noun == "servers" || noun == "pools") return true;
  return (noun == "partitions" || noun == "declarations") && parts.size() == 2;
}

ApiResponse StandbyViews::viewAnswer(const ApiRequest& req) const {
  const auto parts = splitPath(req.path);
  const std::string& noun = parts.at(1);
  const std::string* name = parts.size() == 3 ? &parts[2] : nullptr;
  const ApiCaller& caller = req.caller;
  if (noun == "partitions") return json(200, partitionsJson(desired_.declarations(), caller));
  if (noun == "declarations") return declarationsAnswer(desired_.declarations(), req);
  if (noun == "blades") {
    if (name) {
      auto it = blades_.find(*name);
      return it != blades_.end() ? text(200, bladeText(*name, it->second, {}))
                                 : error(404, "unknown blade '" + *name + "'");
    }
    auto fields = listFields(req, Views::bladeFields());
    if (!fields) return error(400, fields.error().message);
    std::vector<std::string> out;
    out.reserve(blades_.size());
    for (const auto& [n, b] : blades_)
      if (caller.partition.empty() || scope_.bladeServes(n, caller.partition)) out.push_back(bladeText(n, b, *fields));
    return text(200, listText(out));
  }
  if (noun == "servers") {
    if (name) {
      const pool::Server* s = desired_.findServer(*name);
      return s ? text(200, serverText(*s, {})) : error(404, "unknown server '" + *name + "'");
    }
    auto fields = listFields(req, Views::serverFields());
    if (!fields) return error(400, fields.error().message);
    std::vector<std::string> out;
    out.reserve(desired_.declarations().servers.size());
    for (const auto& s : desired_.declarations().servers)
      if (caller.sees(s.partition)) out.push_back(serverText(s, *fields));
    return text(200, listText(out));
  }
  // pools
  if (name) {
    for (const auto& p : desired_.declarations().pools)
      if (p.name == *name) return text(200, poolText(p, roles_, desired_.declarations()));
    return error(404, "unknown pool '" + *name + "'");
  }
  auto fields = listFields(req, Views::poolFields());
  if (!fields) return error(400, fields.error().message);
  std::vector<std::string> out;
  for (const auto& p : desired_.declarations().pools)
    if (caller.sees(p.partition)) out.push_back(poolText(p, roles_, desired_.declarations(), *fields));
  return text(200, listText(out));
}

std::string StandbyViews::bladeText(const std::string& name, const Blade& b, const FieldMask& fields) const {
  // The fields of Views::blade that the store holds, written the same way.
  std::string poolName, role = "unassigned";
  if (auto r = roles_.find(name); r != roles_.end() && b.adminState != "retired") {
    poolName = r->second.pool;
    role = pool::toString(r->second.role);
  }
  const protocol::BladeInventory& inv = b.inventory;
  return objectText([&](JsonOut& w) {
    if (fields.has("name")) put(w, "name", name);
    if (fields.has("chassis")) put(w, "chassis", inv.chassis);
    if (fields.has("slot")) put(w, "slot", std::int64_t{inv.slot});
    if (fields.has("cores")) put(w, "cores", std::uint64_t{inv.cores});
    if (fields.has("memory_mib")) put(w, "memory_mib", std::uint64_t{inv.memoryMib});
    if (fields.has("hypervisor")) {
      std::string hypervisor = inv.personality;
      if (hypervisor.empty())
        for (const auto& p : desired_.declarations().pools)
          if (p.name == poolName && p.hypervisor) hypervisor = pool::toString(*p.hypervisor);
      if (hypervisor.empty() && inv.hypervisors.size() == 1) hypervisor = inv.hypervisors[0];
      put(w, "hypervisor", hypervisor);
    }
    if (fields.has("hypervisors")) put(w, "hypervisors", inv.hypervisors);
    // The admin state decides the leader's state whatever the health; the rest is live.
    if (fields.has("state"))
      put(w, "state", b.adminState == "retired" || b.adminState == "maintenance" ? b.adminState : "unknown");
    if (fields.has("pool")) putOrNull(w, "pool", poolName);
    if (fields.has("role")) put(w, "role", role);
    if (fields.has("servers")) {
      static const std::vector<std::string> kNone;
      auto it = byBlade_.find(name);
      put(w, "servers", it != byBlade_.end() ? it->second : kNone);
    }
    if (fields.has("driver")) put(w, "driver", inv.driver);
    if (fields.has("cpu_model")) put(w, "cpu_model", inv.cpuModel);
    if (const pool::Bmc* bmc = desired_.bmc(name); bmc && fields.has("bmc")) {
      putBmc(w, *bmc);
    }
  });
}

std::string StandbyViews::serverText(const pool::Server& s, const FieldMask& fields) const {
  ServerFacts f;
  f.state = "unknown";  // whether it runs, and where, is what its blades tell the leader
  const auto id = fields.has("uuid") || fields.has("macs") || fields.has("nics") ? desired_.identities().find(s.name)
                                                                                 : std::nullopt;
  f.identity = id ? &*id : nullptr;
  if (auto b = placement_.bindings.find(s.name); b != placement_.bindings.end()) f.blade = &b->second;
  if (auto h = placement_.home.find(s.name); h != placement_.home.end()) f.home = &h->second;
  if (auto r = placement_.restart.find(s.name); r != placement_.restart.end()) f.restart = &r->second;
  return api::serverText(s, f, fields);
}

}  // namespace loom::controller::api
