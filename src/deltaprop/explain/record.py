"""Record a training run for the HTML report: the weights before each step and that step's gradients.

`report_data(...)` trains a small MLP in float64 (hidden activation f, full batch unless
batch_size is given) and returns the dict that `report.write_report` renders. Binary data
sets end in one unit trained with BCE-with-logits, so the page's output is sigmoid(net) and
its output delta out - y; spirals ends in one unit per class with softmax cross-entropy,
delta p - onehot(y). `report_model` and `report_loss` rebuild the network at a recorded step,
so `trace(report_model(d, k), d["X"][i], d["y"][i], report_loss(d))` gives the deltas the
page shows for step k and sample i.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["DATASETS", "ACTIVATIONS", "DEFAULT_LR", "report_data", "report_model", "report_loss"]

DATASETS = ("xor", "moons", "circles", "spirals")
ACTIVATIONS = ("tanh", "sigmoid", "relu", "leaky_relu")
DEFAULT_LR = {"xor": 0.5, "moons": 0.5, "circles": 1.0, "spirals": 1.0}


def _load(dataset: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from .. import data

    if dataset == "xor":
        return data.xor(np.float64)
    if dataset == "moons":
        return data.moons(200, noise=0.1, seed=seed, dtype=np.float64)
    if dataset == "circles":
        return data.circles(200, noise=0.05, seed=seed, dtype=np.float64)
    if dataset == "spirals":
        return data.spirals(300, classes=3, seed=seed, dtype=np.float64)
    raise ValueError(f"report_data: unknown dataset {dataset!r}; valid: {', '.join(DATASETS)}")


def _act(name: str):
    from .. import nn

    return {"tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "relu": nn.ReLU,
            "leaky_relu": lambda: nn.LeakyReLU(0.01)}[name]()


def _build(sizes: Sequence[int], activation: str, output_activation: str | None = None):
    from .. import nn

    mods: list = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        mods.append(nn.Linear(a, b, dtype=np.float64))
        if i < len(sizes) - 2:
            mods.append(_act(activation))
    if output_activation is not None:
        mods.append(_act(output_activation))
    return nn.Sequential(*mods)


def build_model(sizes: Sequence[int], activation: str, seed: int = 0, output_activation: str | None = None):
    """A float64 MLP [in, *hidden, out] with PyTorch's default Linear initialisation drawn from
    a generator seeded with `seed` (the same network for the same seed, in every process)."""
    import deltaprop as dp

    model = _build(sizes, activation, output_activation)
    init = np.random.default_rng([seed, 1])
    for l in (m for m in model if isinstance(m, dp.nn.Linear)):
        bound = 1.0 / np.sqrt(l.weight.shape[1])
        l.load_state_dict({"weight": init.uniform(-bound, bound, l.weight.shape),
                           "bias": init.uniform(-bound, bound, l.bias.shape)})
    return model


def report_loss(data: dict):
    """The loss the run used, for trace(): mean BCE-with-logits (1 output) or cross-entropy (softmax)."""
    from .. import nn

    if data["output"] == "sigmoid":
        def bce(out, target):
            t = target.reshape(out.shape) if hasattr(target, "reshape") else np.reshape(target, out.shape)
            return nn.functional.binary_cross_entropy_with_logits(out, t.astype(out.dtype))
        return bce

    def ce(out, target):
        logits = out.reshape(-1, out.shape[-1])
        labels = np.asarray(target.data if hasattr(target, "data") else target).reshape(-1).astype(np.int64)
        return nn.functional.cross_entropy(logits, labels)
    return ce


def report_model(data: dict, step: int):
    """A dp.nn.Sequential holding the weights recorded at index `step` (before that step's update)."""
    model = _build(list(data["sizes"]), data["activation"])
    state = {}
    linear = [k for k, _ in model.named_children() if k.isdigit() and int(k) % 2 == 0]
    for key, layer in zip(linear, data["params"][step]):
        state[f"{key}.weight"] = np.asarray(layer["W"], dtype=np.float64)
        state[f"{key}.bias"] = np.asarray(layer["b"], dtype=np.float64)
    model.load_state_dict(state)
    return model


def report_data(dataset: str = "xor", hidden: Sequence[int] | int | str = (4, 4), steps: int = 200,
                activation: str = "tanh", lr: float | None = None, seed: int = 0, batch_size: int | None = None,
                record_every: int = 1) -> dict:
    """Train and record: the `data` dict of report.render_report (see its docstring for the schema)."""
    import deltaprop as dp

    if dataset not in DATASETS:
        raise ValueError(f"report_data: unknown dataset {dataset!r}; valid: {', '.join(DATASETS)}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"report_data: unknown activation {activation!r}; valid: {', '.join(ACTIVATIONS)}")
    if isinstance(hidden, str):
        hidden = [int(h) for h in hidden.split(",") if h.strip()]
    elif isinstance(hidden, int):
        hidden = [hidden]
    hidden = [int(h) for h in hidden]
    if any(h < 1 for h in hidden):
        raise ValueError(f"report_data: hidden sizes must be positive, got {hidden}")
    steps, record_every = int(steps), int(record_every)
    if steps < 1 or record_every < 1:
        raise ValueError("report_data: steps and record_every must be at least 1")
    lr = DEFAULT_LR[dataset] if lr is None else float(lr)
    X, y = _load(dataset, seed)
    classes = int(y.max()) + 1
    output = "softmax" if classes > 2 else "sigmoid"
    sizes = [X.shape[1], *hidden, classes if output == "softmax" else 1]
    n = len(X)
    if batch_size is not None and not 1 <= int(batch_size):
        raise ValueError(f"report_data: batch_size must be at least 1, got {batch_size}")
    bs = n if batch_size is None else min(int(batch_size), n)

    model = build_model(sizes, activation, seed)   # PyTorch's default Linear init, from our own generator
    linears = [m for m in model if isinstance(m, dp.nn.Linear)]
    opt = dp.optim.SGD(model.parameters(), lr=lr)
    lossf = report_loss({"output": output})
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    pos = 0
    rec_steps, rec_loss, rec_params = [], [], []
    for step in range(steps):
        if bs == n:
            idx = slice(None)
        else:
            if pos + bs > n:
                order, pos = rng.permutation(n), 0
            idx = order[pos:pos + bs]
            pos += bs
        record = step % record_every == 0 or step == steps - 1
        before = [(l.weight.data.copy(), l.bias.data.copy()) for l in linears] if record else None
        opt.zero_grad()
        loss = lossf(model(dp.tensor(X[idx])), y[idx])
        loss.backward()
        if record:
            rec_steps.append(step)
            rec_loss.append(float(loss.item()))
            rec_params.append([{"W": W, "b": b, "gW": l.weight.grad.data.copy(), "gb": l.bias.grad.data.copy()}
                               for (W, b), l in zip(before, linears)])
        opt.step()
    how = "full batch" if bs == n else f"minibatches of {bs}"
    return {
        "title": f"deltaprop: backpropagation on {dataset}",
        "dataset": dataset,
        "description": (f"A {'-'.join(map(str, sizes))} network ({activation} hidden units, "
                        f"{'sigmoid output, binary cross-entropy' if output == 'sigmoid' else 'softmax output, cross-entropy'}) "
                        f"trained by SGD (lr {lr:g}, {how}, float64, seed {seed}) for {steps} steps. Each recorded "
                        "step holds the weights before its update and that step's batch gradients; every forward "
                        "pass, delta and the decision boundary are computed in the page."),
        "sizes": sizes,
        "activation": activation,
        "output": output,
        "X": X,
        "y": y,
        "steps": rec_steps,
        "loss": rec_loss,
        "params": rec_params,
        "lr": lr,
    }
