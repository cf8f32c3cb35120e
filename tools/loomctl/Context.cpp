#include "tools/loomctl/Context.h"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace loom::loomctl {

namespace {
std::atomic<bool> interrupted{false};
static_assert(std::atomic<bool>::is_always_lock_free, "set from a signal handler");
}  // namespace

void requestInterrupt() { interrupted.store(true); }
bool interruptRequested() { return interrupted.load(); }
void clearInterrupt() { interrupted.store(false); }

OutputFormat parseOutputFormat(const std::string& name) {
  if (name == "table") return OutputFormat::Table;
  if (name == "json") return OutputFormat::Json;
  if (name == "yaml") return OutputFormat::Yaml;
  throw CommandError("unknown output format '" + name + "' (expected table, json or yaml)", 2);
}

bool colorWanted(int fd) {
  // https://no-color.org: present and not empty disables colour.
  const char* noColor = std::getenv("NO_COLOR");
  if (noColor && *noColor) return false;
  const char* term = std::getenv("TERM");
  if (term && std::strcmp(term, "dumb") == 0) return false;
  return ::isatty(fd) == 1;
}

}  // namespace loom::loomctl
