// Shared helpers for the loader tests: a valid base set to reference, and matchers that
// find one diagnostic by exact position.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "config/Loader.h"

namespace loom::config::testing {

// Declarations the documents under test can refer to. Tests put their own document
// FIRST so its line numbers are the ones written in the test.
inline const std::string kBase = R"(
---
kind: Partition
name: prod
---
kind: Partition
name: dev
---
kind: Network
name: front
partition: prod
vlan: 100
---
kind: Network
name: lab
partition: dev
---
kind: IdentityPool
name: default
macs: 52:54:00:10:00:00-52:54:00:10:ff:ff
uuids: 4c4f4f4d-0000-0000-0000-000000000000/16
---
kind: Pool
name: spares
spare_pool: true
blades: {names: [c9-s1]}
---
kind: Pool
name: web
partition: prod
hypervisor: kvm
blades: {match: {chassis: c1}}
spares: 1
borrow_from: spares
---
kind: Pool
name: devpool
partition: dev
hypervisor: xen
blades: {names: [c2-s1]}
)";

inline DeclarationsResult load(const std::string& document) {
  return loadDeclarationText(document + kBase, "test.yaml");
}

inline std::string listOf(const std::vector<Diagnostic>& diagnostics) {
  std::string text;
  for (const auto& d : diagnostics) text += "  " + d.format() + "\n";
  return text;
}

// The one diagnostic at LINE:COL, whose message contains every fragment.
template <class R>
inline ::testing::AssertionResult hasError(const R& result, int line, int column,
                                           std::initializer_list<std::string> fragments) {
  for (const auto& d : result.diagnostics) {
    if (d.line != line || d.column != column) continue;
    bool all = true;
    for (const auto& f : fragments) all = all && d.message.find(f) != std::string::npos;
    if (all) return ::testing::AssertionSuccess();
  }
  std::string wanted;
  for (const auto& f : fragments) wanted += " '" + f + "'";
  return ::testing::AssertionFailure() << "no error at " << line << ":" << column << " containing" << wanted
                                       << "; got:\n"
                                       << listOf(result.diagnostics);
}

}  // namespace loom::config::testing
