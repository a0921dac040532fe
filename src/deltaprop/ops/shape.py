"""Shape ops: reshape, transpose, broadcast_to, squeeze/unsqueeze, indexing, concatenate/stack/split.

All are linear, so each JVP is the forward applied to the tangent.
"""
from __future__ import annotations

import numbers

import numpy as np

from ..autograd import Op, sum_to
from .. import versions as _versions
from ..modes import _state
from ..tensor import Tensor
from .elementwise import _t, raw


def _shape_arg(shape):
    if len(shape) == 1 and not isinstance(shape[0], numbers.Integral):
        shape = shape[0]
    return tuple(int(s) for s in shape)


def _reshape_fwd(x, shape):
    try:
        return x.reshape(shape)
    except ValueError:
        raise ValueError(f"reshape: cannot reshape a tensor of shape {x.shape} ({x.size} elements) "
                         f"into shape {shape}") from None


_reshape = Op("reshape", _reshape_fwd, lambda ctx, g, out, x, shape: (g.reshape(x.shape),),
              lambda ts, out, x, shape: ts[0].reshape(shape), saves=(), saves_out=False)


def reshape(x, *shape):
    """Same data, new shape (reshape(2, 3) or reshape((2, 3)); -1 infers one axis). VJP: g.reshape(x.shape)"""
    return _reshape(x, shape=_shape_arg(shape))


def flatten(x, start_dim: int = 0, end_dim: int = -1):
    """Merge axes start_dim..end_dim into one (all of them by default, as NumPy's flatten)."""
    s = raw(x).shape
    if not s:
        return reshape(x, (1,))
    a, b = start_dim % len(s), end_dim % len(s)
    return reshape(x, s[:a] + (-1,) + s[b + 1:])


_transpose = Op("transpose", lambda x, axes: np.transpose(x, axes),
                lambda ctx, g, out, x, axes: (g.transpose(np.argsort(axes) if axes is not None else None),),
                lambda ts, out, x, axes: np.transpose(ts[0], axes), saves=(), saves_out=False)


def transpose(x, *axes):
    """Permute axes (reversed by default), as NumPy. VJP: the inverse permutation of g."""
    if len(axes) == 1 and axes[0] is None:
        axes = ()
    axes = _shape_arg(axes) if axes else None
    if axes is not None:
        nd = raw(x).ndim
        if sorted(a % nd for a in axes) != list(range(nd)):
            raise ValueError(f"transpose: axes {axes} are not a permutation of the {nd} axes of shape {raw(x).shape}")
        axes = tuple(a % nd for a in axes)
    return _transpose(x, axes=axes)


def swapaxes(x, axis1: int, axis2: int):
    """Swap two axes."""
    perm = list(range(raw(x).ndim))
    perm[axis1], perm[axis2] = perm[axis2], perm[axis1]
    return _transpose(x, axes=tuple(perm))


def _bcast_fwd(x, shape):
    try:
        return np.broadcast_to(x, shape)
    except ValueError:
        raise ValueError(f"broadcast_to: shape {x.shape} cannot be broadcast to {shape}") from None


_broadcast = Op("broadcast_to", _bcast_fwd, lambda ctx, g, out, x, shape: (sum_to(g, x.shape),),
                lambda ts, out, x, shape: np.broadcast_to(ts[0], shape), saves=(), saves_out=False)


def broadcast_to(x, shape):
    """A read-only broadcast view. VJP: g summed back to x's shape."""
    return _broadcast(x, shape=_shape_arg((shape,)))


def squeeze(x, axis=None, *, dim=None):
    """Drop size-1 axes (all, or the given ones)."""
    axis = axis if axis is not None else dim
    s = raw(x).shape
    axes = range(len(s)) if axis is None else [a % len(s) for a in ((axis,) if isinstance(axis, int) else axis)]
    for a in axes:
        if axis is not None and s[a] != 1:
            raise ValueError(f"squeeze: axis {a} of shape {s} has size {s[a]}, not 1")
    return reshape(x, tuple(n for i, n in enumerate(s) if not (i in axes and n == 1)))


def expand_dims(x, axis):
    """Insert size-1 axes at the given position(s) of the result (NumPy's name and rules)."""
    axes = (axis,) if isinstance(axis, numbers.Integral) else tuple(axis)
    s = raw(x).shape
    nd = len(s) + len(axes)
    new = sorted(a % nd for a in axes)
    if len(set(new)) != len(new) or any(not -nd <= a < nd for a in axes):
        raise ValueError(f"expand_dims: axes {axis} are repeated or out of range for a result of {nd} axes")
    it = iter(s)
    return reshape(x, tuple(1 if i in new else next(it) for i in range(nd)))


def unsqueeze(x, dim: int):
    """Insert a size-1 axis at dim (PyTorch's name)."""
    return expand_dims(x, dim)


# -- indexing ----------------------------------------------------------------------------------
def raw_index(index):
    """Index with Tensors replaced by their arrays and lists by arrays (NumPy semantics)."""
    if isinstance(index, tuple):
        return tuple(raw_index(i) for i in index)
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, list):
        return np.asarray([raw(i) for i in index])
    return index


def _is_basic(index):
    parts = index if isinstance(index, tuple) else (index,)
    return all(p is None or p is Ellipsis or isinstance(p, (slice, numbers.Integral)) or
               (isinstance(p, np.ndarray) and p.dtype == bool) for p in parts)


def _scatter(g, index, shape):
    out = np.zeros(shape, g.dtype)
    if _is_basic(index):  # no repeated positions: plain assignment
        out[index] = g
    else:  # integer arrays may repeat an index: add every contribution
        np.add.at(out, index, g)
    return out


_unindex = Op("scatter_add", _scatter, lambda ctx, g, out, g0, index, shape: (g[index],),
              lambda ts, out, g0, index, shape: _scatter(ts[0], index, shape), saves=(), saves_out=False)


def _getitem_vjp(ctx, g, out, x, index):
    """VJP: g scattered (added, for repeated integer indices) into zeros of x's shape."""
    shape = raw(x).shape
    return (_unindex(g, index=index, shape=shape) if isinstance(g, Tensor) else _scatter(g, index, shape),)


# -- setitem: buf[index] = v as an op (the engine's in-place write, recorded) -------------------
def _setitem_fwd(a, v, index):
    a[index] = v  # in place: `a` is the tensor's own memory (Tensor.__setitem__ bumps its version)
    return a


def _setitem_vjp(ctx, g, out, a, v, index):
    """VJP: g with the overwritten part zeroed for the old buffer; g[index] for the value."""
    ga = g * 1  # (a copy of its own, array or Tensor: -0.0 and NaN kept)
    ga[index] = 0
    return ga, g[index] if ctx.needs[1] else None


def _setitem_jvp(ts, out, a, v, index):
    r = np.array(_t(ts, 0, a), copy=True)
    r[index] = 0 if ts[1] is None else ts[1]
    return r


setitem_op = Op("setitem", _setitem_fwd, _setitem_vjp, _setitem_jvp, saves=(), saves_out=False)


def _indexed(out: Tensor, index) -> Tensor:
    """Version-check the index tensors an indexing op read (an integer or mask Tensor changed in place
    before backward raises, as any other saved input); plain index arrays are copied instead."""
    parts = index if isinstance(index, tuple) else (index,)
    ts = [p for p in parts if isinstance(p, Tensor)]
    if ts:
        _versions.watch(out, ts)
    return out


def _own_index(index):
    """raw_index, with plain index arrays copied (a Tensor's is version-checked instead): the
    recorded node must not see later edits of them."""
    if isinstance(index, tuple):
        return tuple(_own_index(p) for p in index)
    if isinstance(index, np.ndarray) and _state.recorder is None:  # (a dp.compile recording tracks the array)
        return index.copy()
    return raw_index(index)


def setitem(buf, value, index):
    """The recorded form of buf[index] = value (Tensor.__setitem__ calls it while recording)."""
    return _indexed(setitem_op(buf, value, index=_own_index(index)), index)


def _getitem_fwd(x, index):
    try:
        return x[index]
    except IndexError as e:
        raise IndexError(f"getitem: {e} (tensor shape {x.shape})") from None


_getitem = Op("getitem", _getitem_fwd, _getitem_vjp, lambda ts, out, x, index: ts[0][index], saves=(),
              saves_out=False)


def getitem(x, index):
    """x[index]: basic, integer-array and boolean-mask indexing. VJP: scatter-add of g."""
    if not (isinstance(x, Tensor) and x.requires_grad):
        return _getitem(x, index=raw_index(index))
    return _indexed(_getitem(x, index=_own_index(index)), index)


# -- joining and splitting ---------------------------------------------------------------------
def _cat_fwd(*xs, axis):
    try:
        return np.concatenate(xs, axis=axis)
    except ValueError:
        shapes = " and ".join(str(x.shape) for x in xs)
        raise ValueError(f"concatenate: shapes {shapes} must match on every axis except axis {axis}") from None


def _cat_vjp(ctx, g, out, *xs, axis):
    ends = np.cumsum([raw(x).shape[axis] for x in xs])
    lead = (slice(None),) * (axis % raw(g).ndim)
    return tuple(g[lead + (slice(e - raw(x).shape[axis], e),)] for x, e in zip(xs, ends))


_concatenate = Op("concatenate", _cat_fwd, _cat_vjp,
                  lambda ts, out, *xs, axis: np.concatenate(
                      [np.zeros_like(x) if t is None else t for t, x in zip(ts, xs)], axis=axis),
                  saves=(), saves_out=False)


def concatenate(tensors, axis: int = 0, *, dim=None):
    """Join along an existing axis. VJP: g sliced back into the pieces."""
    return _concatenate(*tensors, axis=axis if dim is None else dim)


def _stack_fwd(*xs, axis):
    try:
        return np.stack(xs, axis=axis)
    except ValueError:
        raise ValueError(f"stack: all shapes must be equal, got {' and '.join(str(x.shape) for x in xs)}") from None


_stack = Op("stack", _stack_fwd,
            lambda ctx, g, out, *xs, axis: tuple(g[(slice(None),) * (axis % raw(g).ndim) + (i,)] for i in range(len(xs))),
            lambda ts, out, *xs, axis: np.stack([np.zeros_like(x) if t is None else t for t, x in zip(ts, xs)],
                                                axis=axis), saves=(), saves_out=False)


def stack(tensors, axis: int = 0, *, dim=None):
    """Join along a new axis. VJP: g indexed at each position."""
    return _stack(*tensors, axis=axis if dim is None else dim)


def split(x, indices_or_sections, axis: int = 0, *, dim=None):
    """Split into pieces along axis as NumPy does (equal sections or split points)."""
    axis = axis if dim is None else dim
    n = raw(x).shape[axis]
    if isinstance(indices_or_sections, numbers.Integral):
        k = int(indices_or_sections)
        if k <= 0 or n % k:
            raise ValueError(f"split: axis {axis} of size {n} cannot be split into {k} equal sections")
        bounds = list(range(0, n + 1, n // k))
    else:
        bounds = [0] + [int(i) for i in indices_or_sections] + [n]
    lead = (slice(None),) * (axis % raw(x).ndim)
    return [getitem(x, lead + (slice(a, b),)) for a, b in zip(bounds[:-1], bounds[1:])]


def cat(tensors, dim: int = 0, *, axis=None):
    """torch.cat: join along an existing axis (dim=; the same op as concatenate)."""
    return concatenate(tensors, dim if axis is None else axis)


def view(x, *shape):
    """PyTorch's Tensor.view: the same memory in a new shape, sharing x's version counter (an
    in-place change to either shows in both). Raises where the shape needs a copy: use reshape."""
    if len(shape) == 1 and isinstance(shape[0], (type, np.dtype, str)):
        raise TypeError(f"view: reinterpreting memory as dtype {shape[0]} is not supported; use "
                        "x.to(dtype) / x.astype(dtype) for a converted copy")
    out = reshape(x, *shape)
    if out.data.size and not np.shares_memory(out.data, raw(x)):
        raise RuntimeError(f"view: shape {out.shape} is not compatible with the memory layout of the input "
                           f"(shape {raw(x).shape}, strides {raw(x).strides}); use .reshape(...) instead")
    return out
