#!/usr/bin/python3
"""Plots of a scaling CSV (bench_throughput rows labelled strong-<model> / weak-<model>):
speedup and efficiency against ranks, and the step time split by phase. Oversubscribed points
(more ranks than cores) are drawn hollow and left out of the printed efficiency summary.
Usage: plot.py bench/results/scaling.csv [--out bench/results]. Needs only matplotlib (Agg).
"""
import argparse
import csv
import os
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PHASES = ["data_ms", "forward_ms", "backward_ms", "allreduce_ms", "optimizer_ms", "other_ms"]


def load(path):
    """{(mode, model): [row, ...] sorted by ranks}; for several hosts' rows (SLURM gather) the
    rows are kept apart by the 'case' label they carry."""
    series = defaultdict(list)
    with open(path) as f:
        for row in csv.DictReader(f):
            mode, _, model = row["case"].partition("-")
            for k in ["ranks", "batch"]:
                row[k] = int(row[k])
            for k in ["samples_per_s", "step_ms"] + PHASES:
                row[k] = float(row[k])
            row["over"] = row["oversubscribed"] == "yes"
            series[(mode, model)].append(row)
    for rows in series.values():
        rows.sort(key=lambda r: r["ranks"])
    return series


def scaling_figures(rows, mode):
    """Speedup and efficiency of each point against the 1-rank point of the same series."""
    base = next((r for r in rows if r["ranks"] == 1), rows[0])
    out = []
    for r in rows:
        p = r["ranks"] / base["ranks"]
        speedup = r["samples_per_s"] / base["samples_per_s"]  # throughput ratio
        # strong: same work, so efficiency = speedup / p; weak: p times the work, so the same
        # quantity (throughput per rank relative to one rank) is the step-time ratio.
        out.append((r["ranks"], speedup, speedup / p, r["over"]))
    return out


def plot_scaling(series, out_dir):
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    for col, mode in enumerate(["strong", "weak"]):
        ax_s, ax_e = axes[0][col], axes[1][col]
        max_p = 1
        for (m, model), rows in sorted(series.items()):
            if m != mode:
                continue
            pts = scaling_figures(rows, mode)
            max_p = max(max_p, max(p for p, *_ in pts))
            batch = (f"global batch {rows[0]['batch']}" if mode == "strong"
                     else f"{rows[0]['batch'] // rows[0]['ranks']} per rank")
            label = f"{model} ({rows[0]['layers']}, {batch})"
            line, = ax_s.plot([p for p, *_ in pts], [s for _, s, _, _ in pts], "-", label=label)
            ax_e.plot([p for p, *_ in pts], [e for _, _, e, _ in pts], "-", color=line.get_color(), label=label)
            for p, s, e, over in pts:
                face = "none" if over else line.get_color()
                ax_s.plot(p, s, "o", mfc=face, color=line.get_color())
                ax_e.plot(p, e, "o", mfc=face, color=line.get_color())
        ax_s.plot([1, max_p], [1, max_p], "k:", label="ideal")
        ax_e.axhline(1.0, color="k", ls=":")
        ax_s.set_title(f"{mode} scaling: speedup (samples/s vs 1 rank)")
        ax_e.set_title(f"{mode} scaling: efficiency (hollow = oversubscribed)")
        for ax in (ax_s, ax_e):
            ax.set_xlabel("ranks")
            ax.set_xticks(range(1, max_p + 1))
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        ax_e.set_ylim(0, 1.2)
    fig.tight_layout()
    path = os.path.join(out_dir, "scaling_speedup_efficiency.png")
    fig.savefig(path, dpi=110)
    return path


def plot_breakdown(series, out_dir):
    keys = sorted(series)
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 4.5), squeeze=False)
    colors = ["#8c8c8c", "#1f77b4", "#ff7f0e", "#d62728", "#2ca02c", "#bcbd22"]
    for ax, key in zip(axes[0], keys):
        rows = series[key]
        xs = list(range(len(rows)))
        bottom = [0.0] * len(rows)
        for phase, color in zip(PHASES, colors):
            vals = [max(r[phase], 0.0) for r in rows]
            ax.bar(xs, vals, bottom=bottom, color=color, label=phase[:-3])
            bottom = [b + v for b, v in zip(bottom, vals)]
        ax.set_xticks(xs)
        ax.set_xticklabels([f"{r['ranks']}{'*' if r['over'] else ''}\nb={r['batch']}" for r in rows], fontsize=8)
        ax.set_title(f"{key[0]} {key[1]}", fontsize=10)
        ax.set_ylabel("ms per step")
        ax.set_xlabel("ranks (* oversubscribed)")
    axes[0][-1].legend(fontsize=8)
    fig.suptitle("time per step by phase (mean over ranks)")
    fig.tight_layout()
    path = os.path.join(out_dir, "scaling_breakdown.png")
    fig.savefig(path, dpi=110)
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("csv")
    ap.add_argument("--out", default="bench/results")
    args = ap.parse_args()
    series = load(args.csv)
    print(f"{'series':<14} {'ranks':>5} {'batch':>6} {'samples/s':>10} {'step ms':>9} {'speedup':>8} {'effic.':>7}")
    for key, rows in sorted(series.items()):
        for (p, s, e, over), r in zip(scaling_figures(rows, key[0]), rows):
            note = "  oversubscribed: not an efficiency claim" if over else ""
            print(f"{key[0] + '-' + key[1]:<14} {p:>5} {r['batch']:>6} {r['samples_per_s']:>10.0f} "
                  f"{r['step_ms']:>9.3f} {s:>8.3f} {e:>7.3f}{note}")
    for path in (plot_scaling(series, args.out), plot_breakdown(series, args.out)):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
