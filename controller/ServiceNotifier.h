// loomd under systemd (Type=notify, WatchdogSec=): tells the service manager when the API
// serves, what it is doing, and that the core loop still turns. Every call is a no-op
// when loomd was not started with $NOTIFY_SOCKET (a shell, a test, the demo).
#pragma once

#include <cstdint>
#include <string>

namespace loom::controller {

class ServiceNotifier {
 public:
  ServiceNotifier();
  // The API serves: `systemctl start` returns, units ordered after loomd start.
  void ready(const std::string& status) const;
  void stopping() const;
  // From the core loop, on every turn: a watchdog ping at most every half interval. A
  // core thread that stops turning (a deadlock, an endless loop) stops the pings, and
  // systemd restarts loomd, which recovers everything it acknowledged.
  void alive(std::int64_t nowMs);
  // The watchdog interval systemd asked for (WatchdogSec=), 0 when none.
  std::int64_t watchdogMs() const { return watchdogMs_; }

 private:
  std::int64_t watchdogMs_ = 0;
  std::int64_t lastPingMs_ = 0;
};

}  // namespace loom::controller
