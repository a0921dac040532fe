"""Numerical stability at magnitude 1e4: finite values and gradients with no NumPy warnings;
binary_cross_entropy's clamp at -100 and its [0, 1] check."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import deltaprop as dp

F = dp.nn.functional
BIG = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [1e4, 1e4, -3.0]])


@pytest.fixture(autouse=True)
def warnings_are_errors():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def value_and_grad(f, x, dtype):
    t = dp.tensor(np.asarray(x, dtype), requires_grad=True)
    out = f(t)
    out.sum().backward()
    return out.numpy(), t.grad.numpy()


CASES = {
    "logsumexp": lambda t: dp.logsumexp(t, axis=1),
    "logsumexp_all": lambda t: dp.logsumexp(t),
    "logsumexp_keepdims": lambda t: t.logsumexp(axis=0, keepdims=True),
    "log_softmax": lambda t: F.log_softmax(t, axis=-1),
    "log_softmax_axis0": lambda t: F.log_softmax(t, axis=0),
    "softmax": lambda t: F.softmax(t, axis=-1) * dp.tensor(np.arange(3.0).astype(t.dtype)),
    "cross_entropy": lambda t: F.cross_entropy(t, np.array([1, 0, 2])),
    "cross_entropy_sum": lambda t: F.cross_entropy(t, np.array([0, 2, 1]), reduction="sum"),
    "cross_entropy_none": lambda t: F.cross_entropy(t, np.array([1, 1, 2]), reduction="none"),
    "sigmoid": lambda t: dp.sigmoid(t),
    "F.sigmoid": lambda t: F.sigmoid(t),
    "bce_logits": lambda t: F.binary_cross_entropy_with_logits(t, dp.tensor(np.eye(3, dtype=t.dtype))),
    "bce_logits_none": lambda t: F.binary_cross_entropy_with_logits(t, dp.tensor(np.ones((3, 3), t.dtype)),
                                                                    reduction="none"),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(CASES))
def test_finite_values_and_gradients_at_1e4_without_warnings(name, dtype):
    out, g = value_and_grad(CASES[name], BIG, dtype)
    assert np.isfinite(out).all(), out
    assert np.isfinite(g).all(), g
    assert g.dtype == dtype


def test_exact_values_at_1e4():
    x = dp.tensor(BIG)
    np.testing.assert_allclose(dp.logsumexp(x, axis=1).numpy(), [1e4, -1e4 + np.log(3), 1e4 + np.log(2)],
                               rtol=1e-12)
    ls = F.log_softmax(x, axis=-1).numpy()
    np.testing.assert_allclose(ls[0], [0.0, -2e4, -1e4], atol=1e-9)
    np.testing.assert_allclose(ls[1], [-np.log(3)] * 3, rtol=1e-12)
    np.testing.assert_allclose(dp.sigmoid(dp.tensor([1e4, -1e4, 0.0])).numpy(), [1.0, 0.0, 0.5])
    ce = F.cross_entropy(x, np.array([1, 0, 2]), reduction="none").numpy()
    np.testing.assert_allclose(ce, [2e4, np.log(3), 1e4 + 3 + np.log(2)], rtol=1e-12)
    bl = F.binary_cross_entropy_with_logits(dp.tensor([1e4, -1e4, 1e4, -1e4]), dp.tensor([1.0, 0.0, 0.0, 1.0]),
                                            reduction="none").numpy()
    np.testing.assert_allclose(bl, [0.0, 0.0, 1e4, 1e4], atol=1e-12)


def test_gradients_at_1e4_have_correct_values():
    _, g = value_and_grad(lambda t: dp.logsumexp(t, axis=1), BIG, np.float64)
    np.testing.assert_allclose(g, [[1, 0, 0], [1 / 3] * 3, [0.5, 0.5, 0]], atol=1e-12)
    _, g = value_and_grad(lambda t: F.cross_entropy(t, np.array([1, 0, 2]), reduction="sum"), BIG, np.float64)
    np.testing.assert_allclose(g, [[1, -1, 0], [-2 / 3, 1 / 3, 1 / 3], [0.5, 0.5, -1]], atol=1e-12)
    _, g = value_and_grad(dp.sigmoid, np.array([1e4, -1e4]), np.float64)
    np.testing.assert_array_equal(g, [0.0, 0.0])
    t = dp.tensor(np.array([1e4, -1e4, 1e4, -1e4]), requires_grad=True)
    F.binary_cross_entropy_with_logits(t, dp.tensor([1.0, 0.0, 0.0, 1.0]), reduction="sum").backward()
    np.testing.assert_allclose(t.grad.numpy(), [0.0, 0.0, 1.0, -1.0], atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(x=hnp.arrays(np.float64, (2, 4), elements=st.floats(-3e4, 3e4)))
def test_stable_ops_finite_for_any_large_input(x):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in ("logsumexp", "log_softmax", "cross_entropy", "sigmoid", "bce_logits"):
            f = {"logsumexp": lambda t: dp.logsumexp(t, axis=1),
                 "log_softmax": lambda t: F.log_softmax(t, axis=1),
                 "cross_entropy": lambda t: F.cross_entropy(t, np.array([0, 3])),
                 "sigmoid": dp.sigmoid,
                 "bce_logits": lambda t: F.binary_cross_entropy_with_logits(t, dp.tensor(np.full((2, 4), 0.5)))}[name]
            out, g = value_and_grad(f, x, np.float64)
            assert np.isfinite(out).all() and np.isfinite(g).all(), name


# -- binary_cross_entropy: the -100 clamp and the [0, 1] check --------------------------------------
def test_bce_clamps_logs_at_minus_100():
    p = dp.tensor(np.array([0.0, 1.0, 0.0, 1.0]), requires_grad=True)
    y = dp.tensor(np.array([1.0, 0.0, 0.0, 1.0]))
    loss = F.binary_cross_entropy(p, y, reduction="none")
    np.testing.assert_array_equal(loss.numpy(), [100.0, 100.0, 0.0, 0.0])
    assert F.binary_cross_entropy(p, y).item() == 50.0
    assert F.binary_cross_entropy(p, y, reduction="sum").item() == 200.0
    F.binary_cross_entropy(p, y, reduction="sum").backward()
    assert np.isfinite(p.grad.numpy()).all()
    # PyTorch: grad = (p - y) / max(p (1 - p), 1e-12)
    np.testing.assert_allclose(p.grad.numpy(), [-1e12, 1e12, 0.0, 0.0])


def test_bce_tiny_probabilities_clamp():
    p = dp.tensor(np.array([1e-50, 1 - 1e-17]))
    loss = F.binary_cross_entropy(p, dp.tensor(np.array([1.0, 0.0])), reduction="none").numpy()
    np.testing.assert_allclose(loss, [100.0, 100.0])


@pytest.mark.parametrize("bad", [1.5, -0.1, np.nan])
def test_bce_rejects_probabilities_outside_0_1(bad):
    with pytest.raises(ValueError) as e:
        F.binary_cross_entropy(dp.tensor(np.array([0.5, bad])), dp.tensor(np.array([1.0, 0.0])))
    assert "[0, 1]" in str(e.value) or "probabilit" in str(e.value)


def test_bce_float32_no_warnings():
    p = dp.tensor([0.0, 0.25, 1.0], requires_grad=True)
    loss = F.binary_cross_entropy(p, dp.tensor([0.0, 1.0, 1.0]))
    assert loss.dtype == np.float32
    loss.backward()
    assert np.isfinite(loss.item()) and np.isfinite(p.grad.numpy()).all()
    np.testing.assert_allclose(loss.item(), -np.log(0.25) / 3, rtol=1e-6)
