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


def effect(fn: Callable, *args: Any) -> Any:
    """Run fn(*args) now: a change of state outside the ops (an optimizer update, a random mask,
    running statistics). A compiled step that records it calls it again, at this point, on every
    replay, with the replay's own arrays in place of the recorded ones."""
    rec = _state.recorder
    return fn(*args) if rec is None else rec.effect(fn, args)


def detect_anomaly() -> _Mode:
    """NaN in a forward value, or NaN/Inf in a gradient, raises FloatingPointError naming the op."""
    return _Mode("anomaly", True)
