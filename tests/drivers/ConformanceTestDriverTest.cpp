// The conformance suite on the in-memory test driver, with and without events.
#include "drivers/test/TestDriver.h"
#include "tests/drivers/ConformanceSuite.h"

namespace loom::drivers::conformance {

INSTANTIATE_TEST_SUITE_P(Test, DriverConformance,
                         ::testing::Values(ConformanceTarget{"test", [] { return test::makeTestDriver({}); }},
                                           ConformanceTarget{"test_noevents",
                                                             [] {
                                                               return test::makeTestDriver({"", {{"events", "false"}}});
                                                             }}),
                         targetName);

}  // namespace loom::drivers::conformance
