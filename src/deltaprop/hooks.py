"""Points of a backward pass that code outside the engine can hook into.

* A leaf's post-accumulate-grad hook (PyTorch's `register_post_accumulate_grad_hook`) runs as
  soon as the leaf's gradient for this pass is final and added to its `.grad`, not at the end of
  the pass: `dependencies` counts, before the pass, how many graph edges reach each leaf, and the
  engine finishes a leaf when its last edge has delivered. Data-parallel training starts the
  Allreduce of a bucket there, overlapping communication with the rest of backward.
* `queue_callback(fn)` (PyTorch's `Variable._execution_engine.queue_callback`) runs fn once the
  current pass has finished every leaf: where data-parallel training waits for its Allreduces.
"""
from __future__ import annotations

import threading
import weakref
from typing import Callable

_hooked: "weakref.WeakSet" = weakref.WeakSet()  # leaves that ever had a post-accumulate hook (a cheap
# test that skips the dependency count in passes that cannot need it; correctness never rests on it)
_pass = threading.local()  # this thread's current pass: its callback queue (None outside a pass)


def register_post_accumulate(t, fn: Callable):
    """Tensor.register_post_accumulate_grad_hook: fn(t) after t.grad has received this pass's gradient."""
    if t._node is not None or not t.requires_grad:
        raise RuntimeError("register_post_accumulate_grad_hook: only leaf tensors that require grad accumulate "
                           f"a .grad (this one has shape {t.shape}); use register_hook on a non-leaf tensor")
    from .autograd import RemovableHandle
    t._post_hooks = t._post_hooks or {}
    _hooked.add(t)
    return RemovableHandle(t._post_hooks, fn)


def dependencies(roots) -> dict | None:
    """{leaf: number of edges reaching it} over the graph of roots, or None when no leaf anywhere has
    a post-accumulate hook (then every leaf is finished at the end of the pass, as before)."""
    if not _hooked:
        return None
    deps, seen = {}, set()
    stack = [r._node for r in roots if r._node is not None]
    while stack:
        node = stack.pop()
        if node in seen or node.args is None:  # (a freed graph: the pass itself raises on it)
            continue
        seen.add(node)
        for a in node.args:
            if getattr(a, "requires_grad", False):
                if a._node is None:
                    deps[a] = deps.get(a, 0) + 1
                else:
                    stack.append(a._node)
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
