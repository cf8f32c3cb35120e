#include "controller/ServiceNotifier.h"

#include <systemd/sd-daemon.h>

namespace loom::controller {

ServiceNotifier::ServiceNotifier() {
  std::uint64_t usec = 0;
  if (sd_watchdog_enabled(/*unset_environment=*/0, &usec) > 0) watchdogMs_ = static_cast<std::int64_t>(usec / 1000);
}

void ServiceNotifier::ready(const std::string& status) const {
  (void)sd_notify(0, ("READY=1\nSTATUS=" + status).c_str());
}

void ServiceNotifier::stopping() const { (void)sd_notify(0, "STOPPING=1\nSTATUS=stopping"); }

void ServiceNotifier::alive(std::int64_t nowMs) {
  if (watchdogMs_ <= 0 || nowMs - lastPingMs_ < watchdogMs_ / 2) return;
  lastPingMs_ = nowMs;
  (void)sd_notify(0, "WATCHDOG=1");
}

}  // namespace loom::controller
