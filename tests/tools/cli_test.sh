#!/usr/bin/env bash
# End-to-end test of the `permfs` tool: mkfs / cp / cat / ls / mkdir / mv / ln / rm / stat / df /
# info --json / fsck on small images in a temporary directory, including damaged images.
# Usage: cli_test.sh PATH_TO_PERMFS
set -uo pipefail
PERMFS=${1:?usage: cli_test.sh PATH_TO_PERMFS}
PERMFS=$(realpath "$PERMFS")
WORK=$(mktemp -d "${TMPDIR:-/tmp}/permfs-cli-test.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"

failures=0
checks=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
# expect RC CMD...: runs CMD, stdout -> out.txt, stderr -> err.txt; checks the exit status.
expect() {
  local want=$1
  shift
  checks=$((checks + 1))
  "$@" >out.txt 2>err.txt
  local rc=$?
  if [ "$rc" -ne "$want" ]; then
    fail "'$*' exited $rc, expected $want"
    sed 's/^/    stdout: /' out.txt | head -20 >&2
    sed 's/^/    stderr: /' err.txt | head -20 >&2
    return 1
  fi
  # Never a crash or a sanitizer report.
  if grep -qE 'Assertion|panic|AddressSanitizer|runtime error|terminate called' err.txt; then
    fail "'$*' crashed or reported a bug:"
    sed 's/^/    stderr: /' err.txt | head -20 >&2
  fi
  return 0
}
# contains FILE TEXT: FILE must contain TEXT (fixed string).
contains() {
  checks=$((checks + 1))
  grep -qF -- "$2" "$1" || { fail "$1 does not contain '$2'"; sed 's/^/    /' "$1" | head -20 >&2; }
}
json_ok() {
  checks=$((checks + 1))
  python3 -m json.tool out.txt >/dev/null || { fail "output of the last command is not valid JSON"; head -40 out.txt >&2; }
}
# json_eq EXPR VALUE: python expression over `j` (the parsed out.txt) must print VALUE.
json_eq() {
  checks=$((checks + 1))
  local got
  got=$(python3 -c "import json,sys; j=json.load(open('out.txt')); print($1)" 2>&1)
  [ "$got" = "$2" ] || fail "JSON $1 = '$got', expected '$2'"
}
P() { "$PERMFS" "$@"; }

# ---- Usage --------------------------------------------------------------------------------
expect 0 P --version && contains out.txt "on-disk format version"
expect 0 P --help && contains out.txt "mkfs"
expect 2 P
expect 2 P frobnicate
for c in mkfs info fsck ls cat cp mkdir rm mv ln stat df; do
  expect 0 P "$c" --help && contains out.txt "usage: permfs $c"
done
expect 2 P ls
expect 2 P ls img --no-such-option && contains err.txt "unknown option"
expect 2 P mkfs new.img --size 12Q && contains err.txt "invalid size"
expect 2 P mkfs new.img && contains err.txt "give --size"
expect 2 P mkfs new.img --size 64M --record-size 3000
test ! -e new.img || fail "a failed mkfs left new.img behind"

# ---- mkfs ---------------------------------------------------------------------------------
expect 0 P mkfs img --size 64M --label cli-test && contains out.txt "uuid"
contains out.txt "64.0 MiB"
test "$(stat -c %s img)" -eq $((64 << 20)) || fail "image size is not 64 MiB"
test "$(stat -c %b img)" -lt $((64 << 11)) || fail "image is not sparse"
expect 1 P mkfs img && contains err.txt "already holds a PermFS volume"
expect 1 P mkfs img --size 32M && contains err.txt "use --force"
head -c 200000 /dev/urandom >junk
truncate -s 4M junk
expect 1 P mkfs junk && contains err.txt "refusing to overwrite"
expect 0 P mkfs junk --force -q
expect 0 P mkfs img --force --size 64M --label cli-test --record-size 16K
contains out.txt "16.0 KiB"

# ---- A host tree to copy in -----------------------------------------------------------------
mkdir -p src/sub/deep src/empty
printf 'hello, permfs\n' >src/hello.txt
head -c 300000 /dev/urandom >src/sub/random.bin
cp src/sub/random.bin src/sub/deep/random-copy.bin     # a duplicate: dedupe
: >src/sub/empty-file
truncate -s 5M src/sparse.bin && printf 'tail' >>src/sparse.bin
for i in $(seq 1 120); do printf 'file %d\n' "$i" >"src/sub/deep/f$i.txt"; done
ln -s hello.txt src/link-to-hello
ln -s ../missing src/sub/dangling
ln src/hello.txt src/sub/hard-hello
chmod 0640 src/sub/random.bin
chmod 0700 src/sub/deep
touch -d '2001-02-03 04:05:06.789' src/hello.txt

expect 0 P cp -r src img:/tree
expect 0 P ls img && contains out.txt "tree"
expect 0 P ls -l img /tree && contains out.txt "link-to-hello -> hello.txt"
expect 0 P ls -R img /tree && contains out.txt "/tree/sub/deep:"
expect 0 P cat img /tree/hello.txt && contains out.txt "hello, permfs"
# Every regular file reads back identically (sha256 of the source vs `permfs cat`).
(cd src && find . -type f | sort) >files.txt
while IFS= read -r f; do
  a=$(sha256sum <"src/$f" | cut -d' ' -f1)
  b=$(P cat img "/tree/${f#./}" | sha256sum | cut -d' ' -f1)
  checks=$((checks + 1))
  [ "$a" = "$b" ] || fail "content of $f differs after the copy"
done <files.txt
expect 0 P cat img /tree/link-to-hello && contains out.txt "hello, permfs"
expect 0 P stat img /tree/sub/hard-hello && contains out.txt "Links: 2"
expect 0 P stat img /tree/hello.txt && contains out.txt "2001-02-03 04:05:06.789000000"
expect 0 P stat img /tree/sub/random.bin && contains out.txt "(0640/-rw-r-----)"

# Copy the whole tree back out and compare (contents, symlinks, modes, mtimes).
expect 0 P cp -r img:/tree back
checks=$((checks + 1))
diff -r --no-dereference src back >diff.txt 2>&1 || { fail "tree copied out differs"; head -20 diff.txt >&2; }
checks=$((checks + 1))
diff <(cd src && find . -printf '%y %m %s %T@ %P %l\n' | sort) \
     <(cd back && find . -printf '%y %m %s %T@ %P %l\n' | sort) >diff.txt ||
  { fail "modes, sizes or mtimes differ after the round trip"; head -20 diff.txt >&2; }
checks=$((checks + 1))
[ "$(stat -c %h back/sub/hard-hello)" = 2 ] || fail "hard link not preserved on the way out"

# Errors of file commands: message and exit status 1.
expect 1 P cat img /tree/nope && contains err.txt "permfs: cat: /tree/nope: No such file or directory"
expect 1 P cat img /tree/sub && contains err.txt "Is a directory"
expect 1 P ls img /tree/hello.txt/x && contains err.txt "Not a directory"
expect 1 P cp img:/tree nodir && contains err.txt "use -r"
expect 1 P rm img /tree/sub && contains err.txt "Is a directory"
expect 1 P mkdir img /tree && contains err.txt "File exists"
expect 2 P cp src other-src && contains err.txt "exactly one side"
expect 1 P ls missing.img && contains err.txt "No such file or directory"

# ---- Namespace changes ------------------------------------------------------------------------
expect 0 P mkdir -p img /a/b/c
expect 0 P mkdir img /a/m
expect 0 P mv img /tree/hello.txt /a/b
expect 0 P ls img /a/b && contains out.txt "hello.txt"
expect 0 P mv img /a/b/hello.txt /a/renamed.txt
expect 0 P ln -s img /tree/sub /a/sublink
expect 0 P cat img /a/sublink/deep/f7.txt && contains out.txt "file 7"
expect 0 P ln img /a/renamed.txt /a/hard
expect 0 P stat img /a/hard && contains out.txt "Links: 3"
# Symlink loops stop with ELOOP, not a hang.
expect 0 P ln -s img /loop2 /loop1
expect 0 P ln -s img /loop1 /loop2
expect 1 P cat img /loop1/x && contains err.txt "Too many levels of symbolic links"
expect 0 P rm img /loop1 /loop2

expect 0 P info img --json && json_ok
json_eq "j['chunks']['references'] > j['chunks']['count']" "True"
used_before=$(python3 -c "import json; print(json.load(open('out.txt'))['usage']['used_blocks'])")
expect 0 P rm -r img /tree/sub
expect 1 P ls img /tree/sub
expect 0 P rm img /tree/sparse.bin /a/hard
expect 0 P rm -f img /does/not/exist
expect 0 P info img --json && json_ok
json_eq "j['usage']['used_blocks'] < $used_before" "True"
json_eq "j['journal']['needs_replay']" "False"
json_eq "j['geometry']['record_size']" "16384"
json_eq "j['superblock']['label']" "cli-test"
expect 0 P info img && contains out.txt "Chunk store"
expect 0 P df img && contains out.txt "Use%"

# ---- fsck -----------------------------------------------------------------------------------------
expect 0 P fsck img && contains out.txt "clean"
expect 0 P fsck img --json && json_ok
json_eq "j['exit_code']" "0"
expect 0 P fsck -n img
expect 0 P fsck --verify-data img
expect 2 P fsck --repair -n img
expect 8 P fsck missing.img

# Damaged images: a clear message, never a crash; fsck exits 4.
blocks=$(( $(stat -c %s img) / 4096 ))
damage() {  # damage NAME BLOCK OFFSET BYTES...: copy img to NAME and overwrite bytes
  local name=$1 block=$2 off=$3
  shift 3
  [ -e "$name" ] || cp --sparse=always img "$name"
  printf "$@" | dd of="$name" bs=1 seek=$((block * 4096 + off)) conv=notrunc status=none
}
# All three superblock copies garbage.
cp --sparse=always img sb-garbage.img
for b in 0 1 $((blocks - 1)); do
  head -c 4096 /dev/urandom | dd of=sb-garbage.img bs=4096 seek=$b conv=notrunc status=none
done
expect 4 P fsck sb-garbage.img
expect 1 P info sb-garbage.img && contains err.txt "no valid PermFS superblock"
expect 1 P ls sb-garbage.img && contains err.txt "no valid PermFS superblock"
# Wrong magic in every copy.
for b in 0 1 $((blocks - 1)); do damage magic.img "$b" 64 'NOTPERMF'; done
expect 4 P fsck magic.img
expect 1 P info magic.img && contains err.txt "not a PermFS volume"
# Primary superblock only: the mirror is used.
damage primary.img 0 64 'NOTPERMF'
expect 0 P info primary.img --json && json_ok
json_eq "j['superblock']['primary_damaged_used_mirror']" "True"
# Flipped bytes in the volume root (block 2).
damage root.img 2 300 '\xff\xfe\xfd\xfc'
expect 4 P fsck root.img && contains out.txt "checksum"
expect 1 P ls root.img && contains err.txt "corruption"
# Truncated images: to half (whole blocks) and to an odd size.
cp --sparse=always img half.img && truncate -s $((32 << 20)) half.img
expect 4 P fsck half.img
expect 1 P info half.img && contains err.txt "truncated"
cp --sparse=always img odd.img && truncate -s 1000000 odd.img
expect 4 P fsck odd.img
expect 1 P info odd.img && contains err.txt "not a multiple of 4096"
: >empty.img
expect 1 P info empty.img && contains err.txt "empty file"
# Every B+tree node outside the journal damaged: detected, no crash.
cp --sparse=always img nodes.img
expect 0 P info img --json
shard_start=$(python3 -c "import json; print(json.load(open('out.txt'))['geometry']['shard_start'])")
python3 - nodes.img "$shard_start" <<'EOF'
import struct, sys
with open(sys.argv[1], "r+b") as f:
    d = f.read()
    n = 0
    for b in range(int(sys.argv[2]), len(d) // 4096):
        o = b * 4096
        if struct.unpack_from("<I", d, o)[0] == 0x424D4650 and struct.unpack_from("<H", d, o + 4)[0] in (7, 8):
            f.seek(o + 100)
            f.write(bytes([d[o + 100] ^ 0xFF]))
            n += 1
    assert n > 0, "no B+tree nodes found"
EOF
expect 4 P fsck nodes.img
expect 1 P ls -R nodes.img

# The original image is untouched by all of this.
expect 0 P fsck img

echo "$checks checks, $failures failures"
[ "$failures" -eq 0 ]
