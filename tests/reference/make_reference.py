#!/usr/bin/python3
"""Generate the PyTorch reference fixtures that lockstep's C++ tests compare against.

Run with Debian's interpreter (it is the one that has torch):

    /usr/bin/python3 tests/reference/make_reference.py

Everything is computed in float64 so the fixtures are an independent ground truth that
the C++ code (float32 or float64) can be checked against with a tolerance (some expected
values are exactly 0, e.g. relu gradients of dead units, so use rel + abs, not rel only).
The C++ tests read the JSON with nlohmann::json and never need PyTorch.

Determinism: inputs and parameters come from closed-form sin/cos formulas (no RNG), the
JSON writer below fixes key order and prints every float with repr() (shortest string that
round-trips a double), so regenerating on the same machine gives byte-identical files.
"""

import json
import math
import os

import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
# A single thread keeps the reduction order of every op fixed from run to run.
torch.set_num_threads(1)

OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")

LAYERS = [6, 5, 4, 3]
BATCH = 4
NUM_CLASSES = LAYERS[-1]
ACTIVATIONS = ["relu", "tanh", "sigmoid", "gelu"]
OPT_STEPS = 3
# Pre-activations closer to 0 than this would put a relu unit on its kink, where the
# derivative is a convention (and finite differences are meaningless).
KINK_MARGIN = 1e-3


# --------------------------------------------------------------------------- inputs

def make_batch():
    """X [BATCH, in] and labels [BATCH]; incommensurate frequencies avoid repeated values."""
    X = torch.tensor([[0.9 * math.sin(0.5 + 1.1 * i + 0.7 * j) for j in range(LAYERS[0])]
                      for i in range(BATCH)])
    # Every class appears at least once, so each logit column gets a -1 in its gradient.
    labels = torch.tensor([(2 * i) % NUM_CLASSES for i in range(BATCH)], dtype=torch.long)
    return X, labels


def make_params():
    """[(W_l [out,in], b_l [out])], nn.Linear layout, magnitudes ~0.3 for W and ~0.1 for b."""
    params = []
    for l, (n_in, n_out) in enumerate(zip(LAYERS[:-1], LAYERS[1:])):
        W = torch.tensor([[0.35 * math.sin(0.3 + 1.37 * o + 0.71 * k + 2.93 * l) for k in range(n_in)]
                          for o in range(n_out)])
        b = torch.tensor([0.1 * math.cos(0.4 + 1.7 * o + 0.9 * l) for o in range(n_out)])
        params.append((W, b))
    return params


# --------------------------------------------------------------------------- model

def activate(name, z):
    if name == "relu":
        return torch.relu(z)
    if name == "tanh":
        return torch.tanh(z)
    if name == "sigmoid":
        return torch.sigmoid(z)
    if name == "gelu":
        # Written out rather than F.gelu so the exact (erf) form is unambiguous; the
        # tanh approximation differs by ~1e-4, far above the test tolerance.
        return 0.5 * z * (1.0 + torch.erf(z / math.sqrt(2.0)))
    raise ValueError(name)


def forward(params, X, act):
    """Returns (Zs, As): per layer pre- and post-activation; the last layer is linear."""
    Zs, As = [], []
    a = X
    for l, (W, b) in enumerate(params):
        z = a @ W.T + b
        a = z if l == len(params) - 1 else activate(act, z)
        Zs.append(z)
        As.append(a)
    return Zs, As


def shifted_log_softmax(logits):
    """log softmax per row as (z - max) - log(sum(exp(z - max))).

    Subtracting the row max first keeps every exp in [0, 1], and never adding the max
    back avoids rounding: e.g. four logits of -1e4 give exactly log(4) and p = 0.25,
    where logsumexp(z) - z_label would lose ~1e-12 to the spacing of doubles near 1e4.
    """
    shifted = logits - logits.max(dim=1, keepdim=True).values
    return shifted - torch.log(torch.exp(shifted).sum(dim=1, keepdim=True))


def xent_per_sample(logits, labels):
    """Softmax cross-entropy per row; finite for any finite logits."""
    return -shifted_log_softmax(logits).gather(1, labels[:, None])[:, 0]


def softmax_minus_onehot(logits, labels):
    """d(sum of xent)/d logits."""
    p = torch.exp(shifted_log_softmax(logits))
    return p - F.one_hot(labels, logits.shape[1]).to(logits.dtype)


# --------------------------------------------------------------------------- output

def flat(t):
    return [float(v) for v in t.detach().reshape(-1).tolist()]


def params_json(params):
    return [{"W": flat(W), "b": flat(b)} for W, b in params]


def to_json(obj, indent=0):
    """JSON with dicts/lists of objects indented and lists of numbers on one line.

    json.dumps(indent=...) would put every number on its own line (5x larger files);
    json.dumps without indent is unreadable. Floats use repr(), which is exact for doubles.
    """
    pad, pad_in = "  " * indent, "  " * (indent + 1)
    if isinstance(obj, dict):
        items = [f"{pad_in}{json.dumps(k)}: {to_json(v, indent + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, (list, tuple)):
        if all(not isinstance(v, (dict, list, tuple)) for v in obj):
            return "[" + ",".join(to_json(v) for v in obj) + "]"
        return "[\n" + ",\n".join(pad_in + to_json(v, indent + 1) for v in obj) + "\n" + pad + "]"
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return json.dumps(obj)
    if isinstance(obj, int):
        return str(obj)
    if isinstance(obj, float):
        assert math.isfinite(obj), "fixtures must hold finite numbers only"
        return repr(obj + 0.0)  # + 0.0 turns -0.0 (e.g. a negated zero loss) into 0.0
    raise TypeError(type(obj))


def write_fixture(name, obj):
    path = os.path.join(OUT_DIR, name)
    with open(path, "w", encoding="ascii", newline="\n") as f:
        f.write(to_json(obj) + "\n")
    print(f"wrote {os.path.relpath(path)} ({os.path.getsize(path)} bytes)")


# --------------------------------------------------------------------------- fixture 1

def finite_difference_check(params, X, labels, act, grads):
    """Central differences on loss_sum: guards against an autograd/convention mistake in
    this script itself (e.g. a wrong activation formula would still be self-consistent)."""
    h = 1e-6
    for (W, b), (gW, gb) in zip(params, grads):
        for p, g in ((W, gW), (b, gb)):
            flat_p, flat_g = p.data.view(-1), g.reshape(-1)
            for i in range(flat_p.numel()):
                orig = flat_p[i].item()
                flat_p[i] = orig + h
                up = xent_per_sample(forward(params, X, act)[0][-1], labels).sum().item()
                flat_p[i] = orig - h
                down = xent_per_sample(forward(params, X, act)[0][-1], labels).sum().item()
                flat_p[i] = orig
                fd = (up - down) / (2 * h)
                assert abs(fd - flat_g[i].item()) < 1e-7, (act, i, fd, flat_g[i].item())


def forward_backward_fixture(act):
    X, labels = make_batch()
    params = [(W.requires_grad_(), b.requires_grad_()) for W, b in make_params()]
    Zs, As = forward(params, X, act)
    for z in Zs:
        z.retain_grad()
    logits = Zs[-1]
    per_sample = xent_per_sample(logits, labels)
    loss_sum = per_sample.sum()
    loss_sum.backward()

    # Cross-check the hand-written loss against PyTorch's own cross-entropy.
    ref = F.cross_entropy(logits.detach(), labels, reduction="sum")
    assert abs(ref.item() - loss_sum.item()) < 1e-12
    dlogits = softmax_minus_onehot(logits.detach(), labels)
    assert torch.allclose(dlogits, logits.grad, rtol=0, atol=1e-14)
    if act == "gelu":
        for z, a in zip(Zs[:-1], As[:-1]):
            assert torch.allclose(a, F.gelu(z, approximate="none"), rtol=0, atol=1e-15)
    if act == "relu":
        for z in Zs[:-1]:
            assert z.detach().abs().min().item() > KINK_MARGIN, (act, z)
            # A fully dead or fully linear hidden layer would leave the mask logic untested.
            assert (z > 0).any() and (z < 0).any()

    grads = [(W.grad.clone(), b.grad.clone()) for W, b in params]
    finite_difference_check(params, X, labels, act, grads)

    return {
        "activation": act,
        "layers": LAYERS,
        "batch": BATCH,
        "X": flat(X),
        "labels": labels.tolist(),
        "params": params_json(params),
        "Z": [flat(z) for z in Zs],
        "A": [flat(a) for a in As],
        "logits": flat(logits),
        "loss_per_sample": flat(per_sample),
        "loss_sum": loss_sum.item(),
        "loss_mean": loss_sum.item() / BATCH,
        "grads": [{"W": flat(gW), "b": flat(gb)} for gW, gb in grads],
        "dZ": [flat(z.grad) for z in Zs],
        "dlogits": flat(logits.grad),
    }


# --------------------------------------------------------------------------- schedules

def schedule(kind, base_lr, warmup_steps=0, gamma=1.0, step_size=1, decay_steps=1,
             total_steps=OPT_STEPS, min_lr=0.0):
    """A schedule description exactly as written into the fixture (all keys always present
    so the C++ reader need not special-case missing ones; `type` says which are used)."""
    return {"type": kind, "base_lr": base_lr, "warmup_steps": warmup_steps, "gamma": gamma,
            "step_size": step_size, "decay_steps": decay_steps, "total_steps": total_steps,
            "min_lr": min_lr}


def scheduled_lr(s, t):
    """lockstep's own schedule definition (not torch.optim.lr_scheduler), 0-based step t."""
    W = s["warmup_steps"]
    factor = (t + 1) / W if t < W else 1.0
    tp = max(0, t - W)
    base = s["base_lr"]
    if s["type"] == "constant":
        value = base
    elif s["type"] == "step":
        value = base * s["gamma"] ** (tp // s["step_size"])
    elif s["type"] == "exponential":
        value = base * s["gamma"] ** (tp / s["decay_steps"])
    elif s["type"] == "cosine":
        span = s["total_steps"] - W
        value = s["min_lr"] + (base - s["min_lr"]) * 0.5 * (1 + math.cos(math.pi * min(tp, span) / span))
    else:
        raise ValueError(s["type"])
    return factor * value


# --------------------------------------------------------------------------- optimizers

def make_torch_optimizer(name, hp, params):
    if name == "sgd":
        return torch.optim.SGD(params, lr=hp["lr"], momentum=hp["momentum"], dampening=hp["dampening"],
                               nesterov=hp["nesterov"], weight_decay=hp["weight_decay"])
    if name == "adam":
        return torch.optim.Adam(params, lr=hp["lr"], betas=(hp["beta1"], hp["beta2"]), eps=hp["eps"],
                                weight_decay=hp["weight_decay"])
    if name == "adamw":
        return torch.optim.AdamW(params, lr=hp["lr"], betas=(hp["beta1"], hp["beta2"]), eps=hp["eps"],
                                 weight_decay=hp["weight_decay"])
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=hp["lr"], lr_decay=hp["lr_decay"], eps=hp["eps"],
                                   weight_decay=hp["weight_decay"],
                                   initial_accumulator_value=hp["initial_accumulator_value"])
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=hp["lr"], alpha=hp["alpha"], eps=hp["eps"],
                                   weight_decay=hp["weight_decay"], momentum=hp["momentum"],
                                   centered=hp["centered"])
    raise ValueError(name)


def manual_step(name, hp, lr, p, g, state, step):
    """The update rules as the C++ side is expected to implement them (and as README.md
    states them). Cross-checked against torch.optim so the documented formulas are the
    ones that produced the fixtures. `step` is 1-based; `g` is the (clipped) gradient."""
    if hp["weight_decay"] and name != "adamw":
        g = g + hp["weight_decay"] * p          # L2: added after clipping, inside the optimizer
    if name == "sgd":
        if hp["momentum"]:
            if "buf" in state:
                buf = hp["momentum"] * state["buf"] + (1 - hp["dampening"]) * g
            else:
                buf = g.clone()  # torch's first step: undamped (same as buf=0 when dampening=0)
            state["buf"] = buf
            g = g + hp["momentum"] * buf if hp["nesterov"] else buf
        return p - lr * g
    if name in ("adam", "adamw"):
        if name == "adamw":
            p = p * (1 - lr * hp["weight_decay"])  # decoupled decay, scaled by the current lr
        m = hp["beta1"] * state.get("m", torch.zeros_like(p)) + (1 - hp["beta1"]) * g
        v = hp["beta2"] * state.get("v", torch.zeros_like(p)) + (1 - hp["beta2"]) * g * g
        state["m"], state["v"] = m, v
        bc1 = 1 - hp["beta1"] ** step
        bc2 = 1 - hp["beta2"] ** step
        return p - (lr / bc1) * m / (v.sqrt() / math.sqrt(bc2) + hp["eps"])
    if name == "adagrad":
        s = state.get("sum", torch.full_like(p, hp["initial_accumulator_value"])) + g * g
        state["sum"] = s
        clr = lr / (1 + (step - 1) * hp["lr_decay"])
        return p - clr * g / (s.sqrt() + hp["eps"])
    if name == "rmsprop":
        sq = hp["alpha"] * state.get("sq", torch.zeros_like(p)) + (1 - hp["alpha"]) * g * g
        state["sq"] = sq
        return p - lr * g / (sq.sqrt() + hp["eps"])
    raise ValueError(name)


def hyper(name, lr, **overrides):
    """Full hyperparameter set with PyTorch defaults, so every key is always present."""
    base = {
        "sgd": dict(momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0),
        "adam": dict(beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0),
        "adamw": dict(beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01),
        "adagrad": dict(lr_decay=0.0, eps=1e-10, weight_decay=0.0, initial_accumulator_value=0.0),
        "rmsprop": dict(alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False),
    }[name]
    hp = {"lr": lr, **base}
    for k, v in overrides.items():
        assert k in hp, k
        hp[k] = v
    return hp


# max_norm for the clipping cases: ~0.15x the gradient norm at the start (printed when
# the script runs), small enough that all 3 steps clip (run_case asserts it). A literal
# rather than a derived value keeps the fixture easy to read.
CLIP = 0.05

CASES = [
    # name, optimizer, hyperparameters, schedule, max_norm (None = no clipping)
    ("sgd", "sgd", hyper("sgd", 0.1), schedule("constant", 0.1), None),
    ("sgd_wd", "sgd", hyper("sgd", 0.1, weight_decay=0.01), schedule("constant", 0.1), None),
    ("sgd_momentum", "sgd", hyper("sgd", 0.1, momentum=0.9), schedule("constant", 0.1), None),
    ("sgd_nesterov", "sgd", hyper("sgd", 0.1, momentum=0.9, nesterov=True), schedule("constant", 0.1), None),
    ("adam", "adam", hyper("adam", 0.01), schedule("constant", 0.01), None),
    ("adam_wd", "adam", hyper("adam", 0.01, weight_decay=0.01), schedule("constant", 0.01), None),
    ("adamw", "adamw", hyper("adamw", 0.01), schedule("constant", 0.01), None),
    ("adagrad", "adagrad", hyper("adagrad", 0.1), schedule("constant", 0.1), None),
    ("rmsprop", "rmsprop", hyper("rmsprop", 0.01), schedule("constant", 0.01), None),
    # Clipping: plain, stateful (momentum buffer sees clipped grads), adaptive, and with
    # weight decay (decay is added after clipping, so it must not be clipped).
    ("sgd_clip", "sgd", hyper("sgd", 0.1), schedule("constant", 0.1), CLIP),
    ("sgd_momentum_clip", "sgd", hyper("sgd", 0.1, momentum=0.9), schedule("constant", 0.1), CLIP),
    ("adam_clip", "adam", hyper("adam", 0.01), schedule("constant", 0.01), CLIP),
    ("sgd_wd_clip", "sgd", hyper("sgd", 0.1, weight_decay=0.01), schedule("constant", 0.1), CLIP),
    # Schedules.
    ("adam_warmup_step", "adam", hyper("adam", 0.01),
     schedule("step", 0.01, warmup_steps=2, gamma=0.5, step_size=1), None),
    # With warmup 2 and only 3 steps the case above never reaches a decay boundary, so
    # this one exercises the step decay itself: lr = 0.1, 0.05, 0.025.
    ("sgd_step", "sgd", hyper("sgd", 0.1), schedule("step", 0.1, gamma=0.5, step_size=1), None),
    ("sgd_momentum_cosine", "sgd", hyper("sgd", 0.1, momentum=0.9),
     schedule("cosine", 0.1, total_steps=3, min_lr=0.001), None),
    ("rmsprop_warmup_exp", "rmsprop", hyper("rmsprop", 0.01),
     schedule("exponential", 0.01, warmup_steps=1, gamma=0.5, decay_steps=2), None),
]


def mean_loss(params, X, labels, act):
    return xent_per_sample(forward(params, X, act)[0][-1], labels).sum() / BATCH


def run_case(case_name, opt_name, hp, sched, max_norm, X, labels, act):
    params = [(W.requires_grad_(), b.requires_grad_()) for W, b in make_params()]
    flat_params = [t for pair in params for t in pair]
    opt = make_torch_optimizer(opt_name, hp, flat_params)

    # Independent replay of the same steps with manual_step (see its docstring).
    manual = [t.detach().clone() for t in flat_params]
    manual_state = [{} for _ in manual]

    steps = []
    for t in range(OPT_STEPS):
        lr = scheduled_lr(sched, t)
        for group in opt.param_groups:
            group["lr"] = lr
        opt.zero_grad()
        loss = mean_loss(params, X, labels, act)
        loss.backward()
        if max_norm is not None:
            norm = torch.nn.utils.clip_grad_norm_(flat_params, max_norm).item()
            assert norm > max_norm, f"{case_name}: step {t} would not clip ({norm} <= {max_norm})"
        else:
            norm = torch.linalg.vector_norm(torch.cat([p.grad.reshape(-1) for p in flat_params])).item()
        opt.step()

        # Manual replay: gradient at the manual parameters, clipped by the documented formula.
        mp = [m.clone().requires_grad_() for m in manual]
        mloss = mean_loss(list(zip(mp[0::2], mp[1::2])), X, labels, act)
        mgrads = torch.autograd.grad(mloss, mp)
        mnorm = math.sqrt(sum((g * g).sum().item() for g in mgrads))
        assert abs(mnorm - norm) <= 1e-12 * norm
        coef = 1.0 if max_norm is None else max_norm / (mnorm + 1e-6)
        if coef < 1.0:
            mgrads = [g * coef for g in mgrads]
        manual = [manual_step(opt_name, hp, lr, m, g, s, t + 1)
                  for m, g, s in zip(manual, mgrads, manual_state)]
        for m, p in zip(manual, flat_params):
            assert torch.allclose(m, p.detach(), rtol=1e-12, atol=1e-15), (case_name, t)

        steps.append({
            "step": t,
            "lr": lr,
            "loss_mean": loss.item(),
            "grad_norm": norm,
            "clipped": max_norm is not None and max_norm / (norm + 1e-6) < 1.0,
            "params": params_json(params),
        })
    return {"name": case_name, "optimizer": opt_name, "hyperparameters": hp, "schedule": sched,
            "max_norm": max_norm, "steps": steps}


def optimizers_fixture():
    act = "tanh"
    X, labels = make_batch()
    params0 = make_params()
    p = [(W.clone().requires_grad_(), b.clone().requires_grad_()) for W, b in params0]
    mean_loss(p, X, labels, act).backward()
    g0 = math.sqrt(sum((t.grad * t.grad).sum().item() for pair in p for t in pair))
    print(f"optimizers: initial grad norm of the mean loss = {g0!r} (clip max_norm = {CLIP})")

    cases = [run_case(*case, X, labels, act) for case in CASES]
    return {
        "activation": act,
        "layers": LAYERS,
        "batch": BATCH,
        "X": flat(X),
        "labels": labels.tolist(),
        "objective": "mean softmax cross-entropy (loss_sum / batch)",
        "steps_per_case": OPT_STEPS,
        "initial_params": params_json(params0),
        "cases": cases,
    }


# --------------------------------------------------------------------------- fixture 3

def softmax_xent_fixture():
    # Each row targets a failure mode of a naive exp/log implementation: overflow of exp,
    # underflow of every exp (all very negative), differences beyond float32 range of exp,
    # exp(88) ~ float32 max, near-ties at large magnitude, and the tiny-probability label.
    rows = [
        ([1e4, -1e4, 0.0, 1.0], 1),
        ([1e4, -1e4, 0.0, 1.0], 0),
        ([-1e4, -1e4, -1e4, -1e4], 2),
        ([1e30, 0.0, -1e30, 5.0], 2),
        ([1e30, 0.0, -1e30, 5.0], 0),
        ([88.0, 88.0, 88.0, 88.0], 3),
        ([1000.0, 1000.0, 999.0, 0.0], 2),
        ([1000.0, 1000.0, 999.0, 0.0], 3),
        ([-1000.0, -1001.0, -999.5, -1e4], 0),
        ([0.0, 0.0, 0.0, 0.0], 1),
        # exp(89) overflows float32; the spread keeps every probability a normal float32.
        ([80.0, 89.0, 85.0, 88.5], 0),
    ]
    logits = torch.tensor([r for r, _ in rows])
    labels = torch.tensor([y for _, y in rows], dtype=torch.long)
    loss = xent_per_sample(logits, labels)
    grad = softmax_minus_onehot(logits, labels)
    assert torch.isfinite(loss).all() and torch.isfinite(grad).all()
    # The rows' own gradient must sum to zero (softmax sums to one).
    assert grad.sum(dim=1).abs().max().item() < 1e-12
    # Independent check against torch's logsumexp; the 1e30 rows round differently
    # in the last place there, hence the relative tolerance.
    ref = torch.logsumexp(logits, dim=1) - logits.gather(1, labels[:, None])[:, 0]
    assert torch.allclose(loss, ref, rtol=1e-12, atol=1e-9)
    # No value may be a float32 subnormal or underflow to 0 in float32 while nonzero
    # in float64: a float32 C++ build would then differ by more than any rtol.
    for v in torch.cat([loss, grad.reshape(-1)]).tolist():
        assert v == 0.0 or abs(v) > 1.2e-38, v
    return {
        "num_classes": logits.shape[1],
        "rows": [{"logits": flat(z), "label": int(y), "loss": float(l), "grad": flat(g)}
                 for z, y, l, g in zip(logits, labels, loss, grad)],
        "loss_sum": loss.sum().item(),
    }


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    for act in ACTIVATIONS:
        write_fixture(f"forward_backward_{act}.json", forward_backward_fixture(act))
    write_fixture("optimizers.json", optimizers_fixture())
    write_fixture("softmax_xent_extreme.json", softmax_xent_fixture())


if __name__ == "__main__":
    main()
