// DomainStore: Loom's own persistent definitions for Xen domains. libxl has no notion of
// a defined-but-not-running domain (xl keeps config files; libvirt keeps XML), so the
// driver keeps each DomainSpec as one JSON file, <dir>/<name>.json, written atomically
// (temp file, fsync, rename) so a crash leaves the old or the new definition, never half
// of one. Not thread-safe: the driver is used from one thread at a time.
#pragma once

#include <string>
#include <vector>

#include "drivers/Driver.h"
#include "loom/Result.h"

namespace loom::drivers::xen {

class DomainStore {
 public:
  explicit DomainStore(std::string dir) : dir_(std::move(dir)) {}

  const std::string& dir() const { return dir_; }

  // Creates the directory on first use. Replaces an existing definition.
  Status save(const DomainSpec& spec);
  // NotFound "xen: domain 'x' is not defined" when absent.
  Result<DomainSpec> load(const std::string& name) const;
  // Success when absent.
  Status remove(const std::string& name);
  // Every stored definition, by name; unreadable files are reported, not skipped.
  Result<std::vector<DomainSpec>> loadAll() const;

 private:
  std::string pathFor(const std::string& name) const;
  std::string dir_;
};

// A stored file: the drivers' one DomainSpec codec (drivers/DomainSpecJson.h) plus
// {"version": 1}, indented. Errors are Io, naming `origin` (the file).
std::string specToJson(const DomainSpec& spec);
Result<DomainSpec> specFromJson(const std::string& text, const std::string& origin);

}  // namespace loom::drivers::xen
