"""Tensor's operators and op methods, declared as typed methods (type checkers see `x * 2`,
`x @ w`, `x.sum(axis=0)` as Tensors).

Each method calls the op of the same name in `deltaprop.ops`. The ops are built on Tensor (they
import tensor.py), so this module cannot import them: `deltaprop.ops` binds itself here once it
has loaded (`bind`, through `tensor.bind`), and the methods look the op up at call time. A method behaves exactly as the op
function: `x.sum(axis=0)` is `dp.sum(x, axis=0)`, `x + y` is `dp.add(x, y)`, `y + x` with a
NumPy array or number on the left is `dp.add(y, x)`; `x += y` changes x in place
(Tensor._inplace: versions, views, the graph).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Union

import numpy as np

if TYPE_CHECKING:  # (only for the annotations: tensor.py imports this module)
    from typing import Self

    from .tensor import Tensor

# What an operator takes besides a Tensor: anything NumPy turns into an array.
Operand = Union["Tensor", np.ndarray, np.generic, bool, int, float, "list[Any]", "tuple[Any, ...]"]
_Axis = Union[int, "tuple[int, ...]", "list[int]", None]

_ops: Any = None  # deltaprop.ops, once it has loaded (bind)


def bind(ops: Any) -> None:
    """Called by deltaprop.ops when it has loaded: the module whose functions the methods call."""
    global _ops
    _ops = ops


class TensorMethods:
    """The operators and op methods of Tensor (its base class; see the module docstring)."""

    __slots__ = ()

    if TYPE_CHECKING:  # Tensor's private fields (its __slots__) and the method the in-place operators call
        _node: Any
        _tangent: Any
        _hooks: Any
        _post_hooks: Any
        _version: Any  # a [count] list shared with views, or None
        _view: Any  # False, True, or how to rebuild the view from its base

        def _inplace(self, other: Any, op: Any, ufunc: Any, reads_self: bool) -> Self: ...

    # -- arithmetic: x op y, y op x (reflected: a NumPy array or number on the left), x op= y --
    def __add__(self, other: Operand) -> Tensor:
        return _ops.add(self, other)

    def __radd__(self, other: Operand) -> Tensor:
        return _ops.add(other, self)

    def __iadd__(self, other: Operand) -> Self:
        return self._inplace(other, _ops.add, np.add, False)

    def __sub__(self, other: Operand) -> Tensor:
        return _ops.subtract(self, other)

    def __rsub__(self, other: Operand) -> Tensor:
        return _ops.subtract(other, self)

    def __isub__(self, other: Operand) -> Self:
        return self._inplace(other, _ops.subtract, np.subtract, False)

    def __mul__(self, other: Operand) -> Tensor:
        return _ops.multiply(self, other)

    def __rmul__(self, other: Operand) -> Tensor:
        return _ops.multiply(other, self)

    def __imul__(self, other: Operand) -> Self:  # (True: the product's VJP reads the old value)
        return self._inplace(other, _ops.multiply, np.multiply, True)

    def __truediv__(self, other: Operand) -> Tensor:
        return _ops.divide(self, other)

    def __rtruediv__(self, other: Operand) -> Tensor:
        return _ops.divide(other, self)

    def __itruediv__(self, other: Operand) -> Self:
        return self._inplace(other, _ops.divide, np.divide, True)

    def __pow__(self, other: Operand) -> Tensor:
        return _ops.power(self, other)

    def __rpow__(self, other: Operand) -> Tensor:
        return _ops.power(other, self)

    def __ipow__(self, other: Operand) -> Self:
        return self._inplace(other, _ops.power, np.power, True)

    def __matmul__(self, other: Operand) -> Tensor:
        return _ops.matmul(self, other)

    def __rmatmul__(self, other: Operand) -> Tensor:
        return _ops.matmul(other, self)

    def __imatmul__(self, other: Operand) -> Self:
        return self._inplace(other, _ops.matmul, np.matmul, True)

    def __neg__(self) -> Tensor:
        return _ops.negative(self)

    def __pos__(self) -> Self:
        return self

    def __abs__(self) -> Tensor:
        return _ops.abs(self)

    def __getitem__(self, index: Any) -> Tensor:
        return _ops.getitem(self, index)

    # -- comparisons: bool tensors, not differentiable --
    def __lt__(self, other: Operand) -> Tensor:
        return _ops.less(self, other)

    def __le__(self, other: Operand) -> Tensor:
        return _ops.less_equal(self, other)

    def __gt__(self, other: Operand) -> Tensor:
        return _ops.greater(self, other)

    def __ge__(self, other: Operand) -> Tensor:
        return _ops.greater_equal(self, other)

    def __eq__(self, other: object) -> Tensor:  # type: ignore[override]  # (elementwise, as NumPy)
        return _ops.equal(self, other)

    def __ne__(self, other: object) -> Tensor:  # type: ignore[override]
        return _ops.not_equal(self, other)

    __hash__ = object.__hash__  # (defining __eq__ would otherwise remove it)

    # -- elementwise --
    def abs(self) -> Tensor:
        """|x| (dp.abs)."""
        return _ops.abs(self)

    def exp(self) -> Tensor:
        """e**x (dp.exp)."""
        return _ops.exp(self)

    def log(self) -> Tensor:
        """Natural logarithm (dp.log)."""
        return _ops.log(self)

    def log1p(self) -> Tensor:
        """log(1 + x) (dp.log1p)."""
        return _ops.log1p(self)

    def sqrt(self) -> Tensor:
        """Square root (dp.sqrt)."""
        return _ops.sqrt(self)

    def sin(self) -> Tensor:
        """Sine (dp.sin)."""
        return _ops.sin(self)

    def cos(self) -> Tensor:
        """Cosine (dp.cos)."""
        return _ops.cos(self)

    def tanh(self) -> Tensor:
        """Hyperbolic tangent (dp.tanh)."""
        return _ops.tanh(self)

    def sigmoid(self) -> Tensor:
        """1 / (1 + e**-x) (dp.sigmoid)."""
        return _ops.sigmoid(self)

    def relu(self) -> Tensor:
        """max(x, 0) (dp.relu)."""
        return _ops.relu(self)

    def clip(self, a_min: Any = None, a_max: Any = None, *, min: Any = None, max: Any = None) -> Tensor:
        """Clamp to [a_min, a_max] (dp.clip; min=/max= as PyTorch's clamp)."""
        return _ops.clip(self, a_min, a_max, min=min, max=max)

    def maximum(self, other: Operand) -> Tensor:
        """Elementwise maximum (dp.maximum)."""
        return _ops.maximum(self, other)

    def minimum(self, other: Operand) -> Tensor:
        """Elementwise minimum (dp.minimum)."""
        return _ops.minimum(self, other)

    def matmul(self, other: Operand) -> Tensor:
        """Matrix product, x @ other (dp.matmul)."""
        return _ops.matmul(self, other)

    # -- reductions (axis=, or PyTorch's dim=) --
    def sum(self, axis: _Axis = None, keepdims: bool = False, *, dim: _Axis = None) -> Tensor:
        """Sum over axis (all axes by default; dp.sum)."""
        return _ops.sum(self, axis, keepdims, dim=dim)

    def mean(self, axis: _Axis = None, keepdims: bool = False, *, dim: _Axis = None) -> Tensor:
        """Mean over axis (dp.mean)."""
        return _ops.mean(self, axis, keepdims, dim=dim)

    def max(self, axis: _Axis = None, keepdims: bool = False, *, dim: _Axis = None) -> Tensor:
        """Maximum over axis, values only (dp.max)."""
        return _ops.max(self, axis, keepdims, dim=dim)

    def min(self, axis: _Axis = None, keepdims: bool = False, *, dim: _Axis = None) -> Tensor:
        """Minimum over axis, values only (dp.min)."""
        return _ops.min(self, axis, keepdims, dim=dim)

    def prod(self, axis: _Axis = None, keepdims: bool = False, *, dim: _Axis = None) -> Tensor:
        """Product over axis (dp.prod)."""
        return _ops.prod(self, axis, keepdims, dim=dim)

    def logsumexp(self, axis: _Axis = None, keepdims: bool = False, *, dim: _Axis = None) -> Tensor:
        """log(sum(exp(x))) over axis, computed stably (dp.logsumexp)."""
        return _ops.logsumexp(self, axis, keepdims, dim=dim)

    def var(self, axis: _Axis = None, ddof: int = 0, keepdims: bool = False, *, dim: _Axis = None) -> Tensor:
        """Variance over axis, ddof=0 by default as NumPy (dp.var)."""
        return _ops.var(self, axis, ddof, keepdims, dim=dim)

    def std(self, axis: _Axis = None, ddof: int = 0, keepdims: bool = False, *, dim: _Axis = None) -> Tensor:
        """Standard deviation over axis (dp.std)."""
        return _ops.std(self, axis, ddof, keepdims, dim=dim)

    def all(self, axis: _Axis = None, keepdims: bool = False, *, dim: _Axis = None) -> Tensor:
        """Whether every element is true (a bool tensor; dp.all)."""
        return _ops.all(self, axis, keepdims, dim=dim)

    def any(self, axis: _Axis = None, keepdims: bool = False, *, dim: _Axis = None) -> Tensor:
        """Whether any element is true (a bool tensor; dp.any)."""
        return _ops.any(self, axis, keepdims, dim=dim)

    def argmax(self, axis: _Axis = None, keepdims: bool = False, *, dim: _Axis = None) -> Tensor:
        """Index of the maximum (int64, not differentiable; dp.argmax)."""
        return _ops.argmax(self, axis, keepdims, dim=dim)

    def argmin(self, axis: _Axis = None, keepdims: bool = False, *, dim: _Axis = None) -> Tensor:
        """Index of the minimum (int64, not differentiable; dp.argmin)."""
        return _ops.argmin(self, axis, keepdims, dim=dim)

    def softmax(self, axis: int = -1, *, dim: int | None = None) -> Tensor:
        """exp(x) / sum(exp(x)) along axis (dp.softmax)."""
        return _ops.softmax(self, axis, dim=dim)

    def log_softmax(self, axis: int = -1, *, dim: int | None = None) -> Tensor:
        """log(softmax(x)) along axis, computed stably (dp.log_softmax)."""
        return _ops.log_softmax(self, axis, dim=dim)

    # -- shape --
    @property
    def T(self) -> Tensor:
        """The axes reversed (differentiable), as ndarray.T."""
        return _ops.transpose(self)

    def reshape(self, *shape: Any) -> Tensor:
        """Same data, new shape: reshape(2, 3) or reshape((2, 3)) (dp.reshape)."""
        return _ops.reshape(self, *shape)

    def view(self, *shape: Any) -> Tensor:
        """PyTorch's view: the same memory in a new shape, sharing the version counter (dp.view)."""
        return _ops.view(self, *shape)

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Tensor:
        """Merge axes start_dim..end_dim into one (dp.flatten)."""
        return _ops.flatten(self, start_dim, end_dim)

    def transpose(self, *axes: Any) -> Tensor:
        """Permute the axes, reversed by default: transpose(1, 0) or transpose((1, 0)) (dp.transpose)."""
        return _ops.transpose(self, *axes)

    def swapaxes(self, axis1: int, axis2: int) -> Tensor:
        """Swap two axes (dp.swapaxes)."""
        return _ops.swapaxes(self, axis1, axis2)

    def broadcast_to(self, shape: Any) -> Tensor:
        """A read-only broadcast view (dp.broadcast_to)."""
        return _ops.broadcast_to(self, shape)

    def squeeze(self, axis: _Axis = None, *, dim: _Axis = None) -> Tensor:
        """Drop size-1 axes, all or the given ones (dp.squeeze)."""
        return _ops.squeeze(self, axis, dim=dim)

    def unsqueeze(self, dim: int) -> Tensor:
        """Insert a size-1 axis at dim (dp.unsqueeze)."""
        return _ops.unsqueeze(self, dim)

    def expand_dims(self, axis: Any) -> Tensor:
        """Insert size-1 axes at the given positions of the result (dp.expand_dims)."""
        return _ops.expand_dims(self, axis)

    # -- dtype --
    def astype(self, dtype: Any) -> Tensor:
        """A copy with another dtype; the gradient is cast back (dp.astype)."""
        return _ops.astype(self, dtype)

    def to(self, *args: Any, **kwargs: Any) -> Tensor:
        """PyTorch's to: to(dtype), to(other_tensor) or to('cpu'); self when nothing changes (dp.to)."""
        return _ops.to(self, *args, **kwargs)

    def float(self) -> Tensor:
        """As float32 (self if it already is)."""
        return _ops.float32(self)

    def double(self) -> Tensor:
        """As float64 (self if it already is)."""
        return _ops.float64(self)
