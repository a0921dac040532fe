"""HIPS autograd as an independent oracle: the same function written twice (deltaprop ops and
autograd.numpy) must have the same gradients, Jacobians and Hessians."""
from __future__ import annotations

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
from autograd.scipy.special import logsumexp as a_logsumexp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import deltaprop as dp

F = dp.nn.functional
SETTINGS = settings(max_examples=25, deadline=None)


def grid(shape, lo, hi, *, nonzero=False, unique=False, offset=0.0):
    ints = st.integers(int(round(lo * 10)), int(round(hi * 10)))
    if nonzero:
        ints = ints.filter(lambda i: i != 0)
    return hnp.arrays(np.int64, shape, elements=ints, unique=unique).map(lambda a: a / 10.0 + offset)


def dp_grad_backward(f, *xs):
    ts = [dp.tensor(x, requires_grad=True) for x in xs]
    f(*ts).backward()
    return [t.grad.numpy() for t in ts]


def a_sigmoid(x):
    return 1 / (1 + anp.exp(-x))


def a_softmax(x, axis=-1):
    e = anp.exp(x - anp.max(x, axis=axis, keepdims=True))
    return e / anp.sum(e, axis=axis, keepdims=True)


# Pairs (deltaprop, autograd.numpy) of scalar functions of one array; domain (lo, hi, nonzero, unique)
UNARY_PAIRS = {
    "exp_sin": (lambda x: dp.exp(dp.sin(x)).sum(), lambda x: anp.sum(anp.exp(anp.sin(x))), (-2, 2, False, False)),
    "log_sqrt": (lambda x: (dp.log(x) * dp.sqrt(x)).sum(), lambda x: anp.sum(anp.log(x) * anp.sqrt(x)),
                 (0.2, 3, False, False)),
    "log1p": (lambda x: dp.log1p(x).sum(), lambda x: anp.sum(anp.log1p(x)), (-0.5, 3, False, False)),
    "cos_tanh": (lambda x: (dp.cos(x) * dp.tanh(x)).sum(), lambda x: anp.sum(anp.cos(x) * anp.tanh(x)),
                 (-3, 3, False, False)),
    "sigmoid": (lambda x: (dp.sigmoid(x) ** 2).sum(), lambda x: anp.sum(a_sigmoid(x) ** 2), (-4, 4, False, False)),
    "abs_relu": (lambda x: (dp.abs(x) * 2 + dp.relu(x) * x).sum(),
                 lambda x: anp.sum(anp.abs(x) * 2 + anp.maximum(x, 0) * x), (-2, 2, True, False)),
    "clip": (lambda x: (dp.clip(x, -0.55, 0.55) * x).sum(), lambda x: anp.sum(anp.clip(x, -0.55, 0.55) * x),
             (-2, 2, True, False)),
    "pow_div": (lambda x: (x ** 3 / (1 + x * x) - 2.0 / (x + 3)).sum(),
                lambda x: anp.sum(x ** 3 / (1 + x * x) - 2.0 / (x + 3)), (-2, 2, False, False)),
    "sum_mean": (lambda x: x.sum(axis=-1).mean() * x.mean(),
                 lambda x: anp.mean(anp.sum(x, axis=-1)) * anp.mean(x), (-2, 2, False, False)),
    "max_min": (lambda x: (x.max(axis=0) * x.min(axis=-1, keepdims=True)).sum(),
                lambda x: anp.sum(anp.max(x, axis=0) * anp.min(x, axis=-1, keepdims=True)), (-2, 2, False, True)),
    "var_std": (lambda x: x.var(axis=0).sum() + x.std(),
                lambda x: anp.sum(anp.var(x, axis=0)) + anp.std(x), (-2, 2, False, True)),
    "prod": (lambda x: x.prod(axis=1).sum(), lambda x: anp.sum(anp.prod(x, axis=1)), (-1.5, 1.5, True, False)),
    "logsumexp": (lambda x: dp.logsumexp(x, axis=1).sum() + dp.logsumexp(x),
                  lambda x: anp.sum(a_logsumexp(x, axis=1)) + a_logsumexp(x), (-3, 3, False, False)),
    "softmax": (lambda x: (F.softmax(x, axis=0) * dp.arange(x.shape[1], dtype=np.float64)).sum(),
                lambda x: anp.sum(a_softmax(x, axis=0) * anp.arange(x.shape[1])), (-3, 3, False, False)),
    "log_softmax": (lambda x: (F.log_softmax(x) ** 2).sum(), lambda x: anp.sum((x - a_logsumexp(x, axis=-1,
                    keepdims=True)) ** 2), (-3, 3, False, False)),
    "shapes": (lambda x: (x.T.reshape(-1)[::2] * 3).sum() + dp.transpose(x, (1, 0))[0].sum() * x[1, 1],
               lambda x: anp.sum(anp.reshape(x.T, -1)[::2] * 3) + anp.sum(anp.transpose(x, (1, 0))[0]) * x[1, 1],
               (-2, 2, False, False)),
    "indexing": (lambda x: (x[[0, 0, 1], :] ** 2).sum() + x[x > 0].sum() + x[:, None, 1].sum(),
                 lambda x: anp.sum(x[[0, 0, 1], :] ** 2) + anp.sum(x[x > 0]) + anp.sum(x[:, None, 1]),
                 (-2, 2, True, False)),
    "concat_stack": (lambda x: (dp.concatenate([x, x * 2], axis=1) ** 2).sum()
                     + (dp.stack([x, x.exp()], axis=-1) * 1.5).sum(),
                     lambda x: anp.sum(anp.concatenate([x, x * 2], axis=1) ** 2)
                     + anp.sum(anp.stack([x, anp.exp(x)], axis=-1) * 1.5), (-2, 2, False, False)),
    "where_maximum": (lambda x: (dp.where(x > 0, x * x, -x) + dp.maximum(x, 0.05) - dp.minimum(x, 0.05)).sum(),
                      lambda x: anp.sum(anp.where(x > 0, x * x, -x) + anp.maximum(x, 0.05) - anp.minimum(x, 0.05)),
                      (-2, 2, True, False)),
    "broadcast_squeeze": (lambda x: (dp.broadcast_to(x[None], (3,) + x.shape) * dp.arange(3.0, dtype=np.float64)
                                     .reshape(3, 1, 1)).sum() + dp.expand_dims(x, 0).squeeze(0).sum(),
                          lambda x: anp.sum(anp.broadcast_to(x[None], (3,) + x.shape) * anp.arange(3.0)
                                            .reshape(3, 1, 1)) + anp.sum(anp.squeeze(anp.expand_dims(x, 0), 0)),
                          (-2, 2, False, False)),
}


@pytest.mark.parametrize("name", sorted(UNARY_PAIRS))
@SETTINGS
@given(data=st.data(), rows=st.integers(2, 3), cols=st.integers(2, 4))
def test_grad_matches_autograd(name, data, rows, cols):
    f_dp, f_ag, (lo, hi, nonzero, unique) = UNARY_PAIRS[name]
    x = data.draw(grid((rows, cols), lo, hi, nonzero=nonzero, unique=unique))
    expected = autograd.grad(f_ag)(x)
    (got,) = dp_grad_backward(f_dp, x)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dp.grad(f_dp)(x).numpy(), expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(f_dp(dp.tensor(x)).item(), f_ag(x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["exp_sin", "log_sqrt", "cos_tanh", "sigmoid", "pow_div", "sum_mean", "var_std",
                                  "logsumexp", "softmax", "log_softmax", "indexing", "concat_stack",
                                  "broadcast_squeeze", "prod", "max_min", "abs_relu", "where_maximum", "shapes"])
@pytest.mark.filterwarnings("ignore:Output seems independent of input")
@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_hessian_matches_autograd(name, data):
    f_dp, f_ag, (lo, hi, nonzero, unique) = UNARY_PAIRS[name]
    x = data.draw(grid((2, 3), lo, hi, nonzero=nonzero, unique=unique))
    expected = autograd.hessian(f_ag)(x)
    got = dp.hessian(f_dp)(x)
    assert got.shape == (2, 3, 2, 3)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-8, atol=1e-10)


BINARY_PAIRS = {
    "arith": (lambda a, b: ((a + b) * (a - b) / (b * b + 1)).sum(),
              lambda a, b: anp.sum((a + b) * (a - b) / (b * b + 1))),
    "pow": (lambda a, b: ((a * a + 0.5) ** b).sum(), lambda a, b: anp.sum((a * a + 0.5) ** b)),
    "maximum": (lambda a, b: (dp.maximum(a, b + 0.05) * dp.minimum(a, b + 0.05)).sum(),
                lambda a, b: anp.sum(anp.maximum(a, b + 0.05) * anp.minimum(a, b + 0.05))),
    "where": (lambda a, b: dp.where(a > b, a * b, a + b).sum(),
              lambda a, b: anp.sum(anp.where(a > b, a * b, a + b))),
}


@pytest.mark.parametrize("name", sorted(BINARY_PAIRS))
@SETTINGS
@given(data=st.data(), sh=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=1, max_dims=3, max_side=3))
def test_binary_broadcast_grads_match_autograd(name, data, sh):
    f_dp, f_ag = BINARY_PAIRS[name]
    sa, sb = sh.input_shapes
    a = data.draw(grid(sa, -2, 2))
    b = data.draw(grid(sb, -2, 2))
    ga, gb = autograd.grad(f_ag, argnum=0)(a, b), autograd.grad(f_ag, argnum=1)(a, b)
    got = dp_grad_backward(f_dp, a, b)
    np.testing.assert_allclose(got[0], ga, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got[1], gb, rtol=1e-10, atol=1e-12)
    g2 = dp.grad(f_dp, argnums=(0, 1))(a, b)
    assert isinstance(g2, tuple) and len(g2) == 2
    np.testing.assert_allclose(g2[0].numpy(), ga, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(g2[1].numpy(), gb, rtol=1e-10, atol=1e-12)


@SETTINGS
@given(data=st.data(), m=st.integers(1, 3), k=st.integers(1, 3), n=st.integers(1, 3),
       batch=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=2, max_side=3))
def test_matmul_grads_match_autograd(data, m, k, n, batch):
    ba, bb = batch.input_shapes
    a = data.draw(grid(ba + (m, k), -2, 2))
    b = data.draw(grid(bb + (k, n), -2, 2))
    v = data.draw(grid((k,), -2, 2))

    def f_ag(a_, b_, v_):
        return anp.sum(anp.tanh(a_ @ b_)) + anp.sum((v_ @ b_) ** 2) + anp.sum(a_ @ v_)

    def f_dp(a_, b_, v_):
        return (a_ @ b_).tanh().sum() + ((v_ @ b_) ** 2).sum() + (a_ @ v_).sum()
    got = dp_grad_backward(f_dp, a, b, v)
    for i in range(3):
        np.testing.assert_allclose(got[i], autograd.grad(f_ag, argnum=i)(a, b, v), rtol=1e-10, atol=1e-12)


@SETTINGS
@given(x=grid((5,), -2, 2))
def test_elementwise_grad_matches_autograd(x):
    """dp.jacobian of an elementwise function is diagonal, with autograd.elementwise_grad on it."""
    def f_ag(v):
        return anp.sin(v) * anp.exp(v) + v ** 3

    def f_dp(v):
        return dp.sin(v) * dp.exp(v) + v ** 3
    expected = autograd.elementwise_grad(f_ag)(x)
    for mode in ("rev", "fwd"):
        J = dp.jacobian(f_dp, mode=mode)(x).numpy()
        np.testing.assert_allclose(np.diag(J), expected, rtol=1e-12)
        np.testing.assert_allclose(J - np.diag(np.diag(J)), 0, atol=0)
    _, t = dp.jvp(f_dp, (x,), (np.ones_like(x),))
    np.testing.assert_allclose(t.numpy(), expected, rtol=1e-12)


@SETTINGS
@given(data=st.data(), n=st.integers(1, 4), m=st.integers(1, 4))
def test_jacobian_matches_autograd(data, n, m):
    W = data.draw(grid((m, n), -1, 1))
    x = data.draw(grid((n,), -2, 2))

    def f_ag(v):
        h = anp.tanh(W @ v)
        return a_softmax(h * 2) + anp.cumsum(h)[-1] * 0

    def f_dp(v):
        return F.softmax(dp.tanh(dp.tensor(W) @ v) * 2)
    expected = autograd.jacobian(f_ag)(x)
    for mode in ("rev", "fwd"):
        J = dp.jacobian(f_dp, mode=mode)(x)
        assert J.shape == (m, n)
        np.testing.assert_allclose(J.numpy(), expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@SETTINGS
@given(data=st.data(), n=st.integers(1, 4), c=st.integers(2, 4))
def test_losses_match_autograd(reduction, data, n, c):
    x = data.draw(grid((n, c), -3, 3))
    labels = data.draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, c - 1)))
    onehot = np.eye(c)[labels]
    red = anp.mean if reduction == "mean" else anp.sum

    def ce_ag(v):
        return red(a_logsumexp(v, axis=1) - anp.sum(v * onehot, axis=1))
    (got,) = dp_grad_backward(lambda t: F.cross_entropy(t, labels, reduction=reduction), x)
    np.testing.assert_allclose(got, autograd.grad(ce_ag)(x), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dp.hessian(lambda t: F.cross_entropy(t, labels, reduction=reduction))(x).numpy(),
                               autograd.hessian(ce_ag)(x), rtol=1e-8, atol=1e-10)

    y = data.draw(grid((n, c), 0, 1))
    p = data.draw(grid((n, c), 0.1, 0.9))

    def bce_ag(q, t):
        return red(-(t * anp.log(q) + (1 - t) * anp.log(1 - q)))

    def bcel_ag(z, t):
        return red(anp.maximum(z, 0) - z * t + anp.log1p(anp.exp(-anp.abs(z))))

    def mse_ag(a, b):
        return red((a - b) ** 2)
    for f_dp, f_ag, first in [(F.binary_cross_entropy, bce_ag, p), (F.binary_cross_entropy_with_logits, bcel_ag, x),
                              (F.mse_loss, mse_ag, x)]:
        got = dp_grad_backward(lambda a, b: f_dp(a, b, reduction=reduction), first, y)
        np.testing.assert_allclose(got[0], autograd.grad(f_ag, 0)(first, y), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(got[1], autograd.grad(f_ag, 1)(first, y), rtol=1e-9, atol=1e-12)
