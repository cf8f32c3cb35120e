#include "tools/loomctl/Context.h"

#include <cstdlib>
#include <cstring>
#include <unistd.h>

namespace loom::loomctl {

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
