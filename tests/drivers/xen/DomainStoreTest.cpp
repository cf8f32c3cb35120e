#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "drivers/xen/DomainStore.h"

namespace loom::drivers::xen {
namespace {

class DomainStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/loom-xen-store-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = std::string(pattern) + "/state";  // not yet there: save creates it
  }
  void TearDown() override { std::filesystem::remove_all(std::filesystem::path(dir_).parent_path()); }

  static DomainSpec spec(const std::string& name) {
    DomainSpec s;
    s.name = name;
    s.uuid = "4c4f4f4d-0000-4000-8000-00000000000a";
    s.vcpus = 3;
    s.memory = 768;
    s.xenType = XenGuestType::Pvh;
    s.kernel = "/boot/vmlinuz";
    s.cmdline = "console=hvc0";
    NicSpec nic;
    nic.mac = "52:54:00:10:00:07";
    nic.network = "front";
    nic.bridge = "br0";
    nic.vlan = 100;
    s.nics = {nic};
    DiskSpec disk;
    disk.path = "/img/a.qcow2";
    disk.format = "qcow2";
    disk.readOnly = true;
    s.disks = {disk};
    return s;
  }

  std::string dir_;
};

TEST_F(DomainStoreTest, SavedDefinitionLoadsBackIdentical) {
  DomainStore store(dir_);
  ASSERT_TRUE(store.save(spec("web-01")).ok());
  auto loaded = store.load("web-01");
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  EXPECT_EQ(specToJson(*loaded), specToJson(spec("web-01")));
  EXPECT_EQ(loaded->nics.at(0).vlan, 100);
  EXPECT_TRUE(loaded->disks.at(0).readOnly);
  EXPECT_EQ(loaded->xenType, XenGuestType::Pvh);
}

TEST_F(DomainStoreTest, MissingDefinitionIsNotFoundNamingTheDomain) {
  DomainStore store(dir_);
  auto loaded = store.load("ghost");
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.error().code, Errc::NotFound);
  EXPECT_NE(loaded.error().message.find("'ghost'"), std::string::npos);
}

TEST_F(DomainStoreTest, RemoveIsIdempotentAndListIsSorted) {
  DomainStore store(dir_);
  ASSERT_TRUE(store.save(spec("b")).ok());
  ASSERT_TRUE(store.save(spec("a")).ok());
  auto all = store.loadAll();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ(all->at(0).name, "a");
  ASSERT_TRUE(store.remove("a").ok());
  ASSERT_TRUE(store.remove("a").ok());
  ASSERT_TRUE(store.remove("../../etc/passwd").ok());  // never a path outside the store
  EXPECT_EQ(store.loadAll()->size(), 1u);
}

// A definition exactly as the store wrote it before the drivers shared one DomainSpec
// codec: it loads, and saving it again writes the same bytes.
TEST_F(DomainStoreTest, DefinitionWrittenBeforeTheSharedCodecLoadsAndIsRewrittenIdentically) {
  const std::string before = R"({
  "cmdline": "console=hvc0",
  "disks": [
    {
      "format": "qcow2",
      "path": "/img/web.qcow2",
      "read_only": false
    }
  ],
  "initrd": "",
  "kernel": "/boot/vmlinuz",
  "memory_mib": 1024,
  "name": "web-01",
  "nics": [
    {
      "bridge": "",
      "mac": "52:54:00:10:00:01",
      "network": "front",
      "vlan": 100
    }
  ],
  "uuid": "4c4f4f4d-0000-0000-0000-000000000001",
  "vcpus": 2,
  "version": 1,
  "xen_type": "pvh"
}
)";
  std::filesystem::create_directories(dir_);
  std::ofstream(dir_ + "/web-01.json") << before;
  DomainStore store(dir_);
  auto loaded = store.load("web-01");
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  EXPECT_EQ(loaded->xenType, XenGuestType::Pvh);
  EXPECT_EQ(loaded->nics.at(0).vlan, 100);
  EXPECT_EQ(specToJson(*loaded), before);
}

TEST_F(DomainStoreTest, CorruptFileIsReportedNotSkipped) {
  DomainStore store(dir_);
  ASSERT_TRUE(store.save(spec("good")).ok());
  std::ofstream(dir_ + "/bad.json") << "{ not json";
  auto all = store.loadAll();
  ASSERT_FALSE(all.ok());
  EXPECT_NE(all.error().message.find("bad.json"), std::string::npos) << all.error().message;
}

}  // namespace
}  // namespace loom::drivers::xen
