#include "drivers/kvm/LibvirtEventLoop.h"

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <atomic>
#include <mutex>
#include <thread>

namespace loom::drivers::kvm {
namespace {

// Errors are values in Loom: they reach callers through Result, not through libvirt's
// default handler, which would print every expected "domain not found" to stderr.
void quietErrorHandler(void*, virErrorPtr) {}

struct LoopState {
  std::mutex mu;
  int holders = 0;
  std::thread thread;
  std::atomic<bool> stopping{false};
};

LoopState& state() {
  static LoopState s;
  return s;
}

void wakeTimer(int timer, void*) { virEventRemoveTimeout(timer); }

void release() {
  auto& s = state();
  std::lock_guard lock(s.mu);
  if (--s.holders > 0) return;
  s.stopping = true;
  // The loop sleeps in poll(); a zero-delay timer makes it return so it sees `stopping`.
  virEventAddTimeout(0, wakeTimer, nullptr, nullptr);
  s.thread.join();
  s.stopping = false;
}

}  // namespace

void LibvirtEventLoop::ensureRegistered() {
  static std::once_flag once;
  std::call_once(once, [] {
    virInitialize();
    virSetErrorFunc(nullptr, quietErrorHandler);
    virEventRegisterDefaultImpl();
  });
}

std::shared_ptr<void> LibvirtEventLoop::acquire() {
  ensureRegistered();
  auto& s = state();
  {
    std::lock_guard lock(s.mu);
    if (s.holders++ == 0) {
      s.thread = std::thread([&s] {
        while (!s.stopping) virEventRunDefaultImpl();
      });
    }
  }
  return std::shared_ptr<void>(nullptr, [](void*) { release(); });
}

}  // namespace loom::drivers::kvm
