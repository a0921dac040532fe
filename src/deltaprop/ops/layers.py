"""Layer primitives: linear, conv2d, max_pool2d and batch_norm, each one fused op (forward,
VJP and JVP side by side). nn/functional.py checks the arguments and calls these.

Their fast VJPs run on raw ndarrays in an ordinary backward; the reference VJPs are built from
ops whose own VJPs close the set (conv2d <-> its input and weight gradients, max-pool scatter
<-> gather), so higher-order gradients work too.
"""
from __future__ import annotations

import functools

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .. import memory
from ..autograd import Op
from ..tensor import Tensor
from .elementwise import _new, raw
from .shape import reshape

# -- linear ---------------------------------------------------------------------------------------
def _linear_fwd(x, w, b=None):
    try:
        if x.ndim and x.shape[-1] != w.shape[1]:
            raise ValueError
        dtype = x.dtype if x.dtype == w.dtype else np.result_type(x, w)
        out = np.matmul(x, w.T, out=memory.take(x.shape[:-1] + w.shape[:1], dtype))
    except ValueError:
        raise ValueError(f"linear: input of shape {np.shape(x)} does not fit weight of shape {w.shape} "
                         f"(the input's last axis must be in_features = {w.shape[-1]})") from None
    if b is not None:
        if b.dtype == out.dtype or out.dtype == np.result_type(out, b):
            out += b  # (out is our own new array)
        else:
            out = out + b
    return out


def _linear_vjp(ctx, g, out, x, w, b=None):
    """VJP: g @ W (into a recycled array on arrays), g.T @ x (leading axes summed), g summed over
    leading axes. The same lines run on Tensors under create_graph."""
    nx, nw = ctx.needs[0], ctx.needs[1]
    gx = np.matmul(g, w, out=_buf(g.shape[:-1] + w.shape[1:], g, w)) if nx else None
    g2 = g if g.ndim == 2 else g.reshape((-1, w.shape[0]))
    gw = g2.T @ (x if x.ndim == 2 else x.reshape((-1, w.shape[1]))) if nw else None
    return (gx, gw) if b is None else (gx, gw, g2.sum(axis=0))


def _buf(shape, *operands):
    """A recycled out= array for a product of array operands; None when one is a Tensor."""
    if any(isinstance(o, Tensor) for o in operands):
        return None
    return memory.take(shape, np.result_type(*operands))


def _linear_jvp(ts, out, x, w, b=None):
    r = np.zeros_like(out)
    if ts[0] is not None:
        r = r + np.matmul(ts[0], w.T)
    if ts[1] is not None:
        r = r + np.matmul(x, ts[1].T)
    if len(ts) > 2 and ts[2] is not None:
        r = r + ts[2]
    return r


def _reads_x_w(needs):
    """Inputs a product's VJP reads: x when W needs a gradient, W when x does."""
    return ((1,) if needs[0] else ()) + ((0,) if needs[1] else ())


# (its straight-line form for dp.compile: ops/lowered.py, the same NumPy calls as these functions)
linear = Op("linear", _linear_fwd, _linear_vjp, _linear_jvp, saves=_reads_x_w, saves_out=False)


# -- conv2d ---------------------------------------------------------------------------------------
def _pad(x, padding, value=0.0):
    ph, pw = padding
    if ph == 0 and pw == 0:
        return x
    out = np.full(x.shape[:2] + (x.shape[2] + 2 * ph, x.shape[3] + 2 * pw), value, x.dtype)
    out[:, :, ph:ph + x.shape[2], pw:pw + x.shape[3]] = x  # (much faster than np.pad)
    return out


def _windows(xp, kh, kw, stride):
    """im2col as a view: (N, C, Ho, Wo, kh, kw), no copy (as_strided directly: sliding_window_view's
    argument handling took longer than the convolution's matmul here)."""
    n, c, h, w = xp.shape
    s0, s1, s2, s3 = xp.strides
    shape = (n, c, (h - kh) // stride[0] + 1, (w - kw) // stride[1] + 1, kh, kw)
    return as_strided(xp, shape, (s0, s1, s2 * stride[0], s3 * stride[1], s2, s3), writeable=False)


def _im2col(x, kh, kw, stride, padding, into=memory, ones=False):
    """The patches as (N, C*kh*kw, Ho*Wo), one copy, ordered (c, i, j) like W.reshape(O, -1);
    `into`: where the array comes from (a scratch scope, or memory for one kept beyond it);
    `ones`: one more row of ones at the end (the bias's column of the weight matrix)."""
    win = _windows(_pad(x, padding), kh, kw, stride)
    n, c, ho, wo = win.shape[:4]
    k = c * kh * kw
    cols = into.take((n, k + 1 if ones else k, ho * wo), win.dtype)
    if ones:
        cols[:, k] = 1
    # (splitting the axes of cols[:, :k] is always a view: the copy lands in cols)
    cols[:, :k].reshape(n, c, kh, kw, ho, wo)[...] = win.transpose(0, 1, 4, 5, 2, 3)
    return cols, ho, wo


def _conv_raw(x, w, b=None, *, stride, padding, keep=None):
    """The convolution; `keep` (a node) keeps the patches for the weight's gradient. A bias of the
    same dtype rides in the matmul (a row of ones under the patches, the bias as one more column
    of W): no pass of its own, and the weight's gradient GEMM then gives the bias's too."""
    fused = b is not None and b.dtype == w.dtype == x.dtype
    with memory.scratch() as s:
        cols, ho, wo = _im2col(x, w.shape[2], w.shape[3], stride, padding, memory if keep is not None else s, fused)
        w2 = w.reshape(w.shape[0], -1)
        if fused:
            w2 = np.concatenate((w2, b.reshape(-1, 1)), axis=1)
            b = None
        out = memory.lease((x.shape[0], w.shape[0], ho, wo), np.result_type(w2, cols))  # (the op's output)
        np.matmul(w2, cols, out=out.reshape(x.shape[0], w.shape[0], ho * wo))  # per image: already NCHW
    if keep is not None:
        keep.extra = cols  # the weight's gradient needs the same patches: kept, not rebuilt
    if b is not None:
        b4 = b.reshape(1, -1, 1, 1)
        out = out + b4 if out.dtype != np.result_type(out, b4) else np.add(out, b4, out=out)
    return out


def _conv_fwd(ctx, x, w, b=None, *, stride, padding):
    return _conv_raw(x, w, b, stride=stride, padding=padding,
                     keep=ctx if ctx is not None and ctx.needs[1] else None)


def _conv_input_grad(g, w, x_shape, stride, padding):
    """Adjoint of conv in x (col2im): for each kernel offset, W[:, :, i, j].T @ g per image, added
    at that offset. One offset at a time keeps the work array small (the full column matrix would
    be kh*kw times the input's size)."""
    n, c, h, wd = x_shape
    o, kh, kw = w.shape[0], w.shape[2], w.shape[3]
    sh, sw = stride
    ho, wo = g.shape[2], g.shape[3]
    g2 = g.reshape(n, o, ho * wo)
    gxp = memory.take((n, c, h + 2 * padding[0], wd + 2 * padding[1]), np.result_type(w, g))
    gxp.fill(0)
    with memory.scratch() as s:
        part = s.take((n, c, ho * wo), gxp.dtype)
        for i in range(kh):
            for j in range(kw):
                np.matmul(w[:, :, i, j].T, g2, out=part)
                gxp[:, :, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw] += part.reshape(n, c, ho, wo)
    return gxp[:, :, padding[0]:padding[0] + h, padding[1]:padding[1] + wd]


def _conv_weight_grad(x, g, w_shape, stride, padding, cols=None):
    """dL/dW[o,c,i,j] = sum_{n,h,w} g[n,o,h,w] x_pad[n,c,h*s+i,w*s+j], as one GEMM over the batch
    (`cols`: the forward's patches of x, when it kept them; used up here)."""
    return _conv_param_grads(x, g, w_shape, stride, padding, cols)[0]


def _conv_param_grads(x, g, w_shape, stride, padding, cols=None, ones=False):
    """(dL/dW, dL/db or None): _conv_weight_grad, and the bias's gradient too when `cols` holds
    the forward's row of ones (its column of the product is sum(g) per channel); `ones`: rebuilt
    patches get that row too (a retained graph's next backward gives the same numbers)."""
    with memory.scratch() as s:
        if cols is None:
            cols, ho, wo = _im2col(x, w_shape[2], w_shape[3], stride, padding, s, ones)
        else:
            s.adopt(cols)
            ho, wo = g.shape[2], g.shape[3]
        n, o = g.shape[0], g.shape[1]
        # per image (O, HW) @ (HW, K), summed over the batch: no transposed copy of g (a large array)
        prod = np.matmul(g.reshape(n, o, ho * wo), cols.transpose(0, 2, 1)).sum(axis=0)
    k = w_shape[1] * w_shape[2] * w_shape[3]
    if prod.shape[1] == k:
        return prod.reshape(w_shape), None
    return prod[:, :k].reshape(w_shape), prod[:, k].copy()


def _any_tensor(*xs) -> bool:
    return any(isinstance(x, Tensor) for x in xs)


def _conv_any(x, w, stride, padding):
    if _any_tensor(x, w):
        return conv2d(x, w, stride=stride, padding=padding)
    return _conv_raw(x, w, stride=stride, padding=padding)


def _convx_any(g, w, x_shape, stride, padding):
    if _any_tensor(g, w):
        return _convx_op(g, w, x_shape=x_shape, stride=stride, padding=padding)
    return _conv_input_grad(g, w, x_shape, stride, padding)


def _convw_any(x, g, w_shape, stride, padding):
    if _any_tensor(x, g):
        return _convw_op(x, g, w_shape=w_shape, stride=stride, padding=padding)
    return _conv_weight_grad(x, g, w_shape, stride, padding)


def _conv_vjp(ctx, g, out, x, w, b=None, *, stride, padding):
    """VJP: conv's adjoints in x (col2im of W.T g) and in W (g times the patches), sum(g) for b;
    built from ops, so it is differentiable."""
    gx = _convx_op(g, w, x_shape=raw(x).shape, stride=stride, padding=padding) if ctx.needs[0] else None
    gw = _convw_op(x, g, w_shape=raw(w).shape, stride=stride, padding=padding) if ctx.needs[1] else None
    return (gx, gw) if b is None else (gx, gw, g.sum(axis=(0, 2, 3)))


def _conv_fast(ctx, g, out, x, w, b=None, *, stride, padding):
    """_conv_vjp on ndarrays, reusing the forward's patches for the weight's gradient."""
    gx = _conv_input_grad(g, w, x.shape, stride, padding) if ctx.needs[0] else None
    gw = gb = None
    if ctx.needs[1]:
        cols, ctx.extra = ctx.extra, None  # (used once: a retained graph's second backward rebuilds them)
        gw, gb = _conv_param_grads(x, g, w.shape, stride, padding, cols,
                                   ones=b is not None and b.dtype == w.dtype == x.dtype)  # (as _conv_raw fuses)
    if b is None:
        return gx, gw
    if gb is None:  # over the batch first (whole images added at once, SIMD), then within each channel
        gb = np.add.reduce(np.add.reduce(g, axis=0), axis=(1, 2))
    return gx, gw, gb


def _conv_jvp(ts, out, x, w, b=None, *, stride, padding):
    r = np.zeros_like(out)
    if ts[0] is not None:
        r = r + _conv_raw(ts[0], w, stride=stride, padding=padding)
    if ts[1] is not None:
        r = r + _conv_raw(x, ts[1], stride=stride, padding=padding)
    if len(ts) > 2 and ts[2] is not None:
        r = r + ts[2].reshape(1, -1, 1, 1)
    return r


conv2d = Op("conv2d", _conv_fwd, _conv_fast, _conv_jvp, graph_vjp=_conv_vjp, keeps=True, saves=_reads_x_w,
            saves_out=False)
# T(g, W) = conv's adjoint in x; <a, T(g, W)> = <conv(a, W), g> gives both VJPs below.
_convx_op = Op("conv2d_input_grad", lambda g, w, *, x_shape, stride, padding: _conv_input_grad(
    g, w, x_shape, stride, padding),
    lambda ctx, gg, out, g, w, *, x_shape, stride, padding: (
        _conv_any(gg, w, stride, padding), _convw_any(gg, g, raw(w).shape, stride, padding)),
    lambda ts, out, g, w, *, x_shape, stride, padding: (
        (0 if ts[0] is None else _conv_input_grad(ts[0], w, x_shape, stride, padding))
        + (0 if ts[1] is None else _conv_input_grad(g, ts[1], x_shape, stride, padding))),
    saves=_reads_x_w, saves_out=False)  # (bilinear: each input's gradient reads only the other)
# Wg(x, g) = conv's adjoint in W; <V, Wg(x, g)> = <conv(x, V), g>.
_convw_op = Op("conv2d_weight_grad", lambda x, g, *, w_shape, stride, padding: _conv_weight_grad(
    x, g, w_shape, stride, padding),
    lambda ctx, gv, out, x, g, *, w_shape, stride, padding: (
        _convx_any(g, gv, raw(x).shape, stride, padding), _conv_any(x, gv, stride, padding)),
    lambda ts, out, x, g, *, w_shape, stride, padding: (
        (0 if ts[0] is None else _conv_weight_grad(ts[0], g, w_shape, stride, padding))
        + (0 if ts[1] is None else _conv_weight_grad(x, ts[1], w_shape, stride, padding))),
    saves=_reads_x_w, saves_out=False)


# -- max_pool2d -----------------------------------------------------------------------------------
# NumPy runs a ufunc over a contiguous array with SIMD, but over a strided view (one kernel offset
# of every window) element by element, several times slower. So the forward and the fast VJP work
# on the whole padded input as one flat array shifted by a column or a row: r[p] = max(x[p], ...,
# x[p + kW - 1]) is the maximum of the row segment starting at p, d[p] = max_i r[p + i W] that of
# the window whose top-left corner is p; the windows' values are then read at their corners.
# Positions whose segment runs past a row's end are computed and never read.
def _pool_positions(kernel, stride, ho, wo):
    """(k, rows, cols): for each kernel offset, the strided slice of the padded input it reads."""
    kh, kw = kernel
    sh, sw = stride
    return [(i * kw + j, slice(i, i + sh * (ho - 1) + 1, sh), slice(j, j + sw * (wo - 1) + 1, sw))
            for i in range(kh) for j in range(kw)]


def _pool_out_hw(shape, kernel, stride, padding):
    return ((shape[2] + 2 * padding[0] - kernel[0]) // stride[0] + 1,
            (shape[3] + 2 * padding[1] - kernel[1]) // stride[1] + 1)


def _pool_padded(x, padding):
    """The input padded with -inf, C-contiguous (the flat shifts need one flat array)."""
    xp = _pad(x, padding, -np.inf)
    return xp if xp.flags.c_contiguous else np.ascontiguousarray(xp)


def _shifted_max(a, k, step, s):
    """m[p] = max(a[p], a[p + step], ..., a[p + (k - 1) step]) for flat `a`, over its first
    a.size - (k - 1) step positions, in a work array of scratch scope `s` (a itself for k == 1)."""
    if k == 1:
        return a
    n = a.size - (k - 1) * step
    m = s.take(a.shape, a.dtype)
    np.maximum(a[:n], a[step:step + n], out=m[:n])
    for i in range(2, k):
        np.maximum(m[:n], a[i * step:i * step + n], out=m[:n])
    return m


def _corners(a, shape, ho, wo, stride):
    """Flat `a`, laid out as `shape` (N, C, H, W), at the windows' top-left corners: (N, C, Ho, Wo)."""
    return a.reshape(shape)[:, :, :stride[0] * (ho - 1) + 1:stride[0], :stride[1] * (wo - 1) + 1:stride[1]]


def _pool_fwd(x, *, kernel, stride, padding):
    xp = _pool_padded(x, padding)
    ho, wo = _pool_out_hw(x.shape, kernel, stride, padding)
    out = memory.lease(x.shape[:2] + (ho, wo), x.dtype)  # (the op's output)
    if out.size:
        with memory.scratch() as s:
            rows = _shifted_max(xp.reshape(-1), kernel[1], 1, s)
            np.copyto(out, _corners(_shifted_max(rows, kernel[0], xp.shape[3], s), xp.shape, ho, wo, stride))
    return out


def _first_max(a, k, step, s):
    """(off, m) for flat `a`: m[p] = max_i a[p + i step] over i < k and off[p] the first such i
    (ties: the first, as PyTorch), as bool for k == 2, else int8; over the first a.size - (k - 1)
    step positions, in work arrays of scratch scope `s`."""
    n = a.size - (k - 1) * step
    m = s.take(a.shape, a.dtype)
    np.maximum(a[:n], a[step:step + n], out=m[:n])
    off = np.greater(a[step:step + n], a[:n], out=s.take((n,), np.bool_))  # (strictly: the earlier one wins ties)
    if k > 2:
        off = off.view(np.int8)
        later = s.take((n,), np.bool_)
        for i in range(2, k):
            v = a[i * step:i * step + n]
            np.copyto(off, np.int8(i), where=np.greater(v, m[:n], out=later))
            np.maximum(m[:n], v, out=m[:n])
    return off, m


def _corner_positions(shape, out_hw, stride):
    """Flat positions of the windows' top-left corners in a C-contiguous array of `shape`, in
    output order (read-only; cached for the small sizes a training loop repeats)."""
    if shape[0] * shape[1] * out_hw[0] * out_hw[1] > 1 << 17:
        return _corner_positions_new(shape, out_hw, stride)
    return _corner_positions_cached(shape, out_hw, stride)


def _corner_positions_new(shape, out_hw, stride):
    n, c, h, w = shape
    ho, wo = out_hw
    corner = (np.arange(ho, dtype=np.intp)[:, None] * (stride[0] * w) + np.arange(wo) * stride[1]).reshape(-1)
    pos = np.add.outer(np.arange(0, n * c * h * w, h * w, dtype=np.intp), corner).reshape(-1)
    pos.flags.writeable = False
    return pos


_corner_positions_cached = functools.lru_cache(maxsize=16)(_corner_positions_new)


def _pool_disjoint_vjp(g, x, out, kernel, stride, padding):
    """The VJP when no two windows overlap: each window's first maximum receives g, every other
    slot 0. The maximum is found on flat shifted arrays as in the forward: in each row segment
    the first maximum, then the first row whose segment holds the window's maximum (row-major
    order: PyTorch's). None when some window holds a NaN (_pool_argmax routes those)."""
    if np.isnan(np.maximum.reduce(out, axis=None)):  # (one reduction: NaN propagates)
        return None
    xp = _pool_padded(x, padding)
    wp = xp.shape[3]
    with memory.scratch() as s:
        flat = xp.reshape(-1)
        col, rows = _first_max(flat, kernel[1], 1, s) if kernel[1] > 1 else (None, flat)
        # flat positions: each window's top-left corner, then its maximum's row, then the maximum
        # (work arrays from the scratch scope: a fresh one would cost page faults on every step)
        pos = corner = _corner_positions(xp.shape, out.shape[2:], stride)
        if kernel[0] > 1:
            row = _first_max(rows, kernel[0], wp, s)[0]
            pos = np.multiply(row.take(corner), np.intp(wp), out=s.take((out.size,), np.intp))
            pos += corner
        if col is not None:
            pos = np.add(pos, col.take(pos), out=s.take((out.size,), np.intp) if pos is corner else pos)
        gxp = memory.take(xp.shape, g.dtype)
        gxp.fill(0)
        gxp.reshape(-1)[pos] = g.reshape(-1)
    return gxp[:, :, padding[0]:padding[0] + x.shape[2], padding[1]:padding[1] + x.shape[3]]


def _pool_argmax(x, out, kernel, stride, padding):
    """Kernel offset of each window's maximum `out` (the first one at ties; the last NaN in a
    window holding NaNs: PyTorch's rules)."""
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
    nan = np.isnan(out)
    if nan.any():  # a window holding a NaN has a NaN maximum; PyTorch routes its gradient to its last NaN
        for k, si, sj in pos:
            arg[nan & np.isnan(xp[:, :, si, sj])] = k
    return arg


def _pool_scatter(g, arg, x_shape, kernel, stride, padding):
    """Send each window's gradient to its argmax position, one kernel offset at a time. Windows
    that do not overlap (stride >= kernel) write their slots directly; overlapping ones add."""
    n, c, h, w = x_shape
    gxp = memory.take((n, c, h + 2 * padding[0], w + 2 * padding[1]), g.dtype)
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


_pool_gather_op: Op  # (defined below: each of the two ops' VJP is the other)
_pool_scatter_op = Op(
    "max_pool2d_backward",
    lambda g, *, arg, x_shape, kernel, stride, padding: _pool_scatter(g, arg, x_shape, kernel, stride, padding),
    lambda ctx, gg, out, g, *, arg, x_shape, kernel, stride, padding: (
        _pool_gather_op(gg, arg=arg, x_shape=x_shape, kernel=kernel, stride=stride, padding=padding),),
    lambda ts, out, g, *, arg, x_shape, kernel, stride, padding: _pool_scatter(
        ts[0], arg, x_shape, kernel, stride, padding), saves=(), saves_out=False)  # (linear: reads only arg)
_pool_gather_op = Op(
    "max_pool2d_gather",
    lambda y, *, arg, x_shape, kernel, stride, padding: _pool_gather(y, arg, kernel, stride, padding),
    lambda ctx, gg, out, y, *, arg, x_shape, kernel, stride, padding: (
        _pool_scatter_op(gg, arg=arg, x_shape=x_shape, kernel=kernel, stride=stride, padding=padding),),
    lambda ts, out, y, *, arg, x_shape, kernel, stride, padding: _pool_gather(ts[0], arg, kernel, stride, padding),
    saves=(), saves_out=False)


def _pool_vjp(ctx, g, out, x, *, kernel, stride, padding):
    """VJP: g to each window's argmax (the first at ties), as an op (differentiable)."""
    rx = raw(x)
    arg = _pool_argmax(rx, _pool_fwd(rx, kernel=kernel, stride=stride, padding=padding), kernel, stride, padding)
    return (_pool_scatter_op(g, arg=arg, x_shape=rx.shape, kernel=kernel, stride=stride, padding=padding),)


def _pool_fast(ctx, g, out, x, *, kernel, stride, padding):
    """The VJP on ndarrays. Reads x only: the output, if changed in place since the forward, is
    recomputed (the NaN test below only chooses between two ways to the same gradient)."""
    if stride[0] >= kernel[0] and stride[1] >= kernel[1] and out.size:
        gx = _pool_disjoint_vjp(g, x, out, kernel, stride, padding)
        if gx is not None:
            return (gx,)
    out = _pool_fwd(x, kernel=kernel, stride=stride, padding=padding)
    return (_pool_scatter(g, _pool_argmax(x, out, kernel, stride, padding), x.shape, kernel, stride, padding),)


max_pool2d = Op("max_pool2d", _pool_fwd, _pool_fast,
                lambda ts, out, x, *, kernel, stride, padding: _pool_gather(
                    ts[0], _pool_argmax(x, out, kernel, stride, padding), kernel, stride, padding),
                graph_vjp=_pool_vjp, saves_out=False)


# -- batch norm ------------------------------------------------------------------------------------
def _bn_stats(x, axes, eps):
    """Batch mean, biased variance, 1/sqrt(var + eps) and xhat = (x - mean) / sqrt(var + eps)."""
    mean = np.mean(x, axis=axes, keepdims=True)
    xhat = np.subtract(x, mean, out=_new(x))
    with memory.scratch() as s:
        sq = np.multiply(xhat, xhat, out=s.take(x.shape, xhat.dtype))
        var = np.mean(sq, axis=axes, keepdims=True)
    inv = 1.0 / np.sqrt(var + eps)
    xhat *= inv
    return mean, var, inv, xhat


def _bn_fwd(ctx, x, w, b, *, axes, shape, eps):
    """Training-mode batch norm, one op: keeps the batch statistics and xhat (ctx.extra) for the
    fast VJP and for the running statistics."""
    mean, var, inv, xhat = stats = _bn_stats(x, axes, eps)
    if ctx is not None:
        ctx.extra = stats
    if w is None and b is None:  # (a copy when recorded: the fast VJP reads xhat, the output may change in place)
        return xhat if ctx is None else xhat.copy()
    y = xhat if w is None else np.multiply(xhat, w.reshape(shape), out=_new(x))
    if b is not None:
        y = y + b.reshape(shape) if y is xhat else np.add(y, b.reshape(shape), out=y)
    return y


def _bn_vjp(ctx, g, out, x, w, b, *, axes, shape, eps):
    """dx = inv / n (n gx - sum(gx) - xhat sum(gx xhat)) with gx = g w; dw = sum(g xhat); db = sum(g)."""
    n = raw(x).size // raw(x).shape[1]
    mean = x.mean(axis=axes, keepdims=True)
    xc = x - mean
    inv = ((xc * xc).mean(axis=axes, keepdims=True) + eps) ** -0.5
    xhat = xc * inv
    gx = g if w is None else g * reshape(w, shape)
    dx = (inv / n) * (n * gx - gx.sum(axis=axes, keepdims=True) - xhat * (gx * xhat).sum(axis=axes, keepdims=True))
    dw = None if w is None else reshape((g * xhat).sum(axis=axes), raw(w).shape)
    db = None if b is None else reshape(g.sum(axis=axes), raw(b).shape)
    return dx, dw, db


def _bn_fast(ctx, g, out, x, w, b, *, axes, shape, eps):
    """_bn_vjp on ndarrays, in place, from the forward's statistics."""
    n = x.size // x.shape[1]
    inv, xhat = ctx.extra[2], ctx.extra[3]
    t = np.multiply(g, xhat, out=_new(xhat))
    dw = None if w is None else np.sum(t, axis=axes).reshape(w.shape)
    db = None if b is None else np.sum(g, axis=axes).reshape(b.shape)
    if w is None:
        np.copyto(t, g)
    else:
        np.multiply(g, w.reshape(shape), out=t)  # t = gx
    s1 = np.sum(t, axis=axes, keepdims=True)
    with memory.scratch() as s:
        u = np.multiply(t, xhat, out=s.take(xhat.shape, xhat.dtype))
        np.multiply(xhat, np.sum(u, axis=axes, keepdims=True), out=u)
        t *= n
        t -= s1
        t -= u
    t *= inv / n
    return t, dw, db


def _bn_jvp(ts, out, x, w, b, *, axes, shape, eps):
    """dy = w inv (dx - mean(dx) - xhat mean(xhat dx)) + xhat dw + db."""
    _, _, inv, xhat = _bn_stats(x, axes, eps)
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


def _bn_reads(needs):
    """x for the gradients of x and w (the reference VJP recomputes xhat from it), w for x's; never
    the bias nor the output (y = bn(x); y += skip is fine, as in PyTorch)."""
    return ((0,) if needs[0] or needs[1] else ()) + ((1,) if needs[0] else ())


batch_norm_train = Op("batch_norm", _bn_fwd, _bn_fast, _bn_jvp, graph_vjp=_bn_vjp, keeps=True, saves=_bn_reads,
                      saves_out=False)


# -- avg_pool2d -------------------------------------------------------------------------------------
# Window sums are a convolution of each channel with a kernel of ones; the VJP is that
# convolution's adjoint in x (conv2d_input_grad), so it needs nothing from the forward.
def _ones_kernel(kernel, dtype):
    return np.ones((1, 1) + tuple(kernel), dtype)


def _avg_fwd(x, *, kernel, stride, padding, divisor):
    n, c, h, w = x.shape
    s = _conv_raw(x.reshape(n * c, 1, h, w), _ones_kernel(kernel, x.dtype), stride=stride, padding=padding)
    return np.divide(s.reshape(n, c, s.shape[2], s.shape[3]), divisor, dtype=x.dtype)


def _avg_vjp(ctx, g, out, x, *, kernel, stride, padding, divisor):
    """VJP: g / divisor spread evenly over each window (conv's adjoint with a kernel of ones)."""
    n, c, h, w = raw(x).shape
    d = divisor if isinstance(divisor, float) else divisor.astype(raw(g).dtype)
    gd = reshape(g / d, (n * c, 1) + raw(g).shape[2:])
    gx = _convx_any(gd, _ones_kernel(kernel, raw(g).dtype), (n * c, 1, h, w), stride, padding)
    return (reshape(gx, (n, c, h, w)),)


def _avg_fast(ctx, g, out, x, *, kernel, stride, padding, divisor):
    n, c, h, w = x.shape
    gd = np.divide(g, divisor, dtype=g.dtype).reshape((n * c, 1) + g.shape[2:])
    return (_conv_input_grad(gd, _ones_kernel(kernel, g.dtype), (n * c, 1, h, w), stride, padding).reshape(x.shape),)


avg_pool2d = Op("avg_pool2d", _avg_fwd, _avg_fast,
                lambda ts, out, x, *, kernel, stride, padding, divisor: _avg_fwd(
                    ts[0], kernel=kernel, stride=stride, padding=padding, divisor=divisor),
                graph_vjp=_avg_vjp, saves=(), saves_out=False)


def avg_pool_divisor(x_shape, kernel, stride, padding, count_include_pad=True, divisor_override=None):
    """What each window's sum is divided by: divisor_override, kH * kW (padding counted), or the
    number of input elements in each window, shaped (1, 1, Ho, Wo)."""
    if divisor_override is not None:
        return float(divisor_override)
    if count_include_pad or padding == (0, 0):
        return float(kernel[0] * kernel[1])
    counts = _conv_raw(np.ones((1, 1) + tuple(x_shape[2:])), _ones_kernel(kernel, np.float64), stride=stride,
                       padding=padding)
    return counts.copy()
