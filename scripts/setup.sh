#!/usr/bin/env bash
# Installs what building harddrive-party needs (the wasm32 target for the web
# UI), and with --test what the tests need too (clippy, rustfmt, and Debian's
# chromium, mosquitto, mosquitto-clients, iproute2, qemu-user and the ARM C
# libraries it runs the cross builds with), when it is missing. Idempotent: a second run changes nothing.
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
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]; }
missing=()
have chromium || missing+=(chromium)
have mosquitto || missing+=(mosquitto)
have mosquitto_sub || missing+=(mosquitto-clients)
have ip || missing+=(iproute2)
# qemu-user and the ARM C libraries run the cross-built binaries (tests/tests/e2e/cross.rs).
have qemu-aarch64 || missing+=(qemu-user)
[ -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ] || missing+=(libc6-arm64-cross)
[ -e /usr/arm-linux-gnueabihf/lib/ld-linux-armhf.so.3 ] || missing+=(libc6-armhf-cross)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then sudo=""; elif command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "setup: please install these Debian packages (as root): ${missing[*]}" >&2
    exit 1
  fi
  echo "setup: apt-get install ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    -o DPkg::Lock::Timeout=600 "${missing[@]}"
fi
