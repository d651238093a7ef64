#!/usr/bin/env bash
# `mount -t fuse.permfs IMAGE DIR` and an /etc/fstab entry work through the mount helper
# (/sbin/mount.fuse.permfs, a symlink to the permfs binary), and SIGTERM to the daemon unmounts
# cleanly: the next mount replays nothing and fsck is clean.
set -euo pipefail
PERMFS=$(readlink -f "$1")
[ -c /dev/fuse ] || { echo "SKIP: /dev/fuse missing"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root to install the mount helper"; exit 77; }
W=$(mktemp -d)
HELPER=/sbin/mount.fuse.permfs
made_helper=0
cleanup() {
  local rc=$?
  mountpoint -q "$W/mnt" && { umount "$W/mnt" 2>/dev/null || fusermount3 -uz "$W/mnt"; }
  sed -i "\|$W/img|d" /etc/fstab 2>/dev/null || true
  [ "$made_helper" = 1 ] && rm -f "$HELPER"
  rm -rf "$W"
  exit "$rc"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
wait_released() {  # the daemon exits after an unmount; wait until it dropped the image lock
  for _ in $(seq 200); do flock -n "$W/img" true 2>/dev/null && return 0; sleep 0.1; done
  fail "daemon did not release the image"
}
if [ ! -e "$HELPER" ]; then ln -s "$PERMFS" "$HELPER"; made_helper=1; fi
"$PERMFS" mkfs "$W/img" --size 128M >/dev/null
mkdir "$W/mnt"

mount -t fuse.permfs "$W/img" "$W/mnt" -o rw,relatime,hot_tier_mb=32 || fail "mount -t fuse.permfs failed"
mountpoint -q "$W/mnt" || fail "mount -t fuse.permfs did not mount"
mount | grep -F "$W/mnt" | grep -q "fuse.permfs" || fail "wrong filesystem type in mount table"
echo hello > "$W/mnt/a"
umount "$W/mnt"
wait_released

echo "$W/img $W/mnt fuse.permfs defaults,noauto 0 0" >> /etc/fstab
mount "$W/mnt" || fail "mount through /etc/fstab failed"
[ "$(cat "$W/mnt/a")" = hello ] || fail "data lost across the fstab mount"
dd if=/dev/urandom of="$W/mnt/b" bs=1M count=8 status=none
sum=$(sha256sum < "$W/mnt/b")
# SIGTERM to the daemon: a clean unmount with everything durable.
pid=$(pgrep -f "permfs.*$W/img" | head -1)
[ -n "$pid" ] || fail "no daemon found"
kill -TERM "$pid"
for _ in $(seq 100); do mountpoint -q "$W/mnt" || break; sleep 0.1; done
mountpoint -q "$W/mnt" && fail "SIGTERM did not unmount"
wait_released
"$PERMFS" fsck "$W/img" >/dev/null || fail "fsck after SIGTERM exited $?"
mount "$W/mnt" || fail "remount failed"
[ "$(sha256sum < "$W/mnt/b")" = "$sum" ] || fail "data written before SIGTERM changed"
umount "$W/mnt"
wait_released
echo "PASS: mount -t fuse.permfs, fstab and SIGTERM unmount"
