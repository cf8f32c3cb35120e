#include "controller/api/Views.h"

#include <algorithm>
#include <string_view>

#include "controller/api/JsonText.h"
#include "protocol/RelayEnvelope.h"

namespace loom::controller::api {
namespace {

using namespace jsontext;

const std::vector<std::string> kNoStrings;  // an empty list to refer to, not to copy into

}  // namespace

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

const std::vector<std::string>& Views::bladeFields() {
  static const std::vector<std::string> fields{"name",
                                               "chassis",
                                               "slot",
                                               "cores",
                                               "memory_mib",
                                               "hypervisor",
                                               "hypervisors",
                                               "state",
                                               "pool",
                                               "role",
                                               "servers",
                                               "online",
                                               "relay",
                                               "driver",
                                               "cpu_model",
                                               "domains",
                                               "domain_names",
                                               "pending_operations",
                                               "heartbeat_age_ms",
                                               "lease_left_ms",
                                               "trusted",
                                               "fence_command_running",
                                               "fence_attempts",
                                               "next_fence_attempt_ms",
                                               "last_fence_error",
                                               "fencing",
                                               "bmc",
                                               "quorum_member",
                                               "holding",
                                               "last_hold"};
  return fields;
}

std::string Views::blade(const std::string& name, const KnownBlade& k, std::int64_t now,
                         const FieldMask& fields) const {
  return objectText([&](JsonOut& w) { writeBlade(w, name, k, now, fields); });
}

std::string Views::blades(const std::function<bool(const std::string&)>& sees, std::int64_t now,
                          const FieldMask& fields) const {
  // One buffer for the whole list (listText's layout), not a string per blade joined after:
  // at 10,000 blades that was 10,000 allocations and two copies of 6 MB.
  rapidjson::StringBuffer sb;
  JsonOut w(sb);
  sb.Put('[');
  bool first = true;
  for (const auto& [name, k] : registry_.all()) {
    if (!sees(name)) continue;
    if (!first) sb.Put(',');
    sb.Put('\n');
    first = false;
    w.Reset(sb);
    w.StartObject();
    writeBlade(w, name, k, now, fields);
    w.EndObject();
  }
  if (!first) sb.Put('\n');
  sb.Put(']');
  return {sb.GetString(), sb.GetSize()};
}

void Views::writeBlade(JsonOut& w, const std::string& name, const KnownBlade& k, std::int64_t now,
                       const FieldMask& fields) const {
  // Each field is computed only when asked for: a list of 10,000 blades for a table needs
  // nine of them. Each room is asked once per blade (a list is 10,000 of these).
  std::string_view poolName;
  std::string_view role = "unassigned";
  // A retired blade serves no pool, whatever the pool's rules still match.
  const pool::BladeAssignment* assignment = k.adminState == "retired" ? nullptr : replanner_.role(name);
  if (assignment) {
    poolName = assignment->pool;
    role = pool::toString(assignment->role);
  }
  static const Liveness kUnknown;
  const Liveness* found = detector_.find(name);
  const Liveness& l = found ? *found : kUnknown;
  const std::vector<std::string>& servers = replanner_.serversOn(name);
  const bool leaseFields = fields.has("relay") ||
                           (k.registered && (fields.has("heartbeat_age_ms") || fields.has("lease_left_ms"))) ||
                           (k.adminState == "retired" && fields.has("online"));
  const LeaseTable::Seen seen = leaseFields ? leases_.seen(name) : LeaseTable::Seen{};
  if (fields.has("name")) put(w, "name", name);
  if (fields.has("chassis")) put(w, "chassis", k.inventory.chassis);
  if (fields.has("slot")) put(w, "slot", std::int64_t{k.inventory.slot});
  if (fields.has("cores")) put(w, "cores", std::uint64_t{k.inventory.cores});
  if (fields.has("memory_mib")) put(w, "memory_mib", std::uint64_t{k.inventory.memoryMib});
  if (fields.has("hypervisor")) {
    std::string_view hypervisor = k.inventory.personality;
    if (hypervisor.empty() && !poolName.empty())
      if (const pool::Pool* p = desired_.findPool(poolName); p && p->hypervisor)
        hypervisor = pool::toString(*p->hypervisor);
    if (hypervisor.empty() && k.inventory.hypervisors.size() == 1) hypervisor = k.inventory.hypervisors[0];
    put(w, "hypervisor", hypervisor);
  }
  if (fields.has("hypervisors")) put(w, "hypervisors", k.inventory.hypervisors);
  if (fields.has("state")) put(w, "state", pool::toString(Replanner::displayState(&k, l.health, assignment, servers)));
  if (fields.has("pool")) putOrNull(w, "pool", poolName);
  if (fields.has("role")) put(w, "role", role);
  if (fields.has("servers")) put(w, "servers", servers);
  if (fields.has("online"))
    put(w, "online",
        k.registered && (k.adminState == "retired" ? detector_.heardRecently(l, seen, now)
                                                   : l.health == pool::BladeState::Available));
  if (fields.has("relay")) {
    const std::string& via = seen.via;
    putOrNull(w, "relay",
              via.compare(0, protocol::kRelayIdPrefix.size(), protocol::kRelayIdPrefix) == 0
                  ? std::string_view(via).substr(protocol::kRelayIdPrefix.size())
                  : std::string_view(via));
  }
  if (fields.has("driver")) put(w, "driver", k.inventory.driver);
  if (fields.has("cpu_model")) put(w, "cpu_model", k.inventory.cpuModel);
  if (fields.has("domains")) put(w, "domains", std::uint64_t{k.domains.size()});
  if (fields.has("domain_names")) {
    // What its agent reports by name: a deleted server has left once no blade does.
    w.Key("domain_names");
    w.StartArray();
    for (const auto& [domain, observed] : k.domains)
      w.String(domain.data(), static_cast<rapidjson::SizeType>(domain.size()));
    w.EndArray();
  }
  if (fields.has("pending_operations")) put(w, "pending_operations", std::uint64_t{reconciler_.queued(name)});
  if (k.registered) {
    if (fields.has("heartbeat_age_ms")) put(w, "heartbeat_age_ms", std::int64_t{now - detector_.lastHeard(l, seen)});
    if (fields.has("lease_left_ms")) put(w, "lease_left_ms", detector_.leaseLeft(l, seen, now));
  }
  if (l.health == pool::BladeState::Fenced && fields.has("trusted")) put(w, "trusted", false);
  if (l.fenceCommandRunning && fields.has("fence_command_running")) put(w, "fence_command_running", true);
  // Since it failed: how many fence commands ran, when the next one starts (a
  // power-fenced blade's are retried), why the last one failed.
  if (l.fenceAttempts && fields.has("fence_attempts")) put(w, "fence_attempts", std::int64_t{l.fenceAttempts});
  if (l.nextFenceAt && fields.has("next_fence_attempt_ms"))
    put(w, "next_fence_attempt_ms", std::max<std::int64_t>(0, l.nextFenceAt - now));
  if (!l.lastFenceError.empty() && fields.has("last_fence_error")) put(w, "last_fence_error", l.lastFenceError);
  if (fields.has("fencing")) put(w, "fencing", quorum_.isPowerFenced(name) ? "power" : "lease");
  if (fields.has("bmc"))
    if (const pool::Bmc* bmc = desired_.bmc(name)) putBmc(w, *bmc);
  if (fields.has("quorum_member")) put(w, "quorum_member", quorum_.isMember(name));
  if (l.holding && fields.has("holding")) put(w, "holding", true);
  if (l.lastHold && fields.has("last_hold")) {
    w.Key("last_hold");
    w.StartObject();
    put(w, "ms", std::int64_t{l.lastHold->ms});
    put(w, "servers", std::uint64_t{l.lastHold->servers});
    put(w, "support", std::uint64_t{l.lastHold->support});
    put(w, "members", std::uint64_t{l.lastHold->members});
    put(w, "reported_ms", std::int64_t{l.lastHoldAtMs});
    w.EndObject();
  }
}

std::string Views::serverState(const pool::Server& s, std::string* reason) const {
  const auto& running = registry_.runningOn(s.name);
  const std::string* fault = reconciler_.fault(s.name);
  if (!fault) fault = desired_.identityFault(s.name);
  if (s.power == pool::PowerState::Off) return running.empty() ? "stopped" : "stopping";
  const std::string* bound = replanner_.bladeOf(s.name);
  if (!bound) {
    if (const std::string* why = replanner_.unplaceable(s.name)) {
      *reason = *why;
      return "unplaceable";
    }
    if (fault) {
      *reason = *fault;
      return "failed";
    }
    return "pending";
  }
  const bool here = running.count(*bound) > 0;
  if (here && running.size() == 1) return "running";
  if (!running.empty() && !here) return "moving";
  if (fault) {
    *reason = *fault;
    return "failed";
  }
  return "starting";
}

const std::vector<std::string>& Views::serverFields() {
  static const std::vector<std::string> fields{
      "name",  "partition", "pool",          "blade",  "state", "vcpus", "memory_mib", "uuid",           "macs",
      "power", "priority",  "anti_affinity", "reason", "home",  "nics",  "disks",      "restart_pending"};
  return fields;
}

std::string Views::server(const pool::Server& s, const FieldMask& fields) const {
  ServerFacts f;
  if (fields.has("state") || fields.has("reason")) f.state = serverState(s, &f.reason);
  const auto id = fields.has("uuid") || fields.has("macs") || fields.has("nics") ? desired_.identities().find(s.name)
                                                                                 : std::nullopt;
  f.identity = id ? &*id : nullptr;
  f.blade = replanner_.bladeOf(s.name);
  const auto& home = replanner_.placement().home;
  if (auto h = home.find(s.name); h != home.end()) f.home = &h->second;
  f.restart = replanner_.restartPending(s.name);
  return serverText(s, f, fields);
}

std::string serverText(const pool::Server& s, const ServerFacts& f, const FieldMask& fields) {
  return objectText([&](JsonOut& w) {
    if (fields.has("name")) put(w, "name", s.name);
    if (fields.has("partition")) put(w, "partition", s.partition);
    if (fields.has("pool")) put(w, "pool", s.pool);
    if (fields.has("blade")) putOrNull(w, "blade", f.blade ? std::string_view(*f.blade) : std::string_view());
    if (fields.has("state")) put(w, "state", f.state);
    if (fields.has("vcpus")) put(w, "vcpus", std::uint64_t{s.vcpus});
    if (fields.has("memory_mib")) put(w, "memory_mib", std::uint64_t{s.memory});
    if (fields.has("uuid")) putOrNull(w, "uuid", f.identity ? std::string_view(f.identity->uuid) : std::string_view());
    if (fields.has("macs")) put(w, "macs", f.identity ? f.identity->macs : kNoStrings);
    if (fields.has("power")) put(w, "power", pool::toString(s.power));
    if (fields.has("priority")) put(w, "priority", std::int64_t{s.priority});
    if (fields.has("anti_affinity")) put(w, "anti_affinity", s.antiAffinity);
    if (!f.reason.empty() && fields.has("reason")) put(w, "reason", f.reason);
    // Where it ran before a failover moved it (failback: auto takes it back there).
    if (f.home && fields.has("home")) put(w, "home", *f.home);
    if (fields.has("nics")) {
      // Each NIC's network and MAC: declared fixed, else the identity's (in NIC order).
      w.Key("nics");
      w.StartArray();
      for (std::size_t i = 0; i < s.nics.size(); ++i) {
        w.StartObject();
        put(w, "network", s.nics[i].network);
        const std::string* mac = !s.nics[i].mac.empty()                      ? &s.nics[i].mac
                                 : f.identity && i < f.identity->macs.size() ? &f.identity->macs[i]
                                                                             : nullptr;
        putOrNull(w, "mac", mac ? std::string_view(*mac) : std::string_view());
        w.EndObject();
      }
      w.EndArray();
    }
    if (fields.has("disks")) {
      w.Key("disks");
      w.StartArray();
      for (const auto& d : s.disks) {
        w.StartObject();
        put(w, "image", d.image);
        putOrNull(w, "format", d.format);
        put(w, "readonly", d.readOnly);
        w.EndObject();
      }
      w.EndArray();
    }
    // Runs with its old definition until it restarts (docs/SERVERS.md).
    if (f.restart && fields.has("restart_pending")) put(w, "restart_pending", *f.restart);
  });
}

const std::vector<std::string>& Views::poolFields() {
  static const std::vector<std::string> fields{"name",          "partition",   "hypervisor", "blades",   "spares",
                                               "spare_blades",  "spare_pool",  "failover",   "failback", "borrow_from",
                                               "identity_pool", "blade_names", "match",      "servers"};
  return fields;
}

std::string Views::pool(const pool::Pool& p, const FieldMask& fields) const {
  return poolText(p, replanner_.roles(), desired_.declarations(), fields);
}

std::string poolText(const pool::Pool& p, const std::map<std::string, pool::BladeAssignment>& roles,
                     const pool::Declarations& declarations, const FieldMask& fields) {
  auto bladesOf = [&](bool sparesOnly) {
    std::vector<std::string> out;
    for (const auto& [name, a] : roles)
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
    if (fields.has("failback")) put(w, "failback", pool::toString(p.failback));
    if (fields.has("borrow_from")) put(w, "borrow_from", p.borrowFrom);
    if (fields.has("identity_pool")) put(w, "identity_pool", p.identityPool);
    // Its rules as declared: the blades named, and what a blade must match.
    if (fields.has("blade_names")) put(w, "blade_names", p.bladeNames);
    if (fields.has("match")) {
      w.Key("match");
      if (!p.match) {
        w.Null();
      } else {
        w.StartObject();
        if (p.match->chassis) put(w, "chassis", *p.match->chassis);
        if (p.match->minCores) put(w, "min_cores", std::uint64_t{*p.match->minCores});
        if (p.match->minMemory) put(w, "min_memory_mib", std::uint64_t{*p.match->minMemory});
        if (p.match->model) put(w, "model", *p.match->model);
        if (p.match->hypervisor) put(w, "hypervisor", pool::toString(*p.match->hypervisor));
        w.EndObject();
      }
    }
    if (fields.has("servers")) {
      w.Key("servers");
      w.StartArray();
      for (const auto& s : declarations.servers)
        if (s.pool == p.name) w.String(s.name.data(), static_cast<rapidjson::SizeType>(s.name.size()));
      w.EndArray();
    }
  });
}

}  // namespace loom::controller::api
