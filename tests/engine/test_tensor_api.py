"""The Tensor API of DESIGN.md: dtype rules, default dtype, creation functions, the random
generator, properties and methods with NumPy's names and argument forms."""
from __future__ import annotations

import numpy as np
import pytest

import deltaprop as dp


@pytest.fixture
def float64_default():
    before = dp.get_default_dtype()
    dp.set_default_dtype(np.float64)
    try:
        yield
    finally:
        dp.set_default_dtype(before)


@pytest.fixture(autouse=True)
def _restore_default_dtype():
    before = dp.get_default_dtype()
    yield
    dp.set_default_dtype(before)


# -- dtype rules ------------------------------------------------------------------------------
def test_default_dtype_is_float32():
    assert dp.get_default_dtype() == np.float32


def test_tensor_dtype_rules():
    assert dp.tensor([[1.0, 2.0], [3.0, 4.0]]).dtype == np.float32
    assert dp.tensor(1.5).dtype == np.float32
    assert dp.tensor([1, 2.5]).dtype == np.float32
    assert dp.tensor([0, 1, 2]).dtype == np.int64
    assert dp.tensor(3).dtype == np.int64
    assert dp.tensor(np.ones((2, 3))).dtype == np.float64  # an ndarray keeps its dtype
    assert dp.tensor(np.ones(2, np.float32)).dtype == np.float32
    assert dp.tensor(np.arange(3, dtype=np.int32)).dtype == np.int32
    assert dp.tensor([0, 1, 2], dtype=np.float64).dtype == np.float64  # dtype= overrides
    assert dp.tensor([1.0, 2.0], dtype=np.float64).dtype == np.float64
    assert dp.tensor([True, False]).dtype == np.bool_


def test_tensor_copies_its_data():
    a = np.array([1.0, 2.0])
    t = dp.tensor(a)
    a[0] = 100.0
    assert t.numpy()[0] == 1.0


def test_tensor_from_tensor():
    x = dp.tensor([1.0, 2.0], requires_grad=True)
    y = dp.tensor(x)
    assert y.dtype == np.float32 and not y.requires_grad
    np.testing.assert_array_equal(y.numpy(), [1.0, 2.0])


def test_set_default_dtype(float64_default):
    assert dp.get_default_dtype() == np.float64
    assert dp.tensor([1.0]).dtype == np.float64
    assert dp.zeros(2).dtype == np.float64
    assert dp.randn(2).dtype == np.float64
    assert dp.tensor([1]).dtype == np.int64  # ints unaffected


def test_set_default_dtype_rejects_non_float():
    with pytest.raises(TypeError):
        dp.set_default_dtype(np.int32)
    assert dp.get_default_dtype() == np.float32


# -- creation functions ------------------------------------------------------------------------------
def test_creation_functions():
    z = dp.zeros(2, 3)
    assert z.shape == (2, 3) and z.dtype == np.float32 and not z.numpy().any()
    assert dp.zeros((2, 3)).shape == (2, 3)
    o = dp.ones((3,), dtype=np.float64)
    assert o.dtype == np.float64
    np.testing.assert_array_equal(o.numpy(), [1, 1, 1])
    f = dp.full((2, 2), 7.0)
    np.testing.assert_array_equal(f.numpy(), np.full((2, 2), 7.0))
    assert f.dtype == np.float32
    a = dp.arange(5)
    np.testing.assert_array_equal(a.numpy(), [0, 1, 2, 3, 4])
    assert a.dtype == np.int64
    af = dp.arange(0.0, 1.0, 0.25)
    np.testing.assert_array_equal(af.numpy(), [0.0, 0.25, 0.5, 0.75])
    assert af.dtype == np.float32
    e = dp.eye(3)
    np.testing.assert_array_equal(e.numpy(), np.eye(3))
    assert e.dtype == np.float32
    x = dp.tensor(np.arange(6.0).reshape(2, 3))
    zl, ol = dp.zeros_like(x), dp.ones_like(x)
    assert zl.shape == ol.shape == (2, 3)
    assert zl.dtype == ol.dtype == np.float64
    np.testing.assert_array_equal(ol.numpy(), 1)
    r = dp.rand(4, 5)
    assert r.shape == (4, 5) and r.dtype == np.float32
    assert ((r.numpy() >= 0) & (r.numpy() < 1)).all()
    n = dp.randn(1000)
    assert abs(n.numpy().mean()) < 0.2 and 0.8 < n.numpy().std() < 1.2


def test_creation_with_requires_grad():
    w = dp.zeros(2, 2, requires_grad=True)
    assert w.requires_grad and w.is_leaf
    (w * 3).sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), np.full((2, 2), 3.0))
    assert dp.randn(3, requires_grad=True).requires_grad
    assert dp.ones(3, requires_grad=True).requires_grad


def test_manual_seed_reproducibility():
    dp.manual_seed(0)
    a, b = dp.randn(3, 4).numpy(), dp.rand(5).numpy()
    dp.manual_seed(0)
    c, d = dp.randn(3, 4).numpy(), dp.rand(5).numpy()
    np.testing.assert_array_equal(a, c)
    np.testing.assert_array_equal(b, d)
    dp.manual_seed(1)
    assert not np.array_equal(dp.randn(3, 4).numpy(), a)


# -- properties and conversions --------------------------------------------------------------------
def test_properties():
    x = dp.tensor(np.arange(6.0).reshape(2, 3))
    assert x.shape == (2, 3)
    assert x.dtype == np.float64
    assert x.ndim == 2
    assert x.size == 6
    np.testing.assert_array_equal(x.T.numpy(), np.arange(6.0).reshape(2, 3).T)
    assert isinstance(x.data, np.ndarray)
    np.testing.assert_array_equal(x.data, np.arange(6.0).reshape(2, 3))
    n = x.numpy()
    assert isinstance(n, np.ndarray)
    assert dp.tensor([[3.5]]).item() == 3.5
    assert isinstance(dp.tensor(2).item(), int)
    assert x.sum().item() == 15.0


def test_astype():
    x = dp.tensor([1.5, 2.5])
    y = x.astype(np.float64)
    assert y.dtype == np.float64 and x.dtype == np.float32
    assert x.astype(np.int64).dtype == np.int64
    np.testing.assert_array_equal(x.astype(np.int64).numpy(), [1, 2])


def test_requires_grad_and_is_leaf():
    x = dp.tensor([1.0, 2.0])
    assert not x.requires_grad and x.is_leaf and x.grad is None
    assert x.requires_grad_() is x
    assert x.requires_grad
    y = x * 2
    assert not y.is_leaf and y.requires_grad
    x.requires_grad_(False)
    assert not x.requires_grad
    assert not (x * 2).requires_grad


def test_detach_shares_values_no_grad():
    x = dp.tensor([1.0, 2.0], requires_grad=True)
    d = x.detach()
    assert not d.requires_grad and d.is_leaf
    np.testing.assert_array_equal(d.numpy(), x.numpy())


# -- NumPy naming: axis/keepdims, dim alias, argument forms ------------------------------------------
def test_dim_alias_of_axis():
    a = np.arange(24.0).reshape(2, 3, 4)
    x = dp.tensor(a)
    for name in ("sum", "mean", "max", "min", "var", "std", "prod"):
        np.testing.assert_allclose(getattr(x, name)(dim=1).numpy(), getattr(a, name)(axis=1), rtol=1e-12)
        np.testing.assert_allclose(getattr(dp, name)(x, dim=-1, keepdims=True).numpy(),
                                   getattr(a, name)(axis=-1, keepdims=True), rtol=1e-12)
    np.testing.assert_allclose(x.logsumexp(dim=0).numpy(), np.log(np.exp(a).sum(0)), rtol=1e-12)
    np.testing.assert_array_equal(x.argmax(dim=2).numpy(), a.argmax(axis=2))
    np.testing.assert_array_equal(dp.concatenate([x, x], dim=1).numpy(), np.concatenate([a, a], axis=1))
    np.testing.assert_array_equal(dp.stack([x, x], dim=0).numpy(), np.stack([a, a]))
    np.testing.assert_allclose(dp.nn.functional.softmax(x, dim=0).numpy().sum(0), np.ones((3, 4)), rtol=1e-12)


def test_axis_tuple_negative_and_keepdims():
    a = np.arange(24.0).reshape(2, 3, 4)
    x = dp.tensor(a)
    np.testing.assert_array_equal(x.sum(axis=(0, -1)).numpy(), a.sum(axis=(0, -1)))
    np.testing.assert_array_equal(x.max(axis=(1, 2), keepdims=True).numpy(), a.max(axis=(1, 2), keepdims=True))
    np.testing.assert_array_equal(x.sum(axis=[0, 2]).numpy(), a.sum(axis=(0, 2)))
    assert x.mean(keepdims=True).shape == (1, 1, 1)


def test_reshape_and_transpose_argument_forms():
    a = np.arange(24.0).reshape(2, 3, 4)
    x = dp.tensor(a)
    np.testing.assert_array_equal(x.reshape(4, 6).numpy(), a.reshape(4, 6))
    np.testing.assert_array_equal(x.reshape((4, 6)).numpy(), a.reshape(4, 6))
    np.testing.assert_array_equal(x.reshape([4, -1]).numpy(), a.reshape(4, 6))
    np.testing.assert_array_equal(x.reshape(-1).numpy(), a.reshape(-1))
    np.testing.assert_array_equal(x.transpose(2, 0, 1).numpy(), a.transpose(2, 0, 1))
    np.testing.assert_array_equal(x.transpose((2, 0, 1)).numpy(), a.transpose(2, 0, 1))
    np.testing.assert_array_equal(x.transpose().numpy(), a.transpose())
    np.testing.assert_array_equal(x.transpose(-1, 0, 1).numpy(), a.transpose(-1, 0, 1))
    np.testing.assert_array_equal(x.T.numpy(), a.T)
    np.testing.assert_array_equal(x.flatten().numpy(), a.flatten())
    np.testing.assert_array_equal(x.swapaxes(0, 2).numpy(), a.swapaxes(0, 2))
    with pytest.raises(ValueError):
        x.transpose(0, 0, 1)


def test_var_is_ddof_0_and_max_returns_values_only():
    a = np.array([[1.0, 2.0, 4.0], [3.0, -1.0, 0.5]])
    x = dp.tensor(a)
    np.testing.assert_allclose(x.var().item(), np.var(a), rtol=1e-12)
    np.testing.assert_allclose(x.var(axis=1).numpy(), np.var(a, axis=1), rtol=1e-12)
    np.testing.assert_allclose(x.std(axis=0).numpy(), np.std(a, axis=0), rtol=1e-12)
    m = x.max(axis=1)
    assert isinstance(m, dp.Tensor)  # values only, not (values, indices)
    np.testing.assert_array_equal(m.numpy(), [4.0, 3.0])
    assert isinstance(dp.max(x, axis=0), dp.Tensor)
    np.testing.assert_array_equal(dp.min(x, axis=0).numpy(), [1.0, -1.0, 0.5])


def test_comparisons_return_bool_tensors():
    x = dp.tensor([1.0, 2.0, 3.0], requires_grad=True)
    for r, expected in [(x < 2, [True, False, False]), (x <= 2, [True, True, False]), (x > 2, [False, False, True]),
                        (x >= 2, [False, True, True]), (x == 2, [False, True, False]), (x != 2, [True, False, True]),
                        (x > dp.tensor([0.0, 5.0, 3.0]), [True, False, False])]:
        assert isinstance(r, dp.Tensor)
        assert r.dtype == np.bool_
        assert not r.requires_grad
        np.testing.assert_array_equal(r.numpy(), expected)


def test_functions_and_methods_agree():
    a = np.array([[0.5, 1.0], [1.5, 2.0]])
    x = dp.tensor(a)
    for name in ("exp", "log", "sqrt", "abs", "sin", "cos", "tanh", "sigmoid", "relu", "log1p"):
        np.testing.assert_allclose(getattr(dp, name)(x).numpy(), getattr(x, name)().numpy())
    np.testing.assert_allclose(dp.exp(x).numpy(), np.exp(a))
    np.testing.assert_allclose(dp.sigmoid(x).numpy(), 1 / (1 + np.exp(-a)), rtol=1e-12)
    np.testing.assert_array_equal(dp.relu(dp.tensor([-1.0, 2.0])).numpy(), [0.0, 2.0])
    np.testing.assert_array_equal(dp.clip(x, 0.8, 1.6).numpy(), np.clip(a, 0.8, 1.6))
    np.testing.assert_array_equal(x.clip(0.8, 1.6).numpy(), np.clip(a, 0.8, 1.6))
    np.testing.assert_array_equal(dp.where(x > 1, x, -x).numpy(), np.where(a > 1, a, -a))
    np.testing.assert_array_equal(dp.split(x, 2)[1].numpy(), a[1:])
    np.testing.assert_array_equal(dp.squeeze(dp.unsqueeze(x, 0)).numpy(), a)
    np.testing.assert_array_equal(dp.expand_dims(x, -1).shape, (2, 2, 1))
    np.testing.assert_array_equal(dp.broadcast_to(dp.tensor([1.0, 2.0]), (3, 2)).numpy(), np.ones((3, 1)) * [1, 2])


def test_operators_full_set():
    a = dp.tensor([2.0, 4.0])
    b = dp.tensor([1.0, 2.0])
    np.testing.assert_array_equal((a + b).numpy(), [3, 6])
    np.testing.assert_array_equal((a - b).numpy(), [1, 2])
    np.testing.assert_array_equal((a * b).numpy(), [2, 8])
    np.testing.assert_array_equal((a / b).numpy(), [2, 2])
    np.testing.assert_array_equal((a ** b).numpy(), [2, 16])
    assert (a @ b).item() == 10
    np.testing.assert_array_equal((-a).numpy(), [-2, -4])
    np.testing.assert_array_equal((1 - a).numpy(), [-1, -3])
    np.testing.assert_array_equal((8 / a).numpy(), [4, 2])
    np.testing.assert_array_equal((2 ** b).numpy(), [2, 4])
    np.testing.assert_array_equal(abs(dp.tensor([-1.0, 1.0])).numpy(), [1, 1])


def test_int_tensor_arithmetic_and_indexing_with_tensors():
    i = dp.tensor([0, 2])
    x = dp.tensor([10.0, 20.0, 30.0], requires_grad=True)
    y = x[i]
    np.testing.assert_array_equal(y.numpy(), [10.0, 30.0])
    assert (dp.tensor([1, 2]) * 2).dtype == np.int64


def test_expand_dims_tuple_of_axes():
    a = np.ones((2, 3))
    assert dp.expand_dims(dp.tensor(a), (0, -1)).shape == np.expand_dims(a, (0, -1)).shape


def test_squeeze_tuple_of_axes():
    a = np.ones((1, 2, 1))
    assert dp.tensor(a).squeeze((0, 2)).shape == (2,)
    with pytest.raises(ValueError):
        dp.tensor(a).squeeze(1)
