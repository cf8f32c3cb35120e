// `kind: Server`: its fields, NICs, disks, direct kernel boot, Xen guest type, and the
// replicas a template expands to (each counted against kMaxExpandedObjects).
#include <cctype>
#include <climits>

#include "config/ValueSyntax.h"
#include "config/detail/FieldReader.h"
#include "config/detail/KindReaders.h"

namespace loom::config::detail {

namespace {

void readNics(const MapReader& r, pool::Server& s, Origin& origin) {
  const YamlNode* node = r.node("nics");
  if (!node) return;
  if (!node->isSequence()) {
    r.error("nics", "expected a list of {network, mac?}, got " + describe(*node));
    return;
  }
  for (std::size_t i = 0; i < node->size(); ++i) {
    const YamlNode& item = node->item(i);
    std::string path = "nics[" + std::to_string(i) + "]";
    if (!item.isMap()) {
      r.diagnostics().error(r.source().locate(item),
                            r.context() + ": " + path + ": expected a mapping {network, mac?}, got " + describe(item));
      continue;
    }
    MapReader nic(item, r.source(), r.diagnostics(), r.context(), path + ".", {"network", "mac"});
    pool::Nic n;
    n.network = nic.string("network", Need::Required).value_or("");
    nic.remember(origin, "network");
    if (auto mac = nic.string("mac")) {
      if (auto value = parseMac(*mac)) {
        if ((*value >> 40) & 0x01) {
          nic.error("mac", "'" + *mac + "' is a multicast address (first octet odd); a NIC needs a unicast MAC");
        } else {
          n.mac = formatMac(*value);
        }
      } else {
        nic.error("mac", "expected a MAC address such as 52:54:00:12:34:56, got '" + *mac + "'");
      }
      nic.remember(origin, "mac");
    }
    s.nics.push_back(std::move(n));
  }
}

void readDisks(const MapReader& r, pool::Server& s) {
  const YamlNode* node = r.node("disks");
  if (!node) return;
  if (!node->isSequence()) {
    r.error("disks", "expected a list of {image, format?, readonly?}, got " + describe(*node));
    return;
  }
  for (std::size_t i = 0; i < node->size(); ++i) {
    const YamlNode& item = node->item(i);
    std::string path = "disks[" + std::to_string(i) + "]";
    if (!item.isMap()) {
      r.diagnostics().error(
          r.source().locate(item),
          r.context() + ": " + path + ": expected a mapping {image, format?, readonly?}, got " + describe(item));
      continue;
    }
    MapReader disk(item, r.source(), r.diagnostics(), r.context(), path + ".", {"image", "format", "readonly"});
    pool::Disk d;
    d.image = disk.string("image", Need::Required).value_or("");
    if (auto format = disk.string("format")) {
      if (*format == "qcow2" || *format == "raw") {
        d.format = *format;
      } else {
        disk.error("format", "expected qcow2 or raw, got '" + *format + "'");
      }
    }
    d.readOnly = disk.boolean("readonly").value_or(false);
    s.disks.push_back(std::move(d));
  }
}

void readBoot(const MapReader& r, pool::Server& s, Origin& origin) {
  const YamlNode* node = r.node("boot");
  if (!node) return;
  if (!node->isMap()) {
    r.error("boot", "expected a mapping {kernel, initrd?, cmdline?}, got " + describe(*node));
    return;
  }
  MapReader boot(*node, r.source(), r.diagnostics(), r.context(), "boot.", {"kernel", "initrd", "cmdline"});
  s.boot.kernel = boot.string("kernel").value_or("");
  s.boot.initrd = boot.string("initrd").value_or("");
  s.boot.cmdline = boot.string("cmdline").value_or("");
  origin.fields["boot"] = r.valueAt("boot");
  if (s.boot.kernel.empty() && !boot.has("kernel")) {
    boot.missing("kernel", " (direct kernel boot needs a kernel; initrd and cmdline go with it)");
  }
}

void readXen(const MapReader& r, pool::Server& s, Origin& origin) {
  const YamlNode* node = r.node("xen");
  if (!node) return;
  if (!node->isMap()) {
    r.error("xen", "expected a mapping {type: pv|pvh|hvm}, got " + describe(*node));
    return;
  }
  MapReader xen(*node, r.source(), r.diagnostics(), r.context(), "xen.", {"type"});
  s.xenType = xen.choice("type", &pool::parseXenGuestType, "pv, pvh or hvm", Need::Required);
  origin.fields["xen"] = r.valueAt("xen");
  xen.remember(origin, "type");
}

}  // namespace

void readServer(const MapReader& r, LocatedDeclarations& out) {
  Origin origin = originOf(r, "Server");
  auto name = readName(r, origin);
  pool::Server s;
  s.partition = r.string("partition", Need::Required).value_or("");
  r.remember(origin, "partition");
  s.pool = r.string("pool", Need::Required).value_or("");
  r.remember(origin, "pool");
  s.dedicated = r.boolean("dedicated").value_or(false);
  // A dedicated server owns its blade: sizes default to the model's and the blade decides.
  Need sized = s.dedicated ? Need::Optional : Need::Required;
  if (auto vcpus = r.integer("vcpus", 1, 4096, sized)) s.vcpus = static_cast<std::uint32_t>(*vcpus);
  if (auto memory = r.size("memory", sized)) s.memory = *memory;
  readNics(r, s, origin);
  readDisks(r, s);
  readBoot(r, s, origin);
  readXen(r, s, origin);
  if (auto priority = r.integer("priority", INT_MIN, INT_MAX)) s.priority = static_cast<int>(*priority);
  s.antiAffinity = r.string("anti_affinity").value_or("");
  if (const YamlNode* power = r.node("power")) {
    // `power: on` is a YAML 1.1 boolean to some tools; accept every spelling of it.
    if (power->isScalar()) {
      if (auto on = parseBoolean(power->scalar())) {
        s.power = *on ? pool::PowerState::On : pool::PowerState::Off;
      } else {
        r.error("power", "expected on or off, got '" + power->scalar() + "'");
      }
    } else {
      r.error("power", "expected on or off, got " + describe(*power));
    }
  }
  if (auto uuid = r.string("uuid")) {
    if (isUuid(*uuid)) {
      s.uuid = *uuid;
      for (char& c : s.uuid) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    } else {
      r.error("uuid", "expected a UUID such as 4c4f4f4d-0000-0000-0000-000000000001, got '" + *uuid + "'");
    }
    r.remember(origin, "uuid");
  }
  s.identityPool = r.string("identity_pool").value_or("");
  r.remember(origin, "identity_pool");
  std::optional<std::int64_t> replicas = r.integer("replicas", 1, kMaxReplicas);
  if (replicas) {
    // Replicas share everything but the name; a fixed identity cannot be shared.
    if (!s.uuid.empty())
      r.error("uuid", "a fixed uuid cannot be given to a template with replicas (each replica needs its own)");
    for (std::size_t i = 0; i < s.nics.size(); ++i) {
      if (!s.nics[i].mac.empty()) {
        r.diagnostics().error(
            origin.at("nics[" + std::to_string(i) + "].mac"),
            r.context() + ": nics[" + std::to_string(i) +
                "].mac: a fixed MAC cannot be given to a template with replicas (each replica needs its own)");
      }
    }
  }
  if (!name) return;
  const std::size_t each = 1 + s.nics.size() + s.disks.size();
  if (!replicas) {
    if (!admit(r, out, each, 1)) return;
    s.name = *name;
    out.declarations.servers.push_back(std::move(s));
    out.servers.push_back(std::move(origin));
    return;
  }
  std::string longest = *name + "-" + std::to_string(*replicas - 1);
  if (longest.size() > kMaxName) {
    r.error("name",
            "replica names such as '" + longest + "' would be longer than " + std::to_string(kMaxName) + " characters");
    return;
  }
  if (!admit(r, out, each, *replicas, "replicas")) return;
  for (std::int64_t i = 0; i < *replicas; ++i) {
    pool::Server replica = s;
    replica.name = *name + "-" + std::to_string(i);
    replica.template_ = *name;
    Origin replicaOrigin = origin;
    replicaOrigin.replicaOf = *name;
    out.declarations.servers.push_back(std::move(replica));
    out.servers.push_back(std::move(replicaOrigin));
  }
}

}  // namespace loom::config::detail
