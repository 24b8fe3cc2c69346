#!/usr/bin/python3
"""Scaling model of synchronous data parallelism: step time = compute + exposed allreduce.

Compute per step on one worker with b samples:  T_c(b) = t_fixed + b * t_sample, where on a GPU
t_sample = 6 * P / rate (rate: sustained per-GPU FLOP/s) and t_fixed = Adam's pass over
28 bytes per parameter at HBM bandwidth plus a per-step launch overhead; on this CPU both come
from the measured 1-rank points (optimizer time and the rest per sample).
Ring allreduce of B = 4P bytes on p workers (alpha-beta):  T = 2(p-1) alpha + 2(p-1)/p * B / beta.
  flat:          one ring over all p workers; across nodes its slowest hop is the network.
  hierarchical:  reduce-scatter and all-gather inside each node of g GPUs (NVLink) around one
                 ring per GPU across the n = p/g nodes on 1/g of the buffer (InfiniBand), i.e.
                 2(g-1) a_i + 2(g-1)/g B/b_i + 2(n-1) a_e + 2(n-1)/n (B/g)/b_e.
Overlap: a bucketed allreduce that starts while backward runs hides up to `overlap` x backward
(backward = 2/3 of the GEMM time); only the rest is exposed.
Default machine (change with the options): 8 GPUs per node (H100-class), FP32 SGEMM sustained at
50 TFLOP/s per GPU, HBM 2500 GB/s, 60 us of launches per step, NVLink bus bandwidth 300 GB/s with
3 us per ring step, one 400 Gb/s NDR InfiniBand NIC per GPU giving 45 GB/s with 8 us per step.
Ring latency grows as 2(p-1) alpha: at 1,024 GPUs that alone is ~16 ms (NCCL switches to trees
for small buffers; this model does not). Validated against this machine's 1- and 2-rank points:
once with the 1-rank compute rate, once with compute slowed by the per-rank SGEMM rate the
benchmark measured at that rank count (cores sharing caches and memory run GEMMs slower together).
Usage: model.py [--scaling-csv bench/results/scaling.csv] [--allreduce-csv bench/results/allreduce.csv]
"""
import argparse
import csv
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

MODELS = {"small": [784, 256, 128, 10], "large": [784, 4096, 4096, 4096, 10]}
GPUS = [8, 16, 32, 64, 128, 256, 512, 1024]


def params(widths):
    return sum(widths[i] * widths[i + 1] + widths[i + 1] for i in range(len(widths) - 1))


def ring(p, nbytes, alpha, beta):
    return 0.0 if p <= 1 else 2 * (p - 1) * alpha + 2 * (p - 1) / p * nbytes / beta


def allreduce_time(p, nbytes, a, hierarchical):
    g = a.gpus_per_node
    ai, bi = a.intra_alpha_us * 1e-6, a.intra_gbs * 1e9
    ae, be = a.inter_alpha_us * 1e-6, a.inter_gbs * 1e9
    if p <= g:
        return ring(p, nbytes, ai, bi)
    if not hierarchical:
        return ring(p, nbytes, ae, be)
    n = p // g
    return ring(g, nbytes, ai, bi) + ring(n, nbytes / g, ae, be)


def gpu_step(P, b, p, a, hierarchical, overlap):
    gemm = 6.0 * P * b / (a.gpu_tflops * 1e12)
    fixed = 28.0 * P / (a.hbm_gbs * 1e9) + a.step_overhead_us * 1e-6
    ar = allreduce_time(p, 4.0 * P, a, hierarchical)
    exposed = max(0.0, ar - overlap * gemm * 2.0 / 3.0)
    return gemm + fixed, ar, gemm + fixed + exposed


def predict_tables(a):
    rows = []
    for name in a.models.split(","):
        P = params(MODELS[name])
        for p in GPUS:
            for mode, b in (("weak", a.per_gpu_batch), ("strong", max(1, a.global_batch // p))):
                one = gpu_step(P, a.per_gpu_batch if mode == "weak" else a.global_batch, 1, a, True, 0.0)[2]
                for hier in (False, True):
                    for ov in (0.0, a.overlap):
                        comp, ar, step = gpu_step(P, b, p, a, hier, ov)
                        eff = one / step if mode == "weak" else one / (p * step)
                        rows.append(dict(model=name, params=P, mode=mode, gpus=p, batch_per_gpu=b,
                                         allreduce=("hierarchical" if hier else "flat ring"), overlap=ov,
                                         compute_ms=comp * 1e3, allreduce_ms=ar * 1e3, step_ms=step * 1e3,
                                         efficiency=eff))
    return rows


def print_table(rows, a):
    print(f"GPU cluster prediction: {a.gpus_per_node} GPUs/node, {a.gpu_tflops} TFLOP/s per GPU, NVLink "
          f"{a.intra_gbs} GB/s + {a.intra_alpha_us} us, IB {a.inter_gbs} GB/s + {a.inter_alpha_us} us; "
          f"weak: {a.per_gpu_batch} samples/GPU, strong: global {a.global_batch}")
    print(f"{'model':<6} {'mode':<6} {'GPUs':>5} {'b/GPU':>6} {'compute ms':>10} {'ring ms':>9} {'hier ms':>9} "
          f"{'eff ring':>8} {'eff hier':>8} {'eff hier+ovl':>12}")
    key = lambda r: (r["model"], r["mode"], r["gpus"])  # noqa: E731
    by = {}
    for r in rows:
        by.setdefault(key(r), {})[(r["allreduce"], r["overlap"])] = r
    for k in sorted(by, key=lambda k: (k[0], k[1], k[2])):
        d = by[k]
        flat0, hier0 = d[("flat ring", 0.0)], d[("hierarchical", 0.0)]
        hier1 = d[("hierarchical", a.overlap)]
        print(f"{k[0]:<6} {k[1]:<6} {k[2]:>5} {flat0['batch_per_gpu']:>6} {flat0['compute_ms']:>10.3f} "
              f"{flat0['allreduce_ms']:>9.3f} {hier0['allreduce_ms']:>9.3f} {flat0['efficiency']:>8.3f} "
              f"{hier0['efficiency']:>8.3f} {hier1['efficiency']:>12.3f}")


def plot(rows, a, path):
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, mode in zip(axes, ("weak", "strong")):
        for name in a.models.split(","):
            for hier, ov, style in ((False, 0.0, ":"), (True, 0.0, "--"), (True, a.overlap, "-")):
                pts = [r for r in rows if r["model"] == name and r["mode"] == mode and
                       r["allreduce"] == ("hierarchical" if hier else "flat ring") and r["overlap"] == ov]
                label = f"{name}, {'hierarchical' if hier else 'flat ring'}{', overlap' if ov else ''}"
                ax.plot([r["gpus"] for r in pts], [r["efficiency"] for r in pts], style, marker="o", ms=3,
                        label=label)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("GPUs")
        ax.set_ylabel("parallel efficiency")
        ax.set_ylim(0, 1.05)
        ax.grid(alpha=0.3)
        ax.set_title(f"{mode} scaling ({a.per_gpu_batch} per GPU)" if mode == "weak"
                     else f"strong scaling (global batch {a.global_batch})")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def fit_alpha_beta(path, ranks):
    """alpha, beta of the ring formula from lockstep's allreduce times, the path its trainer takes
    (least squares on t = c0 + c1 B)."""
    pts = []
    with open(path) as f:
        for r in csv.DictReader(f):
            if int(r["ranks"]) == ranks and r["oversubscribed"] == "no":
                pts.append((float(r["bytes"]), float(r["lockstep_us"]) * 1e-6))
    if len(pts) < 2:
        return None
    n = len(pts)
    mx = sum(x for x, _ in pts) / n
    my = sum(y for _, y in pts) / n
    c1 = sum((x - mx) * (y - my) for x, y in pts) / sum((x - mx) ** 2 for x, _ in pts)
    c0 = max(my - c1 * mx, 0.0)
    p = ranks
    return c0 / (2 * (p - 1)), 2 * (p - 1) / p / c1


def validate(a):
    """Predicts this machine's multi-rank step times from its 1-rank points and measured allreduce."""
    if not (os.path.exists(a.scaling_csv) and os.path.exists(a.allreduce_csv)):
        print(f"validation skipped: need {a.scaling_csv} and {a.allreduce_csv} (bench/scaling/run.sh, bench_allreduce)")
        return
    fit = fit_alpha_beta(a.allreduce_csv, 2)
    if not fit:
        print("validation skipped: no 2-rank allreduce rows")
        return
    alpha, beta = fit
    print(f"\nvalidation on this machine: alpha {alpha * 1e6:.2f} us, beta {beta / 1e9:.2f} GB/s "
          f"(fitted to lockstep's 2-rank allreduce times)")
    series = {}
    with open(a.scaling_csv) as f:
        for r in csv.DictReader(f):
            series.setdefault(r["case"], []).append(r)
    # Two predictions: compute at the 1-rank rate, and compute slowed by the per-rank SGEMM rate
    # measured at the same rank count (cores that share caches and memory bandwidth each run
    # GEMMs slower when all of them do).
    print(f"{'series':<14} {'ranks':>5} {'batch':>6} {'predicted ms':>12} {'+sgemm rate':>12} {'measured ms':>12} "
          f"{'error':>7} {'error':>7}")
    for case, rs in sorted(series.items()):
        base = next((r for r in rs if int(r["ranks"]) == 1), None)
        if not base:
            continue
        P = float(base["params"])
        t_fixed = float(base["optimizer_ms"]) * 1e-3
        t_sample = (float(base["step_ms"]) - float(base["optimizer_ms"]) - float(base["allreduce_ms"])) \
            * 1e-3 / int(base["batch"])
        rate1 = float(base["sgemm_gflops_per_rank"])
        for r in sorted(rs, key=lambda r: int(r["ranks"])):
            p = int(r["ranks"])
            local = -(-int(r["batch"]) // p)
            comm = ring(p, 4.0 * P, alpha, beta)
            pred = t_fixed + local * t_sample + comm
            pred_rate = t_fixed + local * t_sample * rate1 / float(r["sgemm_gflops_per_rank"]) + comm
            meas = float(r["step_ms"]) * 1e-3
            note = "  (oversubscribed)" if r["oversubscribed"] == "yes" else ""
            print(f"{case:<14} {p:>5} {r['batch']:>6} {pred * 1e3:>12.3f} {pred_rate * 1e3:>12.3f} "
                  f"{meas * 1e3:>12.3f} {(pred - meas) / meas * 100:>6.1f}% {(pred_rate - meas) / meas * 100:>6.1f}%"
                  f"{note}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="small,large")
    ap.add_argument("--gpu-tflops", type=float, default=50.0, help="sustained FP32 GEMM rate per GPU")
    ap.add_argument("--hbm-gbs", type=float, default=2500.0, help="GPU memory bandwidth for the Adam pass")
    ap.add_argument("--step-overhead-us", type=float, default=60.0, help="launches and host work per step")
    ap.add_argument("--gpus-per-node", type=int, default=8)
    ap.add_argument("--intra-gbs", type=float, default=300.0, help="NVLink ring bandwidth per GPU")
    ap.add_argument("--intra-alpha-us", type=float, default=3.0)
    ap.add_argument("--inter-gbs", type=float, default=45.0, help="InfiniBand bandwidth per GPU (its NIC)")
    ap.add_argument("--inter-alpha-us", type=float, default=8.0)
    ap.add_argument("--per-gpu-batch", type=int, default=128, help="weak scaling")
    ap.add_argument("--global-batch", type=int, default=8192, help="strong scaling")
    ap.add_argument("--overlap", type=float, default=1.0, help="fraction of backward that can hide the allreduce")
    ap.add_argument("--scaling-csv", default="bench/results/scaling.csv")
    ap.add_argument("--allreduce-csv", default="bench/results/allreduce.csv")
    ap.add_argument("--out", default="bench/results")
    a = ap.parse_args()
    rows = predict_tables(a)
    print_table(rows, a)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "scaling_model.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    png = os.path.join(a.out, "scaling_model.png")
    plot(rows, a, png)
    print(f"wrote {png} and {os.path.join(a.out, 'scaling_model.csv')}")
    validate(a)


if __name__ == "__main__":
    main()
