#include "drivers/Driver.h"

namespace loom::drivers {

Status Driver::preparePersonality(pool::Hypervisor hypervisor) {
  if (capabilities().personalities.has(hypervisor)) return okStatus();
  return makeError(Errc::Unsupported,
                   "the " + name() + " driver cannot become a " + pool::toString(hypervisor) + " blade in place");
}

Status Driver::renewWatchdog(std::int64_t /*remainingMs*/) {
  return makeError(Errc::Unsupported, "the " + name() + " driver has no watchdog");
}

Status Driver::disarmWatchdog() { return makeError(Errc::Unsupported, "the " + name() + " driver has no watchdog"); }

}  // namespace loom::drivers
