"""The library's only global state: default float dtype and the default random generator.

(Grad mode and anomaly mode live in modes.py.)
"""
from __future__ import annotations

import threading

import numpy as np

_default_dtype: np.dtype = np.dtype(np.float32)
_rng: np.random.Generator | None = None  # made on first use: numpy.random takes ~20 ms to import
_rng_lock = threading.Lock()  # (a first use racing manual_seed in another thread must not undo the seed)


def set_default_dtype(dtype) -> None:
    """Set the dtype that Python floats and the creation functions produce (float32 or float64)."""
    global _default_dtype
    d = np.dtype(dtype)
    if d.kind != "f":
        raise TypeError(f"set_default_dtype: expected a floating dtype such as np.float32 or np.float64, got {d}")
    _default_dtype = d


def get_default_dtype() -> np.dtype:
    """The current default float dtype (float32 unless changed)."""
    return _default_dtype


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed the library's default random generator (used by randn, rand, init, dropout...)."""
    global _rng
    rng = np.random.default_rng(seed)
    with _rng_lock:
        _rng = rng
    return rng


def default_generator() -> np.random.Generator:
    """The library's default random generator (look it up at call time: manual_seed replaces it)."""
    global _rng
    rng = _rng
    if rng is None:
        with _rng_lock:
            if _rng is None:
                _rng = np.random.default_rng()
            rng = _rng
    return rng
