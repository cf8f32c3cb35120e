// KVM start latency: starting a defined domain through Loom's KVM driver (libvirt C API)
// vs `virsh start` of the same domain, side by side in one run. Target: loom ≤ 1.1× virsh
// (DESIGN.md §6). Needs qemu:///system; without it the benchmark says why and exits 0.
//
//   sudo tools/libvirtd.sh start
//   build/tests/bench/bench_kvm_start --benchmark_repetitions=5
//       --benchmark_report_aggregates_only=true --benchmark_enable_random_interleaving=true
// (random interleaving alternates the two benchmarks' repetitions, so a burst of load on
// the host does not land on one side only.)
//
// Each iteration times only the start (manual timing); the destroy that resets the
// domain runs outside the timed region. The guest has 64 MiB, no disk and one user-mode
// NIC with its boot ROM off, so it sits in its BIOS and reaches nothing outside the host.
// After the runs it prints the median of every timed start and the ratio.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "drivers/kvm/KvmDriver.h"

namespace {

using loom::drivers::DomainSpec;
using loom::drivers::NicSpec;
using loom::drivers::kvm::KvmDriver;
using Clock = std::chrono::steady_clock;

const std::string kUri = "qemu:///system";
KvmDriver* gDriver = nullptr;
std::string gName;
std::vector<double> gLoomSeconds;
std::vector<double> gVirshSeconds;

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// Runs virsh the way an operator would, output discarded; true on exit code 0.
bool runVirshStart(const std::string& name) {
  const pid_t pid = fork();
  if (pid < 0) return false;
  if (pid == 0) {
    const int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, STDOUT_FILENO);
    execlp("virsh", "virsh", "-c", kUri.c_str(), "start", name.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

bool resetDomain(benchmark::State& state) {
  if (auto s = gDriver->destroy(gName); !s) {
    state.SkipWithError(("destroy failed: " + s.error().message).c_str());
    return false;
  }
  return true;
}

void BM_StartThroughLoom(benchmark::State& state) {
  if (!resetDomain(state)) return;
  for (auto _ : state) {
    const auto t0 = Clock::now();
    auto started = gDriver->start(gName);
    const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    if (!started) {
      state.SkipWithError(started.error().message.c_str());
      break;
    }
    state.SetIterationTime(seconds);
    gLoomSeconds.push_back(seconds);
    if (!resetDomain(state)) break;  // outside the timed region (manual time)
  }
}

void BM_VirshStart(benchmark::State& state) {
  if (!resetDomain(state)) return;
  for (auto _ : state) {
    const auto t0 = Clock::now();
    const bool ok = runVirshStart(gName);
    const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    if (!ok) {
      state.SkipWithError(("virsh -c " + kUri + " start " + gName + " failed").c_str());
      break;
    }
    state.SetIterationTime(seconds);
    gVirshSeconds.push_back(seconds);
    if (!resetDomain(state)) break;
  }
}

BENCHMARK(BM_StartThroughLoom)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(5);
BENCHMARK(BM_VirshStart)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(5);

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;

  KvmDriver driver({kUri, "auto"});
  const auto probe = driver.probe();
  if (!probe.applies) {
    std::printf("bench_kvm_start: skipped: %s (start it with: sudo tools/libvirtd.sh start)\n", probe.reason.c_str());
    return 0;
  }
  gDriver = &driver;
  gName = "loomtest-bench-" + std::to_string(getpid());
  DomainSpec spec;
  spec.name = gName;
  char uuid[40];
  std::snprintf(uuid, sizeof uuid, "4c4f4f4d-beef-4000-a000-%012x", static_cast<unsigned>(getpid()));
  spec.uuid = uuid;
  spec.memory = 64;
  spec.vcpus = 1;
  spec.nics.push_back(NicSpec{"52:54:00:be:ef:01", "bench", "", std::nullopt});
  if (auto defined = driver.define(spec); !defined) {
    std::fprintf(stderr, "bench_kvm_start: %s\n", defined.error().message.c_str());
    return 1;
  }
  std::printf("bench_kvm_start: %s; domain %s (64 MiB, no disk)\n", probe.reason.c_str(), gName.c_str());

  // One untimed start first: the first start after libvirtd came up pays for one-off work
  // (capability probing, cgroup setup) that would otherwise land on whichever benchmark
  // runs first.
  if (auto warm = driver.start(gName); !warm) {
    std::fprintf(stderr, "bench_kvm_start: warm-up: %s\n", warm.error().message.c_str());
    (void)driver.undefine(gName);
    return 1;
  }
  (void)driver.destroy(gName);

  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();

  (void)driver.destroy(gName);
  (void)driver.undefine(gName);

  const double loom = median(gLoomSeconds) * 1000;
  const double virsh = median(gVirshSeconds) * 1000;
  std::printf("\nmedian start: loom %.1f ms (%zu starts), virsh start %.1f ms (%zu starts)\n", loom,
              gLoomSeconds.size(), virsh, gVirshSeconds.size());
  if (virsh > 0 && loom > 0) {
    const double ratio = loom / virsh;
    std::printf("ratio loom/virsh = %.3f (target <= 1.1: %s)\n", ratio, ratio <= 1.1 ? "met" : "NOT met");
  }
  return 0;
}
