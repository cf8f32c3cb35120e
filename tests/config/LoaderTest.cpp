// What the loader produces from valid input, and how it behaves on inputs with many
// errors (all reported, nothing partial returned).
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "tests/config/LoaderTestSupport.h"

namespace loom::config {
namespace {

using testing::hasError;
using testing::load;

const pool::Server* findServer(const pool::Declarations& d, const std::string& name) {
  for (const auto& s : d.servers) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

TEST(Loader, LoadsEveryKindIntoTheModel) {
  auto r = load(R"(kind: Server
name: db
partition: dev
pool: devpool
vcpus: 4
memory: 1.5GiB
nics: [{network: lab}, {network: lab, mac: "52:54:00:AB:00:01"}]
disks:
  - {image: /img/db.qcow2}
  - {image: /img/data.raw, format: raw, readonly: true}
boot: {kernel: /k/vmlinuz, initrd: /k/initrd, cmdline: "console=hvc0"}
xen: {type: pvh}
priority: 200
anti_affinity: db
power: off
uuid: 4C4F4F4D-0000-0000-0000-0000000000AA
)");
  ASSERT_TRUE(r.ok()) << testing::listOf(r.diagnostics);
  const auto& d = r.declarations;
  EXPECT_EQ(d.partitions.size(), 2u);
  ASSERT_EQ(d.networks.size(), 2u);
  EXPECT_EQ(d.networks[0].vlan, 100);
  EXPECT_FALSE(d.networks[1].vlan.has_value());
  ASSERT_EQ(d.identityPools.size(), 1u);
  EXPECT_EQ(d.identityPools[0].macs[0].first, 0x525400100000u);
  EXPECT_EQ(d.identityPools[0].macs[0].last, 0x52540010ffffu);
  EXPECT_EQ(d.identityPools[0].uuids[0].bits, 16);
  EXPECT_EQ(d.identityPools[0].uuids[0].prefixHi, 0x4c4f4f4d00000000u);
  ASSERT_EQ(d.pools.size(), 3u);
  EXPECT_TRUE(d.pools[0].sparePool);
  EXPECT_EQ(d.pools[0].bladeNames, std::vector<std::string>{"c9-s1"});
  EXPECT_EQ(d.pools[1].hypervisor, pool::Hypervisor::Kvm);
  ASSERT_TRUE(d.pools[1].match.has_value());
  EXPECT_EQ(d.pools[1].match->chassis, "c1");
  EXPECT_EQ(d.pools[1].spares, 1u);
  EXPECT_EQ(d.pools[1].borrowFrom, "spares");

  const pool::Server* s = findServer(d, "db");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->vcpus, 4u);
  EXPECT_EQ(s->memory, 1536u);
  ASSERT_EQ(s->nics.size(), 2u);
  EXPECT_EQ(s->nics[0].mac, "");
  EXPECT_EQ(s->nics[1].mac, "52:54:00:ab:00:01");  // canonical lower case
  ASSERT_EQ(s->disks.size(), 2u);
  EXPECT_EQ(s->disks[1].format, "raw");
  EXPECT_TRUE(s->disks[1].readOnly);
  EXPECT_EQ(s->boot.kernel, "/k/vmlinuz");
  EXPECT_EQ(s->boot.cmdline, "console=hvc0");
  EXPECT_EQ(s->xenType, pool::XenGuestType::Pvh);
  EXPECT_EQ(s->priority, 200);
  EXPECT_EQ(s->antiAffinity, "db");
  EXPECT_EQ(s->power, pool::PowerState::Off);
  EXPECT_EQ(s->uuid, "4c4f4f4d-0000-0000-0000-0000000000aa");
  EXPECT_EQ(s->template_, "");
}

TEST(Loader, ReplicasExpandIntoNumberedServersThatRememberTheirTemplate) {
  auto r = load(R"(kind: Server
name: web
replicas: 3
partition: prod
pool: web
vcpus: 2
memory: 4GiB
anti_affinity: web
)");
  ASSERT_TRUE(r.ok()) << testing::listOf(r.diagnostics);
  ASSERT_EQ(r.declarations.servers.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    const auto& s = r.declarations.servers[static_cast<std::size_t>(i)];
    EXPECT_EQ(s.name, "web-" + std::to_string(i));
    EXPECT_EQ(s.template_, "web");
    EXPECT_EQ(s.memory, 4096u);
    EXPECT_EQ(s.antiAffinity, "web");
  }
}

TEST(Loader, ReplicasCannotShareAFixedIdentity) {
  auto r = load(R"(kind: Server
name: web
replicas: 2
partition: prod
pool: web
vcpus: 2
memory: 4GiB
uuid: 4c4f4f4d-0000-0000-0000-000000000001
nics: [{network: front, mac: "52:54:00:10:00:05"}]
)");
  EXPECT_TRUE(hasError(r, 8, 7, {"uuid: a fixed uuid cannot be given to a template with replicas"}));
  EXPECT_TRUE(hasError(r, 9, 30, {"nics[0].mac: a fixed MAC cannot be given to a template with replicas"}));
}

TEST(Loader, ReplicaErrorsAreReportedOnceForTheTemplate) {
  auto r = load(R"(kind: Server
name: web
replicas: 5
partition: prod
pool: nosuch
vcpus: 2
memory: 4GiB
)");
  ASSERT_EQ(r.diagnostics.size(), 1u) << testing::listOf(r.diagnostics);
  EXPECT_TRUE(hasError(r, 5, 7, {"Server 'web': pool: no Pool named 'nosuch'"}));
}

TEST(Loader, SizesAcceptMiBIntegersAndBinaryUnits) {
  for (auto [text, mib] : std::vector<std::pair<std::string, pool::MiB>>{
           {"512", 512}, {"512MiB", 512}, {"4GiB", 4096}, {"1TiB", 1048576}, {"\"2 GiB\"", 2048}, {"0.5GiB", 512}}) {
    auto r = load("kind: Server\nname: s\npartition: prod\npool: web\nvcpus: 1\nmemory: " + text + "\n");
    ASSERT_TRUE(r.ok()) << text << "\n" << testing::listOf(r.diagnostics);
    EXPECT_EQ(r.declarations.servers[0].memory, mib) << text;
  }
}

TEST(Loader, DedicatedServerNeedsNoSizes) {
  auto r = load("kind: Server\nname: big\npartition: prod\npool: web\ndedicated: true\n");
  ASSERT_TRUE(r.ok()) << testing::listOf(r.diagnostics);
  EXPECT_TRUE(r.declarations.servers[0].dedicated);
}

TEST(Loader, PowerAcceptsOnOffAndBooleans) {
  auto r = load("kind: Server\nname: s\npartition: prod\npool: web\nvcpus: 1\nmemory: 1\npower: false\n");
  ASSERT_TRUE(r.ok()) << testing::listOf(r.diagnostics);
  EXPECT_EQ(r.declarations.servers[0].power, pool::PowerState::Off);
}

TEST(Loader, EmptyAndCommentOnlyDocumentsAreSkipped) {
  auto r = loadDeclarationText("# a file header\n---\n# nothing here\n---\nkind: Partition\nname: p\n---\n", "t.yaml");
  ASSERT_TRUE(r.ok()) << testing::listOf(r.diagnostics);
  ASSERT_EQ(r.declarations.partitions.size(), 1u);
}

TEST(Loader, ReportsEveryErrorOfADocumentNotOnlyTheFirst) {
  auto r = load(R"(kind: Server
name: web
partition: prod
pool: web
vcpus: -2
memory: lots
priority: high
power: maybe
disks: [{image: /a.qcow2, format: vmdk}]
)");
  EXPECT_EQ(r.diagnostics.size(), 5u) << testing::listOf(r.diagnostics);
  EXPECT_TRUE(hasError(r, 5, 8, {"vcpus"}));
  EXPECT_TRUE(hasError(r, 6, 9, {"memory"}));
  EXPECT_TRUE(hasError(r, 7, 11, {"priority"}));
  EXPECT_TRUE(hasError(r, 8, 8, {"power"}));
  EXPECT_TRUE(hasError(r, 9, 35, {"disks[0].format: expected qcow2 or raw"}));
}

TEST(Loader, NothingPartialIsReturnedOnFailure) {
  auto r = load("kind: Partition\nname: extra\n---\nkind: Partition\nname: 'bad name'\n");
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.declarations.partitions.empty());
  EXPECT_TRUE(r.declarations.servers.empty());
  EXPECT_TRUE(r.declarations.pools.empty());
}

TEST(Loader, SyntaxErrorDoesNotHideErrorsInOtherDocuments) {
  auto r = loadDeclarationText(R"(kind: Partition
name: prod
---
kind: Network
name: front
partition: prod
vlan: 0
---
kind: Server
name: [broken
---
kind: Server
name: s
partition: prod
pool: undeclared
vcpus: 1
memory: 1GiB
)",
                               "t.yaml");
  EXPECT_TRUE(hasError(r, 7, 7, {"vlan: expected an integer 1..4094, got 0"}));
  EXPECT_TRUE(hasError(r, 10, 14, {"YAML syntax error"}));
  // `undeclared` might have been declared in the unreadable document: no guess.
  for (const auto& d : r.diagnostics) EXPECT_EQ(d.message.find("undeclared"), std::string::npos) << d.format();
}

class TempFiles : public ::testing::Test {
 protected:
  std::string write(const std::string& name, const std::string& text) {
    auto path = dir_ / name;
    std::ofstream(path) << text;
    return path.string();
  }
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("loom-config-test-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path dir_;
};

TEST_F(TempFiles, NamesResolveAcrossFiles) {
  auto a = write("a.yaml", "kind: Partition\nname: prod\n");
  auto b = write("b.yaml", "kind: Network\nname: front\npartition: prod\n");
  auto r = loadDeclarationFiles({a, b});
  ASSERT_TRUE(r.ok()) << testing::listOf(r.diagnostics);
  EXPECT_EQ(r.declarations.networks.size(), 1u);
}

TEST_F(TempFiles, ReportsAllErrorsOfAllFilesInFileOrder) {
  auto a = write("a.yaml", "kind: Partition\nname: prod\nextra: 1\n---\nkind: Networc\nname: x\n");
  auto b =
      write("b.yaml", "kind: Network\nname: front\npartition: prod\nvlan: 5000\n---\nkind: Partition\nname: prod\n");
  auto r = loadDeclarationFiles({b, a});
  ASSERT_EQ(r.diagnostics.size(), 4u) << testing::listOf(r.diagnostics);
  // b.yaml first (as given), then a.yaml, each by position.
  EXPECT_EQ(r.diagnostics[0].format(), b + ":4:7: Network 'front': vlan: expected an integer 1..4094, got 5000");
  EXPECT_EQ(r.diagnostics[1].format(),
            a + ":2:7: Partition 'prod': name: duplicate name, first declared at " + b + ":7:7");
  EXPECT_EQ(r.diagnostics[2].format(),
            a + ":3:1: Partition 'prod': unknown field 'extra' (expected one of: kind, name, description)");
  EXPECT_EQ(r.diagnostics[3].format(), a + ":5:7: kind: unknown kind 'Networc' (did you mean 'Network'?)");
}

TEST_F(TempFiles, UnreadableFileIsReportedWithoutAPosition) {
  auto r = loadDeclarationFiles({(dir_ / "missing.yaml").string()});
  ASSERT_EQ(r.diagnostics.size(), 1u);
  EXPECT_EQ(r.diagnostics[0].line, 0);
  EXPECT_NE(r.diagnostics[0].format().find("missing.yaml: cannot read file"), std::string::npos);
}

}  // namespace
}  // namespace loom::config

namespace loom::config {
namespace {

const char* kPools = R"(kind: Partition
name: prod
---
kind: IdentityPool
name: default
macs: 52:54:00:10:00:00-52:54:00:10:ff:ff
uuids: 4c4f4f4d-0000-0000-0000-000000000000/16
---
kind: Network
name: front
partition: prod
---
kind: Pool
name: web
partition: prod
hypervisor: kvm
blades: {names: [b1]}
)";

const char* kServers = R"(kind: Server
name: web-01
partition: prod
pool: web
vcpus: 2
memory: 1GiB
nics: [{network: front}]
)";

TEST(LoaderOnto, ABodyMayReferToObjectsAppliedBefore) {
  auto alone = loadDeclarationText(kServers, "servers.yaml");
  ASSERT_FALSE(alone.ok());
  auto pools = loadDeclarationText(kPools, "pools.yaml");
  ASSERT_TRUE(pools.ok()) << pools.diagnostics.front().format();
  auto merged = loadDeclarationTextOnto(pools.declarations, kServers, "servers.yaml");
  ASSERT_TRUE(merged.ok()) << merged.diagnostics.front().format();
  EXPECT_EQ(merged.declarations.pools.size(), 1u);
  ASSERT_EQ(merged.declarations.servers.size(), 1u);
  EXPECT_EQ(merged.objects, (std::vector<std::pair<std::string, std::string>>{{"Server", "web-01"}}));
}

TEST(LoaderOnto, BodyObjectsReplaceAppliedOnesInPlaceAndErrorsPointIntoTheBody) {
  auto pools = loadDeclarationText(kPools, "pools.yaml");
  ASSERT_TRUE(pools.ok()) << pools.diagnostics.front().format();
  auto redo = loadDeclarationTextOnto(
      pools.declarations, "kind: Pool\nname: web\npartition: prod\nhypervisor: kvm\nblades: {names: [b1]}\nspares: 2\n",
      "p2.yaml");
  ASSERT_TRUE(redo.ok());
  ASSERT_EQ(redo.declarations.pools.size(), 1u);
  EXPECT_EQ(redo.declarations.pools[0].spares, 2u);
  auto bad = loadDeclarationTextOnto(
      pools.declarations, "kind: Server\nname: x\npartition: prod\npool: wbe\nvcpus: 1\nmemory: 1GiB\n", "s.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.diagnostics.front().file, "s.yaml");
  EXPECT_EQ(bad.diagnostics.front().line, 4);
  EXPECT_NE(bad.diagnostics.front().message.find("did you mean 'web'"), std::string::npos)
      << bad.diagnostics.front().message;
}

TEST(LoaderOnto, ValidateDeclarationsFindsDanglingReferences) {
  auto all = loadDeclarationText(std::string(kPools) + "---\n" + kServers, "all.yaml");
  ASSERT_TRUE(all.ok()) << all.diagnostics.front().format();
  EXPECT_TRUE(validateDeclarations(all.declarations, "state").ok());
  pool::Declarations without = all.declarations;
  without.pools.clear();
  auto check = validateDeclarations(without, "state");
  ASSERT_FALSE(check.ok());
  EXPECT_NE(check.diagnostics.front().message.find("no Pool named 'web'"), std::string::npos)
      << check.diagnostics.front().message;
}

}  // namespace
}  // namespace loom::config

namespace loom::config {
namespace {

TEST(LoaderNames, KindsAndNamesOnlyWithReplicasExpanded) {
  auto r =
      loadDeclarationNames("kind: Pool\nname: web\n---\nkind: Server\nname: app\nreplicas: 2\nvcpus: lots\n", "d.yaml");
  ASSERT_TRUE(r.ok()) << r.diagnostics.front().format();
  EXPECT_EQ(r.objects, (std::vector<std::pair<std::string, std::string>>{
                           {"Pool", "web"}, {"Server", "app-0"}, {"Server", "app-1"}}));
  auto bad = loadDeclarationNames("kind: Server\n", "d.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(bad.objects.empty());
}

}  // namespace
}  // namespace loom::config
