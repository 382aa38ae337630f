#!/usr/bin/env bash
# Builds every harddrive-party artifact into dist/: the Pi/NAS/router binaries
# and the .deb, .ipk and .spk packages, with SHA256SUMS and SIZES.txt. No
# Docker: cargo-zigbuild (zig as the cross linker, pinned from PyPI) builds
# the glibc targets against an old glibc and the musl targets static.
# Installs what it needs, idempotently (rustup targets, a Python venv with zig
# and cargo-zigbuild under ~/.cache/hdp-tools, Debian's cross binutils, and
# the nightly toolchain's rust-src for armv7 musl, which has no prebuilt std
# on rustup's servers and is built with -Zbuild-std).
#
#   packaging/build.sh                       # everything
#   packaging/build.sh --targets aarch64-gnu,armv7-gnu --no-packages
#   packaging/build.sh --list                # the target names
#
# Environment: CARGO_TARGET_DIR (default ~/.cache/hdp-target, shared with the
# tests), HDP_DIST (default ./dist), HDP_TOOLS (default ~/.cache/hdp-tools),
# HDP_NIGHTLY (default nightly: the toolchain for -Zbuild-std).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

# Pinned together: a zig release once broke ring's C build, so neither moves
# without a full build of every target.
ZIG_VERSION=0.14.1
ZIGBUILD_VERSION=0.24.1
# The oldest glibc the gnu binaries may need: Synology DSM 7.1 ships 2.26
# (Debian 11 / Pi OS bullseye 2.31). The build fails if a binary asks for more.
GLIBC_FLOOR=2.26
# Size budget of the stripped aarch64 binary, web UI included (bytes).
SIZE_BUDGET=$((8 * 1000 * 1000))
PROFILE=dist

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hdp-target}"
# Absolute: node/build.rs resolves HDP_UI_DIST from node/.
dist=$(realpath -m "${HDP_DIST:-$root/dist}")
tools="${HDP_TOOLS:-$HOME/.cache/hdp-tools}"

NIGHTLY="${HDP_NIGHTLY:-nightly}"
# Targets whose std rustup does not ship: built from source by nightly cargo.
BUILD_STD_TARGETS="armv7-unknown-linux-musleabihf"

# name | rust triple | zig target (glibc floor rides on it) | deb arch | opkg archs | spk arch
TARGETS=(
  "x86_64-gnu|x86_64-unknown-linux-gnu|x86_64-unknown-linux-gnu.$GLIBC_FLOOR|amd64||x86_64"
  "aarch64-gnu|aarch64-unknown-linux-gnu|aarch64-unknown-linux-gnu.$GLIBC_FLOOR|arm64||aarch64"
  "armv7-gnu|armv7-unknown-linux-gnueabihf|armv7-unknown-linux-gnueabihf.$GLIBC_FLOOR|armhf||"
  "x86_64-musl|x86_64-unknown-linux-musl|x86_64-unknown-linux-musl||x86_64|"
  "aarch64-musl|aarch64-unknown-linux-musl|aarch64-unknown-linux-musl||aarch64_generic aarch64_cortex-a53 aarch64_cortex-a72|"
  "armv7-musl|armv7-unknown-linux-musleabihf|armv7-unknown-linux-musleabihf||arm_cortex-a7_neon-vfpv4 arm_cortex-a9_vfpv3-d16 arm_cortex-a15_neon-vfpv4|"
)

want=""
packages=true
while [ $# -gt 0 ]; do
  case "$1" in
    --targets)
      [ $# -ge 2 ] || { echo "build.sh: --targets needs a list (see --list)" >&2; exit 2; }
      want="$2"; shift 2 ;;
    --no-packages) packages=false; shift ;;
    --list) for t in "${TARGETS[@]}"; do echo "${t%%|*}"; done; exit 0 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "build.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
selected() { [ -z "$want" ] || [[ ",$want," == *",$1,"* ]]; }
for w in ${want//,/ }; do
  printf '%s\n' "${TARGETS[@]}" | grep -q "^$w|" || { echo "build.sh: no target $w (see --list)" >&2; exit 2; }
done
build_std() { [[ " $BUILD_STD_TARGETS " == *" $1 "* ]]; }

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
[ -n "$version" ] || { echo "build.sh: no version in Cargo.toml" >&2; exit 1; }

# ---- tools ----------------------------------------------------------------
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo=sudo; else sudo=missing_root; fi
fi
missing_root() { echo "build: please run as root, or install these Debian packages: ${apt_missing[*]}" >&2; exit 1; }
apt_missing=()
need_deb() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed" || apt_missing+=("$1"); }
need_deb binutils-aarch64-linux-gnu   # objdump -T for the glibc floor
need_deb binutils-arm-linux-gnueabihf
# zig and cargo-zigbuild come from PyPI into a venv: Debian's Python will do.
python3 -c 'import venv, ensurepip' 2>/dev/null || { need_deb python3; need_deb python3-venv; }
if [ ${#apt_missing[@]} -gt 0 ]; then
  echo "build: apt-get install ${apt_missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    -o DPkg::Lock::Timeout=600 "${apt_missing[@]}"
fi
installed_targets=$(rustup target list --installed)
for t in "${TARGETS[@]}"; do
  IFS='|' read -r name triple _ <<<"$t"
  selected "$name" || continue
  if build_std "$triple"; then
    if ! rustup component list --toolchain "$NIGHTLY" --installed 2>/dev/null | grep -q '^rust-src'; then
      echo "build: rustup toolchain install $NIGHTLY with rust-src (for $triple)"
      rustup toolchain install "$NIGHTLY" --profile minimal --component rust-src
    fi
  elif ! grep -qx "$triple" <<<"$installed_targets"; then
    echo "build: rustup target add $triple"
    rustup target add "$triple"
  fi
done
grep -qx wasm32-unknown-unknown <<<"$installed_targets" || rustup target add wasm32-unknown-unknown
venv="$tools/venv"
if ! "$venv/bin/cargo-zigbuild" --version 2>/dev/null | grep -qx "cargo-zigbuild $ZIGBUILD_VERSION" ||
   [ "$("$venv/bin/python" -m ziglang version 2>/dev/null)" != "$ZIG_VERSION" ]; then
  echo "build: installing zig $ZIG_VERSION and cargo-zigbuild $ZIGBUILD_VERSION into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "ziglang==$ZIG_VERSION" "cargo-zigbuild==$ZIGBUILD_VERSION"
fi
# cargo-zigbuild finds zig as `python3 -m ziglang` on PATH.
export PATH="$venv/bin:$PATH"

# ---- the web UI, built once -------------------------------------------------
# node/build.rs builds the UI for any host build, `cargo check` included
# (build scripts run for it too, without compiling the node); every target
# build then embeds that same directory through HDP_UI_DIST.
mkdir -p "$dist"
# Beside the build, not in dist/: every HDP_DIST then embeds the same path,
# so switching between dist dirs (the tests use their own) rebuilds nothing.
ui="$CARGO_TARGET_DIR/hdp-ui-dist"
if [ -z "${HDP_UI_DIST:-}" ]; then
  echo "== web UI (wasm32, once)"
  # Cargo names the build script's out dir in its JSON messages.
  cargo check --locked -p hdp-node --lib --message-format=json-render-diagnostics >"$dist/.check.json"
  built=$(python3 -c '
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m.get("reason") == "build-script-executed" and "hdp-node" in m["package_id"]:
        print(m["out_dir"] + "/dist")
' "$dist/.check.json" | tail -1)
  rm -f "$dist/.check.json"
  [ -f "$built/index.html.gz" ] || { echo "build: the host build left no UI (looked in '$built')" >&2; exit 1; }
  # Copied only when it changed: the target builds watch this directory.
  if ! diff -rq "$built" "$ui" >/dev/null 2>&1; then
    rm -rf "$ui" && mkdir -p "$ui"
    cp -r "$built"/. "$ui/"
  fi
  export HDP_UI_DIST="$ui"
fi

# ---- binaries ----------------------------------------------------------------
objdump_for() {
  case "$1" in
    x86_64-*) echo objdump ;;
    aarch64-*) echo aarch64-linux-gnu-objdump ;;
    armv7-*) echo arm-linux-gnueabihf-objdump ;;
  esac
}

# The newest GLIBC_x.y symbol version a binary needs ("" for none).
glibc_needed() {
  "$(objdump_for "$2")" -T "$1" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1
}

version_le() { [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -1)" = "$1" ]; }

mkdir -p "$dist/bin"
# Binaries of other versions would end up in SHA256SUMS.
find "$dist/bin" -type f ! -name "hdp-$version-*" -delete
sizes="$dist/SIZES.txt"
: >"$sizes.new"
for t in "${TARGETS[@]}"; do
  IFS='|' read -r name triple zig_target _ <<<"$t"
  selected "$name" || continue
  echo "== $name ($zig_target)"
  start=$(date +%s)
  case "$triple" in
    *-musl*)
      # LMDB without robust mutexes: musl refuses a robust mutex when the
      # kernel lacks get_robust_list, as under qemu-user, where the index then
      # fails to open with ENOSYS. The node is LMDB's only user (it holds the
      # data dir's lock), and LMDB rebuilds its lock table when it opens the
      # environment alone, so a mutex left locked by a killed node is reset at
      # the next start: robustness across processes buys nothing here.
      export "CFLAGS_${triple//-/_}=-DMDB_USE_ROBUST=0" ;;
  esac
  if build_std "$triple"; then
    # std built here has no self-contained crt objects or libunwind: zig's
    # linker brings its own musl start files and libunwind instead.
    export "CARGO_TARGET_$(tr 'a-z-' 'A-Z_' <<<"$triple")_RUSTFLAGS=-C link-self-contained=no"
    cargo "+$NIGHTLY" zigbuild --locked --profile "$PROFILE" -p hdp-node --bin hdp --target "$zig_target" \
      -Zbuild-std=std,panic_unwind
  else
    cargo zigbuild --locked --profile "$PROFILE" -p hdp-node --bin hdp --target "$zig_target"
  fi
  secs=$(( $(date +%s) - start ))
  out="$dist/bin/hdp-$version-$name"
  cp "$CARGO_TARGET_DIR/$triple/$PROFILE/hdp" "$out"
  floor="static"
  case "$triple" in
    *-gnu|*-gnueabihf)
      floor=$(glibc_needed "$out" "$triple")
      if ! version_le "$floor" "$GLIBC_FLOOR"; then
        echo "build: $out needs GLIBC_$floor, above the promised $GLIBC_FLOOR" >&2
        exit 1
      fi
      floor="glibc $floor" ;;
    *)
      # Whole output first: grep -q would end the pipe early (pipefail).
      headers=$("$(objdump_for "$triple")" -p "$out")
      if grep -q NEEDED <<<"$headers"; then
        echo "build: $out is not static" >&2
        exit 1
      fi ;;
  esac
  size=$(stat -c %s "$out")
  printf '%-14s %10d bytes  %-12s built in %ss\n' "$name" "$size" "$floor" "$secs" | tee -a "$sizes.new"
  if [ "$name" = aarch64-gnu ] && [ "$size" -gt "$SIZE_BUDGET" ]; then
    echo "build: the aarch64 binary is $size bytes, over the budget of $SIZE_BUDGET (see packaging/README.md, Size)" >&2
    exit 1
  fi
done
mv "$sizes.new" "$sizes"

# ---- packages --------------------------------------------------------------
if $packages; then
  # Made anew: packages of earlier runs or versions would end up in SHA256SUMS.
  rm -rf "$dist/pkg"
  mkdir -p "$dist/pkg"
  for t in "${TARGETS[@]}"; do
    IFS='|' read -r name triple _ deb_arch opkg_archs spk_arch <<<"$t"
    selected "$name" || continue
    bin="$dist/bin/hdp-$version-$name"
    # The licenses of every crate (and the C code inside them) in the binary.
    licenses="$dist/pkg/.licenses-$name.txt"
    python3 packaging/lib/third-party-licenses.py "$triple" "$licenses"
    if [ -n "$deb_arch" ]; then
      packaging/debian/build-deb.sh --arch "$deb_arch" --bin "$bin" --version "$version" \
        --glibc-floor "$GLIBC_FLOOR" --licenses "$licenses" --out "$dist/pkg"
    fi
    for a in $opkg_archs; do
      packaging/openwrt/build-ipk.sh --arch "$a" --bin "$bin" --version "$version" --licenses "$licenses" \
        --out "$dist/pkg"
    done
    if [ -n "$spk_arch" ]; then
      packaging/synology/build-spk.sh --arch "$spk_arch" --bin "$bin" --version "$version" --licenses "$licenses" \
        --out "$dist/pkg"
    fi
    rm -f "$licenses"
  done
  echo "== packages"
  (cd "$dist/pkg" && for f in *; do printf '%-60s %10d bytes\n' "$f" "$(stat -c %s "$f")"; done) | tee -a "$sizes"
fi

sum_dirs=(bin)
$packages && sum_dirs+=(pkg)
(cd "$dist" && find "${sum_dirs[@]}" -type f | sort | xargs -r sha256sum >SHA256SUMS)
echo "== done: $dist (SHA256SUMS, SIZES.txt)"
