#!/usr/bin/env bash
# Starts and stops virtlogd + libvirtd as plain daemons for the qemu:///system tests and
# the KVM start benchmark. These machines have no systemd, so nothing else starts them.
#   sudo tools/libvirtd.sh start   # idempotent; waits (bounded) until qemu:///system answers
#   sudo tools/libvirtd.sh stop    # stops exactly the daemons this script started
#   tools/libvirtd.sh status
# Pid files under /run (loom-*.pid) record what we started, so `stop` never touches a
# libvirtd someone else runs. Exit code non-zero with one line on stderr on failure.
set -euo pipefail

run=/run
virtlogd_pid=$run/loom-virtlogd.pid
libvirtd_pid=$run/loom-libvirtd.pid
kvm_perms=$run/loom-kvm-perms   # /dev/kvm's mode, owner, group before start changed them
log_dir=/var/log/libvirt
wait_s=${LOOM_LIBVIRTD_WAIT_S:-20}
uri=qemu:///system

die() { echo "libvirtd.sh: $*" >&2; exit 1; }

# A pid file's process is ours only if it still runs the binary we started (pids recycle).
alive() {  # alive PIDFILE NAME
  local pid
  [ -s "$1" ] || return 1
  pid=$(cat "$1")
  [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm")" = "$2" ]
}

answers() { timeout 5 virsh -c "$uri" version >/dev/null 2>&1; }

ensure_qemu_user() {
  # qemu:///system runs guests as libvirt-qemu (Debian's packaging); a minimal image may
  # lack the account, and libvirtd then refuses to start any guest.
  getent group libvirt-qemu >/dev/null || groupadd --system libvirt-qemu
  if ! getent passwd libvirt-qemu >/dev/null; then
    useradd --system --gid libvirt-qemu --home-dir /var/lib/libvirt \
      --shell /usr/sbin/nologin --comment "Libvirt Qemu" libvirt-qemu
  fi
  # /dev/kvm is group kvm: without membership guests silently fall back to failing.
  if getent group kvm >/dev/null && ! id -nG libvirt-qemu | tr ' ' '\n' | grep -qx kvm; then
    usermod -a -G kvm libvirt-qemu
  fi
  getent group libvirt >/dev/null || groupadd --system libvirt
  # Without udev (these machines) /dev/kvm can be root:root 0600. Debian's udev rule makes
  # it group kvm, 0660; without that the guests' user cannot open it, and libvirtd finds
  # its cached qemu capabilities stale on every connection and probes qemu again (5-10 s
  # each time: the KVM tests timed out). Do what the rule does; `stop` puts it back.
  if [ -c /dev/kvm ] && getent group kvm >/dev/null && [ "$(stat -c %G /dev/kvm)" != kvm ]; then
    stat -c '%a %U %G' /dev/kvm > "$kvm_perms"
    chgrp kvm /dev/kvm && chmod 0660 /dev/kvm
    echo "libvirtd.sh: /dev/kvm was $(cat "$kvm_perms"); now 0660 root:kvm, as udev would make it"
  fi
}

start() {
  [ "$(id -u)" -eq 0 ] || die "run as root (sudo $0 start)"
  command -v libvirtd >/dev/null || die "libvirtd not installed (tools/install-deps.sh installs libvirt-daemon-system)"
  if answers && ! alive "$libvirtd_pid" libvirtd; then
    echo "libvirtd.sh: $uri already answers (a libvirtd this script did not start); leaving it alone"
    return 0
  fi
  ensure_qemu_user
  mkdir -p "$run/libvirt" "$log_dir" /var/lib/libvirt/qemu /var/cache/libvirt/qemu

  if ! alive "$virtlogd_pid" virtlogd; then
    virtlogd -d -p "$virtlogd_pid" || die "virtlogd failed to start"
  fi
  if ! alive "$libvirtd_pid" libvirtd; then
    # LIBVIRT_LOG_OUTPUTS keeps errors in a file we can point to when the wait fails.
    LIBVIRT_LOG_OUTPUTS="3:file:$log_dir/loom-libvirtd.log" libvirtd -d -p "$libvirtd_pid" \
      || die "libvirtd failed to start (see $log_dir/loom-libvirtd.log)"
  fi

  local deadline=$((SECONDS + wait_s))
  until answers; do
    if [ $SECONDS -ge $deadline ]; then
      die "libvirtd started but $uri did not answer within ${wait_s}s (see $log_dir/loom-libvirtd.log)"
    fi
    alive "$libvirtd_pid" libvirtd || die "libvirtd exited during startup (see $log_dir/loom-libvirtd.log)"
    sleep 0.2
  done
  echo "libvirtd.sh: libvirtd $(cat "$libvirtd_pid") and virtlogd $(cat "$virtlogd_pid") running; $uri answers"
}

stop_one() {  # stop_one PIDFILE NAME
  local pid i
  if ! alive "$1" "$2"; then
    rm -f "$1"
    return 0
  fi
  pid=$(cat "$1")
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 50); do
    [ -d "/proc/$pid" ] || break
    sleep 0.1
  done
  if [ -d "/proc/$pid" ]; then
    echo "libvirtd.sh: $2 ($pid) ignored SIGTERM for 5s; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$1"
  echo "libvirtd.sh: stopped $2 ($pid)"
}

stop() {
  if alive "$libvirtd_pid" libvirtd; then
    # Guests outlive libvirtd; test guests left behind by a crashed test would keep
    # running as orphan qemu processes, so remove them while libvirtd can still do it.
    local d
    for d in $(timeout 10 virsh -c "$uri" list --all --name 2>/dev/null | grep '^loomtest-' || true); do
      timeout 10 virsh -c "$uri" destroy "$d" >/dev/null 2>&1 || true
      timeout 10 virsh -c "$uri" undefine "$d" >/dev/null 2>&1 || true
      echo "libvirtd.sh: removed leftover test domain $d"
    done
  fi
  stop_one "$libvirtd_pid" libvirtd
  stop_one "$virtlogd_pid" virtlogd
  if [ -s "$kvm_perms" ] && [ -c /dev/kvm ]; then
    read -r mode owner group < "$kvm_perms"
    chown "$owner:$group" /dev/kvm && chmod "$mode" /dev/kvm && echo "libvirtd.sh: /dev/kvm back to $mode $owner:$group"
    rm -f "$kvm_perms"
  fi
}

status() {
  alive "$libvirtd_pid" libvirtd && echo "libvirtd: running ($(cat "$libvirtd_pid"))" || echo "libvirtd: not started by this script"
  alive "$virtlogd_pid" virtlogd && echo "virtlogd: running ($(cat "$virtlogd_pid"))" || echo "virtlogd: not started by this script"
  answers && echo "$uri: answers" || echo "$uri: does not answer"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
