// Planner benchmarks (DESIGN.md §6). Figures are printed by Google Benchmark; the
// fabric is built once, outside the timed region.
//
//   BM_Place100kOn10k         100,000 servers (1-8 vcpus, 2-16 GiB, anti-affinity groups
//                             of 10, five priorities) in 20 pools onto 10,000 blades from
//                             an empty state: the whole pool::plan(), output included.
//                             Target <= 200 ms.
//   BM_ReplanOneBladeFailure  that placed state, one busy blade Fenced, answered by the
//                             incremental Planner::bladeStateChanged. Target <= 1 ms.
//   BM_FullReplanOneBladeFailure  the same failure through the full pool::plan(), for
//                             comparison (what a controller without the Planner pays).
//   BM_Identities100k         100,000 servers with two NICs each given their identity
//                             (a UUID, two MACs) by one IdentityAllocator; the counter
//                             heap_MB is what the allocator holds afterwards (malloc's
//                             bytes in use, mallinfo2), the controller's cost per 100,000.
#include <benchmark/benchmark.h>
#include <malloc.h>

#include <string>

#include "pool/IdentityAllocator.h"
#include "pool/Planner.h"
#include "tests/bench/BenchFabric.h"

namespace {
using namespace loom::pool;

using loom::bench::kGiB;
using loom::bench::scenario;
using loom::bench::Scenario;

void BM_Place100kOn10k(benchmark::State& state) {
  const Scenario& sc = scenario();
  std::size_t unplaceable = 0, steps = 0;
  for (auto _ : state) {
    Plan p = plan(sc.desired, sc.observed, PlacementState{}, 0);
    unplaceable = p.unplaceable.size();
    steps = p.steps.size();
    benchmark::DoNotOptimize(p);
  }
  state.counters["servers"] = static_cast<double>(sc.desired.servers.size());
  state.counters["blades"] = static_cast<double>(sc.observed.blades.size());
  state.counters["unplaceable"] = static_cast<double>(unplaceable);
  state.counters["steps"] = static_cast<double>(steps);
}
BENCHMARK(BM_Place100kOn10k)->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime()->UseRealTime();

// The placed fabric and a busy blade to fail (one holding many servers).
struct Placed {
  Planner planner;
  Plan plan;
  std::string victim;
};

const Placed& placed() {
  static const Placed p = [] {
    const Scenario& sc = scenario();
    Planner planner(sc.desired, sc.observed, PlacementState{});
    Plan plan = planner.plan(0);
    std::string victim = plan.next.bindings.at("p3-0");
    return Placed{std::move(planner), std::move(plan), std::move(victim)};
  }();
  return p;
}

void BM_ReplanOneBladeFailure(benchmark::State& state) {
  const Placed& base = placed();
  Planner work = base.planner;
  std::size_t moved = 0, unplaceable = 0;
  for (auto _ : state) {
    state.PauseTiming();
    work = base.planner;  // a fresh copy of the placed state, outside the timing
    state.ResumeTiming();
    PlanDelta delta = work.bladeStateChanged(base.victim, BladeState::Fenced, 1);
    moved = delta.placements.size();
    unplaceable = delta.unplaceable.size();
    benchmark::DoNotOptimize(delta);
  }
  state.counters["moved"] = static_cast<double>(moved);
  state.counters["unplaceable"] = static_cast<double>(unplaceable);
}
BENCHMARK(BM_ReplanOneBladeFailure)->Unit(benchmark::kMicrosecond)->Iterations(200);

void BM_FullReplanOneBladeFailure(benchmark::State& state) {
  const Scenario& sc = scenario();
  const Placed& base = placed();
  Inventory failed = sc.observed;
  for (auto& b : failed.blades) {
    if (b.name == base.victim) b.state = BladeState::Fenced;
  }
  for (auto _ : state) {
    Plan p = plan(sc.desired, failed, base.plan.next, 1);
    benchmark::DoNotOptimize(p);
  }
}
BENCHMARK(BM_FullReplanOneBladeFailure)->Unit(benchmark::kMillisecond)->Iterations(5);

void BM_Identities100k(benchmark::State& state) {
  IdentityPool pool;
  pool.name = "default";
  pool.macs.push_back(MacRange{0x525400000000ULL, 0x525400ffffffULL});
  pool.uuids.push_back(UuidRange{0x4c4f4f4d00000000ULL, 0, 32});
  std::vector<Server> servers(100000);
  for (std::size_t i = 0; i < servers.size(); ++i) {
    servers[i].name = "p" + std::to_string(i % 20) + "-" + std::to_string(i / 20);
    servers[i].pool = "pool" + std::to_string(i % 20);
    servers[i].nics = {Nic{"front", ""}, Nic{"back", ""}};
  }
  double heapMb = 0;
  for (auto _ : state) {
    const auto before = ::mallinfo2().uordblks;
    {
      IdentityAllocator a({pool});
      for (const auto& s : servers) benchmark::DoNotOptimize(a.assign(s, ""));
      state.PauseTiming();
      heapMb = static_cast<double>(::mallinfo2().uordblks - before) / 1e6;
      state.ResumeTiming();
    }
  }
  state.counters["heap_MB"] = heapMb;
}
BENCHMARK(BM_Identities100k)->Unit(benchmark::kMillisecond)->Iterations(3);

}  // namespace

BENCHMARK_MAIN();
