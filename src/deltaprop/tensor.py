"""Tensor: an ndarray, its gradient, and the graph node that produced it.

Operators and methods delegate to the differentiable ops in `deltaprop.ops`; NumPy's ufuncs
and array functions applied to a Tensor dispatch to those ops too (or raise TypeError), so a
NumPy call can never silently drop the gradient.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ._config import get_default_dtype


class Tensor:
    """An n-dimensional array that can record the operations applied to it and backpropagate."""

    __slots__ = ("data", "grad", "requires_grad", "_node", "_tangent", "_hooks", "__weakref__")
    __array_priority__ = 1000  # NumPy defers binary operators to us

    def __init__(self, data: Any, requires_grad: bool = False):
        self.data = data if type(data) is np.ndarray else np.asarray(data)
        self.grad: Tensor | None = None
        self._node = self._tangent = self._hooks = None
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    shape = property(lambda self: self.data.shape)
    dtype = property(lambda self: self.data.dtype)
    ndim = property(lambda self: self.data.ndim)
    size = property(lambda self: self.data.size)
    T = property(lambda self: _ops.transpose(self))
    is_leaf = property(lambda self: self._node is None)

    def numpy(self) -> np.ndarray:
        """A copy of the values as an ndarray (later updates never change it)."""
        return self.data.copy()

    def item(self) -> float | int | bool: return self.data.item()  # noqa: E704
    def tolist(self) -> list: return self.data.tolist()  # noqa: E704

    def __array__(self, dtype=None, copy=None):
        if dtype is not None and np.dtype(dtype) != self.data.dtype:
            return self.data.astype(dtype)
        return self.data.copy() if copy else self.data

    # conversions behave as on the underlying ndarray
    def __len__(self): return len(self.data)  # noqa: E704
    def __iter__(self): return (self[i] for i in range(len(self)))  # noqa: E704
    def __bool__(self): return bool(self.data)  # noqa: E704
    def __float__(self): return float(self.data)  # noqa: E704
    def __int__(self): return int(self.data)  # noqa: E704
    def __index__(self): return self.data.__index__()  # noqa: E704

    __hash__ = object.__hash__

    def __repr__(self):
        body = np.array2string(self.data, separator=", ", prefix="tensor(")
        extra = "" if self.dtype in (get_default_dtype(), np.int64, np.bool_) else f", dtype={self.dtype}"
        node = f", grad_fn=<{self._node.op.name}>" if self._node is not None else ""
        return f"tensor({body}{extra}{', requires_grad=True' if self.requires_grad and not node else ''}{node})"

    # -- autograd -------------------------------------------------------------------------
    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if requires_grad and self.data.dtype.kind != "f":
            raise TypeError(f"requires_grad=True needs a floating-point tensor, got dtype {self.data.dtype}; "
                            "create it from floats or pass dtype=np.float32 / np.float64")
        if not requires_grad and self._node is not None:
            raise RuntimeError("requires_grad_(False) works on leaf tensors only; use .detach() instead")
        self.requires_grad = requires_grad
        return self

    def backward(self, gradient=None, retain_graph: bool = False, create_graph: bool = False) -> None:
        """Backpropagate from this tensor, accumulating d(self)/d(leaf) into each leaf's .grad."""
        _autograd.backward(self, gradient, retain_graph, create_graph)

    def detach(self) -> Tensor:
        """The same values, cut from the graph (shares memory)."""
        return Tensor(self.data)

    def zero_grad(self) -> None:
        self.grad = None

    def retain_grad(self) -> None:
        """Keep .grad on this non-leaf tensor after backward."""
        if self._node is not None:
            self._node.retained = _weakref.ref(self)

    def register_hook(self, fn):
        """fn(grad) -> Tensor | ndarray | None runs once per backward with this tensor's summed grad."""
        if not self.requires_grad:
            raise RuntimeError("register_hook: cannot register a hook on a tensor that does not require grad")
        owner = self._node if self._node is not None else self  # non-leaf hooks live on the node
        if owner is self:
            self._hooks = hooks = self._hooks or {}
        else:
            owner.hooks = hooks = owner.hooks or {}
        return _autograd.RemovableHandle(hooks, fn)

    def _inplace(self, other, op, ufunc) -> Tensor:
        if _autograd._grad_enabled and self.requires_grad:
            raise RuntimeError(f"in-place {ufunc.__name__} on a tensor that requires grad would corrupt the "
                               "graph; do the update under `with dp.no_grad():` or write x = x op y")
        if _autograd._grad_enabled and isinstance(other, Tensor) and other.requires_grad:
            res = op(self.detach(), other)  # self joins the graph, as in PyTorch (its old value is a constant)
            self.data, self._node, self.requires_grad = res.data, res._node, True
            return self
        if not self.data.flags.writeable or _sys.getrefcount(self.data) > 2:  # (2: self.data and the call)
            self.data = self.data.copy()  # copy-on-write: a recorded graph (or a view) keeps what it saw
        ufunc(self.data, other.data if isinstance(other, Tensor) else other, out=self.data)
        return self

    def __setitem__(self, index, value):
        if _autograd._grad_enabled and self.requires_grad:
            raise RuntimeError("item assignment on a tensor that requires grad; do it under `with dp.no_grad():`")
        if _sys.getrefcount(self.data) > 2:  # copy-on-write, as in _inplace
            self.data = self.data.copy()
        self.data[_ops.raw_index(index)] = value.data if isinstance(value, Tensor) else value

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return _ops.array_ufunc(ufunc, method, inputs, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        return _ops.array_function(func, args, kwargs)


from . import autograd as _autograd, ops as _ops  # noqa: E402  (ops need Tensor defined)
import sys as _sys  # noqa: E402
import weakref as _weakref  # noqa: E402

# The operator table: each dunder is one op; the reflected form swaps operands.
for _n, _f, _uf in [("add", _ops.add, np.add), ("sub", _ops.subtract, np.subtract), ("mul", _ops.multiply, np.multiply),
                    ("truediv", _ops.divide, np.divide), ("pow", _ops.power, np.power),
                    ("matmul", _ops.matmul, np.matmul)]:
    setattr(Tensor, f"__{_n}__", _f)
    setattr(Tensor, f"__r{_n}__", lambda a, b, f=_f: f(b, a))
    setattr(Tensor, f"__i{_n}__", lambda a, b, f=_f, uf=_uf: a._inplace(b, f, uf))
for _n, _f in [("lt", _ops.less), ("le", _ops.less_equal), ("gt", _ops.greater), ("ge", _ops.greater_equal),
               ("eq", _ops.equal), ("ne", _ops.not_equal), ("neg", _ops.negative), ("abs", _ops.abs),
               ("getitem", _ops.getitem)]:
    setattr(Tensor, f"__{_n}__", _f)
Tensor.__pos__ = lambda self: self
Tensor.__hash__ = object.__hash__
for _n in _ops.METHODS:
    setattr(Tensor, _n, getattr(_ops, _n))
