#!/usr/bin/env bash
# Boots the PermFS reference kernel under QEMU (TCG) with one virtio-blk disk and runs one
# kernel test.
#
#   run-test.sh KERNEL TESTNAME DISK [TIMEOUT_SECONDS [SERIAL_REGEX ...]]
#
# KERNEL   the multiboot image (permfs-kernel.elf, elf32-i386)
# TESTNAME a name from the kernel's test table (test_table.cc); `list` prints the table
# DISK     raw disk image; created (sparse, $PERMFS_QEMU_DISK_SIZE, default 64M) if missing.
#          It is NOT recreated if present, so two runs on one image see each other's writes.
# TIMEOUT  seconds before the run counts as a hang (default 120)
# SERIAL_REGEX  extended regexes that must each match a line of the serial log
#
# Success = the serial log has `PASS TESTNAME` AND QEMU exits through isa-debug-exit with the
# kernel's pass code (0x10 -> status 33). A triple fault exits 0 and a hang is killed by the
# timeout: both fail.
#
# PERMFS_QEMU_EXPECT selects what success means:
#   pass  (default) `PASS TESTNAME` on serial and exit status 33;
#   panic the panic exit status 37 (0x12), a `PANIC at` line and no PASS line (panic/fault);
#   halt  a `PANIC at` line, then QEMU still running at the timeout (panic=halt policy).
#
# Other environment: PERMFS_QEMU_FRESH_DISK=1 (delete DISK first), PERMFS_QEMU_APPEND (extra kernel command line words), PERMFS_QEMU_MEM
# (default 512M), PERMFS_QEMU_CPU (default max), PERMFS_QEMU_LOG (serial log path, default
# DISK.TESTNAME.serial.log), QEMU (binary, default qemu-system-x86_64).
set -uo pipefail

if [ $# -lt 3 ]; then
  echo "usage: $0 KERNEL TESTNAME DISK [TIMEOUT_SECONDS]" >&2
  exit 2
fi
KERNEL=$1
TEST=$2
DISK=$3
TIMEOUT=${4:-120}
shift $(($# < 4 ? $# : 4))
REGEXES=("$@")
QEMU=${QEMU:-qemu-system-x86_64}
MEM=${PERMFS_QEMU_MEM:-512M}
CPU=${PERMFS_QEMU_CPU:-max}
LOG=${PERMFS_QEMU_LOG:-$DISK.$TEST.serial.log}
EXPECT=${PERMFS_QEMU_EXPECT:-pass}

PASS_STATUS=33   # (0x10 << 1) | 1
PANIC_STATUS=37  # (0x12 << 1) | 1

if [ ! -f "$KERNEL" ]; then
  echo "run-test: kernel $KERNEL not found" >&2
  exit 2
fi
if ! command -v "$QEMU" >/dev/null 2>&1; then
  echo "run-test: $QEMU not found (Debian: apt-get install qemu-system-x86)" >&2
  exit 2
fi
if [ "${PERMFS_QEMU_FRESH_DISK:-0}" = 1 ]; then
  rm -f "$DISK"
fi
if [ ! -f "$DISK" ]; then
  mkdir -p "$(dirname "$DISK")"
  truncate -s "${PERMFS_QEMU_DISK_SIZE:-64M}" "$DISK" || exit 2
fi
rm -f "$LOG"

timeout --foreground -k 5 "$TIMEOUT" "$QEMU" \
  -machine pc -accel tcg -cpu "$CPU" -m "$MEM" -smp 1 \
  -nographic -display none -monitor none -no-reboot -net none \
  -serial "file:$LOG" \
  -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
  -drive "file=$DISK,if=none,id=d0,format=raw,cache=writeback,discard=unmap" \
  -device virtio-blk-pci,drive=d0,disable-modern=on,disable-legacy=off \
  -kernel "$KERNEL" -append "test=$TEST ${PERMFS_QEMU_APPEND:-}" </dev/null
STATUS=$?

cat "$LOG" 2>/dev/null | tr -d '\r'
echo "run-test: qemu exit status $STATUS"

timed_out=0
if [ $STATUS -eq 124 ] || [ $STATUS -eq 137 ]; then
  timed_out=1
fi
serial() { tr -d '\r' <"$LOG" 2>/dev/null; }
ok=1
for re in "${REGEXES[@]}"; do
  if ! serial | grep -Eq -- "$re"; then
    echo "run-test: FAILED: serial log has no line matching /$re/"
    ok=0
  fi
done

case "$EXPECT" in
  pass)
    if [ $timed_out -eq 1 ]; then
      echo "run-test: FAILED: timeout after ${TIMEOUT}s (hang)"
      ok=0
    elif ! serial | grep -Eq "^PASS $TEST( |$)"; then
      echo "run-test: FAILED: no 'PASS $TEST' line on serial"
      ok=0
    elif [ $STATUS -ne $PASS_STATUS ]; then
      echo "run-test: FAILED: qemu exit status $STATUS, expected $PASS_STATUS (isa-debug-exit pass)"
      ok=0
    fi
    ;;
  panic)
    if [ $timed_out -eq 1 ]; then
      echo "run-test: FAILED: timeout after ${TIMEOUT}s (hang)"
      ok=0
    elif [ $STATUS -ne $PANIC_STATUS ]; then
      echo "run-test: FAILED: expected panic exit status $PANIC_STATUS, got $STATUS"
      ok=0
    fi
    if ! serial | grep -q "^PANIC at "; then
      echo "run-test: FAILED: no 'PANIC at' line on serial"
      ok=0
    fi
    if serial | grep -q "^PASS $TEST"; then
      echo "run-test: FAILED: test printed PASS but was expected to panic"
      ok=0
    fi
    ;;
  halt)
    if [ $timed_out -ne 1 ]; then
      echo "run-test: FAILED: expected the kernel to halt (timeout), qemu exited with $STATUS"
      ok=0
    fi
    if ! serial | grep -q "^PANIC at "; then
      echo "run-test: FAILED: no 'PANIC at' line on serial"
      ok=0
    fi
    ;;
  *)
    echo "run-test: unknown PERMFS_QEMU_EXPECT=$EXPECT" >&2
    exit 2
    ;;
esac

if [ $ok -eq 1 ]; then
  echo "run-test: OK: $TEST ($EXPECT)"
  exit 0
fi
exit 1
