#include "controller/ModelJson.h"

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>

#include <algorithm>
#include <cstdio>
#include <future>
#include <iterator>
#include <stdexcept>
#include <thread>
#include <type_traits>
#include <unordered_map>

namespace loom::controller {
namespace {

template <class T>
void putOpt(Json& j, const char* k, const std::optional<T>& v) {
  if (v) j[k] = *v;
}

Json toJson(const pool::Partition& p) { return {{"name", p.name}}; }

Json toJson(const pool::Network& n) {
  Json j{{"name", n.name}, {"partition", n.partition}};
  putOpt(j, "vlan", n.vlan);
  return j;
}

Json toJson(const pool::IdentityPool& p) {
  Json macs = Json::array(), uuids = Json::array();
  for (const auto& m : p.macs) macs.push_back({m.first, m.last});
  for (const auto& u : p.uuids) uuids.push_back({u.prefixHi, u.prefixLo, u.bits});
  return {{"name", p.name}, {"macs", macs}, {"uuids", uuids}};
}

// A blade without `bmc` is stored without it (not as null), so a later field can join.
Json toJson(const pool::DeclaredBlade& b) {
  Json j{{"name", b.name}};
  if (b.bmc)
    j["bmc"] = {{"address", b.bmc->address},
                {"port", b.bmc->port},
                {"user", b.bmc->user},
                {"password_file", b.bmc->passwordFile}};
  return j;
}

pool::DeclaredBlade declaredBladeFrom(const Json& j) {
  pool::DeclaredBlade b;
  b.name = j.at("name").get<std::string>();
  if (j.contains("bmc")) {
    const Json& m = j.at("bmc");
    b.bmc = pool::Bmc{m.at("address").get<std::string>(), m.value("port", 623), m.at("user").get<std::string>(),
                      m.at("password_file").get<std::string>()};
  }
  return b;
}

pool::Partition partitionFrom(const Json& j) { return {j.at("name").get<std::string>()}; }

pool::Network networkFrom(const Json& j) {
  pool::Network n;
  n.name = j.at("name").get<std::string>();
  n.partition = j.value("partition", std::string());
  if (j.contains("vlan")) n.vlan = j.at("vlan").get<int>();
  return n;
}

pool::IdentityPool identityPoolFrom(const Json& j) {
  pool::IdentityPool p;
  p.name = j.at("name").get<std::string>();
  for (const auto& m : j.at("macs")) p.macs.push_back({m.at(0).get<std::uint64_t>(), m.at(1).get<std::uint64_t>()});
  for (const auto& u : j.at("uuids"))
    p.uuids.push_back({u.at(0).get<std::uint64_t>(), u.at(1).get<std::uint64_t>(), u.at(2).get<int>()});
  return p;
}

pool::Pool poolFrom(const Json& j) {
  pool::Pool p;
  p.name = j.at("name").get<std::string>();
  p.partition = j.value("partition", std::string());
  if (j.contains("hypervisor") && j["hypervisor"].is_string())
    p.hypervisor = pool::parseHypervisor(j["hypervisor"].get<std::string>());
  p.bladeNames = j.value("blade_names", std::vector<std::string>());
  if (j.contains("match")) {
    const Json& m = j["match"];
    pool::BladeMatch bm;
    if (m.contains("chassis")) bm.chassis = m["chassis"].get<std::string>();
    if (m.contains("min_cores")) bm.minCores = m["min_cores"].get<std::uint32_t>();
    if (m.contains("min_memory_mib")) bm.minMemory = m["min_memory_mib"].get<pool::MiB>();
    if (m.contains("model")) bm.model = m["model"].get<std::string>();
    if (m.contains("hypervisor")) bm.hypervisor = pool::parseHypervisor(m["hypervisor"].get<std::string>());
    p.match = bm;
  }
  p.sparePool = j.value("spare_pool", false);
  p.spares = j.value("spares", 0u);
  if (auto f = pool::parseFailoverPolicy(j.value("failover", std::string("spare")))) p.failover = *f;
  if (auto f = pool::parseFailbackPolicy(j.value("failback", std::string("manual")))) p.failback = *f;
  p.borrowFrom = j.value("borrow_from", std::string());
  p.identityPool = j.value("identity_pool", std::string());
  return p;
}

// Servers are most of what a restart reads back (100,000 stored records): decoded with
// RapidJSON, which parses them several times faster than building nlohmann trees.
// Written by toJson(const pool::Server&) below; a missing field takes its default.
std::string str(const rapidjson::Value& o, const char* key, std::string fallback = {}) {
  auto it = o.FindMember(key);
  return it != o.MemberEnd() && it->value.IsString() ? std::string(it->value.GetString(), it->value.GetStringLength())
                                                     : std::move(fallback);
}
template <class T>
T num(const rapidjson::Value& o, const char* key, T fallback) {
  auto it = o.FindMember(key);
  if (it == o.MemberEnd()) return fallback;
  if constexpr (std::is_unsigned_v<T>)
    return it->value.IsUint64() ? static_cast<T>(it->value.GetUint64()) : fallback;
  else
    return it->value.IsInt64() ? static_cast<T>(it->value.GetInt64()) : fallback;
}
bool flag(const rapidjson::Value& o, const char* key, bool fallback) {
  auto it = o.FindMember(key);
  return it != o.MemberEnd() && it->value.IsBool() ? it->value.GetBool() : fallback;
}

pool::Server serverFrom(const std::string& body) {
  rapidjson::Document j;
  j.Parse(body.data(), body.size());
  if (j.HasParseError() || !j.IsObject())
    throw std::runtime_error(std::string("not a JSON object (") + rapidjson::GetParseError_En(j.GetParseError()) + ")");
  pool::Server s;
  auto name = j.FindMember("name");
  if (name == j.MemberEnd() || !name->value.IsString()) throw std::runtime_error("no name");
  s.name = name->value.GetString();
  s.partition = str(j, "partition");
  s.pool = str(j, "pool");
  s.vcpus = num<std::uint32_t>(j, "vcpus", 1);
  s.memory = num<pool::MiB>(j, "memory_mib", 512);
  if (auto n = j.FindMember("nics"); n != j.MemberEnd() && n->value.IsArray())
    for (const auto& nic : n->value.GetArray())
      if (nic.IsObject()) s.nics.push_back({str(nic, "network"), str(nic, "mac")});
  if (auto d = j.FindMember("disks"); d != j.MemberEnd() && d->value.IsArray())
    for (const auto& disk : d->value.GetArray())
      if (disk.IsObject()) s.disks.push_back({str(disk, "image"), str(disk, "format"), flag(disk, "read_only", false)});
  if (auto b = j.FindMember("boot"); b != j.MemberEnd() && b->value.IsObject())
    s.boot = {str(b->value, "kernel"), str(b->value, "initrd"), str(b->value, "cmdline")};
  if (auto x = j.FindMember("xen_type"); x != j.MemberEnd() && x->value.IsString())
    s.xenType = pool::parseXenGuestType(x->value.GetString());
  s.priority = num<int>(j, "priority", 0);
  s.antiAffinity = str(j, "anti_affinity");
  s.dedicated = flag(j, "dedicated", false);
  s.power = str(j, "power", "on") == "off" ? pool::PowerState::Off : pool::PowerState::On;
  s.uuid = str(j, "fixed_uuid");
  s.template_ = str(j, "template");
  return s;
}

template <class T>
void upsert(std::vector<T>& into, const std::vector<T>& incoming) {
  // Indexed: an apply of 10,000 servers onto 100,000 must not be quadratic.
  std::unordered_map<std::string, std::size_t> index;
  index.reserve(into.size());
  for (std::size_t i = 0; i < into.size(); ++i) index.emplace(into[i].name, i);
  for (const auto& item : incoming) {
    auto [it, fresh] = index.emplace(item.name, into.size());
    if (fresh)
      into.push_back(item);
    else
      into[it->second] = item;
  }
}

}  // namespace

std::string macToString(std::uint64_t mac) {
  char buf[18];
  std::snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", unsigned(mac >> 40 & 0xff),
                unsigned(mac >> 32 & 0xff), unsigned(mac >> 24 & 0xff), unsigned(mac >> 16 & 0xff),
                unsigned(mac >> 8 & 0xff), unsigned(mac & 0xff));
  return buf;
}

Json toJson(const pool::Pool& p) {
  Json j{{"name", p.name},
         {"partition", p.partition},
         {"blade_names", p.bladeNames},
         {"spare_pool", p.sparePool},
         {"spares", p.spares},
         {"failover", pool::toString(p.failover)},
         {"failback", pool::toString(p.failback)},
         {"borrow_from", p.borrowFrom},
         {"identity_pool", p.identityPool}};
  j["hypervisor"] = p.hypervisor ? Json(pool::toString(*p.hypervisor)) : Json(nullptr);
  if (p.match) {
    Json m = Json::object();
    putOpt(m, "chassis", p.match->chassis);
    putOpt(m, "min_cores", p.match->minCores);
    putOpt(m, "min_memory_mib", p.match->minMemory);
    putOpt(m, "model", p.match->model);
    if (p.match->hypervisor) m["hypervisor"] = pool::toString(*p.match->hypervisor);
    j["match"] = m;
  }
  return j;
}

Json toJson(const pool::Server& s) {
  Json nics = Json::array(), disks = Json::array();
  for (const auto& n : s.nics) nics.push_back({{"network", n.network}, {"mac", n.mac}});
  for (const auto& d : s.disks) disks.push_back({{"image", d.image}, {"format", d.format}, {"read_only", d.readOnly}});
  Json j{{"name", s.name},           {"partition", s.partition},         {"pool", s.pool},
         {"vcpus", s.vcpus},         {"memory_mib", s.memory},           {"nics", nics},
         {"disks", disks},           {"priority", s.priority},           {"anti_affinity", s.antiAffinity},
         {"dedicated", s.dedicated}, {"power", pool::toString(s.power)}, {"fixed_uuid", s.uuid},
         {"template", s.template_}};
  if (!s.boot.empty()) j["boot"] = {{"kernel", s.boot.kernel}, {"initrd", s.boot.initrd}, {"cmdline", s.boot.cmdline}};
  if (s.xenType) j["xen_type"] = pool::toString(*s.xenType);
  return j;
}

std::vector<DeclarationRecord> toRecords(const pool::Declarations& d) {
  std::vector<DeclarationRecord> out;
  for (const auto& x : d.partitions) out.push_back({"Partition", x.name, toJson(x).dump()});
  for (const auto& x : d.networks) out.push_back({"Network", x.name, toJson(x).dump()});
  for (const auto& x : d.identityPools) out.push_back({"IdentityPool", x.name, toJson(x).dump()});
  for (const auto& x : d.pools) out.push_back({"Pool", x.name, toJson(x).dump()});
  for (const auto& x : d.servers) out.push_back({"Server", x.name, toJson(x).dump()});
  for (const auto& x : d.blades) out.push_back({"Blade", x.name, toJson(x).dump()});
  return out;
}

namespace {

using RecordIt = std::vector<DeclarationRecord>::const_iterator;

pool::Declarations fromRange(RecordIt begin, RecordIt end, std::vector<std::string>* problems) {
  pool::Declarations d;
  d.servers.reserve(static_cast<std::size_t>(end - begin));
  for (auto r = begin; r != end; ++r) {
    try {
      if (r->kind == "Server") {
        d.servers.push_back(serverFrom(r->body));
        continue;
      }
      Json j = Json::parse(r->body);
      if (r->kind == "Partition")
        d.partitions.push_back(partitionFrom(j));
      else if (r->kind == "Network")
        d.networks.push_back(networkFrom(j));
      else if (r->kind == "IdentityPool")
        d.identityPools.push_back(identityPoolFrom(j));
      else if (r->kind == "Pool")
        d.pools.push_back(poolFrom(j));
      else if (r->kind == "Blade")
        d.blades.push_back(declaredBladeFrom(j));
      else
        problems->push_back("unknown stored kind '" + r->kind + "' ('" + r->name + "')");
    } catch (const std::exception& e) {
      problems->push_back("stored " + r->kind + " '" + r->name + "' unreadable: " + e.what());
    }
  }
  return d;
}

template <class T>
void append(std::vector<T>& to, std::vector<T>&& from) {
  to.insert(to.end(), std::make_move_iterator(from.begin()), std::make_move_iterator(from.end()));
}

// Below this, a second thread costs more than it saves.
constexpr std::size_t kParallelRecords = 20000;

}  // namespace

pool::Declarations fromRecords(const std::vector<DeclarationRecord>& records, std::vector<std::string>* problems) {
  std::vector<std::string> ignored;
  if (!problems) problems = &ignored;
  if (records.size() < kParallelRecords || std::thread::hardware_concurrency() < 2)
    return fromRange(records.begin(), records.end(), problems);
  // A restart with 100,000 servers parses 100,000 stored documents: half on a second
  // thread. The order of each kind is kept (first half, then second half).
  const auto mid = records.begin() + static_cast<std::ptrdiff_t>(records.size() / 2);
  std::vector<std::string> laterProblems;
  auto later = std::async(std::launch::async, [&] { return fromRange(mid, records.end(), &laterProblems); });
  pool::Declarations d = fromRange(records.begin(), mid, problems);
  pool::Declarations rest = later.get();
  append(d.partitions, std::move(rest.partitions));
  append(d.networks, std::move(rest.networks));
  append(d.identityPools, std::move(rest.identityPools));
  append(d.pools, std::move(rest.pools));
  append(d.servers, std::move(rest.servers));
  append(d.blades, std::move(rest.blades));
  append(*problems, std::move(laterProblems));
  return d;
}

void mergeDeclarations(pool::Declarations& into, const pool::Declarations& incoming) {
  upsert(into.partitions, incoming.partitions);
  upsert(into.networks, incoming.networks);
  upsert(into.identityPools, incoming.identityPools);
  upsert(into.pools, incoming.pools);
  upsert(into.servers, incoming.servers);
  upsert(into.blades, incoming.blades);
}

Result<FieldMask> FieldMask::parse(const std::string& spec, const std::vector<std::string>& known) {
  FieldMask mask;
  std::size_t start = 0;
  while (start <= spec.size()) {
    const auto comma = std::min(spec.find(',', start), spec.size());
    std::string field = spec.substr(start, comma - start);
    start = comma + 1;
    if (field.empty()) continue;
    if (std::find(known.begin(), known.end(), field) == known.end()) {
      std::string list;
      for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
      return makeError(Errc::Invalid, "fields: unknown field '" + field.substr(0, 64) + "' (known: " + list + ")");
    }
    mask.fields_.push_back(std::move(field));
  }
  return mask;
}

bool FieldMask::has(std::string_view field) const {
  return fields_.empty() || std::find(fields_.begin(), fields_.end(), field) != fields_.end();
}

}  // namespace loom::controller
