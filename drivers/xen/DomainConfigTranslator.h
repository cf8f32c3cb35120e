// DomainConfigTranslator: the pure layer of the Xen driver. DomainSpec (the logical
// server as a blade sees it) -> libxl_domain_config. No libxl_ctx, no I/O, no clock:
// the same spec always gives the same config, byte for byte through
// libxl_domain_config_to_json, which is what the golden tests pin.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "drivers/Driver.h"
#include "drivers/xen/DomainConfig.h"
#include "loom/Result.h"

namespace loom::drivers::xen {

struct TranslateOptions {
  // Hotplug script for a NIC with no bridge (an isolated vif). libxl's default script,
  // vif-bridge, would plug the vif into xenbr0 and fail domain creation when that bridge
  // does not exist; this script only brings the vif up in dom0 and reports it
  // connected, so the guest gets its NIC, MAC and link, reaching nothing but dom0.
  // Empty: leave libxl's default (a host that has xenbr0).
  std::string isolatedVifScript;
};

class DomainConfigTranslator {
 public:
  explicit DomainConfigTranslator(TranslateOptions options = {}) : options_(std::move(options)) {}

  // Invalid (naming the domain and the field) for specs Xen cannot run: whatever
  // validateDomainSpec (drivers/SpecValidation.h) refuses for every driver, plus a name
  // Xen cannot carry, PVH without a kernel, PV with neither kernel nor disk, and more
  // disks than xvda..xvdz.
  Result<DomainConfig> translate(const DomainSpec& spec) const;

 private:
  TranslateOptions options_;
};

// "52:54:00:10:00:01" (also upper case) -> bytes; Invalid otherwise.
Result<std::array<std::uint8_t, 6>> parseMac(const std::string& text);
std::string formatMac(const std::uint8_t* mac);
// Xen domain names end up in xenstore paths and log file names: keep them to
// [A-Za-z0-9._-], not starting with '-' or '.', and at most 64 characters.
bool isValidDomainName(const std::string& name);

}  // namespace loom::drivers::xen
