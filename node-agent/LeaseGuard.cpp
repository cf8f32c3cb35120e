#include "node-agent/LeaseGuard.h"

#include <fcntl.h>
#include <linux/watchdog.h>
#include <spdlog/spdlog.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace loom::agent {
namespace {

class DriverWatchdogGuard final : public LeaseGuard {
 public:
  explicit DriverWatchdogGuard(drivers::Driver& driver) : driver_(driver) {}
  std::string describe() const override { return driver_.name() + " driver watchdog"; }
  void renew(std::int64_t remainingMs) override {
    if (auto s = driver_.renewWatchdog(remainingMs); !s)
      spdlog::error("cannot renew the {}: {}", describe(), s.error().message);
  }
  void disarm() override {
    if (auto s = driver_.disarmWatchdog(); !s) spdlog::error("cannot disarm the {}: {}", describe(), s.error().message);
  }

 private:
  drivers::Driver& driver_;
};

class WatchdogDeviceGuard final : public LeaseGuard {
 public:
  explicit WatchdogDeviceGuard(std::string path) : path_(std::move(path)) {}
  ~WatchdogDeviceGuard() override {
    // No magic close: the countdown must outlive this process (see the header).
    if (fd_ >= 0) ::close(fd_);
  }
  std::string describe() const override { return "watchdog device " + path_; }
  void renew(std::int64_t remainingMs) override {
    if (fd_ < 0) {
      fd_ = ::open(path_.c_str(), O_WRONLY | O_CLOEXEC);
      if (fd_ < 0) {
        spdlog::error("cannot open watchdog device {}: {}; this blade is guarded by the agent alone", path_,
                      std::strerror(errno));
        return;
      }
      spdlog::warn("watchdog device {} armed: this host resets if its lease is not renewed in time", path_);
    }
    // Less than a second left: keep the earlier, shorter countdown rather than extend it.
    int seconds = static_cast<int>(remainingMs / 1000);
    if (seconds < 1) return;
    if (seconds != timeout_) {
      if (::ioctl(fd_, WDIOC_SETTIMEOUT, &seconds) != 0) {
        spdlog::error("watchdog device {}: cannot set a {} s timeout: {}", path_, seconds, std::strerror(errno));
      } else {
        timeout_ = seconds;  // the driver may round it; what it took is in `seconds`
      }
    }
    int dummy = 0;
    if (::ioctl(fd_, WDIOC_KEEPALIVE, &dummy) != 0) (void)!::write(fd_, "\0", 1);
  }
  void disarm() override {
    if (fd_ < 0) return;
    // The magic close: the driver stops the countdown (unless built with nowayout, which
    // the log then shows as a reset later).
    (void)!::write(fd_, "V", 1);
    ::close(fd_);
    fd_ = -1;
    timeout_ = -1;
    spdlog::warn("watchdog device {} disarmed: this blade is power-fenced, its BMC is the authority", path_);
  }

 private:
  std::string path_;
  int fd_ = -1;
  int timeout_ = -1;
};

}  // namespace

std::unique_ptr<LeaseGuard> makeDriverWatchdogGuard(drivers::Driver& driver) {
  if (!driver.capabilities().watchdog) return nullptr;
  return std::make_unique<DriverWatchdogGuard>(driver);
}

Result<std::unique_ptr<LeaseGuard>> makeWatchdogDeviceGuard(const std::string& path) {
  // Only checked here: opening it would start the countdown before there is a lease.
  if (::access(path.c_str(), W_OK) != 0)
    return makeError(Errc::Unavailable,
                     "watchdog device '" + path + "': " + std::strerror(errno) +
                         " (load a watchdog driver, e.g. `modprobe softdog`, and run the agent as root)");
  return std::unique_ptr<LeaseGuard>(std::make_unique<WatchdogDeviceGuard>(path));
}

}  // namespace loom::agent
