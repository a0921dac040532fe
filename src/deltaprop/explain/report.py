"""The interactive HTML report: one self-contained page that replays training step by step.

``render_report(data) -> str`` returns the page; ``write_report(data, path)`` writes it
atomically. The page holds its JavaScript, CSS and SVG inline and fetches nothing. It stores
only the weights and batch gradients of each recorded step; every forward pass, delta and
the decision boundary are computed in the browser, in float64, from those weights.

The ``data`` dict
-----------------
Required keys (lists may be NumPy arrays or anything with ``__array__``/``tolist``):

``title``       str, shown as the page's heading.
``dataset``     str, the dataset's name (shown under the title).
``sizes``       list of int, the layer widths including the input, e.g. ``[2, 4, 4, 1]``.
``activation``  ``"tanh" | "sigmoid" | "relu" | "leaky_relu" | "gelu"``: every hidden layer's
                activation (leaky_relu with PyTorch's negative slope 0.01; relu'(0) = 0,
                leaky_relu'(0) = 0.01 as in PyTorch; gelu exact, x Phi(x), Phi to ~1e-12).
``output``      ``"sigmoid"``: one output unit, loss = binary cross-entropy;
                ``"softmax"``: ``sizes[-1] >= 2`` outputs, loss = cross-entropy;
                ``"mse"``: sigmoid outputs, loss = mean over the outputs of (out - t)^2;
                ``"sse"``: sigmoid outputs, loss = sum over the outputs of 1/2 (t - out)^2 (Mazur's).
``X``           (N, sizes[0]) inputs, one row per sample.
``y``           (N,) int labels: 0/1 for ``"sigmoid"``, 0..sizes[-1]-1 for ``"softmax"``.
``steps``       (S,) int, the training-step number of each recorded snapshot.
``loss``        (S,) float, the training loss at each recorded step (NaN/inf allowed).
``params``      S entries, one per recorded step; each a list with one dict per Linear layer
                ``l`` (``len(sizes) - 1`` of them)::

                    {"W": (sizes[l+1], sizes[l]),   # weight, PyTorch layout: y = x @ W.T + b
                     "b": (sizes[l+1],),
                     "gW": same shape as W,         # optional: the batch gradient dLoss/dW
                     "gb": same shape as b}         # optional: the batch gradient dLoss/db

                W and b are the values *at* that step, before its update; gW and gb the
                gradient of the batch loss used by that step's update.

``targets``     (N, sizes[-1]) float targets t: required for ``"mse"`` and ``"sse"`` (``y`` then
                only colours the points: 0..max(2, sizes[-1]) - 1).

Optional keys: ``description`` (str, one paragraph shown under the title), ``lr`` (float,
shown in the subtitle), ``note`` (str, shown at the top, e.g. that steps were thinned to
keep the file under its size budget), ``lesson`` (str, what the run teaches, from
`lessons.training_lesson`: shown at the top as ``#lesson``; `report_data` fills it in) and ``class_names`` (one str per class, the labels of a
user's file: shown in the legend and the sample list instead of "class 0", "class 1").

Numbers are embedded as JSON at full float64 precision (``repr``), so the page reproduces
NumPy float64 results to the last bit or so; non-finite numbers are embedded as the strings
``"NaN"``, ``"Infinity"``, ``"-Infinity"`` and turned back into numbers by the page.

What the page computes, for the shown step and the shown sample alone (a batch of one):
net = W @ a + b (summed over inputs in order, then plus b); hidden out = f(net); output
sigmoid(net) = 1 / (1 + exp(-net)) or softmax(net) = exp(net - max) / sum(exp(net - max));
output delta = out - y (sigmoid + BCE), p - onehot(y) (softmax + CE), 2 (out - t) / K * out (1 - out)
(MSE over K outputs) or (out - t) * out (1 - out) (SSE); hidden delta =
f'(net) * sum_k W[k, j] * delta_k with tanh' = 1 - out**2 and sigmoid' = out * (1 - out);
input "delta" = dLoss/dx_i = sum_k W[k, i] * delta_k.

Page contract (tests rely on it): the step slider is ``input#step`` (its value indexes
``steps``), the backward switch is the checkbox ``#backward``, the sample selector is the
``<select id="sample">`` (option values are row indices of X). Every neuron is one SVG
``<circle>`` carrying ``data-layer`` (0 = input layer, ``len(sizes) - 1`` = output),
``data-neuron`` (0-based), ``data-out``, ``data-delta`` and ``data-net``, formatted exactly
as Python's ``'%.9g' % value``; no other element carries ``data-layer``. Links are SVG
``<line>`` elements with ``data-link="l,j,i"``, ``data-w`` and ``data-grad`` (this sample's
delta_j * input_i). ``#details`` shows the clicked neuron's numbers and delta formula; the checkbox ``#logscale``
colours deltas on a log scale; input gradients are coloured on a scale of their own; the
depth view ``svg#depth`` draws mean |delta| per layer (``data-depth-layer`` on each ``polyline``,
over the first 256 samples, per sample) for every recorded step, ``#depth-note`` gives the
per-layer numbers at the shown step and, when they span more than 100x, a diagnosis;
``#plateau-hint`` says when the loss has stopped falling;
``window.deltapropReport.formatG(x, 9)`` is the page's %.9g; ``body[data-ready]`` is set
once drawn.
"""

from __future__ import annotations

import html
import json
import math
import os
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..io import _atomic_write

__all__ = ["render_report", "write_report", "thin_to_budget", "Report", "ACTIVATIONS", "OUTPUTS", "DEFAULT_BUDGET"]

ACTIVATIONS = ("tanh", "sigmoid", "relu", "leaky_relu", "gelu")
OUTPUTS = ("sigmoid", "softmax", "mse", "sse")
DEFAULT_BUDGET = 25_000_000   # bytes: write_report thins the recorded steps to stay under it

_LOSS_NAME = {"sigmoid": "binary cross-entropy", "softmax": "cross-entropy", "mse": "mean squared error",
              "sse": "1/2 sum of squares"}
_REQUIRED = ("title", "dataset", "sizes", "activation", "output", "X", "y", "steps", "loss", "params")


def _plain(value: Any) -> Any:
    """NumPy arrays, NumPy scalars, tensors and tuples -> plain Python lists and numbers; float
    arrays stay arrays (checked and converted in one go by _vector/_matrix: much faster)."""
    if isinstance(value, (str, bool, int, float)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict) or isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if hasattr(value, "__array__") and not hasattr(value, "tolist"):
        value = np.asarray(value)
    if isinstance(value, np.ndarray) and value.dtype.kind == "f" and value.ndim >= 1:
        return value
    if hasattr(value, "__array__") and hasattr(value, "data") and not isinstance(value, np.ndarray):
        value = np.asarray(value)   # (a deltaprop Tensor)
        if value.dtype.kind == "f" and value.ndim >= 1:
            return value
    if hasattr(value, "tolist"):
        return _plain(value.tolist())
    return value


def _number(v: Any, where: str) -> float | str:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"render_report: {where} must be a number, got {type(v).__name__}")
    f = float(v)
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "Infinity" if f > 0 else "-Infinity"
    return f


def _array_json(a: np.ndarray, where: str) -> list:
    """A float array as nested lists, non-finite values as the page's strings."""
    if np.isfinite(a).all():
        return a.astype(np.float64).tolist()
    flat = [_number(x, where) for x in a.astype(np.float64).ravel().tolist()]
    out = np.empty(len(flat), dtype=object)
    out[:] = flat
    return out.reshape(a.shape).tolist()


def _vector(v: Any, n: int, where: str) -> list:
    if isinstance(v, np.ndarray):
        if v.ndim != 1:
            raise ValueError(f"render_report: {where} has shape {v.shape}, expected ({n},)")
        if len(v) != n:
            raise ValueError(f"render_report: {where} has length {len(v)}, expected {n}")
        return _array_json(v, where)
    if not isinstance(v, list):
        raise ValueError(f"render_report: {where} must be a list of {n} numbers, got {type(v).__name__}")
    if len(v) != n:
        raise ValueError(f"render_report: {where} has length {len(v)}, expected {n}")
    return [_number(x, f"{where}[{i}]") for i, x in enumerate(v)]


def _matrix(v: Any, rows: int, cols: int, where: str) -> list:
    if isinstance(v, np.ndarray):
        if v.shape != (rows, cols):
            raise ValueError(f"render_report: {where} has shape {v.shape}, expected {(rows, cols)}")
        return _array_json(v, where)
    if not isinstance(v, list) or len(v) != rows or any(not isinstance(r, list) or len(r) != cols for r in v):
        shape = _shape(v)
        raise ValueError(f"render_report: {where} has shape {shape}, expected {(rows, cols)}")
    return [_vector(r, cols, f"{where}[{i}]") for i, r in enumerate(v)]


def _shape(v: Any) -> tuple:
    shape = []
    while isinstance(v, list):
        shape.append(len(v))
        v = v[0] if v else None
    return tuple(shape)


def _validate(data: Mapping[str, Any]) -> dict:
    """Check every key, shape and label; return the JSON-ready copy embedded in the page."""
    if not isinstance(data, Mapping):
        raise TypeError(f"render_report: data must be a dict, got {type(data).__name__}")
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise ValueError(f"render_report: data lacks {', '.join(missing)} (see the report module's docstring)")
    d = _plain(dict(data))

    sizes = d["sizes"]
    if (not isinstance(sizes, list) or len(sizes) < 2
            or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in sizes)):
        raise ValueError(f"render_report: sizes must be a list of at least 2 positive ints, got {sizes!r}")
    if d["activation"] not in ACTIVATIONS:
        raise ValueError(f"render_report: activation {d['activation']!r} is not one of {', '.join(ACTIVATIONS)}")
    if d["output"] not in OUTPUTS:
        raise ValueError(f"render_report: output {d['output']!r} is not one of {', '.join(OUTPUTS)}")
    if d["output"] == "sigmoid" and sizes[-1] != 1:
        raise ValueError(f"render_report: a sigmoid output has 1 unit, but sizes[-1] is {sizes[-1]}")
    if d["output"] == "softmax" and sizes[-1] < 2:
        raise ValueError(f"render_report: a softmax output needs at least 2 units, but sizes[-1] is {sizes[-1]}")

    X = d["X"]
    if not isinstance(X, (list, np.ndarray)) or not len(X):
        raise ValueError("render_report: X must hold at least one sample")
    n = len(X)
    X = _matrix(X, n, sizes[0], "X")
    y = d["y"]
    if not isinstance(y, list) or len(y) != n:
        raise ValueError(f"render_report: y has shape {_shape(y)}, expected ({n},) like X's rows")
    if d["output"] in ("mse", "sse") and sizes[-1] < 1:
        raise ValueError("render_report: sizes[-1] must be at least 1")
    targets = None
    if d["output"] in ("mse", "sse"):
        if d.get("targets") is None:
            raise ValueError(f"render_report: output {d['output']!r} needs 'targets' ({n}, {sizes[-1]}) floats")
        targets = _matrix(d["targets"], n, sizes[-1], "targets")
    classes = sizes[-1] if d["output"] == "softmax" else max(2, sizes[-1])
    labels = []
    for i, v in enumerate(y):
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < classes:
            raise ValueError(f"render_report: y[{i}] = {v!r} is not a class label in 0..{classes - 1}")
        labels.append(v)

    steps = d["steps"]
    if not isinstance(steps, list) or not steps:
        raise ValueError("render_report: steps must list at least one recorded step")
    s = len(steps)
    if any(isinstance(v, bool) or not isinstance(v, int) for v in steps):
        raise ValueError("render_report: steps must be ints")
    loss = _vector(d["loss"], s, "loss")
    params = d["params"]
    if not isinstance(params, list) or len(params) != s:
        raise ValueError(f"render_report: params has {len(params) if isinstance(params, list) else '?'} "
                         f"entries, expected one per recorded step ({s})")
    out_params = []
    for k, layers in enumerate(params):
        if not isinstance(layers, list) or len(layers) != len(sizes) - 1:
            raise ValueError(f"render_report: params[{k}] must list {len(sizes) - 1} Linear layers")
        step_layers = []
        for l, layer in enumerate(layers):
            where = f"params[{k}][{l}]"
            if not isinstance(layer, dict) or "W" not in layer or "b" not in layer:
                raise ValueError(f"render_report: {where} must be a dict with W and b (and gW, gb)")
            rows, cols = sizes[l + 1], sizes[l]
            entry = {"W": _matrix(layer["W"], rows, cols, f"{where}['W']"),
                     "b": _vector(layer["b"], rows, f"{where}['b']")}
            if layer.get("gW") is not None:
                entry["gW"] = _matrix(layer["gW"], rows, cols, f"{where}['gW']")
            if layer.get("gb") is not None:
                entry["gb"] = _vector(layer["gb"], rows, f"{where}['gb']")
            step_layers.append(entry)
        out_params.append(step_layers)

    page = {
        "title": str(d["title"]), "dataset": str(d["dataset"]), "sizes": sizes,
        "activation": d["activation"], "output": d["output"], "X": X, "y": labels,
        "steps": steps, "loss": loss, "params": out_params,
    }
    if targets is not None:
        page["targets"] = targets
    if d.get("description") is not None:
        page["description"] = str(d["description"])
    if d.get("note") is not None:
        page["note"] = str(d["note"])
    if d.get("lesson") is not None:
        page["lesson"] = str(d["lesson"])
        if d.get("lesson_kind") is not None:
            page["lesson_kind"] = str(d["lesson_kind"])
    if d.get("lr") is not None:
        page["lr"] = _number(d["lr"], "lr")
    names = d.get("class_names")
    if names is not None:
        if not isinstance(names, list) or len(names) != classes:
            raise ValueError(f"render_report: class_names must list {classes} names, one per class, got "
                             f"{len(names) if isinstance(names, list) else type(names).__name__}")
        page["class_names"] = [str(c) for c in names]
    return page


def _asset(name: str) -> str:
    try:
        return resources.files(__package__ or "deltaprop.explain").joinpath(name).read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError, TypeError):  # e.g. loaded outside the package
        return (Path(__file__).with_name(name)).read_text(encoding="utf-8")


def _script_json(obj: Any) -> str:
    """JSON that is safe inside <script>: no '<', '>' or '&' can end the element."""
    text = json.dumps(obj, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="deltaprop">
<title>{title}</title>
<style>
{css}
</style>
</head>
<body>
<header>
  <h1>{title}</h1>
  <p class="sub">{subtitle}</p>
  {description}
  <p class="explain"><b>Forward view:</b> colour = the neuron's output for the shown sample
  (<span class="neg-text">blue</span> negative, white 0, <span class="pos-text">orange</span> positive);
  each link's colour is its weight's sign and its width |weight|.
  <b>Backward view:</b> colour = delta = &part;Loss/&part;net, the error propagated back, for the
  shown sample's own loss (the per-sample delta; <code>dp.explain.trace</code> prints the delta of
  the batch's mean loss, this divided by the batch size):
  each output's delta comes from the loss (out &minus; y for a sigmoid or softmax output with
  cross-entropy), and each hidden delta is f&prime;(net) times the sum of the next layer's
  deltas, weighted by the links they came through: delta_l = f&prime;(net_l) &times;
  (W_{{l+1}}<sup>T</sup> delta_{{l+1}}), the same rule at every depth. The <b>depth view</b> shows
  mean |delta| per layer over training: where the error signal fades (vanishing gradients)
  or grows. A link then
  shows its gradient for this sample, delta &times; the input it carries.</p>
  <p class="explain">Drag the <b>step</b> slider to replay training, pick a <b>sample</b>
  (or click a point in the decision-boundary plot), and <b>click a neuron</b> for its numbers
  and the formula of its delta.</p>
</header>
<section class="controls" aria-label="controls">
  <label for="step">Step <input type="range" id="step" min="0" max="{last}" value="{last}" step="1"></label>
  <span id="step-label"></span>
  <button id="play" type="button">&#9654; Play</button>
  <label for="sample">Sample <select id="sample"></select></label>
  <label for="backward"><input type="checkbox" id="backward"> Backward view (deltas)</label>
  <label for="logscale"><input type="checkbox" id="logscale"> Log colour scale for &delta;</label>
</section>
{note}{lesson}<p class="hint" id="plateau-hint" hidden></p>
<div class="layout">
  <section class="card">
    <h2 id="net-heading">Network</h2>
    <svg id="net" role="img" aria-label="the network"></svg>
    <div id="legend"></div>
  </section>
  <div class="side">
    <section class="card" id="boundary-card">
      <h2>Decision boundary at this step</h2>
      <canvas id="boundary" width="330" height="330" aria-label="decision boundary"></canvas>
      <div id="boundary-legend"></div>
      <p class="note">Background: the class the network predicts (paler = less sure); dark line:
      the boundary; dots: the data; ringed: the shown sample.</p>
    </section>
    <section class="card" id="depth-card">
      <h2>Depth view: the error signal, layer by layer</h2>
      <svg id="depth" role="img" aria-label="mean absolute delta per layer over the training steps"></svg>
      <div id="depth-legend"></div>
      <p class="note" id="depth-note"></p>
    </section>
    <section class="card">
      <h2>Training loss</h2>
      <svg id="loss" role="img" aria-label="loss curve"></svg>
      <p class="note" id="loss-value"></p>
    </section>
  </div>
</div>
<section class="card" id="details" aria-live="polite"></section>
<footer>Made by deltaprop. Every number on this page is computed here from the recorded
weights in float64 and printed with 9 significant digits.</footer>
<script type="application/json" id="deltaprop-data">{data}</script>
<script>
{js}
</script>
</body>
</html>
"""


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def render_report(data: Mapping[str, Any]) -> str:
    """Return the self-contained interactive HTML page for ``data`` (schema: module docstring)."""
    page = _validate(data)
    css = _asset("report.css")
    js = _asset("report.js")
    if "</style" in css.lower() or "</script" in js.lower():
        raise RuntimeError("report assets must not contain a closing </style> or </script> tag")
    sizes = "-".join(str(s) for s in page["sizes"])
    n_steps = len(page["steps"])
    subtitle = (f"dataset: {page['dataset']} · network {sizes}, {page['activation']} hidden layers, "
                f"{page['output']} output ({_LOSS_NAME[page['output']]} loss) · "
                f"{_plural(len(page['X']), 'sample')} · {_plural(n_steps, 'recorded step')} "
                f"({page['steps'][0]}–{page['steps'][-1]})")
    if "lr" in page:
        subtitle += f" · learning rate {page['lr']}"
    description = (f'<p class="explain">{html.escape(page["description"])}</p>'
                   if "description" in page else "")
    note = f'<p class="note" id="budget-note">{html.escape(page["note"])}</p>' if "note" in page else ""
    lesson = (f'<p class="hint diagnosis" id="lesson">{html.escape(page["lesson"])}</p>' if "lesson" in page else "")
    title = html.escape(page["title"])
    return _TEMPLATE.format(
        title=title, subtitle=html.escape(subtitle), description=description,
        last=n_steps - 1, css=css, js=js, data=_script_json(page), note=note, lesson=lesson,
    )


class Report:
    """A rendered report that a notebook shows inline (in a sandboxed iframe, scripts running).

    Report(data) for a `report_data`-style dict, or Report.from_run(dataset=..., hidden=...,
    steps=..., loss=...) to train and record first; `.html` is the page, `.save(path)` writes it.
    The data is thinned to `max_bytes` like write_report's."""

    def __init__(self, data: Mapping[str, Any], max_bytes: int | None = DEFAULT_BUDGET, height: int = 900):
        self.data, self.note, self.html = _fit(data, max_bytes)
        self.height = height

    @classmethod
    def from_run(cls, max_bytes: int | None = DEFAULT_BUDGET, **kwargs: Any) -> "Report":
        """Train and record with record.report_data(**kwargs), then render."""
        from .record import report_data

        return cls(report_data(**kwargs), max_bytes=max_bytes)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the page to path atomically."""
        target = Path(path)
        _atomic_write(target, self.html.encode("utf-8"))
        return target

    def __repr__(self) -> str:
        d = self.data
        return (f"<Report {d['dataset']}: network {'-'.join(map(str, d['sizes']))}, {len(d['steps'])} recorded steps, "
                f"{len(self.html) / 1e6:.2f} MB>")

    def _repr_html_(self) -> str:
        return (f'<iframe srcdoc="{html.escape(self.html, quote=True)}" style="width:100%;height:{int(self.height)}px;'
                'border:1px solid #ddd" sandbox="allow-scripts"></iframe>')


def thin_to_budget(data: Mapping[str, Any], max_bytes: int | None = DEFAULT_BUDGET) -> tuple[dict, str | None]:
    """(data, note): data with every k-th recorded step kept (always the first and the last) so
    that the page fits in max_bytes, and a sentence saying so (None when nothing was thinned).
    The note is also stored in the data, so the page states it."""
    d, note, _ = _fit(data, max_bytes)
    return d, note


def _fit(data: Mapping[str, Any], max_bytes: int | None) -> tuple[dict, str | None, str]:
    """thin_to_budget, and the rendered page of the data it returns."""
    d = dict(data)
    S = len(d["steps"])
    if max_bytes is None or S <= 2:
        return d, None, render_report(d)

    def pick(idx: list[int]) -> dict:
        out = dict(d)
        for key in ("steps", "loss", "params"):
            seq = d[key]
            out[key] = [seq[i] for i in idx]
        return out

    # estimate from two small pages: the bytes of the fixed part and of one recorded step
    one, two = len(render_report(pick([0])).encode()), len(render_report(pick([0, S - 1])).encode())
    per_step, base = max(1, two - one), one - max(1, two - one)
    if base + per_step * S <= max_bytes:
        text = render_report(d)
        if len(text.encode()) <= max_bytes:
            return d, None, text
    keep = max(2, int((max_bytes * 0.97 - base) // per_step))
    if base + 2 * per_step > max_bytes:
        raise ValueError(f"write_report: even two recorded steps need {base + 2 * per_step} bytes, over the budget "
                         f"of {max_bytes}; raise the budget or use a smaller network")
    while True:
        k = -(-(S - 1) // (keep - 1))   # ceil: every k-th step, then the last
        idx = sorted(set(range(0, S, k)) | {S - 1})
        out = pick(idx)
        first = d.get("note")
        note = (f"To keep this file under its size budget of {max_bytes / 1e6:g} MB, {len(idx)} of the {S} recorded "
                f"steps are kept (every {k}th, and the last)." + (f" {first}" if first else ""))
        out["note"] = note
        text = render_report(out)
        if len(text.encode()) <= max_bytes or keep <= 2:
            return out, note, text
        keep = max(2, int(keep * 0.9))


def write_report(data: Mapping[str, Any], path: str | os.PathLike, max_bytes: int | None = DEFAULT_BUDGET) -> Path:
    """Render the report and write it to ``path`` atomically (temp file + os.replace), thinned
    to stay under ``max_bytes`` (default 25 MB; None for no limit; see thin_to_budget)."""
    _, _, text = _fit(data, max_bytes)
    target = Path(path)
    _atomic_write(target, text.encode("utf-8"))
    return target
