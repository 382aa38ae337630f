#!/usr/bin/env bash
# Builds the OpenWrt package of harddrive-party:
#
#   packaging/openwrt/build-ipk.sh --arch OPKG_ARCH [--arch ...] --bin PATH \
#       --version X.Y.Z [--release N] [--licenses FILE] --out DIR
#
# writes DIR/harddrive-party_X.Y.Z-N_OPKG_ARCH.ipk (N defaults to 1) for each
# --arch, prints each path on stdout and its sizes on stderr. The binary must
# be a static (musl) build for that architecture.
#
# Format: what opkg (OpenWrt's opkg-lede) reads: a gzip'd tar (GNU/ustar
# headers, no pax) of ./debian-binary, ./control.tar.gz and ./data.tar.gz,
# owned by 0:0 (opkg applies the tar's owners). OpenWrt 24.10 is the last
# release with opkg; later ones use apk and need another package format.
#
# Architecture names. opkg installs only packages whose Architecture is in
# its list (`opkg print-architecture`: all, noarch and the device's own, e.g.
# aarch64_cortex-a53). The binary runs on every CPU of its family, so the
# same file is built under several names; build.sh passes:
#   aarch64 (static aarch64-musl): aarch64_generic (armsr, rockchip: NanoPi
#     R4S/R5S/R6S), aarch64_cortex-a53 (Pi 3, MT798x/filogic, ipq807x),
#     aarch64_cortex-a72 (Pi 4, mvebu cortexa72); aarch64_cortex-a76 (Pi 5)
#     is worth adding.
#   armv7 hard-float (armv7-musleabihf, needs VFPv3-D16 and nothing more):
#     arm_cortex-a7_neon-vfpv4 (Pi 2, ipq40xx), arm_cortex-a9_vfpv3-d16
#     (mvebu: Linksys WRT, Turris Omnia), arm_cortex-a15_neon-vfpv4 (ipq806x).
#     ARM names without vfp/neon (cores without an FPU) are refused.
#   x86_64.
# On a device whose name differs but whose CPU fits (opkg-lede has no
# --force-arch), add the package's name to opkg's list. An `arch` line
# replaces the built-in list, so keep the device's own names too:
#   opkg print-architecture > /etc/opkg/arch.conf     # "arch all 1", ...
#   echo 'arch aarch64_generic 5' >> /etc/opkg/arch.conf
#   opkg install ./harddrive-party_0.1.0-1_aarch64_generic.ipk
# or for one command: opkg install --add-arch all:1 --add-arch noarch:1 \
#   --add-arch <device arch>:10 --add-arch aarch64_generic:5 ./harddrive-party_*.ipk
#
# Environment: SOURCE_DATE_EPOCH (file times; default: the last commit),
# HDP_MAINTAINER (Maintainer field).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
name=harddrive-party

usage() { sed -n '2,9p' "$0" >&2; exit 2; }

archs=() bin="" version="" release=1 out="" licenses=""
while [ $# -gt 0 ]; do
	case "$1" in
	--arch) archs+=("${2:?--arch needs a value}"); shift 2 ;;
	--bin) bin=${2:?}; shift 2 ;;
	--version) version=${2:?}; shift 2 ;;
	--release) release=${2:?}; shift 2 ;;
	--out) out=${2:?}; shift 2 ;;
	--licenses) licenses=${2:?}; shift 2 ;;
	-h | --help) usage ;;
	*) echo "build-ipk: unknown argument $1" >&2; usage ;;
	esac
done
if [ ${#archs[@]} -eq 0 ] || [ -z "$bin" ] || [ -z "$version" ] || [ -z "$out" ]; then usage; fi
[[ "$version" =~ ^[0-9]+(\.[0-9]+)*$ ]] || { echo "build-ipk: version '$version' is not X.Y.Z" >&2; exit 2; }
[[ "$release" =~ ^[0-9]+$ ]] || { echo "build-ipk: release '$release' is not a number" >&2; exit 2; }
[ -f "$bin" ] || { echo "build-ipk: no binary at $bin" >&2; exit 1; }

maintainer=${HDP_MAINTAINER:-harddrive-party developers}
homepage=$(sed -n 's/^repository = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -1)
homepage=${homepage:-$name}
epoch=${SOURCE_DATE_EPOCH:-$(git -C "$root" log -1 --format=%ct 2>/dev/null || date +%s)}

read -r kind linkage strip < <(python3 "$here/../lib/elf-kind.py" "$bin")
[ "$kind" != not-elf ] || { echo "build-ipk: $bin is not a little-endian ELF binary" >&2; exit 1; }
[ "$linkage" = static ] || { echo "build-ipk: $bin is not a static binary (OpenWrt needs the musl build)" >&2; exit 1; }
[ "$strip" = stripped ] || echo "build-ipk: warning: $bin is not stripped (wasted flash)" >&2

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Deterministic tar.gz of directory $1's contents into $2, as opkg reads them.
targz() {
	tar --format=gnu --sort=name --owner=0 --group=0 --numeric-owner \
		--mtime="@$epoch" -C "$1" -cf - . | gzip -9n >"$2"
}

# data.tar.gz: identical for every architecture name.
data="$work/data"
install -d "$data/usr/bin" "$data/etc/init.d" "$data/etc/config"
install -m 0755 "$bin" "$data/usr/bin/hdp"
install -m 0755 "$here/files/harddrive-party.init" "$data/etc/init.d/$name"
install -m 0644 "$here/files/harddrive-party.config" "$data/etc/config/$name"
# The licenses of the crates compiled into the binary (build.sh writes them),
# gzipped: about 40 KB of flash.
if [ -n "$licenses" ]; then
	install -d "$data/usr/share/doc/$name"
	gzip -9n <"$licenses" >"$data/usr/share/doc/$name/THIRD-PARTY-LICENSES.gz"
	chmod 0644 "$data/usr/share/doc/$name/THIRD-PARTY-LICENSES.gz"
fi
installed_size=$(find "$data" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')
targz "$data" "$work/data.tar.gz"

for arch in "${archs[@]}"; do
	case "$arch" in
	x86_64) want=x86_64 ;;
	aarch64_*) want=aarch64 ;;
	arm_*vfp* | arm_*neon*) want=armhf ;;
	*) echo "build-ipk: no hdp build fits opkg architecture '$arch'" >&2; exit 1 ;;
	esac
	[ "$kind" = "$want" ] || { echo "build-ipk: $bin is $kind, opkg architecture $arch needs $want" >&2; exit 1; }

	ctl="$work/control-$arch"
	install -d "$ctl"
	# Installed-Size is in bytes for opkg. No Depends: the binary is static.
	# Require-User: default_postinst creates this user and group.
	cat >"$ctl/control" <<EOF
Package: $name
Version: $version-$release
Source: $homepage
SourceName: $name
License: MIT
Section: net
Require-User: $name:$name
Maintainer: $maintainer
Architecture: $arch
Installed-Size: $installed_size
Description: Peer-to-peer file sharing node (hdp) with a web UI.
 Share directories from a USB disk with friends and download theirs over
 QUIC; peers meet by topic (MQTT), on the LAN (mDNS) or by address.
 Configure in /etc/config/harddrive-party.
EOF
	echo "/etc/config/$name" >"$ctl/conffiles"
	install -m 0755 "$here/control/postinst" "$here/control/prerm" "$here/control/postrm" "$ctl/"
	targz "$ctl" "$work/control.tar.gz"

	pkg="$work/pkg-$arch"
	install -d "$pkg"
	echo 2.0 >"$pkg/debian-binary"
	cp "$work/control.tar.gz" "$work/data.tar.gz" "$pkg/"
	mkdir -p "$out"
	ipk="$out/${name}_$version-${release}_$arch.ipk"
	tar --format=gnu --owner=0 --group=0 --numeric-owner --mtime="@$epoch" \
		-C "$pkg" -cf - ./debian-binary ./control.tar.gz ./data.tar.gz | gzip -9n >"$ipk.tmp"
	mv -f "$ipk.tmp" "$ipk"
	printf 'build-ipk: %s: %d bytes to download, %d KiB installed\n' \
		"${ipk##*/}" "$(stat -c %s "$ipk")" "$(((installed_size + 1023) / 1024))" >&2
	echo "$ipk"
done
