#!/usr/bin/env bash
# Builds the Synology DSM 7 package of harddrive-party:
#
#   packaging/synology/build-spk.sh --arch x86_64|aarch64 --bin PATH \
#       --version X.Y.Z [--build N] [--licenses FILE] --out DIR
#
# writes DIR/harddrive-party-ARCH-X.Y.Z-NNNN.spk (DSM version X.Y.Z-NNNN, N
# defaults to 1; raise it to republish the same X.Y.Z) and prints its path.
# The binary is the static musl build or a glibc build needing at most
# glibc 2.26 (DSM 7.1's).
#
# Layout (DSM 7 developer guide, "Synology Package"): an uncompressed tar of
# INFO, package.tgz (bin/hdp, the .sc port file, LICENSE), scripts/, conf/
# (privilege: run as the package's own user; resource: port-config) and the
# 72x72 and 256x256 icons, drawn here.
#
# INFO arch: the guide's Appendix A ("Platform and Arch Value Mapping Table")
# groups platforms into arch families, x86_64 (apollolake, geminilake, ...)
# and armv8 (rtd1296, armada37xx, rtd1619, rtd1619b); Synology's toolkit
# (pkgscripts-ng, plat_to_family) names the same two families. The field
# lists the family and its member platforms, so the package matches either
# way Package Center compares.
#
# Environment: SOURCE_DATE_EPOCH (file times; default: the last commit),
# HDP_MAINTAINER (maintainer field).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
name=harddrive-party

usage() { sed -n '2,10p' "$0" >&2; exit 2; }

arch="" bin="" version="" build=1 out="" licenses=""
while [ $# -gt 0 ]; do
	case "$1" in
	--arch) arch=${2:?}; shift 2 ;;
	--bin) bin=${2:?}; shift 2 ;;
	--version) version=${2:?}; shift 2 ;;
	--build) build=${2:?}; shift 2 ;;
	--out) out=${2:?}; shift 2 ;;
	--licenses) licenses=${2:?}; shift 2 ;;
	-h | --help) usage ;;
	*) echo "build-spk: unknown argument $1" >&2; usage ;;
	esac
done
if [ -z "$arch" ] || [ -z "$bin" ] || [ -z "$version" ] || [ -z "$out" ]; then usage; fi
[[ "$version" =~ ^[0-9]+(\.[0-9]+)*$ ]] || { echo "build-spk: version '$version' is not X.Y.Z" >&2; exit 2; }
[[ "$build" =~ ^0*[1-9][0-9]*$ ]] || { echo "build-spk: build '$build' is not a number >= 1" >&2; exit 2; }
build=$((10#$build))
[ -f "$bin" ] || { echo "build-spk: no binary at $bin" >&2; exit 1; }

case "$arch" in
x86_64)
	info_arch="x86_64 apollolake avoton braswell broadwell broadwellnk broadwellnkv2 broadwellntb"
	info_arch+=" broadwellntbap bromolow cedarview coffeelake denverton epyc7002 geminilake"
	info_arch+=" geminilakenk grantley kvmx64 purley r1000 r1000nk skylaked v1000 v1000nk" ;;
aarch64)
	info_arch="armv8 rtd1296 rtd1619 rtd1619b armada37xx" ;;
*) echo "build-spk: --arch must be x86_64 or aarch64" >&2; exit 2 ;;
esac

# A binary for this DSM architecture?
read -r kind _ _ < <(python3 "$here/../lib/elf-kind.py" "$bin")
[ "$kind" = "$arch" ] || { echo "build-spk: $bin is not a 64-bit $arch ELF binary ($kind)" >&2; exit 1; }

dsm_version="$version-$(printf '%04d' "$build")"
maintainer=${HDP_MAINTAINER:-harddrive-party developers}
epoch=${SOURCE_DATE_EPOCH:-$(git -C "$root" log -1 --format=%ct 2>/dev/null || date +%s)}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tarflags=(--format=gnu --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch")

# package.tgz -> /var/packages/harddrive-party/target
target="$work/target"
install -d "$target/bin"
install -m 0755 "$bin" "$target/bin/hdp"
install -m 0644 "$here/$name.sc" "$target/$name.sc"
install -m 0644 "$root/LICENSE" "$target/LICENSE"
docs=(LICENSE)
# The licenses of the crates compiled into the binary (build.sh writes them).
if [ -n "$licenses" ]; then
	install -m 0644 "$licenses" "$target/THIRD-PARTY-LICENSES"
	docs+=(THIRD-PARTY-LICENSES)
fi
extract_kib=$(find "$target" -type f -printf '%s\n' | awk '{ s += $1 } END { print int((s + 1023) / 1024) }')

spk="$work/spk"
install -d "$spk/scripts" "$spk/conf"
(cd "$target" && tar "${tarflags[@]}" -cf - bin "$name.sc" "${docs[@]}") | gzip -9n >"$spk/package.tgz"
install -m 0755 "$here"/scripts/* "$spk/scripts/"
install -m 0644 "$here/conf/privilege" "$here/conf/resource" "$spk/conf/"

cat >"$spk/INFO" <<EOF
package="$name"
version="$dsm_version"
os_min_ver="7.0-40000"
arch="$info_arch"
displayname="harddrive-party"
description="Peer-to-peer file sharing with friends: share folders, browse and download theirs over QUIC, from a web UI on port 3030."
maintainer="$maintainer"
thirdparty="yes"
ctl_stop="yes"
adminprotocol="http"
adminport="3030"
adminurl="/"
checkport="yes"
extractsize="$extract_kib"
create_time="$(date -u -d "@$epoch" +%Y%m%d-%H:%M:%S)"
EOF

# Icons: a white drive with confetti on a purple-to-pink rounded square.
python3 - "$spk" <<'PY'
import struct, sys, zlib

def rrect(px, py, cx, cy, hw, hh, r):
    qx, qy = abs(px - cx) - (hw - r), abs(py - cy) - (hh - r)
    out = (max(qx, 0.0) ** 2 + max(qy, 0.0) ** 2) ** 0.5
    return out + min(max(qx, qy), 0.0) - r < 0

def disc(px, py, cx, cy, r):
    return (px - cx) ** 2 + (py - cy) ** 2 < r * r

def mix(a, b, t):
    return tuple(a[i] + (b[i] - a[i]) * t for i in range(3))

PURPLE, PINK, WHITE = (123, 47, 247), (241, 7, 163), (255, 255, 255)
# Shapes in unit coordinates, painted in order: (test, colour or None for the
# background gradient).
shapes = [
    (lambda x, y: rrect(x, y, .5, .5, .46, .46, .18), None),
    (lambda x, y: rrect(x, y, .5, .6, .33, .17, .06), WHITE),
    (lambda x, y: rrect(x, y, .42, .6, .18, .025, .02), PURPLE),
    (lambda x, y: disc(x, y, .74, .6, .035), (46, 204, 113)),
    (lambda x, y: disc(x, y, .3, .25, .045), (255, 214, 10)),
    (lambda x, y: disc(x, y, .52, .18, .035), WHITE),
    (lambda x, y: disc(x, y, .7, .29, .05), (0, 229, 255)),
]

def icon(size, ss=3):
    rows = []
    for j in range(size):
        row = bytearray([0])  # filter: none
        for i in range(size):
            acc = [0.0, 0.0, 0.0, 0.0]  # premultiplied rgb, alpha
            for sj in range(ss):
                for si in range(ss):
                    x, y = (i + (si + .5) / ss) / size, (j + (sj + .5) / ss) / size
                    col, a = (0, 0, 0), 0.0
                    for test, c in shapes:
                        if test(x, y):
                            col, a = (c if c else mix(PURPLE, PINK, y)), 1.0
                    for k in range(3):
                        acc[k] += col[k] * a
                    acc[3] += a
            n = ss * ss
            a = acc[3] / n
            rgb = [round(acc[k] / acc[3]) if acc[3] else 0 for k in range(3)]
            row += bytes(rgb + [round(a * 255)])
        rows.append(bytes(row))
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"".join(rows), 9)) + chunk(b"IEND", b""))

for size, fname in ((72, "PACKAGE_ICON.PNG"), (256, "PACKAGE_ICON_256.PNG")):
    open(f"{sys.argv[1]}/{fname}", "wb").write(icon(size))
PY

mkdir -p "$out"
file="$out/$name-$arch-$dsm_version.spk"
(cd "$spk" && tar "${tarflags[@]}" -cf - INFO package.tgz scripts conf PACKAGE_ICON.PNG PACKAGE_ICON_256.PNG) >"$file.tmp"
mv -f "$file.tmp" "$file"
printf 'build-spk: %s: %d bytes, %d KiB installed\n' "${file##*/}" "$(stat -c %s "$file")" "$extract_kib" >&2
echo "$file"
