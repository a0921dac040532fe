"""Tensor: an ndarray, its gradient, and the graph node that produced it.

Operators and methods delegate to the differentiable ops in `deltaprop.ops`; NumPy's ufuncs
and array functions applied to a Tensor dispatch to those ops too (or raise TypeError), so a
NumPy call can never silently drop the gradient.
"""
from __future__ import annotations

import weakref as _weakref
from typing import Any, cast

import numpy as np

from . import tensor_methods as _methods
from ._config import get_default_dtype


class Tensor(_methods.TensorMethods):
    """An n-dimensional array that can record the operations applied to it and backpropagate."""

    __slots__ = ("data", "grad", "requires_grad", "_node", "_tangent", "_hooks", "_post_hooks", "_version", "_view",
                 "__weakref__")
    __array_priority__ = 1000  # NumPy defers binary operators to us

    def __init__(self, data: Any, requires_grad: bool = False):
        self.data = data if type(data) is np.ndarray else np.asarray(data)
        self.grad: Tensor | None = None
        self._node = self._tangent = self._hooks = self._post_hooks = self._version = None
        self.requires_grad = self._view = False  # _view: shares another tensor's memory (an op's view)
        if requires_grad:
            self.requires_grad_(True)

    shape = property(lambda self: self.data.shape, doc="The shape, a tuple of ints (as ndarray.shape).")
    dtype = property(lambda self: self.data.dtype, doc="The NumPy dtype of the values.")
    ndim = property(lambda self: self.data.ndim, doc="The number of axes.")
    size = property(lambda self: self.data.size, doc="The number of elements.")
    is_leaf = property(lambda self: self._node is None, doc="True when no recorded op made this tensor.")

    def numpy(self) -> np.ndarray:
        """A copy of the values as an ndarray (later updates never change it)."""
        return _read(self).copy()

    def item(self) -> float | int | bool:
        """The value of a one-element tensor as a Python number."""
        return _read(self).item()

    def tolist(self) -> list:
        """The values as (nested) Python lists."""
        return _read(self).tolist()

    def __array__(self, dtype=None, copy=None):
        d = _read(self)
        if dtype is not None and np.dtype(dtype) != d.dtype:
            return d.astype(dtype)
        return d.copy() if copy else d

    # conversions behave as on the underlying ndarray
    def __len__(self): return len(self.data)  # noqa: E704
    def __iter__(self): return (self[i] for i in range(len(self)))  # noqa: E704
    def __bool__(self): return bool(_read(self))  # noqa: E704
    def __float__(self): return float(_read(self))  # noqa: E704
    def __int__(self): return int(_read(self))  # noqa: E704
    def __index__(self): return _read(self).__index__()  # noqa: E704

    __hash__ = object.__hash__

    def __repr__(self):
        body = np.array2string(self.data, separator=", ", prefix="tensor(")
        extra = "" if self.dtype in (get_default_dtype(), np.int64, np.bool_) else f", dtype={self.dtype}"
        node = f", grad_fn=<{self._node.op.name}>" if self._node is not None else ""
        return f"tensor({body}{extra}{', requires_grad=True' if self.requires_grad and not node else ''}{node})"

    # -- autograd -------------------------------------------------------------------------
    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        """Set requires_grad in place (floating-point leaves only) and return self."""
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
        """The same values, cut from the graph (shares memory and the version counter)."""
        t = Tensor(self.data)
        t._version, t._view = _versions.counter(self), True
        return t

    @property
    def _version_value(self) -> int:
        """How many in-place changes this tensor's storage has seen (PyTorch's x._version)."""
        return 0 if self._version is None else self._version[0]

    def _bump(self) -> None:
        """Record an in-place change of the storage (seen by every view sharing the counter)."""
        if (r := _autograd._state.recorder) is not None:  # (dp.compile must see every in-place change)
            r.bump(self)
        c = self._version
        if c is None:
            self._version = [1]
        else:
            c[0] += 1

    def zero_grad(self) -> None:
        """Set .grad to None (the next backward starts accumulating afresh)."""
        self.grad = None

    def retain_grad(self) -> None:
        """Keep .grad on this non-leaf tensor after backward."""
        if self._node is not None:
            self._node.retained = _weakref.ref(self)

    def register_hook(self, fn):
        """fn(grad) -> Tensor | ndarray | None runs once per backward with this tensor's summed grad."""
        return _hooks.register(self, fn)

    def register_post_accumulate_grad_hook(self, fn):
        """fn(tensor) runs as soon as this leaf's .grad has received its gradient of the pass (hooks.py)."""
        return _hooks.register_post_accumulate(self, fn)

    def _check_inplace(self, what: str, recording: bool, other=None) -> bool:
        """In-place rules (PyTorch's): never on a leaf that requires grad while grad mode is on; a
        change that must be recorded in the graph, or carries a forward-mode tangent, cannot go
        through a view (its base would not see it). Returns whether a tangent is carried."""
        tangent = self._tangent is not None or isinstance(other, Tensor) and other._tangent is not None
        if recording and self.requires_grad and self._node is None:
            raise RuntimeError(f"{what}: a leaf tensor that requires grad (shape {self.shape}) cannot be "
                               "changed in place while gradients are recorded; do it under `with dp.no_grad():` "
                               "or write x = x + c")
        if (recording or tangent) and self._view:
            raise RuntimeError(f"{what}: this tensor (shape {self.shape}) is a view of another tensor's memory, "
                               f"and an in-place change to it cannot be recorded for {'backward' if recording else 'forward mode'}; "
                               "write it out of place (y = x + c) or change the base tensor")
        return tangent

    def _alias_for_graph(self, copy: bool) -> Tensor:
        """A Tensor standing for self's current value and history, input to the op that updates
        self in place (a copy when that op's VJP reads it: self's memory is about to change)."""
        old = Tensor(self.data.copy() if copy else self.data)
        old._node, old.requires_grad, old._tangent = self._node, self.requires_grad, self._tangent
        if not copy:
            old._version = _versions.counter(self)
        return old

    def _inplace(self, other, op, ufunc, reads_self: bool) -> Tensor:
        """x op= y: writes into x's memory (views see it) and bumps its version; recorded in the
        graph when x or y requires grad."""
        recording = _autograd._state.grad and (self.requires_grad or isinstance(other, Tensor) and other.requires_grad)
        if self._check_inplace(f"in-place {ufunc.__name__}", recording, other) or recording:  # through the op: its graph node and its forward-mode tangent
            res = op(self._alias_for_graph(reads_self and recording), other)
            if res.shape != self.shape:
                raise ValueError(f"in-place {ufunc.__name__}: the result has shape {res.shape}, which does not "
                                 f"fit the tensor's shape {self.shape}")
            np.copyto(self.data, res.data, casting="same_kind")
            self._take_history(res, recording)
        else:
            ufunc(self.data, other.data if isinstance(other, Tensor) else other, out=self.data)
        self._bump()
        return self

    def _take_history(self, res: Tensor, recording: bool) -> None:
        """After an in-place change computed as res: self is now res's version of the tensor (its new
        graph node, as PyTorch rebases grad_fn; earlier consumers keep the node they read) and tangent."""
        if recording:  # (retain_grad follows the tensor to its new node, as in PyTorch)
            old, self._node, self.requires_grad = self._node, res._node, True
            if old is not None and old.retained is not None and old.retained() is self:
                res._node.retained, old.retained = old.retained, None
        t = res._tangent
        self._tangent = None if t is None else np.asarray(t, self.dtype)

    def __setitem__(self, index, value):
        """x[index] = value, in place (views see it). Recorded in the graph when x or value
        requires grad: value gets its gradient, the overwritten part of x none (as PyTorch)."""
        recording = _autograd._state.grad and (self.requires_grad or isinstance(value, Tensor) and value.requires_grad)
        tangent = self._check_inplace("item assignment", recording, value)
        idx = _ops.raw_index(index)
        if recording or tangent:
            res = _ops.setitem(self._alias_for_graph(False), value, index)
            self._take_history(res, recording)
        else:
            self.data[idx] = value.data if isinstance(value, Tensor) else value
        self._bump()

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return _ops.array_ufunc(ufunc, method, inputs, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        return _ops.array_function(func, args, kwargs)


# The engine modules built on Tensor, bound by deltaprop.ops once loaded (bind), never imported here.
_autograd = _hooks = _ops = _versions = cast(Any, None)


def bind(*, autograd: Any, hooks: Any, ops: Any, versions: Any) -> None:
    """Called by deltaprop.ops when the engine has loaded (see above); binds the operators too."""
    global _autograd, _hooks, _ops, _versions
    _autograd, _hooks, _ops, _versions = autograd, hooks, ops, versions
    _methods.bind(ops)


def _read(t: Tensor) -> np.ndarray:  # t's array, for a value read into Python (a dp.compile recording is told)
    r = _autograd._state.recorder
    return t.data if r is None else r.read(t)
