// libvirt's default event loop, run on one thread for the whole process.
//
// libvirt allows one event implementation per process and one thread inside
// virEventRunDefaultImpl at a time, so every KvmDriver shares this loop. It must run
// whenever a connection is open, not only for lifecycle events: a remote connection
// (qemu:///system) answers the daemon's keepalive probes from it, and without answers
// libvirtd drops the connection after ~30 s.
#pragma once

#include <memory>

namespace loom::drivers::kvm {

class LibvirtEventLoop {
 public:
  // virInitialize + virEventRegisterDefaultImpl, once per process. Must precede the first
  // virConnectOpen whose connection should deliver events.
  static void ensureRegistered();

  // Keeps the loop thread running while any returned token is alive; the last token's
  // release wakes the loop and joins the thread.
  static std::shared_ptr<void> acquire();
};

}  // namespace loom::drivers::kvm
