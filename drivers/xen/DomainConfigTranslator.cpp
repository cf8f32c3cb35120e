#include "drivers/xen/DomainConfigTranslator.h"

#include <cctype>
#include <cstdlib>
#include <cstring>
#include <new>

#include "drivers/SpecValidation.h"

namespace loom::drivers::xen {
namespace {

// libxl frees every string and array in a config with free(): give it malloc'd copies.
char* dupString(const std::string& s) {
  char* p = strdup(s.c_str());
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

template <class T>
T* callocArray(std::size_t n) {
  auto* p = static_cast<T*>(std::calloc(n, sizeof(T)));
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

Error invalid(const DomainSpec& spec, const std::string& what) {
  return makeError(Errc::Invalid, "xen: domain '" + spec.name + "': " + what);
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

libxl_domain_type domainType(XenGuestType type) {
  switch (type) {
    case XenGuestType::Pv:
      return LIBXL_DOMAIN_TYPE_PV;
    case XenGuestType::Pvh:
      return LIBXL_DOMAIN_TYPE_PVH;
    case XenGuestType::Hvm:
      return LIBXL_DOMAIN_TYPE_HVM;
  }
  return LIBXL_DOMAIN_TYPE_HVM;
}

}  // namespace

Result<std::array<std::uint8_t, 6>> parseMac(const std::string& text) {
  std::array<std::uint8_t, 6> mac{};
  if (text.size() != 17) return makeError(Errc::Invalid, "malformed MAC '" + text + "'");
  for (std::size_t i = 0; i < 6; ++i) {
    int hi = hexValue(text[i * 3]);
    int lo = hexValue(text[i * 3 + 1]);
    if (hi < 0 || lo < 0 || (i < 5 && text[i * 3 + 2] != ':'))
      return makeError(Errc::Invalid, "malformed MAC '" + text + "'");
    mac[i] = static_cast<std::uint8_t>(hi * 16 + lo);
  }
  if (mac[0] & 0x01) return makeError(Errc::Invalid, "MAC '" + text + "' is a multicast address");
  return mac;
}

std::string formatMac(const std::uint8_t* mac) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < 6; ++i) {
    if (i) out += ':';
    out += digits[mac[i] >> 4];
    out += digits[mac[i] & 0xf];
  }
  return out;
}

bool isValidDomainName(const std::string& name) {
  if (name.empty() || name.size() > 64 || name[0] == '-' || name[0] == '.') return false;
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') return false;
  }
  return true;
}

Result<DomainConfig> DomainConfigTranslator::translate(const DomainSpec& spec) const {
  if (auto valid = validateDomainSpec(spec); !valid) return valid.error();
  if (!isValidDomainName(spec.name))
    return invalid(spec, "a Xen domain name must be 1-64 characters of [A-Za-z0-9._-]");
  if (spec.disks.size() > 26) return invalid(spec, "at most 26 disks (xvda..xvdz)");
  if (spec.xenType == XenGuestType::Pvh && spec.kernel.empty())
    return invalid(spec, "a PVH guest needs a kernel (boot.kernel)");
  if (spec.xenType == XenGuestType::Pv && spec.kernel.empty() && spec.disks.empty())
    return invalid(spec, "a PV guest needs a kernel (boot.kernel) or a disk to boot from");

  DomainConfig config;
  libxl_domain_config& c = *config.get();
  const libxl_domain_type type = domainType(spec.xenType);

  c.c_info.type = type;
  c.c_info.name = dupString(spec.name);
  if (libxl_uuid_from_string(&c.c_info.uuid, spec.uuid.c_str()) != 0)
    return invalid(spec, "libxl refused UUID '" + spec.uuid + "'");

  libxl_domain_build_info& b = c.b_info;
  libxl_domain_build_info_init_type(&b, type);
  b.max_vcpus = static_cast<int>(spec.vcpus);
  // All vcpus online from boot; libxl would otherwise bring up only vcpu 0. The bitmap
  // is built by hand because libxl_bitmap_alloc wants a ctx; _dispose free()s map.
  b.avail_vcpus.size = (spec.vcpus + 7) / 8;
  b.avail_vcpus.map = callocArray<std::uint8_t>(b.avail_vcpus.size);
  for (std::uint32_t i = 0; i < spec.vcpus; ++i) libxl_bitmap_set(&b.avail_vcpus, static_cast<int>(i));
  b.max_memkb = spec.memory * 1024;
  b.target_memkb = spec.memory * 1024;

  if (!spec.kernel.empty()) {
    b.kernel = dupString(spec.kernel);
    if (!spec.initrd.empty()) b.ramdisk = dupString(spec.initrd);
    if (!spec.cmdline.empty()) b.cmdline = dupString(spec.cmdline);
  }
  switch (spec.xenType) {
    case XenGuestType::Pv:
      // No kernel: boot what the first disk's grub config names, as `xl` does.
      if (spec.kernel.empty()) b.u.pv.bootloader = dupString("pygrub");
      break;
    case XenGuestType::Pvh:
      break;
    case XenGuestType::Hvm:
      b.u.hvm.boot = dupString("c");
      // A blade has no one watching a framebuffer: the console is the serial line
      // (`xl console`), and no VNC port is opened on the blade.
      b.u.hvm.serial = dupString("pty");
      libxl_defbool_set(&b.u.hvm.vnc.enable, false);
      break;
  }

  // libxl itself never restarts or reaps a domain (that is xl's daemon loop); Loom's
  // agent reconciles instead, so every way out of the guest simply ends the domain.
  c.on_poweroff = LIBXL_ACTION_ON_SHUTDOWN_DESTROY;
  c.on_reboot = LIBXL_ACTION_ON_SHUTDOWN_DESTROY;
  c.on_watchdog = LIBXL_ACTION_ON_SHUTDOWN_DESTROY;
  c.on_crash = LIBXL_ACTION_ON_SHUTDOWN_DESTROY;

  if (!spec.nics.empty()) {
    c.nics = callocArray<libxl_device_nic>(spec.nics.size());
    c.num_nics = static_cast<int>(spec.nics.size());
    for (std::size_t i = 0; i < spec.nics.size(); ++i) libxl_device_nic_init(&c.nics[i]);
    for (std::size_t i = 0; i < spec.nics.size(); ++i) {
      const NicSpec& nicSpec = spec.nics[i];
      libxl_device_nic& nic = c.nics[i];
      nic.devid = static_cast<libxl_devid>(i);
      auto mac = parseMac(nicSpec.mac);
      if (!mac) return invalid(spec, "NIC " + std::to_string(i) + ": " + mac.error().message);
      std::memcpy(nic.mac, mac->data(), 6);
      // PV and PVH guests only have the PV netfront; an HVM guest also gets an
      // emulated NIC for firmware and installers, unplugged once PV drivers load.
      nic.nictype = type == LIBXL_DOMAIN_TYPE_HVM ? LIBXL_NIC_TYPE_VIF_IOEMU : LIBXL_NIC_TYPE_VIF;
      // The VLAN is carried by the bridge the agent maps the network to; Xen's vif has
      // nothing to set for it.
      if (!nicSpec.bridge.empty()) {
        nic.bridge = dupString(nicSpec.bridge);
      } else if (!options_.isolatedVifScript.empty()) {
        nic.script = dupString(options_.isolatedVifScript);
      }
    }
  }

  if (!spec.disks.empty()) {
    c.disks = callocArray<libxl_device_disk>(spec.disks.size());
    c.num_disks = static_cast<int>(spec.disks.size());
    for (std::size_t i = 0; i < spec.disks.size(); ++i) libxl_device_disk_init(&c.disks[i]);
    for (std::size_t i = 0; i < spec.disks.size(); ++i) {
      const DiskSpec& diskSpec = spec.disks[i];
      libxl_device_disk& disk = c.disks[i];
      // validateDomainSpec admitted only "raw" and "qcow2".
      disk.format = diskSpec.format == "qcow2" ? LIBXL_DISK_FORMAT_QCOW2 : LIBXL_DISK_FORMAT_RAW;
      disk.pdev_path = dupString(diskSpec.path);
      disk.vdev = dupString(std::string("xvd") + static_cast<char>('a' + i));
      // qdisk (qemu in dom0) serves both raw and qcow2 from a file; blkback would need
      // a loop device and cannot read qcow2.
      disk.backend = LIBXL_DISK_BACKEND_QDISK;
      disk.readwrite = diskSpec.readOnly ? 0 : 1;
    }
  }
  return config;
}

}  // namespace loom::drivers::xen
