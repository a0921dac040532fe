"""NumPy on the left never drops the graph: reflected operators with ndarrays and NumPy scalars,
ufuncs dispatched to deltaprop ops, and a TypeError naming an unsupported ufunc."""
from __future__ import annotations

import numpy as np
import pytest

import deltaprop as dp


def leaf(v):
    return dp.tensor(np.asarray(v, np.float64), requires_grad=True)


@pytest.mark.parametrize("expr, dydx", [
    (lambda x: np.ones(3) - x, lambda x: -np.ones(3)),
    (lambda x: np.ones(3) + x, lambda x: np.ones(3)),
    (lambda x: np.array([1.0, 2.0, 3.0]) * x, lambda x: np.array([1.0, 2.0, 3.0])),
    (lambda x: np.array([1.0, 2.0, 4.0]) / x, lambda x: -np.array([1.0, 2.0, 4.0]) / x ** 2),
    (lambda x: np.full(3, 2.0) ** x, lambda x: 2.0 ** x * np.log(2.0)),
    (lambda x: np.float64(2) * x, lambda x: np.full(3, 2.0)),
    (lambda x: np.float64(2) - x, lambda x: -np.ones(3)),
    (lambda x: np.float32(3) + x, lambda x: np.ones(3)),
    (lambda x: np.int64(3) * x, lambda x: np.full(3, 3.0)),
    (lambda x: np.float64(1) / x, lambda x: -1 / x ** 2),
    (lambda x: np.eye(3) @ x, lambda x: np.ones(3)),
    (lambda x: np.ones((2, 3)) * x, lambda x: np.full(3, 2.0)),  # broadcast, summed back
])
def test_numpy_on_the_left_returns_tensor_with_gradient(expr, dydx):
    xv = np.array([0.5, 1.0, 2.0])
    x = leaf(xv)
    y = expr(x)
    assert isinstance(y, dp.Tensor), type(y)
    assert y.requires_grad
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), dydx(xv), rtol=1e-12)


@pytest.mark.parametrize("ufunc, deriv", [
    (np.sin, np.cos), (np.cos, lambda v: -np.sin(v)), (np.exp, np.exp), (np.log, lambda v: 1 / v),
    (np.sqrt, lambda v: 0.5 / np.sqrt(v)), (np.tanh, lambda v: 1 - np.tanh(v) ** 2), (np.negative, lambda v: -v / v),
    (np.abs, np.sign), (np.log1p, lambda v: 1 / (1 + v)), (np.square, lambda v: 2 * v),
])
def test_unary_ufunc_dispatches_to_deltaprop(ufunc, deriv):
    xv = np.array([0.5, 1.0, 2.0])
    x = leaf(xv)
    y = ufunc(x)
    assert isinstance(y, dp.Tensor)
    np.testing.assert_allclose(y.numpy(), ufunc(xv), rtol=1e-14)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), deriv(xv), rtol=1e-12)


def test_binary_ufuncs_dispatch():
    a, b = leaf([1.0, 5.0]), leaf([3.0, 2.0])
    for uf in (np.add, np.subtract, np.multiply, np.divide, np.maximum, np.minimum, np.power):
        y = uf(a, b)
        assert isinstance(y, dp.Tensor) and y.requires_grad
        np.testing.assert_allclose(y.numpy(), uf(a.numpy(), b.numpy()))
    np.maximum(a, b).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [0.0, 1.0])
    np.testing.assert_array_equal(b.grad.numpy(), [1.0, 0.0])
    y = np.matmul(np.ones((2, 2)), a)
    assert isinstance(y, dp.Tensor) and y.requires_grad


def test_numpy_functions_dispatch():
    x = leaf([[1.0, 2.0], [3.0, 4.0]])
    for fn in (np.sum, np.mean, np.max, np.var, np.std, np.prod):
        y = fn(x)
        assert isinstance(y, dp.Tensor) and y.requires_grad, fn
        np.testing.assert_allclose(y.item(), fn(x.numpy()))
    y = np.sum(x, axis=0)
    assert isinstance(y, dp.Tensor) and y.shape == (2,)
    np.testing.assert_array_equal(np.reshape(x, (4,)).numpy(), [1, 2, 3, 4])
    np.testing.assert_array_equal(np.transpose(x).numpy(), x.numpy().T)
    np.concatenate([x, x]).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.full((2, 2), 2.0))


@pytest.mark.parametrize("ufunc", [np.arctan, np.tan, np.expm1, np.arcsin, np.log2, np.floor])
def test_unsupported_ufunc_raises_type_error_naming_it(ufunc):
    x = leaf([0.5, 0.25])
    with pytest.raises(TypeError, match=ufunc.__name__):
        ufunc(x)


def test_unsupported_ufunc_never_returns_an_ndarray():
    x = leaf([0.5])
    with pytest.raises(TypeError) as e:
        np.arctan(x)
    assert "arctan" in str(e.value)
    # ufunc methods (reduce, accumulate) also refuse rather than silently dropping the graph
    with pytest.raises(TypeError):
        np.add.reduce(x)


def test_comparisons_with_numpy_on_the_left_are_bool_tensors():
    x = leaf([0.5, 2.0])
    r = np.ones(2) < x
    assert isinstance(r, dp.Tensor)
    assert r.dtype == np.bool_
    np.testing.assert_array_equal(r.numpy(), [False, True])


def test_asarray_of_tensor_is_its_values():
    x = leaf([1.0, 2.0])
    a = np.asarray(x)
    assert isinstance(a, np.ndarray)
    np.testing.assert_array_equal(a, [1.0, 2.0])
    np.testing.assert_array_equal(np.array(x, dtype=np.float32), np.array([1.0, 2.0], np.float32))
