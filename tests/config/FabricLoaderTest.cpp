#include "tests/config/LoaderTestSupport.h"

namespace loom::config {
namespace {

using testing::hasError;

TEST(FabricLoader, LoadsBladesWithOneOrSeveralHypervisors) {
  auto r = loadFabricText(R"(blades:
  - {name: c1-s1, chassis: c1, slot: 1, cores: 16, memory: 64GiB, hypervisor: kvm}
  - name: c1-s2
    chassis: c1
    slot: 2
    cores: 32
    memory: 131072
    hypervisor: [xen, kvm]
    sockets: 2
    model: AMD EPYC 7443
    bmc: 10.0.0.12
)",
                          "fabric.yaml");
  ASSERT_TRUE(r.ok()) << testing::listOf(r.diagnostics);
  ASSERT_EQ(r.fabric.blades.size(), 2u);
  const auto& a = r.fabric.blades[0];
  EXPECT_EQ(a.name, "c1-s1");
  EXPECT_EQ(a.memory, 65536u);
  EXPECT_TRUE(a.hypervisors.has(pool::Hypervisor::Kvm));
  EXPECT_FALSE(a.hypervisors.has(pool::Hypervisor::Xen));
  const auto& b = r.fabric.blades[1];
  EXPECT_EQ(b.hypervisors, pool::HypervisorSet::all());
  EXPECT_EQ(b.sockets, 2u);
  EXPECT_EQ(b.model, "AMD EPYC 7443");
  EXPECT_EQ(b.bmc, "10.0.0.12");
}

TEST(FabricLoader, ReportsEveryBadBlade) {
  auto r = loadFabricText(R"(blades:
  - {name: c1-s1, chassis: c1, slot: 1, cores: 16, memory: 64GiB, hypervisor: kvm}
  - {name: c1-s1, chassis: c1, slot: 1, cores: 0, memory: 64GB, hypervisor: [kvm, esx]}
  - {name: c1-s3, chassis: c1, slot: 3, cores: 8, hypervisr: kvm}
)",
                          "fabric.yaml");
  EXPECT_TRUE(hasError(r, 3, 12, {"blade 'c1-s1': name: duplicate name, first declared at fabric.yaml:2:12"}));
  EXPECT_TRUE(hasError(r, 3, 38, {"slot: chassis c1 slot 1 is already taken by blade 'c1-s1'"}));
  EXPECT_TRUE(hasError(r, 3, 48, {"cores: expected an integer 1..1048576, got 0"}));
  EXPECT_TRUE(hasError(r, 3, 59, {"memory: expected a size", "did you mean '64GiB'?"}));
  EXPECT_TRUE(hasError(r, 3, 77, {"hypervisor: expected xen, kvm or a list of them, got 'esx'"}));
  EXPECT_TRUE(hasError(r, 4, 5, {"blade 'c1-s3': missing required field 'memory'"}));
  EXPECT_TRUE(hasError(r, 4, 51, {"unknown field 'hypervisr'", "did you mean 'hypervisor'?"}));
  EXPECT_TRUE(r.fabric.blades.empty());
}

TEST(FabricLoader, NeedsABladesList) {
  auto r = loadFabricText("blade: []\n", "fabric.yaml");
  EXPECT_TRUE(hasError(r, 1, 1, {"unknown field 'blade'", "did you mean 'blades'?"}));
  EXPECT_TRUE(hasError(r, 1, 1, {"missing required field 'blades'"}));
}

}  // namespace
}  // namespace loom::config
