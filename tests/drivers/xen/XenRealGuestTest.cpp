// The driver against a real Xen: runs inside the harness's dom0 (tests/drivers/xen/real), skipped
// everywhere else. Everything it proves is read back from Xen's own view (`xl list -l`,
// `xl info`, the guest's console log), not from what the driver says. One guest leg per
// kernel-booted Xen guest type, PV and PVH, with the same kernel and initrd.
//
// Environment (set by the harness payload):
//   LOOM_XEN_GUEST_KERNEL, LOOM_XEN_GUEST_INITRD  a kernel that boots both PV and PVH
//                                                 (Debian's) and an initrd whose init
//                                                 prints LOOM-GUEST-UP and idles
//   LOOM_XEN_CONSOLE_DIR  where xenconsoled logs guest consoles (/var/log/xen/console)
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <ostream>
#include <sstream>
#include <thread>

#include "drivers/xen/XenDriver.h"

namespace loom::drivers::xen {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

struct Command {
  int exitCode = -1;
  std::string output;
};

Command run(const std::string& command) {
  Command result;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return result;
  char buffer[4096];
  for (std::size_t n; (n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0;) result.output.append(buffer, n);
  int status = ::pclose(pipe);
  result.exitCode = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

long msSince(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
}

void printTiming(const std::string& step, long ms) {
  std::printf("TIMING %s_ms=%ld\n", step.c_str(), ms);
  std::fflush(stdout);
}

const char* env(const char* name) {
  const char* value = std::getenv(name);
  return value && *value ? value : nullptr;
}

// The domain as `xl list -l` shows it: libxl's stored config for that domid.
json xlListLong(const std::string& name) {
  Command xl = run("xl list -l " + name);
  if (xl.exitCode != 0) return json();
  json doc = json::parse(xl.output, nullptr, false);
  if (doc.is_discarded() || !doc.is_array() || doc.empty()) return json();
  return doc[0];
}

bool xlKnows(const std::string& name) { return run("xl domid " + name).exitCode == 0; }

// One guest leg: how Loom asks for the guest, and the type `xl list -l` must show.
struct GuestLeg {
  const char* xlType;  // c_info.type as libxl records it; also the test-name suffix and TIMING prefix
  XenGuestType type;
  const char* name;
  const char* uuid;
  const char* mac;
};

// What gtest prints for a leg (test lists, ctest names): its type, not its bytes.
void PrintTo(const GuestLeg& leg, std::ostream* out) { *out << leg.xlType; }

const GuestLeg kGuestLegs[] = {
    {"pv", XenGuestType::Pv, "loom-real-pv", "4c4f4f4d-7e57-4000-8000-00000000c0de", "52:54:00:10:00:2a"},
    {"pvh", XenGuestType::Pvh, "loom-real-pvh", "4c4f4f4d-7e57-4000-8000-00000000c0df", "52:54:00:10:00:2b"},
};

// A driver on this dom0 (skips outside the harness).
class XenRealDom0 : public ::testing::Test {
 protected:
  void SetUp() override {
    kernel_ = env("LOOM_XEN_GUEST_KERNEL") ? env("LOOM_XEN_GUEST_KERNEL") : "";
    initrd_ = env("LOOM_XEN_GUEST_INITRD") ? env("LOOM_XEN_GUEST_INITRD") : "";
    if (kernel_.empty() || initrd_.empty())
      GTEST_SKIP() << "real-Xen leg: LOOM_XEN_GUEST_KERNEL/INITRD not set (runs inside the real-xen harness)";
    char pattern[] = "/tmp/loom-xen-real-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    stateDir_ = pattern;
    DriverOptions options;
    options.params["state_dir"] = stateDir_;
    auto driver = makeXenDriver(options);
    ASSERT_TRUE(driver.ok()) << driver.error().message;
    driver_ = std::move(driver.value());
    ProbeResult probe = driver_->probe();
    if (!probe.applies) GTEST_SKIP() << "real-Xen leg: " << probe.reason;
    std::printf("probe: %s\n", probe.reason.c_str());
  }

  std::string kernel_, initrd_, stateDir_;
  std::unique_ptr<Driver> driver_;
};

class XenRealGuest : public XenRealDom0, public ::testing::WithParamInterface<GuestLeg> {
 protected:
  void TearDown() override {
    if (driver_) (void)driver_->undefine(spec().name);
  }

  DomainSpec spec() const {
    const GuestLeg& leg = GetParam();
    DomainSpec s;
    s.name = leg.name;
    s.uuid = leg.uuid;
    s.vcpus = 2;
    s.memory = 128;
    s.xenType = leg.type;
    s.kernel = kernel_;
    s.initrd = initrd_;
    s.cmdline = "console=hvc0 quiet";
    NicSpec nic;
    nic.mac = leg.mac;
    nic.network = "front";  // no bridge on this blade: an isolated vif
    s.nics = {nic};
    return s;
  }

  void timing(const char* step, long ms) const { printTiming(std::string(GetParam().xlType) + "_" + step, ms); }

  // Polls only the console log xenconsoled writes: nothing that talks to Xen.
  bool waitForConsoleLine(const std::string& name, const std::string& needle, int timeoutMs) {
    const std::string dir = env("LOOM_XEN_CONSOLE_DIR") ? env("LOOM_XEN_CONSOLE_DIR") : "/var/log/xen/console";
    const auto deadline = Clock::now() + std::chrono::milliseconds(timeoutMs);
    while (Clock::now() < deadline) {
      std::ifstream log(dir + "/guest-" + name + ".log");
      std::stringstream text;
      text << log.rdbuf();
      if (text.str().find(needle) != std::string::npos) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
    return false;
  }
};

TEST_P(XenRealGuest, RunsWithItsIdentityAndStopsAndDestroys) {
  const DomainSpec s = spec();
  ASSERT_TRUE(driver_->define(s).ok());
  ASSERT_TRUE(driver_->define(s).ok()) << "define is idempotent";

  auto t = Clock::now();
  Status started = driver_->start(s.name);
  ASSERT_TRUE(started.ok()) << started.error().message;
  timing("create", msSince(t));
  ASSERT_TRUE(driver_->start(s.name).ok()) << "start of a running domain succeeds";

  // The guest really runs: its init printed on the console. Waited for first, so the
  // toolstack queries below do not run while it boots: a PVH kernel's early boot polls
  // the PIT it lacks ~100,000 times, each poll a VM exit, and under qemu's emulated SVM a
  // busy dom0 during that loop has made the guest triple-fault (real/README.md, "PVH").
  t = Clock::now();
  bool up = waitForConsoleLine(s.name, "LOOM-GUEST-UP", 120000);
  if (!up && run("xl dmesg").output.find("Triple fault") != std::string::npos) {
    // That emulator fault (real/README.md, "PVH"), not the driver's: booted once more, so
    // a known qemu defect does not fail the suite; twice in a row still does.
    std::printf("KNOWN-EMULATOR-FAULT: %s triple-faulted while booting (xl dmesg); starting it once more\n%s",
                s.name.c_str(), run("xl dmesg | grep -A3 'Triple fault' | tail -8").output.c_str());
    (void)driver_->destroy(s.name);
    ASSERT_TRUE(driver_->start(s.name).ok());
    up = waitForConsoleLine(s.name, "LOOM-GUEST-UP", 120000);
  }
  timing("guest_console_line", msSince(t));
  EXPECT_TRUE(up) << "the guest never printed LOOM-GUEST-UP; xl list:\n"
                  << run("xl list " + s.name).output << "xl dmesg (tail):\n"
                  << run("xl dmesg | tail -25").output;

  // Xen's own view of the domain.
  json xl = xlListLong(s.name);
  ASSERT_FALSE(xl.is_null()) << run("xl list -l " + s.name).output;
  const json& config = xl["config"];
  EXPECT_EQ(config["c_info"]["name"], s.name);
  EXPECT_EQ(config["c_info"]["uuid"], s.uuid);
  EXPECT_EQ(config["c_info"]["type"], GetParam().xlType);
  EXPECT_EQ(config["b_info"]["max_memkb"], s.memory * 1024);
  EXPECT_EQ(config["b_info"]["target_memkb"], s.memory * 1024);
  EXPECT_EQ(config["b_info"]["max_vcpus"], s.vcpus);
  ASSERT_TRUE(config["nics"].is_array() && config["nics"].size() == 1) << config.dump(2);
  EXPECT_EQ(config["nics"][0]["mac"], s.nics[0].mac);
  std::printf("xl list -l: name=%s type=%s uuid=%s max_memkb=%s max_vcpus=%s mac=%s\n",
              config["c_info"]["name"].dump().c_str(), config["c_info"]["type"].dump().c_str(),
              config["c_info"]["uuid"].dump().c_str(), config["b_info"]["max_memkb"].dump().c_str(),
              config["b_info"]["max_vcpus"].dump().c_str(), config["nics"][0]["mac"].dump().c_str());
  Command xlList = run("xl list " + s.name);
  std::printf("%s", xlList.output.c_str());

  // The isolated NIC: the vif exists in dom0, is up, and netback saw it connected.
  std::string domid = run("xl domid " + s.name).output;
  domid = domid.substr(0, domid.find('\n'));
  Command vif = run("ip -o link show vif" + domid + ".0");
  EXPECT_EQ(vif.exitCode, 0) << vif.output;
  EXPECT_NE(vif.output.find(",UP"), std::string::npos) << vif.output;
  Command hotplug = run("xenstore-read /local/domain/0/backend/vif/" + domid + "/0/hotplug-status");
  EXPECT_EQ(hotplug.output, "connected\n") << hotplug.output;

  // The driver's view agrees.
  auto info = driver_->info(s.name);
  ASSERT_TRUE(info.ok()) << info.error().message;
  EXPECT_EQ(info->state, DomainState::Running);
  EXPECT_EQ(info->uuid, s.uuid);
  EXPECT_EQ(info->vcpus, s.vcpus);
  EXPECT_EQ(info->macs, std::vector<std::string>{s.nics[0].mac});
  auto listed = driver_->list();
  ASSERT_TRUE(listed.ok()) << listed.error().message;
  bool found = false;
  for (const auto& d : *listed) found = found || (d.name == s.name && d.state == DomainState::Running);
  EXPECT_TRUE(found);

  // Graceful stop: the guest powers off on the control node's request (PVH too: it has no
  // ACPI power button), well inside the timeout.
  t = Clock::now();
  Status stopped = driver_->stop(s.name, 60000);
  const long stopMs = msSince(t);
  ASSERT_TRUE(stopped.ok()) << stopped.error().message;
  timing("stop", stopMs);
  EXPECT_LT(stopMs, 60000) << "the guest ignored the shutdown request and was destroyed";
  EXPECT_FALSE(xlKnows(s.name)) << run("xl list").output;
  ASSERT_TRUE(driver_->stop(s.name, 1000).ok()) << "stop of a stopped domain succeeds";
  auto after = driver_->info(s.name);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->state, DomainState::Defined);

  // Start again from Loom's store, then power off hard.
  ASSERT_TRUE(driver_->start(s.name).ok());
  EXPECT_TRUE(xlKnows(s.name));
  t = Clock::now();
  Status destroyed = driver_->destroy(s.name);
  ASSERT_TRUE(destroyed.ok()) << destroyed.error().message;
  timing("destroy", msSince(t));
  EXPECT_FALSE(xlKnows(s.name));
  ASSERT_TRUE(driver_->destroy(s.name).ok()) << "destroy of an absent domain succeeds";

  ASSERT_TRUE(driver_->undefine(s.name).ok());
  EXPECT_EQ(driver_->info(s.name).error().code, Errc::NotFound);
}

INSTANTIATE_TEST_SUITE_P(Types, XenRealGuest, ::testing::ValuesIn(kGuestLegs),
                         [](const ::testing::TestParamInfo<GuestLeg>& info) { return std::string(info.param.xlType); });

TEST_F(XenRealDom0, NodeInfoMatchesXlInfo) {
  auto node = driver_->nodeInfo();
  ASSERT_TRUE(node.ok()) << node.error().message;
  Command xl = run("xl info");
  ASSERT_EQ(xl.exitCode, 0) << xl.output;
  auto field = [&](const std::string& key) {
    std::istringstream in(xl.output);
    for (std::string line; std::getline(in, line);) {
      if (line.rfind(key, 0) == 0 && line.find(':') != std::string::npos) {
        std::string value = line.substr(line.find(':') + 1);
        return value.substr(value.find_first_not_of(' '));
      }
    }
    return std::string();
  };
  EXPECT_EQ(std::to_string(node->cores), field("nr_cpus"));
  EXPECT_EQ(std::to_string(node->memory), field("total_memory"));
  EXPECT_EQ(node->version, field("xen_version"));
  std::printf("node: %u cores, %llu MiB, Xen %s, %s\n", node->cores, static_cast<unsigned long long>(node->memory),
              node->version.c_str(), node->cpuModel.c_str());
}

}  // namespace
}  // namespace loom::drivers::xen
