"""Small argument checks shared by the data modules."""
from __future__ import annotations

import numbers
from typing import Any

import numpy as np


def float_dtype(dtype: Any) -> np.dtype:
    """The float dtype to produce: `dtype`, or the library's default when None."""
    if dtype is None:
        from deltaprop._config import get_default_dtype

        return np.dtype(get_default_dtype())
    d = np.dtype(dtype)
    if d.kind != "f":
        raise TypeError(f"dtype must be a floating dtype such as np.float32 or np.float64, got {d}")
    return d


def check_int(name: str, value: Any, minimum: int | None = None) -> int:
    """`value` as an int (bools and floats refused); ValueError below `minimum`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {name}={value}")
    return value


def check_nonneg_float(name: str, value: Any) -> float:
    """`value` as a finite float >= 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    v = float(value)
    if not np.isfinite(v) or v < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {name}={value!r}")
    return v


def check_seed(value: Any, name: str = "seed") -> int | None:
    """A seed for np.random.default_rng: None or an int >= 0."""
    if value is None:
        return None
    return check_int(name, value, minimum=0)


def as_array(a: Any) -> np.ndarray:
    """An ndarray view of `a` (ndarray, deltaprop Tensor via __array__, or array-like)."""
    if isinstance(a, np.ndarray):
        return a
    data = getattr(a, "data", None)
    if isinstance(data, np.ndarray) and type(a).__module__.startswith("deltaprop"):
        return data
    return np.asarray(a)


def is_tensor(a: Any) -> bool:
    """True when `a` is a deltaprop Tensor (without importing the engine if it is not loaded)."""
    import sys

    mod = sys.modules.get("deltaprop.tensor")
    cls = getattr(mod, "Tensor", None) if mod is not None else None
    return cls is not None and isinstance(a, cls)
