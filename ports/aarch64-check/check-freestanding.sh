#!/usr/bin/env bash
# Build-only check of the PermFS engine core for aarch64 (CTest: freestanding_aarch64).
#
#   ports/aarch64-check/check-freestanding.sh [CXX [OUTDIR]]
#
# Compiles (-c, real code generation) every .cc of every core layer — the layers listed in
# PERMFS_CORE_DIRS of the top-level CMakeLists.txt that have a CMakeLists.txt, exactly the set
# the x86_64 reference kernel links — with the aarch64 cross compiler, the freestanding kernel
# flags of cmake/toolchain-aarch64-freestanding.cmake and the kernel build's warnings (-Werror),
# then archives them (libpermfs_core_aarch64.a) and checks that:
#   - the x86 CRC32C path (SSE4.2 crc32 instructions, cpuid) is compiled out: no x86-only symbol
#     is referenced and the objects are AArch64 ELF;
#   - the only undefined symbols are the port contract (permfs::port::*), the C/C++ runtime
#     symbols listed in docs/PORTING.md §0 and compiler helpers — the same list an aarch64 OS
#     must provide.
# CXX defaults to aarch64-linux-gnu-g++ (Debian: apt-get install g++-aarch64-linux-gnu). Without
# it the check is SKIPPED (exit 77, CTest SKIP_RETURN_CODE) with the reason on stdout.
set -uo pipefail
CXX=${1:-aarch64-linux-gnu-g++}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${2:-$(mktemp -d /tmp/permfs-aarch64.XXXXXX)}
mkdir -p "$OUT"

if ! command -v "$CXX" >/dev/null 2>&1; then
  echo "freestanding_aarch64: SKIPPED: $CXX not found (Debian: apt-get install g++-aarch64-linux-gnu)"
  exit 77
fi
PREFIX=${CXX%g++}            # aarch64-linux-gnu-
AR=${PREFIX}ar; NM=${PREFIX}nm; READELF=${PREFIX}readelf
for t in "$AR" "$NM" "$READELF" "${PREFIX}c++filt"; do
  command -v "$t" >/dev/null 2>&1 || { echo "freestanding_aarch64: SKIPPED: $t not found"; exit 77; }
done

# Core layers: the same rule as ports/qemu-x86_64/CMakeLists.txt.
dirs=$(sed -n 's/^set(PERMFS_CORE_DIRS \([^)]*\)).*/\1/p' "$ROOT/CMakeLists.txt")
[ -n "$dirs" ] || dirs="util block format journal alloc btree volume store fs shell"
srcs=()
for d in $dirs; do
  [ -f "$ROOT/src/$d/CMakeLists.txt" ] || continue
  for f in "$ROOT"/src/$d/*.cc; do [ -f "$f" ] && srcs+=("$f"); done
done

# Flags: keep in sync with cmake/toolchain-aarch64-freestanding.cmake and the kernel's warnings.
FLAGS=(-std=c++20 -ffreestanding -fno-exceptions -fno-rtti -nostdlib -fno-pic -fno-pie
       -mgeneral-regs-only -mstrict-align -mno-outline-atomics -fno-stack-protector -fno-asynchronous-unwind-tables
       -fno-unwind-tables -fno-omit-frame-pointer -O2 -DNDEBUG
       -Wall -Wextra -Werror -Wnon-virtual-dtor -Wimplicit-fallthrough
       -Wno-missing-field-initializers -I"$ROOT/src")
echo "freestanding_aarch64: $($CXX --version | head -1)"
echo "freestanding_aarch64: flags ${FLAGS[*]}"

fail=0
objs=()
jobs=${PERMFS_CHECK_JOBS:-2}
compile() {
  local f=$1 o=$2
  "$CXX" "${FLAGS[@]}" -c "$f" -o "$o" 2>"$o.log" || { cat "$o.log"; echo "freestanding_aarch64: $f does not compile for aarch64"; return 1; }
}
running=0
for f in "${srcs[@]}"; do
  rel=${f#$ROOT/src/}
  o="$OUT/${rel//\//_}.o"
  objs+=("$o")
  compile "$f" "$o" &
  running=$((running + 1))
  if [ $running -ge $jobs ]; then wait -n || fail=1; running=$((running - 1)); fi
done
while [ $running -gt 0 ]; do wait -n || fail=1; running=$((running - 1)); done
if [ $fail -ne 0 ]; then
  echo "freestanding_aarch64: FAILED (compile)"
  exit 1
fi

rm -f "$OUT/libpermfs_core_aarch64.a"
"$AR" rcs "$OUT/libpermfs_core_aarch64.a" "${objs[@]}" || exit 1

# Every object is AArch64 code.
for o in "${objs[@]}"; do
  if ! "$READELF" -h "$o" | grep -q "Machine:.*AArch64"; then
    echo "freestanding_aarch64: $o is not an AArch64 object"
    fail=1
  fi
done
# The x86 CRC32C path is compiled out: no cpuid/SSE helper or hardware-CRC symbol survives.
if "$NM" -C "$OUT"/util_crc32c.cc.o | grep -Eiq "HardwareRaw|HwTriple|cpuid|sse4"; then
  echo "freestanding_aarch64: the x86 CRC32C path is present in util/crc32c.cc.o:"
  "$NM" -C "$OUT"/util_crc32c.cc.o | grep -Ei "HardwareRaw|HwTriple|cpuid|sse4"
  fail=1
fi

# Undefined symbols of the whole core = what the OS must provide.
undef=$("$NM" --undefined-only "$OUT/libpermfs_core_aarch64.a" | awk '$1=="U"||$1=="w" {print $2}' | sort -u)
defined=$("$NM" --defined-only "$OUT/libpermfs_core_aarch64.a" | awk 'NF==3 {print $3}' | sort -u)
missing=$(comm -23 <(echo "$undef") <(echo "$defined") | grep -v '^$' | "${PREFIX}c++filt")
unexpected=$(echo "$missing" | grep -Ev \
  '^(permfs::port::|operator new|operator delete|std::__throw_|std::terminate|std::nothrow|__cxa_|__dso_handle|__stack_chk_fail|mem(cpy|move|set|cmp|chr)$|bcmp$|strlen$|strcmp$|abort$|__(u)?(div|mod|mul)ti3$|__popcount|__clz|__ctz|std::__cxx11::basic_string<char|std::basic_string<char)' \
  | grep -v '^$' || true)
echo "freestanding_aarch64: $(echo "$missing" | grep -c .) external symbols; port contract:" \
     $(echo "$missing" | grep -c '^permfs::port::')
echo "$missing" | sed 's/^/  needs: /'
if [ -n "$unexpected" ]; then
  echo "freestanding_aarch64: unexpected external symbols (not port/runtime):"
  echo "$unexpected" | sed 's/^/  /'
  fail=1
fi
if [ $fail -ne 0 ]; then
  echo "freestanding_aarch64: FAILED"
  exit 1
fi
echo "freestanding_aarch64: ${#srcs[@]} core sources compile and archive for aarch64 ($OUT/libpermfs_core_aarch64.a); x86 CRC32C path compiled out"
