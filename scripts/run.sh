#!/usr/bin/env bash
# The README's run command: installs missing Debian dependencies, builds the `permfs` tool
# (default preset) and shows the engine working on a real directory tree:
#   mkfs a 1 GiB sparse image -> mount it (FUSE) -> copy a tree in with cp -a -> ls / cat / df ->
#   verify every byte (sha256 of sampled files, and a diff -r of the whole tree) -> remove part
#   of the tree -> unmount -> info (nothing to replay) -> fsck (must be clean) -> "OK".
# Where /dev/fuse is unavailable the same steps run through the library-level
# `permfs cp/cat/ls/rm` commands instead of a mount (PERMFS_DEMO_MODE=library forces that).
#
# Environment:
#   PERMFS_DEMO_DIR   where to put the image and scratch files (default: a new temp dir,
#                     removed at the end)
#   PERMFS_DEMO_SRC   tree to copy in (default: /usr/share/doc, else this repository's src/)
#   PERMFS_DEMO_MB    cap on the data copied in, in MiB (default 200)
#   PERMFS_DEMO_MODE  fuse (default when /dev/fuse works) or library
#   JOBS              parallel build jobs (default: nproc)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

step() { printf '\n=== %s\n' "$*"; }
die() { echo "run.sh: FAILED: $*" >&2; exit 1; }

step "dependencies"
scripts/install-deps.sh

step "build (preset default, target permfs)"
cmake --preset default >/dev/null
cmake --build --preset default --target permfs_cli -j "${JOBS:-$(nproc)}"
PERMFS="$ROOT/build/default/bin/permfs"
[ -x "$PERMFS" ] || die "the build did not produce $PERMFS"
"$PERMFS" --version

# ---- Demo workspace -----------------------------------------------------------------------------
if [ -n "${PERMFS_DEMO_DIR:-}" ]; then
  DEMO=$PERMFS_DEMO_DIR
  mkdir -p "$DEMO"
  rm -rf "$DEMO/permfs-demo.img" "$DEMO/out"
else
  DEMO=$(mktemp -d "${TMPDIR:-/tmp}/permfs-demo.XXXXXX")
fi
IMG="$DEMO/permfs-demo.img"
OUT="$DEMO/out"
SRC=${PERMFS_DEMO_SRC:-/usr/share/doc}
[ -d "$SRC" ] || SRC="$ROOT/src"
SRC=$(cd "$SRC" && pwd)
CAP_KB=$(( ${PERMFS_DEMO_MB:-200} * 1024 ))

# ---- Filesystem access used by the demo: a FUSE mount, or the library commands ---------------
MODE=${PERMFS_DEMO_MODE:-}
if [ -z "$MODE" ]; then
  if [ -c /dev/fuse ] && command -v fusermount3 >/dev/null; then MODE=fuse; else MODE=library; fi
fi
MNT="$DEMO/mnt"
mounted=0
cleanup_mount() {
  if [ "$mounted" = 1 ]; then fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -uz "$MNT" || true; fi
}
trap 'cleanup_mount; [ -z "${PERMFS_DEMO_DIR:-}" ] && rm -rf "$DEMO"' EXIT
fs_mkfs() { "$PERMFS" mkfs "$IMG" --size 1G --label permfs-demo; }
if [ "$MODE" = fuse ]; then
  fs_mount() {
    mkdir -p "$MNT"
    "$PERMFS" mount "$IMG" "$MNT" -o hot_tier_mb=128
    mounted=1
    for _ in $(seq 100); do mountpoint -q "$MNT" && return 0; sleep 0.1; done
    die "the mount did not come up"
  }
  fs_umount() {
    "$PERMFS" umount "$MNT"
    mounted=0
    # The daemon checkpoints and exits after the unmount; wait until it released the image.
    for _ in $(seq 200); do
      flock -n "$IMG" true 2>/dev/null && return 0
      sleep 0.1
    done
    die "the mount daemon did not exit"
  }
  fs_mkdir()    { mkdir -p "$MNT$1"; }
  fs_copy_in()  { local dst=$1; shift; cp -a "$@" "$MNT$dst/"; }
  fs_copy_out() { cp -a "$MNT$1" "$2"; }
  fs_cat()      { cat "$MNT$1"; }
  fs_ls()       { local args=() p; for p in "$@"; do case $p in -*) args+=("$p") ;; *) args+=("$MNT$p") ;; esac; done; ls "${args[@]}"; }
  fs_rm()       { local p; for p in "$@"; do rm -rf "$MNT$p"; done; }
  fs_df()       { df -h "$MNT"; }
else
  fs_mount()    { :; }
  fs_umount()   { :; }
  fs_mkdir()    { "$PERMFS" mkdir -p "$IMG" "$1"; }
  fs_copy_in()  { local dst=$1; shift; "$PERMFS" cp -r "$@" "$IMG:$dst"; }   # host paths -> dir
  fs_copy_out() { "$PERMFS" cp -r "$IMG:$1" "$2"; }                          # dir -> new host dir
  fs_cat()      { "$PERMFS" cat "$IMG" "$1"; }
  fs_ls()       { "$PERMFS" ls "$IMG" "$@"; }
  fs_rm()       { "$PERMFS" rm -r "$IMG" "$@"; }
  fs_df()       { "$PERMFS" df "$IMG"; }
fi
echo "demo mode: $MODE"

step "make a 1 GiB sparse image: $IMG"
fs_mkfs
ls -ls "$IMG"
if [ "$MODE" = fuse ]; then
  step "mount it: permfs mount $IMG $MNT"
  fs_mount
  mount | grep -F "$MNT" || true
fi

# Pick top-level entries of $SRC until the cap, so the demo stays well under 30 seconds.
entries=()
total_kb=0
while IFS= read -r e; do
  kb=$(du -sk "$SRC/$e" 2>/dev/null | cut -f1)
  [ -n "$kb" ] || continue
  if [ $((total_kb + kb)) -gt "$CAP_KB" ] && [ ${#entries[@]} -gt 0 ]; then continue; fi
  entries+=("$e")
  total_kb=$((total_kb + kb))
done < <(cd "$SRC" && find . -mindepth 1 -maxdepth 1 -readable -printf '%P\n' | LC_ALL=C sort)
[ ${#entries[@]} -gt 0 ] || die "$SRC is empty"
nfiles=$(cd "$SRC" && find "${entries[@]}" -type f | wc -l)

step "copy ${#entries[@]} entries of $SRC ($((total_kb / 1024)) MiB, $nfiles files) into the image at /demo"
fs_mkdir /demo
start=$(date +%s%N)
srcs=()
for e in "${entries[@]}"; do srcs+=("$SRC/$e"); done
fs_copy_in /demo "${srcs[@]}"
ms=$(( ($(date +%s%N) - start) / 1000000 ))
echo "copied in $((ms / 1000)).$(printf '%03d' $((ms % 1000))) s"

step "ls -l /demo (first 15 entries)"
fs_ls -l /demo >"$DEMO/ls.txt"
head -15 "$DEMO/ls.txt"
fs_ls -R /demo >"$DEMO/ls-R.txt"
echo "... $(grep -vc -e '^$' -e ':$' "$DEMO/ls-R.txt") names in the tree"

sample=$(cd "$SRC" && { find "${entries[@]}" -type f -name copyright; find "${entries[@]}" -type f -size -64k; } | sed -n 1p)
step "cat /demo/$sample (first 10 lines)"
fs_cat "/demo/$sample" >"$DEMO/cat.txt"
head -10 "$DEMO/cat.txt"

step "df"
fs_df

step "verify: sha256 of sampled files vs permfs cat"
mapfile -t all_files < <(cd "$SRC" && find "${entries[@]}" -type f | LC_ALL=C sort)
n=${#all_files[@]}
want=150
stride=$(( n > want ? n / want : 1 ))
checked=0
for ((i = 0; i < n; i += stride)); do
  f=${all_files[$i]}
  a=$(sha256sum <"$SRC/$f" | cut -d' ' -f1)
  b=$(fs_cat "/demo/$f" | sha256sum | cut -d' ' -f1)
  [ "$a" = "$b" ] || die "checksum mismatch for $f"
  checked=$((checked + 1))
done
[ "$checked" -ge 100 ] || [ "$checked" -eq "$n" ] || die "only $checked files sampled"
echo "$checked files: every checksum matches"

step "verify: copy the whole tree back out and diff it"
fs_copy_out /demo "$OUT"
for e in "${entries[@]}"; do
  diff -r --no-dereference "$SRC/$e" "$OUT/$e" >/dev/null || die "$e differs after the round trip"
done
[ "$(ls -A "$OUT" | wc -l)" -eq ${#entries[@]} ] || die "unexpected entries in the copy"
echo "diff -r: the tree copied out is identical ($(du -sh "$OUT" | cut -f1))"
rm -rf "$OUT"

half=$(( (${#entries[@]} + 1) / 2 ))
step "remove $half of the ${#entries[@]} top-level entries"
rm_paths=()
for e in "${entries[@]:0:$half}"; do rm_paths+=("/demo/$e"); done
fs_rm "${rm_paths[@]}"
left=$(fs_ls /demo | wc -l)
[ "$left" -eq $(( ${#entries[@]} - half )) ] || die "expected $(( ${#entries[@]} - half )) entries left, found $left"
fs_df
if [ "$MODE" = fuse ]; then
  step "unmount: permfs umount $MNT"
  fs_umount
fi
step "permfs info (after a clean unmount the journal needs no replay)"
"$PERMFS" info "$IMG"

step "permfs fsck"
"$PERMFS" fsck "$IMG" || die "fsck exited $?"

printf '\nOK: PermFS built; %s files copied in (%s), verified byte for byte, partly removed; fsck clean.\n' "$nfiles" "$MODE"
