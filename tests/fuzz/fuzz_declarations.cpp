// libFuzzer target for the declaration loader: every entry point that takes text from
// outside (loomd's apply and delete bodies, fabric files) on the same input, under ASan.
// Besides crashes, leaks, time-outs (-timeout) and memory (-rss_limit_mb), it traps on
// answers a caller could not use: a diagnostic that is not valid UTF-8 (loomd's JSON
// answer would throw), a position outside the input, more diagnostics than the cap, or
// declarations handed back with diagnostics. How to build and run: config/README.md.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "config/Loader.h"

namespace {

using loom::config::Diagnostic;

// Declarations applied before the body, as a running loomd has them: the examples'
// partitions, networks, identity pools and pools (servers.yaml names them).
loom::pool::Declarations applied;

bool validUtf8(const std::string& s) {
  for (std::size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    std::size_t n = b < 0x80 ? 1 : (b & 0xE0) == 0xC0 ? 2 : (b & 0xF0) == 0xE0 ? 3 : (b & 0xF8) == 0xF0 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (std::size_t k = 1; k < n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    }
    i += n;
  }
  return true;
}

void fail(const char* what, const Diagnostic& d) {
  std::fprintf(stderr, "fuzz_declarations: %s: %s\n", what, d.format().c_str());
  std::abort();
}

void checkDiagnostics(const std::vector<Diagnostic>& diagnostics, const std::string& text, const char* entry) {
  if (diagnostics.size() > 1001) {
    std::fprintf(stderr, "fuzz_declarations: %s: %zu diagnostics\n", entry, diagnostics.size());
    std::abort();
  }
  std::size_t lines = 1;
  for (char c : text) lines += c == '\n';
  for (const auto& d : diagnostics) {
    if (!validUtf8(d.message) || !validUtf8(d.file)) fail("a diagnostic that is not UTF-8", d);
    if (d.line < 0 || d.column < 0 || static_cast<std::size_t>(d.line) > lines + 1)
      fail("a position outside the input", d);
    if (d.file != "fuzz.yaml" && d.file != "applied state") fail("a diagnostic naming another file", d);
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const std::string dir = LOOM_EXAMPLES_DIR;
  auto base = loom::config::loadDeclarationFiles(
      {dir + "/partitions.yaml", dir + "/networks.yaml", dir + "/identity.yaml", dir + "/pools.yaml"});
  if (!base.ok()) {
    std::fprintf(stderr, "fuzz_declarations: the examples do not load from %s\n", dir.c_str());
    std::abort();
  }
  applied = std::move(base.declarations);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);

  auto alone = loom::config::loadDeclarationText(text, "fuzz.yaml");
  checkDiagnostics(alone.diagnostics, text, "loadDeclarationText");
  if (!alone.ok() && !alone.declarations.servers.empty()) std::abort();

  auto onto = loom::config::loadDeclarationTextOnto(applied, text, "fuzz.yaml");
  checkDiagnostics(onto.diagnostics, text, "loadDeclarationTextOnto");
  if (!onto.ok() && !onto.declarations.pools.empty()) std::abort();

  auto names = loom::config::loadDeclarationNames(text, "fuzz.yaml");
  checkDiagnostics(names.diagnostics, text, "loadDeclarationNames");
  if (!names.ok() && !names.objects.empty()) std::abort();

  auto fabric = loom::config::loadFabricText(text, "fuzz.yaml");
  checkDiagnostics(fabric.diagnostics, text, "loadFabricText");
  if (!fabric.ok() && !fabric.fabric.blades.empty()) std::abort();
  return 0;
}
