"""Neural-network primitives: softmax, log_softmax and the losses, fused for speed and stability.

Each loss is one op whose VJP is the textbook error signal (e.g. softmax - onehot for
cross-entropy), written so that it is itself differentiable for higher-order gradients.
"""
from __future__ import annotations

import numpy as np

from ..autograd import Op
from .. import memory
from ..modes import effect
from .elementwise import _into, _new, _sigmoid_of, _stable_sigmoid, floating, kept, raw, sigmoid
from .reduce import _lse
from ..tensor import Tensor

_REDUCTIONS = ("mean", "sum", "none")


def _softmax_fwd(x, axis):
    x = floating(x)  # (integer logits: the default float dtype)
    if not x.size:  # (an empty axis has no max; the result is empty, as PyTorch's)
        return np.empty(x.shape, x.dtype)
    e = np.subtract(x, np.max(x, axis=axis, keepdims=True), out=_new(x))
    np.exp(e, out=e)
    return np.divide(e, np.sum(e, axis=axis, keepdims=True), out=e)


def _softmax_vjp(ctx, g, out, x, axis):
    """y * (g - sum(g * y)) (in place on arrays)."""
    t = np.multiply(g, out, out=_new(out))
    t = np.subtract(g, np.sum(t, axis=axis, keepdims=True), out=_into(t))
    return (np.multiply(t, out, out=_into(t)),)


_softmax = Op("softmax", _softmax_fwd, _softmax_vjp,
              lambda ts, out, x, axis: out * (ts[0] - (ts[0] * out).sum(axis=axis, keepdims=True)),
              saves=())


def softmax(x, axis: int = -1, *, dim=None):
    """exp(x) / sum(exp(x)) along axis, stable. VJP: y * (g - sum(g * y))"""
    return _softmax(x, axis=axis if dim is None else dim)


def _exp(x):
    return np.exp(x)


def _log_softmax_fwd(x, axis):
    x = floating(x)  # (integer logits: the default float dtype)
    if not x.size:
        return np.empty(x.shape, x.dtype)
    m = np.max(x, axis=axis, keepdims=True)
    if not np.isfinite(m).all():  # a row of -inf (or an inf): the careful general path
        return x - _lse(x, axis, True)
    s = np.subtract(x, m, out=_new(x))
    with memory.scratch() as work:
        e = np.exp(s, out=work.take(x.shape, x.dtype))
        lse = np.log(np.sum(e, axis=axis, keepdims=True))
    return np.subtract(s, lse, out=s)


def _log_softmax_vjp(ctx, g, out, x, axis):
    """g - softmax(x) * sum(g), softmax(x) = exp(out) (in place on arrays)."""
    r = np.exp(out, out=_new(out))
    r = np.multiply(r, np.sum(g, axis=axis, keepdims=True), out=_into(r))
    return (np.subtract(g, r, out=_into(r)),)


_log_softmax = Op("log_softmax", _log_softmax_fwd, _log_softmax_vjp,
                  lambda ts, out, x, axis: ts[0] - (ts[0] * np.exp(out)).sum(axis=axis, keepdims=True),
                  saves=())


def log_softmax(x, axis: int = -1, *, dim=None):
    """x - logsumexp(x) along axis, stable. VJP: g - softmax(x) * sum(g)"""
    return _log_softmax(x, axis=axis if dim is None else dim)


def _reduce(loss, reduction):
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _check_reduction(name, reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{name}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _expand_loss_grad(g, n, reduction):
    """The upstream gradient per sample, shaped (N, 1), from a reduced or per-sample loss."""
    if reduction == "none":
        return g.reshape((n, 1))
    return g / n if reduction == "mean" else g


def _pick(labels, shape):
    """The flat positions row * C + label of the labels' logits (one gather), after the range
    check (in the op: the labels are an input, new on each call of a compiled step)."""
    # one range check: seen as unsigned, a negative label is huge, so it fails `< C` too
    if labels.size and np.maximum.reduce(labels.view(np.uintp)) >= shape[1]:
        bad = labels[(labels < 0) | (labels >= shape[1])][0]
        raise ValueError(f"cross_entropy: label {bad} is out of range for {shape[1]} classes (valid: 0..{shape[1] - 1})")
    return np.arange(0, labels.size * shape[1], shape[1]) + labels


def _ce_fwd(ctx, x, labels, reduction):
    """Mean/sum/per-sample of logsumexp(x) - x[label], as log(sum(exp(x - m))) - (x[label] - m)
    (m the row's max: subtracting before adding keeps float16/float32 exact); keeps softmax(x)
    in ctx.extra for the fast VJP."""
    x = floating(x)
    n = x.shape[0]
    picked = x.reshape(-1).take(_pick(labels, x.shape))
    m = np.maximum.reduce(x, axis=1, keepdims=True) if x.size else np.zeros((n, 1), x.dtype)
    if not np.isfinite(m).all():  # a row of -inf or an inf logit: the careful general path
        nll = _lse(x, 1, False) - picked
    else:
        e = np.exp(x - m)
        s = np.add.reduce(e, axis=1, keepdims=True)
        nll = np.log(s)[:, 0]
        nll -= picked - m[:, 0]
        if ctx is not None:
            ctx.extra = np.divide(e, s, out=e)  # softmax, for the fast VJP
    if reduction == "mean":
        return np.add.reduce(nll) / n if n else nll.mean()
    return np.add.reduce(nll) if reduction == "sum" else nll


def _onehot(labels, like):
    oh = np.zeros(raw(like).shape, raw(like).dtype)
    oh[np.arange(oh.shape[0]), labels] = 1
    return oh


def _ce_vjp(ctx, g, out, x, labels, reduction):
    """(softmax(x) - onehot) * g (/ N for the mean)."""
    scale = _expand_loss_grad(g, raw(x).shape[0], reduction)
    return scale * (softmax(x, 1) - _onehot(labels, x)), None  # (the labels: no gradient)


def _ce_fast(ctx, g, out, x, labels, reduction):
    """_ce_vjp from the forward's softmax, without building the one-hot matrix."""
    p = ctx.extra if ctx.extra is not None else _softmax_fwd(x, 1)
    scale = _expand_loss_grad(g, x.shape[0], reduction)
    d = p * scale
    pick = np.arange(0, labels.size * x.shape[1], x.shape[1]) + labels
    d.reshape(-1)[pick] -= scale if np.ndim(scale) == 0 else scale[:, 0]  # (d is new: reshape is a view)
    return d, None


def _ce_jvp(ts, out, x, labels, reduction):
    per = np.sum(ts[0] * (_softmax_fwd(x, 1) - _onehot(labels, x)), axis=1)
    return _reduce(per, reduction)


_cross_entropy = Op("cross_entropy", _ce_fwd, _ce_fast, _ce_jvp, graph_vjp=_ce_vjp, keeps=True, saves=(0,),
                    saves_out=False)  # (labels: an ndarray input, never differentiated)


def cross_entropy(logits, labels, reduction: str = "mean"):
    """Softmax cross-entropy from logits (N, C) and int labels (N,). VJP: (softmax - onehot) * g / N"""
    _check_reduction("cross_entropy", reduction)
    lab = np.asarray(raw(labels))
    shape = raw(logits).shape
    if len(shape) != 2:
        raise ValueError(f"cross_entropy: logits must have shape (N, C), got {shape}")
    if lab.dtype.kind not in "iu" or lab.shape != (shape[0],):
        raise ValueError(f"cross_entropy: labels must be integers of shape ({shape[0]},) for logits of shape "
                         f"{shape}, got {lab.dtype} of shape {lab.shape}")
    if not (isinstance(labels, Tensor) and lab.dtype == np.intp):  # (a Tensor stays one: version-checked)
        labels = lab.astype(np.intp, copy=False)
    return _cross_entropy(logits, labels, reduction=reduction)


def _mse_fwd(ctx, x, t, reduction):
    """mean/sum/per-element of (x - t)**2; keeps d = x - t (ctx.extra) for the fast VJP."""
    x, t = floating(x), floating(t)
    d = np.subtract(x, t, out=_new(x) if np.result_type(x, t) == x.dtype else None)
    if ctx is not None:
        ctx.extra = d
    if reduction == "none":
        return d * d
    flat = d.reshape(-1)
    total = np.dot(flat, flat)  # one BLAS pass, no squared temporary
    return total / d.size if reduction == "mean" else total


def _mse_vjp(ctx, g, out, x, t, reduction):
    """2 (x - t) g (/ N for the mean), scaling the forward's x - t in place on arrays; the
    target's gradient, its negative, only when it needs one."""
    d = kept(ctx, g)
    if d is None:
        d = x - t
    if isinstance(d, np.generic):  # (0-d: a NumPy scalar, which no out= can take)
        d = np.array(d)
    scale = 2 * g / raw(d).size if reduction == "mean" else 2 * g
    gx = np.multiply(d, scale, out=_into(d) if np.result_type(d, scale) == d.dtype else None)
    return gx, -gx if ctx.needs[1] else None


_mse = Op("mse_loss", _mse_fwd, _mse_vjp, lambda ts, out, x, t, reduction:
          _reduce(2 * (x - t) * ((ts[0] if ts[0] is not None else 0) - (ts[1] if ts[1] is not None else 0)),
                  reduction), keeps=True, saves_out=False)


def mse_loss(input, target, reduction: str = "mean"):
    """Mean squared error: mean((input - target)**2). VJP: 2 (input - target) g / N"""
    _check_reduction("mse_loss", reduction)
    if raw(input).shape != raw(target).shape:
        raise ValueError(f"mse_loss: input shape {raw(input).shape} and target shape {raw(target).shape} differ")
    return _mse(input, target, reduction=reduction)


def _bce_fwd(p, y, reduction):
    p, y = floating(p), floating(y)
    with np.errstate(divide="ignore"):
        loss = -(y * np.maximum(np.log(p), -100) + (1 - y) * np.maximum(np.log1p(-p), -100))
    return _reduce(loss, reduction)


def _bce_vjp(ctx, g, out, p, y, reduction):
    """PyTorch's rule: g (p - y) / max(p (1 - p), 1e-12)."""
    gg = g / raw(p).size if reduction == "mean" else g
    gp = gg * (p - y) / np.maximum(p * (1 - p), 1e-12) if ctx.needs[0] else None
    gy = None
    if ctx.needs[1]:  # (from p itself, not its array: differentiable under create_graph)
        with np.errstate(divide="ignore"):
            gy = gg * (np.maximum(np.log1p(-p), -100) - np.maximum(np.log(p), -100))
    return gp, gy


def _bce_jvp(ts, out, p, y, reduction):
    per = np.zeros(np.broadcast_shapes(np.shape(p), np.shape(y)), np.result_type(p, y))
    if ts[0] is not None:
        per = per + ts[0] * (p - y) / np.maximum(p * (1 - p), 1e-12)
    if ts[1] is not None:
        with np.errstate(divide="ignore"):
            per = per + ts[1] * (np.maximum(np.log1p(-p), -100) - np.maximum(np.log(p), -100))
    return _reduce(per, reduction)


def _reads_p_y(needs):
    """The input's gradient reads both; the target's only the input."""
    return (0, 1) if needs[0] else (0,)


_bce = Op("binary_cross_entropy", _bce_fwd, _bce_vjp, _bce_jvp, saves=_reads_p_y, saves_out=False)


def binary_cross_entropy(input, target, reduction: str = "mean"):
    """-(y log p + (1 - y) log(1 - p)), logs clamped at -100 as PyTorch. p must lie in [0, 1]."""
    _check_reduction("binary_cross_entropy", reduction)
    p = raw(input)
    if raw(target).shape != p.shape:
        raise ValueError(f"binary_cross_entropy: input shape {p.shape} and target shape {raw(target).shape} differ")
    effect(_check_probabilities, p)  # (an effect: a compiled step checks each call's input)
    return _bce(input, target, reduction=reduction)


def _check_probabilities(p) -> None:
    p = np.asarray(p)
    if p.size and not ((p >= 0) & (p <= 1)).all():
        bad = p[~((p >= 0) & (p <= 1))].flat[0]
        raise ValueError(f"binary_cross_entropy: input must be probabilities in [0, 1], got {bad}; "
                         "apply sigmoid first or use binary_cross_entropy_with_logits")


def _bcel_fwd(x, y, reduction):
    """max(x, 0) - x y + log(1 + e**-|x|) per element, in place when the dtypes allow."""
    x, y = floating(x), floating(y)
    if x.ndim == 0 or np.result_type(x, y) != x.dtype:
        return _reduce(np.maximum(x, 0) - x * y + np.log1p(np.exp(-np.abs(x))), reduction)
    loss = np.abs(x, out=_new(x))
    np.negative(loss, out=loss)
    np.exp(loss, out=loss)
    np.log1p(loss, out=loss)
    with memory.scratch() as s:
        t = np.maximum(x, 0, out=s.take(x.shape, x.dtype))
        loss += t
        loss -= np.multiply(x, y, out=t)
    if reduction == "none":
        return loss
    with memory.scratch() as s:
        s.adopt(loss)  # (the per-element losses are not the result: recycled once summed)
        return np.add.reduce(loss, axis=None) / (loss.size if reduction == "mean" else 1)


def _bcel_vjp(ctx, g, out, x, y, reduction):
    """g (sigmoid(x) - y) for the logits (in place on the sigmoid on arrays); -g x for the target
    (only when it needs a gradient)."""
    gg = g / raw(x).size if reduction == "mean" else g
    gy = gg * -x if ctx.needs[1] else None
    s = _sigmoid_of(x)
    o = _into(s) if np.result_type(s, y, gg) == s.dtype else None
    return np.multiply(np.subtract(s, y, out=o), gg, out=o), gy


_bce_logits = Op("binary_cross_entropy_with_logits", _bcel_fwd, _bcel_vjp,
                 lambda ts, out, x, y, reduction: _reduce(
                     (0 if ts[0] is None else ts[0] * (_stable_sigmoid(x) - y))
                     - (0 if ts[1] is None else ts[1] * x), reduction),
                 saves=_reads_p_y, saves_out=False)


def binary_cross_entropy_with_logits(input, target, reduction: str = "mean"):
    """BCE of sigmoid(x), computed stably from the logits x. VJP: g (sigmoid(x) - y)"""
    _check_reduction("binary_cross_entropy_with_logits", reduction)
    if raw(target).shape != raw(input).shape:
        raise ValueError(f"binary_cross_entropy_with_logits: input shape {raw(input).shape} and target shape "
                         f"{raw(target).shape} differ")
    return _bce_logits(input, target, reduction=reduction)
