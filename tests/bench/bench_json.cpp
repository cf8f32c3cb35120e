// Why loomd keeps two JSON libraries (controller/README.md, "Two JSON libraries"): the
// bulk paths measured both ways, side by side in one run.
//   BM_BladeList*    GET /v1/blades at 10,000 blades: 22 fields an object, written as text
//   BM_ServerList*   GET /v1/servers at 100,000 servers: 14 fields an object
//   BM_Identities*   a restart decoding 100,000 stored MAC lists (["52:54:00:..."])
// Run: build/tests/bench/bench_json
#include <benchmark/benchmark.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace {

struct BladeRow {  // the fields loomctl blade list shows, and a few more
  std::string name, chassis, hypervisor, state, pool, role, relay, driver, cpuModel;
  int slot;
  std::uint64_t cores, memory, domains, pending;
  std::vector<std::string> servers, hypervisors;
  bool online;
  std::int64_t heartbeatAge, leaseLeft;
};

std::vector<BladeRow> blades(std::size_t n) {
  std::vector<BladeRow> out;
  for (std::size_t i = 0; i < n; ++i)
    out.push_back({"b" + std::to_string(i),
                   "c" + std::to_string(i / 16),
                   "kvm",
                   "active",
                   "p" + std::to_string(i % 20),
                   "member",
                   "c" + std::to_string(i / 16),
                   "test",
                   "Loom Test CPU",
                   static_cast<int>(i % 16),
                   32,
                   65536,
                   10,
                   0,
                   {"s" + std::to_string(i) + "-0", "s" + std::to_string(i) + "-1", "s" + std::to_string(i) + "-2"},
                   {"kvm", "xen"},
                   true,
                   412,
                   4588});
  return out;
}

void BM_BladeListRapidJson(benchmark::State& state) {
  const auto rows = blades(10000);
  for (auto _ : state) {
    rapidjson::StringBuffer sb;
    rapidjson::Writer<rapidjson::StringBuffer> w(sb);
    w.StartArray();
    for (const auto& b : rows) {
      w.StartObject();
      auto str = [&](const char* k, const std::string& v) {
        w.Key(k);
        w.String(v.data(), static_cast<rapidjson::SizeType>(v.size()));
      };
      str("name", b.name), str("chassis", b.chassis), str("hypervisor", b.hypervisor), str("state", b.state);
      str("pool", b.pool), str("role", b.role), str("relay", b.relay), str("driver", b.driver),
          str("cpu_model", b.cpuModel);
      w.Key("slot"), w.Int(b.slot), w.Key("cores"), w.Uint64(b.cores), w.Key("memory_mib"), w.Uint64(b.memory);
      w.Key("domains"), w.Uint64(b.domains), w.Key("pending_operations"), w.Uint64(b.pending);
      w.Key("servers"), w.StartArray();
      for (const auto& s : b.servers) w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
      w.EndArray();
      w.Key("hypervisors"), w.StartArray();
      for (const auto& s : b.hypervisors) w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
      w.EndArray();
      w.Key("online"), w.Bool(b.online), w.Key("heartbeat_age_ms"), w.Int64(b.heartbeatAge), w.Key("lease_left_ms"),
          w.Int64(b.leaseLeft);
      w.EndObject();
    }
    w.EndArray();
    benchmark::DoNotOptimize(sb.GetString());
  }
}
BENCHMARK(BM_BladeListRapidJson)->Unit(benchmark::kMillisecond);

void BM_BladeListNlohmann(benchmark::State& state) {
  const auto rows = blades(10000);
  for (auto _ : state) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& b : rows)
      out.push_back({{"name", b.name},
                     {"chassis", b.chassis},
                     {"hypervisor", b.hypervisor},
                     {"state", b.state},
                     {"pool", b.pool},
                     {"role", b.role},
                     {"relay", b.relay},
                     {"driver", b.driver},
                     {"cpu_model", b.cpuModel},
                     {"slot", b.slot},
                     {"cores", b.cores},
                     {"memory_mib", b.memory},
                     {"domains", b.domains},
                     {"pending_operations", b.pending},
                     {"servers", b.servers},
                     {"hypervisors", b.hypervisors},
                     {"online", b.online},
                     {"heartbeat_age_ms", b.heartbeatAge},
                     {"lease_left_ms", b.leaseLeft}});
    benchmark::DoNotOptimize(out.dump());
  }
}
BENCHMARK(BM_BladeListNlohmann)->Unit(benchmark::kMillisecond);

std::vector<std::string> macLists(std::size_t n) {
  std::vector<std::string> out;
  char buf[64];
  for (std::size_t i = 0; i < n; ++i) {
    std::snprintf(buf, sizeof buf, R"(["52:54:00:%02zx:%02zx:%02zx"])", (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff);
    out.emplace_back(buf);
  }
  return out;
}

void BM_IdentitiesRapidJson(benchmark::State& state) {
  const auto lists = macLists(100000);
  for (auto _ : state) {
    std::size_t macs = 0;
    for (const auto& text : lists) {
      rapidjson::Document d;
      d.Parse(text.data(), text.size());
      for (const auto& m : d.GetArray()) {
        std::string mac(m.GetString(), m.GetStringLength());
        macs += mac.size();
      }
    }
    benchmark::DoNotOptimize(macs);
  }
}
BENCHMARK(BM_IdentitiesRapidJson)->Unit(benchmark::kMillisecond);

void BM_IdentitiesNlohmann(benchmark::State& state) {
  const auto lists = macLists(100000);
  for (auto _ : state) {
    std::size_t macs = 0;
    for (const auto& text : lists) {
      const auto j = nlohmann::json::parse(text, nullptr, false);
      for (const auto& m : j) macs += m.get_ref<const std::string&>().size();
    }
    benchmark::DoNotOptimize(macs);
  }
}
BENCHMARK(BM_IdentitiesNlohmann)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
