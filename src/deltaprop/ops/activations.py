"""GELU and the normal CDF it needs: forward, VJP and JVP side by side."""
from __future__ import annotations

import numpy as np

from .. import memory
from ..autograd import Op
from ..tensor import Tensor
from ._special import ndtr, ndtr_single
from .elementwise import _new

# -- gelu ------------------------------------------------------------------------------------------
_INV_SQRT_2PI = 0.3989422804014327
_K = 0.7978845608028654  # sqrt(2 / pi)
_C = 0.044715


def _pdf(x):
    """phi(x) = exp(-x^2/2) / sqrt(2 pi) (NumPy calls, so it also works on Tensors)."""
    return np.exp(-0.5 * x * x) * _INV_SQRT_2PI


def _ndtr_raw(x):
    if x.dtype.kind == "f" and x.dtype.itemsize <= 4:  # single precision needs no more than this
        return ndtr_single(x)
    return ndtr(x).astype(x.dtype, copy=False)


_ndtr = Op("ndtr", _ndtr_raw, lambda ctx, g, out, x: (g * _pdf(x),), lambda ts, out, x: ts[0] * _pdf(x),
           saves_out=False)


def _cdf(x):
    return _ndtr(x) if isinstance(x, Tensor) else _ndtr_raw(x)


def _gelu_fwd(ctx, x, approximate):
    """x Phi(x), or the tanh form; keeps Phi(x) (or the tanh) in ctx.extra for the fast VJP."""
    if approximate == "tanh":
        if x.dtype.kind != "f":
            return 0.5 * x * (1 + np.tanh(_K * (x + _C * x * x * x)))
        th = np.multiply(x, x, out=_new(x))  # tanh(K x (1 + C x^2)), in place
        th *= _C
        th += 1
        th *= x
        th *= _K
        np.tanh(th, out=th)
        if ctx is not None:
            ctx.extra = th
        out = np.add(th, 1, out=_new(x))
        out *= x
        out *= 0.5
        return out
    phi = _ndtr_raw(x)
    if ctx is not None:
        ctx.extra = phi
    return x * phi


def _gelu_deriv(x, approximate, kept=None):
    """GELU'(x); `kept`: the forward's tanh (or Phi) for the in-place form on ndarrays."""
    if approximate == "tanh":
        if kept is None:
            t = np.tanh(_K * (x + _C * x * x * x))
            return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * (_K * (1 + 3 * _C * x * x))
        d = np.multiply(kept, kept, out=_new(x))  # 1 - t^2 ...
        np.subtract(1, d, out=d)
        q = np.multiply(x, x, out=_new(x))  # ... times K x (1 + 3 C x^2) / 2 ...
        q *= 3 * _C
        q += 1
        q *= x
        q *= 0.5 * _K
        d *= q
        np.multiply(kept, 0.5, out=q)  # ... plus (1 + t) / 2
        d += q
        d += 0.5
        memory.give(q)
        return d
    if kept is None:
        return _cdf(x) + x * _pdf(x)
    d = np.multiply(x, x, out=_new(x))  # Phi(x) + x phi(x), in place
    d *= -0.5
    np.exp(d, out=d)
    d *= _INV_SQRT_2PI
    d *= x
    d += kept
    return d


def _gelu_fast(ctx, g, out, x, approximate):
    kept, ctx.extra = ctx.extra, None  # (a retained graph's second backward recomputes it)
    d = _gelu_deriv(x, approximate, kept)
    r = np.multiply(g, d, out=d) if np.result_type(g, d) == d.dtype else g * d
    return (r,)


def _gelu_jvp(ts, out, x, approximate):
    if x.dtype.kind != "f":
        return ts[0] * _gelu_deriv(x, approximate)
    kept = np.tanh(_K * (x + _C * x * x * x)) if approximate == "tanh" else _ndtr_raw(x)
    return ts[0] * _gelu_deriv(x, approximate, kept)  # (the fast VJP's formula: JVP and VJP agree)


gelu = Op("gelu", _gelu_fwd, lambda ctx, g, out, x, approximate: (g * _gelu_deriv(x, approximate),), _gelu_jvp,
          fast=_gelu_fast, keeps=True, saves_out=False)


