#!/usr/bin/env bash
# Installs everything Loom needs to build, test and demo on Debian 12, from Debian's
# packages only. Safe to run again. Must run as root (or through sudo).
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: run as root (sudo $0)" >&2
  exit 1
fi

packages=(
  # toolchain
  build-essential cmake pkg-config git
  # libraries Loom links
  libvirt-dev libxen-dev libzmq3-dev cppzmq-dev libyaml-cpp-dev
  libboost-dev libboost-system-dev nlohmann-json3-dev libsqlite3-dev
  libspdlog-dev libcli11-dev libedit-dev rapidjson-dev libsystemd-dev
  # loomd's allocator: gperftools' tcmalloc (common/CMakeLists.txt, LOOM_MALLOC)
  libgoogle-perftools-dev
  # the API's TLS (loomd --api-tls-cert, loomctl https://) and `openssl` for a site's CA
  libssl-dev openssl
  # tests and benchmarks; clang's libFuzzer, ASan and UBSan for tests/fuzz (tools/fuzz.sh)
  libgtest-dev libgmock-dev googletest libbenchmark-dev clang libclang-rt-14-dev
  # real hypervisors for the KVM tests (libvirtd + qemu), the pty tests of the shell
  libvirt-daemon-system libvirt-clients qemu-system-x86 qemu-utils expect tmux
  # the real-Xen harness: a dom0 image built from Debian packages, booted under qemu
  debootstrap e2fsprogs cpio busybox-static
  # power fencing tests: OpenIPMI's ipmi_sim as the simulated blades' BMCs (/usr/bin/ipmi_sim),
  # the ClusterLabs fence agent operators run against them (/usr/sbin/fence_ipmilan) and
  # the ipmitool it drives
  openipmi fence-agents ipmitool
  # misc tools the scripts use; systemd for `systemd-analyze verify` of the shipped units
  procps psmisc curl ca-certificates python3 systemd
  # the partition tests (tests/e2e/netns.py): network namespaces, veths, bridge nft rules
  iproute2 nftables
  # loomd's etcd store and its tests (tools/etcd.sh starts clusters on free ports: the
  # package's own etcd service, where it runs, keeps 2379 and is not used)
  etcd-server etcd-client
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
