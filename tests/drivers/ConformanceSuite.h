// The driver conformance suite: one value-parameterized GoogleTest suite that every
// driver runs (Nomad's DriverHarness). The cases (ConformanceSuite.cpp) check the
// contract of drivers/Driver.h: idempotency, typed errors that name the domain, the
// server's identity (UUID, MAC) reaching the hypervisor, Unsupported instead of crashes.
//
// To run it for a driver, link the object library `loom_driver_conformance` into a test
// executable and instantiate the suite in one of its files:
//
//   #include "tests/drivers/ConformanceSuite.h"
//   #include "drivers/xen/XenDriver.h"
//   using loom::drivers::conformance::ConformanceTarget;
//   INSTANTIATE_TEST_SUITE_P(Xen, DriverConformance, ::testing::Values(ConformanceTarget{
//       "xen", [] { return loom::drivers::xen::makeXenDriver({}); }}),
//       loom::drivers::conformance::targetName);
//
// (INSTANTIATE must name the fixture unqualified inside namespace
// loom::drivers::conformance, or qualified from outside.) A driver whose probe() declines
// makes every case skip with the probe's reason, so a host without the hypervisor
// reports "skipped: no Xen hypervisor on this host (...)" rather than failing; unless the
// target's requiredBecause() says this machine must run it (then each case fails).
//
// Test domains are named "loomtest-<pid>-<n>", have 64 MiB, one vcpu, one isolated NIC
// (bridge empty: nothing outside the host is reachable), no disk; every domain a case
// defines is destroyed and undefined in TearDown.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "drivers/Driver.h"

namespace loom::drivers::conformance {

struct ConformanceTarget {
  std::string name;  // in test names, so [A-Za-z0-9_] only: "test", "kvm_test_default"
  std::function<Result<std::unique_ptr<Driver>>()> make;
  int stopTimeoutMs = 1000;  // how long stop() may wait for the guest before destroying
  // Why this target must run on this machine, or "" when it may skip: when it gives a
  // reason, a declining probe fails every case (naming both reasons) instead of skipping
  // it. The real-KVM target gives one under CI (CI=true) where /dev/kvm exists.
  std::function<std::string()> requiredBecause = nullptr;
};

// Shown by gtest (and ctest) instead of a hex dump of the struct.
inline void PrintTo(const ConformanceTarget& target, std::ostream* os) { *os << target.name; }

inline std::string targetName(const ::testing::TestParamInfo<ConformanceTarget>& info) { return info.param.name; }

class DriverConformance : public ::testing::TestWithParam<ConformanceTarget> {
 protected:
  void SetUp() override;     // creates the driver; skips with the probe's reason if it declines
                             // (fails instead when the target's requiredBecause() gives a reason)
  void TearDown() override;  // removes every domain spec() handed out

  // A fresh, valid spec with a unique name, UUID and MAC, remembered for cleanup.
  DomainSpec spec();
  Driver& driver() { return *driver_; }

  std::unique_ptr<Driver> driver_;
  std::vector<std::string> created_;
};

}  // namespace loom::drivers::conformance
