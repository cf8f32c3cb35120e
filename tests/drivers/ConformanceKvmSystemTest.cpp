// The conformance suite on the KVM driver against qemu:///system: real qemu guests (KVM
// when /dev/kvm works, TCG otherwise) with no disk, sitting in their BIOS. Needs libvirtd
// (sudo tools/libvirtd.sh start); without it every case skips with the probe's reason,
// except under CI (CI=true) on a machine with /dev/kvm, where every case fails instead:
// there the real-KVM tier can run, so a skip would hide that it did not.
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "drivers/kvm/KvmDriver.h"
#include "tests/drivers/ConformanceSuite.h"

namespace loom::drivers::conformance {
namespace {

std::string requiredOnCi() {
  const char* ci = std::getenv("CI");
  if (ci == nullptr || std::string(ci) != "true" || ::access("/dev/kvm", F_OK) != 0) return "";
  return "CI=true and /dev/kvm exists: the real-KVM tier must run here (start libvirtd: sudo "
         "tools/libvirtd.sh start, as tools/test.sh does)";
}

}  // namespace

INSTANTIATE_TEST_SUITE_P(KvmSystem, DriverConformance,
                         // A guest in its BIOS ignores the ACPI request, so stop() always waits out its
                         // timeout before destroying: keep it short.
                         ::testing::Values(ConformanceTarget{"kvm_system",
                                                             [] {
                                                               return kvm::makeKvmDriver({"qemu:///system", {}});
                                                             },
                                                             500, requiredOnCi}),
                         targetName);

}  // namespace loom::drivers::conformance
