"""Functional forms of the layers, activations and losses (PyTorch's names).

linear, conv2d and max_pool2d are single fused ops (forward, VJP and JVP side by side).
Their VJPs run on raw ndarrays in an ordinary backward; under backward(create_graph=True)
they are built from ops whose own VJPs close the set (conv2d <-> its input and weight
gradients, max-pool scatter <-> gather), so higher-order gradients work too.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .. import _config, _pool
from ..autograd import Op, apply
from ..creation import tensor
from ..ops import (binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy, leaky_relu,
                   log_softmax, mse_loss, multiply, relu, reshape, sigmoid, softmax, softplus, sqrt, tanh)
from ..ops.elementwise import _new, raw
from ..tensor import Tensor
from ._special import erf, ndtr, ndtr_single

__all__ = ["softmax", "log_softmax", "cross_entropy", "mse_loss", "binary_cross_entropy",
           "binary_cross_entropy_with_logits", "relu", "sigmoid", "tanh", "leaky_relu", "gelu", "softplus",
           "dropout", "linear", "conv2d", "max_pool2d", "batch_norm", "erf"]


def _needs(x) -> bool:
    return isinstance(x, Tensor) and x.requires_grad


# -- linear ---------------------------------------------------------------------------------------
def _linear_fwd(x, w, b=None, *, nx, nw):
    try:
        if x.ndim and x.shape[-1] != w.shape[1]:
            raise ValueError
        dtype = x.dtype if x.dtype == w.dtype else np.result_type(x, w)
        out = np.matmul(x, w.T, out=_pool.take(x.shape[:-1] + w.shape[:1], dtype))
    except ValueError:
        raise ValueError(f"linear: input of shape {np.shape(x)} does not fit weight of shape {w.shape} "
                         f"(the input's last axis must be in_features = {w.shape[-1]})") from None
    if b is not None:
        if b.dtype == out.dtype or out.dtype == np.result_type(out, b):
            out += b  # (out is our own new array)
        else:
            out = out + b
    return out


def _linear_vjp(g, out, x, w, b=None, *, nx, nw):
    """VJP: g @ W, g.T @ x (leading axes summed), g summed over leading axes."""
    gx = None
    if nx:
        gx = np.matmul(g, w, out=_pool.take(g.shape[:-1] + w.shape[1:], np.result_type(g, w))) \
            if isinstance(g, np.ndarray) else g @ w
    if g.ndim == 2:
        g2, x2 = g, x
    else:
        g2 = g.reshape((-1, w.shape[0]))
        x2 = x.reshape((-1, w.shape[1])) if nw else None
    gw = g2.T @ x2 if nw else None
    if b is None:
        return gx, gw
    return gx, gw, np.add.reduce(g2, axis=0) if isinstance(g2, np.ndarray) else g2.sum(axis=0)


def _linear_jvp(ts, out, x, w, b=None, *, nx, nw):
    r = np.zeros_like(out)
    if ts[0] is not None:
        r = r + np.matmul(ts[0], w.T)
    if ts[1] is not None:
        r = r + np.matmul(x, ts[1].T)
    if len(ts) > 2 and ts[2] is not None:
        r = r + ts[2]
    return r


_linear = Op("linear", _linear_fwd, _linear_vjp, _linear_jvp)
_FLAGS = {(a, b): {"nx": a, "nw": b} for a in (False, True) for b in (False, True)}


def linear(x: Any, weight: Any, bias: Any = None) -> Tensor:
    """y = x @ W.T + b with W of shape (out, in); x (..., in) or (in,). VJP: g @ W, g.T @ x, sum(g)."""
    if not isinstance(x, (Tensor, np.ndarray)):
        x = tensor(x)  # lists / Python floats: the default dtype, as dp.tensor
    kw = _FLAGS[isinstance(x, Tensor) and x.requires_grad, isinstance(weight, Tensor) and weight.requires_grad]
    return apply(_linear, (x, weight) if bias is None else (x, weight, bias), kw)


# -- conv2d ----------------------------------------------------------------------------------------
def _pair(v, name: str, what: str) -> tuple[int, int]:
    t = tuple(v) if isinstance(v, (tuple, list)) else (v, v)
    if len(t) != 2 or not all(isinstance(i, (int, np.integer)) for i in t):
        raise ValueError(f"{name}: {what} must be an int or a pair of ints, got {v!r}")
    return int(t[0]), int(t[1])


def _pad(x, padding, value=0.0):
    ph, pw = padding
    if ph == 0 and pw == 0:
        return x
    out = np.full(x.shape[:2] + (x.shape[2] + 2 * ph, x.shape[3] + 2 * pw), value, x.dtype)
    out[:, :, ph:ph + x.shape[2], pw:pw + x.shape[3]] = x  # (much faster than np.pad)
    return out


def _windows(xp, kh, kw, stride):
    """im2col as a view: (N, C, Ho, Wo, kh, kw), no copy."""
    return sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::stride[0], ::stride[1]]


def _im2col(x, kh, kw, stride, padding):
    """The patches as (N, C*kh*kw, Ho*Wo), one copy, ordered (c, i, j) like W.reshape(O, -1)."""
    win = _windows(_pad(x, padding), kh, kw, stride)
    n, c, ho, wo = win.shape[:4]
    cols = _pool.take((n, c * kh * kw, ho * wo), win.dtype)
    cols.reshape(n, c, kh, kw, ho, wo)[...] = win.transpose(0, 1, 4, 5, 2, 3)
    return cols, ho, wo


def _conv_raw(x, w, b=None, *, stride, padding, nx=True, nw=True, cache=None):
    cols, ho, wo = _im2col(x, w.shape[2], w.shape[3], stride, padding)
    w2 = w.reshape(w.shape[0], -1)
    out = _pool.take((x.shape[0], w.shape[0], ho, wo), np.result_type(w2, cols))
    np.matmul(w2, cols, out=out.reshape(x.shape[0], w.shape[0], ho * wo))  # per image: already NCHW
    if cache is not None and nw:
        cache[0] = cols  # the weight's gradient needs the same patches: kept, not rebuilt
    else:
        _pool.give(cols, 1)  # the patches are no longer needed
    if b is not None:
        b4 = b.reshape(1, -1, 1, 1)
        out = out + b4 if out.dtype != np.result_type(out, b4) else np.add(out, b4, out=out)
    return out


def _conv_input_grad(g, w, x_shape, stride, padding):
    """Adjoint of conv in x (col2im): for each kernel offset, W[:, :, i, j].T @ g per image, added
    at that offset. One offset at a time keeps the work array small (the full column matrix would
    be kh*kw times the input's size)."""
    n, c, h, wd = x_shape
    o, kh, kw = w.shape[0], w.shape[2], w.shape[3]
    sh, sw = stride
    ho, wo = g.shape[2], g.shape[3]
    g2 = g.reshape(n, o, ho * wo)
    gxp = _pool.take((n, c, h + 2 * padding[0], wd + 2 * padding[1]), np.result_type(w, g))
    gxp.fill(0)
    part = _pool.take((n, c, ho * wo), gxp.dtype)
    for i in range(kh):
        for j in range(kw):
            np.matmul(w[:, :, i, j].T, g2, out=part)
            gxp[:, :, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw] += part.reshape(n, c, ho, wo)
    _pool.give(part, 1)
    return gxp[:, :, padding[0]:padding[0] + h, padding[1]:padding[1] + wd]


def _conv_weight_grad(x, g, w_shape, stride, padding, cols=None):
    """dL/dW[o,c,i,j] = sum_{n,h,w} g[n,o,h,w] x_pad[n,c,h*s+i,w*s+j], as one GEMM over the batch
    (`cols`: the forward's patches of x, when it kept them)."""
    if cols is None:
        cols, ho, wo = _im2col(x, w_shape[2], w_shape[3], stride, padding)
    else:
        ho, wo = g.shape[2], g.shape[3]
    n, o = g.shape[0], g.shape[1]
    # per image (O, HW) @ (HW, K), summed over the batch: no transposed copy of g (a large array)
    gw = np.matmul(g.reshape(n, o, ho * wo), cols.transpose(0, 2, 1)).sum(axis=0).reshape(w_shape)
    _pool.give(cols, 1)
    return gw


def _any_tensor(*xs) -> bool:
    return any(isinstance(x, Tensor) for x in xs)


def _conv_any(x, w, stride, padding):
    if _any_tensor(x, w):
        return _conv_op(x, w, stride=stride, padding=padding, nx=True, nw=True)
    return _conv_raw(x, w, stride=stride, padding=padding)


def _convx_any(g, w, x_shape, stride, padding):
    if _any_tensor(g, w):
        return _convx_op(g, w, x_shape=x_shape, stride=stride, padding=padding)
    return _conv_input_grad(g, w, x_shape, stride, padding)


def _convw_any(x, g, w_shape, stride, padding):
    if _any_tensor(x, g):
        return _convw_op(x, g, w_shape=w_shape, stride=stride, padding=padding)
    return _conv_weight_grad(x, g, w_shape, stride, padding)


def _conv_vjp(g, out, x, w, b=None, *, stride, padding, nx, nw, cache=(None,)):
    gx = _convx_any(g, w, raw(x).shape, stride, padding) if nx else None
    cols = cache[0]
    if nw and cols is not None and not _any_tensor(x, g):
        cache[0] = None  # (used once: a retained graph's second backward rebuilds them)
        gw = _conv_weight_grad(x, g, raw(w).shape, stride, padding, cols)
    else:
        gw = _convw_any(x, g, raw(w).shape, stride, padding) if nw else None
    if b is None:
        return gx, gw
    return gx, gw, g.sum(axis=(0, 2, 3))


def _conv_jvp(ts, out, x, w, b=None, *, stride, padding, nx, nw, cache=(None,)):
    r = np.zeros_like(out)
    if ts[0] is not None:
        r = r + _conv_raw(ts[0], w, stride=stride, padding=padding)
    if ts[1] is not None:
        r = r + _conv_raw(x, ts[1], stride=stride, padding=padding)
    if len(ts) > 2 and ts[2] is not None:
        r = r + ts[2].reshape(1, -1, 1, 1)
    return r


_conv_op = Op("conv2d", _conv_raw, _conv_vjp, _conv_jvp)
# T(g, W) = conv's adjoint in x; <a, T(g, W)> = <conv(a, W), g> gives both VJPs below.
_convx_op = Op("conv2d_input_grad", lambda g, w, *, x_shape, stride, padding: _conv_input_grad(
    g, w, x_shape, stride, padding),
    lambda gg, out, g, w, *, x_shape, stride, padding: (
        _conv_any(gg, w, stride, padding), _convw_any(gg, g, raw(w).shape, stride, padding)),
    lambda ts, out, g, w, *, x_shape, stride, padding: (
        (0 if ts[0] is None else _conv_input_grad(ts[0], w, x_shape, stride, padding))
        + (0 if ts[1] is None else _conv_input_grad(g, ts[1], x_shape, stride, padding))))
# Wg(x, g) = conv's adjoint in W; <V, Wg(x, g)> = <conv(x, V), g>.
_convw_op = Op("conv2d_weight_grad", lambda x, g, *, w_shape, stride, padding: _conv_weight_grad(
    x, g, w_shape, stride, padding),
    lambda gv, out, x, g, *, w_shape, stride, padding: (
        _convx_any(g, gv, raw(x).shape, stride, padding), _conv_any(x, gv, stride, padding)),
    lambda ts, out, x, g, *, w_shape, stride, padding: (
        (0 if ts[0] is None else _conv_weight_grad(ts[0], g, w_shape, stride, padding))
        + (0 if ts[1] is None else _conv_weight_grad(x, ts[1], w_shape, stride, padding))))


def conv2d(x: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0) -> Tensor:
    """2-D cross-correlation, NCHW: y[n,o] = sum_c x_pad[n,c] * W[o,c] + b[o] (im2col + one matmul).
    VJP: col2im(g @ W) for x, g.T @ im2col(x) for W, sum(g) for b."""
    stride, padding = _pair(stride, "conv2d", "stride"), _pair(padding, "conv2d", "padding")
    xs, ws = np.shape(raw(x)), np.shape(raw(weight))
    if len(ws) != 4:
        raise ValueError(f"conv2d: weight must have shape (out_channels, in_channels, kH, kW), got {ws}")
    if min(stride) < 1 or min(padding) < 0:
        raise ValueError(f"conv2d: stride must be >= 1 and padding >= 0, got stride={stride}, padding={padding}")
    unbatched = len(xs) == 3
    if unbatched:
        x = reshape(x if isinstance(x, Tensor) else Tensor(np.asarray(x)), (1,) + xs)
        xs = (1,) + xs
    if len(xs) != 4 or xs[1] != ws[1]:
        raise ValueError(f"conv2d: expected input of shape (N, {ws[1]}, H, W) for weight of shape {ws}, "
                         f"got {tuple(np.shape(raw(x))) if not unbatched else xs[1:]}")
    if xs[2] + 2 * padding[0] < ws[2] or xs[3] + 2 * padding[1] < ws[3]:
        raise ValueError(f"conv2d: kernel {ws[2:]} is larger than the padded input {xs[2:]} "
                         f"(padding {padding})")
    if bias is not None and np.shape(raw(bias)) != (ws[0],):
        raise ValueError(f"conv2d: bias must have shape ({ws[0]},), got {np.shape(raw(bias))}")
    kw = {"stride": stride, "padding": padding, "nx": _needs(x), "nw": _needs(weight), "cache": [None]}
    out = apply(_conv_op, (x, weight) if bias is None else (x, weight, bias), kw)
    return reshape(out, out.shape[1:]) if unbatched else out


# -- max_pool2d ------------------------------------------------------------------------------------
def _pool_positions(kernel, stride, ho, wo):
    """(k, rows, cols): for each kernel offset, the strided slice of the padded input it reads."""
    kh, kw = kernel
    sh, sw = stride
    return [(i * kw + j, slice(i, i + sh * (ho - 1) + 1, sh), slice(j, j + sw * (wo - 1) + 1, sw))
            for i in range(kh) for j in range(kw)]


def _pool_out_hw(shape, kernel, stride, padding):
    return ((shape[2] + 2 * padding[0] - kernel[0]) // stride[0] + 1,
            (shape[3] + 2 * padding[1] - kernel[1]) // stride[1] + 1)


def _pool_fwd(x, *, kernel, stride, padding):
    xp = _pad(x, padding, -np.inf)
    ho, wo = _pool_out_hw(x.shape, kernel, stride, padding)
    out = None
    for _, si, sj in _pool_positions(kernel, stride, ho, wo):
        v = xp[:, :, si, sj]
        out = v.copy() if out is None else np.maximum(out, v, out=out)
    return out


def _pool_argmax(x, out, kernel, stride, padding):
    """Kernel offset of each window's maximum `out` (the first one at ties, as PyTorch)."""
    xp = _pad(x, padding, -np.inf)
    pos = _pool_positions(kernel, stride, out.shape[2], out.shape[3])
    arg = np.full(out.shape, len(pos) - 1, np.int16)
    step = np.empty(out.shape, np.int16)
    for k, si, sj in reversed(pos[:-1]):  # earlier offsets overwrite later ones: the first max wins
        # arg = where(x == max, k, arg) without np.where (a data-dependent branch per element):
        # arg -= (arg - k) * (x == max)
        np.subtract(arg, np.int16(k), out=step)
        step *= xp[:, :, si, sj] == out
        arg -= step
    return arg


def _pool_scatter(g, arg, x_shape, kernel, stride, padding):
    """Send each window's gradient to its argmax position, one kernel offset at a time. Windows
    that do not overlap (stride >= kernel) write their slots directly; overlapping ones add."""
    n, c, h, w = x_shape
    gxp = _pool.take((n, c, h + 2 * padding[0], w + 2 * padding[1]), g.dtype)
    ho, wo = g.shape[2], g.shape[3]
    disjoint = stride[0] >= kernel[0] and stride[1] >= kernel[1]
    if not (disjoint and stride == kernel and gxp.shape[2] == ho * stride[0] and gxp.shape[3] == wo * stride[1]):
        gxp.fill(0)  # some slots lie in no window, or receive from several
    for k, si, sj in _pool_positions(kernel, stride, ho, wo):
        if disjoint:
            np.multiply(g, arg == k, out=gxp[:, :, si, sj])
        else:
            gxp[:, :, si, sj] += g * (arg == k)
    return gxp[:, :, padding[0]:padding[0] + h, padding[1]:padding[1] + w]


def _pool_gather(y, arg, kernel, stride, padding):
    """Read y at each window's argmax position (the adjoint of _pool_scatter)."""
    yp = _pad(y, padding)
    out = np.zeros(arg.shape, y.dtype)
    for k, si, sj in _pool_positions(kernel, stride, arg.shape[2], arg.shape[3]):
        np.copyto(out, yp[:, :, si, sj], where=arg == k)
    return out


_pool_scatter_op = Op(
    "max_pool2d_backward",
    lambda g, *, arg, x_shape, kernel, stride, padding: _pool_scatter(g, arg, x_shape, kernel, stride, padding),
    lambda gg, out, g, *, arg, x_shape, kernel, stride, padding: (
        _pool_gather_op(gg, arg=arg, x_shape=x_shape, kernel=kernel, stride=stride, padding=padding),),
    lambda ts, out, g, *, arg, x_shape, kernel, stride, padding: _pool_scatter(
        ts[0], arg, x_shape, kernel, stride, padding))
_pool_gather_op = Op(
    "max_pool2d_gather",
    lambda y, *, arg, x_shape, kernel, stride, padding: _pool_gather(y, arg, kernel, stride, padding),
    lambda gg, out, y, *, arg, x_shape, kernel, stride, padding: (
        _pool_scatter_op(gg, arg=arg, x_shape=x_shape, kernel=kernel, stride=stride, padding=padding),),
    lambda ts, out, y, *, arg, x_shape, kernel, stride, padding: _pool_gather(ts[0], arg, kernel, stride, padding))


def _pool_vjp(g, out, x, *, kernel, stride, padding):
    rx = raw(x)
    arg = _pool_argmax(rx, raw(out), kernel, stride, padding)
    if isinstance(g, Tensor):
        return (_pool_scatter_op(g, arg=arg, x_shape=rx.shape, kernel=kernel, stride=stride, padding=padding),)
    return (_pool_scatter(g, arg, rx.shape, kernel, stride, padding),)


_max_pool = Op("max_pool2d", _pool_fwd, _pool_vjp,
               lambda ts, out, x, *, kernel, stride, padding: _pool_gather(
                   ts[0], _pool_argmax(x, out, kernel, stride, padding), kernel, stride, padding))


def max_pool2d(x: Any, kernel_size: Any, stride: Any = None, padding: Any = 0) -> Tensor:
    """Max over kH x kW windows (NCHW; stride defaults to kernel_size; padding counts as -inf).
    VJP: g to each window's argmax (the first at ties, as PyTorch)."""
    kernel = _pair(kernel_size, "max_pool2d", "kernel_size")
    stride = kernel if stride is None else _pair(stride, "max_pool2d", "stride")
    padding = _pair(padding, "max_pool2d", "padding")
    if min(kernel) < 1 or min(stride) < 1 or min(padding) < 0:
        raise ValueError(f"max_pool2d: kernel_size and stride must be >= 1 and padding >= 0, got "
                         f"kernel_size={kernel}, stride={stride}, padding={padding}")
    if padding[0] * 2 > kernel[0] or padding[1] * 2 > kernel[1]:
        raise ValueError(f"max_pool2d: padding {padding} must be at most half the kernel size {kernel}")
    xs = np.shape(raw(x))
    unbatched = len(xs) == 3
    if unbatched:
        x = reshape(x if isinstance(x, Tensor) else Tensor(np.asarray(x)), (1,) + xs)
        xs = (1,) + xs
    if len(xs) != 4:
        raise ValueError(f"max_pool2d: expected a 4-D input (N, C, H, W) or 3-D (C, H, W), got shape {xs}")
    if xs[2] + 2 * padding[0] < kernel[0] or xs[3] + 2 * padding[1] < kernel[1]:
        raise ValueError(f"max_pool2d: kernel {kernel} is larger than the padded input {xs[2:]}")
    if np.asarray(raw(x)).dtype.kind != "f":
        raise ValueError(f"max_pool2d: expected a floating-point input, got {np.asarray(raw(x)).dtype}")
    out = _max_pool(x, kernel=kernel, stride=stride, padding=padding)
    return reshape(out, out.shape[1:]) if unbatched else out


# -- dropout ---------------------------------------------------------------------------------------
def dropout(x: Any, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Inverted dropout: zero each element with probability p and scale the rest by 1/(1-p);
    the identity when not training. The mask comes from the default generator."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: probability p must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return x if isinstance(x, Tensor) else Tensor(np.asarray(x))
    rx = np.asarray(raw(x))
    dt = rx.dtype if rx.dtype in (np.float32, np.float64) else np.float64
    if p == 1.0:
        mask = np.zeros(rx.shape, dt)
    else:
        keep = _config.default_generator().random(rx.shape, dtype=dt) >= p
        mask = np.multiply(keep, 1.0 / (1.0 - p), dtype=dt)
    return multiply(x, mask)


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


_ndtr = Op("ndtr", _ndtr_raw, lambda g, out, x: (g * _pdf(x),), lambda ts, out, x: ts[0] * _pdf(x))


def _cdf(x):
    return _ndtr(x) if isinstance(x, Tensor) else _ndtr_raw(x)


def _gelu_fwd(x, approximate, cache):
    """x Phi(x), or the tanh form; keeps Phi(x) (or the tanh) in `cache` for the VJP."""
    if approximate == "tanh":
        if x.dtype.kind != "f":
            return 0.5 * x * (1 + np.tanh(_K * (x + _C * x * x * x)))
        th = np.multiply(x, x, out=_new(x))  # tanh(K x (1 + C x^2)), in place
        th *= _C
        th += 1
        th *= x
        th *= _K
        cache[0] = np.tanh(th, out=th)
        out = np.add(th, 1, out=_new(x))
        out *= x
        out *= 0.5
        return out
    cache[0] = phi = _ndtr_raw(x)
    return x * phi


def _gelu_deriv(x, approximate, cache):
    kept = cache[0] if not isinstance(x, Tensor) else None
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
        _pool.give(q, 1)
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


_gelu = Op("gelu", _gelu_fwd, lambda g, out, x, approximate, cache: (g * _gelu_deriv(x, approximate, cache),),
           lambda ts, out, x, approximate, cache: ts[0] * _gelu_deriv(x, approximate, cache))


def gelu(x: Any, approximate: str = "none") -> Tensor:
    """GELU: x * Phi(x) (exact, via erf) or 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
    VJP (exact): g * (Phi(x) + x phi(x))."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return _gelu(x, approximate=approximate, cache=[None])


# -- batch norm ------------------------------------------------------------------------------------
def _bn_stats(x, axes, eps):
    """Batch mean, biased variance, 1/sqrt(var + eps) and xhat = (x - mean) / sqrt(var + eps)."""
    mean = np.mean(x, axis=axes, keepdims=True)
    xhat = np.subtract(x, mean, out=_new(x))
    sq = np.multiply(xhat, xhat, out=_new(x))
    var = np.mean(sq, axis=axes, keepdims=True)
    _pool.give(sq, 1)
    inv = 1.0 / np.sqrt(var + eps)
    xhat *= inv
    return mean, var, inv, xhat


def _bn_fwd(x, w, b, *, axes, shape, eps, cache):
    """Training-mode batch norm, one op: keeps the batch statistics and xhat for the VJP."""
    mean, var, inv, xhat = _bn_stats(x, axes, eps)
    cache[:] = [mean, var, inv, xhat]
    y = xhat if w is None else np.multiply(xhat, w.reshape(shape), out=_new(x))
    if b is not None:
        y = y + b.reshape(shape) if y is xhat else np.add(y, b.reshape(shape), out=y)
    return y


def _bn_vjp(g, out, x, w, b, *, axes, shape, eps, cache):
    """dx = inv / n (n gx - sum(gx) - xhat sum(gx xhat)) with gx = g w; dw = sum(g xhat); db = sum(g)."""
    n = x.size // x.shape[1]
    if isinstance(g, Tensor) or isinstance(x, Tensor):  # differentiable: the same formula on Tensors
        mean = x.mean(axis=axes, keepdims=True)
        xc = x - mean
        inv = ((xc * xc).mean(axis=axes, keepdims=True) + eps) ** -0.5
        xhat = xc * inv
        gx = g if w is None else g * reshape(w, shape)
        dx = (inv / n) * (n * gx - gx.sum(axis=axes, keepdims=True)
                          - xhat * (gx * xhat).sum(axis=axes, keepdims=True))
        dw = None if w is None else reshape((g * xhat).sum(axis=axes), w.shape)
        db = None if b is None else reshape(g.sum(axis=axes), b.shape)
        return dx, dw, db
    inv, xhat = cache[2], cache[3]
    t = np.multiply(g, xhat, out=_new(xhat))
    dw = None if w is None else np.sum(t, axis=axes).reshape(w.shape)
    db = None if b is None else np.sum(g, axis=axes).reshape(b.shape)
    if w is None:
        np.copyto(t, g)
    else:
        np.multiply(g, w.reshape(shape), out=t)  # t = gx
    s1 = np.sum(t, axis=axes, keepdims=True)
    u = np.multiply(t, xhat, out=_new(xhat))
    np.multiply(xhat, np.sum(u, axis=axes, keepdims=True), out=u)
    t *= n
    t -= s1
    t -= u
    t *= inv / n
    _pool.give(u, 1)
    return t, dw, db


def _bn_jvp(ts, out, x, w, b, *, axes, shape, eps, cache):
    """dy = w inv (dx - mean(dx) - xhat mean(xhat dx)) + xhat dw + db."""
    inv, xhat = cache[2], cache[3]
    r = np.zeros_like(out)
    if ts[0] is not None:
        tx = ts[0]
        dxhat = inv * (tx - tx.mean(axis=axes, keepdims=True) - xhat * (xhat * tx).mean(axis=axes, keepdims=True))
        r = r + (dxhat if w is None else dxhat * w.reshape(shape))
    if len(ts) > 1 and ts[1] is not None:
        r = r + xhat * ts[1].reshape(shape)
    if len(ts) > 2 and ts[2] is not None:
        r = r + ts[2].reshape(shape)
    return r


_batch_norm = Op("batch_norm", _bn_fwd, _bn_vjp, _bn_jvp)


def batch_norm(x: Any, running_mean: Tensor | None, running_var: Tensor | None, weight: Any = None,
               bias: Any = None, training: bool = False, momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """(x - mean) / sqrt(var + eps) * weight + bias over axis 1 (N, C) or (N, C, L). Training uses
    the batch's biased variance and updates the running stats in place (unbiased variance).
    Training mode is one op whose VJP is the closed-form batch-norm gradient."""
    xs = np.shape(raw(x))
    if len(xs) not in (2, 3):
        raise ValueError(f"batch_norm: expected input of shape (N, C) or (N, C, L), got {xs}")
    axes = (0,) if len(xs) == 2 else (0, 2)
    shape = (1, xs[1]) if len(xs) == 2 else (1, xs[1], 1)
    xt = x if isinstance(x, Tensor) else Tensor(np.asarray(x))
    if training or running_mean is None:
        n = int(np.prod([xs[a] for a in axes]))
        if n <= 1:
            raise ValueError(f"batch_norm: expected more than 1 value per channel when training, "
                             f"got input of shape {xs}")
        cache: list = [None] * 4
        y = _batch_norm(xt, weight, bias, axes=axes, shape=shape, eps=eps, cache=cache)
        if training and running_mean is not None:
            mean, var = cache[0], cache[1]
            rm, rv = running_mean.data, running_var.data
            rm *= 1 - momentum
            rm += momentum * mean.reshape(-1)
            rv *= 1 - momentum
            rv += (momentum * n / (n - 1)) * var.reshape(-1)
        return y
    y = (xt - running_mean.data.reshape(shape)) / np.sqrt(running_var.data.reshape(shape) + eps)
    if weight is not None:
        y = y * (reshape(weight, shape) if len(xs) == 3 else weight)
    if bias is not None:
        y = y + (reshape(bias, shape) if len(xs) == 3 else bias)
    return y
