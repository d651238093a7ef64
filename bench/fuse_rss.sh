#!/usr/bin/env bash
# Benchmark (not a CTest test): the FUSE daemon's memory stays bounded. Writes SIZE (default
# 4 GiB) of incompressible, non-deduplicating data to ONE open file through `permfs mount
# -o hot_tier_mb=64` and reports the daemon's peak RSS (VmHWM from /proc/PID/status), which must
# stay under 256 MiB. Run as root.
#   bench/fuse_rss.sh PATH_TO_PERMFS [SIZE_MIB=4096] [HOT_TIER_MB=64]
set -euo pipefail
PERMFS=$(realpath "${1:?usage: $0 PATH_TO_PERMFS [SIZE_MIB] [HOT_TIER_MB]}")
SIZE_MIB=${2:-4096}
HOT_MB=${3:-64}
LIMIT_KIB=$((256 * 1024))
WORK=$(mktemp -d "${TMPDIR:-/tmp}/permfs-rss.XXXXXX")
MNT=$WORK/mnt
mkdir "$MNT"
DAEMON=
cleanup() {
  mountpoint -q "$MNT" 2>/dev/null && { fusermount3 -u "$MNT" || fusermount3 -uz "$MNT"; }
  [ -n "$DAEMON" ] && wait "$DAEMON" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
"$PERMFS" mkfs "$WORK/img" --size $((SIZE_MIB * 2 + 2048))M -q
"$PERMFS" mount "$WORK/img" "$MNT" -f -o "hot_tier_mb=$HOT_MB" 2>"$WORK/mount.log" &
DAEMON=$!
for _ in $(seq 100); do mountpoint -q "$MNT" && break; sleep 0.1; done
mountpoint -q "$MNT" || { cat "$WORK/mount.log"; exit 1; }
hwm() { awk '/VmHWM/ {print $2}' "/proc/$DAEMON/status"; }
echo "daemon pid $DAEMON, VmHWM after mount: $(hwm) KiB"
# Incompressible, never-repeating data: AES-CTR keystream (fast, unlike /dev/urandom).
t0=$(date +%s.%N)
{ openssl enc -aes-128-ctr -pass pass:permfs -nosalt -pbkdf2 </dev/zero 2>/dev/null || true; } |
  head -c $((SIZE_MIB << 20)) |
  dd of="$MNT/big" bs=1M iflag=fullblock conv=fsync status=none &
WRITER=$!
n=0
while kill -0 "$WRITER" 2>/dev/null; do
  sleep 1
  n=$((n + 1))
  if [ $((n % 5)) -eq 0 ] && [ -e "$MNT/big" ]; then
    echo "  ${n}s: $(( $(stat -c %s "$MNT/big" 2>/dev/null || echo 0) >> 20 )) MiB written," \
         "daemon RSS $(awk '/VmRSS/ {print $2}' "/proc/$DAEMON/status") KiB (anon $(awk '/RssAnon/ {print $2}' "/proc/$DAEMON/status"), file $(awk '/RssFile/ {print $2}' "/proc/$DAEMON/status")), VmHWM $(hwm) KiB"
  fi
done
wait "$WRITER"
t1=$(date +%s.%N)
peak=$(hwm)
size=$(stat -c %s "$MNT/big")
echo "wrote $((size >> 20)) MiB in $(echo "$t1 - $t0" | bc) s ($(echo "scale=1; $size / 1048576 / ($t1 - $t0)" | bc) MiB/s)"
echo "daemon peak RSS (VmHWM): $peak KiB = $((peak / 1024)) MiB (limit 256 MiB, hot tier $HOT_MB MiB)"
fusermount3 -u "$MNT"
wait "$DAEMON"
DAEMON=
"$PERMFS" fsck "$WORK/img"
if [ "$peak" -ge "$LIMIT_KIB" ]; then
  echo "FAIL: peak RSS $peak KiB >= $LIMIT_KIB KiB"
  exit 1
fi
echo "PASS"
