#!/usr/bin/env python3
"""Tables of jobs/examples/big-to-small.sh: mean and spread over seeds of results.csv."""
import csv
import statistics
import sys
from collections import OrderedDict


def spread(values):
    """Mean, sample standard deviation (0 for one seed), min and max."""
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return statistics.mean(values), sd, min(values), max(values)


def main(path):
    rows = list(csv.DictReader(open(path)))
    seeds = sorted({int(r["seed"]) for r in rows})
    by = OrderedDict()
    for r in rows:
        by.setdefault((r["experiment"], r["model"]), []).append(r)
    print(f"{len(seeds)} seed(s): {', '.join(map(str, seeds))}. Accuracy: mean ± sample std [min, max] over seeds; "
          "inference: one process, one BLAS thread, batch of 1000, fastest of 5 windows, mean over seeds.\n")
    for experiment, title in (("distillation", "Knowledge distillation (test set, 10 classes)"),
                              ("transfer", "Transfer to classes 5-9 from 1,000 labelled samples (test set, 5 classes)")):
        print(f"### {title}\n")
        print("| model | parameters | checkpoint (MiB) | test accuracy | per seed | inference (samples/s) |")
        print("|---|---:|---:|---|---|---:|")
        for (exp, model), rs in by.items():
            if exp != experiment:
                continue
            acc = [float(r["test_accuracy"]) for r in rs]
            m, sd, lo, hi = spread(acc)
            rate = statistics.mean(float(r["samples_per_s"]) for r in rs)
            mib = statistics.mean(int(r["checkpoint_bytes"]) for r in rs) / 2**20
            per_seed = " ".join(f"{a:.4f}" for a in acc)
            if model == "base-classes-0-4":
                model += " (its own test set: classes 0-4)"
            print(f"| {model} | {int(rs[0]['params']):,} | {mib:.2f} | {m:.4f} ± {sd:.4f} [{lo:.4f}, {hi:.4f}] "
                  f"| {per_seed} | {rate:,.0f} |")
        print()
    # The paired difference answers "does distillation beat scratch" better than two spreads do.
    for experiment, a, b in (("distillation", "student-distilled", "student-scratch"),
                             ("distillation", "student-distilled-T4-a0.9", "student-scratch"),
                             ("transfer", "full-finetune", "scratch"), ("transfer", "frozen-body", "scratch")):
        ra, rb = by.get((experiment, a)), by.get((experiment, b))
        if not ra or not rb:
            continue
        acc_b = {r["seed"]: float(r["test_accuracy"]) for r in rb}
        diffs = [float(r["test_accuracy"]) - acc_b[r["seed"]] for r in ra if r["seed"] in acc_b]
        m, sd, lo, hi = spread(diffs)
        print(f"- {a} minus {b}, paired by seed: {m:+.4f} ± {sd:.4f} [{lo:+.4f}, {hi:+.4f}]")


if __name__ == "__main__":
    main(sys.argv[1])
