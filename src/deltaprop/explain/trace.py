"""trace(): the error signal of every neuron, computed by the engine, in textbook notation.

For a chain of Linear layers and elementwise activations, layer l computes
net_l = out_{l-1} @ W_l.T + b_l and out_l = f(net_l). Back-propagation of errors is the
recursion for delta_l = dE/dnet_l, the same at every depth:

    delta_L = dE/dout_L * f'(net_L)                      (output layer; named for the loss)
    delta_l = f'(net_l) * (W_{l+1}^T delta_{l+1})        (every hidden layer)
    dE/dW_l = delta_l^T out_{l-1},   dE/db_l = sum over the batch of delta_l

`trace` does not implement that recursion: it runs the model forward and asks the engine's
reverse pass for dE/dnet, dE/dout and dE/dparam (deltaprop.graph.grad, the public graph API, which
returns those gradients without touching any `.grad`). The text then shows the recursion
with those numbers, and the tests check that the identities hold.
"""
from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .display import Text, pre_html
from .lessons import Lesson, depth_lesson, training_lesson
from .names import layer_name, layer_symbol, neuron_name, weight_name, bias_name
from .numbers import fmt

__all__ = ["Layer", "Trace", "trace", "LOSSES"]

ELEMENTWISE = {"Sigmoid", "Tanh", "ReLU", "LeakyReLU", "GELU", "Softplus", "Identity", "ELU", "SiLU",
               "Hardtanh", "ReLU6", "Mish", "Softsign", "Tanhshrink", "Dropout"}

# loss names trace() accepts as strings, and what each is
LOSSES = {
    "sse": "E = sum of 1/2 (target - out)^2 (Mazur's post)",
    "mse": "E = mean of (out - target)^2 (PyTorch's MSELoss)",
    "ce": "E = cross-entropy of softmax(net) (mean over the batch)",
    "bce": "E = binary cross-entropy of out (mean)",
    "bce_logits": "E = binary cross-entropy of sigmoid(net) (mean)",
}

SHOW_NEURONS = 8     # every neuron up to this many per layer; beyond, the largest few and a summary
LARGEST = 5
VANISH = 100.0       # mean |delta| changing by more than this across the net is worth a sentence


@dataclass
class Layer:
    """One Linear layer and the activations that follow it; arrays are (batch, neurons)."""

    index: int                 # position among the Linear layers (0 = first)
    key: str                   # its name in the model: the state_dict prefix, e.g. "2"
    activation: str            # e.g. "sigmoid"; "" when no activation follows
    input: np.ndarray          # (batch, in): what the Linear received
    net: np.ndarray            # (batch, out): the Linear's output, x @ W.T + b
    out: np.ndarray            # (batch, out): after the activation(s); net when none follows
    delta: np.ndarray          # (batch, out): dE/dnet, the neuron's error signal
    dout: np.ndarray           # (batch, out): dE/dout, the error arriving at the neuron's output
    fprime: np.ndarray         # (batch, out): dout/dnet of the elementwise activation (1 when none)
    weight: np.ndarray         # (out, in) copy
    bias: np.ndarray | None    # (out,) copy
    names: list = field(default_factory=list)      # neuron names, 1-based: ["h1", "h2"], ["h2.1", ...], ["o1"]
    in_names: list = field(default_factory=list)   # names of the inputs, e.g. ["i1", "i2"]
    name: str = ""             # "hidden layer 1", "hidden layer" (the only one) or "output layer"
    symbol: str = ""           # "h1", "h" (the only hidden layer) or "o": delta_h1, W_o in the rules

    @property
    def size(self) -> int:
        """Number of neurons."""
        return self.net.shape[1]

    @property
    def mean_abs_delta(self) -> float:
        """mean |delta| over the batch and the neurons: the size of the error signal here."""
        return float(np.mean(np.abs(self.delta)))


def _loss_kind(loss: Any) -> tuple[str, Callable]:
    """(kind, callable) for a loss given by name or as one of the library's own losses."""
    from .. import nn
    F = nn.functional

    def sse(out, t):
        return 0.5 * ((t - out) ** 2).sum()

    def ce(out, t):
        labels = np.asarray(t.data if hasattr(t, "data") else t).reshape(-1).astype(np.int64)
        return F.cross_entropy(out.reshape(-1, out.shape[-1]), labels)

    def _shaped(f):
        def g(out, t):
            return f(out, t.reshape(out.shape).astype(out.dtype))
        return g

    named = {"sse": sse, "mse": _shaped(F.mse_loss), "ce": ce, "bce": _shaped(F.binary_cross_entropy),
             "bce_logits": _shaped(F.binary_cross_entropy_with_logits)}
    if isinstance(loss, str):
        if loss not in named:
            raise ValueError(f"trace: unknown loss {loss!r}; valid names: {', '.join(named)} (or pass a callable "
                             "loss(out, target) -> scalar Tensor)")
        return loss, named[loss]
    if not callable(loss):
        raise TypeError(f"trace: loss must be a name ({', '.join(named)}) or a callable, got {type(loss).__name__}")
    fn = {F.cross_entropy: "ce", F.mse_loss: "mse", F.binary_cross_entropy: "bce",
          F.binary_cross_entropy_with_logits: "bce_logits"}.get(loss)
    if fn is None and getattr(loss, "reduction", "mean") == "mean":
        fn = {"CrossEntropyLoss": "ce", "MSELoss": "mse", "BCELoss": "bce",
              "BCEWithLogitsLoss": "bce_logits"}.get(type(loss).__name__)
    return fn or "custom", loss


def _quiet(method: Callable) -> Callable:
    """Run a text method with NumPy's floating-point warnings off: a diverged run's inf and NaN are
    printed and explained, never warned about."""
    import functools

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with np.errstate(all="ignore"):
            return method(*args, **kwargs)
    return wrapper


class Trace:
    """The result of `trace`: `layers`, `grads`, `updated`, `loss`; printable as the layer rule."""

    def __init__(self, layers: list[Layer], grads: dict, updated: dict, loss: float, lr: float | None,
                 textbook: bool, params: dict, weight_names: dict, loss_kind: str = "custom",
                 target: np.ndarray | None = None, dtype: Any = np.float64, sample: int = 0,
                 history: list | None = None):
        self.layers = layers
        self.grads = grads
        self.updated = updated
        self.loss = loss
        self.lr = lr
        self.textbook = textbook
        self.params = params              # {key: value copy}
        self._weight_names = weight_names  # {key: ndarray of names} for the textbook example
        self.loss_kind = loss_kind        # "sse", "mse", "ce", "bce", "bce_logits" or "custom"
        self.target: Any = target  # (ndarray | None)
        self.dtype = np.dtype(dtype)
        self.sample = sample              # the sample whose numbers the text shows
        self.history = history            # the training losses before this trace (None: not known)
        self.dataset: str | None = None   # the data set's name, for the lesson's text

    # -- numbers ----------------------------------------------------------------------------------
    def _g(self, v: Any) -> str:
        return fmt(v, self.dtype)

    def _p(self, v: Any) -> str:
        s = self._g(v)
        return f"({s})" if s.startswith("-") else s

    @property
    def output(self) -> np.ndarray:
        """The network's output (batch, outputs), a copy."""
        return self.layers[-1].out.copy()

    @property
    def batch(self) -> int:
        """Number of samples traced."""
        return self.layers[0].net.shape[0]

    def _sample(self, sample: int | None) -> int:
        n = self.sample if sample is None else sample
        if not isinstance(n, (int, np.integer)) or not -self.batch <= n < self.batch:
            raise IndexError(f"trace: sample {n!r} out of range for a batch of {self.batch}")
        return int(n) % self.batch

    # -- vanishing and exploding gradients ----------------------------------------------------------
    @property
    def delta_scale(self) -> list[tuple[str, float, float | None]]:
        """(layer key, mean |delta|, ratio to the layer after it) from the output back; the
        output layer's ratio is None. A ratio below 1 means the error signal shrank there."""
        rows: list[tuple[str, float, float | None]] = []
        prev = None
        for layer in reversed(self.layers):
            m = layer.mean_abs_delta
            rows.append((layer.key, m, None if prev is None else (m / prev if prev > 0 else float("inf"))))
            prev = m
        return rows

    @property
    def sizes(self) -> list[int]:
        """Layer widths, inputs first: [2, 4, 4, 1]."""
        return [self.layers[0].weight.shape[1]] + [l.size for l in self.layers]

    @property
    def per_sample_scale(self) -> int | None:
        """How many times larger a sample's delta of its own loss is than its delta here (of E,
        the batch's loss): the batch size for a mean over the batch (mse, ce, bce), 1 for Mazur's
        sum (sse), None for a loss given as an unnamed callable."""
        if self.loss_kind == "sse":
            return 1
        if self.loss_kind in ("mse", "ce", "bce", "bce_logits"):
            return self.batch
        return None

    def _errors(self) -> int | None:
        """Misclassified samples of the batch, for a classification loss (None otherwise)."""
        o, t = self.layers[-1], self.target
        try:
            if self.loss_kind == "ce":
                return int(np.sum(o.net.argmax(axis=1) != np.asarray(t).reshape(-1).astype(int)))
            if self.loss_kind in ("bce", "bce_logits"):
                p = o.out if self.loss_kind == "bce" else o.net
                edge = 0.5 if self.loss_kind == "bce" else 0.0
                return int(np.sum((p > edge) != (np.asarray(t).reshape(p.shape) > 0.5)))
        except (ValueError, IndexError, TypeError):
            return None
        return None

    @property
    def lesson(self) -> Lesson | None:
        """What this trace teaches (a `lessons.Lesson`: kind and text), or None. With the
        training losses (`trace(..., history=losses)`), a loss that rose or exploded is named as
        a learning rate too large first; otherwise mean |delta| shrinking or growing by more
        than 100x from the output layer to the first is named as vanishing or exploding
        gradients, with the cause and the advice that fit the network's activation."""
        hidden = self.layers[:-1]
        acts = [l.activation for l in hidden if l.activation]
        act = acts[0] if acts else ""
        history = None
        if self.history is not None:
            classes = self.layers[-1].size if self.loss_kind == "ce" else 2
            history = training_lesson(self.history, lr=self.lr, hidden=[l.size for l in hidden], activation=act,
                                      loss=self.loss_kind, classes=classes, errors=self._errors(),
                                      samples=self.batch, dataset=self.dataset)
        finite = all(np.isfinite(l.delta).all() and np.isfinite(l.weight).all() for l in self.layers)
        depth = depth_lesson([l.mean_abs_delta for l in self.layers], activation=act,
                             fprime=[float(np.mean(np.abs(l.fprime))) for l in hidden if l.fprime is not None],
                             net=[float(np.mean(np.abs(l.net))) for l in hidden],
                             weight_scale=[float(np.abs(l.weight).mean() * np.sqrt(l.weight.shape[1]))
                                           for l in self.layers[1:]],
                             history=history, finite=finite)
        return depth or history

    @property
    def diagnosis(self) -> str | None:
        """The text of `lesson`: one or two sentences naming the cause and the remedy, or None."""
        lesson = self.lesson
        return None if lesson is None else lesson.text

    def _depth_lines(self) -> list[str]:
        out = ["|delta| by layer (mean over neurons and samples; deltas of the batch's loss E), from the output back:"]
        for key, m, r in self.delta_scale:
            layer = next(l for l in self.layers if l.key == key)
            if not np.isfinite(m):
                val = f"{fmt(m, self.dtype)} (not finite: training diverged)"
            elif m == 0:
                val = "0 (no error signal reaches this layer)"
            else:
                val = fmt(m, self.dtype)
            ratio = ("" if r is None or not np.isfinite(r) or r == 0 or not np.isfinite(m) or m == 0
                     else f"   ×{'%.3g' % r} of the layer after it")
            out.append(f"  {layer.name} ({self._key_text(layer)}): {val}{ratio}")
        d = self.diagnosis
        if d:
            out.append(d)
        return out

    def _key_text(self, layer: Layer) -> str:
        return f"state_dict key {layer.key!r}" if layer.key else "the model itself"

    # -- names ------------------------------------------------------------------------------
    def param_name(self, key: str, index: tuple) -> str:
        """w5 in the textbook example; otherwise the link's name, w(i2→h1.3) for
        `0.weight[2, 1]`, and b(h1.3) for `0.bias[2]` (see `deltaprop.explain.names`)."""
        if key in self._weight_names:
            return str(self._weight_names[key][index])
        prefix, _, kind = key.rpartition(".")
        layer = next((l for l in self.layers if l.key == prefix), None)
        if layer is not None and kind == "weight" and len(index) == 2:
            return weight_name(layer.index + 1, index[0], index[1], self.sizes)
        if layer is not None and kind == "bias" and len(index) == 1:
            return bias_name(layer.index + 1, index[0], self.sizes)
        return f"{key}[{','.join(map(str, index))}]"

    def _wname(self, layer: Layer, k: int, j: int) -> str:
        key = f"{layer.key}.weight" if layer.key else "weight"
        return self.param_name(key, (k, j))

    # -- the rule, per layer ------------------------------------------------------------------------
    def _output_rule(self) -> tuple[str, np.ndarray | None]:
        """(the output layer's delta rule in words, the delta that rule gives) for the loss; the
        named form is used only when it reproduces the engine's delta."""
        if self.loss_kind == "custom":   # a lambda may still be one of the named losses: try them
            for kind in ("sse", "mse"):
                rule, pred = self._output_rule_for(kind)
                if pred is not None:
                    return rule, pred
        return self._output_rule_for(self.loss_kind)

    def _output_rule_for(self, kind: str) -> tuple[str, np.ndarray | None]:
        with np.errstate(all="ignore"):   # (weights ruined by a diverged run: say so, warn of nothing)
            return self._output_rule_of(kind)

    def _output_rule_of(self, kind: str) -> tuple[str, np.ndarray | None]:
        o = self.layers[-1]
        t = self.target
        act = o.activation
        n, k = o.net.shape
        pred, rule = None, ""
        try:
            if kind == "sse" and t is not None:
                pred, rule = (o.out - t.reshape(o.out.shape)) * o.fprime, "delta = dE/dout × f'(net) = -(target - out) × f'(net)"
            elif kind == "mse" and t is not None:
                pred = 2 * (o.out - t.reshape(o.out.shape)) / (n * k) * o.fprime
                rule = f"delta = dE/dout × f'(net) = 2 (out - target) / {n * k} × f'(net)  (mean over {n * k} values)"
            elif kind == "ce" and not act and t is not None:
                z = o.net - o.net.max(axis=1, keepdims=True)
                p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
                pred = (p - np.eye(k)[np.asarray(t).reshape(-1).astype(int)]) / n
                rule = ("delta = p - y, p = softmax(net), y = one-hot target" + (f", divided by the batch ({n}) "
                        "for the mean" if n > 1 else ""))
            elif kind in ("bce_logits", "bce") and t is not None and (act == "sigmoid" if kind == "bce" else not act):
                s = o.out if kind == "bce" else 1 / (1 + np.exp(-o.net))
                pred = (s - t.reshape(s.shape)) / (n * k)
                rule = ("delta = out - target" if kind == "bce" else "delta = sigmoid(net) - target") + (
                    f", divided by {n * k} for the mean" if n * k > 1 else "") + (
                    " (sigmoid's f' cancels the loss's 1/(out (1 - out)))" if kind == "bce" else "")
        except (ValueError, IndexError):
            pred = None
        tol = 1e-5 if self.dtype.itemsize < 8 else 1e-9
        if pred is not None and np.allclose(pred, o.delta, rtol=tol, atol=tol * max(1e-30, float(np.abs(o.delta).max()))):
            return rule, pred
        return "delta = dE/dout × f'(net)  (dE/dout from the loss's own backward pass)", None

    def _hidden_rule(self, layer: Layer) -> str:
        nxt = self.layers[layer.index + 1]
        a, b = layer.symbol, nxt.symbol
        return (f"delta_{a} = f'(net_{a}) * (W_{b}^T delta_{b}):  each neuron j: "
                f"f'(net_j) × sum over k of w(j→k) × delta_k, k over the {nxt.size} neuron{'s' if nxt.size > 1 else ''} "
                f"of the {nxt.name}")

    def _shown(self, layer: Layer, s: int) -> tuple[list[int], str]:
        """The neurons listed for a layer (all up to 8; else the largest |delta|) and a summary."""
        if layer.size <= SHOW_NEURONS:
            return list(range(layer.size)), ""
        order = np.argsort(-np.abs(layer.delta[s]), kind="stable")[:LARGEST]
        a = np.abs(layer.delta[s])
        return sorted(order.tolist()), (f"... {layer.size - LARGEST} more neurons (the {LARGEST} largest |delta| shown); "
                                        f"over all {layer.size}: mean |delta| {self._g(a.mean())}, "
                                        f"max {self._g(a.max())} (tr.layers[{layer.index}].delta)")

    def _sections(self, sample: int | None = None) -> list[dict]:
        s = self._sample(sample)
        multi = self.batch > 1
        out = []
        for layer in reversed(self.layers):
            is_out = layer is self.layers[-1]
            rule = self._output_rule()[0] if is_out else self._hidden_rule(layer)
            probs = self._probabilities() if is_out else None
            if probs is not None:   # ce / bce on logits: the probability and the target, so delta = p - y shows
                p, y, what = probs
                head = ["neuron", "net (logit)", what, "target y", "p - y (this sample's own loss)", "delta = dE/dnet"]
            elif is_out:
                head = ["neuron", "net", "out = p" if self.loss_kind == "bce" else "out"] + (
                    ["target"] if self.target is not None and self.target.size == layer.out.size else []) + [
                    "dE/dout", "f'(net)", "delta = dE/dnet"]
            else:
                head = ["neuron", "net", "out", "W^T delta = dE/dout", "f'(net)", "delta = dE/dnet"]
            if multi:
                head.append("batch mean delta")
            shown, more = self._shown(layer, s)
            rows = []
            for j in shown:
                if probs is not None:
                    r = [layer.names[j], self._g(layer.net[s, j]), self._g(p[s, j]), self._g(y[s, j]),
                         self._g(p[s, j] - y[s, j]), self._g(layer.delta[s, j])]
                else:
                    r = [layer.names[j], self._g(layer.net[s, j]), self._g(layer.out[s, j])]
                    if is_out and "target" in head:
                        r.append(self._g(self.target.reshape(layer.out.shape)[s, j]))
                    fp = layer.fprime[s, j] if layer.fprime is not None else float("nan")
                    r += [self._g(layer.dout[s, j]), self._g(fp), self._g(layer.delta[s, j])]
                if multi:
                    r.append(self._g(layer.delta[:, j].mean()))
                rows.append(r)
            out.append({"title": self._layer_title(layer), "rule": rule, "head": head, "rows": rows,
                        "notes": [more] if more else []})
        out.append(self._param_section(s))
        return out

    def _probabilities(self) -> tuple[np.ndarray, np.ndarray, str] | None:
        """(p, y, column title) for an output trained on logits with ce or bce_logits, where
        out is the logit and delta = (p - y) / batch; None otherwise (or when it does not fit)."""
        o, t = self.layers[-1], self.target
        if o.activation or t is None or self.loss_kind not in ("ce", "bce_logits"):
            return None
        try:
            if self.loss_kind == "ce":
                z = o.net - o.net.max(axis=1, keepdims=True)
                p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
                return p, np.eye(o.size)[np.asarray(t).reshape(-1).astype(int)], "p = softmax(net)"
            with np.errstate(over="ignore"):
                p = 1 / (1 + np.exp(-o.net))
            return p, np.asarray(t, dtype=float).reshape(p.shape), "p = sigmoid(net)"
        except (ValueError, IndexError):
            return None

    def _layer_title(self, layer: Layer) -> str:
        act = layer.activation or "no activation"
        return (f"{layer.name} (Linear {layer.weight.shape[1]} -> {layer.weight.shape[0]}, {act}; "
                f"{self._key_text(layer)})")

    MAX_ROWS = 64   # parameter rows shown per tensor; the arrays hold everything

    def _param_section(self, s: int) -> dict:
        multi = self.batch > 1
        prod = f"sample {s}: delta × input" if multi else "delta × input"
        head = ["parameter", "key[index]", "value", prod, "gradient dE/dparam"] + (["updated"] if self.updated else [])
        rows = []
        for key, g in self.grads.items():
            prefix, _, kind = key.rpartition(".")
            layer = next((l for l in self.layers if l.key == prefix), None)
            val = self.params[key]
            for count, idx in enumerate(np.ndindex(g.shape)):
                if count == self.MAX_ROWS:
                    rows.append([f"... {g.size - count} more", f"(tr.grads[{key!r}])", "", "", ""] +
                                ([""] if self.updated else []))
                    break
                if layer is not None and kind == "weight":
                    d, x = layer.delta[s, idx[0]], layer.input[s, idx[1]]
                    carried = f"{self._p(d)} × {self._p(x)} = {self._g(d * x)}"
                elif layer is not None and kind == "bias":
                    carried = f"{self._p(layer.delta[s, idx[0]])} × 1"
                else:
                    carried = ""
                row = [self.param_name(key, idx), f"{key}[{','.join(map(str, idx))}]", self._g(val[idx]), carried,
                       self._g(g[idx])]
                if self.updated:
                    row.append(self._g(self.updated[key][idx]))
                rows.append(row)
        title = "gradients: dE/dW[j,i] = delta_j × input_i" + (" summed over the batch" if multi else "")
        if self.updated:
            title += f"; updated = value - {self._g(self.lr)} × gradient"
        return {"title": title, "rule": "", "head": head, "rows": rows, "notes": []}

    def _header(self, sample: int | None = None) -> str:
        sizes = [self.layers[0].weight.shape[1]] + [l.size for l in self.layers]
        what = LOSSES.get(self.loss_kind, "E = the given loss")
        b = (f"batch of {self.batch}; the numbers are sample {self._sample(sample)}'s, beside the batch mean"
             if self.batch > 1 else "one sample")
        return (f"trace of a {'-'.join(map(str, sizes))} network ({len(self.layers)} Linear layer{'s' if len(self.layers) > 1 else ''}, {self.dtype}): "
                f"loss {self._g(self.loss)} ({what}); {b}")

    _INTRO = ("The backward pass: each neuron's error signal delta = dE/dnet, from the output back. "
              "Each layer's deltas come from the next layer's by one rule, at any depth.")

    def _intro(self) -> str:
        """The intro, with which delta the tables hold: of the batch's loss E, or per sample."""
        n, k = self.batch, self.per_sample_scale
        if n == 1:
            which = ("With one sample, the delta of the batch's loss E and of the sample's own loss are the same "
                     "number (the per-sample delta the report page shows).")
        elif k == n:
            which = (f"Here E is the batch's loss, the mean over its {n} samples, so every delta here is the batch-mean "
                     f"loss's: 1/{n} of the per-sample delta (of the sample's own loss) that the report page and "
                     f"the playground show, which is {n} × these.")
        elif k == 1:
            which = ("Here E is the sum of the samples' losses, so each sample's delta here is also its per-sample "
                     "delta (of its own loss), the one the report page shows.")
        else:
            which = (f"E is the loss as given; if it averages over the {n} samples, each delta here is 1/{n} of the "
                     "per-sample delta (of the sample's own loss).")
        return f"{self._INTRO} {which}"

    @_quiet
    def text(self, sample: int | None = None) -> str:
        """The trace as text for one sample (default `self.sample`)."""
        parts = [self._header(sample), self._intro()]
        for sec in self._sections(sample):
            rows, head = sec["rows"], sec["head"]
            widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]
            parts.append("")
            parts.append(sec["title"])
            if sec["rule"]:
                parts.append("  rule: " + sec["rule"])
            parts.append("  " + "  ".join(h.ljust(w) for h, w in zip(head, widths)).rstrip())
            parts.append("  " + "  ".join("-" * w for w in widths))
            parts.extend("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)
            parts.extend("  " + n for n in sec["notes"])
        parts.append("")
        parts.extend(self._depth_lines())
        return "\n".join(parts)

    def __str__(self) -> str:
        return self.text()

    def __repr__(self) -> str:
        sizes = [self.layers[0].weight.shape[1]] + [l.size for l in self.layers]
        return f"<Trace {'-'.join(map(str, sizes))}, batch {self.batch}, loss {self._g(self.loss)}>"

    @_quiet
    def to_markdown(self, sample: int | None = None) -> str:
        """Markdown: the rule and a table per layer (output first), the gradients, the depth summary."""
        parts = [f"**{self._header(sample)}**", "", self._intro()]
        for sec in self._sections(sample):
            head = sec["head"]
            parts += ["", f"**{sec['title']}**"]
            if sec["rule"]:
                parts += ["", f"rule: `{sec['rule']}`"]
            parts += ["", "| " + " | ".join(head) + " |",
                      "|" + "|".join("---" if i < 2 else "---:" for i in range(len(head))) + "|"]
            parts += ["| " + " | ".join(r) + " |" for r in sec["rows"]]
            parts += ["", *sec["notes"]] if sec["notes"] else []
        parts += ["", "\n".join("- " + s.strip() if s.startswith("  ") else s for s in self._depth_lines())]
        return "\n".join(parts) + "\n"

    @_quiet
    def to_html(self, sample: int | None = None) -> str:
        """HTML (escaped): the rule and a table per layer, the gradients, the depth summary."""
        e = html.escape
        parts = [f'<div class="deltaprop-trace"><p><b>{e(self._header(sample))}</b></p><p>{e(self._intro())}</p>']
        for sec in self._sections(sample):
            parts.append(f"<table><caption>{e(sec['title'])}"
                         + (f"<br><code>{e(sec['rule'])}</code>" if sec["rule"] else "")
                         + "</caption><thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in sec["head"])
                         + "</tr></thead><tbody>")
            for r in sec["rows"]:
                parts.append("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>")
            parts.append("</tbody></table>")
            parts += [f"<p>{e(n)}</p>" for n in sec["notes"]]
        parts.append(pre_html("\n".join(self._depth_lines()), "deltaprop-depth"))
        parts.append("</div>")
        return "\n".join(parts)

    def _repr_html_(self) -> str:
        return self.to_html()

    # -- one weight's derivative ------------------------------------------------------------------
    def chain(self, key: str, index: Any = (0, 0), sample: int | None = None):
        """dE/dparam by the delta rule, layer by layer from the output back, with the engine's
        numbers (a `Chain`; its `.paths()` is the same derivative as a sum over paths)."""
        from .chain import WeightChain

        prefix, _, kind = key.rpartition(".")
        layer = next((l for l in self.layers if l.key == prefix), None)
        if layer is None or kind not in ("weight", "bias"):
            keys = ", ".join(f"{l.key}.weight" for l in self.layers)
            raise KeyError(f"trace.chain: {key!r} is not a Linear layer's weight or bias; try one of {keys}")
        index = tuple(np.atleast_1d(np.asarray(index, dtype=int)).tolist())
        if kind == "weight":
            if len(index) != 2 or not (0 <= index[0] < layer.weight.shape[0] and 0 <= index[1] < layer.weight.shape[1]):
                raise IndexError(f"trace.chain: index {index} out of range for {key} of shape {layer.weight.shape}")
        else:
            if layer.bias is None or len(index) != 1 or not 0 <= index[0] < layer.size:
                raise IndexError(f"trace.chain: index {index} out of range for {key}")
        s = self._sample(sample)
        return WeightChain(self, key, layer, kind, index, s)

    def _delta_lines(self, layer: Layer, j: int, s: int) -> list[str]:
        """The deltas from the output back to neuron j of `layer`, one rule per layer."""
        lines = []
        g, p = self._g, self._p
        for l in reversed(self.layers[layer.index:]):
            only = [j] if l is layer else None
            is_out = l is self.layers[-1]
            lines.append(f"{l.name} ({l.activation or 'no activation'}): "
                         + (self._output_rule()[0] if is_out else self._hidden_rule(l)))
            shown, more = (only, "") if only else self._shown(l, s)
            nxt: Any = None if is_out else self.layers[l.index + 1]
            for k in shown:
                nm = l.names[k]
                if is_out:
                    lines.append(f"  delta_{nm} = dE/dout_{nm} × dout_{nm}/dnet_{nm} = {p(l.dout[s, k])} × "
                                 f"{p(l.fprime[s, k])} = {g(l.delta[s, k])}")
                    continue
                if nxt.size <= SHOW_NEURONS:
                    sym = " + ".join(f"{self._wname(nxt, m, k)} × delta_{nxt.names[m]}" for m in range(nxt.size))
                    num = " + ".join(f"{p(nxt.weight[m, k])} × {p(nxt.delta[s, m])}" for m in range(nxt.size))
                    terms = " + ".join(p(nxt.weight[m, k] * nxt.delta[s, m]) for m in range(nxt.size))
                    lines.append(f"  delta_{nm} = dout_{nm}/dnet_{nm} × dE/dout_{nm} = f'(net_{nm}) × ({sym})")
                    pad = " " * (len(nm) + 9)
                    lines.append(f"  {pad}= {p(l.fprime[s, k])} × ({num})")
                    if nxt.size > 1:
                        lines.append(f"  {pad}= {p(l.fprime[s, k])} × ({terms})")
                else:
                    lines.append(f"  delta_{nm} = f'(net_{nm}) × (sum over the {nxt.size} neurons k of the {nxt.name} "
                                 f"of w({nm}→k) × delta_k)")
                    pad = " " * (len(nm) + 9)
                lines.append(f"  {pad}= {p(l.fprime[s, k])} × {p(l.dout[s, k])} = {g(l.delta[s, k])}")
            if more:
                lines.append("  " + more)
        return lines


def _act_name(mods: list) -> str:
    return "+".join(type(m).__name__.lower() for m in mods)


def _children(model) -> list[tuple[str, Any]]:
    """The model as a flat chain of (state_dict prefix, module); nested Sequentials are opened."""
    from .. import nn

    if isinstance(model, nn.Linear):
        return [("", model)]
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"trace: model must be a dp.nn.Sequential of Linear layers and elementwise activations "
                        f"(or a single Linear), got {type(model).__name__}; its layers cannot be placed in a chain")
    out: list[tuple[str, Any]] = []
    stack = [("", iter(list(model.named_children())))]
    while stack:
        prefix, it = stack[-1]
        item = next(it, None)
        if item is None:
            stack.pop()
        elif isinstance(item[1], nn.Sequential):
            stack.append((f"{prefix}{item[0]}.", iter(list(item[1].named_children()))))
        else:
            out.append((f"{prefix}{item[0]}", item[1]))
    return out


def trace(model, x, target, loss: Callable | str = "sse", lr: float | None = None, sample: int = 0,
          history: Any = None, dataset: str | None = None) -> Trace:
    """Per-layer net, out and delta = dE/dnet and per-parameter gradients of loss(model(x), target).

    Computed by the engine; the model's weights and every `.grad` are left as they were.
    loss: a callable loss(out, target) -> scalar Tensor, or one of the names in LOSSES ("sse",
    "mse", "ce", "bce", "bce_logits"); the output layer's delta is written for the loss.
    A 1-D x counts as a batch of one; `updated` holds value - lr * grad (empty when lr is None);
    `sample` picks the sample whose numbers the text shows (the batch mean is shown beside it);
    `history`, the training losses that led to these weights (one per step, in order): with it
    `diagnosis` names a loss that rose or exploded as a learning rate too large, and one that
    settled high as a problem no line separates (no hidden layer; `dataset` names it) or a
    local minimum.
    Neurons are named as in `deltaprop.explain.names`: i1.. -> h1.. (h1.1.. with several hidden
    layers) -> o1.., numbered from 1.
    The model must be a chain of Linear layers and elementwise activations: any other module is
    refused with a ValueError naming it."""
    from .. import autograd, graph, nn
    from ..tensor import Tensor

    kind, loss_fn = _loss_kind(loss)
    children = _children(model)
    seen_linear = False
    for name, m in children:
        if isinstance(m, nn.Linear):
            seen_linear = True
        elif type(m).__name__ in ELEMENTWISE and seen_linear:
            continue
        elif isinstance(m, nn.Flatten) and not seen_linear:
            continue
        else:
            where = "before the first Linear layer" if not seen_linear else "after a Linear layer"
            raise ValueError(f"trace: module {name!r} ({type(m).__name__}) cannot be placed {where}: trace follows a "
                             "chain of Linear layers, each followed by elementwise activations (Sigmoid, Tanh, ReLU, "
                             "...); compute the loss on the logits instead of adding Softmax, and use "
                             "dp.explain.graph(loss) for other models")
    linear_pos = [i for i, (_, m) in enumerate(children) if isinstance(m, nn.Linear)]
    if not linear_pos:
        raise ValueError("trace: the model has no Linear layer")
    params = [(k, p) for k, p in model.named_parameters()]
    dtype = params[0][1].dtype if params else np.float64
    xa = np.array(x.data if isinstance(x, Tensor) else x, copy=True)
    if xa.dtype.kind not in "biuf":
        raise TypeError(f"trace: x must be numeric, got dtype {xa.dtype}")
    xt = Tensor(xa.astype(dtype), requires_grad=True)
    ta = target.data if isinstance(target, Tensor) else np.asarray(target)
    tt = Tensor(np.array(ta, dtype=dtype if ta.dtype.kind == "f" else ta.dtype, copy=True))

    def rows(a) -> np.ndarray:
        a = np.array(a, copy=True)
        return a.reshape(1, -1) if a.ndim <= 1 else a.reshape(-1, a.shape[-1])

    with autograd.enable_grad():
        h = xt
        records = []    # {key, module, input, net, [activation modules], out}
        for i, (name, m) in enumerate(children):
            before = h
            h = m(h)
            if i in linear_pos:
                records.append({"key": name, "module": m, "input": before, "net": h, "acts": [], "out": h})
            elif records:
                if tuple(h.shape) != tuple(records[-1]["out"].shape):
                    raise ValueError(f"trace: module {name!r} ({type(m).__name__}) changes the shape from "
                                     f"{tuple(records[-1]['out'].shape)} to {tuple(h.shape)}; only elementwise "
                                     "activations may follow a Linear layer")
                records[-1]["acts"].append(m)
                records[-1]["out"] = h
        E = loss_fn(h, tt)
        if not isinstance(E, Tensor):
            raise TypeError(f"trace: loss must return a deltaprop Tensor, got {type(E).__name__}")
        if E.size != 1:
            raise ValueError(f"trace: loss must return a scalar, got shape {E.shape}; sum or average it")
        if not E.requires_grad:
            raise ValueError("trace: the loss does not depend on the model's output")
    trainable = [(k, p) for k, p in params if p.requires_grad]
    probes = [r["net"] for r in records] + [r["out"] for r in records] + [p for _, p in trainable]
    gs = graph.grad([E], probes, [np.ones(E.shape, E.dtype)], retain_graph=True)
    L = len(records)

    def grad_of(t, g):
        return np.zeros(t.shape, t.dtype) if g is None else np.array(g.data if isinstance(g, Tensor) else g, copy=True)

    deltas = [grad_of(r["net"], g) for r, g in zip(records, gs[:L])]
    douts = [grad_of(r["out"], g) for r, g in zip(records, gs[L:2 * L])]
    grads = {k: grad_of(p, g) for (k, p), g in zip(trainable, gs[2 * L:])}

    sizes = [records[0]["module"].weight.shape[1]] + [r["module"].weight.shape[0] for r in records]
    textbook = (sizes == [2, 2, 2] and all(len(r["acts"]) == 1 and type(r["acts"][0]).__name__ == "Sigmoid"
                                             for r in records))
    layers: list[Layer] = []
    for li, (r, d, do) in enumerate(zip(records, deltas, douts)):
        m = r["module"]
        if not r["acts"]:
            fprime = np.ones_like(rows(d))
        else:
            # dout/dnet for an elementwise activation: the VJP of a cotangent of ones
            fp = graph.grad([r["out"]], [r["net"]], [np.ones(r["out"].shape, r["out"].dtype)], retain_graph=True)[0]
            fprime = rows(grad_of(r["net"], fp))
        names = [neuron_name(li + 1, j, sizes) for j in range(sizes[li + 1])]
        in_names = [neuron_name(li, i, sizes) for i in range(sizes[li])]
        layers.append(Layer(li, r["key"], _act_name(r["acts"]), rows(r["input"].data), rows(r["net"].data),
                            rows(r["out"].data), rows(d), rows(do), fprime, m.weight.data.copy(),
                            None if m.bias is None else m.bias.data.copy(), names, in_names,
                            layer_name(li + 1, sizes), layer_symbol(li + 1, sizes)))
    values = {k: p.data.copy() for k, p in params}
    updated = {} if lr is None else {k: values[k] - lr * g for k, g in grads.items()}
    weight_names = {}
    if textbook:
        k0, k1 = records[0]["key"], records[1]["key"]
        pre0 = f"{k0}." if k0 else ""
        pre1 = f"{k1}." if k1 else ""
        weight_names[pre0 + "weight"] = np.array([["w1", "w2"], ["w3", "w4"]], dtype=object)
        weight_names[pre1 + "weight"] = np.array([["w5", "w6"], ["w7", "w8"]], dtype=object)
        weight_names[pre0 + "bias"] = np.array(["b_h1", "b_h2"], dtype=object)
        weight_names[pre1 + "bias"] = np.array(["b_o1", "b_o2"], dtype=object)
    tgt = np.array(tt.data, copy=True)
    hist = None if history is None else [float(v) for v in np.asarray(history, dtype=float).reshape(-1)]
    tr = Trace(layers, grads, updated, float(np.asarray(E.data).reshape(())), lr, textbook, values, weight_names,
               kind, tgt, dtype, 0, hist)
    tr.dataset = dataset
    tr._sample(sample)
    tr.sample = int(sample) % tr.batch
    return tr
