#!/usr/bin/env bash
# Builds every harddrive-party artifact into dist/: the Pi/NAS/router binaries
# and the .deb, .ipk and .spk packages, with SHA256SUMS and SIZES.txt. No
# Docker: cargo-zigbuild (zig as the cross linker, pinned from PyPI) builds
# the glibc targets against an old glibc and the musl targets static.
# Installs what it needs, idempotently (rustup targets, a Python venv with zig
# and cargo-zigbuild under ~/.cache/hdp-tools, Debian's cross binutils).
#
#   packaging/build.sh                       # everything
#   packaging/build.sh --targets aarch64-gnu,armv7-gnu --no-packages
#   packaging/build.sh --list                # the target names
#
# Environment: CARGO_TARGET_DIR (default ~/.cache/hdp-target, shared with the
# tests), HDP_DIST (default ./dist), HDP_TOOLS (default ~/.cache/hdp-tools).
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
dist="${HDP_DIST:-$root/dist}"
tools="${HDP_TOOLS:-$HOME/.cache/hdp-tools}"

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
    --targets) want="$2"; shift 2 ;;
    --no-packages) packages=false; shift ;;
    --list) for t in "${TARGETS[@]}"; do echo "${t%%|*}"; done; exit 0 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "build.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
selected() { [ -z "$want" ] || [[ ",$want," == *",$1,"* ]]; }

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
[ -n "$version" ] || { echo "build.sh: no version in Cargo.toml" >&2; exit 1; }

# ---- tools ----------------------------------------------------------------
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
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
  grep -qx "$triple" <<<"$installed_targets" || { echo "build: rustup target add $triple"; rustup target add "$triple"; }
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
ui="$dist/.ui"
if [ -z "${HDP_UI_DIST:-}" ]; then
  echo "== web UI (wasm32, once)"
  cargo check --locked -p hdp-node --lib
  built=$(ls -td "$CARGO_TARGET_DIR"/debug/build/hdp-node-*/out/dist 2>/dev/null | head -1)
  [ -f "$built/index.html.gz" ] || { echo "build: the host build left no UI in $CARGO_TARGET_DIR/debug/build" >&2; exit 1; }
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
sizes="$dist/SIZES.txt"
: >"$sizes.new"
for t in "${TARGETS[@]}"; do
  IFS='|' read -r name triple zig_target _ <<<"$t"
  selected "$name" || continue
  echo "== $name ($zig_target)"
  start=$(date +%s)
  cargo zigbuild --locked --profile "$PROFILE" -p hdp-node --bin hdp --target "$zig_target"
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
      if "$(objdump_for "$triple")" -p "$out" | grep -q NEEDED; then
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
  mkdir -p "$dist/pkg"
  for t in "${TARGETS[@]}"; do
    IFS='|' read -r name _ _ deb_arch opkg_archs spk_arch <<<"$t"
    selected "$name" || continue
    bin="$dist/bin/hdp-$version-$name"
    if [ -n "$deb_arch" ]; then
      packaging/debian/build-deb.sh --arch "$deb_arch" --bin "$bin" --version "$version" \
        --glibc-floor "$GLIBC_FLOOR" --out "$dist/pkg"
    fi
    for a in $opkg_archs; do
      packaging/openwrt/build-ipk.sh --arch "$a" --bin "$bin" --version "$version" --out "$dist/pkg"
    done
    if [ -n "$spk_arch" ]; then
      packaging/synology/build-spk.sh --arch "$spk_arch" --bin "$bin" --version "$version" --out "$dist/pkg"
    fi
  done
  echo "== packages"
  (cd "$dist/pkg" && for f in *; do printf '%-60s %10d bytes\n' "$f" "$(stat -c %s "$f")"; done) | tee -a "$sizes"
fi

(cd "$dist" && find bin $($packages && echo pkg) -type f | sort | xargs -r sha256sum >SHA256SUMS)
echo "== done: $dist (SHA256SUMS, SIZES.txt)"
