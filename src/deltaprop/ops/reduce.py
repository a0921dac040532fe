"""Reductions (sum, mean, max, min, var, std, prod, logsumexp) and matmul.

`axis` follows NumPy (None, an int or a tuple; negative allowed); `dim` is accepted as an alias.
mean, var, std and logsumexp compute integer inputs in the default float dtype (the rule in
elementwise.py); sum, prod, max and min keep integers. Degenerate reductions give PyTorch's
numbers: var/std with ddof >= n, prod over nothing (1), logsumexp over nothing (-inf).
"""
from __future__ import annotations

import numpy as np

from ..autograd import Op, sum_to
from ..tensor import Tensor
from .elementwise import floating, raw


def _axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    axis = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    return tuple(sorted(a % ndim if ndim else a for a in axis))


def _count(shape, axis):
    return int(np.prod([shape[a] for a in _axes(axis, len(shape))], dtype=np.int64))


def expand(g, shape, axis, keepdims):
    """Re-insert reduced axes into g (as size 1) and broadcast it to the input's shape."""
    if not keepdims and axis is not None:
        kshape = list(shape)
        for a in _axes(axis, len(shape)):
            kshape[a] = 1
        g = g.reshape(tuple(kshape))
    if isinstance(g, Tensor):
        return np.broadcast_to(g, shape)
    out = np.empty(shape, g.dtype)  # an array of its own (faster than a broadcast view, and writable)
    out[...] = g
    return out


def _pick(axis, dim):
    return dim if axis is None else axis


def _reduction(name, fwd, vjp, jvp, doc, **contract):
    op = Op(name, fwd, vjp, jvp, **contract)

    def f(x, axis=None, keepdims: bool = False, *, dim=None):
        axis = _pick(axis, dim)
        return op(x, axis=tuple(axis) if isinstance(axis, list) else axis, keepdims=keepdims)
    f.__name__, f.__doc__ = name, doc
    return f


# (its straight-line form for dp.compile, over every axis: ops/lowered.py)
sum = _reduction("sum", lambda x, axis, keepdims: np.sum(x, axis=axis, keepdims=keepdims),
                 lambda ctx, g, out, x, axis, keepdims: (expand(g, x.shape, axis, keepdims),),
                 lambda ts, out, x, axis, keepdims: np.sum(ts[0], axis=axis, keepdims=keepdims),
                 "Sum over axis. VJP: g broadcast back over the summed axes", saves=(), saves_out=False)
mean = _reduction("mean", lambda x, axis, keepdims: np.mean(floating(x), axis=axis, keepdims=keepdims),
                  lambda ctx, g, out, x, axis, keepdims: (expand(g / _count(x.shape, axis), x.shape, axis, keepdims),),
                  lambda ts, out, x, axis, keepdims: np.mean(ts[0], axis=axis, keepdims=keepdims),
                  "Mean over axis. VJP: g / n broadcast back", saves=(), saves_out=False)


def _extreme_mask(x, out, axis, keepdims):
    """Where x attains the reduced extreme, shared evenly among ties (PyTorch's amax rule)."""
    rx = raw(x)
    hit = rx == expand(raw(out), rx.shape, axis, keepdims)
    return (hit / hit.sum(axis=_axes(axis, rx.ndim), keepdims=True)).astype(rx.dtype)


def _extreme_vjp(ctx, g, out, x, axis, keepdims):
    return (expand(g, x.shape, axis, keepdims) * _extreme_mask(x, out, axis, keepdims),)


def _extreme_jvp(ts, out, x, axis, keepdims):
    return np.sum(ts[0] * _extreme_mask(x, out, axis, keepdims), axis=axis, keepdims=keepdims)


max = _reduction("max", lambda x, axis, keepdims: np.max(x, axis=axis, keepdims=keepdims), _extreme_vjp,
                 _extreme_jvp, "Maximum over axis (values only). VJP: g to the maxima, split evenly at ties")
min = _reduction("min", lambda x, axis, keepdims: np.min(x, axis=axis, keepdims=keepdims), _extreme_vjp,
                 _extreme_jvp, "Minimum over axis (values only). VJP: g to the minima, split evenly at ties")


def _centered(x, axis):
    return x - x.mean(axis=axis, keepdims=True)


def _var_fwd(x, axis, keepdims, ddof):
    """NumPy's var: with ddof >= n it divides by max(n - ddof, 0) = 0, giving inf (nan for a
    constant slice), as PyTorch."""
    return np.var(floating(x), axis=axis, keepdims=keepdims, ddof=ddof)


def _var_deriv(x, axis, ddof):
    """d var / d x, per element: the VJP is g times it and the JVP sums t times it (they agree).
    2 (x - mean) / (n - ddof) when n > ddof. With n <= ddof the value is inf or nan and the
    gradient is PyTorch's: over all axes (axis=None, or a 0-d x) nan where x == mean and inf
    elsewhere; over given axes 2 (x - mean) / 0, i.e. +-inf by sign and nan where x == mean
    (PyTorch divides by n - ddof < 0 there, a finite gradient of an infinite value; not here)."""
    dof = _count(raw(x).shape, axis) - ddof
    c = _centered(x, axis)
    if dof > 0:
        return c * (2.0 / dof)
    rc = raw(c)  # a constant: the value is not differentiable here
    if axis is None or rc.ndim == 0:
        return np.where(rc == 0, np.nan, np.inf).astype(rc.dtype)
    with np.errstate(invalid="ignore"):
        return rc * np.array(np.inf, rc.dtype)


_var = Op("var", _var_fwd,
          lambda ctx, g, out, x, axis, keepdims, ddof: (
              expand(g, x.shape, axis, keepdims) * _var_deriv(x, axis, ddof),),
          lambda ts, out, x, axis, keepdims, ddof: np.sum(ts[0] * _var_deriv(x, axis, ddof), axis=axis,
                                                          keepdims=keepdims),
          saves_out=False)


def var(x, axis=None, ddof: int = 0, keepdims: bool = False, *, dim=None):
    """Variance (ddof=0 as NumPy). VJP: g * 2 (x - mean) / (n - ddof)"""
    axis = _pick(axis, dim)
    return _var(x, axis=tuple(axis) if isinstance(axis, list) else axis, keepdims=keepdims, ddof=ddof)


def std(x, axis=None, ddof: int = 0, keepdims: bool = False, *, dim=None):
    """Standard deviation: sqrt(var)."""
    from .elementwise import sqrt
    return sqrt(var(x, axis, ddof, keepdims, dim=dim))


def _others_product(x, axis):
    """Product of all other elements along the reduced axes (correct when x has zeros)."""
    axes = _axes(axis, x.ndim)
    if x.size == 0:  # (a product over nothing is 1, whose gradient is empty)
        return np.ones(x.shape, x.dtype)
    moved = np.moveaxis(x, axes, tuple(range(-len(axes), 0)))
    flat = moved.reshape(moved.shape[:moved.ndim - len(axes)] + (-1,))
    ones = np.ones(flat.shape[:-1] + (1,), x.dtype)
    left = np.cumprod(np.concatenate([ones, flat[..., :-1]], -1), -1)
    right = np.cumprod(np.concatenate([ones, flat[..., ::-1][..., :-1]], -1), -1)[..., ::-1]
    return np.moveaxis((left * right).reshape(moved.shape), tuple(range(-len(axes), 0)), axes)


def _prod_vjp(ctx, g, out, x, axis, keepdims):
    if isinstance(x, Tensor):
        if (raw(x) != 0).all():
            return (expand(g * out, x.shape, axis, keepdims) / x,)
        raise NotImplementedError("higher-order derivatives of prod at inputs that contain 0 are not "
                                  "supported (first derivatives are exact)")
    return (expand(g, x.shape, axis, keepdims) * _others_product(raw(x), axis),)


prod = _reduction("prod", lambda x, axis, keepdims: np.prod(x, axis=axis, keepdims=keepdims), _prod_vjp,
                  lambda ts, out, x, axis, keepdims: np.sum(ts[0] * _others_product(x, axis), axis=axis,
                                                            keepdims=keepdims),
                  "Product over axis. VJP: g * (product of the other elements), exact with zeros",
                  saves_out=False)  # (the create_graph path recomputes the output)


def _lse(x, axis, keepdims):
    x = floating(x)
    m = np.max(x, axis=axis, keepdims=True, initial=-np.inf)  # (initial: -inf over an empty axis, as PyTorch)
    m = np.where(np.isfinite(m), m, 0)  # all -inf (or inf) rows: avoid inf - inf
    with np.errstate(divide="ignore"):
        out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=_axes(axis, x.ndim))


def _softmax_of(x, out, axis, keepdims):
    from .elementwise import exp
    o = out if keepdims else expand(out, x.shape, axis, keepdims)
    return np.exp(x - o) if not isinstance(x, Tensor) else exp(x - o)


logsumexp = _reduction("logsumexp", _lse,
                       lambda ctx, g, out, x, axis, keepdims: (expand(g, x.shape, axis, keepdims)
                                                          * _softmax_of(x, out, axis, keepdims),),
                       lambda ts, out, x, axis, keepdims: np.sum(ts[0] * _softmax_of(x, out, axis, keepdims),
                                                                 axis=axis, keepdims=keepdims),
                       "log(sum(exp(x))) computed stably. VJP: g * softmax(x)")


def all(x, axis=None, keepdims: bool = False, *, dim=None) -> Tensor:
    """Whether every element is true (a bool tensor, not differentiable)."""
    return Tensor(np.all(raw(x), axis=_pick(axis, dim), keepdims=keepdims))


def any(x, axis=None, keepdims: bool = False, *, dim=None) -> Tensor:
    """Whether any element is true (a bool tensor, not differentiable)."""
    return Tensor(np.any(raw(x), axis=_pick(axis, dim), keepdims=keepdims))


def argmax(x, axis=None, keepdims: bool = False, *, dim=None) -> Tensor:
    """Index of the maximum (int64, not differentiable)."""
    return Tensor(np.argmax(raw(x), axis=_pick(axis, dim), keepdims=keepdims))


def argmin(x, axis=None, keepdims: bool = False, *, dim=None) -> Tensor:
    """Index of the minimum (int64, not differentiable)."""
    return Tensor(np.argmin(raw(x), axis=_pick(axis, dim), keepdims=keepdims))


# -- matmul -------------------------------------------------------------------------------------
def _mm_fwd(a, b):
    try:
        return np.matmul(a, b)
    except ValueError:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} are not aligned: the last axis of the "
                         f"first ({a.shape[-1] if a.ndim else '-'}) must equal the "
                         f"{'only' if b.ndim == 1 else 'second-to-last'} axis of the second "
                         f"({b.shape[-2] if b.ndim > 1 else (b.shape[0] if b.ndim else '-')})") from None


def _swap(x):
    return x.swapaxes(-1, -2)


def _mm_vjp(ctx, g, out, a, b):
    """VJP: g @ b.T and a.T @ g, with 1-D operands treated as row/column vectors."""
    ra, rb = a.ndim == 1, b.ndim == 1
    if ra and rb:
        return g * b, g * a
    a2 = a.reshape((1,) + a.shape) if ra else a
    b2 = b.reshape(b.shape + (1,)) if rb else b
    g2 = g
    if ra:
        g2 = g2.reshape(g2.shape[:-1] + (1,) + g2.shape[-1:])
    if rb:
        g2 = g2.reshape(g2.shape + (1,))
    ga = sum_to(g2 @ _swap(b2), a2.shape).reshape(a.shape)
    gb = sum_to(_swap(a2) @ g2, b2.shape).reshape(b.shape)
    return ga, gb


_matmul = Op("matmul", _mm_fwd, _mm_vjp,
             lambda ts, out, a, b: (0 if ts[0] is None else np.matmul(ts[0], b))
             + (0 if ts[1] is None else np.matmul(a, ts[1])),
             saves=lambda needs: ((1,) if needs[0] else ()) + ((0,) if needs[1] else ()), saves_out=False)


def matmul(a, b):
    """Matrix product with NumPy's rules (batch broadcasting, 1-D operands). VJP: g @ b.T, a.T @ g"""
    return _matmul(a, b)
