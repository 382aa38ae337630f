#!/usr/bin/env bash
# Checks harddrive-party's OpenWrt (.ipk) and Synology (.spk) packages:
#
#   packaging/test-ipk-spk.sh [--hdp BIN | --fake-hdp] [--self-test] PKG...
#
# Unpacks each package in a temp dir and checks its layout as opkg and DSM 7
# read it: every control/INFO field, conffiles, scripts (executable, `sh -n`
# under dash, bash and busybox sh), privilege and resource JSON, the .sc port
# file, icons, and that the binary is an ELF of the declared architecture
# (static for OpenWrt). Then it runs what it can:
#  - .ipk: the init script's start_service under a stub UCI and procd
#    (several configs, tricky strings included) and checks the generated TOML
#    and the procd instance;
#  - .spk: scripts/postinst and start-stop-status start / status / stop /
#    status / log in a temp SYNOPKG_PKGVAR, expecting 3 / 0 / 0 / 0 / 3, with
#    a loopback-only config (mqtt off, mdns off, port 0). It runs the
#    packaged binary when this machine can, else BIN (--hdp) or a shell fake
#    (--fake-hdp); otherwise it says SKIP.
# --self-test also deletes a field from each package and expects failures.
# Exits 1 if any check fails.
set -euo pipefail
exec python3 - "$@" <<'PY'
import argparse, ctypes, gzip, io, json, os, platform, re, shutil, signal, struct
import subprocess, sys, tarfile, tempfile, time, tomllib, zlib

NAME = "harddrive-party"
NODE_KEYS = {"http", "shares", "download_dir", "listen", "topics", "peers", "upload_slots",
             "max_upload_rate", "max_download_rate", "download_slots", "peer_download_slots", "threads", "mqtt",
             "mdns", "stun", "portmap", "http_hosts"}


class Report:
    def __init__(self, label, quiet=False):
        self.label, self.quiet, self.fails = label, quiet, []

    def check(self, cond, msg):
        if not cond:
            self.fails.append(msg)
        if not self.quiet:
            print(f"  {'ok  ' if cond else 'FAIL'} {msg}")
        return cond

    def note(self, msg):
        if not self.quiet:
            print(f"  {msg}")


def run(cmd, **kw):
    kw.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def shells():
    found = [["sh"]]
    if shutil.which("bash"):
        found.append(["bash"])
    if shutil.which("busybox"):
        found.append(["busybox", "sh"])
    return found


def syntax_ok(r, path, label, which=None):
    for sh in which or shells():
        p = run(sh + ["-n", path])
        r.check(p.returncode == 0, f"{label} passes {' '.join(sh)} -n" + (f": {p.stderr.strip()}" if p.returncode else ""))


def executable(path):
    return os.path.isfile(path) and os.stat(path).st_mode & 0o111 == 0o111


# ---- ELF ---------------------------------------------------------------------
def elf_info(data):
    if len(data) < 52 or data[:4] != b"\x7fELF" or data[5] != 1:
        return None
    u16 = lambda o: struct.unpack_from("<H", data, o)[0]
    u32 = lambda o: struct.unpack_from("<I", data, o)[0]
    u64 = lambda o: struct.unpack_from("<Q", data, o)[0]
    bits = 64 if data[4] == 2 else 32
    if bits == 64:
        phoff, shoff, flags = u64(32), u64(40), u32(48)
        phentsize, phnum, shentsize, shnum = u16(54), u16(56), u16(58), u16(60)
    else:
        phoff, shoff, flags = u32(28), u32(32), u32(36)
        phentsize, phnum, shentsize, shnum = u16(42), u16(44), u16(46), u16(48)
    try:
        interp = any(u32(phoff + i * phentsize) == 3 for i in range(phnum))
        symtab = any(u32(shoff + i * shentsize + 4) == 2 for i in range(shnum))
    except struct.error:
        return None
    return {"bits": bits, "machine": u16(18), "flags": flags, "static": not interp, "stripped": not symtab}


def elf_family(info):
    if not info:
        return "not an ELF"
    if info["machine"] == 62 and info["bits"] == 64:
        return "x86_64"
    if info["machine"] == 183 and info["bits"] == 64:
        return "aarch64"
    if info["machine"] == 40 and info["bits"] == 32:
        return "armhf" if info["flags"] & 0x400 else "armel"
    return f"machine {info['machine']}/{info['bits']}-bit"


# ---- archives -----------------------------------------------------------------
def tar_problems(raw, owners=True):
    """What opkg/DSM's simple tar readers would trip on: non-ustar/GNU headers
    (pax), odd entry types, owners other than 0:0."""
    out = []
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as t:
        for m in t.getmembers():
            h = raw[m.offset:m.offset + 512]
            if h[257:262] != b"ustar":
                out.append(f"{m.name}: not a ustar/GNU header")
            if h[156:157] not in (b"0", b"\0", b"5", b"2", b"L"):
                out.append(f"{m.name}: tar entry type {h[156:157]!r}")
            if owners and (m.uid, m.gid) != (0, 0):
                out.append(f"{m.name}: owner {m.uid}:{m.gid}, not 0:0")
    return out


def untar(raw, dest):
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as t:
        t.extractall(dest, filter="data")


def gunzip(r, raw, what):
    if not r.check(raw[:2] == b"\x1f\x8b", f"{what} is gzip-compressed"):
        return None
    return gzip.decompress(raw)


def members(raw):
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as t:
        return [m.name for m in t.getmembers()]


# ---- .ipk ------------------------------------------------------------------------
def unpack_ipk(r, path, root):
    raw = gunzip(r, open(path, "rb").read(), "the .ipk (outer archive)")
    if raw is None:
        return False
    r.check(not tar_problems(raw), f"outer tar is plain ustar/GNU, 0:0 {tar_problems(raw) or ''}")
    names = sorted(n[2:] if n.startswith("./") else n for n in members(raw))
    if not r.check(names == ["control.tar.gz", "data.tar.gz", "debian-binary"],
                   f"outer tar holds debian-binary, control.tar.gz, data.tar.gz (has {names})"):
        return False
    untar(raw, f"{root}/outer")
    for part in ("control", "data"):
        inner = gunzip(r, open(f"{root}/outer/{part}.tar.gz", "rb").read(), f"{part}.tar.gz")
        if inner is None:
            return False
        probs = tar_problems(inner)
        r.check(not probs, f"{part}.tar.gz is plain ustar/GNU, 0:0 {probs or ''}")
        untar(inner, f"{root}/{part}")
    return True


def parse_control(text):
    fields, last = {}, None
    for line in text.splitlines():
        if line[:1] in (" ", "\t") and last:
            fields[last] += "\n" + line.strip()
        elif ":" in line:
            last, _, v = line.partition(":")
            fields[last] = v.strip()
    return fields


def check_ipk_dir(r, root, filename):
    data, ctl = f"{root}/data", f"{root}/control"
    r.check(open(f"{root}/outer/debian-binary").read() == "2.0\n", "debian-binary is 2.0")
    f = parse_control(open(f"{ctl}/control").read()) if os.path.exists(f"{ctl}/control") else {}
    for k in ("Package", "Version", "Architecture", "Maintainer", "Description", "Section",
              "License", "Installed-Size", "Source", "Require-User"):
        r.check(bool(f.get(k)), f"control has {k}" + (f": {f[k].splitlines()[0]}" if f.get(k) else ""))
    arch = f.get("Architecture", "")
    r.check(f.get("Package") == NAME, f"Package is {NAME}")
    r.check(bool(re.fullmatch(r"\d+(\.\d+)*-\d+", f.get("Version", ""))), "Version is X.Y.Z-N")
    r.check(filename == f"{f.get('Package')}_{f.get('Version')}_{arch}.ipk", f"file name {filename} is Package_Version_Architecture.ipk")
    r.check("libc" not in f.get("Depends", ""), "no libc dependency (static binary)")
    r.check(NAME in f.get("Require-User", ""), f"Require-User names {NAME}")
    size = sum(os.path.getsize(os.path.join(d, n)) for d, _, ns in os.walk(data) for n in ns)
    r.check(f.get("Installed-Size") == str(size), f"Installed-Size {f.get('Installed-Size')} = {size} bytes of data")
    conff = open(f"{ctl}/conffiles").read().split() if os.path.exists(f"{ctl}/conffiles") else []
    r.check(f"/etc/config/{NAME}" in conff, f"conffiles lists /etc/config/{NAME}")
    for c in conff:
        r.check(c.startswith("/") and os.path.isfile(data + c), f"conffile {c} is in the package")
    for s in ("postinst", "prerm", "postrm"):
        p = f"{ctl}/{s}"
        if r.check(executable(p), f"control/{s} is executable"):
            syntax_ok(r, p, f"control/{s}", [["sh"]] + ([["busybox", "sh"]] if shutil.which("busybox") else []))
    r.check("default_postinst" in open(f"{ctl}/postinst").read() if os.path.exists(f"{ctl}/postinst") else False,
            "postinst runs default_postinst (user, enable, start)")
    init, cfg, hdp = f"{data}/etc/init.d/{NAME}", f"{data}/etc/config/{NAME}", f"{data}/usr/bin/hdp"
    if r.check(executable(init), f"/etc/init.d/{NAME} is executable"):
        text = open(init).read()
        r.check(text.startswith("#!/bin/sh /etc/rc.common\n"), "init script runs under /etc/rc.common")
        for needle in ("USE_PROCD=1", "START=", "procd_set_param user", "procd_set_param respawn",
                       "procd_set_param term_timeout", "procd_set_param stdout 1", "procd_set_param stderr 1",
                       "procd_add_reload_trigger", "--config"):
            r.check(needle in text, f"init script has {needle}")
        syntax_ok(r, init, "init script", [["sh"]] + ([["busybox", "sh"]] if shutil.which("busybox") else []))
    r.check(os.path.isfile(cfg) and "config node 'main'" in open(cfg).read(), f"/etc/config/{NAME} has config node 'main'")
    if r.check(executable(hdp), "/usr/bin/hdp is executable"):
        info = elf_info(open(hdp, "rb").read())
        fam = elf_family(info)
        want = ("x86_64" if arch == "x86_64" else "aarch64" if arch.startswith("aarch64_")
                else "armhf" if arch.startswith("arm_") and ("vfp" in arch or "neon" in arch) else "?")
        r.check(fam == want, f"hdp is {fam}, {arch} needs {want}")
        r.check(bool(info and info["static"]), "hdp is static (no ELF interpreter)")
        if info and not info["stripped"]:
            r.note("note: hdp is not stripped")


# A stub UCI (the calls of OpenWrt's functions.sh the init script makes) and
# procd, so that start_service runs on this machine.
UCI_HARNESS = r'''
INIT=$1 HARNESS_UCI=$2 HARNESS_MOUNTS=$3 OUT=$4
config() { UCI_SEC=$2; }
option() { eval "UCI_${UCI_SEC}_$1=\$2"; }
list() {
	eval "_n=\${UCI_${UCI_SEC}_$1_N:-0}"
	_n=$((_n + 1))
	eval "UCI_${UCI_SEC}_$1_N=\$_n; UCI_${UCI_SEC}_$1_$_n=\$2"
}
config_load() {
	for _v in $(set | sed -n 's/^\(UCI_[A-Za-z0-9_]*\)=.*/\1/p'); do unset "$_v"; done
	. "$HARNESS_UCI"
}
config_get() { eval "$1=\${UCI_$2_$3:-\${4-}}"; }
config_list_foreach() {
	_sec=$1 _opt=$2 _fn=$3
	shift 3
	eval "_cnt=\${UCI_${_sec}_${_opt}_N:-0}"
	_i=1
	while [ "$_i" -le "$_cnt" ]; do
		eval "_val=\$UCI_${_sec}_${_opt}_$_i"
		"$_fn" "$_val" "$@"
		_i=$((_i + 1))
	done
}
rec() { printf '%s' "$1" >>"$OUT/procd"; shift; for _a in "$@"; do printf ' <%s>' "$_a" >>"$OUT/procd"; done; echo >>"$OUT/procd"; }
procd_open_instance() { rec open_instance; }
procd_close_instance() { rec close_instance; }
procd_set_param() { rec param "$@"; }
procd_add_reload_trigger() { rec reload_trigger "$@"; }
procd_add_restart_mount_trigger() { rec mount_trigger "$@"; }
logger() { printf 'logger %s\n' "$*" >>"$OUT/log"; }
id() { case "$*" in "-u harddrive-party") echo 4242 ;; "-u root") echo 0 ;; *) return 1 ;; esac; }
chown() { printf 'chown %s\n' "$*" >>"$OUT/log"; }
mkdir() { printf 'mkdir %s\n' "$*" >>"$OUT/log"; }
. "$INIT"
HDP_TOML=$OUT/run/harddrive-party.toml
HDP_MOUNTS=$HARNESS_MOUNTS
start_service 2>>"$OUT/log"
rec rc "$?"
service_triggers
'''

MOUNTS = ("overlayfs:/overlay / overlay rw 0 0\n/dev/ubi0_1 /overlay ubifs rw 0 0\n"
          "tmpfs /tmp tmpfs rw 0 0\n/dev/sda1 /mnt/sda1 ext4 rw 0 0\n"
          "/dev/sdb1 /mnt/usb\\040disk ext4 rw 0 0\n/dev/sdc1 /mnt/usb ext4 rw 0 0\n")

TRICKY = r"""
config node 'main'
	option enabled 'yes'
	option data_dir '/mnt/usb disk/hdp "data"'
	option download_dir '/mnt/usb/dl\back'
	option http '0.0.0.0:3030'
	option listen '[::]:3031'
	list share '/mnt/usb disk/music'
	list share '/mnt/usb/it'\''s "quoted" \ back\\slash'
	list share '/mnt/usb/ünïcødé ♫'
	list topic 'our band'
	list peer 'friend.example.org:3031'
	list peer '[2001:db8::1]:3031'
	list http_host 'openwrt.lan'
	option mqtt 'off'
	option mdns 'no'
	option max_upload_rate '8M'
	option max_download_rate '16M'
	option upload_slots '007'
	option download_slots '4'
	option peer_download_slots '2'
	option threads '1'
"""
TRICKY_TOML = {
    "download_dir": "/mnt/usb/dl\\back", "http": "0.0.0.0:3030", "listen": "[::]:3031",
    "shares": ["/mnt/usb disk/music", "/mnt/usb/it's \"quoted\" \\ back\\\\slash", "/mnt/usb/ünïcødé ♫"],
    "topics": ["our band"], "peers": ["friend.example.org:3031", "[2001:db8::1]:3031"],
    "http_hosts": ["openwrt.lan"], "mqtt": "off", "mdns": False, "max_upload_rate": "8M",
    "max_download_rate": "16M",
    "upload_slots": 7, "download_slots": 4, "peer_download_slots": 2, "threads": 1,
}


def busybox_path(tmp):
    """A PATH whose text tools are busybox applets, as on OpenWrt."""
    d = f"{tmp}/busybox-bin"
    os.makedirs(d, exist_ok=True)
    bb = shutil.which("busybox")
    for tool in ("awk", "sed", "tr", "ls", "cat", "mv", "rm", "chmod", "grep", "printf"):
        if not os.path.exists(f"{d}/{tool}"):
            os.symlink(bb, f"{d}/{tool}")
    return d + os.pathsep + os.environ["PATH"]


def uci_case(r, tmp, init, shell, label, config, mounts=MOUNTS):
    case = tempfile.mkdtemp(dir=tmp, prefix="uci-")
    os.makedirs(f"{case}/run")
    open(f"{case}/uci", "w").write(config)
    open(f"{case}/mounts", "w").write(mounts)
    open(f"{case}/harness.sh", "w").write(UCI_HARNESS)
    env = dict(os.environ)
    if shell[0] == "busybox":
        env["PATH"] = busybox_path(tmp)
    p = run(shell + [f"{case}/harness.sh", init, f"{case}/uci", f"{case}/mounts", case], env=env)
    procd = open(f"{case}/procd").read().splitlines() if os.path.exists(f"{case}/procd") else []
    log = open(f"{case}/log").read() if os.path.exists(f"{case}/log") else ""
    params = {}
    for line in procd:
        if line.startswith("param "):
            parts = re.findall(r"<(.*?)>", line)
            params[parts[0]] = parts[1:]
    rc = next((re.findall(r"<(.*?)>", l)[0] for l in procd if l.startswith("rc ")), None)
    toml_path = f"{case}/run/harddrive-party.toml"
    toml = None
    if os.path.exists(toml_path):
        try:
            toml = tomllib.load(open(toml_path, "rb"))
        except tomllib.TOMLDecodeError as e:
            r.check(False, f"[{label}] generated TOML parses: {e}")
    return {"rc": rc, "params": params, "instance": "open_instance" in procd, "toml": toml,
            "toml_path": toml_path, "log": log, "procd": procd, "stderr": p.stderr, "case": case}


def check_ipk_runtime(r, root, tmp):
    init = f"{root}/data/etc/init.d/{NAME}"
    shipped = open(f"{root}/data/etc/config/{NAME}").read()
    enabled = shipped.replace("option enabled '0'", "option enabled '1'")
    for sh in [["sh"]] + ([["busybox", "sh"]] if shutil.which("busybox") else []):
        s = " ".join(sh)
        c = uci_case(r, tmp, init, sh, s, shipped)
        r.check(c["rc"] == "0" and not c["instance"] and "disabled" in c["log"],
                f"[{s}] shipped config: service idle until enabled (rc {c['rc']}) {c['stderr'].strip()[-200:]}")
        r.check(any(l == f"reload_trigger <{NAME}>" for l in c["procd"]), f"[{s}] reload trigger on /etc/config/{NAME}")
        c = uci_case(r, tmp, init, sh, s, enabled)
        want = {"download_dir": "/mnt/sda1/harddrive-party/downloads", "http": "0.0.0.0:3030",
                "listen": "0.0.0.0:3031", "mdns": True}
        r.check(c["rc"] == "0" and c["instance"], f"[{s}] shipped config, enabled: an instance (rc {c['rc']}) {c['stderr'].strip()}")
        r.check(c["toml"] == want, f"[{s}] shipped config, enabled: TOML {c['toml']}")
        p = c["params"]
        r.check(p.get("command") == ["/usr/bin/hdp", "start", "--data-dir", "/mnt/sda1/harddrive-party",
                                     "--config", c["toml_path"]], f"[{s}] command {p.get('command')}")
        r.check(p.get("user") == [NAME], f"[{s}] runs as user {p.get('user')}")
        r.check("respawn" in p and p.get("stdout") == ["1"] and p.get("stderr") == ["1"],
                f"[{s}] respawn, stdout and stderr to logd")
        r.check(int((p.get("term_timeout") or ["0"])[0]) >= 25, f"[{s}] stop timeout {p.get('term_timeout')} s")
        r.check(p.get("file") == [c["toml_path"]], f"[{s}] restarts when the TOML changes")
        r.check(os.path.exists(c["toml_path"]) and os.stat(c["toml_path"]).st_mode & 0o777 == 0o600,
                f"[{s}] TOML is mode 0600")
        c = uci_case(r, tmp, init, sh, s, TRICKY)
        r.check(c["rc"] == "0" and c["instance"], f"[{s}] tricky strings: an instance (rc {c['rc']}) {c['stderr'].strip()}")
        r.check(c["toml"] == TRICKY_TOML, f"[{s}] tricky strings round-trip through TOML" +
                ("" if c["toml"] == TRICKY_TOML else f": {c['toml']}"))
        r.check(c["toml"] is not None and set(c["toml"]) <= NODE_KEYS, f"[{s}] only keys the node knows")
        r.check((c["params"].get("command") or [None] * 4)[3] == '/mnt/usb disk/hdp "data"', f"[{s}] data dir with space and quotes")
        bad = TRICKY.replace("list topic 'our band'", "list topic 'our\nband'")
        c = uci_case(r, tmp, init, sh, s, bad)
        r.check(c["rc"] not in (None, "0") and not c["instance"] and not os.path.exists(c["toml_path"]) and
                not os.path.exists(c["toml_path"] + ".new"), f"[{s}] a newline in a value is refused (rc {c['rc']})")
        c = uci_case(r, tmp, init, sh, s, TRICKY.replace("option upload_slots '007'", "option upload_slots 'four'"))
        r.check(c["rc"] not in (None, "0") and not c["instance"], f"[{s}] a non-number upload_slots is refused")
        flash = enabled.replace("/mnt/sda1/harddrive-party", "/srv/harddrive-party")
        c = uci_case(r, tmp, init, sh, s, flash)
        r.check(c["rc"] not in (None, "0") and not c["instance"] and "flash" in c["log"],
                f"[{s}] data_dir on the router's flash is refused")
        c = uci_case(r, tmp, init, sh, s, flash + "\toption allow_rootfs '1'\n\toption user 'root'\n")
        r.check(c["rc"] == "0" and c["instance"] and "user" not in c["params"],
                f"[{s}] allow_rootfs '1' and user 'root': started, no user switch")
        c = uci_case(r, tmp, init, sh, s, enabled.replace("/mnt/sda1/harddrive-party", "/mnt/a\\b/hdp"),
                     mounts=MOUNTS + "/dev/sdd1 /mnt/a\\134b ext4 rw 0 0\n")
        r.check(c["rc"] == "0" and c["instance"], f"[{s}] a backslash in the mount point's name")
        c = uci_case(r, tmp, init, sh, s, enabled, mounts="overlayfs:/overlay / overlay rw 0 0\n")
        r.check(c["rc"] not in (None, "0") and not c["instance"], f"[{s}] disk not mounted: refused")


# ---- .spk ------------------------------------------------------------------------
SPK_FILES = ["INFO", "package.tgz", "PACKAGE_ICON.PNG", "PACKAGE_ICON_256.PNG", "conf/privilege", "conf/resource"]
SPK_SCRIPTS = ["preinst", "postinst", "preuninst", "postuninst", "preupgrade", "postupgrade", "start-stop-status"]


def unpack_spk(r, path, root):
    raw = open(path, "rb").read()
    r.check(raw[:2] != b"\x1f\x8b", "the .spk is an uncompressed tar")
    try:
        probs = tar_problems(raw)
    except tarfile.TarError as e:
        r.check(False, f"the .spk is a tar: {e}")
        return False
    r.check(not probs, f"spk tar is plain ustar/GNU, 0:0 {probs or ''}")
    untar(raw, root)
    if os.path.isfile(f"{root}/package.tgz"):
        inner = gunzip(r, open(f"{root}/package.tgz", "rb").read(), "package.tgz")
        if inner is not None:
            untar(inner, f"{root}/target")
    return True


def parse_info(text):
    out = {}
    for line in text.splitlines():
        m = re.fullmatch(r'([a-z_0-9]+)="([^"]*)"', line.strip())
        if m:
            out[m.group(1)] = m.group(2)
    return out


def png_size(data):
    """(width, height) of a valid 8-bit RGBA PNG, else None."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    pos, idat, ihdr = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack_from(">I4s", data, pos)
        body = data[pos + 8:pos + 8 + n]
        if struct.unpack_from(">I", data, pos + 8 + n)[0] != zlib.crc32(kind + body):
            return None
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    if not ihdr or ihdr[2:5] != (8, 6, 0):
        return None
    w, h = ihdr[:2]
    return (w, h) if len(zlib.decompress(idat)) == h * (1 + 4 * w) else None


def parse_sc(text):
    sections, cur = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"\[([A-Za-z0-9._\\-]+)\]", line)
        if m:
            cur = sections.setdefault(m.group(1), {})
            continue
        m = re.fullmatch(r'([a-z_.]+)="([^"]*)"', line)
        if not m or cur is None:
            return None
        cur[m.group(1)] = m.group(2)
    return sections


def check_spk_dir(r, root, filename):
    for f in SPK_FILES:
        r.check(os.path.isfile(f"{root}/{f}"), f"has {f}")
    info = parse_info(open(f"{root}/INFO").read()) if os.path.isfile(f"{root}/INFO") else {}
    for k in ("package", "version", "os_min_ver", "arch", "description", "maintainer", "displayname",
              "thirdparty", "ctl_stop"):
        r.check(bool(info.get(k)), f"INFO has {k}" + (f"={info[k][:60]}" if info.get(k) else ""))
    r.check(info.get("package") == NAME, f"package is {NAME}")
    r.check(bool(re.fullmatch(r"\d+(\.\d+)*-\d+", info.get("version", ""))), "version is X.Y.Z-build")
    m = re.fullmatch(r"(\d+)\.(\d+)-(\d+)", info.get("os_min_ver", ""))
    r.check(bool(m) and tuple(map(int, m.groups())) >= (7, 0, 40000), "os_min_ver is at least 7.0-40000")
    families = [a for a in info.get("arch", "").split() if a in ("x86_64", "armv8", "armv7", "i686", "noarch")]
    r.check(families in (["x86_64"], ["armv8"]), f"arch names one family, x86_64 or armv8 ({families})")
    r.check(info.get("adminport", "3030") == "3030", "adminport is the web UI's 3030")
    r.check(info.get("thirdparty") == "yes", "thirdparty=yes")
    r.check(info.get("version", "") in filename and filename.endswith(".spk"), f"file name {filename} carries the version")
    try:
        priv = json.load(open(f"{root}/conf/privilege"))
        r.check(priv.get("defaults", {}).get("run-as") == "package", "conf/privilege: defaults.run-as = package")
    except (OSError, ValueError) as e:
        r.check(False, f"conf/privilege is JSON: {e}")
    sc = None
    try:
        res = json.load(open(f"{root}/conf/resource"))
        pf = res.get("port-config", {}).get("protocol-file", "")
        r.check(bool(pf) and os.path.isfile(f"{root}/target/{pf}"), f"conf/resource: port-config {pf} is in package.tgz")
        sc = parse_sc(open(f"{root}/target/{pf}").read()) if pf and os.path.isfile(f"{root}/target/{pf}") else None
    except (OSError, ValueError) as e:
        r.check(False, f"conf/resource is JSON: {e}")
    if r.check(bool(sc), ".sc port file parses"):
        ports = set()
        for name, kv in sc.items():
            r.check(bool(kv.get("title")) and bool(kv.get("desc")), f".sc [{name}] has title and desc")
            r.check(kv.get("port_forward", "no") in ("yes", "no"), f".sc [{name}] port_forward yes/no")
            for key in ("src.ports", "dst.ports"):
                if key in kv:
                    ok = re.fullmatch(r"\d+(:\d+)?(,\d+(:\d+)?)*/(tcp|udp|tcp,udp)", kv[key])
                    r.check(bool(ok), f".sc [{name}] {key}={kv[key]}")
                    if ok:
                        ps, proto = kv[key].split("/")
                        ports |= {(p, pr) for p in ps.split(",") for pr in proto.split(",")}
        r.check(("3030", "tcp") in ports and ("3031", "udp") in ports, ".sc lists 3030/tcp and 3031/udp")
    for s in SPK_SCRIPTS + ["common"]:
        p = f"{root}/scripts/{s}"
        if r.check(executable(p), f"scripts/{s} is executable"):
            syntax_ok(r, p, f"scripts/{s}")
    for f, want in (("PACKAGE_ICON.PNG", (72, 72)), ("PACKAGE_ICON_256.PNG", (256, 256))):
        got = png_size(open(f"{root}/{f}", "rb").read()) if os.path.isfile(f"{root}/{f}") else None
        r.check(got == want, f"{f} is a valid {want[0]}x{want[1]} RGBA PNG")
    hdp = f"{root}/target/bin/hdp"
    if r.check(executable(hdp), "package.tgz has bin/hdp, executable"):
        fam = elf_family(elf_info(open(hdp, "rb").read()))
        want = {"x86_64": "x86_64", "armv8": "aarch64"}.get(families[0] if families else "", "?")
        r.check(fam == want, f"bin/hdp is {fam}, arch needs {want}")


FAKE_HDP = r'''#!/bin/sh
# Stands in for `hdp start --data-dir D --config F` in the package tests.
[ "$1" = start ] || { echo "fake hdp: start only" >&2; exit 2; }
shift
while [ $# -gt 0 ]; do
	case $1 in
	--data-dir) d=$2; shift 2 ;;
	--config) c=$2; shift 2 ;;
	*) echo "fake hdp: unknown argument $1" >&2; exit 2 ;;
	esac
done
[ -d "$d" ] && [ -r "$c" ] || { echo "error: cannot read $c" >&2; exit 1; }
if grep -v '^[[:space:]]*#' "$c" | grep '=' | sed 's/[[:space:]]*=.*//' |
	grep -qvxE 'http|shares|download_dir|listen|topics|peers|upload_slots|max_upload_rate|max_download_rate|download_slots|peer_download_slots|threads|mqtt|mdns|stun|portmap|http_hosts'; then
	echo "error: $c is not valid: unknown field" >&2
	exit 1
fi
trap 'echo "fake hdp: stopping" >&2; exit 0' TERM
echo "harddrive-party 0.0.0-fake is running"
echo "  data dir  $d"
while :; do sleep 1; done
'''


def reap():
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass


def gone(pid):
    reap()
    try:
        return open(f"/proc/{pid}/stat").read().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


def check_spk_runtime(r, root, tmp, args):
    hdp = f"{root}/target/bin/hdp"
    fam = elf_family(elf_info(open(hdp, "rb").read())) if os.path.isfile(hdp) else None
    host = {"x86_64": "x86_64", "aarch64": "aarch64"}.get(platform.machine())
    if args.hdp:
        shutil.copy(args.hdp, hdp)
        what = f"--hdp {args.hdp}"
    elif args.fake_hdp:
        open(hdp, "w").write(FAKE_HDP)
        what = "the fake hdp"
    elif fam == host:
        what = "the packaged binary"
    else:
        r.note(f"SKIP start-stop-status run: bin/hdp is {fam}, this machine {platform.machine()} (use --hdp or --fake-hdp)")
        return
    os.chmod(hdp, 0o755)
    # DSM's /bin/sh is bash; dash is the stricter POSIX shell.
    for sh in (["sh"], ["bash"]) if shutil.which("bash") else (["sh"],):
        r.note(f"start-stop-status under {sh[0]} with {what}:")
        spk_session(r, root, sh)


def spk_session(r, root, sh):
    var = f"{root}/var-{sh[0]}"
    os.makedirs(var)
    env = dict(os.environ, SYNOPKG_PKGNAME=NAME, SYNOPKG_PKGVAR=var, SYNOPKG_PKGDEST=f"{root}/target",
               SYNOPKG_TEMP_LOGFILE=f"{var}/../messages-{sh[0]}", HDP_STOP_WAIT="30")
    scripts = f"{root}/scripts"

    def sss(action, timeout=60):
        t = time.monotonic()
        p = run(sh + [f"{scripts}/start-stop-status", action], env=env, timeout=timeout)
        return p.returncode, time.monotonic() - t, p.stdout

    r.check(sss("status")[0] == 3, "status before start: 3")
    p = run(sh + [f"{scripts}/postinst"], env=env)
    r.check(p.returncode == 0, f"postinst exits 0 {p.stdout}{p.stderr}")
    conf = f"{var}/config.toml"
    try:
        c = tomllib.load(open(conf, "rb"))
        r.check(c == {"http": "0.0.0.0:3030", "listen": "0.0.0.0:3031", "download_dir": f"{var}/downloads"},
                f"default config.toml: {c}")
        r.check(set(c) <= NODE_KEYS and os.path.isdir(f"{var}/downloads"), "only keys the node knows; downloads dir made")
    except (OSError, tomllib.TOMLDecodeError) as e:
        r.check(False, f"postinst wrote a valid config.toml: {e}")
    open(conf, "a").write("# kept\n")
    run(sh + [f"{scripts}/postinst"], env=env)
    r.check(open(conf).read().endswith("# kept\n"), "postinst keeps an existing config.toml")
    open(conf, "w").write('http = "127.0.0.1:0"\nlisten = "127.0.0.1:0"\nmqtt = "off"\nmdns = false\n'
                          'download_dir = "downloads"\n')
    rc, secs, _ = sss("start")
    r.check(rc == 0, f"start: {rc} after {secs:.1f} s {open(env['SYNOPKG_TEMP_LOGFILE']).read() if rc else ''}")
    pid = int(open(f"{var}/hdp.pid").read()) if os.path.exists(f"{var}/hdp.pid") else 0
    if rc != 0:
        sss("stop")
        return
    r.check(sss("status")[0] == 0, "status while running: 0")
    log = f"{var}/hdp.log"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and "is running" not in open(log, errors="replace").read():
        time.sleep(0.5)
    r.check("is running" in open(log, errors="replace").read(), "the node's banner is in the log")
    r.check(oct(os.stat(log).st_mode & 0o777) == "0o600", "the log (it holds the login link) is mode 0600")
    r.check(sss("start")[0] == 0 and int(open(f"{var}/hdp.pid").read()) == pid, "start again: 0, same process")
    rc, secs, _ = sss("stop")
    r.check(rc == 0, f"stop: {rc} after {secs:.1f} s")
    r.check(pid > 0 and gone(pid), "the node has exited")
    r.check("killing" not in open(log, errors="replace").read(), "it stopped on SIGTERM, not SIGKILL")
    r.check(sss("status")[0] == 3, "status after stop: 3")
    r.check(not os.path.exists(f"{var}/hdp.pid"), "pid file removed")
    rc, _, out = sss("log")
    r.check(rc == 0 and out.strip() == log, f"log prints {out.strip()}")
    open(conf, "a").write("bogus = 1\n")
    rc, _, _ = sss("start")
    r.check(rc != 0, f"start with an unknown key in config.toml fails ({rc}): {open(env['SYNOPKG_TEMP_LOGFILE']).read().strip()[-120:]}")
    r.check(sss("status")[0] == 3, "status after a failed start: 3")
    sss("stop")


# ---- main ---------------------------------------------------------------------------
def mutate(path, old, new):
    text = open(path).read()
    open(path, "w").write(re.sub(old, new, text, flags=re.M))


def main():
    ap = argparse.ArgumentParser(prog="test-ipk-spk.sh")
    ap.add_argument("--hdp", help="run start-stop-status with this binary instead of the packaged one")
    ap.add_argument("--fake-hdp", action="store_true", help="run start-stop-status with a shell stand-in")
    ap.add_argument("--self-test", action="store_true", help="also prove missing fields fail")
    ap.add_argument("packages", nargs="+")
    args = ap.parse_args()
    # Orphaned nodes (their start script exits) come back to us to be reaped.
    try:
        ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass
    failed = []
    with tempfile.TemporaryDirectory(prefix="hdp-pkgtest-") as tmp:
        for i, path in enumerate(args.packages):
            fn = os.path.basename(path)
            print(f"== {fn}")
            r = Report(fn)
            root = f"{tmp}/{i}"
            if fn.endswith(".ipk"):
                if unpack_ipk(r, path, root):
                    check_ipk_dir(r, root, fn)
                    if os.path.isfile(f"{root}/data/etc/init.d/{NAME}"):
                        check_ipk_runtime(r, root, tmp)
                    if args.self_test:
                        for what, f, old in (("Maintainer", "control/control", r"^Maintainer:.*\n"),
                                             ("Architecture", "control/control", r"^Architecture:.*\n"),
                                             ("the conffile", "control/conffiles", r".*")):
                            mroot = f"{root}-mut"
                            shutil.rmtree(mroot, ignore_errors=True)
                            shutil.copytree(root, mroot, symlinks=True)
                            mutate(f"{mroot}/{f}", old, "")
                            m = Report(fn, quiet=True)
                            check_ipk_dir(m, mroot, fn)
                            r.check(bool(m.fails), f"self-test: without {what} the check fails ({'; '.join(m.fails[:2])})")
            elif fn.endswith(".spk"):
                if unpack_spk(r, path, root):
                    check_spk_dir(r, root, fn)
                    if args.self_test:
                        for what, f, old, new in (("os_min_ver", "INFO", r"^os_min_ver=.*\n", ""),
                                                  ("maintainer", "INFO", r"^maintainer=.*\n", ""),
                                                  ("run-as package", "conf/privilege", r'"package"', '"root"')):
                            mroot = f"{root}-mut"
                            shutil.rmtree(mroot, ignore_errors=True)
                            shutil.copytree(root, mroot, symlinks=True)
                            mutate(f"{mroot}/{f}", old, new)
                            m = Report(fn, quiet=True)
                            check_spk_dir(m, mroot, fn)
                            r.check(bool(m.fails), f"self-test: without {what} the check fails ({'; '.join(m.fails[:2])})")
                    check_spk_runtime(r, root, tmp, args)
            else:
                r.check(False, "not a .ipk or .spk")
            if r.fails:
                failed.append((fn, r.fails))
    print()
    if failed:
        for fn, fails in failed:
            print(f"FAILED {fn}: {len(fails)} check(s)")
            for f in fails:
                print(f"  - {f}")
        sys.exit(1)
    print(f"all {len(args.packages)} package(s) pass")


main()
PY
