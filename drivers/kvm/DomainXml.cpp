#include "drivers/kvm/DomainXml.h"

#include <cctype>
#include <sstream>

#include "drivers/SpecValidation.h"

namespace loom::drivers::kvm {
namespace {

// vda, vdb, ..., vdz, vdaa, ...: the names libvirt expects for virtio disks.
std::string virtioDiskName(size_t index) {
  std::string suffix;
  size_t n = index + 1;
  while (n > 0) {
    --n;
    suffix.insert(suffix.begin(), static_cast<char>('a' + n % 26));
    n /= 26;
  }
  return "vd" + suffix;
}

std::string toLower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

std::string xmlEscape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '\'':
        out += "&apos;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

Result<std::string> domainXml(const DomainSpec& spec, const DomainXmlOptions& options) {
  if (auto s = validateDomainSpec(spec); !s) return s.error();
  if (options.domainType != "kvm" && options.domainType != "qemu") {
    return makeError(Errc::Invalid,
                     "domain '" + spec.name + "': domain type '" + options.domainType + "' is not kvm or qemu");
  }
  std::ostringstream x;
  x << "<domain type='" << options.domainType << "'>\n";
  x << "  <name>" << xmlEscape(spec.name) << "</name>\n";
  x << "  <uuid>" << spec.uuid << "</uuid>\n";
  x << "  <memory unit='MiB'>" << spec.memory << "</memory>\n";
  x << "  <vcpu>" << spec.vcpus << "</vcpu>\n";
  x << "  <os>\n";
  x << "    <type>hvm</type>\n";
  if (!spec.kernel.empty()) {
    x << "    <kernel>" << xmlEscape(spec.kernel) << "</kernel>\n";
    if (!spec.initrd.empty()) x << "    <initrd>" << xmlEscape(spec.initrd) << "</initrd>\n";
    if (!spec.cmdline.empty()) x << "    <cmdline>" << xmlEscape(spec.cmdline) << "</cmdline>\n";
  } else {
    x << "    <boot dev='hd'/>\n";
    x << "    <boot dev='network'/>\n";
  }
  x << "  </os>\n";
  // ACPI lets virDomainShutdown ask the guest politely before stop() destroys it.
  x << "  <features>\n    <acpi/>\n    <apic/>\n  </features>\n";
  x << "  <on_poweroff>destroy</on_poweroff>\n";
  x << "  <on_reboot>restart</on_reboot>\n";
  // A crashed guest stays down and is reported: the controller decides where it restarts.
  x << "  <on_crash>destroy</on_crash>\n";
  x << "  <devices>\n";
  for (size_t i = 0; i < spec.disks.size(); ++i) {
    const auto& d = spec.disks[i];
    x << "    <disk type='file' device='disk'>\n";
    x << "      <driver name='qemu' type='" << d.format << "'/>\n";
    x << "      <source file='" << xmlEscape(d.path) << "'/>\n";
    x << "      <target dev='" << virtioDiskName(i) << "' bus='virtio'/>\n";
    if (d.readOnly) x << "      <readonly/>\n";
    x << "    </disk>\n";
  }
  for (const auto& nic : spec.nics) {
    if (!nic.bridge.empty()) {
      x << "    <interface type='bridge'>\n";
      x << "      <mac address='" << toLower(nic.mac) << "'/>\n";
      x << "      <source bridge='" << xmlEscape(nic.bridge) << "'/>\n";
      if (nic.vlan) x << "      <vlan>\n        <tag id='" << *nic.vlan << "'/>\n      </vlan>\n";
    } else {
      x << "    <interface type='user'>\n";
      x << "      <mac address='" << toLower(nic.mac) << "'/>\n";
    }
    x << "      <model type='virtio'/>\n";
    x << "      <rom enabled='no'/>\n";
    x << "    </interface>\n";
  }
  x << "    <serial type='pty'>\n      <target port='0'/>\n    </serial>\n";
  x << "    <console type='pty'>\n      <target type='serial' port='0'/>\n    </console>\n";
  x << "  </devices>\n";
  x << "</domain>\n";
  return x.str();
}

std::vector<std::string> macsFromDomainXml(const std::string& xml) {
  // libvirt writes <mac address='..'/> only inside <interface>, always single-quoted.
  std::vector<std::string> out;
  const std::string needle = "<mac address='";
  for (auto pos = xml.find(needle); pos != std::string::npos; pos = xml.find(needle, pos)) {
    pos += needle.size();
    const auto end = xml.find('\'', pos);
    if (end == std::string::npos) break;
    out.push_back(xml.substr(pos, end - pos));
    pos = end;
  }
  return out;
}

std::string hostCpuModelFromCapabilities(const std::string& caps) {
  const auto host = caps.find("<host>");
  if (host == std::string::npos) return "";
  const auto hostEnd = caps.find("</host>", host);
  const auto cpu = caps.find("<cpu>", host);
  if (cpu == std::string::npos || cpu > hostEnd) return "";
  auto model = caps.find("<model", cpu);
  const auto cpuEnd = caps.find("</cpu>", cpu);
  if (model == std::string::npos || model > cpuEnd) return "";
  model = caps.find('>', model);
  const auto modelEnd = caps.find("</model>", model);
  if (model == std::string::npos || modelEnd == std::string::npos) return "";
  return caps.substr(model + 1, modelEnd - model - 1);
}

bool capabilitiesOfferDomainType(const std::string& caps, const std::string& type) {
  return caps.find("<domain type='" + type + "'") != std::string::npos;
}

}  // namespace loom::drivers::kvm
