// The hypervisor driver interface: the narrow boundary between the node agent and a
// hypervisor (Xen through libxl, KVM through libvirt, the in-memory test driver).
//
// Contract for every implementation:
// - Every operation is idempotent: defining an identical domain again, starting a
//   running domain, stopping a stopped one, destroying or undefining an absent one all
//   succeed.
// - Expected failures are Result errors whose message names the domain and the cause;
//   nothing throws across this interface and nothing crashes on any input.
// - An operation the hypervisor does not offer returns Errc::Unsupported.
// - A driver instance is used from one thread at a time (the agent's executor); a
//   driver may run internal threads for events and must stop them in its destructor.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "loom/Result.h"
#include "pool/Model.h"

namespace loom::drivers {

using MiB = std::uint64_t;

// The fabric's vocabulary (pool/Model.h, with their one toString/parse): a driver speaks
// of the same guest types and domain states as the controller does.
using pool::DomainState;
using pool::XenGuestType;

// What a driver is told to run: the logical server as the blade sees it. The UUID and
// MACs are the server's identity (from the identity pool) and must reach the hypervisor
// unchanged, so `virsh list` / `xl list` show the same server Loom does.
struct NicSpec {
  std::string mac;      // "52:54:00:10:00:01"
  std::string network;  // the Network name declared in YAML
  std::string bridge;   // host bridge from the agent's network map; empty: isolated NIC
  std::optional<int> vlan;
};

struct DiskSpec {
  std::string path;
  std::string format;  // "qcow2" | "raw"
  bool readOnly = false;
};

struct DomainSpec {
  std::string name;
  std::string uuid;  // canonical lower-case 8-4-4-4-12
  std::uint32_t vcpus = 1;
  MiB memory = 512;
  std::vector<NicSpec> nics;
  std::vector<DiskSpec> disks;
  std::string kernel, initrd, cmdline;  // direct kernel boot when kernel is set
  XenGuestType xenType = XenGuestType::Hvm;
};

struct DomainInfo {
  std::string name;
  std::string uuid;
  DomainState state = DomainState::Shutoff;
  std::uint32_t vcpus = 0;
  MiB memory = 0;
  std::vector<std::string> macs;
};

struct NodeInfo {
  std::uint32_t sockets = 0;
  std::uint32_t cores = 0;  // logical CPUs the hypervisor offers
  MiB memory = 0;
  std::string cpuModel;
  std::string hypervisor;  // "xen", "kvm", "test"
  std::string version;     // hypervisor version, e.g. "4.17.7" or "QEMU 7.2.0"
  // The personality the blade runs now, as the agent reports it at registration: a real
  // driver's own hypervisor; for the test driver, the one preparePersonality gave it (kept
  // in its state file across agent restarts), or none before that.
  std::optional<pool::Hypervisor> personality;
};

struct Capabilities {
  bool liveMigration = false;
  bool events = false;
  bool directKernelBoot = false;
  bool persistentDefinitions = false;  // definitions survive host restart
  // The personalities the blade can take in place (preparePersonality, the plan's
  // prepare-hypervisor step). A real driver is one hypervisor and can be only that one; a
  // simulated hypervisor (the test driver) can play either.
  pool::HypervisorSet personalities;
  // The driver models the blade's hardware watchdog (renewWatchdog): the lease guard of a
  // simulated blade. A real host's watchdog is a device, not a driver's (loom-agent
  // --watchdog).
  bool watchdog = false;
};

// The answer to "does this driver apply on this host".
struct ProbeResult {
  bool applies = false;
  std::string reason;  // why not ("no Xen hypervisor on this host (cannot open privcmd)"), or what was found
};

struct DomainEvent {
  std::string name;
  std::string uuid;
  DomainState state = DomainState::Shutoff;
  std::string detail;  // "crashed", "shutdown by guest", ...
};
using EventCallback = std::function<void(const DomainEvent&)>;

class Driver {
 public:
  virtual ~Driver() = default;

  virtual std::string name() const = 0;
  virtual Capabilities capabilities() const = 0;

  // Does the driver apply here? Never fails: a driver that cannot apply says why.
  virtual ProbeResult probe() = 0;
  virtual Result<NodeInfo> nodeInfo() = 0;

  // Define (or redefine, when not running) the domain. Idempotent.
  virtual Status define(const DomainSpec& spec) = 0;
  // Start a defined domain; success if it already runs.
  virtual Status start(const std::string& name) = 0;
  // Ask the guest to shut down; destroy it if it has not stopped after `timeoutMs`.
  // Success if it is not running.
  virtual Status stop(const std::string& name, int timeoutMs) = 0;
  // Power off at once. Success if it is not running or absent.
  virtual Status destroy(const std::string& name) = 0;
  // Remove the definition (destroying first if running). Success if absent.
  virtual Status undefine(const std::string& name) = 0;

  virtual Result<std::vector<DomainInfo>> list() = 0;
  virtual Result<DomainInfo> info(const std::string& name) = 0;  // NotFound if absent

  // Lifecycle events, where the hypervisor offers them (capabilities().events);
  // Unsupported otherwise. The callback runs on a driver thread.
  virtual Status subscribe(EventCallback callback) = 0;

  // Give the blade the `hypervisor` personality (repurposing). Idempotent. Unsupported for
  // one outside capabilities().personalities. This default suits a real driver, which
  // already is its one personality: nothing to do. The agent calls it on its own thread
  // even while a worker runs the other operations (the controller sends it alone, but the
  // worker still lists domains): an override must be thread-safe, as the test driver is.
  virtual Status preparePersonality(pool::Hypervisor hypervisor);

  // The blade's watchdog (capabilities().watchdog; Unsupported otherwise): unless renewed
  // again within `remainingMs`, every running domain of the blade is destroyed then, even
  // if the agent is frozen or killed (the lease guard, DESIGN.md §5). Cheap: called at
  // every lease renewal.
  virtual Status renewWatchdog(std::int64_t remainingMs);
  // Stops the watchdog: nothing fires until it is renewed again (a power-fenced blade,
  // whose BMC is the authority, docs/FENCING.md). Unsupported without one.
  virtual Status disarmWatchdog();
};

}  // namespace loom::drivers
