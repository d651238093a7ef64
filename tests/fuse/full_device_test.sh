#!/usr/bin/env bash
# A full device through a real FUSE mount: copying more than fits fails with ENOSPC (at close at
# the latest), the data that fit is intact, deleting returns the space, new files fit and read
# back exactly, and the daemon still unmounts cleanly (exit 0) to a volume fsck calls clean.
# Usage: full_device_test.sh PATH_TO_PERMFS
source "$(dirname "$0")/lib.sh" "$1" 64M

SRC=$WORK/src
head -c $((100 << 20)) /dev/urandom > "$SRC.big"
head -c $((20 << 20)) /dev/urandom > "$SRC.fits"

fuse_mount

step "copy 100 MiB onto a 64 MiB volume"
if cp "$SRC.big" "$MNT/big" 2> "$WORK/cp.err"; then
  fail "cp of 100 MiB onto a 64 MiB volume succeeded"
fi
grep -q "No space left on device" "$WORK/cp.err" || fail "cp did not report ENOSPC: $(cat "$WORK/cp.err")"
# After the last close (RELEASE is asynchronous) the data that did not fit is dropped: those
# ranges read as zeros, the rest is what was written, and the file reads the same after a remount.
check_big() {
  python3 - "$SRC.big" "$MNT/big" <<'EOF' || fail "$1: the failed copy is neither data nor zeros"
import sys
src, dst = open(sys.argv[1], "rb"), open(sys.argv[2], "rb")
kept = dropped = 0
while True:
    d = dst.read(65536)
    if not d:
        break
    s = src.read(65536)
    if d == s[:len(d)]:
        kept += 1
    elif d == bytes(len(d)):
        dropped += 1
    else:
        sys.exit(f"record {kept + dropped} is neither")
print(f"{kept} records kept, {dropped} dropped")
sys.exit(0 if kept > 0 and dropped > 0 else "expected both kept and dropped records")
EOF
}
for i in $(seq 1 50); do
  grep -q "dropped (ENOSPC was reported)" "$WORK/mount.log" && break
  sleep 0.1
done
check_big "before remount"
sum=$(sha256sum < "$MNT/big")
fuse_umount
fuse_mount
[ "$(sha256sum < "$MNT/big")" = "$sum" ] || fail "the failed copy reads differently after a remount"
check_big "after remount"

step "delete it; a 20 MiB file fits and reads back"
rm "$MNT/big" || fail "rm"
ok=0
for i in $(seq 1 50); do  # the space of an unlinked file returns once the kernel forgets it
  if cp "$SRC.fits" "$MNT/fits" 2> "$WORK/cp2.err"; then ok=1; break; fi
  rm -f "$MNT/fits"
  sleep 0.2
done
[ "$ok" = 1 ] || fail "20 MiB do not fit after deleting the big file: $(cat "$WORK/cp2.err")"
cmp "$SRC.fits" "$MNT/fits" || fail "the 20 MiB file reads back wrong"

step "remount and check"
fuse_umount
fuse_mount
cmp "$SRC.fits" "$MNT/fits" || fail "the 20 MiB file differs after a remount"
fuse_umount
fuse_fsck > /dev/null
finish
