#!/usr/bin/env python3
"""Prints what an hdp binary is, for the package builders:

    python3 packaging/lib/elf-kind.py BIN
    -> KIND LINKAGE STRIP

KIND is x86_64, aarch64, armhf, armel or other (not-elf for anything that
is no little-endian ELF file), LINKAGE static or dynamic (whether it names an
interpreter), STRIP stripped or unstripped (whether it keeps a symbol table).
Read from the ELF headers only; works for every architecture on any host.
"""
import struct
import sys

EM_ARM, EM_X86_64, EM_AARCH64 = 40, 62, 183
EF_ARM_ABI_FLOAT_HARD = 0x400
PT_INTERP, SHT_SYMTAB = 3, 2

with open(sys.argv[1], "rb") as f:
    d = f.read()
is64 = len(d) > 4 and d[4] == 2
if len(d) < (64 if is64 else 52) or d[:4] != b"\x7fELF" or d[5] != 1:
    print("not-elf - -")
    sys.exit()
mach, = struct.unpack_from("<H", d, 18)
if is64:
    phoff, shoff, flags, _, phentsize, phnum, shentsize, shnum = struct.unpack_from("<QQIHHHHH", d, 32)
else:
    phoff, shoff, flags, _, phentsize, phnum, shentsize, shnum = struct.unpack_from("<IIIHHHHH", d, 28)
kind = {EM_X86_64: "x86_64", EM_AARCH64: "aarch64"}.get(mach, "other")
if mach == EM_ARM:
    kind = "armhf" if flags & EF_ARM_ABI_FLOAT_HARD else "armel"
if (mach in (EM_X86_64, EM_AARCH64)) != is64:
    kind = "other"


def field(off):
    return struct.unpack_from("<I", d, off)[0] if off + 4 <= len(d) else None


interp = any(field(phoff + i * phentsize) == PT_INTERP for i in range(phnum))
symtab = any(field(shoff + i * shentsize + 4) == SHT_SYMTAB for i in range(shnum))
print(kind, "dynamic" if interp else "static", "unstripped" if symtab else "stripped")
