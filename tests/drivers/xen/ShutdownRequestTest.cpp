// How the driver asks a guest to power off, by what Xen and libxl say the domain is.
// Xen reports PVH guests as HVM containers; only libxl's record (/libxl/<domid>/type)
// tells them apart, and a PVH guest has no ACPI power button to press.
#include <gtest/gtest.h>

#include "drivers/xen/LibxlContext.h"

namespace loom::drivers::xen {
namespace {

TEST(ShutdownRequest, PvGuestIsAskedThroughTheControlNode) {
  EXPECT_EQ(shutdownRequestFor(/*hvmContainer=*/false, ""), ShutdownRequest::ControlNode);
  EXPECT_EQ(shutdownRequestFor(/*hvmContainer=*/false, "pv"), ShutdownRequest::ControlNode);
}

TEST(ShutdownRequest, PvhGuestIsAskedThroughTheControlNodeNotTheAcpiButtonItLacks) {
  EXPECT_EQ(shutdownRequestFor(/*hvmContainer=*/true, "pvh"), ShutdownRequest::ControlNode);
}

TEST(ShutdownRequest, HvmGuestGetsTheAcpiPowerButton) {
  EXPECT_EQ(shutdownRequestFor(/*hvmContainer=*/true, "hvm"), ShutdownRequest::AcpiPowerButton);
}

TEST(ShutdownRequest, HvmContainerLibxlDidNotBuildGetsTheAcpiPowerButton) {
  EXPECT_EQ(shutdownRequestFor(/*hvmContainer=*/true, ""), ShutdownRequest::AcpiPowerButton);
}

}  // namespace
}  // namespace loom::drivers::xen
