#!/usr/bin/env bash
# Differential fuzzing through a real FUSE mount: diff_fuzz.py runs the same random operations
# (three credentials, open flags, descriptors kept across operations, namespace calls, set-ID
# bits, ACLs, xattrs, fallocate, copy_file_range) on PermFS and on tmpfs and requires identical
# results; then the trees must still match after an unmount, fsck and remount. (It found O_TRUNC
# leaving the old contents in the volume, removed directories unreachable through their open
# descriptors, chown(-1, -1) keeping set-ID bits, and attributes handed out with a ctime the
# volume did not have.)
# Usage: diff_fuzz_test.sh PATH_TO_PERMFS [OPS]
# Environment: PERMFS_DIFF_FUZZ_SEED (default 1; each run also tries one time-based seed, printed).
source "$(dirname "$0")/lib.sh" "$1" 8G
OPS=${2:-6000}
FUZZ=$(dirname "$(realpath "$0")")/diff_fuzz.py
if [ "$(id -u)" -ne 0 ]; then
  echo "SKIP: needs root (a tmpfs reference and three credentials)"
  exit 77
fi
REF=$WORK/ref
mkdir -p "$REF"
mount -t tmpfs -o size=1G,mode=0755 permfs-diff-ref "$REF" || { echo "FAIL: tmpfs"; exit 1; }
unmount_ref() { umount "$REF" 2>/dev/null; cleanup; }
trap unmount_ref EXIT

fuse_mount allow_other
# The fixed seed also checks, after every operation, that what the kernel caches for each inode
# is what the daemon answers (--coherence); the time-based one covers more ground in the time.
extra=--coherence
for seed in "${PERMFS_DIFF_FUZZ_SEED:-1}" "$(date +%s)"; do
  step "diff_fuzz seed $seed, $OPS operations ${extra}"
  rm -rf "$MNT/fz" "$REF/fz"
  python3 "$FUZZ" run "$MNT" "$REF" --ops "$OPS" --seed "$seed" --tree-every 200 $extra \
    || fail "diff_fuzz seed $seed (rerun: diff_fuzz.py run MNT REF --ops $OPS --seed $seed $extra --trace)"
  extra=
done
fuse_umount
step "fsck"
fuse_fsck > /dev/null
fuse_mount allow_other
step "compare after remount"
python3 "$FUZZ" compare "$MNT" "$REF" || fail "trees differ after remount"
fuse_umount
finish
