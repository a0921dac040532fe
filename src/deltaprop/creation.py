"""Tensor creation: zeros, ones, full, arange, eye, randn, rand, zeros_like, ones_like."""
from __future__ import annotations

import numbers

import numpy as np

from . import _config
from ._config import get_default_dtype
from .tensor import Tensor


def _creator(fill):
    def make(*shape, dtype=None, requires_grad: bool = False) -> Tensor:
        shape = tuple(shape[0]) if len(shape) == 1 and not isinstance(shape[0], numbers.Integral) else shape
        return Tensor(fill(shape, np.dtype(dtype or get_default_dtype())), requires_grad=requires_grad)
    return make


zeros = _creator(np.zeros)
ones = _creator(np.ones)
randn = _creator(lambda s, d: _config.default_generator().standard_normal(s).astype(d))
rand = _creator(lambda s, d: _config.default_generator().random(s).astype(d))


def full(shape, fill_value, dtype=None, requires_grad: bool = False) -> Tensor:
    shape = (shape,) if isinstance(shape, numbers.Integral) else tuple(shape)
    dtype = dtype or (get_default_dtype() if isinstance(fill_value, float) else None)
    return Tensor(np.full(shape, fill_value, dtype=dtype), requires_grad=requires_grad)


def arange(*args, dtype=None, requires_grad: bool = False) -> Tensor:
    a = np.arange(*args, dtype=dtype)
    return Tensor(a.astype(get_default_dtype()) if dtype is None and a.dtype == np.float64 else a, requires_grad)


def eye(n: int, m: int | None = None, dtype=None, requires_grad: bool = False) -> Tensor:
    return Tensor(np.eye(n, m, dtype=dtype or get_default_dtype()), requires_grad=requires_grad)


def zeros_like(x, dtype=None, requires_grad: bool = False) -> Tensor:
    return Tensor(np.zeros_like(np.asarray(x), dtype=dtype), requires_grad=requires_grad)


def ones_like(x, dtype=None, requires_grad: bool = False) -> Tensor:
    return Tensor(np.ones_like(np.asarray(x), dtype=dtype), requires_grad=requires_grad)
