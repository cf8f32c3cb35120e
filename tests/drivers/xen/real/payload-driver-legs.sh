#!/bin/sh
# Harness payload: the Xen driver's real-hypervisor legs of xen_tests (a PV and a PVH
# guest, each with a given UUID and MAC: define/start/list/stop/destroy, checked against
# `xl list -l`; node info against `xl info`; the conformance suite's Xen leg when it is
# compiled in).
# Runs inside dom0 with the share as working directory; its exit code is the verdict.
set -u
SHARE=$(pwd)
# Local copies: libxl reads the guest kernel and initrd from dom0's filesystem.
cp "$SHARE/guest-initrd.gz" /tmp/guest-initrd.gz
LOOM_XEN_GUEST_KERNEL=$(ls /boot/vmlinuz-* | head -1)
LOOM_XEN_GUEST_INITRD=/tmp/guest-initrd.gz
LOOM_XEN_CONSOLE_DIR=/var/log/xen/console
# PV grub: a tiny PV image that sits at its prompt, for the conformance suite's 64 MiB
# domains (Debian's kernel does not fit in 64 MiB).
LOOM_XEN_TINY_KERNEL=/usr/lib/grub-xen/grub-x86_64-xen.bin
export LOOM_XEN_GUEST_KERNEL LOOM_XEN_GUEST_INITRD LOOM_XEN_CONSOLE_DIR LOOM_XEN_TINY_KERNEL

echo "== xl info"; xl info | grep -E '^(xen_version|nr_cpus|total_memory|free_memory|xen_scheduler|virt_caps)'
echo "== xen_tests"
cp "$SHARE/xen_tests" /tmp/xen_tests
if ! ldd /tmp/xen_tests | grep -q "not found"; then :; else
  echo "xen_tests misses runtime libraries in dom0:"; ldd /tmp/xen_tests | grep "not found"; exit 2
fi
# Only the legs that need the hypervisor: translator goldens and the decline path are
# host-side unit tests (label unit).
/tmp/xen_tests --gtest_color=no --gtest_filter='XenRealDom0.*:Types/XenRealGuest.*:Xen/DriverConformance.*' >/tmp/xen_tests.log 2>&1
rc=$?
cat /tmp/xen_tests.log
# Inside dom0 nothing may skip except what the driver declares it does not offer.
unexpected=$(grep '^\[  SKIPPED \] [A-Za-z]' /tmp/xen_tests.log | grep -v -e 'tests, listed below' -e 'test, listed below' \
  -e 'EventsReportAStart' | sort -u)
if [ -n "$unexpected" ]; then
  echo "skipped inside dom0, which is a failure here:"; echo "$unexpected"; rc=1
fi
grep '^TIMING ' /tmp/xen_tests.log >"$SHARE/payload-timings.txt"
echo "== xl list after the tests"; xl list
exit $rc
