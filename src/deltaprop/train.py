"""The reusable training loop: build an MLP, fit it, evaluate it.

Library code (no printing): the `deltaprop train` command, the benchmark and the report all
use these. One training step is exactly

    opt.zero_grad(); loss = loss_fn(model(xb), yb); loss.backward(); opt.step()

plus one ``loss.item()`` per batch (for the epoch's mean loss and the finiteness check).
Accuracy is measured once per epoch with one no-grad forward pass per evaluation set.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from deltaprop.compiler import NonFiniteStepError
from deltaprop.nn.module import Module

__all__ = [
    "ACTIVATIONS",
    "NonFiniteLossError",
    "NonFiniteInputError",
    "StopTraining",
    "History",
    "activation_module",
    "build_mlp",
    "build_cnn",
    "mse_half_sum",
    "accuracy",
    "evaluate",
    "fit",
    "check_finite",
    "mlp_parameter_count",
]

#: Activation names accepted by `build_mlp` (and `deltaprop train --activation`).
ACTIVATIONS: tuple[str, ...] = ("relu", "tanh", "sigmoid", "leaky_relu", "gelu")


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or Inf loss (or parameters) at `epoch` (1-based), `step` (1-based)."""

    def __init__(self, epoch: int, step: int, steps: int, value: float, what: str = "loss") -> None:
        self.epoch, self.step, self.steps, self.value, self.what = epoch, step, steps, value, what
        super().__init__(
            f"the {what} became {value} at epoch {epoch}, step {step} of {steps}; "
            "lower the learning rate (--lr) or try another optimizer"
        )


class NonFiniteInputError(ValueError):
    """The data holds NaN or Inf: the message names the array, the count and the first position."""

    def __init__(self, name: str, count: int, index: tuple[int, ...], value: float) -> None:
        self.name, self.count, self.index, self.value = name, count, index, value
        if len(index) == 1:
            where = f"row {index[0]}"
        elif len(index) == 2:
            where = f"row {index[0]}, column {index[1]}"
        else:
            where = f"index {index}"
        values = "value" if count == 1 else "values"
        super().__init__(
            f"{name} hold {count} non-finite {values} (the first: {value} at {where}); remove or "
            "replace them before training (the data is at fault here, not the learning rate)"
        )


class StopTraining(Exception):
    """Raise from `fit`'s on_epoch to end training after that epoch (early stopping); fit returns."""


def check_finite(name: str, array: Any) -> None:
    """Raise NonFiniteInputError naming `name`, the count and the first (row, column) if the
    floating-point `array` holds NaN or Inf; integer and boolean arrays always pass."""
    a = np.asarray(array)
    if a.dtype.kind not in "fc":
        return
    ok = np.isfinite(a)
    if ok.all():
        return
    bad = ~ok
    first = tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)), a.shape)) if a.ndim else ()
    raise NonFiniteInputError(name, int(bad.sum()), first, a[first].item())


def mlp_parameter_count(sizes: Sequence[int]) -> int:
    """Number of parameters of `build_mlp(sizes)`: sum of in*out + out over the Linear layers
    (exact Python integer arithmetic, so absurd sizes never overflow)."""
    sizes = [int(s) for s in sizes]
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))


@dataclass
class History:
    """Per-epoch records of a `fit` run: epoch numbers (1-based, counting from any resume
    point) and, for each metric name (``train_loss``, ``<set>_loss``, ``<set>_accuracy``),
    a list of values aligned with `epochs`."""

    epochs: list[int] = field(default_factory=list)
    metrics: dict[str, list[float]] = field(default_factory=dict)

    def append(self, epoch: int, record: Mapping[str, float]) -> None:
        """Record one epoch's metrics ({name: value})."""
        self.epochs.append(int(epoch))
        for key, value in record.items():
            self.metrics.setdefault(key, []).append(float(value))

    def last(self, key: str, default: float | None = None) -> float | None:
        """The latest value of a metric, or default when it was never recorded."""
        values = self.metrics.get(key)
        return values[-1] if values else default

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (for model-file metadata)."""
        return {"epochs": list(self.epochs), **{k: list(v) for k, v in self.metrics.items()}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> History:
        """Rebuild a History from to_dict()'s form (an empty one from None or {})."""
        h = cls()
        if not d:
            return h
        h.epochs = [int(e) for e in d.get("epochs", [])]
        h.metrics = {k: [float(x) for x in v] for k, v in d.items() if k != "epochs"}
        return h


def activation_module(name: str) -> Any:
    """A fresh activation module for `name` (one of ACTIVATIONS)."""
    from deltaprop import nn

    table = {
        "relu": lambda: nn.ReLU(),
        "tanh": lambda: nn.Tanh(),
        "sigmoid": lambda: nn.Sigmoid(),
        "leaky_relu": lambda: nn.LeakyReLU(),
        "gelu": lambda: nn.GELU(),
    }
    if name not in table:
        raise ValueError(f"unknown activation {name!r}; choose one of: {', '.join(ACTIVATIONS)}")
    return table[name]()


def build_mlp(sizes: Sequence[int], activation: str = "relu", *, output_activation: str | None = None,
              dtype: Any = None) -> Any:
    """Sequential(Linear, act, ..., Linear[, output act]) for layer sizes [in, h1, ..., out].

    `activation` follows every hidden Linear; `output_activation` (None for logits) the last.
    Parameters are initialised from deltaprop's default generator (seed it with dp.manual_seed).
    """
    from deltaprop import nn

    sizes = [int(s) for s in sizes]
    if len(sizes) < 2 or any(s < 1 for s in sizes):
        raise ValueError(f"build_mlp: sizes must be at least [in, out] with every size >= 1, got {sizes}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; choose one of: {', '.join(ACTIVATIONS)}")
    kw = {} if dtype is None else {"dtype": np.dtype(dtype)}
    layers: list[Any] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b, **kw))
        if i < len(sizes) - 2:
            layers.append(activation_module(activation))
    if output_activation is not None:
        layers.append(activation_module(output_activation))
    return nn.Sequential(*layers)


class _ToImages(Module):
    """Reshape flat rows (N, C*H*W) into images (N, C, H, W); 4-D input passes through."""

    def __init__(self, shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.shape = shape

    def forward(self, x: Any) -> Any:
        return x if x.ndim == 4 else x.reshape((x.shape[0], *self.shape))

    def extra_repr(self) -> str:
        return f"shape={self.shape}"


def build_cnn(image_shape: Sequence[int], n_outputs: int, channels: Sequence[int] = (16, 32), hidden: int = 64,
              activation: str = "relu", *, dtype: Any = None) -> Any:
    """A small CNN for images (C, H, W) given as flat rows or 4-D arrays: for each entry of
    `channels` a 3x3 Conv2d (padding 1), the activation and a 2x2 MaxPool2d (while the image is at
    least 2 pixels high and wide), then Flatten, Linear(., hidden), activation, Linear(hidden,
    n_outputs). Input rows of length C*H*W are reshaped to images first."""
    from deltaprop import nn

    c, h, w = (int(v) for v in image_shape)
    kw = {} if dtype is None else {"dtype": np.dtype(dtype)}
    layers: list[Any] = [_ToImages((c, h, w))]
    for out in channels:
        layers += [nn.Conv2d(c, int(out), 3, padding=1, **kw), activation_module(activation)]
        if h >= 2 and w >= 2:
            layers.append(nn.MaxPool2d(2))
            h, w = h // 2, w // 2
        c = int(out)
    layers += [nn.Flatten(), nn.Linear(c * h * w, int(hidden), **kw), activation_module(activation),
               nn.Linear(int(hidden), int(n_outputs), **kw)]
    return nn.Sequential(*layers)


def mse_half_sum(output: Any, target: Any) -> Any:
    """E = mean over samples of sum_k 1/2 (target_k - out_k)^2 (Mazur's error, batch-averaged)."""
    diff = output - target
    return (diff * diff).sum() * (0.5 / output.shape[0])


def accuracy(output: Any, target: Any) -> float:
    """Classification (integer labels): argmax matches. Regression targets (floats, same shape
    as the output): the fraction of samples whose every output is on the same side of 0.5 as
    its target."""
    out = np.asarray(output)
    t = np.asarray(target)
    if t.dtype.kind in "iub" and t.ndim == 1:
        return float(np.mean(out.argmax(axis=1) == t)) if len(t) else float("nan")
    ok = (out > 0.5) == (t > 0.5)
    ok = ok.reshape(len(ok), -1).all(axis=1)
    return float(np.mean(ok)) if len(ok) else float("nan")


def evaluate(model: Any, X: Any, y: Any, loss_fn: Callable[[Any, Any], Any] | None = None,
             metrics: Callable[[np.ndarray, np.ndarray], dict[str, float]] | None = None) -> dict[str, float]:
    """{"accuracy": ..., "loss": ...} of `model` on (X, y) with one no-grad forward pass
    (model put in eval mode and restored). "loss" is present when loss_fn is given; `metrics`
    (output and target arrays -> {name: value}) replaces the accuracy, e.g. for regression. A
    DistributedDataParallel model: each rank runs its rows, every figure is over all of them."""
    import deltaprop as dp

    was_training = getattr(model, "training", False)
    model.eval()
    world = _world(model)
    try:
        with dp.no_grad():
            xt = X if isinstance(X, dp.Tensor) else dp.tensor(np.asarray(X))
            yt = y if isinstance(y, dp.Tensor) else dp.tensor(np.asarray(y))
            out = model(xt) if world is None else _gathered_forward(model, xt, *world)
            result = {"accuracy": accuracy(out, yt)} if metrics is None else \
                dict(metrics(np.asarray(out), np.asarray(yt)))
            if loss_fn is not None:
                result["loss"] = float(loss_fn(out, yt).item())
    finally:
        if was_training:
            model.train()
    return result


def _world(model: Any) -> tuple[int, int] | None:
    """(rank, world size) when `model` is a DistributedDataParallel over several processes, else None."""
    from deltaprop.nn.parallel import DistributedDataParallel

    if isinstance(model, DistributedDataParallel) and model.world_size > 1:
        from deltaprop import distributed

        return distributed.get_rank(), model.world_size
    return None


def _rows(n: int, rank: int, world: int) -> slice:
    """Rank `rank`'s contiguous share of n rows (sizes differ by at most one; some may be empty)."""
    return slice(rank * n // world, (rank + 1) * n // world)


def _shard_loss(model: Any, loss_fn: Callable, xb: Any, yb: Any, rank: int, world: int) -> Any:
    """This rank's part of the global batch, its mean loss weighted by world x its share of the
    rows: DDP's average over the ranks is then the global batch's mean loss, as on one process."""
    rows = _rows(xb.shape[0], rank, world)
    out = model(xb[rows])
    n = rows.stop - rows.start
    if n == 0:  # a backward all the same: the other ranks' Allreduce needs this rank's (zero) part
        return out.sum() * 0.0
    return loss_fn(out, yb[rows]) * (n * world / xb.shape[0])


def _global_mean(value: float) -> float:
    """The mean over the ranks of `value` (the same bits on every rank)."""
    from deltaprop import distributed

    a = np.array([value], dtype=np.float64)
    distributed.all_reduce(a, op=distributed.ReduceOp.AVG)
    return float(a[0])


def _gathered_forward(model: Any, xt: Any, rank: int, world: int) -> Any:
    """Data-parallel evaluation: each rank runs its rows through the model (with rank 0's
    buffers); every rank gets all the outputs, in row order, so every figure is the global one."""
    import deltaprop as dp
    from deltaprop import distributed

    model._sync_buffers()
    n = xt.shape[0]
    shares = [_rows(n, r, world) for r in range(world)]
    mine = model.module(xt[shares[rank]]).data
    size = max(s.stop - s.start for s in shares)  # (all_gather needs equal shapes: padded to the largest)
    parts = [np.zeros((size,) + mine.shape[1:], mine.dtype) for _ in range(world)]
    parts[rank][:len(mine)] = mine
    distributed.all_gather(parts, parts[rank].copy())
    return dp.tensor(np.concatenate([p[:s.stop - s.start] for p, s in zip(parts, shares)]))


def _is_ddp(model: Any) -> bool:
    from deltaprop.nn.parallel import DistributedDataParallel

    return isinstance(model, DistributedDataParallel)


def _compiled_step(model: Any, loss_fn: Callable[[Any, Any], Any], optimizer: Any) -> Callable:
    """fit's training step (as its eager loop does it), compiled with dp.compile."""
    from deltaprop.compiler import compile as dp_compile

    def step(xb: Any, yb: Any) -> Any:
        optimizer.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        optimizer.step()
        return loss
    return dp_compile(step)


def _loader_arrays(loader: Any) -> tuple[Any, ...]:
    """The arrays behind a DataLoader over a TensorDataset (empty for other loaders)."""
    arrays = getattr(getattr(loader, "dataset", None), "arrays", None)
    return tuple(arrays) if isinstance(arrays, tuple) else ()


def _batch_nonfinite(batch: Sequence[Any], epoch: int, step: int) -> None:
    """Raise NonFiniteInputError if an array of the batch (inputs, targets) is not finite."""
    for i, part in enumerate(batch):
        what = "inputs" if i == 0 else "targets" if i == 1 else f"array {i}"
        check_finite(f"the {what} of batch {step} of epoch {epoch} (rows counted within the batch)",
                     np.asarray(part))


def _params_finite(model: Any) -> bool:
    for p in model.parameters():
        if not np.isfinite(np.asarray(p)).all():
            return False
    return True


def fit(
    model: Any,
    loss_fn: Callable[[Any, Any], Any],
    optimizer: Any,
    loader: Any,
    epochs: int,
    *,
    start_epoch: int = 0,
    eval_sets: Mapping[str, tuple[Any, Any]] | None = None,
    on_epoch: Callable[[int, dict[str, float]], Any] | None = None,
    on_batch: Callable[[int, int, float], Any] | None = None,
    history: History | None = None,
    metrics: Callable[[np.ndarray, np.ndarray], dict[str, float]] | None = None,
    compile: bool = True,
) -> History:
    """Train for epochs start_epoch+1 .. `epochs` (so `epochs` is the total, as when resuming).

    Each epoch calls ``loader.set_epoch(e)`` (e 0-based) when the loader has it, so the shuffle
    order depends only on (seed, epoch) and a resumed run repeats a straight one bit for bit.
    After each epoch the record holds ``train_loss`` (mean of the batch losses weighted by batch
    size) and, for each name in `eval_sets`, ``<name>_accuracy`` and ``<name>_loss`` from one
    no-grad forward after the epoch (for a set named "train": ``train_eval_loss``); it is appended to the returned History and passed to
    ``on_epoch(epoch, record)`` (epoch 1-based). ``on_batch(epoch, step, loss)`` (1-based) is
    called after each step if given. A NaN/Inf loss, or non-finite parameters at the end of an
    epoch, raise NonFiniteLossError naming the epoch and step; the optimizer does not step on
    a non-finite loss. Non-finite data raises NonFiniteInputError instead, naming the array,
    row and column: the arrays of a TensorDataset loader and of `eval_sets` are checked before
    the first step, any other loader's batch when its loss is not finite. `metrics` replaces
    the accuracy of the evaluation sets (see `evaluate`): ``<name>_<metric>`` for each of its
    keys. ``on_epoch`` may raise StopTraining to end the run after that epoch.

    Data-parallel (`model` a DistributedDataParallel over several MPI ranks): every rank iterates
    the same global batches (the same loader and seed) and trains on its contiguous share of each,
    its mean loss weighted by its share, so the averaged gradient is the global batch's mean as
    on one process; losses and evaluation figures are global, the same on every rank.

    `compile` (default True): the step (zero_grad, forward, loss, backward, update) runs through
    `dp.compile`, recorded on its first calls and replayed after, with the same numbers bit for bit;
    it runs eagerly where it must (a data-parallel model; a loss_fn that reads values into Python,
    with a warning). As with any tracing, Python side effects inside loss_fn or the model's forward
    (a call counter, a print) happen only on the recording calls. compile=False runs every step
    eagerly (for debugging).
    """
    history = History() if history is None else history
    epochs = int(epochs)
    eval_sets = dict(eval_sets or {})
    for i, arr in enumerate(_loader_arrays(loader)):
        what = "inputs" if i == 0 else "targets" if i == 1 else f"array {i}"
        check_finite(f"the training {what} (array {i} of the loader's dataset)", arr)
    for name, pair in eval_sets.items():
        for what, arr in zip(("inputs", "targets"), pair):
            check_finite(f"the {what} of evaluation set {name!r}", arr)
    set_epoch = getattr(loader, "set_epoch", None)
    world = _world(model)  # data-parallel: every rank draws the same global batches and takes its rows
    compiled = _compiled_step(model, loss_fn, optimizer) if compile and not _is_ddp(model) else None
    for epoch in range(int(start_epoch), epochs):
        if set_epoch is not None:
            set_epoch(epoch)
        model.train()
        total = 0.0
        count = 0
        step = 0
        try:
            steps = len(loader)
        except TypeError:
            steps = 0
        for xb, yb in loader:
            step += 1
            if compiled is not None:  # the same step; a non-finite loss stops it before the backward pass
                try:
                    value = compiled(xb, yb).item()
                except NonFiniteStepError as exc:
                    _batch_nonfinite((xb, yb), epoch + 1, step)
                    raise NonFiniteLossError(epoch + 1, step, max(steps, step), exc.value) from None
                n = xb.shape[0]
                total += value * n
                count += n
                if on_batch is not None:
                    on_batch(epoch + 1, step, value)
                continue
            optimizer.zero_grad()
            if world is None:
                loss = loss_fn(model(xb), yb)
                value = loss.item()
            else:
                loss = _shard_loss(model, loss_fn, xb, yb, *world)
                value = _global_mean(loss.item())  # the global batch's mean loss: one decision everywhere
            if not math.isfinite(value):
                _batch_nonfinite((xb, yb), epoch + 1, step)  # the data's fault, not the optimizer's
                raise NonFiniteLossError(epoch + 1, step, max(steps, step), value)
            loss.backward()
            optimizer.step()
            n = xb.shape[0]
            total += value * n
            count += n
            if on_batch is not None:
                on_batch(epoch + 1, step, value)
        if not _params_finite(model):
            raise NonFiniteLossError(epoch + 1, step, max(steps, step), float("nan"), what="parameters")
        record = {"train_loss": total / count if count else float("nan")}
        for name, (X, y) in eval_sets.items():
            res = evaluate(model, X, y, loss_fn, metrics)
            record["train_eval_loss" if name == "train" else f"{name}_loss"] = res.pop("loss")
            record.update({f"{name}_{key}": value for key, value in res.items()})
        history.append(epoch + 1, record)
        if on_epoch is not None:
            try:
                on_epoch(epoch + 1, record)
            except StopTraining:
                break
    return history
