#!/usr/bin/python3
"""The PyTorch peer of bench_throughput: the same MLP, global batch, optimizer and data, trained
as one process or as DistributedDataParallel (gloo) over N local processes. Measures training
samples/s (mode throughput) or training time to a test accuracy (mode accuracy). Prints one
'RESULT {json}' line. Threading is set before torch is imported: torch.set_num_threads does
not limit OpenBLAS, so OPENBLAS_NUM_THREADS is set too. Run with /usr/bin/python3 (Debian torch).
"""
import argparse
import gzip
import json
import os
import sys
import tempfile
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--layers", default="784,256,128,10")
    p.add_argument("--batch", type=int, default=128, help="global batch")
    p.add_argument("--optimizer", default="adam", choices=["adam", "sgd"])
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads per process")
    p.add_argument("--blas-threads", type=int, default=1, help="OPENBLAS_NUM_THREADS per process")
    p.add_argument("--ftz", type=int, default=1, help="torch.set_flush_denormal")
    p.add_argument("--foreach", type=int, default=0, help="Adam(foreach=...)")
    p.add_argument("--steps", type=int, default=100, help="steps per measured repeat")
    p.add_argument("--warmup-steps", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3, help="the median repeat is reported")
    p.add_argument("--data", default="fmnist", choices=["fmnist", "synthetic"])
    p.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--ddp", type=int, default=0, help="processes for DistributedDataParallel (gloo); 0: none")
    p.add_argument("--mode", default="throughput", choices=["throughput", "accuracy"])
    p.add_argument("--target-acc", type=float, default=0.88)
    p.add_argument("--epochs", type=int, default=20, help="accuracy mode: cosine schedule length")
    p.add_argument("--seed", type=int, default=42)
    return p.parse_args()


ARGS = parse_args()
# Before torch loads OpenBLAS and its OpenMP runtime.
os.environ["OPENBLAS_NUM_THREADS"] = str(ARGS.blas_threads)
os.environ["OMP_NUM_THREADS"] = str(ARGS.threads)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402
import torch.nn.functional as F  # noqa: E402


def read_idx(path):
    """An IDX file (gzip or raw) as a numpy array: magic, dims, big-endian payload."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    assert raw[2] == 0x08, f"{path}: only unsigned-byte IDX files are read here"
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_data(args, dim, classes, rows):
    if args.data == "synthetic":
        g = np.random.default_rng(7)
        n = min(rows, 16384)
        x = g.random((n, dim), dtype=np.float32)
        y = g.integers(0, classes, n).astype(np.int64)
        return torch.from_numpy(x), torch.from_numpy(y), None, None
    d = args.data_dir
    x = read_idx(f"{d}/train-images-idx3-ubyte.gz").reshape(-1, 784).astype(np.float32) / 255.0
    y = read_idx(f"{d}/train-labels-idx1-ubyte.gz").astype(np.int64)
    xt = read_idx(f"{d}/t10k-images-idx3-ubyte.gz").reshape(-1, 784).astype(np.float32) / 255.0
    yt = read_idx(f"{d}/t10k-labels-idx1-ubyte.gz").astype(np.int64)
    return torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(xt), torch.from_numpy(yt)


def make_model(widths):
    layers = []
    for i in range(len(widths) - 1):
        layers.append(torch.nn.Linear(widths[i], widths[i + 1]))
        if i + 2 < len(widths):
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def make_optimizer(args, params):
    if args.optimizer == "adam":
        return torch.optim.Adam(params, lr=args.lr, foreach=bool(args.foreach))
    return torch.optim.SGD(params, lr=args.lr)


def test_accuracy(model, xt, yt):
    with torch.no_grad():
        correct = 0
        for s in range(0, len(yt), 1000):
            correct += (model(xt[s:s + 1000]).argmax(1) == yt[s:s + 1000]).sum().item()
    return correct / len(yt)


def worker(rank, world, args, init_file):
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(bool(args.ftz))
    torch.manual_seed(args.seed)
    if world > 1:
        dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    widths = [int(w) for w in args.layers.split(",")]
    x, y, xt, yt = load_data(args, widths[0], widths[-1], args.steps * args.batch)
    model = make_model(widths)
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(model)
    opt = make_optimizer(args, model.parameters())
    # This rank's slice of each global batch (sizes differ by at most one, as in lockstep).
    lo = rank * args.batch // world
    hi = (rank + 1) * args.batch // world
    g = torch.Generator().manual_seed(args.seed)

    def step(idx):
        xb = x.index_select(0, idx)
        yb = y.index_select(0, idx)
        loss = F.cross_entropy(model(xb), yb, reduction="mean")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    result = {"rank_count": world, "threads": args.threads, "blas_threads": args.blas_threads,
              "ftz": args.ftz, "foreach": args.foreach, "torch": torch.__version__}
    if args.mode == "throughput":
        n = len(y)

        def batches(count):
            perm = torch.randperm(n, generator=g)
            for b in range(count):
                start = (b * args.batch) % (n - args.batch + 1)
                yield perm[start + lo:start + hi]

        for idx in batches(args.warmup_steps):
            step(idx)
        times = []
        for _ in range(args.repeats):
            if world > 1:
                dist.barrier()
            t0 = time.perf_counter()
            for idx in batches(args.steps):
                loss = step(idx)
            times.append(time.perf_counter() - t0)
        times.sort()
        result.update(samples_per_s=args.steps * args.batch / times[len(times) // 2],
                      samples_per_s_best=args.steps * args.batch / times[0], final_loss=float(loss))
    else:
        # lockstep's default run: 5,000 of the 60,000 training images held out, cosine decay of
        # the learning rate over all epochs, test accuracy after every epoch (not timed).
        keep = torch.randperm(len(y), generator=torch.Generator().manual_seed(args.seed))[5000:]
        x, y = x[keep], y[keep]
        n = len(y)
        steps_per_epoch = (n + args.batch - 1) // args.batch
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps_per_epoch * args.epochs)
        train_s, reached = 0.0, None
        for epoch in range(args.epochs):
            perm = torch.randperm(n, generator=g)
            t0 = time.perf_counter()
            for b in range(steps_per_epoch):
                chunk = perm[b * args.batch:(b + 1) * args.batch]
                k = len(chunk)
                step(chunk[rank * k // world:(rank + 1) * k // world])
                sched.step()
            train_s += time.perf_counter() - t0
            acc = test_accuracy(model, xt, yt)
            if rank == 0:
                print(f"epoch {epoch + 1}: test accuracy {acc:.4f}, training time {train_s:.2f} s", flush=True)
            if acc >= args.target_acc:
                reached = epoch + 1
                break
        result.update(train_seconds_to_target=train_s if reached else None, epochs=reached,
                      target_acc=args.target_acc)
    if rank == 0:
        print("RESULT " + json.dumps(result), flush=True)
    if world > 1:
        dist.destroy_process_group()


def main():
    if ARGS.ddp > 1:
        with tempfile.TemporaryDirectory() as tmp:
            mp.spawn(worker, args=(ARGS.ddp, ARGS, os.path.join(tmp, "rendezvous")), nprocs=ARGS.ddp, join=True)
    else:
        worker(0, 1, ARGS, None)


if __name__ == "__main__":
    sys.exit(main())
