"""The public graph API: how code outside the engine reads a recorded graph.

explain (graph drawings, chain-rule text, traces), ONNX export and dp.compile read graphs through
these names only, never through the engine's private fields::

    from deltaprop import graph
    for node in graph.walk(loss):          # producers before consumers, no recursion
        node.op, node.kwargs, node.output  # "linear", {...}, the ndarray it computed
        for inp in node.inputs:            # GraphInput: node (its producer when the op ran) /
            ...                            # tensor (a leaf, the input batch) / value / requires_grad
        node.vjp(g)                        # the op's derivative rule: one gradient per input
    graph.grad(loss, [net, w])             # d loss / d(tensors): writes no .grad, fires no hook

A node is bound to what it read: an input changed in place after the op ran keeps its old producer
here, as in the backward pass.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from . import autograd as _ag
from .tensor import Tensor
from .versions import reads as _reads


class GraphInput:
    """One positional input of a recorded op, as the op read it."""

    __slots__ = ("node", "tensor", "value", "requires_grad")

    def __init__(self, node: GraphNode | None, tensor: Tensor | None, value: Any, requires_grad: bool):
        self.node = node                    # the producer when the op ran (None: a leaf or a constant)
        self.tensor = tensor                # the Tensor passed (a Parameter, the batch), None for a raw value
        self.value = value                  # the array (or number) the op read
        self.requires_grad = requires_grad  # whether a gradient flows to it

    @property
    def leaf(self) -> Tensor | None:
        """The leaf tensor a gradient for this input accumulates into (None when it has a producer or
        needs no gradient)."""
        return self.tensor if self.requires_grad and self.node is None else None

    def __repr__(self) -> str:
        src = f"node {self.node.op}#{self.node.order}" if self.node else "leaf" if self.leaf is not None else "constant"
        return f"GraphInput({src}, shape={np.shape(self.value)})"


class GraphNode:
    """A read-only view of one recorded op application (equal views for the same application)."""

    __slots__ = ("_n", "_memo")

    def __init__(self, node, memo: dict | None = None):
        self._n, self._memo = node, ({} if memo is None else memo)
        self._memo[node] = self

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GraphNode) and other._n is self._n

    def __hash__(self) -> int:
        return hash(self._n)

    def __repr__(self) -> str:
        return f"GraphNode({self.op}#{self.order}, out={np.shape(self.output)})"

    op = property(lambda self: self._n.op.name, doc="The op's name: 'linear', 'relu', 'add', 'getitem', ...")
    kwargs = property(lambda self: dict(self._n.kw or {}), doc="The op's static settings (axis=, index, ...).")
    output = property(lambda self: self._n.out, doc="The output as computed (None once a backward freed it).")
    order = property(lambda self: self._n.seq, doc="Creation order: unique, larger for later ops.")
    freed = property(lambda self: self._n.args is None, doc="True once a backward without retain_graph freed it.")
    extra = property(lambda self: self._n.extra, doc="What the forward kept for its VJP (e.g. batch statistics).")
    hooked = property(lambda self: bool(self._n.hooks) or self._n.retained is not None,
                      doc="Whether hooks or retain_grad() are attached to this node's output.")

    @property
    def inputs(self) -> tuple[GraphInput, ...]:
        """One GraphInput per positional input of the op."""
        n = self._n
        if n.args is None:
            raise RuntimeError(f"graph: the node of op '{n.op.name}' was freed by a backward pass; "
                               "call backward(retain_graph=True) to read the graph afterwards")
        return tuple(GraphInput(_view(e, self._memo) if e is not None and not isinstance(e, Tensor) else None,
                                a if isinstance(a, Tensor) else None, d, need)
                     for a, d, e, need in zip(n.args, n.datas, n.edges, n.needs))

    @property
    def saved(self) -> tuple[tuple[int, ...], bool]:
        """(indices of the inputs the VJP reads, whether it reads the output): what is version-checked."""
        idx, out = _reads(self._n.op, self._n.needs, len(self._n.needs))
        return tuple(idx), out

    def vjp(self, g) -> tuple[np.ndarray | None, ...]:
        """The op's derivative rule at this node: one gradient per input (None where none is needed),
        each summed to the input's shape and in its dtype, exactly as the backward pass sends it."""
        n = self._n
        if n.args is None:
            raise RuntimeError(f"graph: the node of op '{n.op.name}' was freed by a backward pass")
        g = np.asarray(g.data if isinstance(g, Tensor) else g, dtype=n.out.dtype)
        igs = _ag._call_vjp(n, g, False)
        return tuple(None if (ig is None or not need) else _ag.fit(ig, d, False)
                     for ig, d, need in zip(igs, n.datas, n.needs))

    def jvp(self, tangents: Sequence) -> np.ndarray:
        """Forward mode at this node: the output's tangent from one tangent (or None) per input."""
        n = self._n
        ts = [None if t is None else np.asarray(t.data if isinstance(t, Tensor) else t) for t in tangents]
        return np.asarray(n.op.jvp(ts, n.out, *n.datas, **(n.kw or {})), dtype=n.out.dtype)


def _view(node, memo: dict) -> GraphNode:
    return memo.get(node) or GraphNode(node, memo)


def producer(t: Tensor) -> GraphNode | None:
    """The node that made t (None for a leaf, or a tensor computed without recording)."""
    return None if t._node is None else GraphNode(t._node)


def hooked(t: Tensor) -> bool:
    """Whether gradient hooks (register_hook) or post-accumulate hooks are registered on the tensor t
    itself (a non-leaf's hooks live on its producer: GraphNode.hooked)."""
    return bool(t._hooks) or bool(t._post_hooks)


def walk(*outputs: Tensor) -> list[GraphNode]:
    """Every node the outputs depend on, producers before consumers (creation order), found
    without recursion."""
    memo: dict = {}
    seen, stack = set(), [t._node for t in outputs if isinstance(t, Tensor) and t._node is not None]
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        stack.extend(e for e in (n.edges if n.args is not None else ()) if e is not None and not isinstance(e, Tensor))
    return [_view(n, memo) for n in sorted(seen, key=lambda n: n.seq)]


def tangent(t: Tensor) -> np.ndarray | None:
    """Forward mode: the tangent t carries (dt/dx times the input tangents), or None."""
    return t._tangent


def set_tangent(t: Tensor, value) -> Tensor:
    """Forward mode: make t carry `value` as its tangent (None: none); ops on t push it on. Returns t."""
    t._tangent = None if value is None else np.asarray(value.data if isinstance(value, Tensor) else value, t.dtype)
    return t


def grad(outputs: Tensor | Sequence[Tensor], inputs: Tensor | Sequence[Tensor], grad_outputs=None, *,
         retain_graph: bool = False, create_graph: bool = False) -> tuple[Tensor | None, ...]:
    """d(outputs)/d(inputs) (leaf or intermediate tensors), weighted by grad_outputs (ones for a
    one-element output): writes no .grad and fires no hook. None where an input is not reached."""
    outs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    ins = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    gos = [None] * len(outs) if grad_outputs is None else (
        [grad_outputs] if isinstance(outputs, Tensor) else list(grad_outputs))
    seeds = [_ag.seed(o, go, create_graph, "graph.grad") for o, go in zip(outs, gos)]
    gs = _ag.run_backward(outs, seeds, retain_graph or create_graph, create_graph, inputs=ins, fire=False)
    return tuple(None if g is None else (g if isinstance(g, Tensor) else Tensor(g)) for g in gs)
