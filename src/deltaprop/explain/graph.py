"""Draw the recorded graph: Graphviz DOT text always, SVG when the `dot` program is installed.

Like micrograd's drawings, every node shows its value and the gradient that arrived there:
`graph(y)` walks y's graph once, without recursion, and runs a backward pass of its own from
y (seeded with ones) through the ops' VJPs, keeping the adjoint dy/d(node) of every node. That
pass reads the graph and changes nothing: no `.grad`, no hook, no freed buffer. Leaves (the
parameters) also show their `.grad`, read when `.source` is asked for, so a Graph made before
`y.backward()` shows them after it. The graph is read through the engine's public graph API
(`deltaprop.graph`: walk, producer, GraphNode.inputs / .vjp), never its private fields. Draw
before `y.backward()`, or after `y.backward(retain_graph=True)`: a plain backward() frees what
the drawing needs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from .numbers import fmt

__all__ = ["Graph", "graph", "topological", "adjoints"]


def _key(t):
    """The graph vertex of a tensor: the engine's GraphNode that produced it, or the tensor itself
    for a leaf."""
    from ..graph import producer

    node = producer(t)
    return t if node is None else node


def _vkey(v):
    """A dict key for a vertex: the GraphNode itself (views of one op compare equal), or id() of a
    leaf tensor."""
    from ..graph import GraphNode as EngineNode

    return v if isinstance(v, EngineNode) else id(v)


def _inkey(inp):
    """The vertex key of an op's input (a GraphInput): its producer, or the leaf tensor; None for a
    raw value."""
    if inp.node is not None:
        return inp.node
    return id(inp.tensor) if inp.tensor is not None else None


def _freed(op_name: str) -> RuntimeError:
    return RuntimeError(f"the graph was already freed by a backward pass (op '{op_name}'): the drawing needs "
                        "the values it saved. Draw it before calling y.backward(), or keep the graph with "
                        "y.backward(retain_graph=True) and draw after")


def topological(y) -> list:
    """Every vertex (the engine's GraphNode, or a leaf Tensor requiring grad) that y depends on,
    inputs first (deltaprop.graph.walk: creation order, found without recursion)."""
    from ..graph import producer, walk

    if producer(y) is None:
        return [y]
    out: list = []
    seen: set[int] = set()
    for node in walk(y):
        if node.freed:
            raise _freed(node.op)
        for inp in node.inputs:
            leaf = inp.leaf
            if leaf is not None and id(leaf) not in seen:
                seen.add(id(leaf))
                out.append(leaf)
        out.append(node)
    return out


def _fmt(v: Any) -> str:
    a = np.asarray(v)
    if a.size == 1:
        return fmt(a)
    if a.size <= 4:
        return "[" + ", ".join(fmt(t, np.float32) for t in a.ravel()) + "]"
    return f"{a.shape} |max| {'%.4g' % float(np.max(np.abs(a)))}"


def adjoints(y, order: list) -> dict:
    """{vertex key: dy/d(vertex)} for every vertex of `order` (inputs first) that y depends on,
    keyed by the GraphNode itself, or by id() of a leaf tensor: a reverse pass of the drawing's own
    through each node's derivative rule (GraphNode.vjp), seeded with ones. It writes no .grad,
    calls no hook and frees nothing."""
    from ..tensor import Tensor

    grads: dict = {_vkey(_key(y)): np.ones(y.shape, y.dtype)}
    for v in reversed(order):
        if isinstance(v, Tensor):
            continue
        g = grads.get(v)
        if g is None:
            continue
        if v.freed:
            raise _freed(v.op)
        with np.errstate(all="ignore"):
            igs = v.vjp(g)
        for inp, ig in zip(v.inputs, igs):
            k = _inkey(inp)
            if ig is None or k is None or not inp.requires_grad:
                continue
            ig = np.asarray(ig)
            grads[k] = ig.copy() if k not in grads else grads[k] + ig
    return grads


def _shape(shape: tuple) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def _esc(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


@dataclass
class GraphNode:
    """One drawn vertex: an op's output, a leaf tensor, or a constant."""

    id: str
    kind: str                      # "op", "leaf" or "const"
    title: str                     # op name, leaf name, or "const"
    shape: tuple
    value: Any = None              # a copy of the value when it has one element
    adjoint: Any = None            # d(root)/d(this node), from the drawing's own backward pass
    tensor: Any = None             # a leaf, or a named retained tensor: its .grad is read at render time
    node: Any = None               # op: the engine's GraphNode
    root: bool = False
    inputs: list = field(default_factory=list)   # ids of the vertices feeding this one

    def grad(self):
        """The tensor's .grad as it is now (None for an unnamed op's output)."""
        g = getattr(self.tensor, "grad", None)
        return None if g is None else np.asarray(g.data if hasattr(g, "data") else g)

    def label(self) -> str:
        parts = [self.title, _shape(self.shape)]
        if self.value is not None:
            parts.append(f"value {_fmt(self.value)}")
        if self.adjoint is not None:
            parts.append(f"adjoint {_fmt(self.adjoint)}")
        g = self.grad()
        if g is not None:
            parts.append(f"grad {_fmt(g)}")
        return "\n".join(parts)


class Graph:
    """The graph of a tensor: `.source` is DOT text, `.svg()` SVG text (or None without `dot`)."""

    def __init__(self, nodes: list[GraphNode], name: str = "deltaprop"):
        self.nodes, self.name = nodes, name

    def __len__(self) -> int:
        return len(self.nodes)

    @property
    def source(self) -> str:
        """Graphviz DOT: ops as boxes, leaves as ellipses, constants as plain text; edges input -> op."""
        out = [f'digraph "{_esc(self.name)}" {{', "  rankdir=LR;",
               '  node [fontname="Helvetica", fontsize=10];']
        style = {"op": 'shape=box, style="rounded,filled", fillcolor="#dbe9f6"',
                 "leaf": 'shape=ellipse, style=filled, fillcolor="#fde7c7"',
                 "const": 'shape=plaintext'}
        for n in self.nodes:
            extra = ", peripheries=2" if n.root else ""
            out.append(f'  {n.id} [label="{_esc(n.label())}", {style[n.kind]}{extra}];')
        for n in self.nodes:
            for src in n.inputs:
                out.append(f"  {src} -> {n.id};")
        out.append("}")
        return "\n".join(out) + "\n"

    def __str__(self) -> str:
        return self.source

    def __repr__(self) -> str:
        ops = sum(n.kind == "op" for n in self.nodes)
        return f"<Graph: {ops} ops, {len(self.nodes) - ops} leaves/constants; .source for DOT, .svg() for SVG>"

    def svg(self, timeout: float = 60.0) -> str | None:
        """SVG text rendered by Graphviz's `dot`, or None when `dot` is not on PATH."""
        import shutil
        import subprocess

        exe = shutil.which("dot")
        if exe is None:
            return None
        res = subprocess.run([exe, "-Tsvg"], input=self.source, capture_output=True, text=True, timeout=timeout)
        if res.returncode != 0:
            raise RuntimeError(f"graph.svg: `dot -Tsvg` failed with exit code {res.returncode}: {res.stderr.strip()}")
        return res.stdout

    def _repr_svg_(self) -> str | None:
        return self.svg()

    def _repr_html_(self) -> str:
        """Inline SVG in a notebook, or the DOT text when Graphviz's `dot` is not installed."""
        from .display import pre_html

        svg = self.svg()
        if svg is not None:
            return svg[svg.find("<svg"):]
        return ("<p>Graphviz's <code>dot</code> is not installed; the graph as DOT text:</p>"
                + pre_html(self.source, "deltaprop-graph"))

    def save(self, path: str) -> None:
        """Write the DOT text (path ending .dot/.gv) or the SVG (path ending .svg)."""
        text = self.svg() if str(path).endswith(".svg") else self.source
        if text is None:
            raise RuntimeError("graph.save: writing SVG needs Graphviz's `dot` program on PATH; save a .dot file instead")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)


def graph(y, names: Mapping[str, Any] | None = None) -> Graph:
    """The graph that produced y (ops, leaves, constants), without recursion.

    names optionally maps display names to tensors, e.g. dict(model.named_parameters()); a named
    non-leaf tensor (one that called retain_grad()) is drawn with its name and its .grad.
    Call it before `y.backward()` (or backward with retain_graph=True): backward frees the graph.
    """
    from ..graph import producer
    from ..tensor import Tensor

    if not isinstance(y, Tensor):
        raise TypeError(f"graph(y): y must be a deltaprop Tensor, got {type(y).__name__}")
    label = {id(t): k for k, t in (names or {}).items() if isinstance(t, Tensor)}
    # named non-leaf tensors, by the node that made them: drawn with their name and .grad
    made = {producer(t): (k, t) for k, t in (names or {}).items() if isinstance(t, Tensor) and producer(t) is not None}
    ids: dict[Any, str] = {}     # vertex key (a GraphNode, or id() of a tensor) -> drawn id
    nodes: list[GraphNode] = []

    def new_id() -> str:
        return f"n{len(nodes)}"

    def leaf_vertex(t) -> str:
        if id(t) in ids:
            return ids[id(t)]
        kind = "leaf" if t.requires_grad else "const"
        title = label.get(id(t), "leaf" if t.requires_grad else "const")
        n = GraphNode(new_id(), kind, title, tuple(t.shape),
                      value=np.array(t.data, copy=True), tensor=t,
                      adjoint=adj.get(id(t)) if t.requires_grad else None)
        ids[id(t)] = n.id
        nodes.append(n)
        return n.id

    adj: dict = {id(y): np.ones(y.shape, y.dtype)} if y.requires_grad else {}
    if producer(y) is None:
        leaf_vertex(y)
        nodes[0].root = True
        return Graph(nodes)
    order = topological(y)
    adj = adjoints(y, order)
    for v in order:
        if isinstance(v, Tensor):
            leaf_vertex(v)
            continue
        inputs = []
        for inp in v.inputs:
            if inp.node is not None:
                inputs.append(ids[inp.node])
            elif inp.tensor is not None:
                inputs.append(ids[id(inp.tensor)] if inp.leaf is not None else leaf_vertex(inp.tensor))
            elif isinstance(inp.value, (int, float, np.number, np.ndarray, bool)):
                arr = np.asarray(inp.value)
                n = GraphNode(new_id(), "const", "const", tuple(arr.shape),
                              value=arr.copy() if arr.size == 1 else None)
                nodes.append(n)
                inputs.append(n.id)
        out = v.output
        params = [f"{k}={_fmt(a)}" for k, a in v.kwargs.items()
                  if isinstance(a, (int, float, np.number)) and not isinstance(a, bool)]
        title = v.op + (" " + " ".join(params) if params else "")
        named = made.get(v)
        if named is not None:
            title += f" {named[0]}"
        n = GraphNode(new_id(), "op", title, tuple(np.shape(out)),
                      value=np.array(out, copy=True), adjoint=adj.get(v),
                      node=v, inputs=inputs, tensor=None if named is None else named[1])
        ids[v] = n.id
        nodes.append(n)
    nodes[-1].root = True
    return Graph(nodes)
