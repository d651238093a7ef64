#!/usr/bin/env python3
"""Differential syscall fuzzer: the same random operations on PermFS and on a kernel filesystem.

Usage: diff_fuzz.py run  PERMFS_DIR REFERENCE_DIR [--ops N] [--seed S] [--trace] [--coherence]
                                      [--tree-every N] [--check-every N]
       diff_fuzz.py compare PERMFS_DIR REFERENCE_DIR

`run` drives three credentials at once (root; uid 1000 and uid 1001, who share the
supplementary group 2000) through a small namespace where names collide often: open with every
flag mix, read/write/truncate through descriptors (also after unlink), mkdir/rmdir, unlink,
rename (plain, RENAME_NOREPLACE, RENAME_EXCHANGE), link, symlink, readlink, chmod with set-ID
and sticky bits, chown, explicit times, access, readdir, mknod of FIFOs, user.* xattrs. Each
operation runs on both trees with the same credentials; the results (value or errno, and stat
fields that do not depend on the filesystem: type, mode, link count, owner, size of
non-directories, explicitly set times) must be equal. At the end, and in `compare` (after a
remount), both trees must hold the same names, types, modes, owners, link counts, sizes,
contents, symlink targets and xattrs.

The reference is a kernel filesystem (tmpfs in the CTest wrapper), so any difference is a
PermFS bug or a deliberate, documented deviation. Exits 1 on the first few differences,
printing the seed and the operation that diverged."""
import ctypes
import errno
import hashlib
import multiprocessing as mp
import os
import random
import stat
import sys
import time

NAMES = ["a", "b", "c", "d"]
USERS = [(0, 0, [0]), (1000, 1000, [1000, 2000]), (1001, 1001, [1001, 2000])]
UMASKS = [0o022, 0o002, 0o077]
XNAMES = ["user.x", "user.y", "user.z"]
LIBC = ctypes.CDLL(None, use_errno=True)
AT_FDCWD = -100
MAX_SLOTS = 6


def err_of(e):
    return ("err", errno.errorcode.get(e.errno, str(e.errno)))


def stat_key(st, with_times=False):
    key = [stat.S_IFMT(st.st_mode), oct(stat.S_IMODE(st.st_mode)), st.st_nlink, st.st_uid,
           st.st_gid]
    if not stat.S_ISDIR(st.st_mode):
        key.append(st.st_size)
    if with_times:
        key += [st.st_atime_ns, st.st_mtime_ns]
    return tuple(key)


ACL_TAGS = {"u": 0x01, "U": 0x02, "g": 0x04, "G": 0x08, "m": 0x10, "o": 0x20}


def acl_bytes(entries):
    """system.posix_acl_* value (version 2) of [(tag letter, perm, id)], sorted as Linux wants."""
    out = (2).to_bytes(4, "little")
    for tag, perm, ident in sorted(entries, key=lambda e: (ACL_TAGS[e[0]], e[2])):
        out += ACL_TAGS[tag].to_bytes(2, "little") + perm.to_bytes(2, "little")
        out += (ident if tag in "UG" else 0xFFFFFFFF).to_bytes(4, "little")
    return out


def data_for(seed, size):
    return random.Random(seed).randbytes(size)


class Worker:
    """Runs operations under one credential on both trees; keeps descriptors per slot."""

    def __init__(self, roots):
        self.roots = roots
        self.slots = {}  # slot -> [fd per root]

    def path(self, root, p):
        return os.path.join(root, p) if p else root

    def one(self, i, op, a):
        root = self.roots[i]
        P = lambda p: self.path(root, p)
        if op == "open":
            fd = os.open(P(a["path"]), a["flags"], a["mode"])
            slot = self.slots.setdefault(a["slot"], [None, None])
            if slot[i] is not None:
                os.close(slot[i])
            slot[i] = fd
            return stat_key(os.fstat(fd))
        if op in ("close", "write", "read", "fstat", "ftruncate", "fsync", "fchmod", "fallocate",
                  "copy_range"):
            slot = self.slots.get(a["slot"])
            if slot is None or slot[i] is None:
                return ("noslot",)
            fd = slot[i]
            if op == "close":
                os.close(fd)
                slot[i] = None
                return None
            if op == "write":
                data = data_for(a["seed"], a["size"])
                n = os.write(fd, data) if a["off"] is None else os.pwrite(fd, data, a["off"])
                return (n, stat_key(os.fstat(fd)))
            if op == "read":
                d = os.pread(fd, a["size"], a["off"])
                return (len(d), hashlib.sha1(d).hexdigest())
            if op == "fstat":
                return stat_key(os.fstat(fd))
            if op == "ftruncate":
                os.ftruncate(fd, a["len"])
                return stat_key(os.fstat(fd))
            if op == "fsync":
                os.fsync(fd)
                return None
            if op == "fchmod":
                os.fchmod(fd, a["mode"])
                return stat_key(os.fstat(fd))
            if op == "fallocate":
                if LIBC.fallocate(fd, a["mode"], ctypes.c_long(a["off"]), ctypes.c_long(a["len"])):
                    e = ctypes.get_errno()
                    raise OSError(e, os.strerror(e))
                return stat_key(os.fstat(fd))
            if op == "copy_range":
                src = self.slots.get(a["src"])
                if src is None or src[i] is None:
                    return ("noslot",)
                n = os.copy_file_range(src[i], fd, a["len"], a["src_off"], a["off"])
                return (n, stat_key(os.fstat(fd)))
        makers = {  # operations that make a name: what they run, and the name they make
            "mkdir": (lambda: os.mkdir(P(a["path"]), a["mode"]), "path"),
            "mkfifo": (lambda: os.mkfifo(P(a["path"]), a["mode"]), "path"),
            "link": (lambda: os.link(P(a["src"]), P(a["dst"]), follow_symlinks=False), "dst"),
            "symlink": (lambda: os.symlink(a["target"], P(a["dst"])), "dst"),
        }
        if op in makers:
            make, made = makers[op]
            make()
            return stat_key(os.lstat(P(a[made])))
        if op == "rmdir":
            return os.rmdir(P(a["path"]))
        if op == "unlink":
            return os.unlink(P(a["path"]))
        if op == "rename":
            r = LIBC.renameat2(AT_FDCWD, P(a["src"]).encode(), AT_FDCWD, P(a["dst"]).encode(),
                               a["flags"])
            if r != 0:
                e = ctypes.get_errno()
                raise OSError(e, os.strerror(e))
            return None
        if op == "readlink":
            return os.readlink(P(a["path"]))
        if op == "truncate":
            os.truncate(P(a["path"]), a["len"])
            return stat_key(os.stat(P(a["path"])))
        if op == "chmod":
            os.chmod(P(a["path"]), a["mode"])
            return stat_key(os.stat(P(a["path"])))
        if op == "chown":
            os.chown(P(a["path"]), a["uid"], a["gid"], follow_symlinks=a["follow"])
            return stat_key(os.lstat(P(a["path"])))
        if op == "utime":
            if a["ns"] is None:  # "now": the owner, or anyone who may write
                os.utime(P(a["path"]))
                return stat_key(os.stat(P(a["path"])))
            os.utime(P(a["path"]), ns=a["ns"])
            return stat_key(os.stat(P(a["path"])), with_times=True)
        if op == "stat":
            return stat_key(os.stat(P(a["path"])))
        if op == "lstat":
            return stat_key(os.lstat(P(a["path"])))
        if op == "access":
            return os.access(P(a["path"]), a["mode"])
        if op == "listdir":
            return sorted(os.listdir(P(a["path"])))
        if op == "setxattr":
            os.setxattr(P(a["path"]), a["name"], a["value"], a["flags"])
            return None
        if op == "getxattr":
            return os.getxattr(P(a["path"]), a["name"])
        if op == "removexattr":
            return os.removexattr(P(a["path"]), a["name"])
        if op == "listxattr":
            return sorted(n for n in os.listxattr(P(a["path"])) if not n.startswith("security."))
        if op == "setacl":
            os.setxattr(P(a["path"]), a["name"], acl_bytes(a["entries"]))
            return stat_key(os.lstat(P(a["path"])))
        if op == "closeall":
            for slot in self.slots.values():
                if slot[i] is not None:
                    os.close(slot[i])
                    slot[i] = None
            return None
        raise ValueError(op)

    def times(self, i, a):
        """(ino, mtime, ctime) of what the operation names: its paths, their parents, its slot."""
        out = []
        paths = [a[k] for k in ("path", "src", "dst") if k in a]
        for p in paths + [os.path.dirname(p) for p in paths]:
            try:
                st = os.lstat(self.path(self.roots[i], p))
                out.append((st.st_ino, st.st_mtime_ns, st.st_ctime_ns))
            except OSError:
                out.append(None)
        slot = self.slots.get(a.get("slot"))
        if slot is not None and slot[i] is not None:
            try:
                st = os.fstat(slot[i])
                out.append((st.st_ino, st.st_mtime_ns, st.st_ctime_ns))
            except OSError:
                out.append(None)
        return out

    def run(self, op, a, timed=False):
        out = []
        for i in range(len(self.roots)):
            if timed:
                # Timestamps come from a coarse clock: let it move past the last change first.
                time.sleep(0.012)
                before = self.times(i, a)
                same_size = fifo = False
                slot = self.slots.get(a.get("slot"))
                if op in ("write", "read") and slot is not None and slot[i] is not None:
                    try:
                        fifo = stat.S_ISFIFO(os.fstat(slot[i]).st_mode)
                    except OSError:
                        pass
                if op == "truncate":
                    try:
                        st = os.stat(self.path(self.roots[i], a["path"]))
                        same_size = stat.S_ISREG(st.st_mode) and st.st_size == a["len"]
                    except OSError:
                        pass
            try:
                res = ("ok", self.one(i, op, a))
            except OSError as e:
                res = err_of(e)
            except Exception as e:  # a fuzzer bug, not a filesystem difference
                res = ("exception", repr(e))
            if timed:
                # Which of mtime and ctime the operation changed, for what is still the same inode.
                changed = []
                for b, c in zip(before, self.times(i, a)):
                    if b is None or c is None or b[0] != c[0]:
                        changed.append(None)
                    else:
                        changed.append(("m" if b[1] != c[1] else "") + ("c" if b[2] != c[2] else ""))
                if op == "truncate" and same_size:
                    # truncate(2) to the size a file has: Linux's own filesystems move mtime
                    # and ctime; FUSE in writeback-cache mode owns those times in the kernel and
                    # moves them only when the size changes (fuse_do_setattr), as POSIX allows.
                    changed = ["same size"]
                if fifo:
                    # A FIFO's data never reaches a FUSE daemon, and the kernel keeps FUSE inodes
                    # other than regular files S_NOCMTIME: pipe I/O moves no time there.
                    changed = ["fifo"]
                res = res + (("times", changed),)
            out.append(res)
        return out

    def open_files(self):
        """Size and contents of every regular file open in a slot, per root."""
        out = [[], []]
        for slot, fds in sorted(self.slots.items()):
            for i, fd in enumerate(fds):
                if fd is None:
                    continue
                try:
                    st = os.fstat(fd)
                    entry = stat_key(st)
                    if stat.S_ISREG(st.st_mode):
                        entry += (hashlib.sha1(os.pread(fd, st.st_size + 1, 0)).hexdigest(),)
                except OSError as e:
                    entry = err_of(e)
                out[i].append((slot, entry))
        return out


def worker_main(conn, roots, cred, umask):
    uid, gid, groups = cred
    os.setgroups(groups)
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    os.umask(umask)
    w = Worker(roots)
    while True:
        msg = conn.recv()
        if msg is None:
            w.run("closeall", {})
            conn.send("bye")
            return
        try:
            conn.send(w.open_files() if msg == "open_files" else w.run(*msg))
        except Exception as e:  # a fuzzer bug: report it rather than hang up
            conn.send([("exception", repr(e))] * 2)


def rand_path(r):
    depth = r.choice([1, 1, 2, 2, 3])
    parts = [r.choice(NAMES) for _ in range(depth)]
    x = r.random()
    if x < 0.02:
        parts[-1] = "n" * 256  # ENAMETOOLONG
    elif x < 0.04:
        parts[-1] = "l" * 255
    elif x < 0.06:
        parts.append("..")
    elif x < 0.08:
        parts.append(".")
    return "/".join(parts)


def rand_op(r):
    slot = r.randrange(MAX_SLOTS)
    kind = r.choices(
        ["open", "close", "write", "read", "fstat", "ftruncate", "fsync", "fchmod", "mkdir",
         "mkfifo", "rmdir", "unlink", "rename", "link", "symlink", "readlink", "truncate",
         "chmod", "chown", "utime", "stat", "lstat", "access", "listdir", "setxattr",
         "getxattr", "removexattr", "listxattr", "fallocate", "copy_range", "setacl"],
        weights=[12, 5, 12, 8, 3, 3, 1, 2, 8, 1, 4, 6, 8, 4, 3, 2, 3, 5, 4, 3, 4, 3, 3, 3, 3,
                 2, 2, 2, 3, 3, 3])[0]
    mode = r.choice([0o644, 0o600, 0o755, 0o777, 0o640, 0o2755, 0o4755, 0o1777, 0o2775, 0o000,
                     0o6777, 0o444, 0o2745, 0o2666])
    if kind == "open":
        acc = r.choice([os.O_RDONLY, os.O_WRONLY, os.O_RDWR, os.O_RDWR])
        flags = acc | os.O_NONBLOCK  # FIFOs must not block the fuzzer
        for f, p in ((os.O_CREAT, 0.6), (os.O_EXCL, 0.2), (os.O_TRUNC, 0.2), (os.O_APPEND, 0.2),
                     (os.O_DIRECTORY, 0.05), (os.O_NOFOLLOW, 0.1)):
            if r.random() < p:
                flags |= f
        return ("open", {"slot": slot, "path": rand_path(r), "flags": flags, "mode": mode})
    if kind in ("close", "fstat", "fsync"):
        return (kind, {"slot": slot})
    if kind == "write":
        size = r.choice([1, 100, 4096, 5000, 70000, 200000])
        off = None if r.random() < 0.3 else r.choice([0, 1, 4095, 65536, 100000, 1 << 20,
                                                        (16 << 20) + 5])
        return ("write", {"slot": slot, "seed": r.randrange(1 << 30), "size": size, "off": off})
    if kind == "read":
        return ("read", {"slot": slot, "size": r.choice([1, 4096, 100000, 300000]),
                         "off": r.choice([0, 1, 4096, 65535, 65536, 99999, 1 << 20])})
    if kind in ("ftruncate", "truncate"):
        ln = r.choice([0, 1, 4096, 65537, 100000, 1 << 20, 3 << 20])
        if kind == "truncate":
            return (kind, {"path": rand_path(r), "len": ln})
        return (kind, {"slot": slot, "len": ln})
    if kind == "fchmod":
        return (kind, {"slot": slot, "mode": mode})
    if kind == "fallocate":
        # 0, KEEP_SIZE, PUNCH_HOLE|KEEP_SIZE (ZERO_RANGE is not in tmpfs, the reference)
        return (kind, {"slot": slot, "mode": r.choice([0, 1, 3, 3]),
                       "off": r.choice([0, 1, 4096, 65536, 70000, 1 << 20]),
                       "len": r.choice([1, 4096, 65536, 100000, 1 << 20])})
    if kind == "copy_range":
        return (kind, {"slot": slot, "src": r.randrange(MAX_SLOTS),
                       "len": r.choice([1, 4096, 100000, 1 << 20]),
                       "src_off": r.choice([0, 1, 65536, 100000]),
                       "off": r.choice([0, 4095, 65536, 1 << 20])})
    if kind == "setacl":
        ents = [("u", r.choice([7, 6, 5]), 0), ("g", r.choice([7, 5, 4, 0]), 0),
                ("o", r.choice([5, 4, 0]), 0)]
        if r.random() < 0.7:
            ents += [("U", r.choice([7, 6, 4, 0]), r.choice([1000, 1001])),
                     ("G", r.choice([7, 5, 0]), 2000), ("m", r.choice([7, 5, 4]), 0)]
        return (kind, {"path": rand_path(r), "entries": ents,
                       "name": r.choice(["system.posix_acl_access", "system.posix_acl_access",
                                         "system.posix_acl_default"])})
    if kind in ("mkdir", "mkfifo", "chmod"):
        return (kind, {"path": rand_path(r), "mode": mode})
    if kind in ("rmdir", "unlink", "readlink", "stat", "lstat", "listdir", "listxattr"):
        return (kind, {"path": rand_path(r)})
    if kind == "rename":
        return (kind, {"src": rand_path(r), "dst": rand_path(r),
                       "flags": r.choice([0, 0, 0, 1, 2])})
    if kind == "link":
        return (kind, {"src": rand_path(r), "dst": rand_path(r)})
    if kind == "symlink":
        return (kind, {"target": r.choice(["a", "../b", "c/d", "../../../nope/x", "x" * 300]),
                       "dst": rand_path(r)})
    if kind == "chown":
        uid = r.choice([-1, 0, 1000, 1001])
        gid = r.choice([-1, 0, 1000, 1001, 2000])
        return (kind, {"path": rand_path(r), "uid": uid, "gid": gid,
                       "follow": r.random() < 0.7})
    if kind == "utime":
        ns = None
        if r.random() < 0.7:
            ns = (r.randrange(0, 2 << 40) * 1000 + r.randrange(1000),
                  r.randrange(0, 2 << 40) * 1000 + r.randrange(1000))
        return (kind, {"path": rand_path(r), "ns": ns})
    if kind == "access":
        return (kind, {"path": rand_path(r), "mode": r.choice([os.F_OK, os.R_OK, os.W_OK,
                                                               os.X_OK, os.R_OK | os.W_OK])})
    if kind == "setxattr":
        return (kind, {"path": rand_path(r), "name": r.choice(XNAMES),
                       "value": r.choice([b"", b"v", b"w" * 3000]),
                       "flags": r.choice([0, 0, os.XATTR_CREATE, os.XATTR_REPLACE])})
    if kind in ("getxattr", "removexattr"):
        return (kind, {"path": rand_path(r), "name": r.choice(XNAMES)})
    raise ValueError(kind)


def walk(root):
    """Everything about a tree that two correct filesystems agree on."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            st = os.lstat(full)
            entry = [stat_key(st)]
            if stat.S_ISREG(st.st_mode):
                h = hashlib.sha1()
                with open(full, "rb") as f:
                    for piece in iter(lambda: f.read(1 << 20), b""):
                        h.update(piece)
                entry.append(h.hexdigest())
            elif stat.S_ISLNK(st.st_mode):
                entry.append(os.readlink(full))
            if not stat.S_ISLNK(st.st_mode):
                try:
                    entry.append(sorted((n, os.getxattr(full, n)) for n in os.listxattr(full)
                                        if n.startswith(("user.", "system.posix_acl"))))
                except OSError as e:
                    entry.append(err_of(e))
            out[rel] = tuple(entry)
    return out


AT_SYMLINK_NOFOLLOW, AT_STATX_SYNC_AS_STAT, AT_STATX_FORCE_SYNC = 0x100, 0, 0x2000
STATX_BASIC_STATS = 0x7FF


def statx_key(path, sync_flag):
    """What stat(2) shows for `path` (AT_STATX_SYNC_AS_STAT: the cache while it is valid) or
    what the server says (AT_STATX_FORCE_SYNC)."""
    buf = ctypes.create_string_buffer(256)
    if LIBC.statx(AT_FDCWD, os.fsencode(path), AT_SYMLINK_NOFOLLOW | sync_flag,
                  STATX_BASIC_STATS, buf):
        return ("err", errno.errorcode.get(ctypes.get_errno()))
    u32 = lambda off: int.from_bytes(buf.raw[off:off + 4], "little")
    u64 = lambda off: int.from_bytes(buf.raw[off:off + 8], "little")
    mode = int.from_bytes(buf.raw[28:30], "little")
    key = [u64(32), oct(mode), u32(16), u32(20), u32(24)]
    if not stat.S_ISREG(mode):
        # With the writeback cache the kernel owns a regular file's size and times, so only
        # other inodes must agree on them with the server.
        key += [u64(40), (u64(96), u32(104)), (u64(112), u32(120))]
    return tuple(key)


def incoherent(paths):
    """Paths whose cached attributes differ from the server's, as (path, cached, server)."""
    out = []
    for p in paths:
        cached = statx_key(p, AT_STATX_SYNC_AS_STAT)
        if cached[0] == "err":
            continue
        server = statx_key(p, AT_STATX_FORCE_SYNC)
        if cached != server:
            out.append((p, cached, server))
    return out


def compare_trees(a, b):
    wa, wb = walk(a), walk(b)
    diffs = []
    for k in sorted(set(wa) | set(wb)):
        if wa.get(k) != wb.get(k):
            diffs.append(f"  {k}: permfs={wa.get(k)} reference={wb.get(k)}")
    print(f"compared {len(wa)} entries: {len(diffs)} difference(s)")
    for d in diffs[:20]:
        print(d)
    return not diffs


def main():
    args = sys.argv[1:]
    if len(args) < 3 or args[0] not in ("run", "compare"):
        print(__doc__)
        return 2
    mode, pa, pb = args[0], os.path.abspath(args[1]), os.path.abspath(args[2])
    ops = 20000
    seed = random.randrange(1 << 32)
    if "--ops" in args:
        ops = int(args[args.index("--ops") + 1])
    if "--seed" in args:
        seed = int(args[args.index("--seed") + 1])
    trace = "--trace" in args
    check_every = int(args[args.index("--check-every") + 1]) if "--check-every" in args else 1
    tree_every = int(args[args.index("--tree-every") + 1]) if "--tree-every" in args else 100
    # --coherence: after every operation, what the kernel caches for each PermFS inode must be
    # what the daemon answers when asked (a stale cache shows as a spurious change later).
    coherence = "--coherence" in args
    known = []
    # Operations run three levels below the compared top, so that relative symlinks that climb
    # out of the working tree still land in it.
    tops = [os.path.join(pa, "fz"), os.path.join(pb, "fz")]
    roots = [os.path.join(t, "r", "s", "t") for t in tops]
    if mode == "compare":
        return 0 if compare_trees(*tops) else 1

    print(f"diff_fuzz: seed {seed}, {ops} operations")
    for root in roots:
        os.makedirs(root)
        os.chmod(root, 0o777)
    ctx = mp.get_context("fork")
    workers = []
    for cred, umask in zip(USERS, UMASKS):
        parent, child = ctx.Pipe()
        p = ctx.Process(target=worker_main, args=(child, roots, cred, umask))
        p.start()
        workers.append((parent, p))
    r = random.Random(seed)
    mismatches = 0
    reported = {}
    counts = {}
    for n in range(ops):
        who = r.randrange(len(USERS))
        op = rand_op(r)
        timed = r.random() < 0.05
        conn = workers[who][0]
        conn.send(op + (timed,))
        ra, rb = conn.recv()
        c = counts.setdefault(op[0], [0, 0])
        c[0 if ra[0] == "ok" else 1] += 1
        if trace:
            print(f"op {n} (uid {USERS[who][0]}): {op[0]} {op[1]} -> {ra}")
        if ra != rb:
            mismatches += 1
            print(f"DIFF at op {n} (uid {USERS[who][0]}): {op[0]} {op[1]}\n"
                  f"  permfs:    {ra}\n  reference: {rb}")
        elif tree_every and n % tree_every == 0:
            wa, wb = walk(tops[0]), walk(tops[1])
            if wa != wb and reported.get("tree") != (wa, wb):
                reported["tree"] = (wa, wb)
                mismatches += 1
                print(f"DIFF after op {n}: trees differ")
                for k in sorted(set(wa) | set(wb)):
                    if wa.get(k) != wb.get(k):
                        print(f"  {k}: permfs={wa.get(k)} reference={wb.get(k)}")
        if coherence and ra == rb:
            for p, cached, server in incoherent(known):
                mismatches += 1
                print(f"DIFF after op {n}: {os.path.relpath(p, tops[0])} cached {cached}, "
                      f"server {server}")
            known = [os.path.join(d, e) for d, ds, fs in os.walk(tops[0]) for e in ds + fs]
        if ra == rb and check_every and n % check_every == 0:
            # Descriptors stay open across operations: what they see must agree too.
            for i, (c, _) in enumerate(workers):
                c.send("open_files")
                fa, fb = c.recv()
                if fa != fb and reported.get(i) != (fa, fb):
                    reported[i] = (fa, fb)
                    mismatches += 1
                    print(f"DIFF after op {n}: open files of uid {USERS[i][0]}\n"
                          f"  permfs:    {fa}\n  reference: {fb}")
        if mismatches >= 10:
            break
    for conn, p in workers:
        conn.send(None)
        conn.recv()
        p.join()
    print("operations (succeeded/failed):",
          ", ".join(f"{k} {v[0]}/{v[1]}" for k, v in sorted(counts.items())))
    same = compare_trees(*tops)
    if mismatches or not same:
        print(f"FAIL: {mismatches} operation(s) diverged (seed {seed})")
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
