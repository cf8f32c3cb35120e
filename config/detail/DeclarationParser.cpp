// YAML documents -> declarations (DeclarationParser.h): the dispatch by kind, the kinds
// Partition, Network, IdentityPool, Pool and Blade, and fabric files. kind: Server is
// ServerParser.cpp; what the readers share, KindReaders.h.
#include "config/detail/DeclarationParser.h"

#include <algorithm>
#include <cctype>
#include <map>

#include "config/Spelling.h"
#include "config/ValueSyntax.h"
#include "config/detail/FieldReader.h"
#include "config/detail/KindReaders.h"

namespace loom::config::detail {

namespace {

const std::vector<std::string> kKinds = {"Partition", "Network", "IdentityPool", "Pool", "Server", "Blade"};

bool isPlainName(const std::string& name) {
  if (name.empty() || name.size() > kMaxName) return false;
  if (!std::isalnum(static_cast<unsigned char>(name[0]))) return false;
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') return false;
  }
  return true;
}

}  // namespace

// ---- what every kind's reader shares (KindReaders.h)

std::string contextFor(const std::string& kind, const YamlNode& map) {
  const YamlNode* name = map.find("name");
  if (!name || !name->isScalar() || name->scalar().empty()) return kind;
  if (name->scalar().size() > kMaxName) {
    std::size_t end = kMaxName;  // not inside a UTF-8 sequence: messages end up in JSON
    while (end > 0 && (static_cast<unsigned char>(name->scalar()[end]) & 0xC0) == 0x80) --end;
    return kind + " '" + name->scalar().substr(0, end) + "...'";
  }
  return kind + " '" + name->scalar() + "'";
}

std::optional<std::string> readName(const MapReader& r, Origin& origin) {
  auto name = r.string("name", Need::Required);
  if (!name) return std::nullopt;
  origin.name = r.valueAt("name");
  if (!isPlainName(*name)) {
    r.error("name", "expected 1.." + std::to_string(kMaxName) +
                        " letters, digits, '-', '_' or '.', starting with a letter or digit, got '" + *name + "'");
    return std::nullopt;
  }
  return name;
}

Origin originOf(const MapReader& r, const std::string& kind) {
  Origin origin;
  origin.kind = kind;
  origin.object = r.at();
  return origin;
}

bool admit(const MapReader& r, LocatedDeclarations& out, std::size_t each, std::int64_t copies, std::string_view key) {
  if (out.expandedObjects > kMaxExpandedObjects) return false;  // reported once, at the first
  const std::size_t cost = each * static_cast<std::size_t>(copies);
  if (cost <= kMaxExpandedObjects - out.expandedObjects) {
    out.expandedObjects += cost;
    return true;
  }
  const std::string message = "this input would declare more than " + std::to_string(kMaxExpandedObjects) +
                              " objects (replicas expanded, a server counting its NICs and disks), the most one "
                              "load takes";
  if (key.empty()) {
    r.diagnostics().error(r.at(), r.context() + ": " + message);
  } else {
    r.error(key, message);
  }
  out.incomplete = true;
  out.expandedObjects = kMaxExpandedObjects + 1;
  return false;
}

namespace {

// --- Partition -------------------------------------------------------------------------

void readPartition(const MapReader& r, LocatedDeclarations& out) {
  Origin origin = originOf(r, "Partition");
  auto name = readName(r, origin);
  if (!name || !admit(r, out, 1, 1)) return;
  out.declarations.partitions.push_back(pool::Partition{*name});
  out.partitions.push_back(std::move(origin));
}

// --- Network ---------------------------------------------------------------------------

void readNetwork(const MapReader& r, LocatedDeclarations& out) {
  Origin origin = originOf(r, "Network");
  auto name = readName(r, origin);
  pool::Network network;
  network.partition = r.string("partition", Need::Required).value_or("");
  r.remember(origin, "partition");
  if (auto vlan = r.integer("vlan", 1, 4094)) network.vlan = static_cast<int>(*vlan);
  if (!name || !admit(r, out, 1, 1)) return;
  network.name = *name;
  out.declarations.networks.push_back(std::move(network));
  out.networks.push_back(std::move(origin));
}

// --- IdentityPool ----------------------------------------------------------------------

void readIdentityPool(const MapReader& r, LocatedDeclarations& out) {
  Origin origin = originOf(r, "IdentityPool");
  auto name = readName(r, origin);
  pool::IdentityPool identity;
  if (auto macs = r.stringList("macs", Need::Optional, &origin)) {
    for (std::size_t i = 0; i < macs->size(); ++i) {
      auto range = parseMacRange((*macs)[i]);
      std::string field = "macs[" + std::to_string(i) + "]";
      if (range) {
        identity.macs.push_back(*range);
      } else {
        r.diagnostics().error(origin.at(field), r.context() + ": " + field + ": " + range.error().message);
      }
    }
  }
  if (auto uuids = r.stringList("uuids", Need::Optional, &origin)) {
    for (std::size_t i = 0; i < uuids->size(); ++i) {
      auto range = parseUuidRange((*uuids)[i]);
      std::string field = "uuids[" + std::to_string(i) + "]";
      if (range) {
        identity.uuids.push_back(*range);
      } else {
        r.diagnostics().error(origin.at(field), r.context() + ": " + field + ": " + range.error().message);
      }
    }
  }
  if (!r.has("macs") && !r.has("uuids")) {
    r.missing("macs", " (an identity pool needs 'macs', 'uuids' or both)");
  }
  if (!name || !admit(r, out, 1, 1)) return;
  identity.name = *name;
  out.declarations.identityPools.push_back(std::move(identity));
  out.identityPools.push_back(std::move(origin));
}

// --- Pool ------------------------------------------------------------------------------

void readBladeMatch(const MapReader& parent, const YamlNode& node, pool::BladeMatch& match) {
  if (!node.isMap()) {
    parent.diagnostics().error(parent.source().locate(node),
                               parent.context() +
                                   ": blades.match: expected a mapping "
                                   "with chassis, min_cores, min_memory, model or hypervisor, got " +
                                   describe(node));
    return;
  }
  MapReader r(node, parent.source(), parent.diagnostics(), parent.context(), "blades.match.",
              {"chassis", "min_cores", "min_memory", "model", "hypervisor"});
  match.chassis = r.string("chassis");
  if (auto cores = r.integer("min_cores", 1, 1 << 20)) match.minCores = static_cast<std::uint32_t>(*cores);
  match.minMemory = r.size("min_memory");
  match.model = r.string("model");
  match.hypervisor = r.choice("hypervisor", &pool::parseHypervisor, "xen or kvm");
  if (node.size() == 0) {
    parent.diagnostics().error(r.at(),
                               parent.context() +
                                   ": blades.match: expected at least one of chassis, "
                                   "min_cores, min_memory, model, hypervisor (an empty rule would take every blade)");
  }
}

void readPoolBlades(const MapReader& parent, pool::Pool& p, Origin& origin) {
  const YamlNode* node = parent.node("blades");
  if (!node) {
    parent.missing("blades", " (a pool needs blades: {names: [...]} and/or {match: {...}})");
    return;
  }
  if (!node->isMap()) {
    parent.error("blades", "expected a mapping with 'names' and/or 'match', got " + describe(*node));
    return;
  }
  MapReader r(*node, parent.source(), parent.diagnostics(), parent.context(), "blades.", {"names", "match"});
  if (auto names = r.stringList("names", Need::Optional, &origin)) p.bladeNames = *names;
  if (const YamlNode* match = r.node("match")) {
    p.match.emplace();
    readBladeMatch(r, *match, *p.match);
  }
  if (!r.has("names") && !r.has("match")) {
    parent.error("blades", "expected 'names' and/or 'match'");
  }
}

void readPool(const MapReader& r, LocatedDeclarations& out) {
  Origin origin = originOf(r, "Pool");
  auto name = readName(r, origin);
  pool::Pool p;
  p.sparePool = r.boolean("spare_pool").value_or(false);
  // A spare pool serves every partition unless it names one.
  p.partition = r.string("partition", p.sparePool ? Need::Optional : Need::Required).value_or("");
  r.remember(origin, "partition");
  p.hypervisor =
      r.choice("hypervisor", &pool::parseHypervisor, "xen or kvm", p.sparePool ? Need::Optional : Need::Required);
  readPoolBlades(r, p, origin);
  if (auto spares = r.integer("spares", 0, 100000)) {
    if (p.sparePool && *spares > 0) {
      r.error("spares", "a spare pool's blades are all spares; 'spares' applies to pools that run servers");
    }
    p.spares = static_cast<std::uint32_t>(*spares);
  }
  if (auto failover = r.choice("failover", &pool::parseFailoverPolicy, "spare, pack or none")) p.failover = *failover;
  if (auto failback = r.choice("failback", &pool::parseFailbackPolicy, "manual or auto")) p.failback = *failback;
  p.borrowFrom = r.string("borrow_from").value_or("");
  r.remember(origin, "borrow_from");
  p.identityPool = r.string("identity_pool").value_or("");
  r.remember(origin, "identity_pool");
  if (!name || !admit(r, out, 1, 1)) return;
  p.name = *name;
  out.declarations.pools.push_back(std::move(p));
  out.pools.push_back(std::move(origin));
}

// --- Blade -----------------------------------------------------------------------------

// A host name (RFC 1123 letters, digits, '-' and '.'), an IPv4 address or an IPv6 one
// (hex digits, ':' and '.', optionally in brackets): what fence agents take as --ip.
bool isHostAddress(const std::string& a) {
  if (a.empty() || a.size() > 253) return false;
  std::string_view v = a;
  if (v.front() == '[' && v.back() == ']' && v.size() > 2) {
    v = v.substr(1, v.size() - 2);
    return std::all_of(v.begin(), v.end(),
                       [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.'; });
  }
  if (v.find(':') != std::string_view::npos)
    return std::all_of(v.begin(), v.end(),
                       [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.'; });
  if (!std::isalnum(static_cast<unsigned char>(v.front())) || !std::isalnum(static_cast<unsigned char>(v.back())))
    return false;
  return std::all_of(v.begin(), v.end(),
                     [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.'; });
}

// The password file is templated into a fence command line, and fence agents run their
// password script through a shell of their own (fence_ipmilan --password-script="cat
// {bmc_password_file}"): a path of plain characters stays one word in both shells.
bool isPlainPath(const std::string& p) {
  return std::all_of(p.begin(), p.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) ||
           std::string_view("/._-+@,=:").find(c) != std::string_view::npos;
  });
}

constexpr std::size_t kMaxBmcUser = 64;
constexpr std::size_t kMaxPath = 1024;

void readBmc(const MapReader& parent, pool::Bmc& bmc, Origin& origin) {
  const YamlNode* node = parent.node("bmc");
  if (!node->isMap()) {
    parent.error("bmc", "expected a mapping {address, port?, user, password_file}, got " + describe(*node));
    return;
  }
  MapReader r(*node, parent.source(), parent.diagnostics(), parent.context(), "bmc.",
              {"address", "port", "user", "password_file"});
  if (auto address = r.string("address", Need::Required)) {
    if (isHostAddress(*address))
      bmc.address = *address;
    else
      r.error("address", "expected a host name or an IP address, got '" + address->substr(0, 300) + "'");
  }
  r.remember(origin, "address");
  if (auto port = r.integer("port", 1, 65535)) bmc.port = static_cast<int>(*port);
  if (auto user = r.string("user", Need::Required)) {
    const bool printable = std::all_of(user->begin(), user->end(),
                                       [](char c) { return static_cast<unsigned char>(c) >= 0x20 && c != 0x7f; });
    if (user->size() > kMaxBmcUser || !printable)
      r.error("user", "expected a user name of 1.." + std::to_string(kMaxBmcUser) + " printable characters");
    else
      bmc.user = *user;
  }
  if (auto path = r.string("password_file", Need::Required)) {
    if (path->front() != '/')
      r.error("password_file", "expected an absolute path on the controller host (loomd reads it there), got '" +
                                   path->substr(0, 300) + "'");
    else if (path->size() > kMaxPath || !isPlainPath(*path))
      r.error("password_file",
              "expected a path of at most " + std::to_string(kMaxPath) +
                  " letters, digits and / . _ - + @ , = : (it becomes part of a fence command line), got '" +
                  path->substr(0, 300) + "'");
    else
      bmc.passwordFile = *path;
  }
}

void readDeclaredBlade(const MapReader& r, LocatedDeclarations& out) {
  Origin origin = originOf(r, "Blade");
  auto name = readName(r, origin);
  pool::DeclaredBlade b;
  if (r.has("bmc")) {
    b.bmc.emplace();
    readBmc(r, *b.bmc, origin);
  }
  if (!name || !admit(r, out, 1, 1)) return;
  b.name = *name;
  out.declarations.blades.push_back(std::move(b));
  out.blades.push_back(std::move(origin));
}

const std::vector<std::string>& knownFields(const std::string& kind) {
  static const std::map<std::string, std::vector<std::string>> kFields = {
      {"Partition", {"kind", "name", "description"}},
      {"Network", {"kind", "name", "description", "partition", "vlan"}},
      {"IdentityPool", {"kind", "name", "description", "macs", "uuids"}},
      {"Pool",
       {"kind", "name", "description", "partition", "hypervisor", "blades", "spares", "failover", "failback",
        "borrow_from", "spare_pool", "identity_pool"}},
      {"Server",
       {"kind", "name", "description", "partition", "pool", "vcpus", "memory", "nics", "disks", "boot", "xen",
        "priority", "anti_affinity", "dedicated", "power", "uuid", "identity_pool", "replicas"}},
      {"Blade", {"kind", "name", "description", "bmc"}},
  };
  return kFields.at(kind);
}

}  // namespace

void readDeclarations(const Documents& documents, LocatedDeclarations& out, Diagnostics& diagnostics) {
  if (documents.incomplete) out.incomplete = true;
  for (const Document& doc : documents.documents) {
    const YamlNode& node = *doc.node;
    const Location at = doc.source.locate(node);
    if (!node.isMap()) {
      diagnostics.error(at, "expected a declaration: a mapping with 'kind' (" +
                                std::string("Partition, Network, "
                                            "IdentityPool, Pool, Server or Blade), got ") +
                                describe(node));
      continue;
    }
    const YamlNode* kindNode = node.find("kind");
    if (!kindNode) {
      diagnostics.error(
          at, "missing required field 'kind' (expected Partition, Network, IdentityPool, Pool, Server or Blade)");
      continue;
    }
    if (!kindNode->isScalar()) {
      diagnostics.error(
          doc.source.locate(*kindNode),
          "kind: expected Partition, Network, IdentityPool, Pool, Server or Blade, got " + describe(*kindNode));
      continue;
    }
    const std::string kind = kindNode->scalar();
    if (std::find(kKinds.begin(), kKinds.end(), kind) == kKinds.end()) {
      std::string message = "kind: unknown kind '" + kind + "'";
      if (auto near = closestMatch(kind, kKinds)) {
        message += " (did you mean '" + *near + "'?)";
      } else {
        message += " (expected Partition, Network, IdentityPool, Pool, Server or Blade)";
      }
      diagnostics.error(doc.source.locate(*kindNode), message);
      continue;
    }
    MapReader reader(node, doc.source, diagnostics, contextFor(kind, node), "", knownFields(kind));
    if (kind == "Partition") readPartition(reader, out);
    if (kind == "Network") readNetwork(reader, out);
    if (kind == "IdentityPool") readIdentityPool(reader, out);
    if (kind == "Pool") readPool(reader, out);
    if (kind == "Server") readServer(reader, out);
    if (kind == "Blade") readDeclaredBlade(reader, out);
  }
}

// --- Fabric ----------------------------------------------------------------------------

namespace {

void readBlade(const YamlNode& node, const Source& source, const std::string& path, pool::Fabric& out,
               std::vector<Origin>& origins, Diagnostics& diagnostics) {
  if (!node.isMap()) {
    diagnostics.error(source.locate(node), path +
                                               ": expected a blade {name, chassis, slot, cores, memory, "
                                               "hypervisor}, got " +
                                               describe(node));
    return;
  }
  MapReader r(node, source, diagnostics, contextFor("blade", node), "",
              {"name", "chassis", "slot", "cores", "memory", "hypervisor", "sockets", "model", "bmc"});
  Origin origin = originOf(r, "blade");
  auto name = readName(r, origin);
  pool::Blade b;
  b.chassis = r.string("chassis", Need::Required).value_or("");
  r.remember(origin, "chassis");
  if (auto slot = r.integer("slot", 0, 1024, Need::Required)) b.slot = static_cast<int>(*slot);
  r.remember(origin, "slot");
  if (auto cores = r.integer("cores", 1, 1 << 20, Need::Required)) b.cores = static_cast<std::uint32_t>(*cores);
  if (auto memory = r.size("memory", Need::Required)) b.memory = *memory;
  if (auto sockets = r.integer("sockets", 1, 64)) b.sockets = static_cast<std::uint32_t>(*sockets);
  b.model = r.string("model").value_or("");
  b.bmc = r.string("bmc").value_or("");
  if (auto hypervisors = r.stringList("hypervisor", Need::Required)) {
    for (const auto& h : *hypervisors) {
      if (auto parsed = pool::parseHypervisor(h)) {
        b.hypervisors.add(*parsed);
      } else {
        r.error("hypervisor", "expected xen, kvm or a list of them, got '" + h + "'");
      }
    }
    if (hypervisors->empty()) r.error("hypervisor", "expected xen, kvm or a list of them, got an empty list");
  }
  if (!name) return;
  b.name = *name;
  out.blades.push_back(std::move(b));
  origins.push_back(std::move(origin));
}

}  // namespace

void readFabric(const Documents& documents, pool::Fabric& out, std::vector<Origin>& origins, Diagnostics& diagnostics) {
  for (const Document& doc : documents.documents) {
    if (!doc.node->isMap()) {
      diagnostics.error(doc.source.locate(*doc.node),
                        "expected a fabric: a mapping with 'blades', got " + describe(*doc.node));
      continue;
    }
    MapReader r(*doc.node, doc.source, diagnostics, "fabric", "", {"kind", "blades"});
    if (auto kind = r.string("kind"); kind && *kind != "Fabric") {
      r.error("kind", "expected Fabric in a fabric file, got '" + *kind + "'");
    }
    const YamlNode* blades = r.node("blades");
    if (!blades) {
      r.missing("blades");
      continue;
    }
    if (!blades->isSequence()) {
      r.error("blades", "expected a list of blades, got " + describe(*blades));
      continue;
    }
    for (std::size_t i = 0; i < blades->size(); ++i) {
      readBlade(blades->item(i), doc.source, "blades[" + std::to_string(i) + "]", out, origins, diagnostics);
    }
  }
}

}  // namespace loom::config::detail
