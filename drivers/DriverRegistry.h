// Explicit driver registration: a name -> factory table filled by one function
// (registerBuiltinDrivers), each entry compiled in only when its library was found.
// No static self-registration.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "drivers/Driver.h"

namespace loom::drivers {

// Options every factory receives; each driver reads the keys it knows.
struct DriverOptions {
  std::string uri;                            // kvm: libvirt URI ("qemu:///system", "test:///default")
  std::map<std::string, std::string> params;  // driver-specific knobs ("cores", "memory_mib", "start_latency_ms", ...)
};

using DriverFactory = std::function<Result<std::unique_ptr<Driver>>(const DriverOptions&)>;

class DriverRegistry {
 public:
  // Adds a driver; a second entry with the same name is a programming error (asserts).
  void add(const std::string& name, DriverFactory factory);
  // Creates the named driver, or NotFound "unknown driver 'xen2' (known: kvm, test, xen)".
  Result<std::unique_ptr<Driver>> create(const std::string& name, const DriverOptions& options) const;
  std::vector<std::string> names() const;  // sorted

 private:
  std::map<std::string, DriverFactory> factories_;
};

// Fills `registry` with every driver compiled into this build: "test" always, "kvm" with
// libvirt (LOOM_HAVE_KVM), "xen" with libxl (LOOM_HAVE_XEN).
void registerBuiltinDrivers(DriverRegistry& registry);

}  // namespace loom::drivers

namespace loom::drivers {

// One line of `loom-agent probe`: each registered driver, created with `options` and
// asked whether it applies. A driver whose factory fails is reported as not applying,
// with the factory's message as the reason, so the listing is always complete.
// Returned in registry (sorted name) order.
std::vector<std::pair<std::string, ProbeResult>> probeAll(const DriverRegistry& registry, const DriverOptions& options);

}  // namespace loom::drivers
