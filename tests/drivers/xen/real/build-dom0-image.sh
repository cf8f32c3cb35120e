#!/bin/bash
# Builds (once) and caches the dom0 for the real-Xen harness, OUTSIDE the repository:
#   $LOOM_XEN_CACHE/<key>/ root.img (ext4 dom0 root), xen-4.17 (multiboot ELF),
#   vmlinuz + initrd.img (dom0 kernel, also the PV guest kernel), guest-initrd.gz.
# The key hashes the package list, this script, the dom0 stub init and the host's
# libxen-dev version, so the image is rebuilt exactly when dom0's libxenlight would
# stop matching what the Loom binaries were built against.
#
# Prints the cache directory on stdout (last line). Exit 77: cannot build here (skip).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
CACHE_ROOT=${LOOM_XEN_CACHE:-/var/cache/loom/xen-dom0}
SUITE=bookworm
MIRROR=${LOOM_DEBIAN_MIRROR:-http://deb.debian.org/debian}

# What dom0 needs: the hypervisor and toolstack, a kernel, busybox for the guest initrd,
# the runtime libraries of the Loom binaries copied in (libxenlight comes with
# xen-utils; for loomd, loom-agent and loomctl: libzmq5, yaml-cpp, sqlite, spdlog + fmt,
# libvirt0 (loom-agent links the KVM driver too), libedit2 and boost-system (loomctl),
# libtcmalloc-minimal4 (loomd's allocator, common/CMakeLists.txt) —
# `ldd` of the host's build must resolve entirely inside dom0, the fabric payload checks),
# jq and iproute2 for payload scripts and vif hotplug scripts; grub-xen-host for its PV
# grub image (/usr/lib/grub-xen/grub-x86_64-xen.bin), a guest "kernel" small enough for
# the conformance suite's 64 MiB domains (Debian's kernel needs ~60 MiB just to load).
PACKAGES=(xen-hypervisor-4.17-amd64 xen-utils-4.17 linux-image-amd64 busybox-static grub-xen-host
          kmod iproute2 jq procps libstdc++6 libzmq5 libyaml-cpp0.7 libsqlite3-0
          libspdlog1.10 libfmt9 libvirt0 libedit2 libboost-system1.74.0 libtcmalloc-minimal4)

skip() { echo "SKIP: $*" >&2; exit 77; }

host_xen=$(dpkg-query -W -f='${Version}' libxen-dev 2>/dev/null || echo none)
key=$( { printf '%s\n' "${PACKAGES[@]}" "$SUITE" "$host_xen"; cat "$0" "$HERE/dom0-stub-init.sh" "$HERE/guest-init.sh"; } \
       | sha256sum | cut -c1-16)
OUT="$CACHE_ROOT/$key"
if [ -f "$OUT/.complete" ]; then
  echo "dom0 image cached: $OUT" >&2
  echo "$OUT"
  exit 0
fi

[ "$(id -u)" = 0 ] || skip "building the dom0 image needs root (debootstrap, chroot)"
command -v debootstrap >/dev/null || skip "debootstrap is not installed (apt-get install debootstrap)"
command -v cpio >/dev/null || skip "cpio is not installed (apt-get install cpio)"
command -v mkfs.ext4 >/dev/null || skip "mkfs.ext4 is not installed (e2fsprogs)"

command -v curl >/dev/null || skip "curl is not installed (needed to check the Debian mirror)"
curl -fsS --max-time 15 -o /dev/null "$MIRROR/dists/$SUITE/Release" \
  || skip "no network to the Debian mirror $MIRROR"

start=$(date +%s)
mkdir -p "$CACHE_ROOT"
work=$(mktemp -d "$CACHE_ROOT/build.XXXXXX")
trap 'umount -R "$work/root/proc" 2>/dev/null || true; rm -rf "$work"' EXIT
root="$work/root"

echo "debootstrap $SUITE into $root ..." >&2
timeout 600 debootstrap --variant=minbase "$SUITE" "$root" "$MIRROR" >"$work/debootstrap.log" 2>&1 \
  || { tail -20 "$work/debootstrap.log" >&2; echo "debootstrap failed" >&2; exit 1; }

# The host's Debian sources (security included), so dom0 gets the same Xen point
# release as the host's libxen-dev. Only the Debian entries: other vendors' repos have
# no business in dom0.
rm -f "$root/etc/apt/sources.list"
if [ -f /etc/apt/sources.list.d/debian.sources ]; then
  cp /etc/apt/sources.list.d/debian.sources "$root/etc/apt/sources.list.d/"
else
  cat >"$root/etc/apt/sources.list" <<SRC
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb http://deb.debian.org/debian-security $SUITE-security main
SRC
fi
# No daemon may start inside the chroot while packages install.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"; chmod +x "$root/usr/sbin/policy-rc.d"
mount -t proc proc "$root/proc"
timeout 300 chroot "$root" apt-get update -q >"$work/apt.log" 2>&1
DEBIAN_FRONTEND=noninteractive timeout 900 chroot "$root" apt-get install -y -q --no-install-recommends \
  "${PACKAGES[@]}" >>"$work/apt.log" 2>&1 \
  || { tail -30 "$work/apt.log" >&2; echo "apt-get install in the dom0 chroot failed" >&2; exit 1; }
umount "$root/proc"
chroot "$root" apt-get clean
rm -f "$root/usr/sbin/policy-rc.d"

dom0_xen=$(chroot "$root" dpkg-query -W -f='${Version}' xen-utils-4.17)
if [ "$host_xen" != none ] && [ "$dom0_xen" != "$host_xen" ]; then
  echo "warning: dom0 xen-utils $dom0_xen differs from host libxen-dev $host_xen" >&2
fi

install -m 0755 "$HERE/dom0-stub-init.sh" "$root/loom-init"
mkdir -p "$root/mnt/share" "$root/var/log/xen/console" "$root/var/lib/loom"
echo loom-dom0 >"$root/etc/hostname"

mkdir -p "$work/out"
zcat "$root"/boot/xen-4.17-amd64.gz >"$work/out/xen-4.17"
cp "$root"/boot/vmlinuz-* "$work/out/vmlinuz"
cp "$root"/boot/initrd.img-* "$work/out/initrd.img"

# The guest: a busybox initrd whose init prints a line and idles.
g="$work/guest"
mkdir -p "$g/bin" "$g/sbin" "$g/proc" "$g/sys" "$g/dev"
cp "$root/bin/busybox" "$g/bin/busybox"
install -m 0755 "$HERE/guest-init.sh" "$g/init"
# The kernel's xen shutdown handler runs /sbin/poweroff (orderly_poweroff); busybox's
# applet would only signal PID 1, which here is a shell script: power off directly.
printf '#!/bin/busybox sh\nexec /bin/busybox poweroff -f\n' >"$g/sbin/poweroff"; chmod +x "$g/sbin/poweroff"
(cd "$g" && find . | cpio -o -H newc --quiet | gzip -9) >"$work/out/guest-initrd.gz"

echo "mkfs.ext4 -d ..." >&2
size_mb=$(( $(du -sm "$root" | cut -f1) + 400 ))
mkfs.ext4 -q -F -L loom-dom0 -d "$root" "$work/out/root.img" "${size_mb}M"
printf '%s\n' "host libxen-dev $host_xen" "dom0 xen-utils $dom0_xen" "built in $(( $(date +%s) - start )) s" \
  >"$work/out/manifest.txt"
touch "$work/out/.complete"
rm -rf "$OUT"; mv "$work/out" "$OUT"
# One image is enough: drop the ones older keys left behind (~1.2 GB each).
find "$CACHE_ROOT" -mindepth 1 -maxdepth 1 -type d -regextype posix-extended -regex '.*/[0-9a-f]{16}' \
  ! -name "$key" -exec rm -rf {} +
echo "dom0 image built in $(( $(date +%s) - start )) s: $OUT" >&2
echo "$OUT"
