#!/usr/bin/env python3
"""Writes the licenses of everything compiled into the hdp binary.

    python3 packaging/lib/third-party-licenses.py TARGET_TRIPLE OUT_FILE

Reads `cargo metadata` for the target, walks hdp-node's normal (shipped)
dependencies — not build scripts, proc macros or dev-dependencies, which
are not in the binary — and writes, per crate, its name, version, license
expression and the texts of the LICENSE/COPYING/NOTICE files it ships. Those
include C code carried inside crates: LMDB's OpenLDAP licence in
lmdb-master-sys, the OpenSSL/ISC texts in ring. Identical texts are written
once and referred to by number.
"""
import json
import os
import subprocess
import sys

NAMES = ("LICENSE", "LICENCE", "COPYING", "NOTICE", "UNLICENSE")
# How deep below a crate's root to look: LMDB's licence sits at
# lmdb/libraries/liblmdb/LICENSE in lmdb-master-sys.
MAX_DEPTH = 4


def license_files(root):
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        depth = os.path.relpath(dirpath, root).count(os.sep)
        dirnames[:] = sorted(d for d in dirnames if depth < MAX_DEPTH - 1 and d not in ("target", ".git", "tests"))
        for f in sorted(filenames):
            if f.upper().startswith(NAMES):
                found.append(os.path.join(dirpath, f))
    return found


def main():
    triple, out = sys.argv[1], sys.argv[2]
    meta = json.loads(subprocess.check_output(
        ["cargo", "metadata", "--locked", "--format-version", "1", "--filter-platform", triple]))
    packages = {p["id"]: p for p in meta["packages"]}
    nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
    root = next(i for i, p in packages.items() if p["name"] == "hdp-node")
    seen, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        for dep in nodes[pid]["deps"]:
            if any(k["kind"] is None for k in dep["dep_kinds"]):
                todo.append(dep["pkg"])
    ours = {"hdp-node", "hdp-proto"}

    def shipped(p):
        # A proc macro runs in the compiler; only libraries end up in the binary.
        kinds = {k for t in p["targets"] for k in t["kind"]}
        return p["name"] not in ours and kinds != {"proc-macro"}

    texts, lines = {}, []
    crates = sorted((packages[p] for p in seen if shipped(packages[p])), key=lambda p: (p["name"], p["version"]))
    for p in crates:
        refs = []
        for path in license_files(os.path.dirname(p["manifest_path"])):
            with open(path, encoding="utf-8", errors="replace") as f:
                text = f.read().strip()
            n = texts.setdefault(text, len(texts) + 1)
            refs.append(f"[{n}] {os.path.relpath(path, os.path.dirname(p['manifest_path']))}")
        lines.append(f"{p['name']} {p['version']}: {p.get('license') or p.get('license_file') or 'see texts'}")
        lines.extend(f"    {r}" for r in refs or ["(no license file shipped in the crate; see its license expression)"])
    with open(out, "w", encoding="utf-8") as f:
        f.write("Third-party software in the hdp binary (harddrive-party)\n")
        f.write("=========================================================\n\n")
        f.write("harddrive-party itself is MIT licensed (LICENSE). It contains these\n")
        f.write(f"{len(crates)} crates for {triple}; the numbered texts follow the list.\n\n")
        f.write("\n".join(lines) + "\n")
        for text, n in sorted(texts.items(), key=lambda kv: kv[1]):
            f.write(f"\n\n---- [{n}] ----\n\n{text}\n")


if __name__ == "__main__":
    main()
