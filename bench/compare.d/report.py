"""Tables, issue-5 target checks and the ratio chart for bench/compare."""

import math

FUSE_PEERS = ("fuse2fs", "zfs-fuse")

# (metric prefix, description, rule) ; rule(ratios) -> (met: bool|None, detail)
def _targets():
    def vs(peer, need):
        def rule(r):
            x = r.get(peer)
            if x is None:
                return None, f"no {peer} figure"
            return x >= need, f"{x:.2f}× {peer} (need ≥ {need}×)"
        return rule

    def best_fuse(need):
        def rule(r):
            xs = {p: r[p] for p in FUSE_PEERS if r.get(p) is not None}
            if not xs:
                return None, "no FUSE peer figure"
            p = min(xs, key=xs.get)  # PermFS's ratio to the better peer is the smaller ratio
            return xs[p] >= need, f"{xs[p]:.2f}× better peer {p} (need ≥ {need}×)"
        return rule

    def both(*rules):
        def rule(r):
            res = [f(r) for f in rules]
            ms = [m for m, _ in res]
            met = False if False in ms else (None if None in ms else True)
            return met, "; ".join(d for _, d in res)
        return rule

    return [
        ("seqwrite MiB/s", "seq write ≥ 1.0× ext4", vs("ext4", 1.0)),
        ("seqread MiB/s", "seq read (cold) ≥ 0.9× ext4", vs("ext4", 0.9)),
        ("randwrite 4k IOPS", "rand 4k write ≥ 10× better FUSE peer", best_fuse(10)),
        ("randread 4k IOPS", "rand 4k read (cold) ≥ 1.2× better FUSE peer, ≥ 1.0× ext4",
         both(best_fuse(1.2), vs("ext4", 1.0))),
        ("fs_mark files/s", "fs_mark ≥ 4× zfs-fuse, ≥ 40× fuse2fs",
         both(vs("zfs-fuse", 4), vs("fuse2fs", 40))),
        ("create ", "create ≥ 3× both FUSE peers", best_fuse(3)),
        ("ls -lR", "ls -lR ≥ 3× both FUSE peers", best_fuse(3)),
        ("rm -rf", "rm -rf ≥ 3× both FUSE peers", best_fuse(3)),
    ]


NO_RATIO = ("dedupe: 1st", "dedupe: 2nd")


def fmt(v):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def subjects(res):
    """The PermFS configurations measured (permfs over /dev/fuse, permfs-uring over io_uring)."""
    return [t for t in res["config"]["targets"]
            if t.startswith("permfs") and t not in res["unavailable"]]


def peers_of(res):
    return [t for t in res["config"]["targets"]
            if not t.startswith("permfs") and t not in res["unavailable"]]


def compute_ratios(res):
    """ratio[subject][metric][peer] = how many times better that PermFS configuration is than
    the peer (> 1: PermFS wins); checks = the issue-5 targets for each configuration."""
    res["ratio"] = {}
    checks = []
    for subj in subjects(res):
        ratios = {}
        for k, med in res["median"].items():
            if k.startswith(NO_RATIO) or subj not in med:
                continue
            better = res["meta"][k]["better"]
            p = med[subj]
            for peer, v in med.items():
                if peer.startswith("permfs"):
                    continue
                try:
                    r = p / v if better == "higher" else v / p
                except ZeroDivisionError:
                    r = float("inf")
                ratios.setdefault(k, {})[peer] = r
        res["ratio"][subj] = ratios
        for prefix, desc, rule in _targets():
            for k in ratios:
                if k.startswith(prefix) and "wall" not in k:
                    met, detail = rule(ratios[k])
                    checks.append({"subject": subj, "metric": k, "target": desc, "met": met,
                                   "detail": detail})
        # dedupe target is absolute
        for k, med in res["median"].items():
            if k.startswith("dedupe: 2nd copy %") and subj in med:
                v = med[subj]
                checks.append({"subject": subj, "metric": k,
                               "target": "2nd copy of identical data adds < 2% space",
                               "met": v < 2.0, "detail": f"{v:.1f}% (need < 2%)"})
    res["checks"] = checks


def markdown(res):
    cfg = res["config"]
    mi = res["machine"]
    tn = [t for t in cfg["targets"] if t not in res["unavailable"]]
    peers = peers_of(res)
    L = []
    L.append(f"# bench/compare — {cfg['mode']} mode, median of {cfg['runs']} run(s)\n")
    L.append(f"Machine: {mi.get('cpu', '?')}, {mi.get('cpus')} CPUs, {mi.get('mem_gib')} GiB, "
             f"kernel {mi.get('kernel')}; images on {mi.get('workdir_fs', '?')}. "
             f"Sizes: {cfg['sizes']}. Total time {res.get('elapsed_s', 0) / 60:.1f} min.\n")
    for t, why in res["unavailable"].items():
        L.append(f"- **{t}**: unavailable: {why}")
    for t, errs in res["errors"].items():
        for w, e in errs.items():
            L.append(f"- **{t}** / {w}: {e}")
    if res["unavailable"] or res["errors"]:
        L.append("")
    L.append("## Raw figures\n")
    L.append("| metric | unit | " + " | ".join(tn) + " |")
    L.append("|---|---|" + "---|" * len(tn))
    for k in res["median"]:
        meta = res["meta"][k]
        unit = meta["unit"] + (" ↓" if meta["better"] == "lower" else "")
        L.append(f"| {k} | {unit} | " + " | ".join(fmt(res["median"][k].get(t)) for t in tn) + " |")
    if res["peak_rss_kib"]:
        L.append("")
        L.append("Daemon peak RSS (VmHWM, MiB) per workload:\n")
        dn = [t for t in tn if any(t in v for v in res["peak_rss_kib"].values())]
        L.append("| workload | " + " | ".join(dn) + " |")
        L.append("|---|" + "---|" * len(dn))
        for w, per in res["peak_rss_kib"].items():
            L.append(f"| {w} | " + " | ".join(
                fmt(max(per[t]) / 1024) if t in per else "–" for t in dn) + " |")
    for subj in subjects(res):
        if not peers or subj not in res["ratio"]:
            continue
        L.append(f"\n## {subj}: ratio to each peer (> 1: PermFS better)\n")
        L.append("| metric | " + " | ".join(peers) + " |")
        L.append("|---|" + "---|" * len(peers))
        for k, r in res["ratio"][subj].items():
            L.append(f"| {k} | " + " | ".join(
                (fmt(r[p]) + "×") if p in r else "–" for p in peers) + " |")
    if res.get("checks"):
        L.append("\n## Issue 5 targets\n")
        L.append("| PermFS | metric | target | result | |")
        L.append("|---|---|---|---|---|")
        for c in res["checks"]:
            mark = {True: "met", False: "**missed**", None: "n/a"}[c["met"]]
            L.append(f"| {c.get('subject', 'permfs')} | {c['metric']} | {c['target']} | "
                     f"{c['detail']} | {mark} |")
    L.append("")
    return "\n".join(L) + "\n"


def plot(res, path):
    """One group of bars per metric: each PermFS configuration against each peer."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    subs = [s for s in subjects(res) if res.get("ratio", {}).get(s)]
    if not subs:
        return None
    metrics = []
    for s in subs:
        metrics += [k for k in res["ratio"][s] if "wall" not in k and k not in metrics]
    peers = peers_of(res)
    pairs = [(s, p) for s in subs for p in peers]
    n = len(pairs)
    width = 0.8 / max(n, 1)
    fig, ax = plt.subplots(figsize=(max(8, 1.1 * len(metrics) + 2), 6))
    colors = {"fuse2fs": "#d95f02", "zfs-fuse": "#7570b3", "ext4": "#1b9e77", "tmpfs": "#999999"}
    for i, (s, p) in enumerate(pairs):
        xs = [j + (i - (n - 1) / 2) * width for j in range(len(metrics))]
        ys = [res["ratio"][s].get(k, {}).get(p, float("nan")) for k in metrics]
        ys = [y if y and math.isfinite(y) and y > 0 else float("nan") for y in ys]
        ax.bar(xs, ys, width, label=f"{s} vs {p}", color=colors.get(p),
               hatch="//" if s != "permfs" else None, edgecolor="white")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xticks(range(len(metrics)))
    ax.set_xticklabels(metrics, rotation=40, ha="right", fontsize=8)
    ax.set_ylabel("PermFS ratio (> 1: PermFS better, log scale)")
    ax.set_title(f"PermFS vs peers — bench/compare ({res['config']['mode']}, "
                 f"median of {res['config']['runs']})")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
