#include "drivers/DriverRegistry.h"

#include <cassert>
#include <utility>

#include "drivers/test/TestDriver.h"
#ifdef LOOM_HAVE_KVM
#include "drivers/kvm/KvmDriver.h"
#endif
#ifdef LOOM_HAVE_XEN
#include "drivers/xen/XenDriver.h"
#endif

namespace loom::drivers {

void DriverRegistry::add(const std::string& name, DriverFactory factory) {
  [[maybe_unused]] const bool inserted = factories_.emplace(name, std::move(factory)).second;
  assert(inserted && "driver registered twice");
}

Result<std::unique_ptr<Driver>> DriverRegistry::create(const std::string& name, const DriverOptions& options) const {
  auto it = factories_.find(name);
  if (it == factories_.end()) {
    std::string known;
    for (const auto& [n, _] : factories_) known += (known.empty() ? "" : ", ") + n;
    return makeError(Errc::NotFound, "unknown driver '" + name + "' (known: " + known + ")");
  }
  return it->second(options);
}

std::vector<std::string> DriverRegistry::names() const {
  std::vector<std::string> out;
  out.reserve(factories_.size());
  for (const auto& [n, _] : factories_) out.push_back(n);  // std::map: already sorted
  return out;
}

void registerBuiltinDrivers(DriverRegistry& registry) {
  registry.add("test", [](const DriverOptions& o) { return test::makeTestDriver(o); });
#ifdef LOOM_HAVE_KVM
  registry.add("kvm", [](const DriverOptions& o) { return kvm::makeKvmDriver(o); });
#endif
#ifdef LOOM_HAVE_XEN
  registry.add("xen", [](const DriverOptions& o) { return xen::makeXenDriver(o); });
#endif
}

std::vector<std::pair<std::string, ProbeResult>> probeAll(const DriverRegistry& registry,
                                                          const DriverOptions& options) {
  std::vector<std::pair<std::string, ProbeResult>> out;
  for (const auto& name : registry.names()) {
    auto driver = registry.create(name, options);
    if (!driver) {
      out.emplace_back(name, ProbeResult{false, driver.error().message});
      continue;
    }
    out.emplace_back(name, (*driver)->probe());
  }
  return out;
}

}  // namespace loom::drivers
