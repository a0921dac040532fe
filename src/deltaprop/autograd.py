"""The engine: graph nodes, grad/anomaly modes, the iterative backward pass.

An `Op` (ops/) has a forward on ndarrays, a VJP and a JVP; `apply` runs it and records a `Node`.
`run_backward` orders nodes without recursion and sums each tensor's incoming gradients before
passing them on. First-order backward works on raw ndarrays; with create_graph=True the VJPs get
Tensors, which dispatch their NumPy calls back to deltaprop ops: the gradient is differentiable.
"""
from __future__ import annotations

import contextlib
import heapq
import itertools
import sys

import numpy as np

from . import _pool, anomaly  # (anomaly imports this module lazily: no cycle at import time)
from .tensor import Tensor

_grad_enabled = True
_anomaly = False
_seq = itertools.count()
_donated = 0  # id of the incoming gradient a VJP may overwrite in place (0: none)


def donated(g) -> bool:
    """True if the VJP now running may write its result into g (saves a large temporary)."""
    return id(g) == _donated


class _Mode(contextlib.ContextDecorator):
    """Context manager / decorator that sets a global mode and restores it on exit."""

    def __init__(self, name: str, value: bool):
        self.name, self.value, self.saved = name, value, []

    def __enter__(self):
        self.saved.append(globals()[self.name])
        globals()[self.name] = self.value

    def __exit__(self, *exc):
        globals()[self.name] = self.saved.pop()


def no_grad() -> _Mode:
    """Ops inside record no graph (use for updates and evaluation)."""
    return _Mode("_grad_enabled", False)


def enable_grad() -> _Mode:
    """Ops inside record the graph again (e.g. within no_grad)."""
    return _Mode("_grad_enabled", True)


def is_grad_enabled() -> bool:
    """Whether ops record the graph right now."""
    return _grad_enabled


def detect_anomaly() -> _Mode:
    """NaN in a forward value, or NaN/Inf in a gradient, raises FloatingPointError naming the op."""
    return _Mode("_anomaly", True)


class Node:
    """One recorded op application: what its VJP needs, and the tensors it came from."""

    __slots__ = ("op", "args", "datas", "out", "kw", "hooks", "retained", "seq", "__weakref__")

    def __init__(self, op, args, datas, out, kw):  # datas: the args' arrays as the forward saw them
        self.op, self.args, self.datas, self.out, self.kw = op, args, datas, out, kw
        self.hooks = self.retained = None
        self.seq = next(_seq)  # creation order: a node is always newer than the nodes it consumes


class Op:
    """A primitive: forward on ndarrays, vjp(g, out, *xs, **kw) -> grads, jvp(ts, out, *xs, **kw)."""

    __slots__ = ("name", "fwd", "vjp", "jvp")

    def __init__(self, name, fwd, vjp, jvp=None):
        self.name, self.fwd, self.vjp, self.jvp = name, fwd, vjp, jvp

    def __call__(self, *args, **kw):
        return apply(self, args, kw)


def apply(op: Op, args: tuple, kw: dict) -> Tensor:
    """Run op's forward on the args' arrays; record a Node if any arg requires grad."""
    datas, grad, tangent = [], False, False
    for a in args:
        if isinstance(a, Tensor):
            datas.append(a.data)
            grad = grad or a.requires_grad
            tangent = tangent or a._tangent is not None
        else:
            datas.append(a)
    if _anomaly:  # checked and reported in anomaly.py; NumPy's warnings would only be noise
        return anomaly.checked_apply(op, args, kw)
    out = Tensor(op.fwd(*datas, **kw))
    if grad and _grad_enabled:
        out.requires_grad = True
        out._node = Node(op, args, datas, out.data, kw)
    if tangent:  # forward mode: push the tangents through this op's JVP
        ts = [a._tangent if isinstance(a, Tensor) else None for a in args]
        out._tangent = np.asarray(op.jvp(ts, out.data, *datas, **kw), dtype=out.data.dtype)
    return out


def sum_to(g, shape: tuple):
    """Sum a broadcast gradient back to `shape` (the input's own shape)."""
    if g.shape == shape:
        return g
    if g.ndim < len(shape):
        return np.broadcast_to(g, shape)
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(i + lead for i, s in enumerate(shape) if s == 1 and g.shape[i + lead] != 1)
    return g.sum(axis=axes, keepdims=True).reshape(shape)


def _run_hooks(hooks, g, create_graph, handed):
    for fn in list(hooks.values()):
        if not create_graph:
            handed.add(id(g if g.base is None else g.base))  # the hook may keep it: no .grad shares it
        r = fn(g if create_graph else Tensor(g))
        if r is not None:
            g = r if create_graph else np.asarray(r.data if isinstance(r, Tensor) else r, dtype=g.dtype)
    return g


def _accumulate(t: Tensor, g, create_graph: bool, handed: set) -> None:
    """t.grad += g, out of place: an earlier .grad may be held by the user. Each .grad gets memory
    of its own (add's VJP passes one array to both inputs; a broadcast view is read-only)."""
    if not create_graph:
        if not g.flags.writeable or id(g if g.base is None else g.base) in handed:
            g = g.copy()
        handed.add(id(g if g.base is None else g.base))
        g = Tensor(g)
    t.grad = g if t.grad is None else t.grad + g


def run_backward(roots, grads, retain_graph=False, create_graph=False, inputs=None):
    """Reverse-mode pass from roots seeded with grads. With `inputs`, return their gradients
    (no .grad is touched); otherwise accumulate into the leaves' .grad. Nodes are popped newest
    first (a max-heap on creation order): a topological order, found without recursion."""
    pending, heap, leaves, handed = {}, [], [], set()
    for r, g in zip(roots, grads):
        _send(r._node or r, g, pending, heap, leaves)
    want = None if inputs is None else {id(t._node or t): None for t in inputs}
    global _grad_enabled
    saved, _grad_enabled = _grad_enabled, create_graph  # VJPs record a graph only for create_graph
    try:
        while heap:
            node = heapq.heappop(heap)[1]
            g = pending.pop(node)
            if node.args is None:
                raise RuntimeError(
                    f"Trying to backward through the graph a second time (op '{node.op.name}'): its "
                    "saved values were freed by the first backward. Call backward(retain_graph=True) "
                    "the first time if you need to backward twice.")
            if want is not None and id(node) in want:
                want[id(node)] = g
            if node.hooks:
                g = _run_hooks(node.hooks, g, create_graph, handed)
            if want is None and node.retained is not None and (t := node.retained()) is not None:
                _accumulate(t, g, create_graph, handed)
            args = node.args
            global _donated
            # g may be overwritten by the VJP (see `donated`) when nothing else can see it: no
            # other reference (refcount: this frame and getrefcount's argument) and no view.
            _donated = id(g) if (not create_graph and not node.hooks and type(g) is np.ndarray
                                 and g.base is None and sys.getrefcount(g) == 2) else 0
            igs = (anomaly.checked_vjp if _anomaly else _call_vjp)(node, g, create_graph)
            _donated = 0
            for a, ig in zip(args, igs):
                if ig is None or not isinstance(a, Tensor) or not a.requires_grad:
                    continue
                d = a.data
                if ig.shape != d.shape:
                    ig = sum_to(ig, d.shape)
                if ig.dtype != d.dtype:
                    ig = ig.astype(d.dtype)
                if _anomaly:
                    anomaly.check_grad(node, ig, args)
                _send(a._node or a, ig, pending, heap, leaves)
            if type(g) is np.ndarray and g.nbytes >= _pool.MIN_BYTES:  # (first-order only: arrays)
                _pool.give(g, 1)  # reused for a later output if nothing else holds it
            g = ig = igs = None  # drop this frame's references: the next g may then be donated
            if not retain_graph:
                out, node.args, node.datas, node.out, node.kw = node.out, None, None, None, None
                if out.nbytes >= _pool.MIN_BYTES:
                    _pool.give(out, 1)
        for leaf in leaves:  # every contribution has arrived: hooks run once, on the sum
            g = pending.pop(leaf)
            if want is not None and id(leaf) in want:
                want[id(leaf)] = g
            if leaf._hooks:
                g = _run_hooks(leaf._hooks, g, create_graph, handed)
            if want is None:
                _accumulate(leaf, g, create_graph, handed)
    finally:
        _grad_enabled = saved
    if want is not None:
        return [want[id(t._node or t)] for t in inputs]


def _send(key, g, pending, heap, leaves) -> None:
    """Add g to what a node (or leaf) has received; the first arrival queues it."""
    if key in pending:
        pending[key] = pending[key] + g
    else:
        pending[key] = g
        if type(key) is Node:
            heapq.heappush(heap, (-key.seq, key))
        else:
            leaves.append(key)


def _call_vjp(node, g, create_graph):
    args = node.args
    if create_graph:  # recompute the output as a Tensor so the VJP itself is differentiable
        return node.op.vjp(g, apply(node.op, args, node.kw), *args, **node.kw)
    return node.op.vjp(g, node.out, *node.datas, **node.kw)


def backward(t: Tensor, gradient=None, retain_graph=False, create_graph=False) -> None:
    """Tensor.backward: accumulate d(t)/d(leaf) (times `gradient`) into every leaf's .grad."""
    if not t.requires_grad:
        raise RuntimeError("backward: this tensor does not require grad and has no graph; create the "
                           "inputs with requires_grad=True (and not under dp.no_grad()) first")
    if gradient is None:
        if t.data.size != 1:
            raise RuntimeError(f"backward: grad can be implicitly created only for scalar outputs; this "
                               f"tensor has shape {t.shape}: pass gradient= of that shape (e.g. dp.ones_like(y))")
        gradient = np.array(1, t.dtype) if t.ndim == 0 else np.ones(t.shape, t.dtype)
    else:
        gdata = gradient.data if isinstance(gradient, Tensor) else gradient
        gradient = np.array(gdata, dtype=t.dtype)  # a copy: the user's array is never aliased
        if gradient.shape != t.shape:
            raise ValueError(f"backward: gradient has shape {gradient.shape} but the tensor has shape {t.shape}")
    run_backward([t], [Tensor(gradient) if create_graph else gradient], retain_graph or create_graph, create_graph)


class RemovableHandle:
    """Returned by register_hook; .remove() unregisters the hook."""

    def __init__(self, hooks: dict, fn):
        self.hooks = hooks
        hooks[id(self)] = fn

    def remove(self) -> None:
        self.hooks.pop(id(self), None)
