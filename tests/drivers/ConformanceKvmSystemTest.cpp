// The conformance suite on the KVM driver against qemu:///system: real qemu guests (KVM
// when /dev/kvm works, TCG otherwise) with no disk, sitting in their BIOS. Needs libvirtd
// (sudo tools/libvirtd.sh start); without it every case skips with the probe's reason.
#include "drivers/kvm/KvmDriver.h"
#include "tests/drivers/ConformanceSuite.h"

namespace loom::drivers::conformance {

INSTANTIATE_TEST_SUITE_P(
    KvmSystem, DriverConformance,
    // A guest in its BIOS ignores the ACPI request, so stop() always waits out its
    // timeout before destroying: keep it short.
    ::testing::Values(ConformanceTarget{"kvm_system",
                                        [] { return kvm::makeKvmDriver({"qemu:///system", {}}); }, 500}),
    targetName);

}  // namespace loom::drivers::conformance
