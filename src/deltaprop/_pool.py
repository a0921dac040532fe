"""A small cache of large freed arrays, reused as outputs of the same shape and dtype.

Arrays of a few hundred KB come from mmap, or from a heap that glibc trims when they are freed,
so a training step that allocates the same activations and gradients every time pays about one
page fault per 4 KB, every step (measured: ~250 faults, 0.5 ms, per step of the CNN benchmark).
The engine gives back only arrays it can prove nobody else holds (their reference count, no
view of them, not views themselves), and the ops that make large outputs take them from here.
"""
from __future__ import annotations

import sys

import numpy as np

MIN_BYTES = 64 << 10  # smaller arrays are cheap: NumPy and malloc cache them already
_MAX_BYTES = 32 << 20  # the most this cache ever holds
_PER_KEY = 8
_free: dict[tuple, list[np.ndarray]] = {}
_held = 0


def take(shape: tuple, dtype) -> np.ndarray:
    """An uninitialised array of this shape and dtype: a recycled one when there is one."""
    global _held
    stack = _free.get((shape, np.dtype(dtype)))
    if stack:
        a = stack.pop()
        _held -= a.nbytes
        return a
    return np.empty(shape, dtype)


def give(a, refs: int) -> None:
    """Keep `a` for reuse if the caller's `refs` references are the only ones left (checked here:
    anything else holding it, or a view of it, raises its reference count)."""
    global _held
    if (type(a) is np.ndarray and a.nbytes >= MIN_BYTES and a.base is None and a.flags.writeable
            and a.flags.c_contiguous and sys.getrefcount(a) == refs + 2 and _held + a.nbytes <= _MAX_BYTES):
        stack = _free.setdefault((a.shape, a.dtype), [])
        if len(stack) < _PER_KEY:
            stack.append(a)
            _held += a.nbytes


def clear() -> None:
    """Release every cached array."""
    global _held
    _free.clear()
    _held = 0
