"""The chain rule written out: every node between a scalar x and a scalar y.

`chain(y, x)` walks the recorded graph of y, keeps the nodes that depend on x, and lists for
each its op, value, local derivative d(node)/d(input) (the op's own VJP evaluated with a
cotangent of 1) and its adjoint dy/d(node) -- "the error arriving at that node", computed by
the engine's reverse pass. dy/dx is then the sum over every path x -> y of the product of the
local derivatives along it:  dy/dx = sum_paths prod_edges d(child)/d(parent).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

__all__ = ["Chain", "ChainNode", "ChainPath", "chain"]

MAX_PATHS = 64


def _p(v: Any) -> str:
    """%.9g, parenthesised when negative (for products and sums)."""
    s = _g(v)
    return f"({s})" if s.startswith("-") else s


def _pf(f: str) -> str:
    """A formula as a factor: parenthesised when it has a top-level space or a leading minus."""
    return f"({f})" if (" " in f or f.startswith("-")) else f


def _g(v: Any) -> str:
    """%.9g for a scalar; a short array text otherwise."""
    a = np.asarray(v)
    if a.size == 1:
        return "%.9g" % float(a.reshape(()))
    return np.array2string(a, precision=6, separator=", ", threshold=8)


@dataclass
class ChainNode:
    """One node on a path x -> y: y's op applied to named inputs, with values and derivatives."""

    name: str
    op: str                      # op name, or "input" for x
    expr: str                    # e.g. "sin(v1)"
    value: np.ndarray
    adjoint: np.ndarray          # dy/d(this node)
    locals: list = field(default_factory=list)   # [(input name, formula, value or None)] for inputs on a path
    consumers: list = field(default_factory=list)  # [(consumer name, local value or None)]


@dataclass
class ChainPath:
    """One path x -> ... -> y: the node names and the local derivative of each edge."""

    names: list
    formulas: list
    factors: list
    product: float


class Chain:
    """The chain rule for dy/dx with numbers; `str()` writes it out."""

    def __init__(self, x_name: str, y_name: str, nodes: list, paths: list | None, n_paths: int,
                 engine: np.ndarray, at: Mapping[str, Any], constants: list, expression: str = ""):
        self.x_name, self.y_name = x_name, y_name
        self.expression = expression or (nodes[-1].expr if nodes else "?")
        self.nodes: list[ChainNode] = nodes
        self.paths: list[ChainPath] | None = paths
        self.n_paths = n_paths
        self.engine = engine
        self.at = dict(at)
        self.constants = constants

    @property
    def derivative(self) -> float:
        """dy/dx as the sum over paths of the products of local derivatives (the adjoint at x
        when there are too many paths to list)."""
        if self.paths is not None and all(p.product is not None for p in self.paths):
            return float(sum(p.product for p in self.paths))
        return float(np.sum(self.engine))

    def __repr__(self) -> str:
        return f"<Chain d{self.y_name}/d{self.x_name} = {_g(self.derivative)} over {self.n_paths} path(s)>"

    def __str__(self) -> str:
        x, y = self.x_name, self.y_name
        w = max([len(n.name) for n in self.nodes] + [1])
        where = ", ".join(f"{k} = {_g(v)}" for k, v in self.at.items())
        root = self.nodes[-1] if self.nodes else None
        if not self.nodes:
            return (f"{y} does not depend on {x} (no path from {x} to {y}), so d{y}/d{x} = 0\n"
                    f"engine (reverse-mode backward): d{y}/d{x} = {_g(self.engine)}")
        lines = [f"{y} = {self.expression} at {where}", ""]
        lines.append("forward pass: each node's value, and its local derivative with respect to its inputs")
        for n in self.nodes:
            head = f"  {n.name.ljust(w)} = " + (f"{_g(n.value)}" if n.op == "input" else f"{n.expr} = {_g(n.value)}")
            lines.append(head)
            for inp, formula, val in n.locals:
                d = f"d{n.name}/d{inp}"
                if val is None:
                    lines.append(f"  {' ' * w}   {d} = {formula} (not a scalar: see the adjoints)")
                elif formula in (None, "", _g(val)):
                    lines.append(f"  {' ' * w}   {d} = {_g(val)}")
                else:
                    lines.append(f"  {' ' * w}   {d} = {formula} = {_g(val)}")
        for name, text, val in self.constants:
            lines.append(f"  {name.ljust(w)} = {text} = {_g(val)} (does not depend on {x}: held constant)")
        lines.append("")
        lines.append(f"backward pass: the adjoint d{y}/d(node), the error arriving at each node (seed d{y}/d{y} = 1)")
        for n in reversed(self.nodes):
            if n is root:
                lines.append(f"  d{y}/d{n.name} = 1")
                continue
            terms = [f"d{y}/d{c} x d{c}/d{n.name}" for c, _ in n.consumers]
            nums = [f"{_p(self._adj(c))} x {_p(v)}" if v is not None else f"(vector-Jacobian product from {c})"
                    for c, v in n.consumers]
            lines.append(f"  d{y}/d{n.name} = {' + '.join(terms)}")
            lines.append(f"  {' ' * (len(y) + len(n.name) + 2)}  = {' + '.join(nums)} = {_g(n.adjoint)}")
        lines.append("")
        if self.paths is None:
            lines.append(f"chain rule: {self.n_paths} paths from {x} to {y}, too many to list; their sum is the "
                         f"adjoint at {x}")
        elif not self.paths:
            lines.append(f"chain rule: no path from {x} to {y}: {y} does not depend on {x}")
        else:
            lines.append(f"chain rule: d{y}/d{x} = sum over the {len(self.paths)} path(s) from {x} to {y} of the "
                         "product of local derivatives")
            for i, p in enumerate(self.paths):
                edges = [f"d{p.names[k]}/d{p.names[k + 1]}" for k in range(len(p.names) - 1)]
                lines.append(f"  path {i + 1}: {' -> '.join(reversed(p.names))}")
                lines.append(f"    {' x '.join(edges)}")
                if any(f for f in p.formulas):
                    lines.append(f"    = {' x '.join(_pf(f) if f else _p(v) for f, v in zip(p.formulas, p.factors))}")
                if p.product is not None:
                    lines.append(f"    = {' x '.join(_p(v) for v in p.factors)} = {_g(p.product)}")
            if len(self.paths) > 1 and all(p.product is not None for p in self.paths):
                lines.append(f"  d{y}/d{x} = {' + '.join(_p(p.product) for p in self.paths)} = {_g(self.derivative)}")
            else:
                lines.append(f"  d{y}/d{x} = {_g(self.derivative)}")
        lines.append(f"engine (reverse-mode backward): d{y}/d{x} = {_g(self.engine)}")
        return "\n".join(lines)

    def _adj(self, name: str):
        for n in self.nodes:
            if n.name == name:
                return n.adjoint
        return np.nan

_INFIX = {"add": ("+", 1), "sub": ("-", 1), "mul": ("*", 2), "div": ("/", 2), "pow": ("**", 4)}
_ATOM = 9


def _expr(op: str, args: list[tuple[str, int]]) -> tuple[str, int]:
    """(text, precedence) of op applied to args given as (text, precedence)."""
    def wrap(a: tuple[str, int], p: int) -> str:
        return a[0] if a[1] >= p else f"({a[0]})"
    if op in _INFIX and len(args) == 2:
        sym, p = _INFIX[op]
        left, right = (p + 1, p) if op == "pow" else (p, p + 1)
        return f"{wrap(args[0], left)} {sym} {wrap(args[1], right)}", p
    if op == "neg":
        return f"-{wrap(args[0], 3)}", 3
    return f"{op}({', '.join(a[0] for a in args)})", _ATOM


def _formula(op: str, k: int, names: list[str], out: str, consts: list) -> str:
    """The symbolic local derivative d(out)/d(names[k]) of a few common ops ("" when unknown)."""
    a = names[0]
    b = names[1] if len(names) > 1 else ""
    if op == "add":
        return "1"
    if op == "sub":
        return "1" if k == 0 else "-1"
    if op == "mul":
        return names[1 - k]
    if op == "div":
        return f"1/{b}" if k == 0 else f"-{a}/{b}**2"
    if op == "pow":
        if k == 0:
            c = consts[1]
            if c is not None:
                if c == 2:
                    return f"2*{a}"
                return f"{_g(c)}*{a}**{_g(c - 1)}"
            return f"{b}*{a}**({b} - 1)"
        return f"{a}**{b}*log({a})"
    return {"neg": "-1", "exp": f"exp({a})", "log": f"1/{a}", "sqrt": f"1/(2*sqrt({a}))",
            "sin": f"cos({a})", "cos": f"-sin({a})", "tanh": f"1 - tanh({a})**2",
            "sigmoid": f"sigmoid({a})*(1 - sigmoid({a}))", "relu": f"[{a} > 0]", "abs": f"sign({a})",
            "log1p": f"1/(1 + {a})", "softplus": f"sigmoid({a})"}.get(op, "")


def chain(y, x, names: Mapping[str, Any] | None = None, y_name: str | None = None) -> Chain:
    """The chain rule for dy/dx (x, y one-element Tensors, y recorded from x, before backward).

    names optionally maps display names to tensors (e.g. {"x": x, "z": z}); x is called "x"
    unless named there, y "y" (or "f" when "y" names an input).
    """
    from .. import autograd
    from ..tensor import Tensor
    from .graph import _key, topological

    if not isinstance(y, Tensor) or not isinstance(x, Tensor):
        raise TypeError(f"chain(y, x): both must be deltaprop Tensors, got {type(y).__name__} and {type(x).__name__}")
    if x.size != 1 or y.size != 1:
        raise ValueError(f"chain(y, x): x and y must be scalars (one element); got shapes {x.shape} and {y.shape}; "
                         "for vectors use dp.explain.trace or dp.jacobian")
    if not x.requires_grad:
        raise ValueError("chain(y, x): x does not require grad; create it with requires_grad=True before computing y")
    names = dict(names or {})
    label: dict[int, str] = {id(t): k for k, t in names.items() if isinstance(t, Tensor)}
    x_name = label.get(id(x), "x")
    if y_name is None:
        y_name = label.get(id(y)) or ("f" if "y" in names or x_name == "y" else "y")
    xkey = _key(x)

    if not y.requires_grad or y._node is None:
        # y is x itself, or a constant
        same = y is x
        node = ChainNode(x_name, "input", x_name, x.data.copy(), np.ones_like(x.data))
        nodes = [node] if same else []
        paths = [ChainPath([x_name], [], [], 1.0)] if same else []
        return Chain(x_name, y_name if not same else x_name, nodes, paths, len(paths),
                     np.asarray(1.0 if same else 0.0), {x_name: x.data}, [])

    topo = topological(y)   # inputs first; raises if a backward already freed the graph
    on = {id(xkey)}
    for k in topo:
        if isinstance(k, autograd.Node) and id(k) != id(xkey):
            if any(isinstance(a, Tensor) and a.requires_grad and id(_key(a)) in on for a in k.args):
                on.add(id(k))
    path_keys = [k for k in topo if id(k) in on]
    if id(_key(y)) not in on or id(xkey) not in on:
        return Chain(x_name, y_name, [], [], 0, np.asarray(0.0), {x_name: x.data}, [],
                     f"{y_name} (a value that does not depend on {x_name})")

    # adjoints dy/d(node) from the engine's own reverse pass (no .grad is touched)
    probes = []
    for k in path_keys:
        if id(k) == id(xkey):
            probes.append(x)
        else:
            t = Tensor(k.out)
            t._node = k
            probes.append(t)
    if id(xkey) in on and id(_key(y)) in on:
        adj = autograd.run_backward([y], [np.ones(y.shape, y.dtype)], retain_graph=True, inputs=probes)
    else:
        adj = [None] * len(probes)
    adjoint = {id(k): (np.zeros_like(p.data) if a is None else np.asarray(a.data if isinstance(a, Tensor) else a))
               for k, p, a in zip(path_keys, probes, adj)}

    # names: x, v1, v2, ..., y; off-path tensors by their given name, a scalar value, or c1, c2...
    name: dict[int, str] = {id(xkey): x_name}
    count = 0
    for k in path_keys:
        if id(k) in name:
            continue
        if k is _key(y):
            name[id(k)] = y_name
        else:
            count += 1
            name[id(k)] = f"v{count}"
    constants: list = []

    full: dict[int, tuple[str, int]] = {id(xkey): (x_name, _ATOM)}

    def arg_name(a) -> str:
        if isinstance(a, Tensor):
            key = _key(a)
            if id(key) in name:
                return name[id(key)]
            if id(a) in label:
                return label[id(a)]
            if a.size == 1 and a._node is None:
                return _g(a.data)
            nm = f"c{len(constants) + 1}"
            name[id(key)] = nm
            what = full[id(key)][0] if id(key) in full else f"a constant of shape {a.shape}"
            constants.append((nm, what, a.data))
            return nm
        arr = np.asarray(a)
        return _g(arr) if arr.size == 1 else f"<constant {arr.shape}>"

    def text_of(a) -> tuple[str, int]:
        """The full expression of an argument: a subexpression, a given name, or a value."""
        if isinstance(a, Tensor):
            if id(_key(a)) in full:
                return full[id(_key(a))]
            if id(a) in label:
                return label[id(a)], _ATOM
        arr = np.asarray(a.data if isinstance(a, Tensor) else a)
        t = _g(arr) if arr.size == 1 else f"<{arr.shape}>"
        return t, (0 if t.startswith("-") else _ATOM)

    for k in topo:   # expressions of the off-path subgraphs (held constant), shown by name
        if id(k) not in on and isinstance(k, autograd.Node):
            whole = _expr(k.op.name, [text_of(a) for a in k.args + _kw_args(k)])
            full[id(k)] = whole if len(whole[0]) <= 300 else ("...", _ATOM)

    nodes: list[ChainNode] = []
    by_key: dict[int, ChainNode] = {}
    for k in path_keys:
        if id(k) == id(xkey):
            n = ChainNode(x_name, "input", x_name, x.data.copy(), adjoint[id(k)])
        else:
            args = k.args
            anames = [arg_name(a) for a in args + _kw_args(k)]
            datas = [a.data if isinstance(a, Tensor) else a for a in args]
            consts = [None if isinstance(a, Tensor) and id(_key(a)) in on else
                      (float(np.asarray(d)) if np.size(d) == 1 and not isinstance(d, (dict, tuple)) else None)
                      for a, d in zip(args + _kw_args(k), datas + list(_kw_args(k)))]
            here = [(nm, 0 if nm.startswith("-") else _ATOM) for nm in anames]
            n = ChainNode(name[id(k)], k.op.name, _expr(k.op.name, here)[0], np.array(k.out, copy=True),
                          adjoint[id(k)])
            whole = _expr(k.op.name, [text_of(a) for a in args + _kw_args(k)])
            full[id(k)] = whole if len(whole[0]) <= 300 else (n.name, _ATOM)
            scalar = np.size(k.out) == 1
            with np.errstate(all="ignore"):
                locs = k.op.vjp(k, np.ones_like(k.out), k.out, *datas, **k.kw) if scalar else None
            for i, a in enumerate(args):
                if not (isinstance(a, Tensor) and a.requires_grad and id(_key(a)) in on):
                    continue
                val = None
                if scalar and a.size == 1 and locs[i] is not None:
                    val = float(np.sum(np.asarray(locs[i].data if isinstance(locs[i], Tensor) else locs[i])))
                n.locals.append((anames[i], _formula(k.op.name, i, anames, n.name, consts), val))
                by_key[id(_key(a))].consumers.append((n.name, val))
        by_key[id(k)] = n
        nodes.append(n)

    # enumerate the paths y -> x (edge by edge; an input used twice gives two edges)
    n_paths = _count_paths(nodes, x_name)
    paths: list[ChainPath] | None = None
    if n_paths <= MAX_PATHS:
        paths = []
        byname = {n.name: n for n in nodes}
        stack = [([nodes[-1].name], [], [])]
        while stack:
            seq, forms, facs = stack.pop()
            cur = byname[seq[-1]]
            if cur.name == x_name:
                prod = None if any(f is None for f in facs) else float(np.prod(facs)) if facs else 1.0
                paths.append(ChainPath(seq, forms, facs, prod))
                continue
            for inp, formula, val in reversed(cur.locals):
                stack.append((seq + [inp], forms + [formula], facs + [val]))
    return Chain(x_name, y_name, nodes, paths, n_paths, adjoint[id(xkey)],
                 {**{k: v.data for k, v in names.items() if isinstance(v, Tensor) and v.size == 1},
                  x_name: x.data}, constants, full[id(_key(y))][0])


def _kw_args(node) -> tuple:
    """Numeric parameters an op keeps in its keywords that read as operands (x ** p: p)."""
    if node.op.name == "pow" and len(node.args) == 1 and "p" in (node.kw or {}):  # (the scalar-exponent pow)
        return (node.kw["p"],)
    return ()


def _count_paths(nodes: list[ChainNode], x_name: str) -> int:
    """Number of paths from the last node down to x (dynamic programming, inputs first)."""
    count: dict[str, int] = {}
    for n in nodes:
        count[n.name] = 1 if n.name == x_name else sum(count.get(inp, 0) for inp, _, _ in n.locals)
    return count[nodes[-1].name] if nodes else 0
