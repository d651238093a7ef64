"""bench/compare --scaling: how PermFS costs grow (issue 5, item 4).

  dir:    create / lookup (cold stat of random names) / readdir (cold) cost per file as one
          directory grows 1k -> 10k -> 100k -> 1M files (marginal create cost of each decade)
  seq:    sequential write (end_fsync) and cold read throughput against file size up to 16 GiB
  memory: the daemon's peak RSS (VmHWM) against hot_tier_mb, writing 2 GiB sequentially and
          then 20 s of random 4 KiB writes without fsync
Targets are permfs and, for reference, ext4 (loop) unless --targets says otherwise.
"""

import json
import os
import random
import subprocess
import time

import targets as T
import workloads as W

MiB = 1 << 20


def _create_range(d, lo, hi):
    for i in range(lo, hi):
        fd = os.open(os.path.join(d, f"file{i:07d}"), os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o644)
        os.close(fd)


def dir_scaling(t, sizes, log):
    rows = []
    t.fresh()
    d = os.path.join(t.mnt, "big")
    os.mkdir(d)
    have = 0
    for n in sizes:
        t0 = time.monotonic()
        _create_range(d, have, n)
        dt = time.monotonic() - t0
        create_us = dt * 1e6 / (n - have)
        have = n
        t.remount_cold()
        rnd = random.Random(n)
        names = [f"file{rnd.randrange(n):07d}" for _ in range(min(n, 10000))]
        t0 = time.monotonic()
        for nm in names:
            os.stat(os.path.join(d, nm))
        lookup_us = (time.monotonic() - t0) * 1e6 / len(names)
        t.remount_cold()
        t0 = time.monotonic()
        cnt = sum(1 for _ in os.scandir(d))
        readdir_us = (time.monotonic() - t0) * 1e6 / cnt
        rss = t.peak_rss_kib()
        row = {"files": n, "create_us": create_us, "lookup_cold_us": lookup_us,
               "readdir_cold_us_per_entry": readdir_us, "peak_rss_mib": rss / 1024 if rss else None}
        log(f"  [{t.name}] dir {n:>8}: create {create_us:7.1f} us  lookup {lookup_us:7.1f} us  "
            f"readdir {readdir_us:6.2f} us/entry")
        rows.append(row)
    t.teardown()
    return rows


def _fio(mnt, args):
    r = subprocess.run(["fio", "--name=s", "--directory=" + mnt, "--output-format=json",
                        "--ioengine=psync", "--thread"] + args, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=3600)
    if r.returncode:
        raise RuntimeError(r.stderr[-300:])
    return json.loads(r.stdout[r.stdout.index("{"):])["jobs"][0]


def seq_scaling(t, sizes_mib, log):
    rows = []
    for mib in sizes_mib:
        t.fresh()
        t0 = time.monotonic()
        _fio(t.mnt, ["--filename=f", "--rw=write", "--bs=1M", f"--size={mib}M", "--end_fsync=1"])
        w = mib / (time.monotonic() - t0)
        t.remount_cold()
        t0 = time.monotonic()
        _fio(t.mnt, ["--filename=f", "--rw=read", "--bs=1M", f"--size={mib}M"])
        r = mib / (time.monotonic() - t0)
        rss = t.peak_rss_kib()
        log(f"  [{t.name}] seq {mib:>6} MiB: write {w:7.1f} MiB/s  read(cold) {r:7.1f} MiB/s")
        rows.append({"size_mib": mib, "write_mibs": w, "read_cold_mibs": r,
                     "peak_rss_mib": rss / 1024 if rss else None})
        t.teardown()
    return rows


def memory_scaling(workdir, size, log, args, budgets, write_mib, rand_s):
    rows = []
    for mb in budgets:
        opts = ",".join(o for o in (args.permfs_options, f"hot_tier_mb={mb}") if o)
        t = T.PermFS(workdir, size, log, args.permfs_bin, opts)
        t.fresh()
        t0 = time.monotonic()
        _fio(t.mnt, ["--filename=f", "--rw=write", "--bs=1M", f"--size={write_mib}M"])
        seq = write_mib / (time.monotonic() - t0)
        rss_seq = t.peak_rss_kib() / 1024
        job = _fio(t.mnt, ["--filename=f", "--rw=randwrite", "--bs=4k", f"--size={write_mib}M",
                           f"--runtime={rand_s}", "--time_based", "--norandommap"])
        rss = t.peak_rss_kib() / 1024
        log(f"  [permfs] hot_tier_mb={mb:>5}: peak RSS {rss_seq:7.1f} MiB after seq write "
            f"({seq:.0f} MiB/s), {rss:7.1f} MiB after rand writes ({job['write']['iops']:.0f} IOPS)")
        rows.append({"hot_tier_mb": mb, "peak_rss_mib_seq": rss_seq, "seq_write_mibs": seq,
                     "peak_rss_mib_rand": rss, "randwrite_iops": job["write"]["iops"]})
        t.teardown()
    return rows


def run(args, out, workdir, log):
    quick = args.quick
    parts = args.scaling_parts.split(",")
    tnames = [n for n in args.targets.split(",") if n in ("permfs", "ext4", "tmpfs", "fuse2fs", "zfs-fuse")]
    if args.targets == ",".join(T.ALL):
        tnames = ["permfs", "ext4"]
    dir_sizes = [1000, 10000] if quick else [1000, 10000, 100000, 1000000]
    seq_sizes = [16, 128] if quick else [16, 256, 1024, 4096, 16384]
    budgets = [64, 256] if quick else [64, 256, 1024]
    size = (2 << 30) if quick else (20 << 30)
    res = {"config": {"quick": quick, "targets": tnames, "dir_sizes": dir_sizes,
                      "seq_sizes_mib": seq_sizes, "hot_tier_budgets_mb": budgets}}
    tgts = []
    try:
        for n in tnames:
            t = T.make(n, workdir, size, log, args)
            tgts.append(t)
            why = t.check()
            if why:
                res.setdefault("unavailable", {})[n] = why
                continue
            if "dir" in parts:
                res.setdefault("dir", {})[n] = dir_scaling(t, dir_sizes, log)
            if "seq" in parts:
                res.setdefault("seq", {})[n] = seq_scaling(t, seq_sizes, log)
        if "memory" in parts and "permfs" in tnames:
            res["memory"] = memory_scaling(workdir, size, log, args, budgets,
                                           256 if quick else 2048, 5 if quick else 20)
    finally:
        for t in tgts:
            t.teardown()
    with open(os.path.join(out, "scaling.json"), "w") as f:
        json.dump(res, f, indent=1)
    md = markdown(res)
    with open(os.path.join(out, "scaling.md"), "w") as f:
        f.write(md)
    print(md)


def markdown(res):
    L = ["# bench/compare --scaling\n"]
    f = W  # noqa
    from report import fmt
    for n, rows in res.get("dir", {}).items():
        L.append(f"\n## One directory, {n}: cost per operation\n")
        L.append("| files | create µs (marginal) | lookup µs (cold stat) | readdir µs/entry (cold) | peak RSS MiB |")
        L.append("|---|---|---|---|---|")
        for r in rows:
            L.append(f"| {r['files']:,} | {fmt(r['create_us'])} | {fmt(r['lookup_cold_us'])} | "
                     f"{fmt(r['readdir_cold_us_per_entry'])} | {fmt(r['peak_rss_mib'])} |")
    for n, rows in res.get("seq", {}).items():
        L.append(f"\n## Sequential throughput against file size, {n}\n")
        L.append("| file size | write MiB/s (end_fsync) | read MiB/s (cold) | peak RSS MiB |")
        L.append("|---|---|---|---|")
        for r in rows:
            L.append(f"| {r['size_mib']:,} MiB | {fmt(r['write_mibs'])} | {fmt(r['read_cold_mibs'])} | "
                     f"{fmt(r['peak_rss_mib'])} |")
    if res.get("memory"):
        L.append("\n## PermFS daemon peak memory against hot-tier budget\n")
        L.append("| hot_tier_mb | peak RSS after seq write | seq MiB/s | peak RSS after rand 4k writes | rand IOPS |")
        L.append("|---|---|---|---|---|")
        for r in res["memory"]:
            L.append(f"| {r['hot_tier_mb']} | {fmt(r['peak_rss_mib_seq'])} MiB | {fmt(r['seq_write_mibs'])} | "
                     f"{fmt(r['peak_rss_mib_rand'])} MiB | {fmt(r['randwrite_iops'])} |")
    for n, why in res.get("unavailable", {}).items():
        L.append(f"\n- {n}: unavailable: {why}")
    return "\n".join(L) + "\n"
