# Shared helpers for the FUSE integration scripts (sourced). Usage:
#   source lib.sh PATH_TO_PERMFS [IMAGE_SIZE]
# Skips (exit 77, reason on stdout) if /dev/fuse is missing; makes $WORK (temporary), $IMG and
# $MNT; the EXIT trap always unmounts (lazily if it must), stops the daemon and removes $WORK.
# fuse_mount [OPTS] / fuse_umount / fuse_fsck / fail MSG / finish (prints the verdict, exits).
# PERMFS_FUSE_MOUNT_OPTS adds options to every mount; with PERMFS_FUSE_EXPECT_URING=1 (the
# io_uring variants: skipped where the kernel has none) every clean unmount must report requests
# served over io_uring, and fuse.enable_uring is put back as it was on exit.
set -uo pipefail
PERMFS=$(realpath "${1:?usage: $0 PATH_TO_PERMFS}")
IMAGE_SIZE=${2:-8G}
if [ ! -e /dev/fuse ]; then
  echo "SKIP: /dev/fuse is missing; the FUSE integration tests need it"
  exit 77
fi
URING_PARAM=/sys/module/fuse/parameters/enable_uring
URING_SAVED=$(cat "$URING_PARAM" 2>/dev/null || true)
if [ -n "${PERMFS_FUSE_EXPECT_URING:-}" ] && [ -z "$URING_SAVED" ]; then
  echo "SKIP: this kernel has no FUSE over io_uring (Linux 6.14+, CONFIG_FUSE_IO_URING)"
  exit 77
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/permfs-fuse.XXXXXX")
chmod 755 "$WORK"
IMG=$WORK/img
MNT=$WORK/mnt
mkdir -p "$MNT"
DAEMON=
failures=0
T0=$(date +%s)

fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
step() { echo "== [$(( $(date +%s) - T0 ))s] $*"; }

cleanup() {
  cd /
  if mountpoint -q "$MNT" 2>/dev/null; then
    fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -uz "$MNT" 2>/dev/null
  fi
  if [ -n "$DAEMON" ] && kill -0 "$DAEMON" 2>/dev/null; then
    sleep 1
    kill -9 "$DAEMON" 2>/dev/null
  fi
  if [ -n "$URING_SAVED" ]; then echo "$URING_SAVED" > "$URING_PARAM" 2>/dev/null; fi
  if [ -z "${PERMFS_FUSE_KEEP:-}" ] && ! mountpoint -q "$MNT" 2>/dev/null; then rm -rf "$WORK"; fi
}
trap cleanup EXIT

"$PERMFS" mkfs "$IMG" --size "$IMAGE_SIZE" -q || { echo "FAIL: mkfs"; exit 1; }

fuse_mount() {
  local opts=${1:-}
  if [ -n "${PERMFS_FUSE_MOUNT_OPTS:-}" ]; then opts=${opts:+$opts,}$PERMFS_FUSE_MOUNT_OPTS; fi
  if [ -n "$opts" ]; then
    "$PERMFS" mount "$IMG" "$MNT" -f -o "$opts" >>"$WORK/mount.log" 2>&1 &
  else
    "$PERMFS" mount "$IMG" "$MNT" -f >>"$WORK/mount.log" 2>&1 &
  fi
  DAEMON=$!
  local i
  for i in $(seq 1 1000); do
    mountpoint -q "$MNT" && return 0
    if ! kill -0 "$DAEMON" 2>/dev/null; then
      wait "$DAEMON"
      echo "FAIL: permfs mount exited with $?:" >&2
      cat "$WORK/mount.log" >&2
      DAEMON=
      exit 1
    fi
    sleep 0.01
  done
  echo "FAIL: mount did not appear within 10 s" >&2
  cat "$WORK/mount.log" >&2
  exit 1
}

# Clean unmount: fusermount3 -u (retried while busy), the daemon must exit 0.
fuse_umount() {
  cd /
  local i
  for i in $(seq 1 100); do
    fusermount3 -u "$MNT" 2>/dev/null && break
    mountpoint -q "$MNT" || break
    sleep 0.1
  done
  if mountpoint -q "$MNT"; then
    fail "fusermount3 -u $MNT keeps failing"
    return 1
  fi
  local rc=0
  wait "$DAEMON" || rc=$?
  DAEMON=
  if [ "$rc" -ne 0 ]; then
    fail "permfs mount exited with $rc"
    tail -20 "$WORK/mount.log" >&2
  elif [ -n "${PERMFS_FUSE_EXPECT_URING:-}" ]; then
    local served
    served=$(grep -o 'served [0-9]* requests over io_uring' "$WORK/mount.log" | tail -1 | awk '{print $2}')
    if [ -z "$served" ] || [ "$served" -eq 0 ] || grep -q "io_uring not used" "$WORK/mount.log"; then
      fail "expected requests served over io_uring:"
      tail -20 "$WORK/mount.log" >&2
    fi
  fi
}

fuse_fsck() {
  local out rc=0
  out=$("$PERMFS" fsck "$IMG" 2>&1) || rc=$?
  if [ "$rc" -ne 0 ]; then
    fail "permfs fsck exited $rc (expected 0):"
    echo "$out" | head -40 >&2
  else
    echo "$out"
  fi
}

finish() {
  step "done"
  if [ "$failures" -ne 0 ]; then
    echo "$failures failure(s)"
    exit 1
  fi
  echo "PASS"
  exit 0
}
