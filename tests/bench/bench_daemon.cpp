// loomd's replan after one blade failure, through the controller's real path (DESIGN.md
// §6: "in the daemon, the path loomd really takes, not only pool::").
//
//   BM_DaemonReplanOneBladeFailure/store:0  100,000 servers running on 10,000 blades (the
//       fabric of tests/bench/BenchFabric.h), a busy blade silent until it is failed, then
//       its fence command confirms power-off. Timed: Controller::onFenceResult + tick —
//       the failure detector's fence, the replan, the changed bindings persisted, the
//       operations enqueued and their first steps sent through the Send callback. The
//       store is in memory (MemoryStateStore): the disk's fsync is not loomd's CPU.
//   BM_DaemonReplanOneBladeFailure/store:1  the same with the SQLite store (WAL,
//       synchronous=FULL) in a temporary directory: two commits with fsync are timed.
//
// Between iterations (not timed): the new blades' agents carry out the steps, the fenced
// blade comes back empty and is trusted again, the next victim is the blade of another
// pool's first server (like the planner bench's p3-0). Five failures before the first
// timed one. The controller hands the Send callback each frame written out (the plan
// frames by protocol::PlanFrameWriter), as in loomd. Logging is off: the terminal is not
// the controller's work. Counters: `p50_us`, `p90_us` — the median
// and 90th percentile of the timed failures; `moved` — define steps sent a failure, on
// average; `messages` — plan messages sent.
//
//   BM_DaemonBladeList/fields:0  GET /v1/blades on the same fabric (10,000 blades, each
//       running its servers), every field, through Controller::handleApi with the admin
//       token: the router, the access check and the views, as loomd's core answers it
//       (the HTTP thread's send is not in it). Counter `bytes`: the answer's size.
//   BM_DaemonBladeList/fields:1  the same with `loomctl blade list`'s ?fields=.
#include <benchmark/benchmark.h>
#include <spdlog/spdlog.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "controller/Controller.h"
#include "controller/ModelJson.h"
#include "tests/bench/BenchFabric.h"
#include "tests/bench/MemoryStateStore.h"
#include "tests/support/TestToken.h"

namespace {

using loom::protocol::Json;
namespace controller = loom::controller;
namespace protocol = loom::protocol;

struct Daemon {
  std::unique_ptr<controller::StateStore> store;
  std::unique_ptr<controller::Controller> ctl;
  // The frames the Send callback got, as bytes, as loomd's Send gets them (ControllerLoop::send).
  std::vector<std::pair<std::string, std::string>> outbox;
  std::vector<std::string> blades;
  std::int64_t now = 1000;
  std::filesystem::path dir;

  explicit Daemon(bool sqlite) {
    spdlog::set_level(spdlog::level::off);
    if (sqlite) {
      dir = std::filesystem::temp_directory_path() / ("loom-bench-daemon-" + std::to_string(::getpid()));
      std::filesystem::remove_all(dir);
      std::filesystem::create_directories(dir);
      store = std::move(controller::openSqliteStateStore((dir / "state.db").string())).value();
    } else {
      store = std::make_unique<loom::bench::MemoryStateStore>();
    }
    // The declarations as an apply would have stored them; recovery loads them.
    const auto& sc = loom::bench::scenario();
    controller::Change declared;
    declared.putDeclarations = controller::toRecords(sc.desired);
    if (!store->commit(declared)) std::abort();
    controller::ControllerOptions options = loom::testing::withTestAdmin({});
    options.fabricRenewsLeases = true;  // as in loomd: the fabric thread answers heartbeats
    ctl = std::make_unique<controller::Controller>(
        *store, options, [this](const std::string& b, std::string f) { outbox.emplace_back(b, std::move(f)); },
        [] { return 1; });
    if (!ctl->recover(now)) std::abort();
    for (const auto& b : sc.observed.blades) {
      protocol::Register r;
      r.blade = b.name;
      r.inventory.chassis = b.chassis;
      r.inventory.slot = b.slot;
      r.inventory.cores = b.cores;
      r.inventory.memoryMib = b.memory;
      r.inventory.hypervisors = {"kvm", "xen"};
      r.inventory.personality = b.personality ? "kvm" : "";
      r.inventory.driver = "test";
      ctl->onFrame(b.name, protocol::encode(r).dump(), now);
      blades.push_back(b.name);
    }
    advance(200);
    carryOut();
  }
  ~Daemon() {
    ctl.reset();
    store.reset();
    if (!dir.empty()) std::filesystem::remove_all(dir);
  }

  // Time passes: every blade but `silent` beats (the fabric thread's renewal), then tick.
  void advance(std::int64_t ms, const std::string& silent = {}) {
    for (std::int64_t t = 0; t < ms; t += 250) {
      now += 250;
      for (const auto& b : blades)
        if (b != silent) ctl->leases().heartbeat(b, now, false);
      ctl->tick(now);
    }
  }
  // The agents carry out every step sent, and say so.
  void carryOut() {
    for (int round = 0; round < 100 && !outbox.empty(); ++round) {
      auto batch = std::move(outbox);
      outbox.clear();
      for (auto& [blade, text] : batch) {
        const Json frame = Json::parse(text);
        if (frame["type"] != "plan") continue;
        for (auto& step : frame["steps"])
          ctl->onFrame(blade, protocol::encode(protocol::StepResult{step["op"].get<std::uint64_t>(), true, ""}).dump(),
                       now);
      }
      advance(250);
    }
  }
  std::string bladeOf(const std::string& server) const {
    auto it = ctl->placement().bindings.find(server);
    return it == ctl->placement().bindings.end() ? std::string() : it->second;
  }
};

// One failure: the victim falls silent until it is failed, its fence command confirms
// (timed: the fence and the tick that follows), the new blades' agents carry out the
// steps, and the victim comes back empty and is trusted again. Returns the time taken
// and the define steps sent.
struct Failure {
  double seconds = 0;     // wall clock
  double cpuSeconds = 0;  // this thread's CPU time: what is left when the machine is busy
  std::size_t moved = 0, messages = 0;
};

__attribute__((noinline)) void timedPart(Daemon& d, const std::string& victim) {
  d.ctl->onFenceResult(victim, true, "bench", d.now);
  d.ctl->tick(d.now);
}

Failure fail(Daemon& d, const std::string& victim) {
  d.advance(4250, victim);
  d.outbox.clear();
  timespec c0{}, c1{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
  const auto t0 = std::chrono::steady_clock::now();
  timedPart(d, victim);
  Failure f;
  f.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
  f.cpuSeconds = static_cast<double>(c1.tv_sec - c0.tv_sec) + static_cast<double>(c1.tv_nsec - c0.tv_nsec) / 1e9;
  for (auto& [blade, text] : d.outbox) {
    const Json frame = Json::parse(text);
    if (frame["type"] != "plan") continue;
    ++f.messages;
    for (auto& step : frame["steps"]) f.moved += step["kind"] == "define";
  }
  d.carryOut();
  protocol::Register r;
  r.blade = victim;
  for (const auto& b : loom::bench::scenario().observed.blades)
    if (b.name == victim) {
      r.inventory.chassis = b.chassis;
      r.inventory.slot = b.slot;
      r.inventory.cores = b.cores;
      r.inventory.memoryMib = b.memory;
    }
  r.inventory.hypervisors = {"kvm", "xen"};
  r.inventory.personality = "kvm";  // pool blades are; a borrowed spare was prepared
  r.inventory.driver = "test";
  d.ctl->onFrame(victim, protocol::encode(r).dump(), d.now);
  d.advance(500);
  d.carryOut();
  return f;
}

// The victim of round `round`: the blade of a pool's first server (the planner bench's
// p3-0 is one), a busy blade of another pool each time.
std::string victimOf(const Daemon& d, std::size_t round) {
  return d.bladeOf("p" + std::to_string(round % loom::bench::kPools) + "-" +
                   std::to_string(round / loom::bench::kPools * 10));
}

void BM_DaemonReplanOneBladeFailure(benchmark::State& state) {
  Daemon d(state.range(0) == 1);
  std::size_t round = 0;
  // Steady state: the first failures after the fabric came up pay for memory the setup
  // left behind.
  for (int i = 0; i < 5; ++i) fail(d, victimOf(d, round++));
  std::vector<double> samples, cpu;
  std::size_t moved = 0, messages = 0;
  for (auto _ : state) {
    const Failure f = fail(d, victimOf(d, round++));
    if (f.moved == 0) state.SkipWithError("nothing moved");
    state.SetIterationTime(f.seconds);
    samples.push_back(f.seconds);
    cpu.push_back(f.cpuSeconds);
    moved += f.moved;
    messages += f.messages;
  }
  std::sort(samples.begin(), samples.end());
  std::sort(cpu.begin(), cpu.end());
  const auto n = static_cast<double>(samples.size());
  state.counters["p50_us"] = samples.empty() ? 0 : samples[samples.size() / 2] * 1e6;
  state.counters["p90_us"] = samples.empty() ? 0 : samples[samples.size() * 9 / 10] * 1e6;
  state.counters["cpu_p50_us"] = cpu.empty() ? 0 : cpu[cpu.size() / 2] * 1e6;
  state.counters["moved"] = static_cast<double>(moved) / n;
  state.counters["messages"] = static_cast<double>(messages) / n;
}
BENCHMARK(BM_DaemonReplanOneBladeFailure)
    ->ArgName("store")
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kMicrosecond)
    ->UseManualTime()
    ->Iterations(40);

void BM_DaemonBladeList(benchmark::State& state) {
  Daemon d(false);
  controller::ApiRequest request{"GET", "/v1/blades", {}, ""};
  if (state.range(0) == 1)
    request.query["fields"] = "name,chassis,slot,state,pool,role,servers,online,hypervisor,cores,memory_mib";
  request = loom::testing::asAdmin(request);
  std::size_t bytes = 0;
  for (auto _ : state) {
    d.ctl->handleApi(request, d.now, [&](controller::ApiResponse r) {
      if (r.status != 200) state.SkipWithError("GET /v1/blades did not answer 200");
      bytes = r.body.size();
      benchmark::DoNotOptimize(r.body.data());
    });
  }
  state.counters["bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_DaemonBladeList)->ArgName("fields")->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->Iterations(100);

}  // namespace

BENCHMARK_MAIN();
