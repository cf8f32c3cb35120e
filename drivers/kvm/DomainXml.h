// The KVM driver's pure translator: DomainSpec -> libvirt domain XML (and back, for the
// few facts the adapter reads from libvirt's XML). No libvirt, no I/O, no clock: what it
// produces is pinned by golden files in tests/drivers/golden/.
//
// What the XML says, and why:
// - name, uuid, memory (MiB), vcpus: the server's identity and size, unchanged, so
//   `virsh list` shows the server Loom shows.
// - <os>: hvm; boot from disk, then network; or direct kernel boot when spec.kernel is set.
// - NICs keep the server's MAC. With a bridge: <interface type='bridge'> (+ <vlan><tag/>
//   when the network has a VLAN; libvirt applies tags on Open vSwitch bridges). Without
//   one: <interface type='user'>, qemu user networking, which reaches nothing outside the
//   host (DESIGN.md: an unmapped network still gives the NIC its MAC). The VLAN of a NIC
//   without a bridge is meaningless and dropped. Every NIC has <rom enabled='no'/>: no
//   iPXE option ROM, so a guest cannot network-boot from whatever answers on the wire.
// - disks: file-backed virtio, qcow2 or raw, read-only when asked.
// - a serial console on a pty, so an operator can attach with `virsh console`.
// - <domain type=...>: "kvm" or "qemu" (TCG), decided by the adapter from the host and
//   passed in, so the translator stays pure.
#pragma once

#include <string>
#include <vector>

#include "drivers/Driver.h"

namespace loom::drivers::kvm {

struct DomainXmlOptions {
  std::string domainType = "kvm";  // "kvm" | "qemu"
};

// The domain XML, or an Invalid error naming the domain (validateDomainSpec + options).
Result<std::string> domainXml(const DomainSpec& spec, const DomainXmlOptions& options);

// The MACs of every <interface> in a libvirt domain XML, in document order.
std::vector<std::string> macsFromDomainXml(const std::string& xml);

// The host CPU model from libvirt's capabilities XML (<host><cpu><model>), or "".
std::string hostCpuModelFromCapabilities(const std::string& capabilitiesXml);
// Whether the capabilities XML offers a guest domain type ("kvm", "qemu").
bool capabilitiesOfferDomainType(const std::string& capabilitiesXml, const std::string& type);

// XML-escapes text and attribute values.
std::string xmlEscape(const std::string& text);

}  // namespace loom::drivers::kvm
