"""The engine: graph nodes, the op contract, the iterative backward pass (docs/engine.md; modes:
modes.py; hooks: hooks.py; version counters: versions.py; memory reuse: memory.py; reading a
graph: graph.py). An `Op` has a forward on arrays, ONE VJP written in NumPy calls that also run on
Tensors (so create_graph differentiates the same lines; `graph_vjp` is a differentiable companion
only where the array form cannot run on Tensors) and a JVP. `apply` records a `Node` whose edges
are bound when the op runs (an in-place op gives the tensor a new node, as PyTorch rebases
grad_fn); `fit` is the one rule for what reaches an input; `run_backward` orders nodes without
recursion and sums each node's incoming gradients before calling its VJP."""
from __future__ import annotations

import heapq
import itertools

import numpy as np

from . import anomaly, hooks, memory  # (anomaly imports this module lazily: no cycle at import time)
from .modes import _state, detect_anomaly, enable_grad, is_grad_enabled, no_grad  # noqa: F401 (re-exported)
from .tensor import Tensor
from .versions import check as _check_versions, counter as _counter, saved as _versions

_seq = itertools.count()
REGISTRY: dict[str, "Op"] = {}  # every primitive, by name: the list that the op-contract tests walk


class Node:
    """One recorded op application, and the context its VJP receives."""

    __slots__ = ("op", "args", "datas", "out", "kw", "needs", "edges", "extra", "versions", "hooks", "retained",
                 "seq", "__weakref__")

    def __init__(self, op, args, datas, kw, needs, edges):  # datas: the args' arrays as the forward read them;
        # edges: where each input's gradient goes (its producer node then, the leaf itself, or None)
        self.op, self.args, self.datas, self.kw, self.needs, self.edges = op, args, datas, kw, needs, edges
        self.out = self.extra = self.versions = self.hooks = self.retained = None
        self.seq = next(_seq)  # creation order: a node is always newer than the nodes it consumes


class Op:
    """A primitive: fwd(*arrays, **kw) -> array (keeps=True: fwd(ctx, ...), ctx None unless recorded,
    may set ctx.extra); vjp(ctx, g, out, *xs, **kw) -> grads (graph_vjp: its create_graph companion);
    jvp(ts, out, *xs, **kw) -> tangent. saves / saves_out: the inputs (None: all) and whether the
    output the VJP reads (or functions of ctx.needs giving them): only those are version-checked."""

    __slots__ = ("name", "fwd", "vjp", "jvp", "graph_vjp", "keeps", "saves", "saves_out", "checks", "primitive")
    # (key: the registry's name for it when two ops share a display name, e.g. the two pow ops)

    def __init__(self, name, fwd, vjp, jvp=None, *, graph_vjp=None, keeps=False, saves=None, saves_out=True,
                 key=None, register=True):
        self.name, self.fwd, self.vjp, self.jvp, self.graph_vjp = name, fwd, vjp, jvp, graph_vjp
        self.keeps, self.saves, self.saves_out = keeps, saves, saves_out
        self.checks = not (saves == () and saves_out is False)  # (most ops read something back)
        self.primitive = register  # follows the contract (a dp.Function's per-call op does not)
        if register and (key := key or name) in REGISTRY:
            raise ValueError(f"op {key!r} is registered twice")
        if register:
            REGISTRY[key] = self

    def __call__(self, *args, **kw):
        return apply(self, args, kw)


def apply(op: Op, args: tuple, kw: dict) -> Tensor:
    """Run op's forward on the args' arrays; record a Node if any arg requires grad."""
    datas, needs, edges, grad, tangent, exact, arrays = [], [], [], False, False, False, False
    for a in args:
        if isinstance(a, Tensor):
            if a._view.__class__ is tuple and a._version[0] != a._view[3] and _state.grad:
                _rebase(a)
            datas.append(a.data)
            r = a.requires_grad
            needs.append(r)
            edges.append((a._node or a) if r else None)
            grad = grad or r
            tangent = tangent or a._tangent is not None
            exact = exact or a.data.dtype.kind != "f"  # (labels, indices, masks: always version-checked)
        else:
            datas.append(a)
            needs.append(False)
            edges.append(None)
            arrays = arrays or type(a) is np.ndarray
    st = _state
    if st.anomaly:  # checked and reported in anomaly.py; NumPy's warnings would only be noise
        return anomaly.checked_apply(op, args, kw)
    node = None
    if grad and st.grad:
        if arrays and st.recorder is None:  # a plain array has no version counter: the node keeps a copy
            datas = [d.copy() if type(d) is np.ndarray and d.ndim and not isinstance(a, Tensor) else d
                     for a, d in zip(args, datas)]  # (a dp.compile recording tracks arrays by identity)
        node = Node(op, args, datas, kw, tuple(needs), tuple(edges))
    o = op.fwd(node, *datas, **kw) if op.keeps else op.fwd(*datas, **kw)
    out = Tensor(o)
    o = out.data
    if o.base is not None:  # a view of an input shares that input's version counter (and, made from one
        for a, d in zip(args, datas):  # input, remembers how: a change of the base rebases it, see _rebase)
            if isinstance(a, Tensor) and (o.base is d or o.base is d.base):
                c = out._version = _counter(a)
                out._view = (a, op, kw, c[0]) if len(args) == 1 and (node or tangent) else True
                break
    if node is not None:
        out.requires_grad = True
        out._node = node
        node.out = o
        if op.checks or exact:
            node.versions = _versions(op, node, args, out, exact)
    if st.recorder is not None:  # a dp.compile recording (compiler.py)
        st.recorder.op(op, args, kw, node, out)
    if tangent:  # forward mode: push the tangents through this op's JVP
        ts = [a._tangent if isinstance(a, Tensor) else None for a in args]
        out._tangent = np.asarray(op.jvp(ts, o, *datas, **kw), dtype=o.dtype)
    return out


def _rebase(t: Tensor) -> None:
    """A view read after its base changed in place stands for the base's new history (PyTorch's rule)."""
    base, op, kw, _ = t._view
    res = apply(op, (base,), kw)  # (a stale view of a view: its base is rebased first, in there)
    t._view, t._node, t._tangent = (base, op, kw, t._version[0]), res._node, res._tangent
    t.requires_grad = t.requires_grad or res.requires_grad


def sum_to(g, shape: tuple):
    """Sum a broadcast gradient back to `shape` (the input's own shape)."""
    if g.shape == shape:
        return g
    if g.ndim < len(shape):
        return np.broadcast_to(g, shape)
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(i + lead for i, s in enumerate(shape) if s == 1 and g.shape[i + lead] != 1)
    return g.sum(axis=axes, keepdims=True).reshape(shape)


def _accumulate(t: Tensor, g, create_graph: bool, handed: dict) -> None:
    """t.grad += g, out of place: an earlier .grad may be held by the user (memory.own: its own memory)."""
    if not create_graph:
        g = Tensor(memory.own(g, handed))
    t.grad = g if t.grad is None else t.grad + g


def run_backward(roots, grads, retain_graph=False, create_graph=False, inputs=None, fire=True):
    """Reverse-mode pass from roots seeded with grads. With `inputs`, return their gradients (no .grad
    touched; fire=False: no hook runs); otherwise accumulate into the leaves' .grad. Nodes are popped newest
    first (a max-heap on creation order): a topological order, found without recursion."""
    if _state.recorder is not None:
        _state.recorder.backward(roots, grads, retain_graph, create_graph, inputs)
    pending, heap, leaves, handed = {}, [], [], {}
    owned = memory.Owned()
    for r, g in zip(roots, grads):
        _send(r._node or r, g, pending, heap, leaves, owned)
    want = None if inputs is None else {id(t._node or t): None for t in inputs}
    deps = hooks.dependencies(roots) if want is None else None  # {leaf: edges still to arrive}
    st = _state
    saved, st.grad = st.grad, create_graph  # VJPs record a graph only for create_graph
    check, outer = st.anomaly, hooks.begin_pass()
    try:
        while heap:
            node = heapq.heappop(heap)[1]
            g = pending.pop(node)
            if node.args is None:
                raise RuntimeError(
                    f"Trying to backward through the graph a second time (op '{node.op.name}'): its "
                    "saved values were freed by the first backward. Call backward(retain_graph=True) "
                    "the first time if you need to backward twice.")
            if node.versions:
                _check_versions(node)
            if want is not None and id(node) in want:
                want[id(node)] = g
                owned.hand_out(g)
            if node.hooks and fire:
                g = hooks.run_hooks(node.hooks, g, create_graph, owned, handed)
            if want is None and node.retained is not None and (t := node.retained()) is not None:
                owned.hand_out(g)
                _accumulate(t, g, create_graph, handed)
            args, datas = node.args, node.datas
            igs = (anomaly.checked_vjp if check else _call_vjp)(node, g, create_graph)
            for e, d, ig in zip(node.edges, datas, igs):
                if e is None:
                    continue
                if ig is not None:
                    if type(ig) is not np.ndarray or ig.shape != d.shape or ig.dtype != d.dtype:
                        ig = fit(ig, d, create_graph)  # (inline test: most gradients fit already)
                    if check:
                        anomaly.check_grad(node, ig, args)
                    owned.add(ig, node, g)
                    _send(e, ig, pending, heap, leaves, owned)
                if deps is not None and type(e) is not Node:  # a leaf is final once its last edge has arrived
                    deps[e] -= 1
                    if not deps[e] and e in pending:
                        _finish(e, pending, want, create_graph, owned, handed, fire)
            owned.drop(g)
            if not retain_graph:
                node.args = node.datas = node.out = node.kw = node.extra = None
        for leaf in [t for t in leaves if t in pending]:  # not finished yet (all, without dependency counts)
            _finish(leaf, pending, want, create_graph, owned, handed, fire)
        hooks.run_callbacks()
    finally:
        st.grad = saved
        hooks.end_pass(outer)
    if want is not None:
        return [want[id(t._node or t)] for t in inputs]


def fit(ig, d, create_graph: bool):
    """The gradient an op sends an input, made the input's own: summed over broadcast axes to its
    shape, in its dtype (an ndarray unless create_graph). Every mode sends gradients through this."""
    if type(ig) is Tensor and not create_graph:
        ig = ig.data  # (a reference VJP that called ops)
    if ig.shape != d.shape:
        ig = sum_to(ig, d.shape)
    return ig if ig.dtype == d.dtype else ig.astype(d.dtype)


def _finish(leaf, pending, want, create_graph, owned, handed, fire=True) -> None:
    """All of a leaf's gradient has arrived: hooks run once, on the sum; .grad; post-accumulate hooks."""
    g = pending.pop(leaf)
    owned.hand_out(g)
    if want is not None and id(leaf) in want:
        want[id(leaf)] = g
    if leaf._hooks and fire:
        g = hooks.run_hooks(leaf._hooks, g, create_graph, owned, handed)
    if want is None:
        if _state.recorder is None:
            _accumulate(leaf, g, create_graph, handed)
        else:  # (the recorder runs the engine's own accumulation, handed over with the event)
            _state.recorder.accumulate(leaf, g, create_graph, handed, _accumulate)
        for fn in list((leaf._post_hooks or {}).values()):
            fn(leaf)


def _send(key, g, pending, heap, leaves, owned) -> None:
    """Add g to what a node (or leaf) has received; the first arrival queues it."""
    if key in pending:
        old = pending[key]
        s = pending[key] = old + g
        owned.new(s)  # a new array of ours
        owned.drop(old)
        owned.drop(g)
    else:
        pending[key] = g
        if type(key) is Node:
            heapq.heappush(heap, (-key.seq, key))
        else:
            leaves.append(key)


def _call_vjp(node, g, create_graph):
    if _state.recorder is not None:  # (the recorder runs the engine's own VJP call, handed over with the event)
        return _state.recorder.vjp(node, g, create_graph, _run_vjp)
    return _run_vjp(node, g, create_graph)


def _run_vjp(node, g, create_graph):
    op = node.op
    if create_graph:  # recompute the output as a Tensor so the VJP itself is differentiable
        args = _as_read(node)
        return (op.graph_vjp or op.vjp)(node, g, apply(op, args, node.kw), *args, **node.kw)
    return op.vjp(node, g, node.out, *node.datas, **node.kw)


def _as_read(node) -> tuple:
    """node's inputs as Tensors with the history they had when the op read them (create_graph)."""
    args = list(node.args)
    for i, (a, e) in enumerate(zip(args, node.edges)):
        if type(a) is np.ndarray:
            args[i] = node.datas[i]  # the node's copy
        elif e is not None and (a._node or a) is not e:
            args[i] = t = Tensor(node.datas[i])
            t._node, t.requires_grad = e, True
    return tuple(args)


def seed(t: Tensor, gradient, create_graph: bool, who: str = "backward"):
    """The gradient a pass starts from at t: `gradient` (copied: never aliased) or 1 for one element."""
    if not t.requires_grad:
        raise RuntimeError(f"{who}: this tensor does not require grad and has no graph; create the "
                           "inputs with requires_grad=True (and not under dp.no_grad()) first")
    if gradient is None:
        if t.data.size != 1:
            raise RuntimeError(f"{who}: grad can be implicitly created only for scalar outputs; this tensor "
                               f"has shape {t.shape}: pass the gradient of that shape (e.g. dp.ones_like(y))")
        gradient = np.ones(t.shape, t.dtype)
    gradient = np.array(gradient.data if isinstance(gradient, Tensor) else gradient, dtype=t.dtype)
    if gradient.shape != t.shape:
        raise ValueError(f"{who}: gradient has shape {gradient.shape} but the tensor has shape {t.shape}")
    return Tensor(gradient) if create_graph else gradient


def backward(t: Tensor, gradient=None, retain_graph=False, create_graph=False) -> None:
    """Tensor.backward: accumulate d(t)/d(leaf) (times `gradient`) into every leaf's .grad."""
    run_backward([t], [seed(t, gradient, create_graph)], retain_graph or create_graph, create_graph)

