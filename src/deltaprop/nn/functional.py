"""Functional forms of the layers, activations and losses (PyTorch's names).

These check their arguments and call the primitives in deltaprop.ops (ops/layers.py: linear,
conv2d, max_pool2d, batch_norm; ops/activations.py: gelu), where each op's forward, VJP and
JVP live side by side.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import _config
from ..autograd import apply
from ..modes import effect, is_grad_enabled, no_grad
from ..creation import tensor
from .. import graph as _graph
from ..ops import (abs, binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy, leaky_relu,
                   log_softmax, mse_loss, multiply, relu, reshape, sigmoid, softmax, softplus, sqrt, tanh,
                   where)
from ..ops import activations as _act, layers as _layers
from ..ops._special import erf
from ..ops.elementwise import raw
from ..ops.shape import _unindex as _scatter_op
from ..tensor import Tensor

__all__ = ["softmax", "log_softmax", "cross_entropy", "mse_loss", "binary_cross_entropy",
           "binary_cross_entropy_with_logits", "relu", "sigmoid", "tanh", "leaky_relu", "gelu", "softplus",
           "dropout", "linear", "conv2d", "max_pool2d", "batch_norm", "erf", "one_hot", "nll_loss", "l1_loss",
           "conv1d", "avg_pool2d", "adaptive_avg_pool2d", "layer_norm", "embedding"]


def linear(x: Any, weight: Any, bias: Any = None) -> Tensor:
    """y = x @ W.T + b with W of shape (out, in); x (..., in) or (in,). VJP: g @ W, g.T @ x, sum(g)."""
    if not isinstance(x, (Tensor, np.ndarray)):
        x = tensor(x)  # lists / Python floats: the default dtype, as dp.tensor
    return apply(_layers.linear, (x, weight) if bias is None else (x, weight, bias), {})


# -- conv2d ----------------------------------------------------------------------------------------
def _pair(v, name: str, what: str) -> tuple[int, int]:
    t = tuple(v) if isinstance(v, (tuple, list)) else (v, v)
    if len(t) != 2 or not all(isinstance(i, (int, np.integer)) for i in t):
        raise ValueError(f"{name}: {what} must be an int or a pair of ints, got {v!r}")
    return int(t[0]), int(t[1])


def _dilate(weight: Any, dilation: tuple[int, int]) -> Tensor:
    """The kernel with dilation - 1 zeros between its taps: a dilated convolution is the plain
    one with this kernel. Differentiable (a scatter; its VJP picks the taps' gradients back)."""
    w = weight if isinstance(weight, Tensor) else Tensor(np.asarray(weight))
    o, c, kh, kw = w.shape
    index = (slice(None), slice(None), slice(None, None, dilation[0]), slice(None, None, dilation[1]))
    return _scatter_op(w, index=index, shape=(o, c, dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1))


def conv2d(x: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0, dilation: Any = 1,
           groups: int = 1) -> Tensor:
    """2-D cross-correlation, NCHW: y[n,o] = sum_c x_pad[n,c] * W[o,c] + b[o] (im2col + one matmul).
    VJP: col2im(g @ W) for x, g.T @ im2col(x) for W, sum(g) for b. dilation d spaces the kernel's
    taps d apart (the kernel with zeros in between); groups must be 1."""
    stride, padding = _pair(stride, "conv2d", "stride"), _pair(padding, "conv2d", "padding")
    dilation = _pair(dilation, "conv2d", "dilation")
    xs, ws = np.shape(raw(x)), np.shape(raw(weight))
    if len(ws) != 4:
        raise ValueError(f"conv2d: weight must have shape (out_channels, in_channels, kH, kW), got {ws}")
    if min(stride) < 1 or min(padding) < 0 or min(dilation) < 1:
        raise ValueError(f"conv2d: stride and dilation must be >= 1 and padding >= 0, got stride={stride}, "
                         f"padding={padding}, dilation={dilation}")
    if groups != 1:
        raise NotImplementedError(f"conv2d: groups={groups} is not supported (only groups=1)")
    if dilation != (1, 1):
        weight = _dilate(weight, dilation)
        ws = weight.shape
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
    kw = {"stride": stride, "padding": padding}
    out = apply(_layers.conv2d, (x, weight) if bias is None else (x, weight, bias), kw)
    return reshape(out, out.shape[1:]) if unbatched else out


# -- max_pool2d ------------------------------------------------------------------------------------
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
    out = _layers.max_pool2d(x, kernel=kernel, stride=stride, padding=padding)
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
    # (an effect: a compiled step draws a new mask at this point on every replay)
    return multiply(x, effect(_dropout_mask, rx.shape, dt, p))


def _dropout_mask(shape: tuple, dt: Any, p: float) -> np.ndarray:
    """1/(1-p) where a uniform draw from the default generator is >= p, else 0."""
    if p == 1.0:
        return np.zeros(shape, dt)
    keep = _config.default_generator().random(shape, dtype=dt) >= p
    return np.multiply(keep, 1.0 / (1.0 - p), dtype=dt)


def gelu(x: Any, approximate: str = "none") -> Tensor:
    """GELU: x * Phi(x) (exact, via erf) or 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
    VJP (exact): g * (Phi(x) + x phi(x))."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return _act.gelu(x, approximate=approximate)


def batch_norm(x: Any, running_mean: Tensor | None, running_var: Tensor | None, weight: Any = None,
               bias: Any = None, training: bool = False, momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """(x - mean) / sqrt(var + eps) * weight + bias per channel (axis 1) of (N, C), (N, C, L) or
    (N, C, H, W). Training uses the batch's biased variance and updates the running stats in place
    (unbiased variance). Training mode is one op whose VJP is the closed-form batch-norm gradient."""
    return _batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps)


def _batch_norm(x: Any, running_mean: Tensor | None, running_var: Tensor | None, weight: Any, bias: Any,
                training: bool, momentum: float | None, eps: float, counter: Tensor | None = None) -> Tensor:
    """batch_norm; with `counter` (BatchNorm's num_batches_tracked, given in training) 1 is added
    to it first (as PyTorch, also when the batch is then refused), and momentum=None takes
    1 / count at the update (a cumulative average). Both are effects: a compiled step counts on
    every replay."""
    xs = np.shape(raw(x))
    if len(xs) not in (2, 3, 4):
        raise ValueError(f"batch_norm: expected input of shape (N, C), (N, C, L) or (N, C, H, W), got {xs}")
    axes = (0,) + tuple(range(2, len(xs)))  # every axis but the channels
    shape = (1, xs[1]) + (1,) * (len(xs) - 2)
    xt = x if isinstance(x, Tensor) else Tensor(np.asarray(x))
    if training or running_mean is None:
        if counter is not None:
            effect(_count_batch, counter)
        n = int(np.prod([xs[a] for a in axes]))
        if n <= 1:
            raise ValueError(f"batch_norm: expected more than 1 value per channel when training, "
                             f"got input of shape {xs}")
        y = _layers.batch_norm_train(xt, weight, bias, axes=axes, shape=shape, eps=eps)
        if training and running_mean is not None:  # (an effect: a compiled step repeats it on every replay)
            if (node := _graph.producer(y)) is not None:  # the op kept its batch statistics
                effect(_update_running, running_mean, running_var, node.extra[0], node.extra[1], momentum, n,
                       counter)
            else:
                effect(_update_running_from, running_mean, running_var, raw(xt), axes, momentum, n, counter)
        return y
    y = (xt - reshape(running_mean, shape)) / sqrt(reshape(running_var, shape) + eps)
    if weight is not None:
        y = y * (reshape(weight, shape) if len(xs) > 2 else weight)
    if bias is not None:
        y = y + (reshape(bias, shape) if len(xs) > 2 else bias)
    return y


# -- PyTorch names added for interop: one_hot, nll_loss, l1_loss ---------------------------------
def one_hot(tensor: Any, num_classes: int = -1) -> Tensor:
    """int64 one-hot encoding: shape tensor.shape + (num_classes,); num_classes=-1 uses max + 1.
    Not differentiable (an integer result), as in PyTorch."""
    lab = np.asarray(raw(tensor))
    if lab.dtype.kind not in "iu":
        raise TypeError(f"one_hot: expected an integer (index) tensor, got dtype {lab.dtype}")
    if num_classes == -1:
        if lab.size == 0:
            raise ValueError("one_hot: cannot infer the number of classes of an empty tensor; pass num_classes")
        num_classes = int(lab.max()) + 1
    if lab.size and (lab.min() < 0 or lab.max() >= num_classes):
        bad = lab[(lab < 0) | (lab >= num_classes)].flat[0]
        raise ValueError(f"one_hot: class value {bad} is out of range for num_classes={num_classes} "
                         f"(valid: 0..{num_classes - 1})")
    out = np.zeros(lab.shape + (int(num_classes),), np.int64)
    np.put_along_axis(out, lab[..., None].astype(np.intp), 1, axis=-1)
    return Tensor(out)


def _check_loss_reduction(name: str, reduction: str) -> None:
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{name}: reduction must be one of ('mean', 'sum', 'none'), got {reduction!r}")


def nll_loss(input: Any, target: Any, weight: Any = None, ignore_index: int = -100,
             reduction: str = "mean") -> Tensor:
    """Negative log-likelihood from log-probabilities: -w[t] * input[n, t] per sample, for input
    (N, C), (C,) or (N, C, d1, ...) and int targets (N,), () or (N, d1, ...). 'mean' divides by
    the summed weights of the targets not equal to ignore_index (PyTorch's rule).
    VJP: -w[t] g scattered to each target's class."""
    _check_loss_reduction("nll_loss", reduction)
    x = input if isinstance(input, Tensor) else tensor(input)
    xs = x.shape
    lab = np.asarray(raw(target))
    if lab.dtype.kind not in "iu":
        raise TypeError(f"nll_loss: target must be an integer tensor of class indices, got dtype {lab.dtype}")
    expect = (xs[0],) + xs[2:] if len(xs) >= 2 else ()
    if len(xs) == 0 or lab.shape != expect:
        raise ValueError(f"nll_loss: input of shape {xs} needs a target of shape {expect}, got {lab.shape}")
    c = xs[0] if len(xs) == 1 else xs[1]
    if len(xs) > 2:  # the class axis last, then one row per position
        x = x.transpose(0, *range(2, len(xs)), 1)
    x2 = reshape(x, (-1, c))
    w = None if weight is None else weight if isinstance(weight, Tensor) else np.asarray(raw(weight), x2.dtype)
    if w is not None and np.shape(raw(w)) != (c,):
        raise ValueError(f"nll_loss: weight must have shape ({c},), got {np.shape(raw(w))}")
    # (effects: the targets are data, new on each call of a compiled step, which makes these again
    # from each call's targets: the range check, the positions picked and their weights)
    flat = effect(_nll_positions, lab, c, ignore_index)
    wt = effect(_nll_weights, lab, w, c, ignore_index, x2.dtype)
    losses = -(reshape(x2, (-1,))[flat] * wt)
    if reduction == "none":
        return reshape(losses, lab.shape)
    total = losses.sum()
    return total if reduction == "sum" else total / effect(_total, wt)


def _nll_targets(lab: np.ndarray, c: int, ignore_index: int) -> tuple[np.ndarray, np.ndarray]:
    """The targets as a flat intp array with ignored ones at 0, and which are not ignored;
    ValueError for a target outside 0..c-1 that is not ignore_index."""
    t = lab.reshape(-1).astype(np.intp)
    valid = t != ignore_index
    bad = t[valid & ((t < 0) | (t >= c))]
    if bad.size:
        raise ValueError(f"nll_loss: target {bad[0]} is out of range for {c} classes (valid: 0..{c - 1}, or "
                         f"ignore_index={ignore_index})")
    return np.where(valid, t, 0), valid


def _nll_positions(lab: np.ndarray, c: int, ignore_index: int) -> np.ndarray:
    """Each row's target position in the flattened (rows, c) input."""
    safe, _valid = _nll_targets(lab, c, ignore_index)
    return np.arange(len(safe)) * c + safe


def _nll_weights(lab: np.ndarray, weight: Any, c: int, ignore_index: int, dtype: Any) -> np.ndarray:
    """Each row's class weight (1 without weights), 0 where the target is ignore_index."""
    safe, valid = _nll_targets(lab, c, ignore_index)
    w = np.ones(c, dtype) if weight is None else np.asarray(raw(weight), dtype=dtype)
    return w[safe] * valid


def _total(a: np.ndarray) -> np.ndarray:
    return np.asarray(a.sum())


def l1_loss(input: Any, target: Any, reduction: str = "mean") -> Tensor:
    """Mean absolute error: mean(|input - target|) (or sum / per element). VJP: sign(input - target) g / N
    (0 where they are equal, as PyTorch)."""
    _check_loss_reduction("l1_loss", reduction)
    if np.shape(raw(input)) != np.shape(raw(target)):
        raise ValueError(f"l1_loss: input shape {np.shape(raw(input))} and target shape {np.shape(raw(target))} "
                         "differ")
    d = abs((input if isinstance(input, Tensor) else tensor(input)) - target)
    return d if reduction == "none" else d.sum() if reduction == "sum" else d.mean()


def _batched_4d(x: Any, name: str) -> tuple[Tensor, bool]:
    """x as a 4-D Tensor (N, C, H, W) (a 3-D (C, H, W) gets a batch axis of 1), and whether it had none."""
    xt = x if isinstance(x, Tensor) else tensor(x)
    if xt.ndim == 3:
        return reshape(xt, (1,) + xt.shape), True
    if xt.ndim != 4:
        raise ValueError(f"{name}: expected a 4-D input (N, C, H, W) or 3-D (C, H, W), got shape {xt.shape}")
    if xt.dtype.kind != "f":
        raise ValueError(f"{name}: expected a floating-point input, got {xt.dtype}")
    return xt, False


def conv1d(x: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0, dilation: Any = 1,
           groups: int = 1) -> Tensor:
    """1-D cross-correlation over (N, C, L) (or (C, L)) with weight (out, in, k): conv2d on a
    height-1 image. VJP: conv2d's."""
    one = {"stride": stride, "padding": padding, "dilation": dilation}
    for k, v in one.items():
        v = tuple(v) if isinstance(v, (tuple, list)) else (v,)
        if len(v) != 1 or not isinstance(v[0], (int, np.integer)):
            raise ValueError(f"conv1d: {k} must be an int or a 1-tuple of ints, got {one[k]!r}")
        one[k] = (1 if k != "padding" else 0, int(v[0]))
    xt = x if isinstance(x, Tensor) else tensor(x)
    ws = np.shape(raw(weight))
    if len(ws) != 3:
        raise ValueError(f"conv1d: weight must have shape (out_channels, in_channels, k), got {ws}")
    if xt.ndim not in (2, 3) or xt.shape[-2] != ws[1]:
        raise ValueError(f"conv1d: expected input of shape (N, {ws[1]}, L) or ({ws[1]}, L) for weight of shape "
                         f"{ws}, got {xt.shape}")
    unbatched = xt.ndim == 2
    x4 = reshape(xt, (1 if unbatched else xt.shape[0], ws[1], 1, xt.shape[-1]))
    w4 = reshape(weight if isinstance(weight, Tensor) else Tensor(np.asarray(weight)), (ws[0], ws[1], 1, ws[2]))
    out = conv2d(x4, w4, bias, one["stride"], one["padding"], one["dilation"], groups)
    return reshape(out, (out.shape[1], out.shape[3]) if unbatched else (out.shape[0], out.shape[1], out.shape[3]))


def avg_pool2d(x: Any, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override: int | None = None) -> Tensor:
    """Mean over kH x kW windows (NCHW; stride defaults to kernel_size; zero padding, counted in
    the divisor unless count_include_pad=False). VJP: g / divisor spread over each window."""
    kernel = _pair(kernel_size, "avg_pool2d", "kernel_size")
    stride = kernel if stride is None else _pair(stride, "avg_pool2d", "stride")
    padding = _pair(padding, "avg_pool2d", "padding")
    if ceil_mode:
        raise NotImplementedError("avg_pool2d: ceil_mode=True is not supported")
    if min(kernel) < 1 or min(stride) < 1 or min(padding) < 0:
        raise ValueError(f"avg_pool2d: kernel_size and stride must be >= 1 and padding >= 0, got "
                         f"kernel_size={kernel}, stride={stride}, padding={padding}")
    if padding[0] * 2 > kernel[0] or padding[1] * 2 > kernel[1]:
        raise ValueError(f"avg_pool2d: padding {padding} must be at most half the kernel size {kernel}")
    if divisor_override is not None and (not isinstance(divisor_override, (int, np.integer)) or divisor_override < 1):
        raise ValueError(f"avg_pool2d: divisor_override must be a positive int, got {divisor_override!r}")
    xt, unbatched = _batched_4d(x, "avg_pool2d")
    if xt.shape[2] + 2 * padding[0] < kernel[0] or xt.shape[3] + 2 * padding[1] < kernel[1]:
        raise ValueError(f"avg_pool2d: kernel {kernel} is larger than the padded input {xt.shape[2:]} "
                         f"(padding {padding})")
    divisor = _layers.avg_pool_divisor(xt.shape, kernel, stride, padding, count_include_pad, divisor_override)
    out = _layers.avg_pool2d(xt, kernel=kernel, stride=stride, padding=padding, divisor=divisor)
    return reshape(out, out.shape[1:]) if unbatched else out


def adaptive_avg_pool2d(x: Any, output_size: Any) -> Tensor:
    """Mean over the windows that split (H, W) into output_size bins (PyTorch's bins: rows
    floor(i H / oh) to ceil((i + 1) H / oh)); an entry None keeps that size. Where the sizes
    divide evenly this is avg_pool2d with kernel = stride = H / oh."""
    xt, unbatched = _batched_4d(x, "adaptive_avg_pool2d")
    size = tuple(output_size) if isinstance(output_size, (tuple, list)) else (output_size, output_size)
    if len(size) != 2:
        raise ValueError(f"adaptive_avg_pool2d: output_size must be an int or a pair, got {output_size!r}")
    h, w = xt.shape[2:]
    oh, ow = (h if size[0] is None else int(size[0])), (w if size[1] is None else int(size[1]))
    if oh < 1 or ow < 1:
        raise ValueError(f"adaptive_avg_pool2d: output_size must be positive, got {output_size!r}")
    if h % oh == 0 and w % ow == 0:
        out = avg_pool2d(xt, (h // oh, w // ow))
    else:  # uneven bins (they may overlap): one mean per bin
        rows = [(i * h // oh, -(-(i + 1) * h // oh)) for i in range(oh)]
        cols = [(j * w // ow, -(-(j + 1) * w // ow)) for j in range(ow)]
        from ..ops import mean, stack
        out = stack([stack([mean(xt[:, :, r0:r1, c0:c1], axis=(2, 3)) for c0, c1 in cols], axis=-1)
                     for r0, r1 in rows], axis=-2)
    return reshape(out, out.shape[1:]) if unbatched else out


def layer_norm(x: Any, normalized_shape: Any, weight: Any = None, bias: Any = None, eps: float = 1e-5) -> Tensor:
    """(x - mean) / sqrt(var + eps) * weight + bias over the last len(normalized_shape) axes
    (biased variance, as PyTorch). Built from differentiable ops."""
    ns = (int(normalized_shape),) if isinstance(normalized_shape, (int, np.integer)) else tuple(normalized_shape)
    xt = x if isinstance(x, Tensor) else tensor(x)
    if not ns or xt.shape[xt.ndim - len(ns):] != ns or xt.ndim < len(ns):
        raise ValueError(f"layer_norm: input of shape {xt.shape} does not end with normalized_shape {ns}")
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and np.shape(raw(p)) != ns:
            raise ValueError(f"layer_norm: {name} must have shape {ns}, got {np.shape(raw(p))}")
    axes = tuple(range(xt.ndim - len(ns), xt.ndim))
    xc = xt - xt.mean(axis=axes, keepdims=True)
    y = xc / ((xc * xc).mean(axis=axes, keepdims=True) + eps) ** 0.5
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


def embedding(input: Any, weight: Any, padding_idx: int | None = None) -> Tensor:
    """Rows of weight (num_embeddings, dim) at the integer indices: shape input.shape + (dim,).
    VJP: g scatter-added into the rows; the padding_idx row gets no gradient (PyTorch's rule)."""
    idx = np.asarray(raw(input))
    ws = np.shape(raw(weight))
    if len(ws) != 2:
        raise ValueError(f"embedding: weight must have shape (num_embeddings, embedding_dim), got {ws}")
    if idx.dtype.kind not in "iu":
        raise TypeError(f"embedding: indices must be an integer tensor, got dtype {idx.dtype}")
    w = weight if isinstance(weight, Tensor) else Tensor(np.asarray(weight))
    pad = padding_idx if padding_idx is not None and w.requires_grad and is_grad_enabled() else None
    # (an effect: the range check and the padding mask depend on the indices, so a compiled step
    # makes them again from each call's indices, whatever batches it recorded)
    keep = effect(_embedding_indices, idx, ws[0], pad)
    out = w[input if isinstance(input, Tensor) else idx]
    if keep is None:
        return out
    with no_grad():  # the padding rows' values, with no gradient path back to the weight
        frozen = w[input if isinstance(input, Tensor) else idx]
    return where(keep, out, frozen)


def _embedding_indices(idx: np.ndarray, n: int, padding_idx: int | None) -> np.ndarray | None:
    """Raise IndexError for an index outside 0..n-1 (a negative one too, as PyTorch); with a
    padding_idx, the mask (idx.shape + (1,)) of the positions whose gradient is kept."""
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        bad = idx[(idx < 0) | (idx >= n)].flat[0]
        raise IndexError(f"embedding: index {bad} is out of range for {n} embeddings (valid: 0..{n - 1})")
    return None if padding_idx is None else (idx != padding_idx)[..., None]


def _count_batch(counter: Tensor) -> None:
    """num_batches_tracked += 1, in place."""
    counter.data += 1
    counter._bump()


def _update_running(running_mean: Tensor, running_var: Tensor, mean: np.ndarray, var: np.ndarray,
                    momentum: float | None, n: int, counter: Tensor | None = None) -> None:
    """The running statistics, in place: r = (1 - momentum) r + momentum * batch (unbiased variance);
    momentum None: 1 / counter (the batches counted so far, this one included)."""
    if momentum is None:
        momentum = 1.0 / float(counter.data)  # type: ignore[union-attr]  # (given when momentum is None)
    rm, rv = running_mean.data, running_var.data
    rm *= 1 - momentum
    rm += momentum * mean.reshape(-1)
    rv *= 1 - momentum
    rv += (momentum * n / (n - 1)) * var.reshape(-1)
    running_mean._bump()
    running_var._bump()


def _update_running_from(running_mean: Tensor, running_var: Tensor, x: np.ndarray, axes: tuple,
                         momentum: float | None, n: int, counter: Tensor | None = None) -> None:
    """_update_running from the batch itself (no graph was recorded, so no statistics were kept)."""
    _update_running(running_mean, running_var, x.mean(axis=axes), x.var(axis=axes), momentum, n, counter)
