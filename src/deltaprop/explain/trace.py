"""trace(): the error signal of every neuron, computed by the engine, in textbook notation.

For a Sequential of Linear layers and elementwise activations, layer l computes
net_l = out_{l-1} @ W_l.T + b_l and out_l = f(net_l). Back-propagation of errors is the
recursion for delta_l = dE/dnet_l:

    delta_L = dE/dout_L * f'(net_L)                      (output layer)
    delta_l = f'(net_l) * (delta_{l+1} @ W_{l+1})        (hidden layers)
    dE/dW_l = delta_l.T @ out_{l-1},   dE/db_l = sum over the batch of delta_l

`trace` does not implement that recursion: it runs the model forward and asks the engine's
reverse pass for dE/dnet, dE/dout and dE/dparam (autograd.run_backward with `inputs=`, which
returns those gradients without touching any `.grad`). The tests then check the identities.
"""
from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

__all__ = ["Layer", "Trace", "trace"]

ELEMENTWISE = {"Sigmoid", "Tanh", "ReLU", "LeakyReLU", "GELU", "Softplus", "Identity", "ELU", "SiLU",
               "Hardtanh", "ReLU6", "Mish", "Softsign", "Tanhshrink"}


def _g(v: Any) -> str:
    return "%.9g" % float(v)


def _p(v: Any) -> str:
    s = _g(v)
    return f"({s})" if s.startswith("-") else s


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
    fprime: np.ndarray | None  # (batch, out): dout/dnet (elementwise activations), None otherwise
    weight: np.ndarray         # (out, in) copy
    bias: np.ndarray | None    # (out,) copy
    names: list = field(default_factory=list)      # neuron names, e.g. ["h1", "h2"] or ["0_0", ...]
    in_names: list = field(default_factory=list)   # names of the inputs, e.g. ["i1", "i2"]

    @property
    def size(self) -> int:
        return self.net.shape[1]


class Trace:
    """The result of `trace`: `layers`, `grads`, `updated`, `loss`; printable as tables."""

    def __init__(self, layers: list[Layer], grads: dict, updated: dict, loss: float, lr: float | None,
                 textbook: bool, params: dict, weight_names: dict):
        self.layers = layers
        self.grads = grads
        self.updated = updated
        self.loss = loss
        self.lr = lr
        self.textbook = textbook
        self.params = params              # {key: value copy}
        self._weight_names = weight_names  # {key: ndarray of names} for the textbook example

    @property
    def output(self) -> np.ndarray:
        return self.layers[-1].out.copy()

    @property
    def batch(self) -> int:
        return self.layers[0].net.shape[0]

    # -- names ------------------------------------------------------------------------------
    def param_name(self, key: str, index: tuple) -> str:
        """w5 in the textbook example; W_2[0,1] / b_2[0] otherwise."""
        if key in self._weight_names:
            return str(self._weight_names[key][index])
        prefix, _, kind = key.rpartition(".")
        letter = "W" if kind == "weight" else "b" if kind == "bias" else kind
        return f"{letter}_{prefix}[{','.join(str(i) for i in index)}]" if prefix else f"{letter}[{','.join(map(str, index))}]"

    # -- the chain rule for one parameter ---------------------------------------------------------
    def chain(self, key: str, index: Any = (0, 0)) -> str:
        """dE/dparam as the product of local derivatives, with the engine's numbers.

        Output layer: dE/dw_ji = dE/dout_j x dout_j/dnet_j x dnet_j/dw_ji. Hidden layer: the same,
        with dE/dout_j = the sum over every path from neuron j to the outputs."""
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
        j = index[0]
        wname = self.param_name(key, index)
        E = "E"
        lines: list[str] = []
        total = 0.0
        shown = min(self.batch, 4)
        for n in range(self.batch):
            if self.batch > 1 and n < shown:
                lines.append(f"sample {n}:")
            pad = "  " if self.batch > 1 else ""
            local = layer.input[n, index[1]] if kind == "weight" else 1.0
            local_txt = f"dnet_{layer.names[j]}/d{wname}"
            contrib = layer.delta[n, j] * local
            total += contrib
            if n >= shown:
                continue
            if layer.fprime is None:
                lines.append(f"{pad}d{E}/d{wname} = d{E}/dnet_{layer.names[j]} x {local_txt} = "
                             f"{_p(layer.delta[n, j])} x {_p(local)} = {_g(contrib)}")
                continue
            if layer is not self.layers[-1]:
                lines.extend(pad + s for s in self._paths_text(layer, j, n))
            lines.append(f"{pad}d{E}/d{wname} = d{E}/dout_{layer.names[j]} x dout_{layer.names[j]}/dnet_{layer.names[j]}"
                         f" x {local_txt}")
            lines.append(f"{pad}{' ' * (len(E) + len(wname) + 4)}= {_p(layer.dout[n, j])} x "
                         f"{_p(layer.fprime[n, j])} x {_p(local)} = {_g(contrib)}")
        if self.batch > 1:
            if self.batch > shown:
                lines.append(f"... and {self.batch - shown} more samples")
            lines.append(f"d{E}/d{wname} = sum over the batch of {self.batch} = {_g(total)}")
        engine = self.grads.get(key)
        if engine is not None:
            lines.append(f"engine: d{E}/d{wname} = {_g(engine[index])}" +
                         (f"; updated {wname} = {_g(self.params[key][index])} - {_g(self.lr)} x {_g(engine[index])} = "
                          f"{_g(self.updated[key][index])}" if key in self.updated else ""))
        return "\n".join(lines)

    def _paths_text(self, layer: Layer, j: int, n: int, limit: int = 16) -> list[str]:
        """dE/dout_j written as the sum over the paths from neuron j to the outputs."""
        li = layer.index
        later = self.layers[li + 1:]
        n_paths = int(np.prod([l.size for l in later]))
        src = layer.names[j]
        if n_paths > limit or any(l.fprime is None for l in later):
            nxt = later[0]
            terms = [f"dE/dnet_{nxt.names[k]} x dnet_{nxt.names[k]}/dout_{src}" for k in range(nxt.size)]
            nums = [f"{_p(nxt.delta[n, k])} x {_p(nxt.weight[k, j])}" for k in range(nxt.size)]
            return [f"dE/dout_{src} = {' + '.join(terms)}",
                    f"{' ' * (len(src) + 9)}= {' + '.join(nums)} = {_g(layer.dout[n, j])}",
                    f"(each dE/dnet of the next layer already sums every path beyond it: {n_paths} paths in all)"]
        lines = [f"dE/dout_{src} = sum over the {n_paths} path(s) from {src} to the outputs:"]
        paths: list[list[int]] = [[]]
        for l in later:
            paths = [p + [k] for p in paths for k in range(l.size)]
        values = []
        for p in paths:
            names, nums, prod = [], [], 1.0
            prev, prev_name = j, src
            chain_terms = []
            for l, k in zip(later, p):
                chain_terms.append((f"dnet_{l.names[k]}/dout_{prev_name}", l.weight[k, prev]))
                chain_terms.append((f"dout_{l.names[k]}/dnet_{l.names[k]}", l.fprime[n, k]))
                prev, prev_name = k, l.names[k]
            last = later[-1]
            chain_terms.append((f"dE/dout_{last.names[p[-1]]}", last.dout[n, p[-1]]))
            chain_terms.reverse()
            for nm, v in chain_terms:
                names.append(nm)
                nums.append(_p(v))
                prod *= float(v)
            values.append(prod)
            via = " -> ".join(later[i].names[k] for i, k in enumerate(p))
            lines.append(f"  via {via}: {' x '.join(names)}")
            lines.append(f"  {' ' * (len(via) + 6)}= {' x '.join(nums)} = {_g(prod)}")
        lines.append(f"  dE/dout_{src} = {' + '.join(_p(v) for v in values)} = {_g(layer.dout[n, j])}")
        return lines

    # -- tables -----------------------------------------------------------------------------------
    def _layer_title(self, layer: Layer) -> str:
        kind = "output layer" if layer is self.layers[-1] else "hidden layer"
        act = layer.activation or "no activation"
        return (f"{kind} {layer.key} (Linear {layer.weight.shape[1]} -> {layer.weight.shape[0]}, {act})")

    MAX_ROWS = 64   # rows shown per table; the arrays hold everything

    def _layer_rows(self, layer: Layer) -> tuple[list[str], list[list[str]]]:
        multi = self.batch > 1
        head = (["sample"] if multi else []) + ["neuron", "net", "out", "delta = dE/dnet"]
        rows = []
        total = self.batch * layer.size
        for n in range(self.batch):
            for j in range(layer.size):
                if len(rows) == self.MAX_ROWS:
                    rows.append(([""] if multi else []) + [f"... {total - self.MAX_ROWS} more", "", "",
                                                          f"(tr.layers[{layer.index}].delta)"])
                    return head, rows
                rows.append(([str(n)] if multi else []) +
                            [layer.names[j], _g(layer.net[n, j]), _g(layer.out[n, j]), _g(layer.delta[n, j])])
        return head, rows

    def _param_rows(self) -> tuple[list[str], list[list[str]]]:
        head = ["parameter", "key[index]", "value", "gradient dE/dparam"] + (["updated"] if self.updated else [])
        rows = []
        for key, g in self.grads.items():
            val = self.params[key]
            for count, idx in enumerate(np.ndindex(g.shape)):
                if count == self.MAX_ROWS:
                    rows.append([f"... {g.size - count} more", f"(tr.grads[{key!r}])", "", ""] +
                                ([""] if self.updated else []))
                    break
                row = [self.param_name(key, idx), f"{key}[{','.join(map(str, idx))}]", _g(val[idx]), _g(g[idx])]
                if self.updated:
                    row.append(_g(self.updated[key][idx]))
                rows.append(row)
        return head, rows

    def _tables(self) -> list[tuple[str, list[str], list[list[str]]]]:
        out = [(self._layer_title(l), *self._layer_rows(l)) for l in self.layers]
        title = "parameters" + (f" (updated = value - {_g(self.lr)} x gradient)" if self.updated else "")
        out.append((title, *self._param_rows()))
        return out

    def _header(self) -> str:
        b = f", batch of {self.batch}" if self.batch > 1 else ""
        return f"trace of {len(self.layers)} Linear layer(s){b}: loss E = {_g(self.loss)}"

    def __str__(self) -> str:
        parts = [self._header()]
        for title, head, rows in self._tables():
            widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]
            parts.append("")
            parts.append(title)
            parts.append("  ".join(h.ljust(w) for h, w in zip(head, widths)).rstrip())
            parts.append("  ".join("-" * w for w in widths))
            parts.extend("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)
        return "\n".join(parts)

    def __repr__(self) -> str:
        sizes = [self.layers[0].weight.shape[1]] + [l.size for l in self.layers]
        return f"<Trace {'-'.join(map(str, sizes))}, batch {self.batch}, loss {_g(self.loss)}>"

    def to_markdown(self) -> str:
        """Markdown: a heading and a table per layer and one for the parameters."""
        parts = [f"**{self._header()}**"]
        for title, head, rows in self._tables():
            parts += ["", f"**{title}**", "", "| " + " | ".join(head) + " |",
                      "|" + "|".join("---" if i < 2 else "---:" for i in range(len(head))) + "|"]
            parts += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(parts) + "\n"

    def to_html(self) -> str:
        """HTML tables (escaped), one per layer and one for the parameters."""
        e = html.escape
        parts = [f'<div class="deltaprop-trace"><p><b>{e(self._header())}</b></p>']
        for title, head, rows in self._tables():
            parts.append(f"<table><caption>{e(title)}</caption><thead><tr>"
                         + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr></thead><tbody>")
            for r in rows:
                parts.append("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>")
            parts.append("</tbody></table>")
        parts.append("</div>")
        return "\n".join(parts)

    def _repr_html_(self) -> str:
        return self.to_html()


def _act_name(mods: list) -> str:
    return "+".join(type(m).__name__.lower() for m in mods)


def _children(model) -> list[tuple[str, Any]]:
    from .. import nn

    if isinstance(model, nn.Linear):
        return [("", model)]
    if isinstance(model, nn.Sequential):
        return list(model.named_children())
    raise TypeError(f"trace: model must be a dp.nn.Sequential of Linear layers and elementwise activations "
                    f"(or a single Linear), got {type(model).__name__}")


def trace(model, x, target, loss: Callable, lr: float | None = None) -> Trace:
    """Per-layer net, out and delta = dE/dnet and per-parameter gradients of loss(model(x), target).

    Computed by the engine; the model's weights and every `.grad` are left as they were.
    A 1-D x counts as a batch of one; `updated` holds value - lr * grad (empty when lr is None)."""
    from .. import autograd, nn
    from ..tensor import Tensor

    children = _children(model)
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
        records = []    # (child index of Linear, name, module, input tensor, net tensor, [activation modules], out tensor)
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
        E = loss(h, tt)
        if not isinstance(E, Tensor):
            raise TypeError(f"trace: loss must return a deltaprop Tensor, got {type(E).__name__}")
        if E.size != 1:
            raise ValueError(f"trace: loss must return a scalar, got shape {E.shape}; sum or average it")
        if not E.requires_grad:
            raise ValueError("trace: the loss does not depend on the model's output")
    trainable = [(k, p) for k, p in params if p.requires_grad]
    probes = [r["net"] for r in records] + [r["out"] for r in records] + [p for _, p in trainable]
    gs = autograd.run_backward([E], [np.ones(E.shape, E.dtype)], retain_graph=True, inputs=probes)
    L = len(records)

    def grad_of(t, g):
        return np.zeros(t.shape, t.dtype) if g is None else np.array(g.data if isinstance(g, Tensor) else g, copy=True)

    deltas = [grad_of(r["net"], g) for r, g in zip(records, gs[:L])]
    douts = [grad_of(r["out"], g) for r, g in zip(records, gs[L:2 * L])]
    grads = {k: grad_of(p, g) for (k, p), g in zip(trainable, gs[2 * L:])}

    sizes = [records[0]["module"].weight.shape[1]] + [r["module"].weight.shape[0] for r in records]
    textbook = (sizes == [2, 2, 2] and all(len(r["acts"]) == 1 and type(r["acts"][0]).__name__ == "Sigmoid"
                                             for r in records))
    layers = []
    for li, (r, d, do) in enumerate(zip(records, deltas, douts)):
        m = r["module"]
        fprime = None
        if not r["acts"]:
            fprime = np.ones_like(rows(d))
        elif all(type(a).__name__ in ELEMENTWISE for a in r["acts"]):
            # dout/dnet for an elementwise activation: the VJP of a cotangent of ones
            fp = autograd.run_backward([r["out"]], [np.ones(r["out"].shape, r["out"].dtype)], retain_graph=True,
                                       inputs=[r["net"]])[0]
            fprime = rows(grad_of(r["net"], fp))
        n_out = m.weight.shape[0]
        if textbook:
            names = ["h1", "h2"] if li == 0 else ["o1", "o2"]
            in_names = ["i1", "i2"] if li == 0 else ["h1", "h2"]
        else:
            tag = r["key"] or str(li)
            names = [f"{tag}_{j}" for j in range(n_out)]
            in_names = ([f"x_{i}" for i in range(m.weight.shape[1])] if li == 0 else layers[-1].names)
        layers.append(Layer(li, r["key"], _act_name(r["acts"]), rows(r["input"].data), rows(r["net"].data),
                            rows(r["out"].data), rows(d), rows(do), fprime, m.weight.data.copy(),
                            None if m.bias is None else m.bias.data.copy(), names, in_names))
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
    return Trace(layers, grads, updated, float(np.asarray(E.data).reshape(())), lr, textbook, values, weight_names)
