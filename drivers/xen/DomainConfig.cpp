#include "drivers/xen/DomainConfig.h"

#include <cstdlib>
#include <cstring>

namespace loom::drivers::xen {

DomainConfig::DomainConfig() { libxl_domain_config_init(&config_); }

DomainConfig::~DomainConfig() { libxl_domain_config_dispose(&config_); }

// libxl_domain_config is a plain C struct whose pointers libxl frees in _dispose; moving
// is a byte copy followed by re-initialising the source so it owns nothing.
DomainConfig::DomainConfig(DomainConfig&& other) noexcept {
  std::memcpy(&config_, &other.config_, sizeof config_);
  libxl_domain_config_init(&other.config_);
}

DomainConfig& DomainConfig::operator=(DomainConfig&& other) noexcept {
  if (this != &other) {
    libxl_domain_config_dispose(&config_);
    std::memcpy(&config_, &other.config_, sizeof config_);
    libxl_domain_config_init(&other.config_);
  }
  return *this;
}

std::string DomainConfig::toJson() const {
  // No libxl_ctx here on purpose: the translator must work on hosts without Xen, where
  // libxl_ctx_alloc fails (it opens privcmd and xenstore). The generated *_to_json
  // functions use the ctx only to log a yajl generator error, which cannot happen for
  // a struct libxl itself initialised; libvirt's libxlxml2domconfigtest needs an
  // LD_PRELOAD mock of libxc for the same reason.
  char* json = libxl_domain_config_to_json(nullptr, const_cast<libxl_domain_config*>(&config_));
  if (json == nullptr) return {};
  std::string out(json);
  std::free(json);
  return out;
}

}  // namespace loom::drivers::xen
