#!/usr/bin/env bash
# Installs what building harddrive-party needs (the wasm32 target for the web
# UI), and with --test what the tests need too (clippy, rustfmt, and Debian's
# chromium, mosquitto, mosquitto-clients, iproute2, qemu-user and the ARM C
# libraries it runs the cross builds with, and for the NAT lab nftables,
# conntrack, coturn, miniupnpd-nftables and python3), when it is missing.
# Idempotent: a second run changes nothing.
# Needs rustup; apt packages need root (or sudo).
#
#   scripts/setup.sh          # to build and run
#   scripts/setup.sh --test   # to run scripts/test.sh
set -euo pipefail
for_tests=false
[ "${1:-}" = "--test" ] && for_tests=true

need_rustup_target() {
  if ! rustup target list --installed | grep -qx "$1"; then
    echo "setup: rustup target add $1"
    rustup target add "$1"
  fi
}

need_rustup_component() {
  if ! rustup component list --installed | grep -q "^$1"; then
    echo "setup: rustup component add $1"
    rustup component add "$1"
  fi
}

need_rustup_target wasm32-unknown-unknown
$for_tests || exit 0
need_rustup_component clippy
need_rustup_component rustfmt

# Debian packages the tests use: chromium for the UI tests, a mosquitto
# broker and its command-line clients for the discovery tests (the tests start
# their own broker on a free loopback port), iproute2 for network namespaces.
# The NAT lab (tests/natlab/natlab.sh, docs/NATLAB.md) also needs nftables and
# conntrack for its routers, coturn as its STUN server, miniupnpd (the
# nftables build) for its UPnP/NAT-PMP router, and python3 for its probe.
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]; }
missing=()
have chromium || missing+=(chromium)
have mosquitto || missing+=(mosquitto)
have mosquitto_sub || missing+=(mosquitto-clients)
have ip || missing+=(iproute2)
have nft || missing+=(nftables)
have conntrack || missing+=(conntrack)
have turnserver || missing+=(coturn)
have miniupnpd || missing+=(miniupnpd-nftables)
have python3 || missing+=(python3)
# The benchmark smoke (scripts/bench.sh --smoke, last in scripts/test.sh)
# puts hdp beside scp and rsync (a throwaway sshd on loopback), socat,
# iperf3, and draws its chart with gnuplot; jq reads hdp's JSON.
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
{ have ssh && have scp; } || missing+=(openssh-client)
have rsync || missing+=(rsync)
have socat || missing+=(socat)
have iperf3 || missing+=(iperf3)
have jq || missing+=(jq)
have gnuplot || missing+=(gnuplot-nox)
have gcc || missing+=(gcc)
# libFuzzer (scripts/fuzz.sh, whose smoke scripts/test.sh runs) is C++.
have g++ || missing+=(g++)
# The awkward-names test (tests/tests/e2e/names.rs) downloads to a FAT disk
# image made by mkfs.vfat and mounted with FUSE (no vfat kernel module needed).
have mkfs.vfat || missing+=(dosfstools)
have fusefat || missing+=(fusefat)
# qemu-user and the ARM C libraries run the cross-built binaries (tests/tests/e2e/cross.rs).
have qemu-aarch64 || missing+=(qemu-user)
[ -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ] || missing+=(libc6-arm64-cross)
[ -e /usr/arm-linux-gnueabihf/lib/ld-linux-armhf.so.3 ] || missing+=(libc6-armhf-cross)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then sudo=""; elif command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "setup: please install these Debian packages (as root): ${missing[*]}" >&2
    exit 1
  fi
  # mosquitto, coturn and openssh-server are daemons: Debian starts their
  # system service on install and enables it at boot, listening on the
  # machine's real network (coturn on every address, port 3478; sshd on 22).  The tests run their own instances
  # inside network namespaces and need none of that, so a policy-rc.d keeps
  # the services from starting during the install, and they are disabled
  # (and stopped, should one have started) right after.  Services of packages
  # that were already installed are left alone.  (miniupnpd-nftables is only
  # the binary; the service, config and debconf questions are in Debian's
  # `miniupnpd` package, which the lab does not need.)
  services=()
  for p in "${missing[@]}"; do
    case "$p" in mosquitto | coturn) services+=("$p") ;; openssh-server) services+=(ssh) ;; esac
  done
  if [ ${#services[@]} -gt 0 ] && [ ! -e /usr/sbin/policy-rc.d ]; then
    $sudo sh -c 'printf "#!/bin/sh\n# scripts/setup.sh: no service starts during this install\nexit 101\n" >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d'
    trap '$sudo rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  echo "setup: apt-get install ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    -o DPkg::Lock::Timeout=600 "${missing[@]}"
  for s in "${services[@]}"; do
    echo "setup: disabling the $s system service (the tests start their own)"
    if have systemctl; then
      $sudo systemctl disable --quiet "$s" >/dev/null 2>&1 || true
      if [ -d /run/systemd/system ]; then $sudo systemctl stop "$s" >/dev/null 2>&1 || true; fi
    fi
    if [ ! -d /run/systemd/system ] && [ -x "/etc/init.d/$s" ]; then
      $sudo update-rc.d "$s" disable >/dev/null 2>&1 || true
      $sudo "/etc/init.d/$s" stop >/dev/null 2>&1 || true
    fi
  done
fi
