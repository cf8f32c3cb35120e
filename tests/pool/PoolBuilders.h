// Builders for short planner fixtures: blade("c1-s1", 16, 64_GiB), pool("web")...,
// server("web-01", "web", 2, 4_GiB). Defaults are the common case (kvm, available,
// power on), so a test states only what it is about.
#pragma once

#include <algorithm>
#include <string>
#include <vector>

#include "pool/Planner.h"

namespace loom::pool::testing {

constexpr MiB operator""_GiB(unsigned long long g) { return static_cast<MiB>(g) * 1024; }
constexpr MiB operator""_MiB(unsigned long long m) { return static_cast<MiB>(m); }

inline Blade blade(std::string name, std::uint32_t cores = 16, MiB memory = 64_GiB,
                   BladeState state = BladeState::Available) {
  Blade b;
  b.name = std::move(name);
  b.chassis = b.name.substr(0, b.name.find('-'));
  b.cores = cores;
  b.memory = memory;
  b.hypervisors = HypervisorSet::all();
  b.personality = Hypervisor::Kvm;
  b.state = state;
  b.model = "Xeon Gold 6230";
  return b;
}

inline Pool pool(std::string name, std::vector<std::string> blades = {}) {
  Pool p;
  p.name = std::move(name);
  p.partition = "prod";
  p.hypervisor = Hypervisor::Kvm;
  p.bladeNames = std::move(blades);
  return p;
}

inline Pool sparePool(std::string name, std::vector<std::string> blades) {
  Pool p;
  p.name = std::move(name);
  p.sparePool = true;
  p.bladeNames = std::move(blades);
  return p;
}

inline Server server(std::string name, std::string poolName, std::uint32_t vcpus = 2, MiB memory = 4_GiB) {
  Server s;
  s.name = std::move(name);
  s.partition = "prod";
  s.pool = std::move(poolName);
  s.vcpus = vcpus;
  s.memory = memory;
  s.nics.push_back(Nic{"front", ""});
  return s;
}

// Chainable tweaks, so a fixture line says what is special about it.
inline Server priority(Server s, int p) {
  s.priority = p;
  return s;
}
inline Server antiAffinity(Server s, std::string g) {
  s.antiAffinity = std::move(g);
  return s;
}
inline Server dedicated(Server s) {
  s.dedicated = true;
  return s;
}
inline Server poweredOff(Server s) {
  s.power = PowerState::Off;
  return s;
}
inline Pool withSpares(Pool p, std::uint32_t n) {
  p.spares = n;
  return p;
}
inline Pool withFailover(Pool p, FailoverPolicy f) {
  p.failover = f;
  return p;
}
inline Pool withFailback(Pool p, FailbackPolicy f) {
  p.failback = f;
  return p;
}
inline Pool borrowingFrom(Pool p, std::string from) {
  p.borrowFrom = std::move(from);
  return p;
}
inline Pool matching(Pool p, BladeMatch m) {
  p.match = std::move(m);
  return p;
}
inline Blade inState(Blade b, BladeState s) {
  b.state = s;
  return b;
}
inline Blade runningNothing(Blade b) {
  b.personality.reset();
  return b;
}
// What a blade's agent reports (without it the planner assumes the current placement).
inline Domain running(std::string name) { return Domain{std::move(name), DomainState::Running}; }
inline Domain shutOff(std::string name) { return Domain{std::move(name), DomainState::Shutoff}; }
inline Blade reporting(Blade b, std::vector<Domain> domains = {}) {
  b.domains = std::move(domains);
  return b;
}
inline Blade unreachable(Blade b) {
  b.reachable = false;
  return b;
}

// A whole scenario; plan() and friends run against it.
struct Fixture {
  Declarations desired;
  Inventory observed;
  PlacementState current;

  Plan plan() const { return pool::plan(desired, observed, current, 0); }
  // Plans, then adopts the result as the new current state (as if the steps ran).
  Plan apply() {
    Plan p = plan();
    current = p.next;
    return p;
  }
  Blade& bladeNamed(const std::string& name) {
    return *std::find_if(observed.blades.begin(), observed.blades.end(),
                         [&](const Blade& b) { return b.name == name; });
  }
  void setState(const std::string& name, BladeState s) { bladeNamed(name).state = s; }
};

inline std::string bladeOf(const Plan& p, const std::string& server) {
  auto it = p.next.bindings.find(server);
  return it == p.next.bindings.end() ? std::string() : it->second;
}

inline const Unplaceable* unplaceable(const Plan& p, const std::string& server) {
  for (const auto& u : p.unplaceable) {
    if (u.server == server) return &u;
  }
  return nullptr;
}

inline const BladeAssignment& assignment(const Plan& p, const std::string& blade) {
  return *std::find_if(p.blades.begin(), p.blades.end(), [&](const BladeAssignment& a) { return a.blade == blade; });
}

// Every step as "kind:server@blade" ("prepare-hypervisor@blade"), in plan order.
inline std::vector<std::string> stepNames(const std::vector<Step>& steps) {
  std::vector<std::string> out;
  for (const auto& s : steps)
    out.push_back(std::string(toString(s.kind)) + (s.server.empty() ? "" : ":" + s.server) + "@" + s.blade);
  return out;
}

// Steps for one server, in plan order, as "kind@blade" — easy to compare in tests.
inline std::vector<std::string> stepsFor(const std::vector<Step>& steps, const std::string& server) {
  std::vector<std::string> out;
  for (const auto& s : steps) {
    if (s.server == server) out.push_back(std::string(toString(s.kind)) + "@" + s.blade);
  }
  return out;
}

inline std::size_t indexOf(const std::vector<Step>& steps, StepKind kind, const std::string& blade,
                           const std::string& server = {}) {
  for (std::size_t i = 0; i < steps.size(); ++i) {
    if (steps[i].kind == kind && steps[i].blade == blade && steps[i].server == server) return i;
  }
  return steps.size();
}

}  // namespace loom::pool::testing
