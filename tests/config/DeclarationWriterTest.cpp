// What `loomctl get -o yaml` prints re-applies unchanged: the written documents load
// back to the very declarations they were written from (config/DeclarationWriter.h).
#include <gtest/gtest.h>

#include <tuple>

#include "config/DeclarationWriter.h"
#include "config/Loader.h"
#include "config/ValueSyntax.h"
#include "tests/config/LoaderTestSupport.h"

namespace loom::config {
namespace {

const std::string kDir = LOOM_EXAMPLES_DIR;

pool::Declarations examples() {
  auto r = loadDeclarationFiles({kDir + "/partitions.yaml", kDir + "/networks.yaml", kDir + "/identity.yaml",
                                 kDir + "/pools.yaml", kDir + "/servers.yaml", kDir + "/blades.yaml"});
  EXPECT_TRUE(r.ok()) << testing::listOf(r.diagnostics);
  return r.declarations;
}

pool::Declarations reload(const pool::Declarations& d) {
  const std::string text = joinDocuments(writeDeclarations(d));
  auto r = loadDeclarationText(text, "written");
  EXPECT_TRUE(r.ok()) << testing::listOf(r.diagnostics) << "\n" << text;
  return r.declarations;
}

// Every field of every kind, compared.
void expectSame(const pool::Declarations& a, const pool::Declarations& b) {
  ASSERT_EQ(a.partitions.size(), b.partitions.size());
  for (std::size_t i = 0; i < a.partitions.size(); ++i) EXPECT_EQ(a.partitions[i].name, b.partitions[i].name);
  ASSERT_EQ(a.networks.size(), b.networks.size());
  for (std::size_t i = 0; i < a.networks.size(); ++i)
    EXPECT_EQ(std::tie(a.networks[i].name, a.networks[i].partition, a.networks[i].vlan),
              std::tie(b.networks[i].name, b.networks[i].partition, b.networks[i].vlan));
  ASSERT_EQ(a.identityPools.size(), b.identityPools.size());
  for (std::size_t i = 0; i < a.identityPools.size(); ++i) {
    const auto &x = a.identityPools[i], &y = b.identityPools[i];
    EXPECT_EQ(x.name, y.name);
    ASSERT_EQ(x.macs.size(), y.macs.size());
    for (std::size_t m = 0; m < x.macs.size(); ++m)
      EXPECT_EQ(std::tie(x.macs[m].first, x.macs[m].last), std::tie(y.macs[m].first, y.macs[m].last));
    ASSERT_EQ(x.uuids.size(), y.uuids.size());
    for (std::size_t u = 0; u < x.uuids.size(); ++u)
      EXPECT_EQ(std::tie(x.uuids[u].prefixHi, x.uuids[u].prefixLo, x.uuids[u].bits),
                std::tie(y.uuids[u].prefixHi, y.uuids[u].prefixLo, y.uuids[u].bits));
  }
  ASSERT_EQ(a.pools.size(), b.pools.size());
  for (std::size_t i = 0; i < a.pools.size(); ++i) {
    const auto &x = a.pools[i], &y = b.pools[i];
    EXPECT_EQ(std::tie(x.name, x.partition, x.hypervisor, x.bladeNames, x.sparePool, x.spares, x.failover, x.failback,
                       x.borrowFrom, x.identityPool),
              std::tie(y.name, y.partition, y.hypervisor, y.bladeNames, y.sparePool, y.spares, y.failover, y.failback,
                       y.borrowFrom, y.identityPool))
        << x.name;
    ASSERT_EQ(x.match.has_value(), y.match.has_value()) << x.name;
    if (x.match) {
      EXPECT_EQ(std::tie(x.match->chassis, x.match->minCores, x.match->minMemory, x.match->model, x.match->hypervisor),
                std::tie(y.match->chassis, y.match->minCores, y.match->minMemory, y.match->model, y.match->hypervisor))
          << x.name;
    }
  }
  ASSERT_EQ(a.servers.size(), b.servers.size());
  for (std::size_t i = 0; i < a.servers.size(); ++i) {
    const auto &x = a.servers[i], &y = b.servers[i];
    EXPECT_EQ(
        std::tie(x.name, x.partition, x.pool, x.vcpus, x.memory, x.boot.kernel, x.boot.initrd, x.boot.cmdline,
                 x.xenType, x.priority, x.antiAffinity, x.dedicated, x.power, x.uuid, x.identityPool, x.template_),
        std::tie(y.name, y.partition, y.pool, y.vcpus, y.memory, y.boot.kernel, y.boot.initrd, y.boot.cmdline,
                 y.xenType, y.priority, y.antiAffinity, y.dedicated, y.power, y.uuid, y.identityPool, y.template_))
        << x.name;
    ASSERT_EQ(x.nics.size(), y.nics.size()) << x.name;
    for (std::size_t n = 0; n < x.nics.size(); ++n)
      EXPECT_EQ(std::tie(x.nics[n].network, x.nics[n].mac), std::tie(y.nics[n].network, y.nics[n].mac));
    ASSERT_EQ(x.disks.size(), y.disks.size()) << x.name;
    for (std::size_t n = 0; n < x.disks.size(); ++n)
      EXPECT_EQ(std::tie(x.disks[n].image, x.disks[n].format, x.disks[n].readOnly),
                std::tie(y.disks[n].image, y.disks[n].format, y.disks[n].readOnly));
  }
  ASSERT_EQ(a.blades.size(), b.blades.size());
  for (std::size_t i = 0; i < a.blades.size(); ++i) {
    EXPECT_EQ(a.blades[i].name, b.blades[i].name);
    EXPECT_EQ(a.blades[i].bmc, b.blades[i].bmc);
  }
}

TEST(DeclarationWriter, TheExamplesWrittenLoadBackToTheSameDeclarations) {
  const auto d = examples();
  ASSERT_FALSE(d.blades.empty());
  expectSame(d, reload(d));
}

TEST(DeclarationWriter, ATemplateIsWrittenOnceWithItsReplicas) {
  const auto written = writeDeclarations(examples());
  std::size_t web = 0;
  for (const auto& w : written) {
    EXPECT_NE(w.name, "web-0");
    if (w.kind == "Server" && w.name == "web") {
      ++web;
      EXPECT_NE(w.yaml.find("replicas: 6\n"), std::string::npos) << w.yaml;
      EXPECT_EQ(w.partition, "prod");
    }
  }
  EXPECT_EQ(web, 1u);
}

TEST(DeclarationWriter, ValuesYamlWouldMisreadAreQuoted) {
  pool::Declarations d;
  d.partitions.push_back({"prod"});
  d.networks.push_back({"n", "prod", 7});
  d.identityPools.push_back({"default", {{0x525400100000ull, 0x5254001000ffull}}, {{0x4c4f4f4d00000000ull, 0, 8}}});
  pool::Pool p;
  p.name = "p";
  p.partition = "prod";
  p.hypervisor = pool::Hypervisor::Kvm;
  p.bladeNames = {"b1"};
  d.pools.push_back(p);
  pool::Server s;
  s.name = "s";
  s.partition = "prod";
  s.pool = "p";
  s.nics.push_back({"n", "52:54:00:10:00:01"});
  s.disks.push_back({"/images/a b: \"c\".qcow2", "qcow2", true});
  s.boot = {"/k", "", "console=ttyS0 root=/dev/vda1 # not a comment: yes"};
  s.antiAffinity = "on";  // a YAML 1.1 boolean, as a plain scalar
  s.power = pool::PowerState::Off;
  d.servers.push_back(s);
  expectSame(d, reload(d));
}

TEST(DeclarationWriter, AReplicaAnOperatorStoppedIsNamedInAComment) {
  auto d = examples();
  for (auto& s : d.servers)
    if (s.name == "web-2") s.power = pool::PowerState::Off;
  for (const auto& w : writeDeclarations(d))
    if (w.kind == "Server" && w.name == "web") {
      EXPECT_NE(w.yaml.find("# web-2 is powered off"), std::string::npos) << w.yaml;
      EXPECT_NE(w.yaml.find("power: on\n"), std::string::npos) << w.yaml;
    }
}

TEST(DeclarationWriter, AUuidRangeIsWrittenAsItIsRead) {
  auto range = parseUuidRange("4c4f4f4d-0000-0000-0001-000000000000/12");
  ASSERT_TRUE(range.ok());
  EXPECT_EQ(formatUuidRange(*range), "4c4f4f4d-0000-0000-0001-000000000000/12");
}

}  // namespace
}  // namespace loom::config
