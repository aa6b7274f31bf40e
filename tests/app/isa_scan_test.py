#!/usr/bin/python3
"""No AVX-512 instruction in the temper binary outside the kernels that check CPUID first
(issue 12 item 3). The default build targets x86-64-v3; only files named *_avx512.cpp are
compiled with AVX-512 enabled, and their callers check the CPU. This reads the disassembly
(binutils' objdump, not our code) and fails on any EVEX-encoded instruction (the encoding of
every AVX-512 instruction, prefix byte 0x62) in a function that is not a strong symbol of one
of those files. Weak symbols (inline functions, templates) from those files are not allowed:
the linker keeps one copy of each, and if it keeps the AVX-512 one a plain caller gets it.

  isa_scan_test.py BUILD_DIR [TEMPER_NATIVE]
"""
import glob
import os
import re
import subprocess
import sys

build = sys.argv[1]
if len(sys.argv) > 2 and sys.argv[2].upper() in ("ON", "1", "TRUE"):
    print("skipped: -DTEMPER_NATIVE=ON build (runs only on the CPU that built it)")
    sys.exit(77)
binary = os.path.join(build, "temper")

allowed = set()
objects = glob.glob(os.path.join(build, "**", "*_avx512.cpp.o"), recursive=True)
assert objects, f"no *_avx512.cpp.o under {build}: is this the build folder?"
for obj in objects:
    for line in subprocess.run(["nm", "--defined-only", obj], check=True, capture_output=True,
                               text=True).stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in "Tt":
            allowed.add(parts[2])

dis = subprocess.run(["objdump", "-d", "-w", binary], check=True, capture_output=True, text=True).stdout
header = re.compile(r"^[0-9a-f]+ <(.+)>:$")
insn = re.compile(r"^\s*[0-9a-f]+:\t((?:[0-9a-f]{2} )+)\s*\t?(.*)$")
evex_prefixes = {"62"}
offenders = {}
func = None
count = 0
for line in dis.splitlines():
    m = header.match(line)
    if m:
        func = m.group(1)
        continue
    m = insn.match(line)
    if not m or func is None:
        continue
    b = m.group(1).split()
    # Optional segment (64/65) or address-size (67) prefix, then 62: EVEX.
    first = b[1] if b[0] in ("64", "65", "67") and len(b) > 1 else b[0]
    if first in evex_prefixes or "%zmm" in m.group(2):
        count += 1
        if func not in allowed:
            offenders.setdefault(func, m.group(2).strip())

print(f"{count} EVEX instructions in {binary}; {len(allowed)} functions of "
      f"{len(objects)} *_avx512 objects may use them")
if offenders:
    for f, example in sorted(offenders.items())[:40]:
        print(f"AVX-512 outside the dispatched kernels: {f}: {example}")
    print(f"{len(offenders)} functions in all")
    sys.exit(1)
assert count > 0, "no EVEX instruction at all: the AVX-512 kernels are missing from the binary"
print("ok")
