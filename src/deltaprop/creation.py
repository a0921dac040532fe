"""Tensor creation: dp.tensor (with its dtype rules), zeros, ones, full, arange, eye, randn, rand, zeros_like, ones_like."""
from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from . import _config
from ._config import get_default_dtype
from .modes import effect
from .tensor import Tensor


def _to_array(data: Any, dtype=None) -> np.ndarray:
    """Convert user data to an ndarray: Python floats take the default dtype, ndarrays keep theirs."""
    if isinstance(data, Tensor):
        data = data.data
    native = not isinstance(data, (np.ndarray, np.generic))
    try:
        arr = np.array(data, dtype=dtype)
    except (ValueError, TypeError) as e:
        raise TypeError(f"dp.tensor: cannot make a tensor from {type(data).__name__} ({e}); "
                        "pass a number, a (nested) list of numbers or an ndarray") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"dp.tensor: cannot make a tensor from {type(data).__name__} "
                        f"(dtype {arr.dtype}); pass numbers, a list of numbers or a numeric ndarray")
    if dtype is None and native and arr.dtype == np.float64:
        arr = arr.astype(get_default_dtype())
    return arr


def tensor(data: Any, dtype=None, requires_grad: bool = False) -> Tensor:
    """A new tensor (a copy of data): Python floats -> default dtype, ints -> int64."""
    # (an effect: a compiled step makes it again, from that call's data, on every replay)
    return effect(_new_tensor, data, dtype, requires_grad)


def _new_tensor(data: Any, dtype, requires_grad: bool) -> Tensor:
    return Tensor(_to_array(data, dtype), requires_grad=requires_grad)


def _creator(name, fill, doc):
    def make(*shape, dtype=None, requires_grad: bool = False) -> Tensor:
        shape = tuple(shape[0]) if len(shape) == 1 and not isinstance(shape[0], numbers.Integral) else shape
        return Tensor(fill(shape, np.dtype(dtype or get_default_dtype())), requires_grad=requires_grad)
    make.__name__ = make.__qualname__ = name
    make.__doc__ = doc + " Shape as zeros(2, 3) or zeros((2, 3)); dtype defaults to the default float dtype."
    return make


zeros = _creator("zeros", np.zeros, "A tensor of zeros.")
ones = _creator("ones", np.ones, "A tensor of ones.")
randn = _creator("randn", lambda s, d: np.asarray(_config.default_generator().standard_normal(s), d),
                 "Samples of the standard normal N(0, 1), from the default generator (dp.manual_seed).")
rand = _creator("rand", lambda s, d: np.asarray(_config.default_generator().random(s), d),
                "Samples of the uniform distribution on [0, 1), from the default generator (dp.manual_seed).")


def full(shape, fill_value, dtype=None, requires_grad: bool = False) -> Tensor:
    """A tensor of `shape` filled with fill_value (a Python float gives the default float dtype)."""
    shape = (shape,) if isinstance(shape, numbers.Integral) else tuple(shape)
    dtype = dtype or (get_default_dtype() if isinstance(fill_value, float) else None)
    return Tensor(np.full(shape, fill_value, dtype=dtype), requires_grad=requires_grad)


def arange(*args, dtype=None, requires_grad: bool = False) -> Tensor:
    """Evenly spaced values as np.arange(start, stop, step); float results take the default dtype."""
    a = np.arange(*args, dtype=dtype)
    return Tensor(a.astype(get_default_dtype()) if dtype is None and a.dtype == np.float64 else a, requires_grad)


def eye(n: int, m: int | None = None, dtype=None, requires_grad: bool = False) -> Tensor:
    """The n x m identity matrix (m = n by default), in the default float dtype."""
    return Tensor(np.eye(n, m, dtype=dtype or get_default_dtype()), requires_grad=requires_grad)


def zeros_like(x, dtype=None, requires_grad: bool = False) -> Tensor:
    """Zeros with x's shape and dtype (x: a Tensor or array)."""
    return Tensor(np.zeros_like(np.asarray(x), dtype=dtype), requires_grad=requires_grad)


def ones_like(x, dtype=None, requires_grad: bool = False) -> Tensor:
    """Ones with x's shape and dtype (x: a Tensor or array)."""
    return Tensor(np.ones_like(np.asarray(x), dtype=dtype), requires_grad=requires_grad)


def from_numpy(array: np.ndarray) -> Tensor:
    """torch.from_numpy: a tensor sharing the ndarray's memory (a change to either shows in the other)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected np.ndarray, got {type(array).__name__}")
    if array.dtype.kind not in "biuf":
        raise TypeError(f"from_numpy: can't convert an array of dtype {array.dtype}; supported are float, int, "
                        "uint and bool arrays")
    return Tensor(array)
