// What ends a blade's domains at the lease deadline when the agent cannot: a frozen or
// killed agent runs no code, so self-fencing by the agent alone is not enough (XAPI and
// Proxmox HA arm a hardware watchdog for the same reason). The agent renews its guard at
// every lease renewal; if the renewals stop, the guard fires by the deadline.
//
// Implementations:
// - a driver's own watchdog (Driver::renewWatchdog, where capabilities().watchdog): the
//   test driver models a simulated blade's, and its journal shows the domains ending
//   exactly at the deadline, even when the agent process is SIGSTOPped or killed;
// - a watchdog device (/dev/watchdog, e.g. softdog or a BMC's): the host resets.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "drivers/Driver.h"
#include "loom/Result.h"

namespace loom::agent {

class LeaseGuard {
 public:
  virtual ~LeaseGuard() = default;
  // For logs: "test driver watchdog", "watchdog device /dev/watchdog".
  virtual std::string describe() const = 0;
  // The lease now runs `remainingMs` more: the guard must fire no later than that if it is
  // not renewed again. Cheap: called at every renewal (once a second per blade).
  virtual void renew(std::int64_t remainingMs) = 0;
  // The blade is power-fenced (docs/FENCING.md): its BMC, not its lease, is the authority,
  // so nothing must fire until the next renew().
  virtual void disarm() = 0;
};

// Renews `driver`'s own watchdog (Driver::renewWatchdog); nullptr when the driver has none
// (capabilities().watchdog is false). The driver must outlive the guard.
std::unique_ptr<LeaseGuard> makeDriverWatchdogGuard(drivers::Driver& driver);

// A watchdog device. It is opened (which starts it) at the first renewal, not before: a
// blade that never got a lease has nothing to guard. Each renewal sets the device's
// timeout to the whole seconds left of the lease (rounded down, so the reset comes no
// later than the deadline) and pets it. The device is never closed with the magic 'V':
// an agent that stops, crashes or hangs leaves the countdown running, as it must.
// Fails at once when `path` cannot be opened for writing.
Result<std::unique_ptr<LeaseGuard>> makeWatchdogDeviceGuard(const std::string& path);

}  // namespace loom::agent
