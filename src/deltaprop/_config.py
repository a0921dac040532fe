"""The library's only global state: default float dtype and the default random generator.

(Grad mode and anomaly mode live in autograd.py.)
"""
from __future__ import annotations

import numpy as np

_default_dtype: np.dtype = np.dtype(np.float32)
_rng: np.random.Generator = np.random.default_rng()


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
    _rng = np.random.default_rng(seed)
    return _rng


def default_generator() -> np.random.Generator:
    """The library's default random generator (look it up at call time: manual_seed replaces it)."""
    return _rng
