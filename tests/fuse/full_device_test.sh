#!/usr/bin/env bash
# A full device through a real FUSE mount: copying more than fits fails with ENOSPC (at close:
# the writeback cache took the bytes; the daemon refuses the WRITEs it has no space for), the data
# that fit is intact, deleting returns the space, new files fit and read back exactly, and the
# daemon still unmounts cleanly (exit 0) to a volume fsck calls clean. Without the writeback
# cache, write(2) itself fails with ENOSPC and the file keeps exactly what was accepted.
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
# The refused ranges read as zeros (the daemon dropped the kernel's cached pages of them), the rest
# is what was written, and the file reads the same after a remount.
big_ok() {
  python3 - "$SRC.big" "$MNT/big" <<'EOF'
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
check_big() { big_ok || fail "$1: the failed copy is not written data, then zeros"; }
grep -q "not stored (ENOSPC reported" "$WORK/mount.log" || fail "the daemon refused no write"
grep -q "dropped (ENOSPC was reported)" "$WORK/mount.log" && fail "accepted data was dropped"
for i in $(seq 1 50); do  # the page-cache invalidation is asynchronous
  big_ok > /dev/null 2>&1 && break
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

step "without the writeback cache, write(2) itself reports ENOSPC"
fuse_mount no_writeback_cache
python3 - "$SRC.big" "$MNT/direct" <<'EOF' || fail "write(2) on a full volume"
import errno, os, sys
src = open(sys.argv[1], "rb").read()
fd = os.open(sys.argv[2], os.O_CREAT | os.O_WRONLY, 0o644)
off = 0
try:
    while off < len(src):
        off += os.write(fd, src[off:off + (1 << 20)])
    sys.exit("100 MiB were accepted on a 64 MiB volume")
except OSError as e:
    if e.errno != errno.ENOSPC:
        raise
os.close(fd)  # nothing was dropped: close reports no error
data = open(sys.argv[2], "rb").read()
if data != src[:off]:
    sys.exit(f"the file holds {len(data)} bytes, not the {off} accepted")
print(f"{off >> 20} MiB accepted, then ENOSPC")
EOF
grep -q "dropped (ENOSPC was reported)" "$WORK/mount.log" && fail "accepted data was dropped"
sum=$(sha256sum < "$MNT/direct")
fuse_umount
fuse_mount
[ "$(sha256sum < "$MNT/direct")" = "$sum" ] || fail "the accepted data differs after a remount"
fuse_umount
fuse_fsck > /dev/null
finish
