#!/usr/bin/env bash
# Builds the harddrive-party .deb by hand (dpkg-deb, no debhelper/cargo-deb)
# from an already built and stripped `hdp` binary:
#
#   packaging/debian/build-deb.sh --arch amd64|arm64|armhf --bin PATH/TO/hdp \
#       --version X.Y.Z --glibc-floor 2.31 --out DIR
#
# writes DIR/harddrive-party_X.Y.Z-1_ARCH.deb and prints its path.
# Optional: --revision N (default 1), --maintainer "Name <mail>" (or env
# DEB_MAINTAINER), --homepage URL, --licenses FILE (third-party license
# texts of the statically linked crates, shipped as
# /usr/share/doc/harddrive-party/THIRD-PARTY-LICENSES[.gz]).
# Timestamps come from SOURCE_DATE_EPOCH, else the repo's last commit, so
# the same inputs give the same .deb. Needs: dpkg-deb, gzip, coreutils;
# readelf (binutils) is used when present to check the binary's libraries;
# python3 reads its ELF header (packaging/lib/elf-kind.py).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

PKG=harddrive-party
DEFAULT_MAINTAINER="harddrive-party developers <maintainers@harddrive-party.invalid>"

die() { echo "build-deb: $*" >&2; exit 1; }
warn() { echo "build-deb: warning: $*" >&2; }
usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
}

arch='' bin='' version='' floor='' out='' revision=1 homepage='' licenses=''
maintainer=${DEB_MAINTAINER:-$DEFAULT_MAINTAINER}
while [ $# -gt 0 ]; do
    case "$1" in
        --arch) arch=${2:?}; shift 2 ;;
        --bin) bin=${2:?}; shift 2 ;;
        --version) version=${2:?}; shift 2 ;;
        --glibc-floor) floor=${2:?}; shift 2 ;;
        --out) out=${2:?}; shift 2 ;;
        --revision) revision=${2:?}; shift 2 ;;
        --maintainer) maintainer=${2:?}; shift 2 ;;
        --homepage) homepage=${2:?}; shift 2 ;;
        --licenses) licenses=${2:?}; shift 2 ;;
        -h|--help) usage ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done
if [ -z "$arch" ] || [ -z "$bin" ] || [ -z "$version" ] || [ -z "$floor" ] || [ -z "$out" ]; then
    die "--arch, --bin, --version, --glibc-floor and --out are required (see --help)"
fi
[[ "$version" =~ ^[0-9][0-9A-Za-z.+~]*$ ]] || die "bad upstream version: $version"
[[ "$revision" =~ ^[0-9A-Za-z.+~]+$ ]] || die "bad Debian revision: $revision"
[[ "$floor" =~ ^2\.[0-9]+$ ]] || die "bad glibc floor: $floor (want e.g. 2.31)"
[[ "$maintainer" =~ ^[^\<\>]+\ \<[^@\<\>\ ]+@[^@\<\>\ ]+\>$ ]] || die "bad maintainer: $maintainer"
if [ ! -f "$bin" ] || [ ! -r "$bin" ]; then die "no such binary: $bin"; fi
[ -z "$licenses" ] || [ -r "$licenses" ] || die "cannot read $licenses"
command -v dpkg-deb >/dev/null || die "dpkg-deb not found"

# The ELF kind (packaging/lib/elf-kind.py) the architecture needs.
case "$arch" in
    amd64) want_kind=x86_64 ;;
    arm64) want_kind=aarch64 ;;
    armhf) want_kind=armhf ;;
    *) die "unsupported --arch $arch (amd64, arm64 or armhf)" ;;
esac

depends="libc6 (>= $floor)"
read -r kind _ strip < <(python3 "$here/../lib/elf-kind.py" "$bin")
if [ "$kind" != not-elf ]; then
    [ "$kind" = "$want_kind" ] || die "$bin is an $kind binary, not $arch"
    # The newest glibc symbol version the binary needs must be <= the floor,
    # or Depends would promise too much.
    newest=$(grep -aoE 'GLIBC_2\.[0-9]+(\.[0-9]+)?' "$bin" | sed 's/GLIBC_//' | sort -uV | tail -n1 || true)
    if [ -z "$newest" ]; then
        warn "$bin references no GLIBC_ symbol versions (static or musl?); Depends still names libc6 (>= $floor)"
    elif dpkg --compare-versions "$newest" gt "$floor"; then
        die "$bin needs GLIBC_$newest, newer than --glibc-floor $floor"
    fi
    # Shared libraries: only glibc's own and libgcc_s (Rust's unwinder).
    if command -v readelf >/dev/null; then
        needed=$(LC_ALL=C readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p')
    else
        warn "readelf not found; guessing shared libraries from strings"
        needed=$(grep -aoE 'lib(gcc_s\.so\.1|ssl\.so[.0-9]*|crypto\.so[.0-9]*)' "$bin" | sort -u || true)
    fi
    gcc_s=
    for lib in $needed; do
        case "$lib" in
            libc.so.6|libm.so.6|libpthread.so.0|libdl.so.2|librt.so.1|libutil.so.1|ld-linux*.so.*) ;;
            libgcc_s.so.1) gcc_s=yes ;;
            *) die "$bin needs $lib, which this package does not depend on" ;;
        esac
    done
    if [ -n "$gcc_s" ]; then
        # libgcc1 before Debian 11 / Ubuntu 20.04 (glibc floors below 2.31).
        depends="$depends, libgcc-s1 | libgcc1"
    fi
    # Binaries arrive stripped (this script has no strip for every arch).
    if [ "$strip" != stripped ]; then
        warn "$bin is not stripped (lintian: unstripped-binary-or-object, an error)"
    fi
else
    warn "$bin is not an ELF binary (a stand-in for tests?); packaging it as is"
fi
# postinst creates the system user with adduser.
depends="$depends, adduser"

# Reproducible timestamps.
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
    SOURCE_DATE_EPOCH=$(git -C "$repo" log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH

stage=$(mktemp -d "${TMPDIR:-/tmp}/hdp-deb.XXXXXX")
trap 'rm -rf "$stage"' EXIT
root=$stage/root
doc=$root/usr/share/doc/$PKG
umask 022

install -D -m 0755 "$bin" "$root/usr/bin/hdp"
install -D -m 0644 "$here/config.toml" "$root/etc/$PKG/config.toml"
install -D -m 0644 "$here/harddrive-party.service" "$root/usr/lib/systemd/system/$PKG.service"
install -D -m 0644 "$here/60-harddrive-party.conf" "$root/usr/lib/sysctl.d/60-$PKG.conf"
install -D -m 0644 "$here/README.Debian" "$doc/README.Debian"
install -D -m 0644 "$here/harddrive-party-override.conf" "$doc/examples/$PKG-override.conf"
if [ -n "$licenses" ]; then
    install -D -m 0644 "$licenses" "$doc/THIRD-PARTY-LICENSES"
fi

# DEP-5 copyright, its license text taken from the project's LICENSE
# (indented by one space, blank lines as " .").
notice=$(sed -n 's/^Copyright (c) //p' "$repo/LICENSE" | head -n1)
[ -n "$notice" ] || die "no 'Copyright (c)' line in $repo/LICENSE"
{
    echo "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
    echo "Upstream-Name: harddrive-party"
    echo
    echo "Files: *"
    echo "Copyright: $notice"
    echo "License: MIT"
    echo
    echo "License: MIT"
    sed '1{/^MIT License$/d}' "$repo/LICENSE" | sed '1{/^$/d}' \
        | sed '/^Copyright (c)/,/^$/d' | sed 's/^$/./; s/^/ /'
    if [ -n "$licenses" ]; then
        echo
        echo "Comment: /usr/bin/hdp links Rust crates (and LMDB) statically;"
        echo " their licenses are in /usr/share/doc/$PKG/THIRD-PARTY-LICENSES."
    fi
} >"$doc/copyright"

# changelog.Debian: one entry for this build.
{
    echo "$PKG ($version-$revision) unstable; urgency=medium"
    echo
    echo "  * Package harddrive-party $version (hdp built outside the package)."
    echo
    echo " -- $maintainer  $(LC_ALL=C date -u -R -d "@$SOURCE_DATE_EPOCH")"
} >"$doc/changelog.Debian"
gzip -9n "$doc/changelog.Debian"
# Policy: documentation over 4 KiB is compressed (copyright never is);
# README.Debian always, as the unit's Documentation= names README.Debian.gz.
gzip -9n "$doc/README.Debian"
find "$doc" -type f -size +4k ! -name copyright ! -name '*.gz' -exec gzip -9n {} +

# Maintainer scripts and control files.
install -d -m 0755 "$root/DEBIAN"
for s in postinst prerm postrm; do
    install -m 0755 "$here/$s" "$root/DEBIAN/$s"
done
echo "/etc/$PKG/config.toml" >"$root/DEBIAN/conffiles"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z \
    | xargs -0 md5sum) >"$root/DEBIAN/md5sums"
# Installed-Size as dpkg-gencontrol counts it: KiB per file rounded up, 1
# per directory or symlink.
installed_size=$(cd "$root" && find . -path ./DEBIAN -prune -o ! -path . -printf '%y %s\n' \
    | awk '{ n += ($1 == "f") ? int(($2 + 1023) / 1024) : 1 } END { print n }')

{
    echo "Package: $PKG"
    echo "Version: $version-$revision"
    echo "Architecture: $arch"
    echo "Maintainer: $maintainer"
    echo "Installed-Size: $installed_size"
    echo "Depends: $depends"
    echo "Section: net"
    echo "Priority: optional"
    [ -z "$homepage" ] || echo "Homepage: $homepage"
    cat <<'EOF'
Description: peer-to-peer file sharing node for friends
 harddrive-party shares directories directly between friends' computers:
 no server in between and no upload to a cloud. Peers find each other
 through shared topic names (over an MQTT broker), on the local network
 (mDNS), or by address, and connect with QUIC. Each node offers a web UI
 for browsing peers' shares, streaming media and queueing downloads.
 .
 This package runs the node (the hdp binary) as a sandboxed systemd
 service under its own system user, configured in
 /etc/harddrive-party/config.toml, with its data in
 /var/lib/harddrive-party. It suits a Raspberry Pi, a NAS or a laptop.
EOF
} >"$root/DEBIAN/control"
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/conffiles" "$root/DEBIAN/md5sums"

find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
mkdir -p "$out"
deb=$(cd "$out" && pwd)/${PKG}_${version}-${revision}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
