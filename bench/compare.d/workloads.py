"""Workloads for bench/compare.  Each runs on a fresh, mounted filesystem and returns metrics:
{metric: {"value": float, "unit": str, "better": "higher"|"lower"}}."""

import json
import os
import random
import shutil
import subprocess
import tarfile
import time

MiB = 1 << 20

FULL = dict(seq_mib=1024, rand_mib=256, rand_s=20, fsmark_files=20000, meta_dirs=100,
            meta_files=10000, fsync_s=20, dedupe_mib=1024, untar_files=0)
QUICK = dict(seq_mib=128, rand_mib=64, rand_s=5, fsmark_files=2000, meta_dirs=20,
             meta_files=2000, fsync_s=5, dedupe_mib=128, untar_files=3000)

ORDER = ["seqwrite", "seqread", "randwrite", "randread", "randwrite4", "randread4", "fsmark",
         "meta", "untar", "fsync", "dedupe"]


def m(value, unit, better="higher"):
    return {"value": value, "unit": unit, "better": better}


class Ctx:
    """What a workload gets: the target, sizes, a timer that can attach a profiler."""

    def __init__(self, target, cfg, cache_dir, log, profiler=None, timeout=900):
        self.t = target
        self.mnt = target.mnt
        self.cfg = cfg
        self.cache = cache_dir
        self.log = log
        self.profiler = profiler
        self.timeout = timeout
        self.workload = "?"

    def run(self, argv, **kw):
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=kw.pop("timeout", self.timeout), **kw)
        if r.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed ({r.returncode}): {r.stderr.strip()[-400:]}")
        return r

    def timed(self, argv, **kw):
        """Runs argv under the profiler (if any); returns (seconds, CompletedProcess)."""
        with Measure(self):
            t0 = time.monotonic()
            r = self.run(argv, **kw)
            return time.monotonic() - t0, r

    def timed_fn(self, fn):
        with Measure(self):
            t0 = time.monotonic()
            fn()
            return time.monotonic() - t0


class Measure:
    def __init__(self, ctx):
        self.ctx = ctx

    def __enter__(self):
        if self.ctx.profiler:
            self.ctx.profiler.start(self.ctx.t, self.ctx.workload)

    def __exit__(self, *a):
        if self.ctx.profiler:
            self.ctx.profiler.stop()


def fio(ctx, name, extra, timed=True):
    argv = ["fio", "--name=" + name, "--directory=" + ctx.mnt, "--output-format=json",
            "--ioengine=psync", "--iodepth=1", "--thread", "--group_reporting"] + extra
    secs, r = ctx.timed(argv) if timed else (0.0, ctx.run(argv))
    txt = r.stdout
    js = json.loads(txt[txt.index("{"):])
    return secs, js["jobs"][0]


def layout(ctx, fname, mib):
    """Writes a file of incompressible data and makes it durable (not timed)."""
    fio(ctx, "layout", ["--filename=" + fname, "--rw=write", "--bs=1M", f"--size={mib}M",
                        "--end_fsync=1"], timed=False)


# ---------------------------------------------------------------- workloads

def w_seqwrite(ctx):
    mib = ctx.cfg["seq_mib"]
    secs, job = fio(ctx, "seqwrite", ["--filename=seq.dat", "--rw=write", "--bs=1M",
                                      f"--size={mib}M", "--end_fsync=1"])
    # wall time around fio so the final fsync is always counted
    return {"seqwrite MiB/s": m(mib / secs, "MiB/s")}


def w_seqread(ctx):
    mib = ctx.cfg["seq_mib"]
    layout(ctx, "seq.dat", mib)
    ctx.t.remount_cold()
    secs, job = fio(ctx, "seqread", ["--filename=seq.dat", "--rw=read", "--bs=1M",
                                     f"--size={mib}M"])
    return {"seqread MiB/s (cold)": m(mib / secs, "MiB/s")}


def _rand(ctx, rw, jobs):
    mib, secs = ctx.cfg["rand_mib"], ctx.cfg["rand_s"]
    layout(ctx, "rand.dat", mib)
    ctx.t.remount_cold()
    _, job = fio(ctx, f"rand{rw}", ["--filename=rand.dat", "--rw=rand" + rw, "--bs=4k",
                                    f"--size={mib}M", f"--runtime={secs}", "--time_based",
                                    f"--numjobs={jobs}", "--norandommap", "--randrepeat=0"])
    iops = job["write" if rw == "write" else "read"]["iops"]
    label = f"rand{rw} 4k IOPS" + (" (4 jobs)" if jobs > 1 else "") + (" (cold)" if rw == "read" else "")
    return {label: m(iops, "IOPS")}


def w_randwrite(ctx):
    return _rand(ctx, "write", 1)


def w_randread(ctx):
    return _rand(ctx, "read", 1)


def w_randwrite4(ctx):
    return _rand(ctx, "write", 4)


def w_randread4(ctx):
    return _rand(ctx, "read", 4)


def w_fsmark(ctx):
    n = ctx.cfg["fsmark_files"]
    d = os.path.join(ctx.mnt, "fsmark")
    os.makedirs(d)
    # one thread, n files of 4 KiB in one directory, fsync before close (fs_mark's default -S 1)
    # fs_mark wants a directory path shorter than 40 bytes: run it from the mount point
    secs, r = ctx.timed(["fs_mark", "-d", "fsmark", "-n", str(n), "-s", "4096", "-t", "1", "-S", "1",
                         "-k", "-L", "1"], cwd=ctx.mnt)
    rate = None
    for line in r.stdout.splitlines():
        parts = line.split()
        # FSUse%  Count  Size  Files/sec  App Overhead
        if len(parts) >= 5 and parts[0].isdigit() and parts[1].isdigit():
            rate = float(parts[3])
    if rate is None:
        raise RuntimeError("could not parse fs_mark output: " + r.stdout[-300:])
    return {"fs_mark files/s (4 KiB, fsync)": m(rate, "files/s"),
            "fs_mark wall files/s": m(n / secs, "files/s")}


def _create_tree(root, dirs, files):
    per = files // dirs
    for i in range(dirs):
        d = os.path.join(root, f"d{i:03d}")
        os.mkdir(d)
        for j in range(per):
            fd = os.open(os.path.join(d, f"f{j:05d}"), os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o644)
            os.close(fd)


def w_meta(ctx):
    dirs, files = ctx.cfg["meta_dirs"], ctx.cfg["meta_files"]
    root = os.path.join(ctx.mnt, "meta")
    os.mkdir(root)
    t_create = ctx.timed_fn(lambda: _create_tree(root, dirs, files))
    ctx.t.remount_cold()
    t_ls, _ = ctx.timed(["ls", "-lR", root])
    t_rm, _ = ctx.timed(["rm", "-rf", root])
    k = f"{files // 1000}k"
    return {f"create {k} files s": m(t_create, "s", "lower"),
            f"ls -lR {k} (cold) s": m(t_ls, "s", "lower"),
            f"rm -rf {k} s": m(t_rm, "s", "lower")}


def source_tarball(cache, limit):
    """An uncompressed tar of a real source tree from a Debian package, cached in `cache`."""
    cands = []
    for base in ("/usr/src",):
        for dp, _, fns in os.walk(base):
            for fn in fns:
                if fn.endswith((".tar.xz", ".tar.gz", ".tar.bz2")):
                    cands.append(os.path.join(dp, fn))
    if not cands:
        subprocess.run(["apt-get", "install", "-y", "-q", "glibc-source"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        if os.path.exists("/usr/src/glibc"):
            return source_tarball(cache, limit)
        raise RuntimeError("no source tarball under /usr/src (apt-get install glibc-source)")
    src = sorted(cands, key=lambda p: ("glibc" not in p, p))[0]
    out = os.path.join(cache, os.path.basename(src).split(".tar")[0] + (f"-{limit}" if limit else "") + ".tar")
    if not os.path.exists(out):
        with tarfile.open(src) as tin, tarfile.open(out + ".tmp", "w") as tout:
            n = 0
            for mem in tin:
                if limit and mem.isfile() and n >= limit:
                    continue
                if mem.isfile():
                    tout.addfile(mem, tin.extractfile(mem))
                    n += 1
                elif mem.isdir() or mem.issym():
                    tout.addfile(mem)
        os.rename(out + ".tmp", out)
    return src, out


def w_untar(ctx):
    src, tar = source_tarball(ctx.cache, ctx.cfg["untar_files"])
    dst = os.path.join(ctx.mnt, "src")
    os.mkdir(dst)
    t_untar, _ = ctx.timed(["tar", "-xf", tar, "-C", dst, "--no-same-owner"])
    top = os.path.join(dst, os.listdir(dst)[0])
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", "-c",
           "safe.directory=*", "-c", "gc.auto=0", "-c", "core.fsmonitor=false",
           "-c", "core.untrackedCache=false"]
    t_commit = ctx.timed_fn(lambda: (ctx.run(git + ["init", "-q"], cwd=top),
                                     ctx.run(git + ["add", "-A"], cwd=top),
                                     ctx.run(git + ["commit", "-q", "-m", "import"], cwd=top)))
    ctx.t.remount_cold()
    t_status, _ = ctx.timed(git + ["status", "--porcelain"], cwd=top)
    # touch a few files so that diff has something to show
    files = sorted(ctx.run(git + ["ls-files"], cwd=top).stdout.split())[::97][:50]
    for f in files:
        with open(os.path.join(top, f), "a") as fh:
            fh.write("\n/* bench */\n")
    t_diff, _ = ctx.timed(git + ["diff", "--stat"], cwd=top)
    return {"untar s": m(t_untar, "s", "lower"),
            "git init+add+commit s": m(t_commit, "s", "lower"),
            "git status (cold) s": m(t_status, "s", "lower"),
            "git diff s": m(t_diff, "s", "lower")}


def w_fsync(ctx):
    secs = ctx.cfg["fsync_s"]
    _, job = fio(ctx, "fsync", ["--filename=fsync.dat", "--rw=write", "--bs=4k", "--size=64M",
                                "--fsync=1", f"--runtime={secs}", "--time_based"])
    return {"4k write+fsync IOPS": m(job["write"]["iops"], "IOPS")}


def dedupe_source(cache, mib):
    """~mib MiB of incompressible files of mixed sizes (made once, cached)."""
    d = os.path.join(cache, f"dedupe-{mib}M")
    if os.path.exists(d):
        return d
    tmp = d + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    rnd = random.Random(42)
    plan = [(32 * MiB, mib * 3 // 4 // 32), (MiB, mib * 3 // 16), (64 * 1024, mib * 16 // 16)]
    i = 0
    for size, count in plan:
        sub = os.path.join(tmp, f"s{size}")
        os.makedirs(sub)
        for _ in range(max(count, 1)):
            with open(os.path.join(sub, f"f{i:05d}"), "wb") as f:
                left = size
                while left:
                    n = min(left, 4 * MiB)
                    f.write(rnd.randbytes(n))
                    left -= n
            i += 1
    os.rename(tmp, d)
    return d


def _used_mib(ctx):
    os.sync()
    ctx.t.remount_cold()  # the FUSE daemons make everything durable on unmount
    st = os.statvfs(ctx.mnt)
    return (st.f_blocks - st.f_bfree) * st.f_frsize / MiB


def w_dedupe(ctx):
    mib = ctx.cfg["dedupe_mib"]
    src = dedupe_source(ctx.cache, mib)
    u0 = _used_mib(ctx)
    t1, _ = ctx.timed(["cp", "-r", src, os.path.join(ctx.mnt, "a")])
    u1 = _used_mib(ctx)
    t2, _ = ctx.timed(["cp", "-r", src, os.path.join(ctx.mnt, "b")])
    u2 = _used_mib(ctx)
    first, second = u1 - u0, u2 - u1
    return {"dedupe: 1st copy MiB used": m(first, "MiB", "lower"),
            "dedupe: 2nd copy MiB added": m(second, "MiB", "lower"),
            "dedupe: 2nd copy % of 1st": m(100.0 * second / first if first > 0 else float("nan"), "%", "lower"),
            "dedupe: copy MiB/s (1st)": m(mib / t1, "MiB/s")}


ALL = {name: globals()["w_" + name] for name in ORDER}
