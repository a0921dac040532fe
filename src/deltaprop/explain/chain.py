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

from .display import Text, pre_html
from .numbers import fmt

__all__ = ["Chain", "ChainNode", "ChainPath", "WeightChain", "chain"]

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
        return fmt(a)
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
    product: float | None
    operands: list = field(default_factory=list)   # per edge: (operand index, how many times used)


class Chain:
    """The chain rule for dy/dx with numbers; `str()` writes it out."""

    def __init__(self, x_name: str, y_name: str, nodes: list, paths: list | None, n_paths: int,
                 engine: np.ndarray, at: Mapping[str, Any], constants: list, expression: str = ""):
        self.x_name, self.y_name = x_name, y_name
        self.expression = expression or (nodes[-1].expr if nodes else "?")
        self.nodes: list[ChainNode] = nodes
        self.path_list: list[ChainPath] | None = paths   # None when there are too many to list
        self.n_paths = n_paths
        self.engine = engine
        self.at = dict(at)
        self.constants = constants

    @property
    def derivative(self) -> float:
        """dy/dx as the sum over paths of the products of local derivatives (the adjoint at x
        when there are too many paths to list)."""
        if self.path_list is not None and all(p.product is not None for p in self.path_list):
            return float(sum(p.product or 0.0 for p in self.path_list))  # (all set: checked above)
        return float(np.sum(self.engine))

    def __repr__(self) -> str:
        return f"<Chain d{self.y_name}/d{self.x_name} = {_g(self.derivative)} over {self.n_paths} path(s)>"

    def _edge(self, node: str, inp: str, k: int, count: int) -> str:
        """The local derivative of node by one of its inputs; an input used twice (x * x) gives
        two edges, told apart by the operand."""
        return f"\u2202{node}/\u2202{inp}" + (f" (operand {k + 1})" if count > 1 else "")

    def _head(self) -> list[str]:
        where = ", ".join(f"{k} = {_g(v)}" for k, v in self.at.items())
        lines = [f"{self.y_name} = {self.expression} at {where}"]
        if not np.all(np.isfinite(self.engine)) or any(not np.all(np.isfinite(n.value)) for n in self.nodes):
            bad = next((n for n in self.nodes if not np.all(np.isfinite(n.value))), None)
            what = (f"{bad.name} = {bad.expr} is {_g(bad.value)} there, so the derivative is not finite either"
                    if bad is not None else f"d{self.y_name}/d{self.x_name} = {_g(self.engine)} is not finite there")
            lines.append(f"note: {where} is a singular point: {what}; choose another point")
        return lines

    def _operand_counts(self, n: ChainNode) -> dict:
        counts: dict = {}
        for inp, _, _ in n.locals:
            counts[inp] = counts.get(inp, 0) + 1
        return counts

    def __str__(self) -> str:
        x, y = self.x_name, self.y_name
        if not self.nodes:
            return (f"{y} does not depend on {x} (no path from {x} to {y}), so d{y}/d{x} = 0\n"
                    f"engine (reverse-mode backward): d{y}/d{x} = {_g(self.engine)}")
        w = max([len(n.name) for n in self.nodes] + [1])
        root = self.nodes[-1]
        lines = self._head() + [""]
        lines.append("forward pass: each node's value, and its local derivative \u2202node/\u2202input "
                     "(the op's own derivative, other inputs held fixed)")
        for n in self.nodes:
            lines.append(f"  {n.name.ljust(w)} = " + (f"{_g(n.value)}" if n.op == "input" else f"{n.expr} = {_g(n.value)}"))
            counts = self._operand_counts(n)
            seen: dict = {}
            for inp, formula, val in n.locals:
                k = seen[inp] = seen.get(inp, -1) + 1
                d = self._edge(n.name, inp, k, counts[inp])
                if val is None:
                    lines.append(f"  {' ' * w}   {d} = {formula} (not a scalar: see the adjoints)")
                elif formula in (None, "", _g(val)):
                    lines.append(f"  {' ' * w}   {d} = {_g(val)}")
                else:
                    lines.append(f"  {' ' * w}   {d} = {formula} = {_g(val)}")
        for name, text, val in self.constants:
            lines.append(f"  {name.ljust(w)} = {text} = {_g(val)} (does not depend on {x}: held constant)")
        lines.append("")
        lines.append(f"backward pass: the total derivative d{y}/d(node), the error arriving at each node, from "
                     f"d{y}/d{y} = 1 back; each is the sum over the node's consumers c of d{y}/dc × \u2202c/\u2202node")
        for n in reversed(self.nodes):
            if n is root:
                lines.append(f"  d{y}/d{n.name} = 1")
                continue
            terms, nums = [], []
            for c, v, k, count in self._consumer_edges(n):
                terms.append(f"d{y}/d{c} × {self._edge(c, n.name, k, count)}")
                nums.append(f"{_p(self._adj(c))} × {_p(v)}" if v is not None else f"(vector-Jacobian product from {c})")
            lines.append(f"  d{y}/d{n.name} = {' + '.join(terms)}")
            lines.append(f"  {' ' * (len(y) + len(n.name) + 2)}  = {' + '.join(nums)} = {_g(n.adjoint)}")
        lines.append("")
        lines += self._path_lines()
        return "\n".join(lines)

    def _consumer_edges(self, n: ChainNode) -> list:
        """(consumer name, local value, operand index, operand count) for each edge out of n."""
        out = []
        for c in self.nodes:
            counts = self._operand_counts(c)
            k = 0
            for inp, _, val in c.locals:
                if inp == n.name:
                    out.append((c.name, val, k, counts[inp]))
                    k += 1
        return out

    def _path_lines(self) -> list[str]:
        x, y = self.x_name, self.y_name
        lines = []
        if self.path_list is None:
            lines.append(f"chain rule: {self.n_paths} paths from {x} to {y}, too many to list; their sum is the "
                         f"total derivative d{y}/d{x} above")
        elif not self.path_list:
            lines.append(f"chain rule: no path from {x} to {y}: {y} does not depend on {x}")
        else:
            lines.append(f"chain rule: d{y}/d{x} = sum over the {len(self.path_list)} path(s) from {x} to {y} of the "
                         "product of the local derivatives along it")
            for i, p in enumerate(self.path_list):
                edges = [self._edge(p.names[k], p.names[k + 1], p.operands[k][0], p.operands[k][1])
                         for k in range(len(p.names) - 1)]
                hops = p.names[-1]
                for k in range(len(p.names) - 2, -1, -1):
                    op = p.operands[k]
                    hops += (f" -(operand {op[0] + 1})-> " if op[1] > 1 else " -> ") + p.names[k]
                lines.append(f"  path {i + 1}: {hops}")
                lines.append(f"    {' × '.join(edges)}")
                if any(f for f in p.formulas):
                    lines.append(f"    = {' × '.join(_pf(f) if f else _p(v) for f, v in zip(p.formulas, p.factors))}")
                if p.product is not None:
                    lines.append(f"    = {' × '.join(_p(v) for v in p.factors)} = {_g(p.product)}")
            if len(self.path_list) > 1 and all(p.product is not None for p in self.path_list):
                lines.append(f"  d{y}/d{x} = {' + '.join(_p(p.product) for p in self.path_list)} = {_g(self.derivative)}")
            else:
                lines.append(f"  d{y}/d{x} = {_g(self.derivative)}")
        lines.append(f"engine (reverse-mode backward): d{y}/d{x} = {_g(self.engine)}")
        return lines

    @property
    def tangents(self) -> dict[str, float | None]:
        """Forward mode: each node's tangent d(node)/dx, carried from dx/dx = 1 in one pass from
        the input, inputs first: the sum over the node's inputs of d(node)/d(input) x the input's
        tangent (the JVP of a scalar op; None where a local derivative is not a scalar)."""
        tan: dict[str, float | None] = {}
        for n in self.nodes:
            if n.op == "input":
                tan[n.name] = 1.0
                continue
            total: float | None = 0.0
            for inp, _, val in n.locals:
                t = tan.get(inp)
                if val is None or t is None or total is None:
                    total = None
                else:
                    total += val * t
            tan[n.name] = total
        return tan

    def forward(self) -> Text:
        """Forward mode written out: one pass from x, each node's value beside its tangent
        d(node)/dx, from dx/dx = 1; then the reverse sweep of the same expression, from dy/dy = 1
        back, and the two results side by side."""
        x, y = self.x_name, self.y_name
        if not self.nodes:
            return Text(str(self))
        w = max(len(n.name) for n in self.nodes)
        tan = self.tangents
        lines = self._head() + [""]
        lines.append(f"forward mode: one pass from {x}, carrying each node's value and its tangent d(node)/d{x}, "
                     f"from d{x}/d{x} = 1; each tangent is the sum over the node's inputs of \u2202node/\u2202input "
                     f"× d(input)/d{x}")
        for n in self.nodes:
            value = f"{n.name.ljust(w)} = " + (_g(n.value) if n.op == "input" else f"{n.expr} = {_g(n.value)}")
            if n.op == "input":
                lines.append(f"  {value}")
                lines.append(f"  {' ' * w}   d{x}/d{x} = 1")
                continue
            counts = self._operand_counts(n)
            seen: dict = {}
            sym, forms, nums = [], [], []
            for inp, formula, val in n.locals:
                k = seen[inp] = seen.get(inp, -1) + 1
                sym.append(f"{self._edge(n.name, inp, k, counts[inp])} × d{inp}/d{x}")
                forms.append(f"{_pf(formula) if formula else _p(val)} × d{inp}/d{x}")
                nums.append(f"{_p(val) if val is not None else '?'} × {_p(tan[inp]) if tan[inp] is not None else '?'}")
            lines.append(f"  {value}")
            lines.append(f"  {' ' * w}   d{n.name}/d{x} = {' + '.join(sym)}")
            if any(f for _, f, _ in n.locals) and forms != sym:
                lines.append(f"  {' ' * (w + len(n.name) + len(x) + 7)}= {' + '.join(forms)}")
            total = tan[n.name]
            lines.append(f"  {' ' * (w + len(n.name) + len(x) + 7)}= {' + '.join(nums)} = "
                         f"{_g(total) if total is not None else '(not a scalar)'}")
        fwd = tan[self.nodes[-1].name]
        lines.append("")
        lines.append(f"reverse mode, the same expression: one sweep back from d{y}/d{y} = 1, each node's adjoint "
                     f"d{y}/d(node) (the sum over its consumers c of d{y}/dc × \u2202c/\u2202node)")
        for n in reversed(self.nodes):
            lines.append(f"  d{y}/d{n.name.ljust(w)} = {_g(n.adjoint)}")
        lines.append("")
        lines.append(f"forward mode: d{y}/d{x} = {_g(fwd) if fwd is not None else '?'} (the tangent reaching {y}); "
                     f"reverse mode: d{y}/d{x} = {_g(self.engine)} (the adjoint reaching {x}). One pass each here: "
                     "forward mode needs one pass per input, reverse mode one per output.")
        return Text("\n".join(lines))

    def paths(self) -> Text:
        """The path expansion alone: dy/dx as the sum over every path x -> y of the product of
        the local derivatives along it."""
        if not self.nodes:
            return Text(str(self))
        return Text("\n".join(self._head() + [""] + self._path_lines()))

    def to_markdown(self) -> str:
        """The text as a Markdown code block."""
        return "```text\n" + str(self) + "\n```\n"

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    def _repr_html_(self) -> str:
        return pre_html(str(self), "deltaprop-chain")

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(str(self))

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


def chain(y, x, names: Mapping[str, Any] | None = None, y_name: str | None = None,
          expression: str | None = None) -> Chain:
    """The chain rule for dy/dx (x, y one-element Tensors, y recorded from x, before backward).

    names optionally maps display names to tensors (e.g. {"x": x, "z": z}); x is called "x"
    unless named there, y "y" (or "f" when "y" names an input); expression, the text shown as
    y's definition (default: rebuilt from the graph). At a singular point (a value or the
    derivative not finite) the text says so; NumPy's warnings are never printed.
    """
    with np.errstate(all="ignore"):
        return _chain(y, x, names, y_name, expression)


def _chain(y, x, names, y_name, expression) -> Chain:
    from ..graph import GraphInput, producer
    from ..tensor import Tensor
    from .graph import _inkey, _key, _vkey, adjoints, topological

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
    xkey = _vkey(_key(x))

    if not y.requires_grad or producer(y) is None:
        # y is x itself, or a constant
        same = y is x
        node = ChainNode(x_name, "input", x_name, x.data.copy(), np.ones_like(x.data))
        nodes = [node] if same else []
        one = [ChainPath([x_name], [], [], 1.0)] if same else []
        return Chain(x_name, y_name if not same else x_name, nodes, one, len(one),
                     np.asarray(1.0 if same else 0.0), {x_name: x.data}, [])

    # the vertices (the engine's GraphNodes, and leaf tensors) read through deltaprop.graph
    topo = topological(y)   # inputs first; raises if a backward already freed the graph
    ykey = _vkey(_key(y))
    on = {xkey}
    for k in topo:
        if not isinstance(k, Tensor) and k != xkey:
            if any(inp.requires_grad and _inkey(inp) in on for inp in k.inputs):
                on.add(k)
    path_keys = [_vkey(k) for k in topo if _vkey(k) in on]
    if ykey not in on or xkey not in on:
        return Chain(x_name, y_name, [], [], 0, np.asarray(0.0), {x_name: x.data}, [],
                     f"{y_name} (a value that does not depend on {x_name})")

    # adjoints dy/d(node): a reverse pass through each node's own derivative rule (GraphNode.vjp),
    # which touches no .grad
    adj = adjoints(y, topo)
    adjoint = {k: np.asarray(adj[k]) if k in adj else np.zeros(np.shape(x.data if k == xkey else k.output))
               for k in path_keys}

    # names: x, v1, v2, ..., y; off-path tensors by their given name, a scalar value, or c1, c2...
    name: dict = {xkey: x_name}
    count = 0
    for k in path_keys:
        if k in name:
            continue
        if k == ykey:
            name[k] = y_name
        else:
            count += 1
            name[k] = f"v{count}"
    constants: list = []

    full: dict = {xkey: (x_name, _ATOM)}

    def arg_name(inp) -> str:
        key = _inkey(inp)
        if key is not None and key in name:
            return name[key]
        t = inp.tensor
        if t is not None and id(t) in label:
            return label[id(t)]
        arr = np.asarray(inp.value)
        if inp.node is None and arr.size == 1:
            return _g(arr)
        if key is None:
            return f"<constant {arr.shape}>"
        nm = f"c{len(constants) + 1}"
        name[key] = nm
        what = full[key][0] if key in full else f"a constant of shape {arr.shape}"
        constants.append((nm, what, arr))
        return nm

    def text_of(inp) -> tuple[str, int]:
        """The full expression of an argument: a subexpression, a given name, or a value."""
        key = _inkey(inp)
        if key is not None and key in full:
            return full[key]
        if inp.tensor is not None and id(inp.tensor) in label:
            return label[id(inp.tensor)], _ATOM
        arr = np.asarray(inp.value)
        t = _g(arr) if arr.size == 1 else f"<{arr.shape}>"
        return t, (0 if t.startswith("-") else _ATOM)

    def operands(k) -> list:
        """The node's inputs, and a scalar exponent kept in its settings as one more operand."""
        return list(k.inputs) + [GraphInput(None, None, p, False) for p in _kw_args(k)]

    for k in topo:   # expressions of the off-path subgraphs (held constant), shown by name
        if not isinstance(k, Tensor) and k not in on:
            whole = _expr(k.op, [text_of(i) for i in operands(k)])
            full[k] = whole if len(whole[0]) <= 300 else ("...", _ATOM)

    nodes = []
    by_key: dict = {}
    for k in path_keys:
        if k == xkey:
            n = ChainNode(x_name, "input", x_name, x.data.copy(), adjoint[k])
        else:
            ins = operands(k)
            anames = [arg_name(i) for i in ins]
            consts = [None if i.requires_grad and _inkey(i) in on else
                      (float(np.asarray(i.value)) if np.size(i.value) == 1 else None) for i in ins]
            here = [(nm, 0 if nm.startswith("-") else _ATOM) for nm in anames]
            n = ChainNode(name[k], k.op, _expr(k.op, here)[0], np.array(k.output, copy=True), adjoint[k])
            whole = _expr(k.op, [text_of(i) for i in ins])
            full[k] = whole if len(whole[0]) <= 300 else (n.name, _ATOM)
            scalar = np.size(k.output) == 1
            with np.errstate(all="ignore"):
                locs: Any = k.vjp(np.ones_like(k.output)) if scalar else None
            for i, inp in enumerate(k.inputs):
                if not (inp.requires_grad and _inkey(inp) in on):
                    continue
                val = None
                if scalar and np.size(inp.value) == 1 and locs[i] is not None:
                    val = float(np.sum(np.asarray(locs[i])))
                n.locals.append((anames[i], _formula(k.op, i, anames, n.name, consts), val))
                by_key[_inkey(inp)].consumers.append((n.name, val))
        by_key[k] = n
        nodes.append(n)

    # enumerate the paths y -> x (edge by edge; an input used twice gives two edges)
    n_paths = _count_paths(nodes, x_name)
    paths: list[ChainPath] | None = None
    if n_paths <= MAX_PATHS:
        paths = []
        byname = {n.name: n for n in nodes}
        stack: list[tuple[list, list, list, list]] = [([nodes[-1].name], [], [], [])]
        while stack:
            seq, forms, facs, ops = stack.pop()
            cur = byname[seq[-1]]
            if cur.name == x_name:
                prod = None if any(f is None for f in facs) else float(np.prod(facs)) if facs else 1.0
                paths.append(ChainPath(seq, forms, facs, prod, ops))
                continue
            counts: dict = {}
            edges = []
            for inp, formula, val in cur.locals:
                k = counts[inp] = counts.get(inp, -1) + 1
                edges.append((inp, formula, val, k))
            for inp, formula, val, k in reversed(edges):
                stack.append((seq + [inp], forms + [formula], facs + [val], ops + [(k, counts[inp] + 1)]))
    return Chain(x_name, y_name, nodes, paths, n_paths, adjoint[xkey],
                 {**{k: v.data for k, v in names.items() if isinstance(v, Tensor) and v.size == 1},
                  x_name: x.data}, constants, expression or full[ykey][0])


def _kw_args(node) -> tuple:
    """Numeric parameters an op keeps in its settings that read as operands (x ** p: p)."""
    kw = node.kwargs
    if node.op == "pow" and len(node.inputs) == 1 and "p" in kw:  # (the scalar-exponent pow)
        return (kw["p"],)
    return ()


def _count_paths(nodes: list[ChainNode], x_name: str) -> int:
    """Number of paths from the last node down to x (dynamic programming, inputs first)."""
    count: dict[str, int] = {}
    for n in nodes:
        count[n.name] = 1 if n.name == x_name else sum(count.get(inp, 0) for inp, _, _ in n.locals)
    return count[nodes[-1].name] if nodes else 0


class WeightChain(Chain):
    """One weight's dE/dw from a trace: str() is the delta rule, layer by layer from the output
    back (each layer's deltas already sum every path beyond it); `.paths()` the same number as
    the sum over every path from the weight's neuron to the outputs."""

    def __init__(self, tr, key: str, layer, kind: str, index: tuple, sample: int):
        self.trace, self.key, self.layer, self.kind, self.index, self.sample = tr, key, layer, kind, index, sample
        self.x_name = tr.param_name(key, index)
        self.y_name = "E"
        self.engine = np.asarray(tr.grads[key][index]) if key in tr.grads else np.asarray(
            (layer.delta[:, index[0]] * (layer.input[:, index[1]] if kind == "weight" else 1)).sum())
        self.nodes, self.path_list, self.constants, self.at = [], None, [], {}
        self.n_paths = int(np.prod([l.size for l in tr.layers[layer.index + 1:]])) if tr.layers[layer.index + 1:] else 1
        self.expression = ""

    @property
    def derivative(self) -> float:
        """dE/dw summed over the batch: the engine's gradient."""
        return float(self.engine)

    def __repr__(self) -> str:
        return f"<Chain dE/d{self.x_name} = {self.trace._g(self.derivative)} (delta rule, {len(self.trace.layers)} layers)>"

    def _local(self, n: int) -> tuple[str, float]:
        l, j = self.layer, self.index[0]
        if self.kind == "weight":
            nm = l.in_names[self.index[1]]
            return (nm if l.index == 0 else f"out_{nm}"), float(l.input[n, self.index[1]])
        return "1", 1.0

    def _tail(self) -> list[str]:
        tr, l, j, w = self.trace, self.layer, self.index[0], self.x_name
        lines = []
        if tr.batch > 1:
            total = l.delta[:, j] * (l.input[:, self.index[1]] if self.kind == "weight" else 1.0)
            lines.append(f"over the batch: dE/d{w} = sum over the batch of {tr.batch} of delta_{l.names[j]} × "
                         f"{self._local(0)[0]} = {tr._g(total.sum())}   (sample {self.sample} gives "
                         f"{tr._g(total[self.sample])})")
        if self.key in tr.grads:
            g = tr.grads[self.key][self.index]
            lines.append(f"engine: dE/d{w} = {tr._g(g)}" +
                         (f"; updated {w} = {tr._g(tr.params[self.key][self.index])} - {tr._g(tr.lr)} × {tr._p(g)} = "
                          f"{tr._g(tr.updated[self.key][self.index])}" if self.key in tr.updated else ""))
        return lines

    def __str__(self) -> str:
        tr, l, j, w, s = self.trace, self.layer, self.index[0], self.x_name, self.sample
        nm = l.names[j]
        inp, x = self._local(s)
        d = l.delta[s, j]
        who = f", sample {s} of {tr.batch}" if tr.batch > 1 else ""
        lines = [f"dE/d{w} by back-propagation of errors (the delta rule){who}:",
                 f"  dE/d{w} = dE/dnet_{nm} × dnet_{nm}/d{w} = delta_{nm} × {inp}",
                 f"  delta_{nm} = dE/dnet_{nm}, the error signal of neuron {nm}, comes back from the output one layer "
                 "at a time:", ""]
        lines += ["  " + t for t in tr._delta_lines(l, j, s)]
        lines.append("")
        lines.append(f"dE/d{w} = dE/dout_{nm} × dout_{nm}/dnet_{nm} × dnet_{nm}/d{w} = {tr._p(l.dout[s, j])} × "
                     f"{tr._p(l.fprime[s, j])} × {tr._p(x)} = {tr._g(d * x)}")
        lines.append(f"{' ' * (len(w) + 4)}= delta_{nm} × {inp} = {tr._p(d)} × {tr._p(x)} = {tr._g(d * x)}")
        lines += self._tail()
        if l is not tr.layers[-1]:
            lines.append(f"(.paths() writes dE/dout_{nm} as the sum over its {self.n_paths} path(s) to the outputs "
                         "instead: the deltas above are those sums, computed once per layer)")
        return "\n".join(lines)

    def paths(self) -> Text:
        """dE/dw with dE/dout of the weight's neuron expanded into the sum over every path to the
        outputs (products of weights and f'(net) along each path); long lists are cut at 16."""
        tr, l, j, w, s = self.trace, self.layer, self.index[0], self.x_name, self.sample
        nm = l.names[j]
        inp, x = self._local(s)
        lines = [f"dE/d{w} as a sum over paths" + (f", sample {s} of {tr.batch}" if tr.batch > 1 else "") + ":"]
        if l is not tr.layers[-1]:
            lines += ["  " + t for t in _paths_text(tr, l, j, s)]
        lines.append(f"dE/d{w} = dE/dout_{nm} × dout_{nm}/dnet_{nm} × dnet_{nm}/d{w} = {tr._p(l.dout[s, j])} × "
                     f"{tr._p(l.fprime[s, j])} × {tr._p(x)} = {tr._g(l.delta[s, j] * x)}")
        lines += self._tail()
        return Text("\n".join(lines))


def _paths_text(tr, layer, j: int, n: int, limit: int = 16) -> list[str]:
    """dE/dout_j written as the sum over the paths from neuron j to the outputs."""
    g, p = tr._g, tr._p
    later = tr.layers[layer.index + 1:]
    n_paths = int(np.prod([l.size for l in later]))
    src = layer.names[j]
    lines = [f"dE/dout_{src} = sum over the {n_paths} path(s) from {src} to the outputs of the product of the "
             "local derivatives along it:"]
    import itertools

    values = []
    for q in itertools.islice(itertools.product(*[range(l.size) for l in later]), limit):
        names, nums, prod = [], [], 1.0
        prev, prev_name = j, src
        terms = []
        for l, k in zip(later, q):
            terms.append((f"dnet_{l.names[k]}/dout_{prev_name}", l.weight[k, prev]))
            terms.append((f"dout_{l.names[k]}/dnet_{l.names[k]}", l.fprime[n, k]))
            prev, prev_name = k, l.names[k]
        last = later[-1]
        terms.append((f"dE/dout_{last.names[q[-1]]}", last.dout[n, q[-1]]))
        terms.reverse()
        for nm, v in terms:
            names.append(nm)
            nums.append(p(v))
            prod *= float(v)
        values.append(prod)
        via = " -> ".join(later[i].names[k] for i, k in enumerate(q))
        lines.append(f"  via {via}: {' × '.join(names)}")
        lines.append(f"  {' ' * (len(via) + 6)}= {' × '.join(nums)} = {g(prod)}")
    if n_paths > len(values):
        lines.append(f"  ... {n_paths - len(values)} more paths; all {n_paths} sum to dE/dout_{src} = "
                     f"{g(layer.dout[n, j])} (the delta rule gets it with one sum per layer)")
    else:
        lines.append(f"  dE/dout_{src} = {' + '.join(p(v) for v in values)} = {g(layer.dout[n, j])}")
    return lines
