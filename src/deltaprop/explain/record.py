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

from typing import Any, Sequence

import numpy as np

__all__ = ["DATASETS", "ACTIVATIONS", "LOSSES", "DEFAULT_LR", "report_data", "report_model", "report_loss",
           "build_model", "run_trace", "run_lesson", "trace_loss"]

DATASETS = ("xor", "moons", "circles", "spirals")
REPORT_DATASETS = DATASETS + ("mazur",)
ACTIVATIONS = ("tanh", "sigmoid", "relu", "leaky_relu", "gelu")
LOSSES = ("bce", "ce", "mse", "sse")   # the page's output kinds: sigmoid, softmax, mse, sse
DEFAULT_LR = {"xor": 0.5, "moons": 0.5, "circles": 1.0, "spirals": 1.0, "mazur": 0.5, "file": 0.5}
_OUTPUT = {"bce": "sigmoid", "ce": "softmax", "mse": "mse", "sse": "sse"}


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

    return {"tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "relu": nn.ReLU, "gelu": nn.GELU,
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
    """The loss the run used, for trace(): mean BCE-with-logits (one output), cross-entropy
    (softmax), MSE (mean over samples and outputs of sigmoid outputs) or Mazur's 1/2 sum of
    squares (averaged over the samples)."""
    from .. import nn

    kind = data["output"]
    if kind == "sigmoid":
        def bce(out, target):
            t = target.reshape(out.shape) if hasattr(target, "reshape") else np.reshape(target, out.shape)
            return nn.functional.binary_cross_entropy_with_logits(out, t.astype(out.dtype))
        return bce
    if kind in ("mse", "sse"):
        def squares(out, target):
            t = target.reshape(out.shape) if hasattr(target, "reshape") else np.reshape(target, out.shape)
            d = out - t
            if kind == "mse":
                return (d * d).mean()
            return (d * d).sum() * (0.5 / out.shape[0])
        return squares

    def ce(out, target):
        logits = out.reshape(-1, out.shape[-1])
        labels = np.asarray(target.data if hasattr(target, "data") else target).reshape(-1).astype(np.int64)
        return nn.functional.cross_entropy(logits, labels)
    return ce


def report_model(data: dict, step: int):
    """A dp.nn.Sequential holding the weights recorded at index `step` (before that step's update)."""
    model = _build(list(data["sizes"]), data["activation"],
                   "sigmoid" if data["output"] in ("mse", "sse") else None)
    state = {}
    linear = [k for k, _ in model.named_children() if k.isdigit() and int(k) % 2 == 0]
    for key, layer in zip(linear, data["params"][step]):
        state[f"{key}.weight"] = np.asarray(layer["W"], dtype=np.float64)
        state[f"{key}.bias"] = np.asarray(layer["b"], dtype=np.float64)
    model.load_state_dict(state)
    return model


def report_data(dataset: str = "xor", hidden: Sequence[int] | int | str = (4, 4), steps: int = 200,
                activation: str = "tanh", lr: float | None = None, seed: int = 0, batch_size: int | None = None,
                record_every: int = 1, loss: str | None = None, data: str | None = None,
                target: str | None = None, max_bytes: int | None = None) -> dict:
    """Train and record: the `data` dict of report.render_report (see its docstring for the schema).

    dataset: one of DATASETS, or "mazur" (the post's 2-2-2 network, weights and data; hidden and
    activation are then the post's); `data`/`target`: a file of 2-D points instead (read by
    dp.data.load_file; target names the label column). hidden may be empty (or 0): no hidden
    layer. loss: "bce" (two classes), "ce", "mse" (sigmoid outputs) or "sse" (Mazur's).
    max_bytes: record only as many steps as a page of that size holds (the first, every k-th
    and the last; the data's "note" says so), instead of recording all and thinning later."""
    import deltaprop as dp

    if data is not None:
        dataset = "file"
    elif dataset not in REPORT_DATASETS:
        raise ValueError(f"report_data: unknown dataset {dataset!r}; valid: {', '.join(REPORT_DATASETS)}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"report_data: unknown activation {activation!r}; valid: {', '.join(ACTIVATIONS)}")
    if isinstance(hidden, str):
        hidden = [int(h) for h in hidden.split(",") if h.strip()]
    elif isinstance(hidden, int):
        hidden = [hidden]
    hidden = [int(h) for h in hidden]
    if hidden == [0]:
        hidden = []
    if any(h < 1 for h in hidden):
        raise ValueError(f"report_data: hidden sizes must be positive (or 0 alone for no hidden layer), got {hidden}")
    steps, record_every = int(steps), int(record_every)
    if steps < 1 or record_every < 1:
        raise ValueError("report_data: steps and record_every must be at least 1")
    if loss is not None and loss not in LOSSES:
        raise ValueError(f"report_data: unknown loss {loss!r}; valid: {', '.join(LOSSES)}")
    lr = DEFAULT_LR[dataset] if lr is None else float(lr)
    name = dataset
    if dataset == "mazur":
        from .mazur import mazur_model

        X, T = dp.data.mazur(np.float64)
        y = T.argmax(axis=1)
        loss = loss or "sse"
        if loss not in ("sse", "mse"):
            raise ValueError(f"report_data: Mazur's targets (0.01, 0.99) are not class labels: use loss 'sse' "
                             f"(the post's) or 'mse', not {loss!r}")
        model, activation, sizes = mazur_model(), "sigmoid", [2, 2, 2]
        targets = T
    else:
        if dataset == "file":
            f = dp.data.load_file(data, target, task="classification")  # type: ignore[arg-type]
            X, y = np.asarray(f.X, dtype=np.float64), np.asarray(f.y, dtype=np.int64)
            if X.ndim != 2 or X.shape[1] != 2:
                raise ValueError(f"report_data: {data} has {X.shape[1] if X.ndim == 2 else X.shape} feature "
                                 "column(s); the report draws 2-D points: give a file with two feature columns "
                                 "and a label column (--target)")
            name = f"{data} (target {target})" if target else str(data)
            class_names = [str(c) for c in f.classes] if f.classes is not None else None
        else:
            X, y = _load(dataset, seed)
        classes = int(y.max()) + 1
        loss = loss or ("ce" if classes > 2 else "bce")
        if loss == "bce" and classes != 2:
            raise ValueError(f"report_data: loss 'bce' needs two classes; {name} has {classes}: use 'ce' or 'mse'")
        if loss == "ce" and classes < 2:
            raise ValueError(f"report_data: {name} has one class; nothing to learn")
        k = classes if loss == "ce" else (1 if classes == 2 else classes)
        sizes = [X.shape[1], *hidden, k]
        targets = None
        if loss in ("mse", "sse"):
            targets = y.reshape(-1, 1).astype(np.float64) if k == 1 else np.eye(classes)[y]
        model = build_model(sizes, activation, seed, "sigmoid" if loss in ("mse", "sse") else None)
    output = _OUTPUT[loss]
    n = len(X)
    if batch_size is not None and not 1 <= int(batch_size):
        raise ValueError(f"report_data: batch_size must be at least 1, got {batch_size}")
    bs = n if batch_size is None else min(int(batch_size), n)

    note = None
    if max_bytes is not None:
        numbers = sum(2 * (a * b + b) for a, b in zip(sizes[:-1], sizes[1:]))
        fixed = 120_000 + 24 * X.size + 24 * (0 if targets is None else targets.size)
        cap = max(2, int((max_bytes * 0.9 - fixed) // (22 * numbers + 40)))
        wanted = -(-steps // record_every)
        if wanted > cap:
            record_every = -(-steps // (cap - 1))
            note = (f"To keep this file under its size budget of {max_bytes / 1e6:g} MB, every {record_every}th of "
                    f"the {steps} training steps is recorded (and the last).")
    linears = [m for m in model if isinstance(m, dp.nn.Linear)]
    opt = dp.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr)
    lossf = report_loss({"output": output})
    goal = targets if targets is not None else y
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    pos = 0
    rec_steps, rec_loss, rec_params = [], [], []
    for step in range(steps):
        if bs == n:
            idx: Any = slice(None)
        else:
            if pos + bs > n:
                order, pos = rng.permutation(n), 0
            idx = order[pos:pos + bs]
            pos += bs
        record = step % record_every == 0 or step == steps - 1
        before = [(l.weight.data.copy(), l.bias.data.copy()) for l in linears] if record else None
        opt.zero_grad()
        E = lossf(model(dp.tensor(X[idx])), goal[idx])
        E.backward()
        if record:
            rec_steps.append(step)
            rec_loss.append(float(E.item()))
            layers = []
            for (W, b), l in zip(before, linears):  # type: ignore[arg-type]  # (a list when recording)
                entry = {"W": W, "b": b, "gW": l.weight.grad.data.copy()}  # type: ignore[union-attr]
                if l.bias.grad is not None:   # (Mazur's biases are frozen, as in the post)
                    entry["gb"] = l.bias.grad.data.copy()
                layers.append(entry)
            rec_params.append(layers)
        opt.step()
    how = "full batch" if bs == n else f"minibatches of {bs}"
    what = {"sigmoid": "sigmoid output, binary cross-entropy", "softmax": "softmax output, cross-entropy",
            "mse": "sigmoid outputs, mean squared error", "sse": "sigmoid outputs, E = sum 1/2 (target - out)^2"}
    act_text = f"{activation} hidden units" if len(sizes) > 2 else "no hidden layer"
    out = {
        "title": f"deltaprop: backpropagation on {name}",
        "dataset": name,
        "description": (f"A {'-'.join(map(str, sizes))} network ({act_text}, {what[output]}) "
                        f"trained by SGD (lr {lr:g}, {how}, float64, seed {seed}) for {steps} steps"
                        + (" from the weights of Mazur's post (biases fixed, as there)" if dataset == "mazur" else "")
                        + ". Each recorded step holds the weights before its update and that step's batch "
                        "gradients; every forward pass, delta and the decision boundary are computed in the page."),
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
    if targets is not None:
        out["targets"] = targets
    if note:
        out["note"] = note
    if dataset == "file" and class_names is not None:
        out["class_names"] = class_names
    lesson = run_lesson(out)
    if lesson is not None:
        out["lesson"] = lesson.text
        out["lesson_kind"] = lesson.kind
    return out


TRAINING_KINDS = ("diverged", "lr_too_large", "not_separable", "local_minimum")


def trace_loss(data: dict):
    """The loss of the run for trace(): its name where trace knows it (so the trace can name the
    output rule and tell per-sample deltas from the batch mean's), else report_loss(data)."""
    return {"sigmoid": "bce_logits", "softmax": "ce", "mse": "mse"}.get(data["output"]) or report_loss(data)


def run_trace(data: dict, step: int = -1, samples: int = 256):
    """The engine's trace of a recorded run at `step` (default the last) on its first `samples`
    points, knowing the run's losses and data set, so its `lesson` is the run's."""
    from .trace import trace

    k = step % len(data["steps"])
    n = min(len(data["X"]), samples)
    goal = data.get("targets", data["y"])
    with np.errstate(all="ignore"):
        return trace(report_model(data, k), np.asarray(data["X"])[:n], np.asarray(goal)[:n], trace_loss(data),
                     lr=data.get("lr"), history=data["loss"][:k + 1], dataset=data["dataset"])


def run_lesson(data: dict):
    """What the recorded run teaches (a lessons.Lesson about the loss curve: a learning rate too
    large, data no line separates, a local minimum), or None. The depth of the error signal is
    left to the page, which shows it step by step."""
    lesson = run_trace(data).lesson
    return lesson if lesson is not None and lesson.kind in TRAINING_KINDS else None
