// DomainConfig: owns one libxl_domain_config for its lifetime (libxl's _init on
// construction, _dispose on destruction), so a translated config cannot leak or be
// freed twice on any error path.
#pragma once

#include <string>

#include "drivers/xen/LibxlHeaders.h"

namespace loom::drivers::xen {

class DomainConfig {
 public:
  DomainConfig();
  ~DomainConfig();
  DomainConfig(DomainConfig&& other) noexcept;
  DomainConfig& operator=(DomainConfig&& other) noexcept;
  DomainConfig(const DomainConfig&) = delete;
  DomainConfig& operator=(const DomainConfig&) = delete;

  libxl_domain_config* get() { return &config_; }
  const libxl_domain_config* get() const { return &config_; }

  // libxl's own JSON rendering of the config (libxl_domain_config_to_json): the format
  // `xl list -l` prints and the translator's golden files hold. Empty on failure.
  std::string toJson() const;

 private:
  libxl_domain_config config_;
};

}  // namespace loom::drivers::xen
