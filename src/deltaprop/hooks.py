"""Hooks: code outside the engine that runs at points of a backward pass.

* A tensor's gradient hook (`Tensor.register_hook`) runs once per pass with the tensor's summed
  gradient and may replace it (`run_hooks`). A leaf's hooks live on the leaf, a non-leaf's on
  the node that made it (the node is what the pass visits).
* A leaf's post-accumulate-grad hook (PyTorch's `register_post_accumulate_grad_hook`) runs as
  soon as the leaf's gradient for this pass is final and added to its `.grad`, not at the end of
  the pass: `dependencies` counts, before the pass, how many graph edges reach each leaf, and the
  engine finishes a leaf when its last edge has delivered. Data-parallel training starts the
  Allreduce of a bucket there, overlapping communication with the rest of backward.
* `queue_callback(fn)` (PyTorch's `Variable._execution_engine.queue_callback`) runs fn once the
  current pass has finished every leaf: where data-parallel training waits for its Allreduces.
"""
from __future__ import annotations

import itertools
import threading
import weakref
from typing import Any, Callable

import numpy as np

from .tensor import Tensor

# Leaves with a post-accumulate hook registered now, by id (a WeakSet would compare Tensors with
# their elementwise ==). Removing a leaf's last hook takes it out, and so does its collection (a
# weak reference is a language guarantee). While it is empty, passes skip the dependency count;
# correctness never rests on it (a leaf it missed is finished at the end of the pass).
_hooked: "weakref.WeakValueDictionary[int, Tensor]" = weakref.WeakValueDictionary()
_ids = itertools.count()  # hook keys: unique for the process (an id() is reused once its object is freed)
_pass = threading.local()  # this thread's current pass: its callback queue (None outside a pass)


class RemovableHandle:
    """Returned by register_hook and register_post_accumulate_grad_hook; .remove() unregisters the hook."""

    def __init__(self, hooks: dict, fn: Callable, leaf: Tensor | None = None):
        self.hooks, self.key = hooks, next(_ids)
        self.leaf = None if leaf is None else weakref.ref(leaf)  # (post-accumulate hooks: the leaf in _hooked)
        hooks[self.key] = fn

    def remove(self) -> None:
        """Unregister the hook (a second call does nothing)."""
        self.hooks.pop(self.key, None)
        if self.leaf is not None and (t := self.leaf()) is not None and not t._post_hooks:
            _hooked.pop(id(t), None)  # (its last hook: t._post_hooks, which may be newer than self.hooks)


def register(t: Tensor, fn: Callable) -> RemovableHandle:
    """Tensor.register_hook: fn(grad) -> Tensor | ndarray | None, once per pass with t's summed grad."""
    if not t.requires_grad:
        raise RuntimeError("register_hook: cannot register a hook on a tensor that does not require grad")
    owner: Any = t._node if t._node is not None else t  # non-leaf hooks live on the node
    if owner is t:
        t._hooks = hooks = t._hooks or {}
    else:
        owner.hooks = hooks = owner.hooks or {}
    return RemovableHandle(hooks, fn)


def run_hooks(hooks: dict, g, create_graph: bool, owned, handed: dict):
    """Run a tensor's gradient hooks on g in order (each may replace it); returns the gradient."""
    for fn in list(hooks.values()):
        if not create_graph:  # the hook may keep it: no .grad shares it, and it is never recycled
            owned.hand_out(g)
            handed[id(g if g.base is None else g.base)] = g
        r = fn(g if create_graph else Tensor(g))
        if r is not None:
            g = r if create_graph else np.asarray(r.data if isinstance(r, Tensor) else r, dtype=g.dtype)
    return g


def register_post_accumulate(t, fn: Callable):
    """Tensor.register_post_accumulate_grad_hook: fn(t) after t.grad has received this pass's gradient."""
    if t._node is not None or not t.requires_grad:
        raise RuntimeError("register_post_accumulate_grad_hook: only leaf tensors that require grad accumulate "
                           f"a .grad (this one has shape {t.shape}); use register_hook on a non-leaf tensor")
    t._post_hooks = t._post_hooks or {}
    _hooked[id(t)] = t
    return RemovableHandle(t._post_hooks, fn, t)


def dependencies(roots) -> dict | None:
    """{leaf: number of edges reaching it} over the graph of roots, or None when no leaf anywhere has
    a post-accumulate hook now (then every leaf is finished at the end of the pass)."""
    return count_edges(roots) if _hooked else None


def count_edges(roots) -> dict:
    """{leaf: number of graph edges reaching it} over the graph of roots."""
    deps: dict = {}
    seen: set = set()
    stack = [r._node for r in roots if r._node is not None]
    while stack:
        node = stack.pop()
        if node in seen or node.args is None:  # (a freed graph: the pass itself raises on it)
            continue
        seen.add(node)
        for e in node.edges:
            if e is None:
                continue
            if isinstance(e, Tensor):  # a leaf
                deps[e] = deps.get(e, 0) + 1
            else:
                stack.append(e)
    return deps


def queue_callback(fn: Callable[[], None]) -> None:
    """Run fn() when the current backward pass has finished (every .grad written, every hook run).
    Call it from a hook during backward; outside a pass it raises RuntimeError."""
    if getattr(_pass, "queue", None) is None:
        raise RuntimeError("queue_callback: there is no backward pass running in this thread; call it from a "
                           "hook during backward()")
    _pass.queue.append(fn)


def begin_pass():
    """A new callback queue for a pass starting in this thread; returns the outer one (nested passes)."""
    outer = getattr(_pass, "queue", None)
    _pass.queue = []
    return outer


def run_callbacks() -> None:
    """Run the callbacks queued during this pass, in order (including any they queue themselves)."""
    q = _pass.queue
    while q:  # (a callback may queue another)
        q.pop(0)()


def end_pass(outer) -> None:
    """Restore the outer pass's callback queue (None outside any pass) when a pass ends."""
    _pass.queue = outer
