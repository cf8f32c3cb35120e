// The Loom model: plain value types for what operators declare (Declarations) and what
// the fabric reports (Inventory). No I/O, no clocks, no threads: config/ fills these
// from YAML, the controller fills Inventory from agents, and the planner reads both.
//
// Names are the identity of every object (unique per kind). Sizes are MiB.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace loom::pool {

using MiB = std::uint64_t;
// Time is always an argument: milliseconds on the controller's monotonic clock.
using TimeMs = std::int64_t;

// ---------------------------------------------------------------------------------------
// Enumerations and their text forms (the text form is what YAML, JSON and the CLI use).

enum class Hypervisor : std::uint8_t { Xen, Kvm };

// A set of hypervisors a blade can run (it may be repurposed between them).
struct HypervisorSet {
  std::uint8_t bits = 0;
  static HypervisorSet of(Hypervisor h) { return HypervisorSet{static_cast<std::uint8_t>(1u << static_cast<int>(h))}; }
  static HypervisorSet all() { return HypervisorSet{0b11}; }
  bool has(Hypervisor h) const { return bits & (1u << static_cast<int>(h)); }
  void add(Hypervisor h) { bits |= static_cast<std::uint8_t>(1u << static_cast<int>(h)); }
  bool empty() const { return bits == 0; }
  bool operator==(const HypervisorSet&) const = default;
};

enum class BladeState : std::uint8_t {
  Discovered,   // registered, not yet checked
  Available,    // healthy, in no pool or idle in a pool
  Active,       // healthy and running servers (or a pool member holding placements)
  Spare,        // healthy, kept idle as a pool's failover spare or in a spare pool
  Suspect,      // missed heartbeats; its servers are NOT moved yet
  Failed,       // declared dead; its servers are NOT moved until fenced
  Fenced,       // confirmed off (lease expired or fence command); its servers may move
  Maintenance,  // drained by an operator: nothing new is placed here
  Retired,      // permanently out of service
};

enum class ServerState : std::uint8_t {
  Pending,
  Placing,
  Starting,
  Running,
  Stopping,
  Stopped,
  Failed,
  Unplaceable,
  Moving,
};

enum class FailoverPolicy : std::uint8_t { Spare, Pack, None };
enum class FailbackPolicy : std::uint8_t { Manual, Auto };
enum class PowerState : std::uint8_t { On, Off };
enum class XenGuestType : std::uint8_t { Hvm, Pv, Pvh };

// A server's domain as a blade's hypervisor reports it (drivers produce it, agents send
// it, the controller compares it). The order is kept: simulator state files written
// before 0.2 stored the number.
enum class DomainState : std::uint8_t { Defined, Running, Paused, ShuttingDown, Shutoff, Crashed };
// Running or paused: a domain that holds its server, which fencing must end.
constexpr bool isLive(DomainState s) { return s == DomainState::Running || s == DomainState::Paused; }

// What one plan step asks an agent to do (pool::Step, the fabric's plan message, the
// controller's operations).
enum class StepKind : std::uint8_t {
  PrepareHypervisor,  // give `blade` the `hypervisor` personality (repurpose)
  Define,             // define `server` on `blade`
  Start,              // start `server` on `blade`
  Stop,               // stop `server` on `blade` (graceful, then destroy)
  Undefine,           // remove `server`'s definition from `blade`
};

const char* toString(Hypervisor);
const char* toString(BladeState);
const char* toString(ServerState);
const char* toString(FailoverPolicy);
const char* toString(FailbackPolicy);
const char* toString(PowerState);
const char* toString(XenGuestType);
const char* toString(DomainState);  // "running", "shutoff", "shutting-down", ...
const char* toString(StepKind);     // "prepare-hypervisor", "define", "start", "stop", "undefine"
std::optional<Hypervisor> parseHypervisor(std::string_view);
std::optional<BladeState> parseBladeState(std::string_view);
std::optional<ServerState> parseServerState(std::string_view);
std::optional<FailoverPolicy> parseFailoverPolicy(std::string_view);
std::optional<FailbackPolicy> parseFailbackPolicy(std::string_view);
std::optional<PowerState> parsePowerState(std::string_view);
std::optional<XenGuestType> parseXenGuestType(std::string_view);
std::optional<DomainState> parseDomainState(std::string_view);
std::optional<StepKind> parseStepKind(std::string_view);
// A size as people write it in YAML: "64GiB", "1TiB", "1536MiB" (the largest whole unit).
std::string formatSize(MiB);

// ---------------------------------------------------------------------------------------
// Declarations: what operators write in YAML (after replicas are expanded).

struct Partition {
  std::string name;
};

struct Network {
  std::string name;
  std::string partition;
  std::optional<int> vlan;  // 1..4094
};

// A MAC range "first-last" (inclusive) and a UUID range "prefix/bits": the low `bits`
// bits of the 128-bit prefix vary, giving 2^bits UUIDs.
struct MacRange {
  std::uint64_t first = 0;  // 48-bit values
  std::uint64_t last = 0;
};
struct UuidRange {
  std::uint64_t prefixHi = 0;  // high 64 bits of the prefix
  std::uint64_t prefixLo = 0;  // low 64 bits of the prefix (low `bits` bits are zero)
  int bits = 0;                // 1..64
};

struct IdentityPool {
  std::string name;
  std::vector<MacRange> macs;
  std::vector<UuidRange> uuids;
};

// A pool's qualification rule; every present field must hold.
struct BladeMatch {
  std::optional<std::string> chassis;
  std::optional<std::uint32_t> minCores;
  std::optional<MiB> minMemory;
  std::optional<std::string> model;      // substring of the CPU model
  std::optional<Hypervisor> hypervisor;  // the blade must be able to run it
};

struct Pool {
  std::string name;
  std::string partition;                 // empty for a spare pool shared by all
  std::optional<Hypervisor> hypervisor;  // personality; required unless sparePool
  std::vector<std::string> bladeNames;   // explicit members, claimed first
  std::optional<BladeMatch> match;       // qualification rule
  bool sparePool = false;                // blades idle until borrowed
  std::uint32_t spares = 0;              // N+M: blades kept free for failover
  FailoverPolicy failover = FailoverPolicy::Spare;
  FailbackPolicy failback = FailbackPolicy::Manual;
  std::string borrowFrom;    // a spare pool's name, or empty
  std::string identityPool;  // empty: the "default" (or only) identity pool
};

struct Nic {
  std::string network;
  std::string mac;  // empty: allocated from the identity pool; "52:54:00:..." when fixed
};

struct Disk {
  std::string image;   // path on the blade
  std::string format;  // "qcow2" | "raw"; empty: from the file name
  bool readOnly = false;
};

struct Boot {
  std::string kernel;
  std::string initrd;
  std::string cmdline;
  bool empty() const { return kernel.empty() && initrd.empty() && cmdline.empty(); }
};

struct Server {
  std::string name;
  std::string partition;
  std::string pool;
  std::uint32_t vcpus = 1;
  MiB memory = 512;
  std::vector<Nic> nics;
  std::vector<Disk> disks;
  Boot boot;
  std::optional<XenGuestType> xenType;  // for Xen pools; default Hvm
  int priority = 0;                     // higher places and restarts first
  std::string antiAffinity;             // group name, or empty
  bool dedicated = false;               // takes a whole blade
  PowerState power = PowerState::On;
  std::string uuid;          // empty: allocated from the identity pool
  std::string identityPool;  // empty: the pool's identity pool (then "default", or the only one)
  std::string template_;     // the template (replicas) it came from, or empty
};

// A blade's baseboard management controller: how loomd's --fence-command reaches it
// ({bmc_address} {bmc_port} {bmc_user} {bmc_password_file}). The password stays in a
// file on the controller host; only its path is declared.
struct Bmc {
  std::string address;  // host name or IP address
  int port = 623;       // IPMI's RMCP+ port
  std::string user;
  std::string passwordFile;  // absolute path on the controller host
  bool operator==(const Bmc&) const = default;
};

// `kind: Blade`: what an operator declares of one physical blade, fabric-wide (no
// partition). It may name a blade that has not registered yet. The planner does not read
// it: a declared BMC makes the blade power-fenced (docs/FENCING.md, the power route).
struct DeclaredBlade {
  std::string name;
  std::optional<Bmc> bmc;
};

// Everything declared, as one value. Order is the declaration order.
struct Declarations {
  std::vector<Partition> partitions;
  std::vector<Network> networks;
  std::vector<IdentityPool> identityPools;
  std::vector<Pool> pools;
  std::vector<Server> servers;
  std::vector<DeclaredBlade> blades;
  // Servers deleted and not declared again (the controller's tombstones): wherever a blade
  // reports their domains, they are stopped and undefined. Other undeclared domains are
  // not Loom's and are left alone. A name declared again is a server, whatever this says.
  std::vector<std::string> deleted;
};

// ---------------------------------------------------------------------------------------
// Inventory: what the fabric reports.

// A domain as a blade's agent reports it: a server's (named after it) or one Loom did not
// declare.
struct Domain {
  std::string name;
  DomainState state = DomainState::Defined;
};

struct Blade {
  std::string name;
  std::string chassis;
  int slot = 0;
  std::uint32_t sockets = 1;
  std::uint32_t cores = 0;
  MiB memory = 0;
  std::string model;                      // CPU model
  HypervisorSet hypervisors;              // what it can run
  std::optional<Hypervisor> personality;  // what it runs now (empty: not prepared)
  BladeState state = BladeState::Available;
  std::string bmc;  // fence target, or empty
  // What its agent reports. Absent: not reported (offline planning, or a blade not heard
  // since a controller restart); the planner then assumes it runs what the current
  // placement binds to it, nothing when it is fenced or retired (pool/README.md, "Steps").
  std::optional<std::vector<Domain>> domains;
  // Whether steps reach its agent now. The controller says false for a blade not heard
  // since it started and for one that is silent or fenced; offline planning leaves true.
  // A fenced blade that is reachable again is being cleaned: it gets stops only.
  bool reachable = true;
};

struct Inventory {
  std::vector<Blade> blades;
};

// A fabric file (for the simulator and offline planning) is an inventory.
using Fabric = Inventory;

}  // namespace loom::pool
