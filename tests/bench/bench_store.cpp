// The state store's own costs, SQLite and etcd side by side (controller/README.md, "etcd"):
//
//   BM_StoreLoad/etcd:B       load() of 100,000 servers' worth of records (the fabric of
//       tests/bench/BenchFabric.h: 100,000 server declarations as toRecords() writes them,
//       bindings, home placements and identities, 10,000 blades): 410,000 records (on
//       etcd 210,000 keys: a server's identity, binding and home are one), what a
//       restarted (or newly leading) loomd reads before it serves.
//   BM_StoreCommitApply/etcd:B  the two commits of an apply of 10,000 servers as loomd
//       makes them: the declarations (the apply), then the plan's identities, bindings
//       and homes (Replanner::replan): 40,000 records in two transactions (on etcd 20,000
//       keys; 40,000 in the layout before server/NAME).
//   BM_StoreCommitSmall/etcd:B  one Journal flush of a tick: an event and an operation.
//   BM_WarmCopyLag/servers:N  etcd only: a commit of N servers' records (declaration,
//       identity, binding, home: 2N keys in one txn, 4N before server/NAME) by the leader's store, and the
//       time from its return until a standby's warm copy (controller/WarmCopy.h) holds
//       it. Manual time is that lag; counters: the medians of the lag and of the commit.
//
// B=0: SQLite (WAL, synchronous=FULL) in a temporary directory. B=1: etcd, a 3-member
// cluster on loopback started by tools/etcd.sh (real fsync, the same disk), under a fresh
// prefix. Both on this machine's one disk: the figures compare the two, they are not what
// a dedicated etcd cluster would give. Counters: `records` loaded, `writes` committed,
// `MiB` of values.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "controller/ControllerLoop.h"
#include "controller/ModelJson.h"
#include "controller/StateStore.h"
#include "controller/WarmCopy.h"
#include "controller/etcd/EtcdClient.h"
#include "tests/bench/BenchFabric.h"
#include "tests/support/EtcdCluster.h"

namespace {

namespace controller = loom::controller;
namespace etcd = loom::controller::etcd;

struct Backend {
  std::unique_ptr<loom::test::EtcdCluster> cluster;
  std::filesystem::path dir;
  int serial = 0;

  ~Backend() {
    if (!dir.empty()) std::filesystem::remove_all(dir);
  }

  // A fresh, empty store of the kind asked for; nullptr (and why) if it cannot be had.
  std::unique_ptr<controller::StateStore> open(bool etcd, std::string& why) {
    if (!etcd) {
      if (dir.empty()) {
        dir = std::filesystem::temp_directory_path() / ("loom-bench-store-" + std::to_string(::getpid()));
        std::filesystem::remove_all(dir);
        std::filesystem::create_directories(dir);
      }
      auto s = controller::openSqliteStateStore((dir / ("s" + std::to_string(serial++) + ".db")).string());
      if (!s) why = s.error().message;
      return s ? std::move(*s) : nullptr;
    }
    auto o = etcdOptions(why);
    if (!o) return nullptr;
    auto s = controller::openEtcdStateStore(*o);
    if (!s) why = s.error().message;
    return s ? std::unique_ptr<controller::StateStore>(std::move(*s)) : nullptr;
  }

  // The options of a fresh prefix on the bench's etcd cluster (started at the first call).
  std::optional<controller::EtcdStoreOptions> etcdOptions(std::string& why) {
    if (!cluster) cluster = loom::test::EtcdCluster::start(3, why);
    if (!cluster) return std::nullopt;
    controller::EtcdStoreOptions o;
    o.endpoints = cluster->endpoints();
    o.prefix = "/bench" + std::to_string(serial++);
    o.timeout = std::chrono::milliseconds(10000);
    return o;
  }
};

Backend& backend() {
  static Backend b;
  return b;
}

// Servers [from, to) of the fabric: their declarations (an apply) and their identities,
// bindings and homes (the plan after it, as Replanner::replan commits it). Round r > 0
// rewrites every record with new values (a tag in the declaration, another identity,
// another blade), so each round writes what an apply of new servers writes: a store that
// skips an unchanged record must not look faster for it.
struct Records {
  controller::Change apply;
  controller::Change plan;
  std::size_t bytes = 0;
};
Records serverRecords(std::size_t from, std::size_t to, unsigned round) {
  const auto& sc = loom::bench::scenario();
  Records r;
  for (std::size_t i = from; i < to; ++i) {
    const auto& s = sc.desired.servers[i];
    std::string body = controller::toJson(s).dump();
    if (round) body.insert(body.size() - 1, ",\"tag\":\"r" + std::to_string(round) + "\"");
    r.bytes += body.size();
    r.apply.putDeclarations.push_back({"Server", s.name, std::move(body)});
    char mac[32];
    std::snprintf(mac, sizeof mac, "52:54:%02x:%02zx:%02zx:%02zx", round & 0xff, (i >> 16) & 0xff, (i >> 8) & 0xff,
                  i & 0xff);
    char uuid[40];
    std::snprintf(uuid, sizeof uuid, "4c4f4f4d-0000-0000-%04x-%012zx", round & 0xffff, i);
    r.plan.putIdentities.push_back({s.name, "default", {uuid, {mac}}});
    const std::string& blade = sc.observed.blades[(i + round) % sc.observed.blades.size()].name;
    r.plan.putBindings[s.name] = blade;
    r.plan.putPlacement[{"home", s.name}] = blade;
  }
  return r;
}

void BM_StoreLoad(benchmark::State& state) {
  const bool etcd = state.range(0) == 1;
  std::string why;
  auto store = backend().open(etcd, why);
  if (!store) return state.SkipWithError(why.c_str());
  const auto& sc = loom::bench::scenario();
  // Setup, not timed: 100,000 servers committed 10,000 at a time, the other kinds once.
  controller::Change rest;
  for (auto& d : controller::toRecords(sc.desired))
    if (d.kind != "Server") rest.putDeclarations.push_back(std::move(d));
  for (const auto& b : sc.observed.blades)
    rest.putBlades.push_back(
        {b.name, R"({"chassis":")" + b.chassis + R"(","cores":)" + std::to_string(b.cores) + "}", "", 1});
  if (auto s = store->commit(rest); !s) return state.SkipWithError(s.error().message.c_str());
  for (std::size_t from = 0; from < sc.desired.servers.size(); from += 10000) {
    auto r = serverRecords(from, std::min(from + 10000, sc.desired.servers.size()), 0);
    if (auto s = store->commit(r.apply); !s) return state.SkipWithError(s.error().message.c_str());
    if (auto s = store->commit(r.plan); !s) return state.SkipWithError(s.error().message.c_str());
  }
  std::size_t records = 0;
  for (auto _ : state) {
    auto st = store->load();
    if (!st) return state.SkipWithError(st.error().message.c_str());
    records = st->declarations.size() + st->bindings.size() + st->identities.size() + st->blades.size() +
              st->placementMaps["home"].size();
    benchmark::DoNotOptimize(st);
  }
  state.counters["records"] = static_cast<double>(records);
}
BENCHMARK(BM_StoreLoad)->ArgName("etcd")->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->Iterations(3);

void BM_StoreCommitApply(benchmark::State& state) {
  const bool etcd = state.range(0) == 1;
  std::string why;
  auto store = backend().open(etcd, why);
  if (!store) return state.SkipWithError(why.c_str());
  unsigned round = 0;
  std::size_t bytes = 0;
  for (auto _ : state) {
    state.PauseTiming();
    auto r = serverRecords(0, 10000, ++round);
    bytes = r.bytes;
    state.ResumeTiming();
    if (auto s = store->commit(r.apply); !s) return state.SkipWithError(s.error().message.c_str());
    if (auto s = store->commit(r.plan); !s) return state.SkipWithError(s.error().message.c_str());
  }
  state.counters["records"] = 40000;
  state.counters["MiB"] = static_cast<double>(bytes) / (1 << 20);
}
BENCHMARK(BM_StoreCommitApply)->ArgName("etcd")->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->Iterations(5);

void BM_StoreCommitSmall(benchmark::State& state) {
  const bool etcd = state.range(0) == 1;
  std::string why;
  auto store = backend().open(etcd, why);
  if (!store) return state.SkipWithError(why.c_str());
  std::uint64_t id = 0;
  for (auto _ : state) {
    ++id;
    controller::Change c;
    c.appendEvents.push_back({id, 1, "info", "c1-s1", "web-01", "server web-01 started on c1-s1"});
    c.putOperations.push_back({id, "c1-s1", "web-01", "start", "done", 1, ""});
    if (auto s = store->commit(c); !s) return state.SkipWithError(s.error().message.c_str());
  }
}
BENCHMARK(BM_StoreCommitSmall)->ArgName("etcd")->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->Iterations(200);

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

void BM_WarmCopyLag(benchmark::State& state) {
  const auto servers = static_cast<std::size_t>(state.range(0));
  std::string why;
  auto options = backend().etcdOptions(why);
  if (!options) return state.SkipWithError(why.c_str());
  auto opened = controller::openEtcdStateStore(*options);
  if (!opened) return state.SkipWithError(opened.error().message.c_str());
  auto& store = **opened;
  controller::WarmCopyOptions wo;
  wo.store = *options;
  controller::WarmCopy copy(wo, controller::ControllerLoop::monotonicMs);
  copy.start();
  for (int i = 0; i < 1000 && !copy.state().loaded; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  if (!copy.state().loaded) return state.SkipWithError(("the copy did not load: " + copy.state().error).c_str());
  using Clock = std::chrono::steady_clock;
  std::vector<double> lags, commits;
  // The keys a commit of the servers' records writes (the copy counts keys applied): 2 a
  // server, one server/NAME key beside the declaration; 4 in the layout before it.
  // Counted after a first commit, not timed.
  std::size_t keys = 0;
  {
    auto r = serverRecords(0, servers, 0);
    controller::Change c = std::move(r.apply);
    c.merge(std::move(r.plan));
    if (auto s = store.commit(c); !s) return state.SkipWithError(s.error().message.c_str());
    etcd::EtcdClient client(options->endpoints);
    client.setTimeout(std::chrono::milliseconds(10000));
    auto all = client.rangePrefix(options->prefix + "/");
    if (!all) return state.SkipWithError(all.error().message.c_str());
    for (const auto& kv : all->kvs) keys += kv.key.find("/meta/") == std::string::npos;
    const std::int64_t committed = all->revision;
    if (!copy.waitForRevision(committed, std::chrono::seconds(60)))
      return state.SkipWithError("the copy did not follow the first commit in 60 s");
  }
  unsigned round = 0;
  for (auto _ : state) {
    auto r = serverRecords(0, servers, ++round);
    controller::Change c = std::move(r.apply);
    c.merge(std::move(r.plan));
    const std::uint64_t changes = copy.state().changes;
    const auto t0 = Clock::now();
    if (auto s = store.commit(c); !s) return state.SkipWithError(s.error().message.c_str());
    const auto t1 = Clock::now();
    // Every key of the commit applied; polled every 50 us, bounded.
    while (copy.state().changes < changes + keys && Clock::now() - t1 < std::chrono::seconds(60))
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    const auto t2 = Clock::now();
    if (copy.state().changes < changes + keys) return state.SkipWithError("the copy did not follow in 60 s");
    const double lag = std::chrono::duration<double>(t2 - t1).count();
    state.SetIterationTime(lag);
    lags.push_back(lag * 1000);
    commits.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  state.counters["lag_median_ms"] = median(lags);
  state.counters["commit_median_ms"] = median(commits);
  state.counters["keys"] = static_cast<double>(keys);
  state.counters["reloads"] = static_cast<double>(copy.state().loads - 1);
}
BENCHMARK(BM_WarmCopyLag)
    ->ArgName("servers")
    ->Arg(1)
    ->Arg(100)
    ->Arg(1000)
    ->Arg(10000)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond)
    ->Iterations(9);

}  // namespace

BENCHMARK_MAIN();
