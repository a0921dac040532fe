"""The playground's engine side: one page's training session, and the check of every message.

A `Session` holds a page's data, its network (a float64 `dp.nn.Sequential`) and the training
state. `advance(n)` trains n SGD steps on deltaprop's engine; `frame()` is everything the page
draws, computed here: the network's weights, every neuron's output over the input plane, the
decision boundary, the losses, and `dp.explain.trace` of the *next* step (the weights shown,
the batch the next step will use), which gives the deltas, the depth view, the diagnosis and
the clicked neuron's layer rule. The page does no arithmetic of the network.

`parse_message(text)` turns one message from the page into a checked dict or raises
`MessageError` with a sentence the page shows; nothing from the page names a file.
"""
from __future__ import annotations

import base64
import json
import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

__all__ = ["Config", "Session", "MessageError", "parse_message", "DATASETS", "ACTIVATIONS", "LOSSES",
           "REGULARIZATIONS", "LIMITS", "MAX_MESSAGE_BYTES"]

DATASETS = ("xor", "circles", "moons", "spirals", "gaussians", "mazur")
ACTIVATIONS = ("tanh", "sigmoid", "relu", "leaky_relu")   # the report's (Save this run renders one)
LOSSES = ("cross_entropy", "mse", "sse")
REGULARIZATIONS = ("none", "l1", "l2")
MAX_MESSAGE_BYTES = 16_384
LIMITS = {"hidden_layers": 6, "neurons": 16, "points": 2000}
GRID = 48             # the input plane is sampled on GRID x GRID points (the boundary)
THUMB_STRIDE = 2      # each neuron's heatmap takes every 2nd of them: 24 x 24
RECORD_CAP = 2000     # recorded steps kept for the report; beyond, every other one is dropped,
RECORD_BYTES = 16_000_000   # and fewer for a large network: its weights and gradients in at most this
HISTORY_CAP = 4000    # loss-curve points kept (the page gets them one frame at a time)
LOSSES_CAP = 200_000  # per-step training losses kept for the lessons

# knob -> (kind, allowed): "choice" (tuple of names), "int"/"float" (min, max), "sizes" (layers, neurons)
KNOBS: dict[str, tuple[str, Any]] = {
    "dataset": ("choice", DATASETS),
    "noise": ("float", (0.0, 0.5)),
    "points": ("int", (20, LIMITS["points"])),
    "train_ratio": ("float", (0.1, 0.9)),
    "batch_size": ("int", (1, LIMITS["points"])),
    "hidden": ("sizes", (LIMITS["hidden_layers"], LIMITS["neurons"])),
    "activation": ("choice", ACTIVATIONS),
    "learning_rate": ("float", (1e-6, 100.0)),
    "loss": ("choice", LOSSES),
    "regularization": ("choice", REGULARIZATIONS),
    "reg_rate": ("float", (0.0, 10.0)),
    "speed": ("int", (1, 100)),
    "seed": ("int", (0, 2**31 - 1)),
}
# knobs whose change draws new data / a new network (the others act at the next step)
NEW_DATA = {"dataset", "noise", "points", "train_ratio", "seed"}
NEW_NETWORK = NEW_DATA | {"hidden", "activation", "loss"}

# message type -> {field: (kind, required)}; every message may carry "id" (echoed as "rev")
MESSAGES: dict[str, dict[str, tuple[str, bool]]] = {
    "set": {"changes": ("changes", True)},
    "play": {}, "pause": {}, "step": {}, "reset": {}, "ack": {}, "save": {},
    "select": {"layer": ("index", True), "neuron": ("index", True), "sample": ("index", False)},
}


class MessageError(ValueError):
    """A message from the page that is refused; str() is the sentence the page shows."""


@dataclass
class Config:
    """Every knob of the page, with TensorFlow Playground's defaults where it has the knob."""

    dataset: str = "circles"
    noise: float = 0.05
    points: int = 500
    train_ratio: float = 0.5
    batch_size: int = 10
    hidden: list = field(default_factory=lambda: [4, 2])
    activation: str = "tanh"
    learning_rate: float = 0.03
    loss: str = "cross_entropy"
    regularization: str = "none"
    reg_rate: float = 0.0
    speed: int = 1
    seed: int = 0


# ------------------------------------------------------------------------------ validation
def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_knob(name: str, value: Any) -> Any:
    if name not in KNOBS:
        raise MessageError(f"unknown setting {name!r}; the settings are: {', '.join(KNOBS)}")
    kind, allowed = KNOBS[name]
    if kind == "choice":
        if not isinstance(value, str) or value not in allowed:
            raise MessageError(f"{name} must be one of {', '.join(allowed)}, got {_short(value)}")
        return value
    if kind == "sizes":
        layers, neurons = allowed
        if not isinstance(value, list) or not all(_is_int(n) for n in value):
            raise MessageError(f"hidden must be a list of layer sizes (whole numbers), got {_short(value)}")
        if len(value) > layers:
            raise MessageError(f"at most {layers} hidden layers, got {len(value)}")
        if any(not 1 <= n <= neurons for n in value):
            raise MessageError(f"each hidden layer has 1 to {neurons} neurons, got {value}")
        return list(value)
    lo, hi = allowed
    if kind == "int":
        if not _is_int(value):
            raise MessageError(f"{name} must be a whole number, got {_short(value)}")
    elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise MessageError(f"{name} must be a finite number, got {_short(value)}")
    if not lo <= value <= hi:
        raise MessageError(f"{name} must be between {lo:g} and {hi:g}, got {value:g}")
    return int(value) if kind == "int" else float(value)


def _short(v: Any) -> str:
    text = json.dumps(v) if isinstance(v, (str, int, float, list, dict, bool, type(None))) else type(v).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def parse_message(text: str | bytes) -> dict:
    """One message from the page (JSON text) as a checked dict, or MessageError saying what is wrong.

    At most MAX_MESSAGE_BYTES; an object with a known "type", only that type's fields, each of
    the right type and in range (knob values: KNOBS); an optional "id" (a whole number >= 0)."""
    if isinstance(text, bytes):
        raise MessageError("binary messages are not accepted: send JSON text")
    if not isinstance(text, str):
        raise MessageError(f"a message must be JSON text, got {type(text).__name__}")
    if len(text.encode("utf-8", "replace")) > MAX_MESSAGE_BYTES:
        raise MessageError(f"message too large: {len(text.encode('utf-8', 'replace'))} bytes, at most "
                           f"{MAX_MESSAGE_BYTES}")
    try:
        msg = json.loads(text, parse_constant=lambda c: float("nan"))
    except (ValueError, RecursionError) as exc:
        raise MessageError(f"not valid JSON ({str(exc)[:80]})") from None
    if not isinstance(msg, dict):
        raise MessageError(f"a message must be a JSON object, got {type(msg).__name__}")
    kind = msg.get("type")
    if not isinstance(kind, str) or kind not in MESSAGES:
        raise MessageError(f"unknown message type {_short(kind)}; the types are: {', '.join(MESSAGES)}")
    spec = MESSAGES[kind]
    out: dict[str, Any] = {"type": kind}
    if "id" in msg:
        if not _is_int(msg["id"]) or not 0 <= msg["id"] < 2**53:
            raise MessageError(f"id must be a whole number >= 0, got {_short(msg['id'])}")
        out["id"] = msg["id"]
    extra = set(msg) - set(spec) - {"type", "id"}
    if extra:
        raise MessageError(f"{kind}: unknown field(s) {', '.join(sorted(map(str, extra)))}; "
                           f"its fields are: {', '.join(spec) or 'none'}")
    for name, (fkind, required) in spec.items():
        if name not in msg:
            if required:
                raise MessageError(f"{kind}: missing field {name!r}")
            continue
        v = msg[name]
        if fkind == "index":
            if v is not None and (not _is_int(v) or not 0 <= v < 10_000):
                raise MessageError(f"{kind}: {name} must be a whole number >= 0 (or null), got {_short(v)}")
        elif fkind == "changes":
            if not isinstance(v, dict) or not v:
                raise MessageError(f"set: changes must be a non-empty object of settings, got {_short(v)}")
            v = {k: _check_knob(k, x) for k, x in v.items()}
        out[name] = v
    return out


# ------------------------------------------------------------------------------ data
def make_data(dataset: str, points: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(X (n, 2) float64, y (n,) int) of a named 2-D dataset; mazur: the post's one sample and
    its (1, 2) targets instead of labels."""
    import deltaprop as dp

    rng = np.random.default_rng([seed, 7])
    if dataset == "mazur":
        return dp.data.mazur(np.float64)
    if dataset == "circles":
        return dp.data.circles(points, noise=noise, seed=seed, dtype=np.float64)
    if dataset == "moons":
        X, y = dp.data.moons(points, noise=noise, seed=seed, dtype=np.float64)
        return X - np.array([0.5, 0.25]), y          # centred on the plane
    if dataset == "spirals":                          # TensorFlow Playground's: two arms
        return dp.data.spirals(points, classes=2, noise=noise, seed=seed, dtype=np.float64)
    if dataset == "gaussians":
        y = rng.permutation(np.arange(points) % 2)
        centre = np.where(y[:, None] == 1, 0.8, -0.8)
        return centre + rng.normal(0.0, 0.25 + noise, size=(points, 2)), y
    if dataset == "xor":                              # dp.data.xor's truth table, points in the quadrants
        corners, labels = dp.data.xor(np.float64)
        pick = rng.integers(0, 4, size=points)
        X = (2 * corners[pick] - 1) * rng.uniform(0.1, 1.0, size=(points, 2))
        return X + rng.normal(0.0, noise, size=X.shape), labels[pick].astype(np.int64)
    raise ValueError(f"unknown dataset {dataset!r}")


# ------------------------------------------------------------------------------ numbers for JSON
def _num(v: Any) -> float | str:
    """A float for JSON: non-finite numbers as the strings "NaN", "Infinity", "-Infinity"."""
    f = float(v)
    if math.isfinite(f):
        return f
    return "NaN" if f != f else ("Infinity" if f > 0 else "-Infinity")


def _nums(a: Any) -> list:
    a = np.asarray(a, dtype=np.float64)
    if np.isfinite(a).all():
        return a.tolist()
    return np.vectorize(_num, otypes=[object])(a).tolist() if a.size else a.tolist()


def _pair(v: Any) -> list:
    """[value, text]: the value (full precision) and the text trace prints for it."""
    from ..explain.numbers import fmt

    return [_num(v), fmt(float(v), np.float64)]


def _bytes(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a, dtype=np.uint8).tobytes()).decode("ascii")


def _heatmaps(values: np.ndarray) -> list[dict]:
    """Each column (one neuron's outputs over the plane) as bytes 128 + 127 * v / scale, where
    scale = max |v| of that column (the page colours the bytes; it computes nothing)."""
    v = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0, posinf=1e300, neginf=-1e300)
    scale = np.max(np.abs(v), axis=0)
    q = 128.0 + 127.0 * v / np.where(scale == 0, 1.0, scale)
    q = np.clip(np.rint(q), 0, 255).astype(np.uint8)
    return [{"scale": _num(scale[j]), "data": _bytes(q[:, j])} for j in range(v.shape[1])]


# ------------------------------------------------------------------------------ the session
class Session:
    """One page's data, network and training state. Single-threaded: the server calls it from
    its event loop, so a knob change lands between two steps."""

    def __init__(self, config: Config | None = None):
        self.config = replace(config) if config is not None else Config()
        self.rev = 0                  # the id of the last message applied (the page waits for it)
        self.playing = False
        self.selected: tuple[int, int, int] | None = None   # (Linear layer, neuron, sample in batch)
        self.notice: str | None = None
        self.data_version = 0          # counts the data drawn (the page redraws the points when it moves)
        self._new_data()

    # -- building --------------------------------------------------------------------------------
    def _new_data(self) -> None:
        import deltaprop as dp

        c = self.config
        X, y = make_data(c.dataset, c.points, c.noise, c.seed)
        self.mazur = c.dataset == "mazur"
        if self.mazur:       # one pattern with float targets; it trains and tests on itself
            labels = y.argmax(axis=1)
            self.Xtr, self.Xte, self.ytr, self.yte = X, X, labels, labels
            self.Ttr, self.Tte = y, y
        else:
            self.Xtr, self.Xte, self.ytr, self.yte = dp.data.train_test_split(
                X, y, test_size=1 - c.train_ratio, seed=c.seed)
            self.Ttr = self.ytr.reshape(-1, 1).astype(np.float64)
            self.Tte = self.yte.reshape(-1, 1).astype(np.float64)
        pts = np.concatenate([self.Xtr, self.Xte])
        extent = max(1.0, float(np.max(np.abs(pts))) * 1.15)
        self.extent = extent
        axis = np.linspace(-extent, extent, GRID)
        gx, gy = np.meshgrid(axis, axis[::-1])          # row 0 is the top of the picture
        self.grid = np.stack([gx.ravel(), gy.ravel()], axis=1)
        # the rows of the grid the neurons' small heatmaps show: every THUMB_STRIDE-th point each way
        self._thumb = np.arange(GRID * GRID).reshape(GRID, GRID)[::THUMB_STRIDE, ::THUMB_STRIDE].ravel()
        self.data_version += 1
        self._new_network()

    def _new_network(self) -> None:
        import deltaprop as dp

        c = self.config
        k = self.Ttr.shape[1]
        squares = c.loss in ("mse", "sse")
        if self.mazur and c.hidden == [2] and c.activation == "sigmoid" and squares:
            self.model = dp.explain.mazur_model()       # the post's weights (its biases frozen)
        else:
            self.model = _build(2, list(c.hidden), k, c.activation, squares, c.seed)
        self.linears = [m for m in self.model if isinstance(m, dp.nn.Linear)]
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.trace_loss = {"cross_entropy": "bce_logits", "mse": "mse", "sse": "sse"}[c.loss]
        self.steps = 0
        self.history: list[tuple[int, float, float]] = []
        self.losses: list[float] = []   # the training set's loss before each step (the lessons read it)
        self.history_reset = True
        self.record: list[tuple[int, float, list]] = []
        self.record_every = 1
        self.notice = None
        self.errors: int | None = None
        self.diagnosis: str | None = None
        self._diagnosed_at = -1
        rng = np.random.default_rng([c.seed, 11])
        self._rng = rng
        self._order = rng.permutation(len(self.Xtr))
        self._pos = 0
        self._refresh()

    # -- knobs -----------------------------------------------------------------------------------
    def apply(self, changes: dict) -> None:
        """Apply checked knob values (from parse_message): data or network knobs rebuild, the
        others (learning rate, regularisation, batch size, speed) act at the next step."""
        c = self.config
        changes = dict(changes)
        if changes.get("dataset") == "mazur" and c.dataset != "mazur":
            # the post's network and loss, unless this message sets them too
            changes.setdefault("hidden", [2])
            changes.setdefault("activation", "sigmoid")
            changes.setdefault("loss", "sse")
            changes.setdefault("learning_rate", 0.5)
        new = replace(c, **changes)
        if new.dataset == "mazur" and new.loss == "cross_entropy":
            raise MessageError("Mazur's example has targets 0.01 and 0.99, not class labels: use the loss "
                               "sse (the post's) or mse")
        old = self.config
        self.config = new
        touched = {k for k in changes if getattr(old, k) != getattr(new, k)}
        if touched & NEW_DATA:
            self.selected = None
            self._new_data()
        elif touched & NEW_NETWORK:
            self.selected = None
            self._new_network()
        else:
            self._refresh()      # the next step's numbers under the new learning rate / batch size

    def reset(self) -> None:
        """New weights from the seed, step 0, same data (TensorFlow Playground's reset)."""
        self._new_network()

    def select(self, layer: int | None, neuron: int | None, sample: int | None = None) -> None:
        """Show the layer rule for neuron `neuron` of Linear layer `layer` (0 = the first hidden
        layer), for sample `sample` of the next batch; None clears it."""
        if layer is None or neuron is None:
            self.selected = None
            return
        sizes = [l.weight.shape[0] for l in self.linears]
        if layer >= len(sizes):
            raise MessageError(f"select: layer {layer} does not exist; the network has layers 0..{len(sizes) - 1}")
        if neuron >= sizes[layer]:
            raise MessageError(f"select: layer {layer} has neurons 0..{sizes[layer] - 1}, got {neuron}")
        s = 0 if sample is None else sample
        if s >= self.batch_size:
            raise MessageError(f"select: the batch has samples 0..{self.batch_size - 1}, got {s}")
        self.selected = (layer, neuron, s)

    @property
    def batch_size(self) -> int:
        """The batch size in use: the knob, at most the training set."""
        return min(self.config.batch_size, len(self.Xtr))

    # -- training --------------------------------------------------------------------------------
    def _batch(self) -> np.ndarray:
        """The indices (into the training set) of the next step's batch: epochs of shuffled order."""
        n, bs = len(self.Xtr), self.batch_size
        if self._pos + bs > n:
            self._order, self._pos = self._rng.permutation(n), 0
        return self._order[self._pos:self._pos + bs]

    def _loss(self, out, target):
        from .. import nn

        t = target.reshape(out.shape)
        if self.config.loss == "sse":
            return 0.5 * ((t - out) ** 2).sum()
        if self.config.loss == "mse":
            return nn.functional.mse_loss(out, t)
        return nn.functional.binary_cross_entropy_with_logits(out, t)

    def _penalty(self):
        """rate x sum of |w| (L1) or of w^2 / 2 (L2) over the weights (not the biases), or None."""
        c = self.config
        if c.regularization == "none" or c.reg_rate == 0:
            return None
        terms = [(l.weight.abs() if c.regularization == "l1" else l.weight * l.weight * 0.5).sum()
                 for l in self.linears if l.weight.requires_grad]
        total = terms[0]
        for t in terms[1:]:
            total = total + t
        return total * c.reg_rate

    def advance(self, steps: int = 1, budget_s: float | None = None) -> None:
        """Train `steps` SGD steps on the engine, then recompute what the page draws. Stops at a
        loss that is not finite (the page then says why), and after `budget_s` seconds if given
        (at least one step), so that a large network at a high speed still answers the page."""
        import time

        import deltaprop as dp

        start = time.perf_counter()
        for k in range(steps):
            if k and budget_s is not None and time.perf_counter() - start > budget_s:
                break
            if len(self.losses) == self.steps < LOSSES_CAP:     # the lessons read the loss of every step
                self.losses.append(self._mean_loss(self.Xtr, self.Ttr))
            idx = self._batch()
            self._pos += len(idx)
            xb = dp.tensor(self.Xtr[idx])
            E = self._loss(self.model(xb), dp.tensor(self.Ttr[idx]))
            pen = self._penalty()
            total = E if pen is None else E + pen
            for p in self.trainable:
                p.grad = None
            total.backward()
            e = float(E.item())
            if self.steps % self.record_every == 0:
                self._record(e)
            with dp.no_grad():
                for p in self.trainable:
                    p -= self.config.learning_rate * p.grad
            self.steps += 1
            if not math.isfinite(e) or not all(np.isfinite(p.data).all() for p in self.trainable):
                self.playing = False
                break
        self._refresh()

    def _record(self, loss: float) -> None:
        """Keep this step's weights (before its update) and gradients for the report."""
        layers = []
        for l in self.linears:
            gW = l.weight.grad
            assert gW is not None, "a trained weight has its gradient after backward"
            entry = {"W": l.weight.data.copy(), "b": l.bias.data.copy(), "gW": gW.data.copy()}
            if l.bias.grad is not None:
                entry["gb"] = l.bias.grad.data.copy()
            layers.append(entry)
        self.record.append((self.steps, loss, layers))
        per_step = sum(16 * l.weight.size + 16 * l.bias.size for l in self.linears)   # value + gradient
        if len(self.record) >= min(RECORD_CAP, max(16, RECORD_BYTES // per_step)):
            # keep every other one, and record half as often
            self.record = self.record[::2]
            self.record_every *= 2

    # -- what the page draws -----------------------------------------------------------------------
    def _refresh(self) -> None:
        """Losses, the plane's outputs and the next step's trace, for the current weights."""
        import deltaprop as dp

        with dp.no_grad():
            train, train_out = self._mean_loss(self.Xtr, self.Ttr, keep=True)
            test = self._mean_loss(self.Xte, self.Tte)
            h = dp.tensor(self.grid)
            outs = []
            for m in self.model:
                h = m(h)
                if isinstance(m, dp.nn.Linear):
                    outs.append(h)
                else:
                    outs[-1] = h
            final = outs[-1]
            if self.config.loss == "cross_entropy":
                final = final.sigmoid()          # the probability of class 1, from the logit
            self.plane = [o.numpy() for o in outs]
            self.plane_final = final.numpy()
        self.train_loss, self.test_loss = train, test
        if len(self.losses) == self.steps < LOSSES_CAP:
            self.losses.append(train)
        if not self.history or self.history[-1][0] != self.steps:
            self.history.append((self.steps, train, test))
            if len(self.history) > HISTORY_CAP:
                self.history = self.history[::2]
        self.batch_idx = self._batch().copy()
        finite = all(np.isfinite(p.data).all() for p in self.model.parameters())
        self.trace = None
        if finite:
            self.trace = dp.explain.trace(self.model, self.Xtr[self.batch_idx], self.Ttr[self.batch_idx],
                                          loss=self.trace_loss, lr=self.config.learning_rate)
        self.errors = self._errors(train_out) if finite else None
        if not finite or not math.isfinite(train) or self.steps - self._diagnosed_at >= max(1, self.steps // 100):
            self.diagnosis = self._diagnosis()
            self._diagnosed_at = self.steps
        if not finite or not math.isfinite(train):
            self.notice = (self.diagnosis or f"The loss became {'NaN' if train != train else 'infinite'} at step "
                           f"{self.steps}: the learning rate is too large; lower it and reset.")

    def _errors(self, out: np.ndarray) -> int | None:
        """How many training points the network's outputs `out` get wrong (None for Mazur's targets)."""
        if self.mazur:
            return None
        out = out[:, 0]
        threshold = 0.0 if self.config.loss == "cross_entropy" else 0.5
        return int(np.sum((out > threshold) != (self.ytr == 1)))

    def _diagnosis(self) -> str | None:
        """The lesson of the run so far, in dp.explain's words: from the loss curve (a rising loss
        names a learning rate too large) and from the next step's deltas (vanishing/exploding)."""
        from ..explain import lessons

        tr = self.trace
        c = self.config
        history = lessons.training_lesson(
            self.losses, lr=c.learning_rate, hidden=list(c.hidden), activation=c.activation, dataset=c.dataset,
            loss=self.trace_loss, classes=2, errors=self.errors, samples=len(self.Xtr), unit="step")
        if tr is None:
            lesson = history or lessons.depth_lesson([], finite=False)
        else:
            hidden = tr.layers[:-1]
            lesson = lessons.depth_lesson(
                [l.mean_abs_delta for l in tr.layers], activation=c.activation if c.hidden else "",
                fprime=[float(np.mean(np.abs(l.fprime))) for l in hidden if l.fprime is not None],
                net=[float(np.mean(np.abs(l.net))) for l in hidden],
                weight_scale=[float(np.abs(l.weight).mean() * np.sqrt(l.weight.shape[1])) for l in tr.layers[1:]],
                history=history) or history
        return None if lesson is None else str(lesson)

    def _mean_loss(self, X: np.ndarray, T: np.ndarray, keep: bool = False) -> Any:
        """The loss per sample over a whole set (sse: its sum divided by the samples); with keep,
        (loss, the network's outputs)."""
        import deltaprop as dp

        with dp.no_grad(), np.errstate(all="ignore"):
            out = self.model(dp.tensor(X))
            E = float(self._loss(out, dp.tensor(T)).item())
        E = E / len(X) if self.config.loss == "sse" else E
        return (E, out.numpy()) if keep else E

    def data_message(self) -> dict:
        """The points (sent when the data changes): train and test, labels, the plane's extent."""
        return {"type": "data", "version": self.data_version, "extent": self.extent, "grid": GRID,
                "thumb": GRID // THUMB_STRIDE, "dataset": self.config.dataset,
                "train": {"X": _nums(self.Xtr), "y": self.ytr.tolist()},
                "test": {"X": _nums(self.Xte), "y": self.yte.tolist()}}

    def names(self) -> list[list[str]]:
        """Neuron names per layer, the input layer first: the names dp.explain.trace gives."""
        from ..explain.names import neuron_names

        tr = self.trace
        if tr is not None:
            return [list(tr.layers[0].in_names)] + [list(l.names) for l in tr.layers]
        return neuron_names([2] + [l.weight.shape[0] for l in self.linears])   # (no trace of NaN weights)

    def frame(self) -> dict:
        """Everything the page draws for the current state (JSON-ready)."""
        c, tr = self.config, self.trace
        t = GRID // THUMB_STRIDE
        thumb = self._thumb
        heat = [_heatmaps(self.grid[thumb])] + [_heatmaps(out[thumb]) for out in self.plane]
        final = self.plane_final
        boundary: dict[str, Any]
        if final.shape[1] == 1:
            boundary = {"kind": "binary", "data": _bytes(np.clip(np.rint(np.nan_to_num(final[:, 0]) * 255), 0, 255))}
        else:
            conf = np.nan_to_num(final.max(axis=1))
            lo, hi = float(conf.min()), float(conf.max())
            boundary = {"kind": "classes", "classes": int(final.shape[1]),
                        "data": _bytes(np.nan_to_num(final).argmax(axis=1)),
                        "confidence": _bytes(np.rint(255 * (conf - lo) / (hi - lo)) if hi > lo else conf * 0 + 255)}
        hist = self.history if self.history_reset else self.history[-1:]
        frame: dict[str, Any] = {
            "type": "frame", "rev": self.rev, "step": self.steps, "playing": self.playing,
            "config": asdict(c), "batch_size": self.batch_size,
            "epoch": self.steps * self.batch_size / len(self.Xtr),
            "train_loss": _num(self.train_loss), "test_loss": _num(self.test_loss),
            "history": [[s, _num(a), _num(b)] for s, a, b in hist], "history_reset": self.history_reset,
            "names": self.names(),
            "layer_names": ["input"] + [self._layer_title(li) for li in range(len(self.linears))],
            "activations": [l.activation for l in tr.layers] if tr else [],
            "weights": [_nums(l.weight.data) for l in self.linears],
            "biases": [_nums(l.bias.data) for l in self.linears],
            "heatmaps": heat, "thumb": t, "boundary": boundary, "notice": self.notice,
            "diagnosis": self.diagnosis, "errors": self.errors,
        }
        self.history_reset = False
        if tr is not None:
            n = tr.batch
            frame["neurons"] = {"out": [_nums(l.out.mean(axis=0)) for l in tr.layers],
                                "delta": [_nums(l.delta.mean(axis=0)) for l in tr.layers]}
            index = {l.key: l.index for l in tr.layers}
            frame["depth"] = [{"layer": self._layer_title(index[key]), "mean_abs_delta": _pair(m),
                               "ratio": None if r is None else _pair(r)} for key, m, r in tr.delta_scale]
            frame["delta_note"] = _delta_note(c.loss, n)
            if self.selected is not None:
                frame["rule"] = self.rule(*self.selected)
        return frame

    def _layer_title(self, li: int) -> str:
        """Linear layer li's name, as dp.explain names it ("hidden layer 2", "output layer")."""
        from ..explain.names import layer_name

        return layer_name(li + 1, [2] + [l.weight.shape[0] for l in self.linears])

    def rule(self, layer: int, neuron: int, sample: int = 0) -> dict | None:
        """The layer rule for one neuron with the next step's numbers, read from dp.explain.trace
        (the weights shown, the next batch): net, f'(net), sum of w x delta, delta, and each
        incoming weight's gradient. Every number is [value, trace's text]."""
        tr = self.trace
        if tr is None or layer >= len(tr.layers) or neuron >= tr.layers[layer].size:
            return None
        s = min(sample, tr.batch - 1)
        L = tr.layers[layer]
        fprime = L.fprime if L.fprime is not None else np.ones_like(L.net)   # (trace gives ones when none)
        # trace's delta is of E, the batch's loss: a mean over the batch except for Mazur's sum (sse), so
        # the delta of this sample's own loss is `factor` times it
        factor = tr.per_sample_scale or 1
        last = layer == len(tr.layers) - 1
        j = neuron
        c = self.config
        out: dict[str, Any] = {
            "layer": layer, "neuron": j, "sample": s, "name": L.names[j], "title": self._layer_title(layer),
            "activation": L.activation or "none", "output": last, "step": self.steps + 1, "batch": tr.batch,
            "sample_index": int(self.batch_idx[s]), "loss": tr.loss_kind,
            "net": _pair(L.net[s, j]), "out": _pair(L.out[s, j]), "fprime": _pair(fprime[s, j]),
            "dout": _pair(L.dout[s, j]), "delta": _pair(L.delta[s, j]), "delta_batch_mean": _pair(L.delta[:, j].mean()),
            "per_sample_factor": factor,
            "per_sample_delta": _pair(factor * L.delta[s, j]),
            "lr": _pair(c.learning_rate), "regularization": c.regularization, "reg_rate": _pair(c.reg_rate),
            "diagnosis": self.diagnosis,
        }
        if last and tr.target is not None:
            t = tr.target.reshape(L.out.shape)[s, j]
            out["target"] = _pair(t)
            if tr.loss_kind == "bce_logits":
                out["probability"] = _pair(1.0 / (1.0 + math.exp(-float(L.net[s, j]))) if abs(L.net[s, j]) < 700
                                           else float(L.net[s, j] > 0))
        else:
            nxt = tr.layers[layer + 1]
            out["terms"] = [{"weight": tr.param_name(f"{nxt.key}.weight", (m, j)), "w": _pair(nxt.weight[m, j]),
                             "to": nxt.names[m], "delta": _pair(nxt.delta[s, m]),
                             "product": _pair(nxt.weight[m, j] * nxt.delta[s, m])} for m in range(nxt.size)]
        wkey, bkey = f"{L.key}.weight", f"{L.key}.bias"
        incoming = []
        for i, src in enumerate(L.in_names):
            g = tr.grads.get(wkey)
            w = L.weight[j, i]
            pen = _penalty_grad(c, w)
            row = {"from": src, "weight": tr.param_name(wkey, (j, i)), "w": _pair(w), "input": _pair(L.input[s, i]),
                   "product": _pair(L.delta[s, j] * L.input[s, i]), "grad": None if g is None else _pair(g[j, i]),
                   "penalty": _pair(pen)}
            if g is not None:
                row["updated"] = _pair(w - c.learning_rate * (g[j, i] + pen))
            incoming.append(row)
        if bkey in tr.grads and L.bias is not None:
            gb = tr.grads[bkey][j]
            incoming.append({"from": "bias (input 1)", "weight": tr.param_name(bkey, (j,)), "w": _pair(L.bias[j]),
                             "input": _pair(1.0), "product": _pair(L.delta[s, j]), "grad": _pair(gb),
                             "penalty": _pair(0.0), "updated": _pair(L.bias[j] - c.learning_rate * gb)})
        out["incoming"] = incoming
        # the whole trace as text is long to format and to lay out: sent while paused (when it can be read)
        out["text"] = None if self.playing else tr.text(sample=s)
        # what the numbers were computed from, so anyone can re-run trace on them
        out["state"] = {k: _nums(v) for k, v in tr.params.items()}
        out["batch_indices"] = self.batch_idx.tolist()
        return out

    # -- Save this run ---------------------------------------------------------------------------
    def report_data(self) -> dict:
        """The recorded run in dp.explain's report schema (weights before each step, its gradients)."""
        c = self.config
        if not self.record:
            raise MessageError("nothing to save yet: train at least one step first")
        k = self.Ttr.shape[1]
        output = {"cross_entropy": "sigmoid", "mse": "mse", "sse": "sse"}[c.loss]
        sizes = [2] + [l.weight.shape[0] for l in self.linears]
        scale = 1.0
        if c.loss == "sse":      # the report's sse averages over the batch; ours sums (trace's)
            scale = 1.0 / self.batch_size
        params = [[{key: (v * scale if key.startswith("g") else v) for key, v in layer.items()} for layer in layers]
                  for _, _, layers in self.record]
        reg = ("" if c.regularization == "none" or c.reg_rate == 0 else
               f" with {c.regularization.upper()} regularisation (rate {c.reg_rate:g}; the recorded gradients "
               "include its term)")
        how = "full batch" if self.batch_size == len(self.Xtr) else f"minibatches of {self.batch_size}"
        data = {
            "title": f"deltaprop playground: {c.dataset}",
            "dataset": c.dataset, "sizes": sizes, "activation": c.activation, "output": output,
            "X": self.Xtr, "y": self.ytr, "steps": [s for s, _, _ in self.record],
            "loss": [e * (scale if c.loss == "sse" else 1.0) for _, e, _ in self.record],
            "params": params, "lr": c.learning_rate,
            "description": (f"Trained live in deltaprop playground: a {'-'.join(map(str, sizes))} network, "
                            f"SGD (learning rate {c.learning_rate:g}, {how}){reg}, {self.steps} steps on the "
                            f"{len(self.Xtr)} training points (seed {c.seed}, noise {c.noise:g})."
                            + (f" Every {self.record_every}th step is recorded." if self.record_every > 1 else "")),
        }
        if c.loss in ("mse", "sse"):
            data["targets"] = self.Ttr if k > 1 or self.mazur else self.Ttr.reshape(-1, 1)
        return data

    def report_html(self, max_bytes: int = 8_000_000) -> str:
        """The report page of this run (dp.explain.Report), thinned to max_bytes."""
        import deltaprop as dp

        return dp.explain.Report(self.report_data(), max_bytes=max_bytes).html


def _penalty_grad(c: Config, w: float) -> float:
    """d(rate x R(w))/dw for the weight w: rate x sign(w) (L1, 0 at 0) or rate x w (L2)."""
    if c.regularization == "none" or c.reg_rate == 0:
        return 0.0
    return c.reg_rate * (float(np.sign(w)) if c.regularization == "l1" else float(w))


def _delta_note(loss: str, batch: int) -> str:
    """Which delta the page shows: trace's, of the batch loss."""
    if loss == "sse":
        return ("delta = dE/dnet, E = the sum over the batch of 1/2 (target - out)^2: each sample's delta is its "
                "own, and the weight gradient sums them over the batch.")
    return (f"delta = dE/dnet, E = the mean loss over the batch of {batch}: each sample's delta here is 1/{batch} "
            f"of its own per-sample delta (dE_sample/dnet), and the weight gradient sums them over the batch.")


def _build(n_in: int, hidden: list, n_out: int, activation: str, sigmoid_out: bool, seed: int):
    """A float64 MLP with PyTorch's default Linear initialisation from a generator seeded by `seed`."""
    import deltaprop as dp

    nn = dp.nn
    acts = {"tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "relu": nn.ReLU, "leaky_relu": lambda: nn.LeakyReLU(0.01)}
    sizes = [n_in, *hidden, n_out]
    mods: list = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        mods.append(nn.Linear(a, b, dtype=np.float64))
        if i < len(sizes) - 2:
            mods.append(acts[activation]())
    if sigmoid_out:
        mods.append(nn.Sigmoid())
    model = nn.Sequential(*mods)
    init = np.random.default_rng([seed, 1])
    for l in (m for m in model if isinstance(m, nn.Linear)):
        bound = 1.0 / np.sqrt(l.weight.shape[1])
        l.load_state_dict({"weight": init.uniform(-bound, bound, l.weight.shape),
                           "bias": init.uniform(-bound, bound, l.bias.shape)})
    return model
