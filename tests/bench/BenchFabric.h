// The benchmarks' fabric (DESIGN.md §6): 100,000 servers (1-8 vcpus, 2-16 GiB,
// anti-affinity groups of 10, five priorities) in 20 pools of 495 blades (32, 48 or 64
// cores) plus a spare pool of 100 blades: 10,000 blades. Odd pools pack on failover, even
// ones take spares; every pool keeps 2 spares and borrows from the spare pool. Built once.
#pragma once

#include <string>

#include "pool/Model.h"

namespace loom::bench {

constexpr int kPools = 20;
constexpr int kBladesPerPool = 495;  // 20 x 495 + 100 global spares = 10,000 blades
constexpr int kGlobalSpares = 100;
constexpr int kServersPerPool = 5000;  // 100,000 servers
constexpr pool::MiB kGiB = 1024;

struct Scenario {
  pool::Declarations desired;
  pool::Inventory observed;
};

inline const Scenario& scenario() {
  using namespace loom::pool;
  static const Scenario s = [] {
    Scenario sc;
    // A partition and an identity pool, so the fabric is also a valid declaration for
    // loomd (the planner ignores both).
    sc.desired.partitions.push_back(Partition{"prod"});
    IdentityPool ids;
    ids.name = "default";
    ids.macs.push_back(MacRange{0x525400000000ULL, 0x525400ffffffULL});
    ids.uuids.push_back(UuidRange{0x4c4f4f4d00000000ULL, 0, 32});
    sc.desired.identityPools.push_back(ids);

    const std::uint32_t cores[] = {32, 48, 64};
    for (int p = 0; p < kPools; ++p) {
      for (int i = 0; i < kBladesPerPool; ++i) {
        Blade b;
        b.chassis = "c" + std::to_string(p);
        b.name = b.chassis + "-s" + std::to_string(i);
        b.slot = i;
        b.cores = cores[i % 3];
        b.memory = b.cores * 4 * kGiB;
        b.hypervisors = HypervisorSet::all();
        b.personality = Hypervisor::Kvm;
        sc.observed.blades.push_back(std::move(b));
      }
    }
    Pool spares;
    spares.name = "global-spares";
    spares.sparePool = true;
    for (int i = 0; i < kGlobalSpares; ++i) {
      Blade b;
      b.chassis = "g";
      b.name = "g-s" + std::to_string(i);
      b.cores = 64;
      b.memory = 256 * kGiB;
      b.hypervisors = HypervisorSet::all();
      spares.bladeNames.push_back(b.name);
      sc.observed.blades.push_back(std::move(b));
    }
    for (int p = 0; p < kPools; ++p) {
      Pool pool;
      pool.name = "pool" + std::to_string(p);
      pool.partition = "prod";
      pool.hypervisor = Hypervisor::Kvm;
      BladeMatch m;
      m.chassis = "c" + std::to_string(p);
      pool.match = m;
      pool.spares = 2;
      pool.failover = p % 2 ? FailoverPolicy::Pack : FailoverPolicy::Spare;
      pool.borrowFrom = "global-spares";
      sc.desired.pools.push_back(std::move(pool));
    }
    sc.desired.pools.push_back(spares);
    const std::uint32_t vcpus[] = {1, 2, 4, 8};
    const MiB memory[] = {2 * kGiB, 4 * kGiB, 8 * kGiB, 16 * kGiB};
    for (int p = 0; p < kPools; ++p) {
      for (int i = 0; i < kServersPerPool; ++i) {
        Server s;
        s.name = "p" + std::to_string(p) + "-" + std::to_string(i);
        s.partition = "prod";
        s.pool = "pool" + std::to_string(p);
        s.vcpus = vcpus[(i * 7) % 4];
        s.memory = memory[(i * 3) % 4];
        s.priority = i % 5;
        s.antiAffinity = "p" + std::to_string(p) + "-g" + std::to_string(i / 10);
        sc.desired.servers.push_back(std::move(s));
      }
    }
    return sc;
  }();
  return s;
}

}  // namespace loom::bench
