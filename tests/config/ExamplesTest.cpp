// config/examples/ is documentation that must stay true: every file loads, the set is
// valid together, and it contains what the README says it does.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include "config/Loader.h"
#include "tests/config/LoaderTestSupport.h"

namespace loom::config {
namespace {

const std::string kDir = LOOM_EXAMPLES_DIR;

std::vector<std::string> declarationFiles() {
  return {kDir + "/partitions.yaml", kDir + "/networks.yaml", kDir + "/identity.yaml",
          kDir + "/pools.yaml",      kDir + "/servers.yaml",  kDir + "/blades.yaml"};
}

TEST(Examples, EveryExampleFileIsCoveredByTheseTests) {
  std::set<std::string> covered;
  for (const auto& f : declarationFiles()) covered.insert(std::filesystem::path(f).filename());
  covered.insert("fabric.yaml");
  for (const auto& entry : std::filesystem::directory_iterator(kDir)) {
    if (entry.path().extension() != ".yaml") continue;
    EXPECT_TRUE(covered.count(entry.path().filename())) << entry.path() << " is not loaded by a test";
  }
}

TEST(Examples, DeclarationsAreValidTogether) {
  auto r = loadDeclarationFiles(declarationFiles());
  ASSERT_TRUE(r.ok()) << testing::listOf(r.diagnostics);
  const auto& d = r.declarations;
  EXPECT_EQ(d.partitions.size(), 2u);
  EXPECT_EQ(d.networks.size(), 3u);
  EXPECT_EQ(d.identityPools.size(), 2u);
  EXPECT_EQ(d.pools.size(), 4u);
  EXPECT_EQ(d.servers.size(), 17u);
  ASSERT_EQ(d.blades.size(), 8u);
  for (const auto& b : d.blades) {
    ASSERT_TRUE(b.bmc) << b.name;
    EXPECT_EQ(b.bmc->address, b.name + "-bmc.oob") << "the BMC fabric.yaml names";
    EXPECT_EQ(b.bmc->passwordFile, "/etc/loom/bmc/" + b.name + ".pass");
  }

  auto pool = [&](const std::string& name) {
    auto it = std::find_if(d.pools.begin(), d.pools.end(), [&](const pool::Pool& p) { return p.name == name; });
    EXPECT_NE(it, d.pools.end()) << name;
    return *it;
  };
  EXPECT_TRUE(pool("global-spares").sparePool);
  EXPECT_EQ(pool("web").borrowFrom, "global-spares");
  EXPECT_TRUE(pool("web").match.has_value());
  EXPECT_EQ(pool("web").spares, 1u);
  EXPECT_EQ(pool("db").hypervisor, pool::Hypervisor::Xen);
  EXPECT_EQ(pool("db").bladeNames.size(), 4u);

  std::set<std::string> templates;
  bool dedicated = false, pvWithBoot = false;
  for (const auto& s : d.servers) {
    if (!s.template_.empty()) templates.insert(s.template_);
    dedicated = dedicated || s.dedicated;
    pvWithBoot = pvWithBoot || (s.xenType == pool::XenGuestType::Pv && !s.boot.kernel.empty());
  }
  EXPECT_EQ(templates, (std::set<std::string>{"web", "api", "sandbox"}));
  EXPECT_TRUE(dedicated);
  EXPECT_TRUE(pvWithBoot);
}

// Each file alone has no syntax or field errors; only references to the other files
// can be missing.
TEST(Examples, EachDeclarationFileIsWellFormedOnItsOwn) {
  for (const auto& file : declarationFiles()) {
    auto r = loadDeclarationFiles({file});
    for (const auto& diagnostic : r.diagnostics) {
      EXPECT_TRUE(diagnostic.message.find("is declared") != std::string::npos ||
                  diagnostic.message.find("IdentityPool") != std::string::npos)
          << diagnostic.format();
    }
  }
}

TEST(Examples, FabricLoads) {
  auto r = loadFabricFile(kDir + "/fabric.yaml");
  ASSERT_TRUE(r.ok()) << testing::listOf(r.diagnostics);
  EXPECT_EQ(r.fabric.blades.size(), 24u);
  std::set<std::string> chassis;
  for (const auto& b : r.fabric.blades) chassis.insert(b.chassis);
  EXPECT_EQ(chassis.size(), 3u);
}

}  // namespace
}  // namespace loom::config
