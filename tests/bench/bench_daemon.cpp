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
// pool's server. Logging is off: the terminal is not the controller's work. Counters:
// `moved` — define steps sent in the timed part; `messages` — plan messages sent.
#include <unistd.h>

#include <benchmark/benchmark.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "controller/Controller.h"
#include "controller/ModelJson.h"
#include "tests/bench/BenchFabric.h"
#include "tests/bench/MemoryStateStore.h"

namespace {

using loom::protocol::Json;
namespace controller = loom::controller;
namespace protocol = loom::protocol;

struct Daemon {
  std::unique_ptr<controller::StateStore> store;
  std::unique_ptr<controller::Controller> ctl;
  std::vector<std::pair<std::string, Json>> outbox;  // what the Send callback got
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
    controller::ControllerOptions options;
    options.fabricRenewsLeases = true;  // as in loomd: the fabric thread answers heartbeats
    ctl = std::make_unique<controller::Controller>(
        *store, options, [this](const std::string& b, const Json& f) { outbox.emplace_back(b, f); }, [] { return 1; });
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
      for (auto& [blade, frame] : batch) {
        if (frame["type"] != "plan") continue;
        for (auto& step : frame["steps"])
          ctl->onFrame(blade, protocol::encode(protocol::StepResult{step["op"].get<std::uint64_t>(), true, ""}).dump(), now);
      }
      advance(250);
    }
  }
  std::string bladeOf(const std::string& server) const {
    auto it = ctl->placement().bindings.find(server);
    return it == ctl->placement().bindings.end() ? std::string() : it->second;
  }
};

void BM_DaemonReplanOneBladeFailure(benchmark::State& state) {
  Daemon d(state.range(0) == 1);
  const auto& servers = loom::bench::scenario().desired.servers;
  std::size_t moved = 0, messages = 0, round = 0;
  for (auto _ : state) {
    state.PauseTiming();
    // A busy blade of another pool each time; it falls silent until it is failed.
    const std::string victim = d.bladeOf(servers[(round * 7919 + 13) % servers.size()].name);
    ++round;
    d.advance(4250, victim);
    d.outbox.clear();
    state.ResumeTiming();

    d.ctl->onFenceResult(victim, true, "bench", d.now);
    d.ctl->tick(d.now);

    state.PauseTiming();
    moved = messages = 0;
    for (auto& [blade, frame] : d.outbox) {
      if (frame["type"] != "plan") continue;
      ++messages;
      for (auto& step : frame["steps"]) moved += step["kind"] == "define";
    }
    if (moved == 0) state.SkipWithError(("nothing moved off " + victim).c_str());
    d.carryOut();
    // It comes back empty: trusted again, a spare or an available blade.
    protocol::Register r;
    r.blade = victim;
    r.inventory.chassis = victim.substr(0, victim.find('-'));
    r.inventory.cores = 64;
    r.inventory.memoryMib = 256 * 1024;
    r.inventory.hypervisors = {"kvm", "xen"};
    r.inventory.personality = "kvm";
    r.inventory.driver = "test";
    for (const auto& b : loom::bench::scenario().observed.blades)
      if (b.name == victim) {
        r.inventory.cores = b.cores;
        r.inventory.memoryMib = b.memory;
        r.inventory.slot = b.slot;
      }
    d.ctl->onFrame(victim, protocol::encode(r).dump(), d.now);
    d.advance(500);
    d.carryOut();
    state.ResumeTiming();
  }
  state.counters["moved"] = static_cast<double>(moved);
  state.counters["messages"] = static_cast<double>(messages);
}
BENCHMARK(BM_DaemonReplanOneBladeFailure)->ArgName("store")->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond)->Iterations(30);

}  // namespace

BENCHMARK_MAIN();
