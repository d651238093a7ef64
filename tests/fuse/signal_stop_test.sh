#!/usr/bin/env bash
# SIGTERM and SIGHUP stop the daemon cleanly while programs still hold files open:
#  - pages written through a descriptor that is still open (the kernel's writeback cache holds
#    them: no close, no fsync) are in the volume after the stop;
#  - write-backs the daemon asked the kernel for (lseek SEEK_DATA on a file that has a writer) do
#    not hang the stop: the daemon exits within seconds and no program is left stuck in the
#    kernel. (Before: the session loop ended first and both were lost or hung for good.)
# Usage: signal_stop_test.sh PATH_TO_PERMFS
source "$(dirname "$0")/lib.sh" "$1" 1G

# A hung stop must fail the test, not hang it: aborting the FUSE connection releases whatever
# waits on it. mount_conn records the connection (fusectl's name: the kernel's dev_t) per mount.
CONN=
mount_conn() {
  fuse_mount
  CONN=$(mountpoint -d "$MNT" | awk -F: '{print $1 * 1048576 + $2}')
}
abort_conn() {
  local f=/sys/fs/fuse/connections/$CONN/abort
  [ -e "$f" ] || mount -t fusectl none /sys/fs/fuse/connections 2>/dev/null
  [ -e "$f" ] && echo 1 > "$f"
}

# Waits up to 20 s for the daemon to exit after a signal; its exit status must be 0.
stopped_cleanly() {
  local i
  for i in $(seq 200); do kill -0 "$DAEMON" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$DAEMON" 2>/dev/null; then
    fail "$1: the daemon is still running 20 s after the signal"
    abort_conn
    sleep 1
  fi
  local rc=0
  wait "$DAEMON" || rc=$?
  DAEMON=
  [ "$rc" -eq 0 ] || { fail "$1: the daemon exited with $rc"; tail -5 "$WORK/mount.log" >&2; }
  for i in $(seq 50); do mountpoint -q "$MNT" || break; sleep 0.1; done
  mountpoint -q "$MNT" && fusermount3 -uz "$MNT"
  return 0
}

# The programs must be gone once killed: a process stuck in the kernel on the dead connection
# ignores SIGKILL.
reaped() {
  local pid i
  for pid in "$@"; do kill -9 "$pid" 2>/dev/null; done
  for i in $(seq 50); do
    local alive=0
    for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && return 0
    sleep 0.1
  done
  fail "$2: programs still alive after SIGKILL (stuck in the kernel)"
  abort_conn
}

mount_conn
head -c $((3 << 20)) /dev/urandom > "$WORK/expect"
for sig in TERM HUP; do  # (a background job has SIGINT ignored)
  step "SIG$sig with written pages behind an open descriptor"
  python3 - "$MNT/open-$sig" "$WORK/expect" "$WORK/ready" <<'EOF' &
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o644)
data = open(sys.argv[2], "rb").read()
os.write(fd, data)           # into the kernel's page cache; nothing closes or syncs it
open(sys.argv[3], "w").close()
time.sleep(120)
EOF
  writer=$!
  for _ in $(seq 300); do [ -e "$WORK/ready" ] && break; sleep 0.1; done
  [ -e "$WORK/ready" ] || fail "SIG$sig: the writer did not finish writing in 30 s"
  rm -f "$WORK/ready"
  kill "-$sig" "$DAEMON"
  stopped_cleanly "SIG$sig"
  reaped "$writer" "SIG$sig"
  wait "$writer" 2>/dev/null
  fuse_fsck > /dev/null
  mount_conn
  cmp -s "$MNT/open-$sig" "$WORK/expect" ||
    fail "SIG$sig: data written before the signal through a still-open descriptor is not all" \
         "there ($(stat -c %s "$MNT/open-$sig" 2>&1) bytes)"
done

# Four programs that dirty a page and then ask where data is (lseek SEEK_DATA), in a loop: the
# daemon has the kernel write the page back first, so write-backs are in flight all the time.
SEEKER='
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
i = 0
try:
    while True:
        os.pwrite(fd, b"x" * 4096, (i % 256) * 8192)
        os.lseek(fd, 0, os.SEEK_DATA)
        i += 1
except OSError:
    pass'
for round in 1 2 3; do
  step "SIGTERM during lseek write-backs, round $round"
  pids=()
  for j in 1 2 3 4; do
    python3 -c "$SEEKER" "$MNT/seek$j" &
    pids+=($!)
  done
  sleep 0.5
  kill -TERM "$DAEMON"
  stopped_cleanly "SIGTERM during write-backs (round $round)"
  reaped "${pids[@]}" "SIGTERM during write-backs (round $round)"
  wait "${pids[@]}" 2>/dev/null
  fuse_fsck > /dev/null
  mount_conn
done
fuse_umount
fuse_fsck > /dev/null
finish
