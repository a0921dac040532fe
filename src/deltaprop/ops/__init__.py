"""The differentiable primitives, and the NumPy protocols that route NumPy calls to them."""
from __future__ import annotations

import builtins
import inspect
import sys

import numpy as np

from .. import anomaly, autograd, hooks, versions
from ..tensor import Tensor, bind as _bind_tensor  # (deltaprop.tensor is dp.tensor, the function)
from .elementwise import (abs, add, astype, clip, cos, divide, equal, exp, float32, float64, greater, greater_equal,
                          leaky_relu, less, less_equal, log, log1p, maximum, minimum, multiply, negative, not_equal,
                          power, raw, relu, sigmoid, sin, softplus, sqrt, subtract, tanh, to, where)
from .nn import (binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy, log_softmax, mse_loss,
                 softmax)
from .reduce import all, any, argmax, argmin, logsumexp, matmul, max, mean, min, prod, std, sum, var
from .shape import (broadcast_to, cat, concatenate, expand_dims, flatten, getitem, raw_index, reshape, setitem, split,
                    squeeze, stack, swapaxes, transpose, unsqueeze, view)
from .elementwise import float32 as float, float64 as double  # noqa: A004 (Tensor.float(), .double())
from . import activations, elementwise, layers, nn, reduce, shape  # noqa: F401  (activations, layers: register the layer primitives)

def square(x):
    """x * x. VJP: 2 x g (through multiply)."""
    return multiply(x, x)


def dot(a, b):
    """np.dot as matmul (NumPy's rules for 1-D and 2-D operands). VJP: as matmul."""
    return matmul(a, b)


def _export_names(*modules) -> None:
    """Factory-made op functions (unary, _binop, _reduction, ...) take the name they are defined
    under as their __name__ and __qualname__, so tracebacks, help() and the API docs find them."""
    for m in modules:
        for name, f in vars(m).items():
            if not name.startswith("_") and inspect.isfunction(f) and "<locals>" in f.__qualname__:
                f.__name__ = f.__qualname__ = name


_export_names(elementwise, reduce, shape, nn, activations, layers)


_UFUNCS = {np.add: add, np.subtract: subtract, np.multiply: multiply, np.divide: divide, np.power: power,
           np.negative: negative, np.positive: lambda x: x, np.exp: exp, np.log: log, np.log1p: log1p,
           np.sqrt: sqrt, np.absolute: abs, np.sin: sin, np.cos: cos, np.tanh: tanh, np.maximum: maximum,
           np.minimum: minimum, np.matmul: matmul, np.square: square,
           np.less: less, np.less_equal: less_equal, np.greater: greater, np.greater_equal: greater_equal,
           np.equal: equal, np.not_equal: not_equal}
# Results that carry no gradient by nature (tests, signs, booleans): computed on the arrays.
_NONDIFF_UFUNCS = {np.isnan, np.isinf, np.isfinite, np.sign, np.logical_not, np.logical_and, np.logical_or}
_SUGGEST = {"arctan": "an expression of dp ops", "tan": "dp.sin(x) / dp.cos(x)", "expm1": "dp.exp(x) - 1",
            "log2": "dp.log(x) / np.log(2)", "log10": "dp.log(x) / np.log(10)", "reciprocal": "1 / x",
            "floor_divide": "x.detach()", "remainder": "x.detach()"}


def _ufunc_into(ufunc, inputs, out):
    """np.<ufunc>(..., out=t) on a Tensor t: the op, then an in-place write of its result into t (as
    t[...] = result: versioned, recorded for backward and forward mode, refused on a leaf that
    requires grad while recording); NumPy's same_kind casting rule."""
    if not isinstance(out, Tensor):
        raise TypeError(f"np.{ufunc.__name__}(..., out=) with deltaprop Tensor inputs needs a Tensor out, got "
                        f"{type(out).__name__}; assign the result instead (y = np.{ufunc.__name__}(...))")
    # out read as an input: the op reads a copy standing for its current value and history (its
    # memory is about to change), as `x op= y` does
    res = _UFUNCS[ufunc](*[out._alias_for_graph(True) if i is out else i for i in inputs])
    if not np.can_cast(res.dtype, out.dtype, casting="same_kind"):
        raise TypeError(f"np.{ufunc.__name__}: cannot cast the result from {res.dtype} to out's dtype "
                        f"{out.dtype} with casting='same_kind'")
    if np.broadcast_shapes(res.shape, out.shape) != out.shape:
        raise ValueError(f"np.{ufunc.__name__}: the result of shape {res.shape} does not fit out of shape "
                         f"{out.shape}")
    out[...] = res
    return out


def array_ufunc(ufunc, method, inputs, kwargs):
    """NumPy ufunc on a Tensor: dispatch to the deltaprop op, or raise TypeError naming what to use."""
    if method == "__call__" and not kwargs:
        if ufunc in _UFUNCS:
            return _UFUNCS[ufunc](*inputs)
    if method == "__call__" and ufunc in _UFUNCS and set(kwargs) == {"out"} and len(kwargs["out"]) == 1:
        return _ufunc_into(ufunc, inputs, kwargs["out"][0])
        if ufunc in _NONDIFF_UFUNCS:
            return Tensor(ufunc(*[raw(i) for i in inputs]))
    hint = _SUGGEST.get(ufunc.__name__, f"dp.{ufunc.__name__}" if ufunc.__name__ in globals() else
                        "a deltaprop op, or x.detach().numpy() for a plain array")
    what = f"np.{ufunc.__name__}" + ("" if method == "__call__" else f".{method}")
    extra = " with out=/where=/dtype= arguments" if kwargs else ""
    raise TypeError(f"{what}{extra} is not supported on deltaprop Tensors (it would drop the gradient); "
                    f"use {hint}")


_FUNCTIONS = {np.sum: sum, np.mean: mean, np.max: max, np.min: min, np.amax: max, np.amin: min, np.var: var,
              np.std: std, np.prod: prod, np.reshape: reshape, np.transpose: transpose, np.swapaxes: swapaxes,
              np.broadcast_to: broadcast_to, np.squeeze: squeeze, np.expand_dims: expand_dims,
              np.concatenate: concatenate, np.stack: stack, np.split: split, np.where: where, np.clip: clip,
              np.dot: dot, np.argmax: argmax, np.argmin: argmin, np.ravel: flatten, np.all: all, np.any: any}
# Functions whose result is not a differentiable value: run them on the arrays.
_NONDIFF = {np.allclose, np.isclose, np.array_equal, np.array_equiv, np.shape, np.ndim, np.size, np.result_type,
            np.can_cast, np.nonzero, np.count_nonzero, np.argsort, np.array_repr, np.array_str,
            np.iscomplexobj, np.isrealobj, np.zeros_like, np.ones_like, np.empty_like, np.full_like, np.copyto}


def _copyto(dst, src, casting="same_kind", where=True):
    """np.copyto into a Tensor: an in-place write like dst[...] = src (bumps its version; recorded
    when src requires grad)."""
    if where is not True:
        raise TypeError("np.copyto(..., where=) into a deltaprop Tensor is not supported; use "
                        "dst[...] = dp.where(mask, src, dst)")
    s = raw(src)
    if not np.can_cast(np.result_type(s), dst.dtype, casting=casting):
        raise TypeError(f"np.copyto: cannot cast from {np.result_type(s)} to {dst.dtype} with casting={casting!r}")
    dst[...] = src


def _strip(obj):
    if isinstance(obj, Tensor):
        return obj.data
    if isinstance(obj, (list, tuple)):
        return type(obj)(_strip(o) for o in obj)
    return obj


def _needs_grad(obj):
    if isinstance(obj, Tensor):
        return obj.requires_grad
    if isinstance(obj, (list, tuple)):
        return builtins.any(_needs_grad(o) for o in obj)
    return False


def array_function(func, args, kwargs):
    """NumPy function on Tensors: the deltaprop op where one exists; plain arrays where no gradient
    is involved; otherwise a TypeError (never a silent ndarray that dropped the gradient)."""
    if func is np.copyto and args and isinstance(args[0], Tensor):
        return _copyto(*args, **kwargs)
    if func in _FUNCTIONS:
        if "out" in kwargs:
            raise TypeError(f"np.{func.__name__}(..., out=) is not supported on deltaprop Tensors; "
                            f"assign the result instead (y = np.{func.__name__}(x))")
        return _FUNCTIONS[func](*args, **kwargs)
    if func in _NONDIFF or not _needs_grad(args) and not _needs_grad(list(kwargs.values())):
        return func(*_strip(args), **{k: _strip(v) for k, v in kwargs.items()})
    raise TypeError(f"np.{func.__name__} is not supported on deltaprop Tensors that require grad (it would drop "
                    f"the gradient); use deltaprop ops, or call it on x.detach().numpy()")


# The engine's lower modules call up into the ones built on them (Tensor's operators and methods,
# tensor_methods.py, into these ops; tensor.py into autograd, hooks and versions; anomaly.py into
# autograd) through names bound here, now that every engine module has loaded: no engine module
# imports one that imports it back.
_bind_tensor(autograd=autograd, hooks=hooks, ops=sys.modules[__name__], versions=versions)
anomaly.bind(autograd)
