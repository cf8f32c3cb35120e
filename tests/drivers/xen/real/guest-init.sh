#!/bin/busybox sh
# PID 1 of the harness's tiny PV guest: say it is up, then idle until shut down.
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
echo "LOOM-GUEST-UP $(/bin/busybox uname -r)"
while :; do /bin/busybox sleep 3600; done
