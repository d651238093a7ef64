#!/usr/bin/env bash
# stress-ng's filesystem stressors with --verify through a real FUSE mount, all at once: data
# written and read back (hdd sequential and random, iomix, mmap'd files, copy_file_range,
# sendfile, readahead), holes (fallocate, punch, SEEK_DATA/SEEK_HOLE on files being written),
# namespace churn (rename, link, symlink, dir, dentry), attributes (chmod, chown, utime, xattr)
# and locks. Any stressor failing, a daemon that does not exit cleanly or an fsck finding fails
# the test. (stress-ng found two data bugs here: SEEK_DATA missing unwritten-back data, and
# appends undone by a concurrent chmod/mtime update.)
# Usage: stress_ng_test.sh PATH_TO_PERMFS [SECONDS]
source "$(dirname "$0")/lib.sh" "$1" 8G
SECS=${2:-8}
if ! command -v stress-ng >/dev/null; then
  echo "SKIP: stress-ng is not installed (scripts/install-deps.sh installs it)"
  exit 77
fi

fuse_mount allow_other
mkdir "$MNT/s" || fail "mkdir"
step "stress-ng --verify, ${SECS}s"
rc=0
(cd "$MNT/s" && stress-ng --temp-path . --verify --timeout "${SECS}s" --metrics-brief \
    --hdd 1 --hdd 1 --hdd-opts wr-rnd,rd-rnd --iomix 1 --mmap 1 --mmap-file --copy-file 1 \
    --sendfile 1 --readahead 1 --fallocate 1 --fpunch 1 --seek 2 --seek-punch --sync-file 1 \
    --rename 2 --link 1 --symlink 1 --dir 1 --dentry 1 --chmod 1 --chown 1 --utime 1 \
    --xattr 1 --lockf 1 --flock 1 --fcntl 1 > "$WORK/stress.log" 2>&1) || rc=$?
if [ "$rc" -ne 0 ]; then
  fail "stress-ng exited $rc:"
  grep -E "fail|error" "$WORK/stress.log" | head -20 >&2
fi
grep -E "successful|unsuccessful" "$WORK/stress.log"
# Nothing may be left behind once stress-ng has removed its files (orphans reclaimed).
left=$(find "$MNT/s" -mindepth 1 | wc -l)
[ "$left" -eq 0 ] || fail "$left entries left under the stress directory"
fuse_umount
fuse_fsck
# A clean unmount reclaims what was unlinked while open: no orphan waits for the next mount.
orphans=$("$PERMFS" fsck "$IMG" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["counts"]["orphans"])')
[ "$orphans" = 0 ] || fail "$orphans orphan(s) left after a clean unmount"
finish
