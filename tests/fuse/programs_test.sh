#!/usr/bin/env bash
# Real programs through a real FUSE mount: git (init, commits, repack, fsck --strict), building a
# small C project with make -j2, a tar round trip with xattrs and hard links, and cp -a of
# /usr/share/doc packages compared with diff -r; everything re-checked after a remount; fsck 0.
# Usage: programs_test.sh PATH_TO_PERMFS
source "$(dirname "$0")/lib.sh" "$1" 8G

fuse_mount allow_other

# (Each block runs in a subshell with set -e; the status is checked after it — never as part of an
# || list, which would disable set -e inside.)
# ---- git --------------------------------------------------------------------------------------
step "git"
(
  set -e
  mkdir "$MNT/repo" && cd "$MNT/repo"
  git init -q -b main .
  git config user.email t@example.com && git config user.name tester
  for i in 1 2 3 4 5; do seq 1 $((i * 1000)) > "file$i.txt"; done
  mkdir -p src/deep/er && echo 'int main(void){return 0;}' > src/deep/er/m.c
  head -c 300000 /dev/urandom > blob.bin
  git add -A && git commit -q -m first
  sed -i 's/^5$/five/' file1.txt && git mv file2.txt renamed.txt && rm file3.txt
  git add -A && git commit -q -m second
  git checkout -q -b side && echo side >> file4.txt && git commit -qam side
  git checkout -q main && git merge -q --no-edit side
  git gc -q --aggressive
  git fsck --strict --no-progress
  [ "$(git rev-list --count HEAD)" = 3 ]
  git status --porcelain | (! grep .)
)
[ $? -eq 0 ] || fail "git workflow in the mount"

# ---- a small C project ------------------------------------------------------------------------
step "make"
(
  set -e
  mkdir "$MNT/proj" && cd "$MNT/proj"
  cat > util.h <<'H'
int add(int a, int b);
int mul(int a, int b);
H
  cat > add.c <<'C'
#include "util.h"
int add(int a, int b) { return a + b; }
C
  cat > mul.c <<'C'
#include "util.h"
int mul(int a, int b) { int r = 0; for (int i = 0; i < b; ++i) r = add(r, a); return r; }
C
  cat > main.c <<'C'
#include <stdio.h>
#include "util.h"
int main(void) { printf("%d %d\n", add(2, 3), mul(6, 7)); return 0; }
C
  printf 'CFLAGS=-O2 -Wall -Werror\nprog: main.o add.o mul.o\n\t$(CC) -o $@ $^\n%%.o: %%.c util.h\n\t$(CC) $(CFLAGS) -c -o $@ $<\nclean:\n\trm -f prog *.o\n' > Makefile
  make -s -j2
  [ "$(./prog)" = "5 42" ]
  touch add.c && sleep 0.01 && make -s -j2 | (! grep -q .) ; [ "$(./prog)" = "5 42" ]
  make -s clean && [ ! -e prog ] && make -s -j2 && [ "$(./prog)" = "5 42" ]
)
[ $? -eq 0 ] || fail "building and running a C project in the mount"

# ---- tar round trip with xattrs and hard links ----------------------------------------------
step "tar"
SRC=$WORK/src
(
  set -e
  mkdir -p "$SRC/a/b/c" "$SRC/empty"
  for i in $(seq 1 50); do head -c $((i * 997)) /dev/urandom > "$SRC/a/f$i"; done
  head -c 5000000 /dev/urandom > "$SRC/a/b/big"
  truncate -s 20M "$SRC/a/b/sparse" && echo tail >> "$SRC/a/b/sparse"
  ln "$SRC/a/f1" "$SRC/a/b/hard1" && ln "$SRC/a/f1" "$SRC/a/b/c/hard2" && ln "$SRC/a/f2" "$SRC/hard3"
  ln -s ../f3 "$SRC/a/b/sym" && ln -s /nonexistent "$SRC/dangling"
  mkfifo "$SRC/a/fifo"
  chmod 4755 "$SRC/a/f4" && chmod 1777 "$SRC/empty" && chmod 600 "$SRC/a/f5"
  chown 1234:4321 "$SRC/a/f6"
  setfattr -n user.one -v hello "$SRC/a/f1"
  setfattr -n user.two -v 0x$(head -c 2000 /dev/urandom | od -An -tx1 | tr -d ' \n') "$SRC/a/f7"
  setfattr -n user.dir -v d "$SRC/a/b"
  touch -h -d '1999-12-31 23:59:59.123456789' "$SRC/a/f8" "$SRC/a/b/sym"
  touch -d '2099-01-01' "$SRC/a/f9"
  tar --xattrs --xattrs-include='user.*' -cpf "$WORK/src.tar" -C "$SRC" .
  mkdir "$MNT/tarx"
  tar --xattrs --xattrs-include='user.*' -xpf "$WORK/src.tar" -C "$MNT/tarx"
)
[ $? -eq 0 ] || fail "tar: building the tree or extracting it into the mount"
# listing: path type mode uid gid nlink size mtime(ns) symlink-target
# (directory sizes are filesystem-specific and left out).
listing() {
  (cd "$1" && find . -mindepth 1 \( -type d -printf '%P d %m %U %G %n - %T@\n' \) -o \
     -printf '%P %y %m %U %G %n %s %T@ %l\n' | sort)
}
# user.* xattrs of every entry, in path order.
xattrs() {
  (cd "$1" && find . -mindepth 1 | sort | while IFS= read -r f; do
     getfattr -h -d -m '^user\.' -e hex "$f" 2>/dev/null; done)
}
compare_tree() {  # compare_tree A B what
  # (diff -r reports special files it cannot compare; the listing below covers them)
  diff -r --no-dereference "$1" "$2" 2>&1 | grep -v ' is a fifo while file ' > "$WORK/diff.out"
  [ -s "$WORK/diff.out" ] && { fail "$3: diff -r differs"; head -20 "$WORK/diff.out" >&2; }
  diff <(listing "$1") <(listing "$2") > "$WORK/diff.out" || { fail "$3: metadata differs"; head -20 "$WORK/diff.out" >&2; }
  diff <(xattrs "$1") <(xattrs "$2") > "$WORK/diff.out" || { fail "$3: xattrs differ"; head -20 "$WORK/diff.out" >&2; }
}
compare_tree "$SRC" "$MNT/tarx" "tar extract into the mount"
[ "$(stat -c %h "$MNT/tarx/a/f1")" = 3 ] || fail "hard link count of a/f1 is $(stat -c %h "$MNT/tarx/a/f1")"
[ "$(stat -c %i "$MNT/tarx/a/f1")" = "$(stat -c %i "$MNT/tarx/a/b/c/hard2")" ] || fail "hard links are not one inode"
[ "$(getfattr --only-values -n user.one "$MNT/tarx/a/f1")" = hello ] || fail "xattr user.one"
# ...and back out of the mount.
mkdir "$WORK/back"
tar --xattrs --xattrs-include='user.*' -cpf "$WORK/back.tar" -C "$MNT/tarx" . || fail "tar -c from the mount"
tar --xattrs --xattrs-include='user.*' -xpf "$WORK/back.tar" -C "$WORK/back" || fail "tar -x of the mount's archive"
compare_tree "$SRC" "$WORK/back" "tar round trip out of the mount"

# ---- cp -a of /usr/share/doc packages --------------------------------------------------------
step "cp -a"
pkgs=()
for p in bash coreutils git tar make gzip gcc-12 libc6 python3 perl openssl; do
  [ -d "/usr/share/doc/$p" ] && [ ! -L "/usr/share/doc/$p" ] && pkgs+=("/usr/share/doc/$p")
done
[ "${#pkgs[@]}" -ge 3 ] || fail "fewer than 3 /usr/share/doc packages found"
mkdir "$MNT/doc"
cp -a "${pkgs[@]}" "$MNT/doc/" || fail "cp -a into the mount"
for p in "${pkgs[@]}"; do
  diff -r --no-dereference "$p" "$MNT/doc/$(basename "$p")" > "$WORK/diff.out" 2>&1 || { fail "diff -r $p"; head "$WORK/diff.out" >&2; }
  diff <(listing "$p") <(listing "$MNT/doc/$(basename "$p")") > "$WORK/diff.out" || { fail "metadata of $p"; head "$WORK/diff.out" >&2; }
done
du -sh "$MNT/doc"
df -h "$MNT"

# ---- after a remount -------------------------------------------------------------------------
step "remount and re-verify"
fuse_umount
fuse_mount allow_other
(cd "$MNT/repo" && git fsck --strict --no-progress && [ "$(git rev-list --count HEAD)" = 3 ]) || fail "git fsck after remount"
[ "$("$MNT/proj/prog")" = "5 42" ] || fail "the built program after remount"
compare_tree "$SRC" "$MNT/tarx" "tar tree after remount"
for p in "${pkgs[@]}"; do
  diff -r --no-dereference "$p" "$MNT/doc/$(basename "$p")" > /dev/null 2>&1 || fail "diff -r $p after remount"
done
fuse_umount

# ---- noxattr and read_cache_mb= ----------------------------------------------------------------
step "noxattr, read_cache_mb"
fuse_mount noxattr,read_cache_mb=0
getfattr -n user.one "$MNT/tarx/a/f1" > "$WORK/xa.out" 2>&1 && fail "getfattr works under noxattr"
grep -q "Operation not supported" "$WORK/xa.out" || { fail "getfattr under noxattr: $(cat "$WORK/xa.out")"; }
setfattr -n user.new -v x "$MNT/tarx/a/f1" 2> /dev/null && fail "setfattr works under noxattr"
diff -r --no-dereference "$SRC" "$MNT/tarx" 2>&1 | grep -v ' is a fifo while file ' > "$WORK/diff.out"
[ -s "$WORK/diff.out" ] && { fail "data under noxattr, no read cache"; head "$WORK/diff.out" >&2; }
echo noxattr-write > "$MNT/tarx/nx" || fail "write under noxattr"
fuse_umount
"$PERMFS" mount "$IMG" "$MNT" -f -o read_cache_mb=x > "$WORK/bad.out" 2>&1 && fail "read_cache_mb=x accepted"
grep -q "bad value" "$WORK/bad.out" || fail "read_cache_mb=x: $(cat "$WORK/bad.out")"
fuse_mount read_cache_mb=1
[ "$(getfattr --only-values -n user.one "$MNT/tarx/a/f1")" = hello ] || fail "xattr lost after a noxattr mount"
[ "$(cat "$MNT/tarx/nx")" = noxattr-write ] || fail "noxattr write lost"
rm "$MNT/tarx/nx"
compare_tree "$SRC" "$MNT/tarx" "tar tree with a 1 MiB read cache"
fuse_umount
fuse_fsck
finish
