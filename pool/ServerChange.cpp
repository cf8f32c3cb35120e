#include "pool/ServerChange.h"

namespace loom::pool {

namespace {

std::string nicsText(const std::vector<Nic>& nics) {
  if (nics.empty()) return "none";
  std::string out;
  for (const auto& n : nics) {
    if (!out.empty()) out += ", ";
    out += n.network;
    if (!n.mac.empty()) out += " (" + n.mac + ")";
  }
  return out;
}

std::string disksText(const std::vector<Disk>& disks) {
  if (disks.empty()) return "none";
  std::string out;
  for (const auto& d : disks) {
    if (!out.empty()) out += ", ";
    out += d.image;
    if (!d.format.empty()) out += " (" + d.format + ")";
    if (d.readOnly) out += " read-only";
  }
  return out;
}

std::string bootText(const Boot& b) {
  if (b.empty()) return "none";
  std::string out = "kernel " + (b.kernel.empty() ? std::string("none") : b.kernel);
  if (!b.initrd.empty()) out += ", initrd " + b.initrd;
  if (!b.cmdline.empty()) out += ", cmdline \"" + b.cmdline + "\"";
  return out;
}

std::string orNone(const std::string& s) { return s.empty() ? "none" : s; }

bool sameNics(const std::vector<Nic>& a, const std::vector<Nic>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i].network != b[i].network || a[i].mac != b[i].mac) return false;
  return true;
}

bool sameDisks(const std::vector<Disk>& a, const std::vector<Disk>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i].image != b[i].image || a[i].format != b[i].format || a[i].readOnly != b[i].readOnly) return false;
  return true;
}

}  // namespace

const char* toString(ChangeEffect e) {
  switch (e) {
    case ChangeEffect::Live:
      return "live";
    case ChangeEffect::Restart:
      return "restart";
    case ChangeEffect::Move:
      return "move";
    case ChangeEffect::Power:
      return "power";
  }
  return "?";
}

std::vector<FieldChange> diffServer(const Server& a, const Server& b) {
  std::vector<FieldChange> out;
  auto add = [&](const char* field, std::string from, std::string to, ChangeEffect effect) {
    out.push_back({field, std::move(from), std::move(to), effect});
  };
  using E = ChangeEffect;
  if (a.partition != b.partition) add("partition", a.partition, b.partition, E::Live);
  if (a.pool != b.pool) add("pool", a.pool, b.pool, E::Move);
  if (a.vcpus != b.vcpus) add("vcpus", std::to_string(a.vcpus), std::to_string(b.vcpus), E::Restart);
  if (a.memory != b.memory) add("memory", formatSize(a.memory), formatSize(b.memory), E::Restart);
  if (!sameNics(a.nics, b.nics)) add("nics", nicsText(a.nics), nicsText(b.nics), E::Restart);
  if (!sameDisks(a.disks, b.disks)) add("disks", disksText(a.disks), disksText(b.disks), E::Restart);
  if (a.boot.kernel != b.boot.kernel || a.boot.initrd != b.boot.initrd || a.boot.cmdline != b.boot.cmdline)
    add("boot", bootText(a.boot), bootText(b.boot), E::Restart);
  if (a.xenType != b.xenType)
    add("xen.type", a.xenType ? toString(*a.xenType) : "hvm (default)",
        b.xenType ? toString(*b.xenType) : "hvm (default)", E::Restart);
  if (a.uuid != b.uuid) add("uuid", orNone(a.uuid), orNone(b.uuid), E::Live);
  if (a.priority != b.priority) add("priority", std::to_string(a.priority), std::to_string(b.priority), E::Live);
  if (a.antiAffinity != b.antiAffinity) add("anti_affinity", orNone(a.antiAffinity), orNone(b.antiAffinity), E::Live);
  if (a.dedicated != b.dedicated)
    add("dedicated", a.dedicated ? "true" : "false", b.dedicated ? "true" : "false", E::Live);
  if (a.identityPool != b.identityPool) add("identity_pool", orNone(a.identityPool), orNone(b.identityPool), E::Live);
  if (a.power != b.power) add("power", toString(a.power), toString(b.power), E::Power);
  return out;
}

std::string restartReason(const std::vector<FieldChange>& changes) {
  std::string out;
  for (const auto& c : changes) {
    if (c.effect != ChangeEffect::Restart) continue;
    if (!out.empty()) out += ", ";
    out += c.field + " " + c.from + " → " + c.to;
  }
  return out;
}

}  // namespace loom::pool
