// The conformance suite on the KVM driver against libvirt's in-memory test:///default
// hypervisor (no daemon; state private to this process). It comes with a domain named
// "test" already running, which the suite must leave alone.
#include "drivers/kvm/KvmDriver.h"
#include "tests/drivers/ConformanceSuite.h"

namespace loom::drivers::conformance {

INSTANTIATE_TEST_SUITE_P(Kvm, DriverConformance,
                         ::testing::Values(ConformanceTarget{"kvm_test_default",
                                                             [] {
                                                               return kvm::makeKvmDriver({"test:///default", {}});
                                                             }}),
                         targetName);

}  // namespace loom::drivers::conformance
