#!/bin/sh
# PID 1 inside the harness's dom0, run from the 9p share (the image's /loom-init hands
# over to it). Brings up the Xen toolstack by hand (no systemd in the image), runs the
# share's payload.sh, leaves its log and exit code on the share, and powers off (qemu
# exits because it runs with -no-reboot).
PATH=/usr/lib/xen-4.17/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
SHARE=/mnt/share
PAYLOAD_TIMEOUT=$(cat "$SHARE/payload-timeout" 2>/dev/null || echo 300)

exec >"$SHARE/dom0.log" 2>&1
say() { echo "loom-dom0: $*"; echo "loom-dom0: $*" >/dev/console; }
uptime_s() { cut -d' ' -f1 /proc/uptime; }
timing() { echo "$1=$(uptime_s)" >>"$SHARE/dom0-timings.txt"; }
finish() {
  echo "$1" >"$SHARE/result"
  mkdir -p "$SHARE/xen-logs" && cp -r /var/log/xen/. "$SHARE/xen-logs/" 2>/dev/null
  sync
  say "payload exit code $1; powering off"
  umount "$SHARE" 2>/dev/null
  # No systemd in the image: busybox powers off; sysrq if even that fails.
  busybox poweroff -f
  echo o >/proc/sysrq-trigger
}

timing userspace_s
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mkdir -p /dev/pts /dev/shm && mount -t devpts devpts /dev/pts && mount -t tmpfs tmpfs /dev/shm
mkdir -p /run/xen /var/run/xen /var/log/xen/console /var/lib/xen /var/lib/xenstored
hostname loom-dom0
ip link set lo up

for m in xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xen-blkback xen-netback; do
  modprobe "$m" || say "modprobe $m failed"
done
mount -t xenfs xenfs /proc/xen || { say "cannot mount xenfs: not running under Xen?"; finish 90; }

oxenstored --pid-file /run/xen/xenstored.pid || { say "oxenstored failed to start"; finish 91; }
i=0
until xenstore-read / >/dev/null 2>&1 || xenstore-ls / >/dev/null 2>&1; do
  i=$((i + 1)); [ $i -gt 100 ] && { say "xenstored did not come up"; finish 91; }
  sleep 0.2
done
xen-init-dom0 || { say "xen-init-dom0 failed"; finish 92; }
# Guest console logging, so a test can read what a guest printed.
xenconsoled --pid-file=/run/xen/xenconsoled.pid --log=guest --log-dir=/var/log/xen/console \
  || say "xenconsoled failed to start"
timing toolstack_s
say "toolstack up at $(uptime_s)s; running payload (timeout ${PAYLOAD_TIMEOUT}s)"

cd "$SHARE" || finish 93
# One budget for both stages: stage 2 (payload-fabric.sh, when the harness put it on the
# share) gets what stage 1 left of it; its budget is capped, not a separate allowance.
payload_start=$(date +%s)
timeout -k 10 "$PAYLOAD_TIMEOUT" sh "$SHARE/payload.sh" >"$SHARE/payload.log" 2>&1
rc=$?
echo "$rc" >"$SHARE/result-driver"
timing payload_done_s
if [ -f "$SHARE/payload-fabric.sh" ]; then
  left=$(( PAYLOAD_TIMEOUT - ($(date +%s) - payload_start) ))
  if [ "$left" -lt 60 ]; then
    say "stage 2 (fabric): only ${left}s of the payload budget left; not run"
    echo "stage 2 not run: only ${left}s of the payload budget left" >"$SHARE/payload-fabric.log"
    frc=98
  else
    say "stage 2 (fabric) at $(uptime_s)s (timeout ${left}s)"
    # Its own deadline 45 s before the timeout: a wait that would outlast the budget fails
    # there and says so, and the cleanup (diagnosis, xl destroy: slow under TCG) has time.
    LOOM_FABRIC_DEADLINE=$(( $(date +%s) + left - 45 )) \
      timeout -k 30 "$left" bash "$SHARE/payload-fabric.sh" >"$SHARE/payload-fabric.log" 2>&1
    frc=$?
  fi
  echo "$frc" >"$SHARE/result-fabric"
  timing fabric_done_s
  [ "$rc" = 0 ] && rc=$frc
fi
finish $rc
