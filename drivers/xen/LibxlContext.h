// LibxlContext: the I/O layer of the Xen driver. Owns one libxl_ctx and the xentoollog
// logger it writes to (RAII: freed in reverse order of creation), and turns libxl's
// integer error codes plus its last logged error into Loom Results. Knows nothing of
// DomainSpec or Loom's store: the adapter (XenDriver) decides, this layer does.
//
// Threading: libxl_ctx is thread-safe, but Loom uses one LibxlContext from one thread at
// a time (the driver contract). All calls are synchronous (ao_how == NULL); libxl runs
// its own event loop inside them and may fork hotplug scripts and the device model,
// installing a SIGCHLD handler only while it has children.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "drivers/Driver.h"
#include "loom/Result.h"

// Keep libxl out of this header: the adapter's header is included by the registry.
struct libxl__ctx;  // NOLINT(bugprone-reserved-identifier): libxl's own name for its context

namespace loom::drivers::xen {

class DomainConfig;

// The message for a host that is not a Xen dom0, quoted by probe() and every operation.
inline constexpr const char* kNoXenMessage = "no Xen hypervisor on this host (cannot open privcmd)";

// One domain as the hypervisor sees it right now.
struct LiveDomain {
  std::uint32_t domid = 0;
  // Xen's XEN_DOMINF_hvm_guest: an HVM container, which a PVH guest is too (libxl_dominfo
  // reports both as LIBXL_DOMAIN_TYPE_HVM). Only libxl's own record tells them apart.
  bool hvmContainer = false;
  std::string name;  // empty while a domain is being torn down (xenstore entry gone)
  std::string uuid;
  DomainState state = DomainState::Running;
  bool dying = false;     // destroyed, pages still being released: not yet gone
  bool shutdown = false;  // the guest has shut down (or crashed); needs destroy to reap
  std::uint32_t vcpus = 0;
  MiB memory = 0;
};

// How a guest is asked to power off.
enum class ShutdownRequest {
  ControlNode,      // PV protocol: "poweroff" in the domain's control/shutdown node
  AcpiPowerButton,  // libxl_send_trigger(POWER): a guest without PV drivers understands it
};
// PV and PVH guests: the control node. A PVH guest has no emulated ACPI PM block, so Xen
// drops a power button press for it silently (hvm_acpi_power_button returns when the
// domain has no vpm) and a graceful stop would always run into its timeout. HVM, and an
// HVM container libxl did not build (`libxlType` empty: another toolstack's): the button.
// `libxlType` is libxl's record of the type it built ("pv", "pvh", "hvm" or empty).
ShutdownRequest shutdownRequestFor(bool hvmContainer, const std::string& libxlType);

class LibxlContext {
 public:
  // Unavailable with kNoXenMessage when privcmd is absent; Unavailable with libxl's
  // reason when libxl_ctx_alloc fails (e.g. xenstored not running).
  static Result<std::unique_ptr<LibxlContext>> open();
  ~LibxlContext();
  LibxlContext(const LibxlContext&) = delete;
  LibxlContext& operator=(const LibxlContext&) = delete;

  // Every domain except dom0, dying ones included (callers decide what "gone" means).
  Result<std::vector<LiveDomain>> listDomains();
  // NotFound when the domid no longer exists at all.
  Result<LiveDomain> domainInfo(std::uint32_t domid);
  Result<std::vector<std::string>> nicMacs(std::uint32_t domid);
  // The size the domain was configured with (libxl's stored config, what `xl list -l`
  // shows: target_memkb, vcpus set online). The live figures drift: ballooning and
  // slack move the allocation, and a PV guest brings its vcpus up only as it boots.
  struct ConfiguredSize {
    MiB memory = 0;
    std::uint32_t vcpus = 0;
  };
  Result<ConfiguredSize> configuredSize(std::uint32_t domid);

  // libxl_domain_create_new + libxl_domain_unpause (creation leaves the domain paused).
  // A domain left half-built by a failure is destroyed before the error is returned.
  // `config` is completed with libxl's defaults in place.
  Result<std::uint32_t> createDomain(DomainConfig& config);
  Status unpause(std::uint32_t domid);
  // Asks the guest to power off and returns at once; the caller waits. How: see
  // shutdownRequestFor; an HVM container's type is read from libxl's record in xenstore
  // (/libxl/<domid>/type, what libxl's own libxl__domain_type reads). The control node
  // is written directly, because libxl_domain_shutdown blocks up to a minute waiting for
  // a guest that may never acknowledge (a bootloader, a kernel still booting), ignoring
  // the caller's timeout.
  Status requestShutdown(const LiveDomain& domain);
  // Tears the domain down; it may linger as "dying" for a moment after this returns.
  Status destroy(std::uint32_t domid);

  // Physical CPUs, memory, Xen version (libxl_get_physinfo, libxl_get_version_info).
  Result<NodeInfo> nodeInfo();

 private:
  struct Logger;
  LibxlContext(libxl__ctx* ctx, std::unique_ptr<Logger> logger);
  Error libxlError(const std::string& what, int rc) const;

  std::unique_ptr<Logger> logger_;  // outlives ctx_: declared first, destroyed last
  libxl__ctx* ctx_;
};

}  // namespace loom::drivers::xen
