// loomd writes plan frames as text (protocol/PlanFrameWriter.h); the agent reads them with
// the protocol's decoder. The text must be the frame encode() describes.
#include <gtest/gtest.h>

#include <limits>

#include "protocol/Messages.h"
#include "protocol/PlanFrameWriter.h"
#include "protocol/Validation.h"

namespace loom::protocol {
namespace {

// Every field set, every step kind, the largest numbers, and strings a JSON writer must
// escape or pass through untouched (quotes, backslashes, '/', UTF-8).
PlanMsg richPlan() {
  ServerSpec spec;
  spec.name = "web-01";
  spec.uuid = "4c4f4f4d-0000-0000-0000-000000000001";
  spec.vcpus = std::numeric_limits<std::uint32_t>::max();
  spec.memoryMib = std::numeric_limits<std::uint64_t>::max();
  spec.nics.push_back({"52:54:00:10:00:01", "front", 4094});
  spec.nics.push_back({"52:54:00:10:00:02", "back", std::nullopt});
  spec.nics.push_back({"52:54:00:10:00:03", "edge", 0});
  spec.disks.push_back({"/img/web.qcow2", "qcow2", false});
  spec.disks.push_back({"/img/data \"2\".raw", "raw", true});
  spec.kernel = "/boot/vmlinuz-6.1";
  spec.initrd = "/boot/initrd.img";
  spec.cmdline = R"(console=hvc0 root=/dev/xvda1 quiet msg="a\b" é ☃ 🚀)";
  spec.xenType = pool::XenGuestType::Pvh;
  ServerSpec bare;  // defaults: no nic, no disk, no kernel
  bare.name = "bare";
  PlanMsg plan;
  plan.steps.push_back({1, pool::StepKind::PrepareHypervisor, "", "xen", std::nullopt});
  plan.steps.push_back({2, pool::StepKind::Define, "web-01", "", spec});
  plan.steps.push_back({std::numeric_limits<std::uint64_t>::max(), pool::StepKind::Start, "web-01", "", std::nullopt});
  plan.steps.push_back({4, pool::StepKind::Define, "bare", "", bare});
  plan.steps.push_back({5, pool::StepKind::Stop, "old", "", std::nullopt});
  plan.steps.push_back({6, pool::StepKind::Undefine, "old", "", std::nullopt});
  return plan;
}

TEST(PlanFrameWriter, IsByteForByteTheEncodersOutput) {
  const PlanMsg plan = richPlan();
  EXPECT_EQ(writePlanFrame(plan), encode(plan).dump());
  EXPECT_EQ(writePlanFrame(PlanMsg{}), encode(PlanMsg{}).dump());
  // A replica's term stamps its epoch (docs/FENCING.md, "Replicas: the epoch").
  PlanMsg stamped = richPlan();
  stamped.epoch = (std::uint64_t{7} << 32) + 3;
  EXPECT_EQ(writePlanFrame(stamped), encode(stamped).dump());
  EXPECT_EQ(epochOf(Json::parse(writePlanFrame(stamped))), stamped.epoch);
}

TEST(PlanFrameWriter, ParsesToTheSameFrameTheAgentDecodes) {
  PlanMsg plan = richPlan();
  // Control characters: escaped with upper-case hex here, lower-case by dump(); the same
  // string either way.
  plan.steps[1].spec->cmdline = "a\nb\tc\x01\x1f\x7f\"\\/";
  plan.steps[1].spec->nics[0].network = std::string("n\0ul", 4);
  const std::string text = writePlanFrame(plan);
  Json parsed;
  ASSERT_FALSE(parseFrame(text, parsed)) << text;
  EXPECT_EQ(parsed, encode(plan));
  ASSERT_FALSE(validate(parsed)) << text;
  const PlanMsg back = decodePlan(parsed);
  ASSERT_EQ(back.steps.size(), plan.steps.size());
  for (std::size_t i = 0; i < plan.steps.size(); ++i) {
    EXPECT_EQ(back.steps[i].op, plan.steps[i].op);
    EXPECT_EQ(back.steps[i].kind, plan.steps[i].kind);
    EXPECT_EQ(back.steps[i].server, plan.steps[i].server);
    EXPECT_EQ(back.steps[i].hypervisor, plan.steps[i].hypervisor);
    EXPECT_EQ(back.steps[i].spec, plan.steps[i].spec);
  }
}

}  // namespace
}  // namespace loom::protocol
