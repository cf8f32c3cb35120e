#!/bin/sh
# PID 1 of the harness's dom0, baked into the cached image. It only reaches the 9p share
# and hands over to the share's dom0-init.sh, so the harness logic can change without
# rebuilding the image.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
modprobe 9pnet_virtio 2>/dev/null; modprobe 9p 2>/dev/null
if mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 share /mnt/share \
   && [ -x /mnt/share/dom0-init.sh ]; then
  exec /mnt/share/dom0-init.sh
fi
echo "loom-init: cannot mount the 9p share or find dom0-init.sh on it" >/dev/console
# No systemd in the image: busybox powers off; sysrq if even that fails.
busybox poweroff -f
echo o >/proc/sysrq-trigger
