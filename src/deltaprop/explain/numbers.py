"""How the explain tools print numbers: the digits the dtype holds, and never "-0".

float64 (and wider) as %.9g, float32 as %.7g, float16 as %.4g: printing a float32 value with
9 digits shows digits it does not hold (0.15 stored in float32 prints as 0.150000006).
"""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["digits", "fmt", "fmt_factor"]


def digits(dtype: Any = np.float64) -> int:
    """Significant digits shown for a dtype: 9 for float64, 7 for float32, 4 for float16."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        return 9
    if dt.kind != "f":
        return 9
    return {2: 4, 4: 7}.get(dt.itemsize, 9)


def fmt(v: Any, dtype: Any = None) -> str:
    """One scalar with `digits(dtype)` significant digits (dtype: v's own when it has one, else
    float64); a negative zero prints as 0."""
    a = np.asarray(v)
    if dtype is None:
        dtype = a.dtype if a.dtype.kind == "f" else np.float64
    f = float(a.reshape(-1)[0]) if a.size else float("nan")
    s = "%.*g" % (digits(dtype), f)
    return "0" if s == "-0" else s


def fmt_factor(v: Any, dtype: Any = None) -> str:
    """fmt(v), in parentheses when negative (for a factor in a product or a term in a sum)."""
    s = fmt(v, dtype)
    return f"({s})" if s.startswith("-") else s
