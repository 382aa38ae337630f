#!/usr/bin/env bash
# shellcheck disable=SC2016 # dpkg-query formats, bash -c scripts: literal $
# Tests a harddrive-party .deb made by build-deb.sh:
#
#   packaging/debian/test-deb.sh DEB [HOST_BIN]
#
# 1. Static: control fields, control members, file list, modes and owners
#    (dpkg-deb --info/--contents), the shipped config, sysctl and docs.
# 2. lintian: fails on any E: tag (warnings are printed).
# 3. The unit: `systemd-analyze verify` must print nothing, and
#    `systemd-analyze security --offline=true` must score <= 3.0.
# 4. Install test (root only, deb of this machine's architecture): a
#    Debian bookworm minbase chroot made by debootstrap (cached as a tarball
#    in ~/.cache/hdp-debootstrap), then dpkg -i, checks of the user, dirs,
#    conffile and unit enablement, a reinstall, a real run of the node as
#    the service user (wait for the "web UI" banner line, SIGTERM, exit 0),
#    dpkg -r, dpkg --purge (data dir gone).
#    The run step needs an ELF hdp that runs here; with a stand-in script it
#    prints SKIP (set HDP_TEST_RUN_NON_ELF=1 to run the stand-in anyway).
#    HOST_BIN: an hdp for this machine, used when the deb's own binary cannot
#    run here (another architecture, or a stand-in): the install test then
#    uses a twin .deb built from HOST_BIN with build-deb.sh.
# 5. Opt-in, HDP_TEST_NSPAWN=1: boots a bookworm container with systemd
#    (systemd-nspawn, loopback only) and checks the installed service really
#    runs under its sandbox, the client commands, README.Debian's drop-in
#    and a clean stop. Catches a syscall or path the sandbox forbids.
#
# Time (2-core VM, nearby mirror): the first run ~1.5-2 min, nearly all of
# it debootstrap and packing its tarball (~90 MB); later runs ~15 s
# (untar, lintian, dpkg, the node's run; a slow clean shutdown can add up to
# ~20 s). Step 5 adds ~5 s (~40 s and a 110 MB tarball the first time).
# Every step has a time limit.
# Needs root for the chroot part; installs lintian and debootstrap with apt
# when missing. Env: HDP_DEBIAN_MIRROR (default: from /etc/apt sources),
# HDP_DEBOOTSTRAP_CACHE (default ~/.cache/hdp-debootstrap).
# Ends with the line "N passed, N failed"; exit status 0 only if none failed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PKG=harddrive-party
UNIT=$PKG.service
DATA_DIR=/var/lib/$PKG
CONF=/etc/$PKG/config.toml
MAX_SCORE=3.0
SUITE=bookworm

if [ $# -lt 1 ] || [ $# -gt 2 ]; then echo "usage: $0 DEB [HOST_BIN]" >&2; exit 2; fi
deb=$(realpath "$1")
host_bin=${2:+$(realpath "$2")}
[ -f "$deb" ] || { echo "no such file: $deb" >&2; exit 2; }
[ -z "$host_bin" ] || [ -x "$host_bin" ] || { echo "not executable: $host_bin" >&2; exit 2; }

passed=0 failed=0
pass() { echo "PASS: $*"; passed=$((passed + 1)); }
fail() { echo "FAIL: $*"; failed=$((failed + 1)); }
skip() { echo "SKIP: $*"; }
check() { # check DESCRIPTION COMMAND...: pass if the command succeeds.
    local what=$1; shift
    if "$@"; then pass "$what"; else fail "$what"; fi
}
summary() {
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
}

# Everything this script makes or starts, undone by cleanup().
work=$(mktemp -d "${TMPDIR:-/tmp}/hdp-test-deb.XXXXXX")
root=''       # the chroot
nroot=''      # the systemd container (HDP_TEST_NSPAWN=1)
node_pid=''   # the node run inside the chroot
# drop_root DIR: unmount what is under DIR (ours, or what an interrupted
# debootstrap left), deepest first, then delete it; never through a mount.
drop_root() {
    awk -v r="$1/" 'index($2, r) == 1 { print $2 }' /proc/self/mounts | sort -r \
        | while read -r m; do umount "$m" || umount -l "$m"; done
    if grep -q " $1/" /proc/self/mounts; then
        echo "WARNING: mounts left under $1; not deleting it" >&2
    else
        rm -rf --one-file-system "$1"
    fi
}
cleanup() {
    set +e
    if [ -n "$node_pid" ] && kill -0 "$node_pid" 2>/dev/null; then
        kill -TERM "$node_pid"
        for _ in $(seq 50); do kill -0 "$node_pid" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$node_pid" 2>/dev/null
        wait "$node_pid" 2>/dev/null
    fi
    [ -z "$root" ] || drop_root "$root"
    [ -z "$nroot" ] || drop_root "$nroot"
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

apt_install() { # apt_install PACKAGE...: for tools missing on this machine.
    [ "$(id -u)" = 0 ] || { echo "need $* (apt-get install as root)" >&2; return 1; }
    DEBIAN_FRONTEND=noninteractive timeout 900 apt-get -o DPkg::Lock::Timeout=900 -qq update
    DEBIAN_FRONTEND=noninteractive timeout 900 apt-get -o DPkg::Lock::Timeout=900 -qq \
        install -y --no-install-recommends "$@" >/dev/null
}

# make_root DIR NAME PACKAGES: a $SUITE minbase root with PACKAGES (comma
# separated) in DIR, from the cached tarball NAME, made first if missing.
make_root() {
    local cache=${HDP_DEBOOTSTRAP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hdp-debootstrap}
    local tarball=$cache/$SUITE-$2-$host_arch.tar.gz mirror=${HDP_DEBIAN_MIRROR:-}
    if [ -f "$tarball" ]; then
        echo "using cached $tarball"
        tar -xzf "$tarball" --numeric-owner -C "$1"
    else
        command -v debootstrap >/dev/null || apt_install debootstrap
        if [ -z "$mirror" ]; then
            # First Debian archive URI in the apt sources (one-line or deb822).
            mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
                | sed -n -e 's/^deb \(\[[^]]*\] \)\{0,1\}\(https\{0,1\}:[^ ]*\) .*/\2/p' -e 's/^URIs: *\([^ ]*\).*/\1/p' \
                | grep -v -e security -e updates | head -n1 || true)
        fi
        mirror=${mirror:-http://deb.debian.org/debian}
        echo "debootstrap --variant=minbase --include=$3 $SUITE from $mirror (a minute or more)"
        timeout 1800 debootstrap --variant=minbase --include="$3" "$SUITE" "$1" "$mirror" \
            >"$work/debootstrap.log" 2>&1 || { tail -n 30 "$work/debootstrap.log"; exit 1; }
        mkdir -p "$cache"
        tar -czf "$tarball.tmp" --numeric-owner -C "$1" . && mv "$tarball.tmp" "$tarball"
        echo "cached $tarball"
    fi
    # mktemp made it 0700; the service user must be able to enter it.
    chmod 0755 "$1"
}

echo "== static checks of $(basename "$deb")"
info=$(dpkg-deb --info "$deb")
echo "$info"
field() { dpkg-deb --field "$deb" "$1"; }
check "Package is $PKG" test "$(field Package)" = "$PKG"
version=$(field Version)
check "Version $version is UPSTREAM-REVISION" grep -qE '^[0-9][0-9A-Za-z.+~]*-[0-9A-Za-z.+~]+$' <<<"$version"
arch=$(field Architecture)
check "Architecture $arch is amd64, arm64 or armhf" grep -qxE 'amd64|arm64|armhf' <<<"$arch"
check "Maintainer is 'Name <address>'" grep -qE '^[^<>]+ <[^@ ]+@[^@ ]+>$' <<<"$(field Maintainer)"
check "Installed-Size is a number" grep -qE '^[0-9]+$' <<<"$(field Installed-Size)"
depends=$(field Depends)
check "Depends has libc6 (>= 2.x): $depends" grep -qE '(^|, )libc6 \(>= 2\.[0-9]+\)' <<<"$depends"
check "Depends has adduser" grep -qE '(^|, )adduser(,|$)' <<<"$depends"
check "Section is net" test "$(field Section)" = net
check "Priority is optional" test "$(field Priority)" = optional
desc=$(field Description)
check "Description has a synopsis and a long text" test "$(wc -l <<<"$desc")" -ge 3

mkdir -p "$work/control" "$work/tree"
dpkg-deb --control "$deb" "$work/control"
for s in postinst prerm postrm; do
    check "control: $s is executable" test -x "$work/control/$s"
done
check "control: conffiles lists $CONF" grep -qxF "$CONF" "$work/control/conffiles"
check "control: md5sums present" test -s "$work/control/md5sums"

contents=$(dpkg-deb --contents "$deb")
echo "$contents"
# has_entry MODE PATH: a root-owned entry with these permissions.
has_entry() { awk -v m="$1" -v p="./$2" '$1 == m && $2 == "root/root" && $6 == p { f = 1 } END { exit !f }' <<<"$contents"; }
for e in \
    "-rwxr-xr-x usr/bin/hdp" \
    "-rw-r--r-- etc/$PKG/config.toml" \
    "-rw-r--r-- usr/lib/systemd/system/$UNIT" \
    "-rw-r--r-- usr/lib/sysctl.d/60-$PKG.conf" \
    "-rw-r--r-- usr/share/doc/$PKG/copyright" \
    "-rw-r--r-- usr/share/doc/$PKG/changelog.Debian.gz" \
    "-rw-r--r-- usr/share/doc/$PKG/examples/$PKG-override.conf"; do
    # shellcheck disable=SC2086 # split into mode and path
    check "contents: $e" has_entry $e
done
check "contents: README.Debian.gz" grep -qE " \./usr/share/doc/$PKG/README\.Debian\.gz$" <<<"$contents"
check "contents: everything owned by root/root" test -z "$(awk '$2 != "root/root"' <<<"$contents")"
check "contents: no $DATA_DIR (made by postinst)" test -z "$(grep -F " .$DATA_DIR" <<<"$contents" || true)"

dpkg-deb --extract "$deb" "$work/tree"
t=$work/tree
# Documentation= holds space-separated URLs.
for d in $(sed -n 's|^Documentation=||p' "$t/usr/lib/systemd/system/$UNIT" | tr '\n' ' '); do
    case "$d" in
        file://*) check "unit Documentation= $d is in the package" test -f "$t${d#file://}" ;;
    esac
done
# Uncommented keys of the shipped config: only ones the node knows.
keys=$(sed -n 's/^\([A-Za-z_]*\)[[:space:]]*=.*/\1/p' "$t$CONF")
unknown=$(grep -vxE 'http|shares|download_dir|listen|topics|peers|upload_slots|max_upload_rate|download_slots|peer_download_slots|threads|mqtt|mdns|stun|portmap|http_hosts' <<<"$keys" || true)
check "config: only known keys (unknown: ${unknown:-none})" test -z "$unknown"
for kv in 'http = "0.0.0.0:3030"' 'listen = "0.0.0.0:3031"' \
    "download_dir = \"$DATA_DIR/downloads\"" 'shares = []' 'topics = []'; do
    check "config: $kv" grep -qxF "$kv" "$t$CONF"
done
for key in net.core.rmem_max net.core.wmem_max; do
    v=$(sed -n "s/^${key}[[:space:]]*=[[:space:]]*\([0-9]*\)$/\1/p" "$t/usr/lib/sysctl.d/60-$PKG.conf")
    check "sysctl: $key = ${v:-missing} >= 2621440" test "${v:-0}" -ge 2621440
done
check "changelog.Debian.gz names $version" \
    grep -qF "$PKG ($version)" <(gzip -dc "$t/usr/share/doc/$PKG/changelog.Debian.gz")
check "copyright is DEP-5 with the MIT license" \
    grep -qx 'License: MIT' "$t/usr/share/doc/$PKG/copyright"
check "copyright has a Format: line" grep -q '^Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/' \
    "$t/usr/share/doc/$PKG/copyright"
is_elf() { [ "$(head -c4 "$1" | od -An -c | tr -d ' ')" = '177ELF' ]; }
if is_elf "$t/usr/bin/hdp"; then bin_is_elf=yes; else bin_is_elf=''; echo "NOTE: usr/bin/hdp is not ELF (a stand-in)"; fi

echo "== lintian"
command -v lintian >/dev/null || apt_install lintian
# lintian leaves temporary dirs behind: keep them in $work.
mkdir -p "$work/lintian-tmp"
lintian_out=$(TMPDIR=$work/lintian-tmp timeout 600 lintian --tag-display-limit 0 "$deb" 2>&1 || true)
echo "$lintian_out"
errors=$(grep -c '^E: ' <<<"$lintian_out" || true)
warnings=$(grep -c '^W: ' <<<"$lintian_out" || true)
check "lintian: $errors errors ($warnings warnings)" test "$errors" -eq 0

echo "== systemd unit"
command -v systemd-analyze >/dev/null || apt_install systemd
# verify needs the standard targets: a root with this machine's units, the
# package's files (with its hdp as the ExecStart binary) on top.
vroot=$work/vroot
mkdir -p "$vroot/usr/lib/systemd/system" "$vroot/tmp" "$vroot/etc"
cp -a /usr/lib/systemd/system/. "$vroot/usr/lib/systemd/system/"
dpkg-deb --extract "$deb" "$vroot"
verify_out=$(timeout 120 systemd-analyze verify --root="$vroot" "$UNIT" 2>&1) && rc=0 || rc=$?
[ -z "$verify_out" ] || echo "$verify_out"
check "systemd-analyze verify: exit $rc, no messages" test "$rc" -eq 0 -a -z "$verify_out"
sec_out=$(timeout 120 systemd-analyze security --offline=true --root="$vroot" "$UNIT" 2>&1 || true)
grep -E '^✗' <<<"$sec_out" || true
score=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' <<<"$sec_out")
echo "systemd-analyze security exposure score: ${score:-none}"
check "security score ${score:-none} <= $MAX_SCORE" \
    awk -v s="${score:-99}" -v m="$MAX_SCORE" 'BEGIN { exit !(s + 0 <= m + 0) }'

echo "== install test in a $SUITE chroot"
host_arch=$(dpkg --print-architecture)
install_deb='' run_node='' run_elf=''
if [ "$(id -u)" != 0 ]; then
    skip "install test (needs root)"
elif [ "$arch" = "$host_arch" ] && [ -n "$bin_is_elf" ]; then
    install_deb=$deb run_node=yes run_elf=yes
elif [ -n "$host_bin" ]; then
    # A twin for this machine from HOST_BIN: same version, same glibc floor.
    floor=$(sed -n 's/.*libc6 (>= \([0-9.]*\)).*/\1/p' <<<"$depends")
    echo "the deb's hdp cannot run here; testing a $host_arch twin built from $host_bin"
    install_deb=$("$here/build-deb.sh" --arch "$host_arch" --bin "$host_bin" \
        --version "${version%-*}" --revision "${version##*-}" --glibc-floor "$floor" --out "$work/twin")
    if is_elf "$host_bin"; then run_node=yes run_elf=yes; fi
    if [ "${HDP_TEST_RUN_NON_ELF:-}" = 1 ]; then run_node=yes; fi
elif [ "$arch" = "$host_arch" ]; then
    install_deb=$deb
    if [ "${HDP_TEST_RUN_NON_ELF:-}" = 1 ]; then run_node=yes; fi
else
    skip "install test ($arch deb on a $host_arch machine; pass HOST_BIN to test a twin)"
fi

if [ -n "$install_deb" ]; then
    root=$(mktemp -d "${TMPDIR:-/tmp}/hdp-chroot.XXXXXX")
    # adduser: the package depends on it and dpkg -i does not fetch it.
    make_root "$root" minbase adduser
    mount -t proc proc "$root/proc"
    if [ ! -c "$root/dev/null" ] || [ ! -c "$root/dev/urandom" ]; then
        mount --bind /dev "$root/dev"
    fi
    # in_root CMD...: run in the chroot with a clean environment, bounded.
    in_root() {
        timeout 300 chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
            LC_ALL=C DEBIAN_FRONTEND=noninteractive HOME=/root "$@"
    }
    cp "$install_deb" "$root/tmp/$PKG.deb"

    check "dpkg -i" in_root dpkg -i "/tmp/$PKG.deb"
    check "package installed" test "$(in_root dpkg-query -W -f='${Status}' "$PKG")" = "install ok installed"
    pw=$(in_root getent passwd "$PKG" || true)
    echo "passwd: $pw"
    check "user $PKG exists with home $DATA_DIR" grep -qE "^$PKG:x:[0-9]+:[0-9]+:[^:]*:$DATA_DIR:" <<<"$pw"
    check "user $PKG is a system user (uid < 1000)" test "$(cut -d: -f3 <<<"$pw")" -lt 1000
    check "group $PKG exists" in_root getent group "$PKG"
    # owner_mode PATH: "user:group mode" inside the chroot.
    owner_mode() { in_root stat -c '%U:%G %a' "$1" 2>/dev/null || echo missing; }
    check "$DATA_DIR is $PKG:$PKG 750 ($(owner_mode $DATA_DIR))" \
        test "$(owner_mode $DATA_DIR)" = "$PKG:$PKG 750"
    check "$DATA_DIR/downloads is $PKG:$PKG 750 ($(owner_mode $DATA_DIR/downloads))" \
        test "$(owner_mode $DATA_DIR/downloads)" = "$PKG:$PKG 750"
    conffiles=$(in_root dpkg-query -W -f='${Conffiles}' "$PKG")
    echo "conffiles:$conffiles"
    check "conffile $CONF registered" grep -qE "^ $CONF [0-9a-f]{32}$" <<<"$conffiles"
    wants=$root/etc/systemd/system/multi-user.target.wants/$UNIT
    if [ -x "$root/usr/bin/deb-systemd-helper" ]; then
        check "unit enabled (multi-user.target.wants link)" test -L "$wants"
    else
        skip "unit enablement (no deb-systemd-helper in the chroot)"
    fi
    ver_out=$(in_root /usr/bin/hdp --version 2>&1) && rc=0 || rc=$?
    echo "hdp --version: $ver_out"
    check "hdp --version runs" test "$rc" -eq 0
    grep -qF "${version%-*}" <<<"$ver_out" || echo "WARNING: hdp --version does not say ${version%-*}"

    # Reinstall: the upgrade path of the maintainer scripts, all idempotent.
    check "dpkg -i again (reinstall)" in_root dpkg -i "/tmp/$PKG.deb"
    check "$DATA_DIR still $PKG:$PKG 750 after reinstall" \
        test "$(owner_mode $DATA_DIR)" = "$PKG:$PKG 750"

    if [ -z "$run_node" ]; then
        skip "running the node (hdp is not an ELF binary for $host_arch; HDP_TEST_RUN_NON_ELF=1 forces it)"
    else
        if ! in_root /usr/bin/hdp start --help 2>&1 | grep -q -- '--config'; then
            fail "hdp start --help shows no --config (the unit's ExecStart needs it)"
        fi
        out=$work/node.out err=$work/node.err
        # The unit's command line, with loopback ports chosen by the kernel
        # and no discovery traffic. chroot and env exec, so $! is the node.
        chroot --userspec="$PKG:$PKG" "$root" /usr/bin/env -i PATH=/usr/bin:/bin \
            HOME=$DATA_DIR /usr/bin/hdp start --data-dir "$DATA_DIR" --config "$CONF" \
            --http 127.0.0.1:0 --listen 127.0.0.1:0 --mqtt off --no-mdns \
            </dev/null >"$out" 2>"$err" &
        node_pid=$!
        started=''
        for _ in $(seq 300); do # 60 s
            if grep -q 'web UI' "$out"; then started=yes; break; fi
            kill -0 "$node_pid" 2>/dev/null || break
            sleep 0.2
        done
        cat "$out"
        check "node printed the web UI banner" test -n "$started"
        if [ -n "$started" ] && [ -n "$run_elf" ]; then
            # The HTTP server answers on the address in the banner.
            hostport=$(sed -n 's|.*web UI *http://\([0-9.]*:[0-9]*\)/.*|\1|p' "$out" | head -n1)
            reply=$(timeout 10 bash -c 'exec 3<>"/dev/tcp/${1%:*}/${1##*:}"
                printf "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" "$1" >&3
                head -n1 <&3' _ "$hostport" 2>&1 || true)
            check "web UI on $hostport answers HTTP: ${reply%$'\r'}" grep -q '^HTTP/1\.[01] [0-9]' <<<"$reply"
        fi
        kill -TERM "$node_pid" 2>/dev/null || true
        for _ in $(seq 225); do # 45 s
            kill -0 "$node_pid" 2>/dev/null || break
            sleep 0.2
        done
        if kill -0 "$node_pid" 2>/dev/null; then
            fail "node still running 45 s after SIGTERM; killing it"
            kill -KILL "$node_pid" 2>/dev/null || true
        fi
        wait "$node_pid" && rc=0 || rc=$?
        node_pid=''
        echo "--- node stderr (last 20 lines)"; tail -n 20 "$err"; echo "---"
        check "node exited 0 after SIGTERM (exit $rc)" test "$rc" -eq 0
        not_ours=$(in_root find "$DATA_DIR" ! -user "$PKG" 2>/dev/null || true)
        check "everything in $DATA_DIR belongs to $PKG" test -z "$not_ours"
        check "$DATA_DIR still 750 after a run" test "$(owner_mode $DATA_DIR)" = "$PKG:$PKG 750"
    fi

    check "dpkg -r" in_root dpkg -r "$PKG"
    check "after remove: $DATA_DIR kept" test -d "$root$DATA_DIR"
    check "after remove: $CONF kept" test -f "$root$CONF"
    check "dpkg --purge" in_root dpkg --purge "$PKG"
    check "after purge: $DATA_DIR gone" test ! -e "$root$DATA_DIR"
    check "after purge: /etc/$PKG gone" test ! -e "$root/etc/$PKG"
    check "after purge: no unit links left" \
        test -z "$(find "$root/etc/systemd" -name "$UNIT" 2>/dev/null)"
    status=$(in_root dpkg-query -W -f='${Status}' "$PKG" 2>/dev/null || true)
    check "after purge: package not installed (${status:-unknown to dpkg})" \
        grep -qE '^$|not-installed$' <<<"$status"
    in_root getent passwd "$PKG" >/dev/null && echo "NOTE: user $PKG is kept after purge (Debian practice)"
fi

# 5. Opt-in (HDP_TEST_NSPAWN=1): boot a bookworm container with systemd,
# install the deb, and let a oneshot unit inside check the real service:
# running under its sandbox (seccomp, no capabilities), the client commands,
# the README's drop-in, and a clean stop. No network but loopback.
if [ "${HDP_TEST_NSPAWN:-}" != 1 ]; then
    skip "booting the unit under systemd (set HDP_TEST_NSPAWN=1)"
elif [ -z "$install_deb" ] || [ -z "$run_elf" ]; then
    skip "booting the unit under systemd (needs an ELF hdp for this machine)"
else
    echo "== the service under systemd, in a container"
    command -v systemd-nspawn >/dev/null || apt_install systemd-container
    nroot=$(mktemp -d "${TMPDIR:-/tmp}/hdp-nspawn.XXXXXX")
    make_root "$nroot" systemd adduser,systemd,systemd-sysv,dbus
    cp "$install_deb" "$nroot/tmp/$PKG.deb"
    check "nspawn: dpkg -i" timeout 300 chroot "$nroot" /usr/bin/env -i \
        PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive dpkg -i "/tmp/$PKG.deb"
    # No MQTT; mDNS stays on (loopback only: the container has no other link).
    sed -i 's|^#mqtt = .*|mqtt = "off"|' "$nroot$CONF"
    # The shipped example drop-in (README.Debian's), for a disk at /media/usb.
    mkdir -p "$nroot/etc/systemd/system/$UNIT.d" "$nroot/media/usb/downloads" "$nroot/media/usb/films"
    sed -n '/^#\[Unit\]/,$p' "$t/usr/share/doc/$PKG/examples/$PKG-override.conf" | sed -e '/^##/d' -e 's/^#//' \
        >"$nroot/etc/systemd/system/$UNIT.d/override.conf"
    echo film >"$nroot/media/usb/films/a.mkv"
    chroot "$nroot" chown "$PKG:$PKG" /media/usb/downloads
    cat >"$nroot/usr/local/bin/hdp-check" <<'CHECK'
#!/bin/sh
# Runs inside the container: KEY=VALUE lines for test-deb.sh, then power off.
exec >/root/hdp-check.out 2>&1
as() { runuser -u harddrive-party -- "$@"; }
for _ in $(seq 30); do
    journalctl -u harddrive-party -o cat | grep -q 'web UI' && break; sleep 1
done
echo "active=$(systemctl is-active harddrive-party)"
pid=$(systemctl show -p MainPID --value harddrive-party)
echo "seccomp=$(sed -n 's/^Seccomp:[[:space:]]*//p' /proc/$pid/status)"
echo "capeff=$(sed -n 's/^CapEff:[[:space:]]*//p' /proc/$pid/status)"
echo "nonewprivs=$(sed -n 's/^NoNewPrivs:[[:space:]]*//p' /proc/$pid/status)"
as hdp info --data-dir /var/lib/harddrive-party >/dev/null && echo "info=ok"
as hdp link --data-dir /var/lib/harddrive-party | grep -q '#token=' && echo "link=ok"
as hdp shares add /media/usb/films --data-dir /var/lib/harddrive-party >/dev/null && echo "share=ok"
for f in /media/usb/downloads /var/lib/harddrive-party/downloads /media/usb /srv /home; do
    if nsenter -t "$pid" -m runuser -u harddrive-party -- touch "$f/.w" 2>/dev/null; then
        echo "writable:$f=yes"
    else
        echo "writable:$f=no"
    fi
done
systemctl stop harddrive-party
echo "stop=$(systemctl show -p Result --value harddrive-party)/$(systemctl show -p ExecMainStatus --value harddrive-party)"
echo "--- journal"
journalctl -u harddrive-party -o cat | sed 's/\x1b\[[0-9;]*m//g' | tail -n 30
systemctl poweroff
CHECK
    chmod 0755 "$nroot/usr/local/bin/hdp-check"
    printf '%s\n' '[Unit]' "After=$UNIT multi-user.target" '[Service]' 'Type=oneshot' \
        'ExecStart=/usr/local/bin/hdp-check' '[Install]' 'WantedBy=multi-user.target' \
        >"$nroot/etc/systemd/system/hdp-check.service"
    mkdir -p "$nroot/etc/systemd/system/multi-user.target.wants"
    ln -s /etc/systemd/system/hdp-check.service "$nroot/etc/systemd/system/multi-user.target.wants/"
    # --keep-unit/--register=no: needs no systemd on the host; the unified
    # cgroup hierarchy lets systemd boot inside on a cgroup-v1 host too.
    SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 timeout -k 20 180 systemd-nspawn -q -D "$nroot" --private-network \
        --register=no --keep-unit --console=pipe -b </dev/null >"$work/nspawn.log" 2>&1 || true
    res=$nroot/root/hdp-check.out
    if [ -f "$res" ]; then cat "$res"; else tail -n 30 "$work/nspawn.log"; fi
    got() { grep -qxF "$1" "$res" 2>/dev/null; }
    check "nspawn: service active under systemd" got active=active
    check "nspawn: seccomp filter on" got seccomp=2
    check "nspawn: no capabilities" got capeff=0000000000000000
    check "nspawn: no new privileges" got nonewprivs=1
    check "nspawn: hdp info as the service user" got info=ok
    check "nspawn: hdp link prints a login link" got link=ok
    check "nspawn: shares a dir on /media/usb" got share=ok
    check "nspawn: drop-in makes /media/usb/downloads writable" got writable:/media/usb/downloads=yes
    check "nspawn: data dir writable" got writable:/var/lib/harddrive-party/downloads=yes
    for f in /media/usb /srv /home; do
        check "nspawn: $f read-only for the service" got "writable:$f=no"
    done
    check "nspawn: systemctl stop: success, exit 0" got stop=success/0
fi

summary
