// The apply of 10,000 servers through the controller core, without sockets: a Controller
// on SQLite (a temporary file) with 10,000 registered blades in 20 chassis and 20 pools
// (fabric_bench.py's fabric), then POST /v1/apply of fabric_bench's 10,000 servers
// (100 templates of 100 replicas), timed (wall and this process's CPU), then the tick after
// it (where the code before one plan created the operations). Prints one line:
//   status 200 apply 0.398 s (cpu 0.390) first tick after 0.003 s frames 860
// It uses only what the Controller offered before the redesign too (a generic Send), so
// the same file builds against an older tree for a side-by-side run: docs/PERFORMANCE.md,
// "Issue 14". Run it a few times, alternating the builds; the machine's load shows in the
// wall time, less in the CPU time.
#include <spdlog/spdlog.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>

#include "controller/Controller.h"
// Trees before access control (controller/access/) had no tokens: the same program builds there.
#if __has_include("controller/access/TokenTable.h")
#define LOOM_BENCH_HAS_ACCESS 1
#include "tests/support/TestToken.h"
#endif

using namespace loom;
static double cpuNow() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

int main() {
  spdlog::set_level(spdlog::level::off);
  auto dir = std::filesystem::temp_directory_path() / ("loom-bench-apply-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  auto store = std::move(controller::openSqliteStateStore((dir / "s.db").string())).value();
  controller::ControllerOptions options;
  options.fabricRenewsLeases = true;
#ifdef LOOM_BENCH_HAS_ACCESS
  options = loom::testing::withTestAdmin(std::move(options));
#endif
  std::size_t frames = 0;
  controller::Controller ctl(
      *store, options, [&frames](const std::string&, auto&&) { ++frames; }, [] { return 1; });
  std::int64_t now = 1000;
  if (!ctl.recover(now)) return 1;
  // The event log's own logger too: printing 10,000 events is not the controller's work.
  spdlog::apply_all([](const std::shared_ptr<spdlog::logger>& l) { l->set_level(spdlog::level::off); });
  std::string base =
      "kind: Partition\nname: bench\n---\nkind: Network\nname: net\npartition: bench\n---\n"
      "kind: IdentityPool\nname: default\nmacs: 52:54:00:00:00:00-52:54:00:ff:ff:ff\n"
      "uuids: 4c4f4f4d-0000-0000-0000-000000000000/20\n";
  for (int p = 0; p < 20; ++p) {
    char buf[256];
    snprintf(buf, sizeof buf,
             "---\nkind: Pool\nname: p%02d\npartition: bench\nhypervisor: kvm\nblades: {match: {chassis: "
             "c%02d}}\nspares: 1\n",
             p, p);
    base += buf;
  }
  auto answer = [&](const std::string& body) {
    int status = 0;
    controller::ApiRequest req{"POST", "/v1/apply", {{"source", "x.yaml"}}, body};
#ifdef LOOM_BENCH_HAS_ACCESS
    req = loom::testing::asAdmin(std::move(req));
#endif
    ctl.handleApi(std::move(req), now, [&](auto r) { status = r.status; });
    return status;
  };
  if (answer(base) != 200) return 2;
  for (int i = 0; i < 10000; ++i) {
    protocol::Register r;
    char name[16];
    snprintf(name, sizeof name, "b%05d", i);
    r.blade = name;
    r.inventory.chassis = "c" + std::string(i % 20 < 10 ? "0" : "") + std::to_string(i % 20);
    r.inventory.slot = i / 20;
    r.inventory.cores = 64;
    r.inventory.memoryMib = 256 * 1024;
    r.inventory.hypervisors = {"kvm"};
    r.inventory.driver = "test";
    ctl.onFrame(name, protocol::encode(r).dump(), now);
  }
  for (int k = 0; k < 4; ++k) {
    now += 250;
    ctl.tick(now);
  }
  std::string servers;
  for (int t = 0; t < 100; ++t) {
    char buf[512];
    int size = t % 4;
    snprintf(buf, sizeof buf,
             "%skind: Server\nname: a%04d\nreplicas: 100\npartition: bench\npool: p%02d\nvcpus: %d\nmemory: "
             "%dMiB\nnics: [{network: net}]\npower: on%s\n",
             t ? "---\n" : "", t, t % 20, 1 + size, 512 * (1 + size),
             t % 4 == 0 ? ("\nanti_affinity: g" + std::to_string(t)).c_str() : "");
    servers += buf;
  }
  const double c0 = cpuNow();
  const auto t0 = std::chrono::steady_clock::now();
  const int st = answer(servers);
  const double applyS = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double applyCpu = cpuNow() - c0;
  const auto t1 = std::chrono::steady_clock::now();
  now += 250;
  ctl.tick(now);
  const double tickS = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
  std::printf("status %d apply %.3f s (cpu %.3f) first tick after %.3f s frames %zu\n", st, applyS, applyCpu, tickS,
              frames);
  std::filesystem::remove_all(dir);
  return 0;
}
