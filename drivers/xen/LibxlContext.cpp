#include "drivers/xen/LibxlContext.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "drivers/xen/DomainConfig.h"
#include "drivers/xen/DomainConfigTranslator.h"
#include "drivers/xen/LibxlHeaders.h"

namespace loom::drivers::xen {

// A xentoollog logger that forwards warnings and errors to stderr (the daemon's log) and
// remembers the last error, so a failed call can say *why* ("cannot connect to
// xenstore") instead of only libxl's integer code. `base` must stay the first member:
// libxl calls back with a pointer to it.
struct LibxlContext::Logger {
  xentoollog_logger base{};
  std::string lastError;

  Logger() {
    base.vmessage = &Logger::vmessage;
    base.progress = nullptr;
    base.destroy = [](xentoollog_logger*) {};  // owned by LibxlContext, not by libxl
  }

  static void vmessage(xentoollog_logger* logger, xentoollog_level level, int errnoval, const char* context,
                       const char* format, va_list args) {
    auto* self = reinterpret_cast<Logger*>(logger);
    if (level < XTL_WARN) return;
    char text[1024];
    std::vsnprintf(text, sizeof text, format, args);
    std::string line = text;
    if (errnoval > 0) line += std::string(": ") + std::strerror(errnoval);
    if (level >= XTL_ERROR) self->lastError = line;
    std::fprintf(stderr, "libxl %s: %s%s%s\n", xtl_level_to_string(level), context ? context : "", context ? ": " : "",
                 line.c_str());
  }
};

namespace {

DomainState stateOf(const libxl_dominfo& info) {
  if (info.dying) return DomainState::ShuttingDown;
  if (info.shutdown)
    return info.shutdown_reason == LIBXL_SHUTDOWN_REASON_CRASH ? DomainState::Crashed : DomainState::Shutoff;
  if (info.paused) return DomainState::Paused;
  return DomainState::Running;
}

std::string uuidString(const libxl_uuid& uuid) {
  char text[LIBXL_UUID_FMTLEN + 1];
  std::snprintf(text, sizeof text, LIBXL_UUID_FMT, LIBXL_UUID_BYTES(uuid));
  return text;
}

std::string cpuModel() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("model name", 0) == 0) {
      auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(" \t", colon + 1));
    }
  }
  return "unknown";
}

}  // namespace

ShutdownRequest shutdownRequestFor(bool hvmContainer, const std::string& libxlType) {
  if (!hvmContainer || libxlType == "pvh") return ShutdownRequest::ControlNode;
  return ShutdownRequest::AcpiPowerButton;
}

Result<std::unique_ptr<LibxlContext>> LibxlContext::open() {
  // libxl_ctx_alloc would find out the same, but only after libxc printed its own
  // complaint to stderr; a host without Xen is an expected answer, not an error.
  if (::access("/dev/xen/privcmd", F_OK) != 0 && ::access("/proc/xen/privcmd", F_OK) != 0)
    return makeError(Errc::Unavailable, kNoXenMessage);

  auto logger = std::make_unique<Logger>();
  libxl_ctx* ctx = nullptr;
  int rc = libxl_ctx_alloc(&ctx, LIBXL_VERSION, 0, &logger->base);
  if (rc != 0 || ctx == nullptr) {
    std::string why =
        logger->lastError.empty() ? libxl_error_to_string(static_cast<libxl_error>(rc)) : logger->lastError;
    return makeError(Errc::Unavailable, "Xen toolstack unavailable on this host (libxl_ctx_alloc: " + why + ")");
  }
  return std::unique_ptr<LibxlContext>(new LibxlContext(ctx, std::move(logger)));
}

LibxlContext::LibxlContext(libxl__ctx* ctx, std::unique_ptr<Logger> logger) : logger_(std::move(logger)), ctx_(ctx) {}

LibxlContext::~LibxlContext() { libxl_ctx_free(ctx_); }

Error LibxlContext::libxlError(const std::string& what, int rc) const {
  std::string message = "xen: " + what + ": " + libxl_error_to_string(static_cast<libxl_error>(rc));
  if (!logger_->lastError.empty()) message += " (" + logger_->lastError + ")";
  logger_->lastError.clear();
  return makeError(rc == ERROR_DOMAIN_NOTFOUND ? Errc::NotFound : Errc::Io, message);
}

Result<std::vector<LiveDomain>> LibxlContext::listDomains() {
  int count = 0;
  libxl_dominfo* infos = libxl_list_domain(ctx_, &count);
  if (infos == nullptr) return libxlError("libxl_list_domain failed", ERROR_FAIL);
  std::vector<LiveDomain> out;
  for (int i = 0; i < count; ++i) {
    const libxl_dominfo& info = infos[i];
    if (info.domid == 0) continue;  // dom0 is the host, not a guest
    LiveDomain d;
    d.domid = info.domid;
    d.hvmContainer = info.domain_type == LIBXL_DOMAIN_TYPE_HVM;
    if (char* name = libxl_domid_to_name(ctx_, info.domid)) {
      d.name = name;
      std::free(name);
    }
    d.uuid = uuidString(info.uuid);
    d.state = stateOf(info);
    d.dying = info.dying;
    d.shutdown = info.shutdown;
    d.vcpus = info.vcpu_online;
    // What `xl list` shows as Mem: current allocation plus what is still to be claimed.
    d.memory = (info.current_memkb + info.outstanding_memkb) / 1024;
    out.push_back(std::move(d));
  }
  libxl_dominfo_list_free(infos, count);
  return out;
}

Result<LiveDomain> LibxlContext::domainInfo(std::uint32_t domid) {
  libxl_dominfo info;
  libxl_dominfo_init(&info);
  int rc = libxl_domain_info(ctx_, &info, domid);
  if (rc != 0) {
    libxl_dominfo_dispose(&info);
    if (rc == ERROR_DOMAIN_NOTFOUND) logger_->lastError.clear();
    return libxlError("domain " + std::to_string(domid), rc);
  }
  LiveDomain d;
  d.domid = domid;
  d.hvmContainer = info.domain_type == LIBXL_DOMAIN_TYPE_HVM;
  if (char* name = libxl_domid_to_name(ctx_, domid)) {
    d.name = name;
    std::free(name);
  }
  d.uuid = uuidString(info.uuid);
  d.state = stateOf(info);
  d.dying = info.dying;
  d.shutdown = info.shutdown;
  d.vcpus = info.vcpu_online;
  d.memory = (info.current_memkb + info.outstanding_memkb) / 1024;
  libxl_dominfo_dispose(&info);
  return d;
}

Result<std::vector<std::string>> LibxlContext::nicMacs(std::uint32_t domid) {
  int count = 0;
  libxl_device_nic* nics = libxl_device_nic_list(ctx_, domid, &count);
  std::vector<std::string> macs;
  for (int i = 0; i < count; ++i) macs.push_back(formatMac(nics[i].mac));
  if (nics != nullptr) libxl_device_nic_list_free(nics, count);
  return macs;
}

Result<LibxlContext::ConfiguredSize> LibxlContext::configuredSize(std::uint32_t domid) {
  DomainConfig config;
  int rc = libxl_retrieve_domain_configuration(ctx_, domid, config.get(), nullptr);
  if (rc != 0) return libxlError("reading the configuration of domain " + std::to_string(domid), rc);
  const libxl_domain_build_info& b = config.get()->b_info;
  ConfiguredSize size;
  size.memory = b.target_memkb / 1024;
  size.vcpus = b.avail_vcpus.size ? static_cast<std::uint32_t>(libxl_bitmap_count_set(&b.avail_vcpus))
                                  : static_cast<std::uint32_t>(b.max_vcpus);
  return size;
}

Result<std::uint32_t> LibxlContext::createDomain(DomainConfig& config) {
  std::uint32_t domid = INVALID_DOMID;
  const std::string name = config.get()->c_info.name ? config.get()->c_info.name : "";
  int rc = libxl_domain_create_new(ctx_, config.get(), &domid, nullptr, nullptr);
  if (rc != 0) {
    Error error = libxlError("creating domain '" + name + "' failed", rc);
    // libxl usually tears a failed creation down itself; only a remnant needs destroying.
    if (domid != static_cast<std::uint32_t>(INVALID_DOMID) && libxl_domain_info(ctx_, nullptr, domid) == 0)
      libxl_domain_destroy(ctx_, domid, nullptr);
    return error;
  }
  if (auto unpaused = unpause(domid); !unpaused) {
    libxl_domain_destroy(ctx_, domid, nullptr);
    return makeError(unpaused.error().code, "xen: domain '" + name + "' was created but " + unpaused.error().message);
  }
  return domid;
}

Status LibxlContext::unpause(std::uint32_t domid) {
  int rc = libxl_domain_unpause(ctx_, domid, nullptr);
  if (rc != 0) return libxlError("unpausing domain " + std::to_string(domid), rc);
  return okStatus();
}

Status LibxlContext::requestShutdown(const LiveDomain& domain) {
  std::unique_ptr<xs_handle, void (*)(xs_handle*)> xs(xs_open(0), &xs_close);
  if (!xs) return makeError(Errc::Unavailable, std::string("xen: cannot connect to xenstore: ") + std::strerror(errno));
  std::string libxlType;
  if (domain.hvmContainer) {
    const std::string typePath = "/libxl/" + std::to_string(domain.domid) + "/type";
    unsigned int length = 0;
    if (char* value = static_cast<char*>(xs_read(xs.get(), XBT_NULL, typePath.c_str(), &length))) {
      libxlType.assign(value, length);
      std::free(value);
    }
  }
  if (shutdownRequestFor(domain.hvmContainer, libxlType) == ShutdownRequest::AcpiPowerButton) {
    int rc = libxl_send_trigger(ctx_, domain.domid, LIBXL_TRIGGER_POWER, 0, nullptr);
    if (rc != 0) return libxlError("pressing the power button of domain " + std::to_string(domain.domid), rc);
    return okStatus();
  }
  // The PV shutdown protocol: the guest watches this node and powers off when it reads
  // "poweroff" (what libxl_domain_shutdown writes before it starts waiting).
  const std::string path = "/local/domain/" + std::to_string(domain.domid) + "/control/shutdown";
  if (!xs_write(xs.get(), XBT_NULL, path.c_str(), "poweroff", 8))
    return makeError(Errc::Io, "xen: cannot write " + path + ": " + std::strerror(errno));
  return okStatus();
}

Status LibxlContext::destroy(std::uint32_t domid) {
  int rc = libxl_domain_destroy(ctx_, domid, nullptr);
  if (rc != 0) return libxlError("destroying domain " + std::to_string(domid), rc);
  return okStatus();
}

Result<NodeInfo> LibxlContext::nodeInfo() {
  libxl_physinfo phys;
  libxl_physinfo_init(&phys);
  int rc = libxl_get_physinfo(ctx_, &phys);
  if (rc != 0) {
    libxl_physinfo_dispose(&phys);
    return libxlError("libxl_get_physinfo failed", rc);
  }
  NodeInfo node;
  node.hypervisor = "xen";
  node.cores = phys.nr_cpus;
  const std::uint32_t perSocket = phys.threads_per_core * phys.cores_per_socket;
  node.sockets = perSocket ? std::max<std::uint32_t>(1, phys.nr_cpus / perSocket) : 1;
  // total_pages are 4 KiB machine pages: the same figure `xl info` prints as total_memory.
  node.memory = phys.total_pages / 256;
  libxl_physinfo_dispose(&phys);

  const libxl_version_info* version = libxl_get_version_info(ctx_);
  if (version == nullptr) return libxlError("libxl_get_version_info failed", ERROR_FAIL);
  node.version = std::to_string(version->xen_version_major) + "." + std::to_string(version->xen_version_minor) +
                 (version->xen_version_extra ? version->xen_version_extra : "");
  node.cpuModel = cpuModel();
  return node;
}

}  // namespace loom::drivers::xen
