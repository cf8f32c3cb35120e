// Checks every driver applies to a DomainSpec before handing it to a hypervisor, so a bad
// spec gets the same precise error ("domain 'web-01': nic 0 MAC 'zz' is not ...") from
// every driver instead of whatever each hypervisor library happens to say.
#pragma once

#include <string>

#include "drivers/Driver.h"

namespace loom::drivers {

// Invalid error naming the domain and the field, or ok. Pure.
Status validateDomainSpec(const DomainSpec& spec);

bool isCanonicalUuid(const std::string& uuid);  // lower-case 8-4-4-4-12 hex
bool isUnicastMac(const std::string& mac);      // "52:54:00:10:00:01", lower or upper hex

}  // namespace loom::drivers
