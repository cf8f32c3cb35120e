#include "config/DeclarationWriter.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <map>
#include <sstream>
#include <tuple>

#include "config/ValueSyntax.h"

namespace loom::config {
namespace {

// A scalar the parser reads back as this very string: plain when it is a name or a path
// YAML cannot take for something else, double-quoted otherwise.
std::string scalar(const std::string& value) {
  static const char* const kWords[] = {"true", "false", "yes", "no", "on", "off", "y", "n", "null", "~"};
  std::string lower = value;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  bool plain = !value.empty() && !std::isdigit(static_cast<unsigned char>(value[0])) && value[0] != '-' &&
               value[0] != '.' &&
               std::none_of(std::begin(kWords), std::end(kWords), [&](const char* w) { return lower == w; });
  for (char c : value)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.' && c != '/') plain = false;
  if (plain) return value;
  std::string out = "\"";
  for (char c : value) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (u < 0x20 || u == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", u);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string list(const std::vector<std::string>& items) {
  std::string out = "[";
  for (std::size_t i = 0; i < items.size(); ++i) out += (i ? ", " : "") + scalar(items[i]);
  return out + "]";
}

class Document {
 public:
  Document(const char* kind, const std::string& name) {
    out_ << "kind: " << kind << "\nname: " << scalar(name) << "\n";
  }
  Document& field(const char* key, const std::string& value) {
    out_ << key << ": " << value << "\n";
    return *this;
  }
  Document& string(const char* key, const std::string& value) { return field(key, scalar(value)); }
  // A key whose value is the indented lines that follow (`block` ends in a newline).
  Document& block(const char* key, const std::string& block) {
    out_ << key << ":\n" << block;
    return *this;
  }
  Document& comment(const std::string& text) {
    out_ << "# " << text << "\n";
    return *this;
  }
  std::string text() const { return out_.str(); }

 private:
  std::ostringstream out_;
};

// `s` is the first of `replicas` replicas of its template (0: a server of its own).
std::string serverDocument(const pool::Server& s, std::size_t replicas, const std::vector<std::string>& notes) {
  Document d("Server", replicas ? s.template_ : s.name);
  for (const auto& note : notes) d.comment(note);
  if (replicas) d.field("replicas", std::to_string(replicas));
  d.string("partition", s.partition).string("pool", s.pool);
  d.field("vcpus", std::to_string(s.vcpus)).field("memory", formatSize(s.memory));
  if (s.dedicated) d.field("dedicated", "true");
  if (!s.nics.empty()) {
    std::string nics = "[";
    for (std::size_t i = 0; i < s.nics.size(); ++i) {
      nics += std::string(i ? ", " : "") + "{network: " + scalar(s.nics[i].network);
      if (!s.nics[i].mac.empty()) nics += ", mac: " + scalar(s.nics[i].mac);
      nics += "}";
    }
    d.field("nics", nics + "]");
  }
  if (!s.disks.empty()) {
    std::string disks;
    for (const auto& disk : s.disks) {
      disks += "  - {image: " + scalar(disk.image);
      if (!disk.format.empty()) disks += ", format: " + scalar(disk.format);
      if (disk.readOnly) disks += ", readonly: true";
      disks += "}\n";
    }
    d.block("disks", disks);
  }
  if (!s.boot.empty()) {
    std::string boot;
    if (!s.boot.kernel.empty()) boot += "  kernel: " + scalar(s.boot.kernel) + "\n";
    if (!s.boot.initrd.empty()) boot += "  initrd: " + scalar(s.boot.initrd) + "\n";
    if (!s.boot.cmdline.empty()) boot += "  cmdline: " + scalar(s.boot.cmdline) + "\n";
    d.block("boot", boot);
  }
  if (s.xenType) d.field("xen", std::string("{type: ") + pool::toString(*s.xenType) + "}");
  d.field("priority", std::to_string(s.priority));
  if (!s.antiAffinity.empty()) d.string("anti_affinity", s.antiAffinity);
  d.field("power", pool::toString(s.power));
  if (!s.uuid.empty()) d.string("uuid", s.uuid);
  if (!s.identityPool.empty()) d.string("identity_pool", s.identityPool);
  return d.text();
}

// Replicas of one template differ in their names and, once an operator started or
// stopped one, their power: everything else is the template's.
bool sameButNameAndPower(pool::Server a, pool::Server b) {
  auto key = [](const pool::Server& s) {
    return std::tie(s.partition, s.pool, s.vcpus, s.memory, s.boot.kernel, s.boot.initrd, s.boot.cmdline, s.xenType,
                    s.priority, s.antiAffinity, s.dedicated, s.uuid, s.identityPool);
  };
  if (key(a) != key(b) || a.nics.size() != b.nics.size() || a.disks.size() != b.disks.size()) return false;
  for (std::size_t i = 0; i < a.nics.size(); ++i)
    if (a.nics[i].network != b.nics[i].network || a.nics[i].mac != b.nics[i].mac) return false;
  for (std::size_t i = 0; i < a.disks.size(); ++i)
    if (a.disks[i].image != b.disks[i].image || a.disks[i].format != b.disks[i].format ||
        a.disks[i].readOnly != b.disks[i].readOnly)
      return false;
  return true;
}

void writeServers(const std::vector<pool::Server>& servers, std::vector<WrittenDeclaration>& out) {
  std::map<std::string, std::vector<const pool::Server*>> replicas;  // template -> its replicas
  for (const auto& s : servers)
    if (!s.template_.empty()) replicas[s.template_].push_back(&s);
  for (const auto& s : servers) {
    if (s.template_.empty()) {
      out.push_back({"Server", s.name, s.partition, serverDocument(s, 0, {})});
      continue;
    }
    auto it = replicas.find(s.template_);
    if (it == replicas.end()) continue;  // written with its first replica
    auto group = it->second;
    replicas.erase(it);
    // NAME-0 first: the template's fields are every replica's.
    std::sort(group.begin(), group.end(), [&](const pool::Server* a, const pool::Server* b) {
      return a->name.size() != b->name.size() ? a->name.size() < b->name.size() : a->name < b->name;
    });
    pool::Server first = *group.front();
    // The power most replicas have is the template's; the others are named.
    const auto off = std::count_if(group.begin(), group.end(),
                                   [](const pool::Server* r) { return r->power == pool::PowerState::Off; });
    first.power = 2 * static_cast<std::size_t>(off) > group.size() ? pool::PowerState::Off : pool::PowerState::On;
    std::vector<std::string> notes;
    for (const auto* r : group) {
      if (r->power != first.power)
        notes.push_back(r->name + " is powered " + pool::toString(r->power) +
                        " (server start/stop); applying this document powers it " + pool::toString(first.power));
      else if (!sameButNameAndPower(*r, first))
        notes.push_back(r->name + " differs from " + first.name + "; applying this document makes it the same");
    }
    out.push_back({"Server", s.template_, s.partition, serverDocument(first, group.size(), notes)});
  }
}

}  // namespace

std::vector<WrittenDeclaration> writeDeclarations(const pool::Declarations& declarations) {
  std::vector<WrittenDeclaration> out;
  for (const auto& p : declarations.partitions)
    out.push_back({"Partition", p.name, p.name, Document("Partition", p.name).text()});
  for (const auto& n : declarations.networks) {
    Document d("Network", n.name);
    d.string("partition", n.partition);
    if (n.vlan) d.field("vlan", std::to_string(*n.vlan));
    out.push_back({"Network", n.name, n.partition, d.text()});
  }
  for (const auto& i : declarations.identityPools) {
    Document d("IdentityPool", i.name);
    std::vector<std::string> macs, uuids;
    for (const auto& m : i.macs) macs.push_back(formatMac(m.first) + "-" + formatMac(m.last));
    for (const auto& u : i.uuids) uuids.push_back(formatUuidRange(u));
    if (!macs.empty()) d.field("macs", list(macs));
    if (!uuids.empty()) d.field("uuids", list(uuids));
    out.push_back({"IdentityPool", i.name, "", d.text()});
  }
  for (const auto& p : declarations.pools) {
    Document d("Pool", p.name);
    if (!p.partition.empty()) d.string("partition", p.partition);
    if (p.sparePool) d.field("spare_pool", "true");
    if (p.hypervisor) d.field("hypervisor", pool::toString(*p.hypervisor));
    std::string blades;
    if (!p.bladeNames.empty()) blades += "  names: " + list(p.bladeNames) + "\n";
    if (p.match) {
      std::vector<std::string> rules;
      if (p.match->chassis) rules.push_back("chassis: " + scalar(*p.match->chassis));
      if (p.match->minCores) rules.push_back("min_cores: " + std::to_string(*p.match->minCores));
      if (p.match->minMemory) rules.push_back("min_memory: " + formatSize(*p.match->minMemory));
      if (p.match->model) rules.push_back("model: " + scalar(*p.match->model));
      if (p.match->hypervisor) rules.push_back(std::string("hypervisor: ") + pool::toString(*p.match->hypervisor));
      std::string match = "  match: {";
      for (std::size_t i = 0; i < rules.size(); ++i) match += (i ? ", " : "") + rules[i];
      blades += match + "}\n";
    }
    d.block("blades", blades);
    if (!p.sparePool) d.field("spares", std::to_string(p.spares));
    d.field("failover", pool::toString(p.failover)).field("failback", pool::toString(p.failback));
    if (!p.borrowFrom.empty()) d.string("borrow_from", p.borrowFrom);
    if (!p.identityPool.empty()) d.string("identity_pool", p.identityPool);
    out.push_back({"Pool", p.name, p.partition, d.text()});
  }
  writeServers(declarations.servers, out);
  for (const auto& b : declarations.blades) {
    Document d("Blade", b.name);
    if (b.bmc)
      d.field("bmc", "{address: " + scalar(b.bmc->address) + ", port: " + std::to_string(b.bmc->port) +
                         ", user: " + scalar(b.bmc->user) + ", password_file: " + scalar(b.bmc->passwordFile) + "}");
    out.push_back({"Blade", b.name, "", d.text()});
  }
  return out;
}

std::string joinDocuments(const std::vector<WrittenDeclaration>& documents) {
  std::string out;
  for (std::size_t i = 0; i < documents.size(); ++i) out += (i ? "---\n" : "") + documents[i].yaml;
  return out;
}

}  // namespace loom::config
