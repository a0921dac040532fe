"""GELU and the normal CDF it needs: forward, VJP and JVP side by side.

Integer inputs become the default float dtype (elementwise.floating). float16 is computed in
float32 and rounded once at the end, as PyTorch's CPU kernels do: in float16 the tanh form's
x**3 overflows from |x| ~ 79, which made its gradient inf * 0 = NaN.
"""
from __future__ import annotations

import numpy as np

from .. import memory
from ..autograd import Op
from ..tensor import Tensor
from ._special import ndtr, ndtr_single
from .elementwise import _new, floating, raw

# -- gelu ------------------------------------------------------------------------------------------
_INV_SQRT_2PI = 0.3989422804014327
_K = 0.7978845608028654  # sqrt(2 / pi)
_C = 0.044715


def _pdf(x):
    """phi(x) = exp(-x^2/2) / sqrt(2 pi) (NumPy calls, so it also works on Tensors)."""
    return np.exp(-0.5 * x * x) * _INV_SQRT_2PI


def _ndtr_raw(x):
    x = floating(x)
    if x.dtype.itemsize <= 4:  # single precision needs no more than this
        return ndtr_single(x)
    return ndtr(x).astype(x.dtype, copy=False)


_ndtr = Op("ndtr", _ndtr_raw, lambda ctx, g, out, x: (g * _pdf(x),), lambda ts, out, x: ts[0] * _pdf(x),
           saves_out=False)


def _cdf(x):
    return _ndtr(x) if isinstance(x, Tensor) else _ndtr_raw(x)


def _tanh_part(x):
    """tanh(K x (1 + C x^2)) on an ndarray, in place (the forward's and the kept value's one formula)."""
    th = np.multiply(x, x, out=_new(x))
    th *= _C
    th += 1
    th *= x
    th *= _K
    return np.tanh(th, out=th)


def _gelu_fwd(ctx, x, approximate):
    """x Phi(x), or the tanh form; keeps Phi(x) (or the tanh) in ctx.extra for the fast VJP."""
    if x.dtype.kind != "f":
        x = floating(x)
    if x.dtype == np.float16:  # in float32, rounded once (the kept tanh / Phi stays float32)
        return _gelu_fwd(ctx, x.astype(np.float32), approximate).astype(np.float16)
    if approximate == "tanh":
        th = _tanh_part(x)
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
    """GELU'(x); `kept`: the forward's tanh (or Phi) for the in-place form on ndarrays. A float16
    x is computed in float32 (so is the result: the product with g is rounded once, by the engine)."""
    if raw(x).dtype == np.float16:
        x = x.astype(np.float32)  # (on a Tensor: the differentiable cast)
    if approximate == "tanh":
        if kept is None:
            t = np.tanh(_K * (x + _C * x * x * x))
            return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * (_K * (1 + 3 * _C * x * x))
        d = np.multiply(kept, kept, out=_new(x))  # 1 - t^2 ...
        np.subtract(1, d, out=d)
        d *= x  # ... times K x (1 + 3 C x^2) / 2, x first: (1 - t^2) x is 0 in the tails, never 0 * inf ...
        d *= 0.5 * _K
        with memory.scratch() as s:
            q = np.multiply(x, x, out=s.take(np.shape(x), d.dtype))
            q *= 3 * _C
            q += 1
            d *= q
            np.multiply(kept, 0.5, out=q)  # ... plus (1 + t) / 2
            d += q
        d += 0.5
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


def _gelu_kept(x, approximate):
    """What the forward keeps: tanh(K (x + C x^3)) or Phi(x), in float32 for a float16 x."""
    x = floating(x)
    if x.dtype == np.float16:
        x = x.astype(np.float32)
    return _tanh_part(x) if approximate == "tanh" else _ndtr_raw(x)


def _gelu_fast(ctx, g, out, x, approximate):
    kept, ctx.extra = ctx.extra, None  # (a retained graph's second backward recomputes it)
    d = _gelu_deriv(x, approximate, _gelu_kept(x, approximate) if kept is None else kept)
    r = np.multiply(g, d, out=d) if np.result_type(g, d) == d.dtype else g * d
    return (r,)


def _gelu_jvp(ts, out, x, approximate):
    x = floating(x)  # (the fast VJP's formula: JVP and VJP agree)
    return ts[0] * _gelu_deriv(x, approximate, _gelu_kept(x, approximate))


gelu = Op("gelu", _gelu_fwd, _gelu_fast, _gelu_jvp,
          graph_vjp=lambda ctx, g, out, x, approximate: (g * _gelu_deriv(x, approximate),), keeps=True, saves_out=False)


