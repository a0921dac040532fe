"""Grad mode and anomaly mode: per thread, as in PyTorch (a new thread starts with grad on and
anomaly off). The engine reads `_state`; users switch modes with the context managers below,
which also work as decorators, generator functions included. `effect` runs a change of state
outside the ops and tells the thread's dp.compile recording, if any (`_state.recorder`,
compiler.py), so that its replays repeat it."""
from __future__ import annotations

import contextlib
import functools
import inspect
import threading
from typing import Any, Callable


class _State(threading.local):
    """Grad and anomaly modes: per thread, as in PyTorch (a new thread starts with the defaults)."""
    grad = True
    anomaly = False
    recorder = None  # a dp.compile recording in progress (compiler.py): told about ops, VJPs, reads


_state = _State()


class _Mode(contextlib.ContextDecorator):
    """Context manager / decorator that sets a per-thread mode and restores it on exit. As a
    decorator on a generator function, the mode holds inside the generator at every resume."""

    def __init__(self, name: str, value: bool):
        self.name, self.value = name, value
        self.saved: list[bool] = []

    def __enter__(self):
        self.saved.append(getattr(_state, self.name))
        setattr(_state, self.name, self.value)

    def __exit__(self, *exc):
        setattr(_state, self.name, self.saved.pop())

    def __call__(self, fn):
        if not inspect.isgeneratorfunction(fn):
            return super().__call__(fn)
        mode = type(self)(self.name, self.value)

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            gen = fn(*args, **kwargs)
            sent = None
            while True:
                try:
                    with mode:
                        item = gen.send(sent)
                except StopIteration as stop:
                    return stop.value
                try:
                    sent = yield item
                except GeneratorExit:
                    gen.close()
                    raise
                except BaseException as exc:  # thrown in: pass it to the generator, under the mode
                    with mode:
                        item = gen.throw(exc)
                    sent = yield item
        return wrapper


def no_grad() -> _Mode:
    """Ops inside record no graph (use for updates and evaluation). Per thread."""
    return _Mode("grad", False)


def enable_grad() -> _Mode:
    """Ops inside record the graph again (e.g. within no_grad). Per thread."""
    return _Mode("grad", True)


def is_grad_enabled() -> bool:
    """Whether ops record the graph right now, in this thread."""
    return _state.grad


def set_grad_enabled(mode: bool) -> bool:
    """Switch graph recording on or off in this thread (as no_grad/enable_grad do); returns the
    previous mode."""
    old, _state.grad = _state.grad, mode
    return old


def is_anomaly_enabled() -> bool:
    """Whether detect_anomaly is on in this thread."""
    return _state.anomaly


def recorder() -> Any:
    """This thread's dp.compile recorder (None unless a recording runs): the one hook through which
    the engine tells dp.compile what it does. The engine calls, on the recorder:
    op(op, args, kw, node, out) after each op; backward(roots, grads, retain_graph, create_graph,
    inputs) before a pass; vjp(node, g, create_graph, run) in place of each VJP call, where
    run(node, g, create_graph) is the engine's call; accumulate(leaf, g, create_graph, handed, run)
    in place of each .grad accumulation, where run(leaf, g, create_graph, handed) is the engine's;
    bump(t) on an in-place change, read(t) when a value is read into Python (returns the array),
    module(m) when a module is called, effect(fn, args) from `effect`. Nodes are read through
    deltaprop.graph."""
    return _state.recorder


def set_recorder(rec: Any) -> Any:
    """Install rec as this thread's recorder (None: none); returns the previous one."""
    old, _state.recorder = _state.recorder, rec
    return old


def effect(fn: Callable, *args: Any) -> Any:
    """Run fn(*args) now: a change of state outside the ops (an optimizer update, a random mask,
    running statistics). A compiled step that records it calls it again, at this point, on every
    replay, with the replay's own arrays in place of the recorded ones."""
    rec = _state.recorder
    return fn(*args) if rec is None else rec.effect(fn, args)


def detect_anomaly() -> _Mode:
    """NaN in a forward value, or NaN/Inf in a gradient, raises FloatingPointError naming the op."""
    return _Mode("anomaly", True)
