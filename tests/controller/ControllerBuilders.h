// Builders for controller tests: declarations made with the pool builders
// (tests/pool/PoolBuilders.h) and written as the YAML an operator applies, so a test says
// what is special about its fabric instead of pasting a file.
//
//   web()                      pool web on chassis c1, web-0 and web-1 kept apart
//   web(1)                     only web-0
//   web(2, spares(1))          ... with one spare blade
//   yaml(web())                the text for POST /v1/apply
//   yaml(web(), only servers)  the servers' documents alone (a delete, a second apply)
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "tests/pool/PoolBuilders.h"

namespace loom::controller::testing {

using namespace loom::pool::testing;
namespace model = loom::pool;  // `pool` is also the builder of a pool

inline model::Pool onChassis(model::Pool p, std::string chassis) {
  model::BladeMatch m;
  m.chassis = std::move(chassis);
  p.match = m;
  p.bladeNames.clear();
  return p;
}

// Pool tweaks, to pass to web().
using PoolTweak = std::function<model::Pool(model::Pool)>;
inline PoolTweak spares(std::uint32_t n) {
  return [n](model::Pool p) { return withSpares(std::move(p), n); };
}
inline PoolTweak failback(model::FailbackPolicy f) {
  return [f](model::Pool p) { return withFailback(std::move(p), f); };
}
inline PoolTweak both(PoolTweak a, PoolTweak b) {
  return [a, b](model::Pool p) { return b(a(std::move(p))); };
}

// Partition prod, identity pool default, network front, and pool web on chassis c1 with
// `servers` servers web-0.. (2 vcpus, 2 GiB, a NIC on front, anti-affinity group web).
inline model::Declarations web(int servers = 2, const PoolTweak& tweak = {}) {
  model::Declarations d;
  d.partitions.push_back({"prod"});
  model::IdentityPool ids;
  ids.name = "default";
  ids.macs.push_back({0x525400100000ULL, 0x52540010ffffULL});
  ids.uuids.push_back({0x4c4f4f4d00000000ULL, 0, 16});
  d.identityPools.push_back(ids);
  d.networks.push_back({"front", "prod", std::nullopt});
  model::Pool p = onChassis(loom::pool::testing::pool("web"), "c1");
  d.pools.push_back(tweak ? tweak(p) : p);
  for (int i = 0; i < servers; ++i)
    d.servers.push_back(antiAffinity(server("web-" + std::to_string(i), "web", 2, 2_GiB), "web"));
  return d;
}

enum class Only { Everything, Servers, AllButServers };

namespace detail {
inline std::string hex(std::uint64_t v, int digits) {
  static const char* k = "0123456789abcdef";
  std::string s(static_cast<std::size_t>(digits), '0');
  for (int i = digits - 1; i >= 0; --i, v >>= 4) s[static_cast<std::size_t>(i)] = k[v & 15];
  return s;
}
inline std::string mac(std::uint64_t v) {
  std::string h = hex(v, 12), out;
  for (int i = 0; i < 12; i += 2) out += (i ? ":" : "") + h.substr(static_cast<std::size_t>(i), 2);
  return out;
}
inline std::string list(const std::vector<std::string>& v) {
  std::string out = "[";
  for (std::size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + v[i];
  return out + "]";
}
}  // namespace detail

// The declarations as multi-document YAML, in the order config/ reads them.
inline std::string yaml(const model::Declarations& d, Only only = Only::Everything) {
  std::string out;
  auto doc = [&](const std::string& text) { out += (out.empty() ? "" : "---\n") + text; };
  if (only != Only::Servers) {
    for (const auto& p : d.partitions) doc("kind: Partition\nname: " + p.name + "\n");
    for (const auto& ip : d.identityPools) {
      std::string t = "kind: IdentityPool\nname: " + ip.name + "\n";
      for (const auto& m : ip.macs) t += "macs: " + detail::mac(m.first) + "-" + detail::mac(m.last) + "\n";
      for (const auto& u : ip.uuids) {
        const std::string h = detail::hex(u.prefixHi, 16) + detail::hex(u.prefixLo, 16);
        t += "uuids: " + h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) + "-" +
             h.substr(20) + "/" + std::to_string(u.bits) + "\n";
      }
      doc(t);
    }
    for (const auto& n : d.networks)
      doc("kind: Network\nname: " + n.name + "\npartition: " + n.partition + "\n" +
          (n.vlan ? "vlan: " + std::to_string(*n.vlan) + "\n" : ""));
    for (const auto& p : d.pools) {
      std::string t = "kind: Pool\nname: " + p.name + "\n";
      if (!p.partition.empty()) t += "partition: " + p.partition + "\n";
      if (p.sparePool) t += "spare_pool: true\n";
      if (p.hypervisor) t += std::string("hypervisor: ") + model::toString(*p.hypervisor) + "\n";
      if (p.match && p.match->chassis)
        t += "blades: {match: {chassis: " + *p.match->chassis + "}}\n";
      else
        t += "blades: {names: " + detail::list(p.bladeNames) + "}\n";
      if (p.spares) t += "spares: " + std::to_string(p.spares) + "\n";
      if (!p.sparePool) t += std::string("failover: ") + model::toString(p.failover) + "\n";
      if (p.failback != model::FailbackPolicy::Manual)
        t += std::string("failback: ") + model::toString(p.failback) + "\n";
      if (!p.borrowFrom.empty()) t += "borrow_from: " + p.borrowFrom + "\n";
      doc(t);
    }
  }
  if (only != Only::AllButServers) {
    for (const auto& s : d.servers) {
      std::string t = "kind: Server\nname: " + s.name + "\npartition: " + s.partition + "\npool: " + s.pool +
                      "\nvcpus: " + std::to_string(s.vcpus) + "\nmemory: " + std::to_string(s.memory) + "MiB\n";
      if (!s.nics.empty()) {
        std::vector<std::string> nics;
        for (const auto& n : s.nics) nics.push_back("{network: " + n.network + "}");
        t += "nics: " + detail::list(nics) + "\n";
      }
      if (!s.antiAffinity.empty()) t += "anti_affinity: " + s.antiAffinity + "\n";
      if (s.priority) t += "priority: " + std::to_string(s.priority) + "\n";
      t += std::string("power: ") + model::toString(s.power) + "\n";
      doc(t);
    }
  }
  return out;
}

}  // namespace loom::controller::testing
