"""Functional transforms: grad, value_and_grad, vjp, jvp, jacobian (both modes), hessian,
higher order (grad of grad, create_graph), and the seeds' example exp(sin(x^2))."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import deltaprop as dp

F = dp.nn.functional
SETTINGS = settings(max_examples=25, deadline=None)


def t64(x, requires_grad=False):
    return dp.tensor(np.asarray(x, np.float64), requires_grad=requires_grad)


def grid(shape, lo, hi, *, nonzero=False, unique=False):
    ints = st.integers(int(round(lo * 10)), int(round(hi * 10)))
    if nonzero:
        ints = ints.filter(lambda i: i != 0)
    return hnp.arrays(np.int64, shape, elements=ints, unique=unique).map(lambda a: a / 10.0)


# -- the seeds' example ------------------------------------------------------------------------
def seed_f(x):
    return dp.exp(dp.sin(x ** 2))


def seed_df(x):
    return np.exp(np.sin(x ** 2)) * np.cos(x ** 2) * 2 * x


def seed_d2f(x):
    # d/dx [e^{sin u} cos(u) 2x], u = x^2
    u = x * x
    return np.exp(np.sin(u)) * (4 * x * x * np.cos(u) ** 2 - 4 * x * x * np.sin(u) + 2 * np.cos(u))


XS = [-2.0, -1.3, -0.5, 0.0, 0.3, 1.0, 1.7, 2.5]


@pytest.mark.parametrize("x", XS)
def test_seed_example_every_way(x):
    expected = seed_df(x)
    # backward
    t = t64(x, requires_grad=True)
    y = seed_f(t)
    np.testing.assert_allclose(y.item(), np.exp(np.sin(x * x)), rtol=1e-14)
    y.backward()
    np.testing.assert_allclose(t.grad.item(), expected, rtol=1e-12, atol=1e-14)
    # dp.grad
    g = dp.grad(seed_f)(np.float64(x))
    assert isinstance(g, dp.Tensor) and g.shape == ()
    np.testing.assert_allclose(g.item(), expected, rtol=1e-12, atol=1e-14)
    # dp.jvp (forward mode)
    out, tan = dp.jvp(seed_f, (np.float64(x),), (np.float64(1.0),))
    np.testing.assert_allclose(out.item(), np.exp(np.sin(x * x)), rtol=1e-14)
    np.testing.assert_allclose(tan.item(), expected, rtol=1e-12, atol=1e-14)
    # both jacobian modes
    for mode in ("rev", "fwd"):
        J = dp.jacobian(seed_f, mode=mode)(np.float64(x))
        assert J.shape == ()
        np.testing.assert_allclose(J.item(), expected, rtol=1e-12, atol=1e-14)
    # second derivative: grad of grad, and hessian
    np.testing.assert_allclose(dp.grad(dp.grad(seed_f))(np.float64(x)).item(), seed_d2f(x), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dp.hessian(seed_f)(np.float64(x)).item(), seed_d2f(x), rtol=1e-10, atol=1e-12)


def test_seed_example_vectorised():
    x = np.array(XS)
    t = t64(x, requires_grad=True)
    seed_f(t).sum().backward()
    np.testing.assert_allclose(t.grad.numpy(), seed_df(x), rtol=1e-12, atol=1e-14)
    _, tan = dp.jvp(seed_f, (x,), (np.ones_like(x),))
    np.testing.assert_allclose(tan.numpy(), seed_df(x), rtol=1e-12, atol=1e-14)
    for mode in ("rev", "fwd"):
        np.testing.assert_allclose(dp.jacobian(seed_f, mode=mode)(x).numpy(), np.diag(seed_df(x)), rtol=1e-12,
                                   atol=1e-14)
    np.testing.assert_allclose(dp.hessian(lambda v: seed_f(v).sum())(x).numpy(), np.diag(seed_d2f(x)), rtol=1e-10,
                               atol=1e-12)


def test_seed_example_in_float32_default():
    t = dp.tensor(1.0, requires_grad=True)
    assert t.dtype == np.float32
    seed_f(t).backward()
    assert t.grad.dtype == np.float32
    np.testing.assert_allclose(t.grad.item(), seed_df(1.0), rtol=1e-5)


# -- jvp against vjp, and the two jacobian modes -------------------------------------------------
FUNCS = {
    "elementwise": (lambda x: dp.tanh(x) * dp.exp(-x * x) + x.sigmoid(), (4,)),
    "matmul": (lambda x: dp.tensor(np.arange(12.0).reshape(3, 4) / 10) @ x.tanh(), (4,)),
    "matmul_self": (lambda x: x @ x.T, (2, 3)),
    "reductions": (lambda x: dp.stack([x.sum(axis=0), x.mean(axis=0), x.max(axis=0), x.var(axis=0),
                                       dp.logsumexp(x, axis=0), x.prod(axis=0)]), (3, 2)),
    "shape_ops": (lambda x: dp.concatenate([x.T.reshape(-1), x[1:, ::-1].flatten(), x.unsqueeze(0).squeeze()
                                            .sum(axis=1)]) * 2.0, (3, 2)),
    "indexing": (lambda x: x[[0, 0, 2]] * x[np.array([1, 1, 1])] + x[x.numpy() > 0].sum(), (3,)),
    "softmax": (lambda x: F.softmax(x, axis=-1) * F.log_softmax(x, axis=0), (2, 3)),
    "losses": (lambda x: dp.stack([F.cross_entropy(x, np.array([0, 2])), F.mse_loss(x, x * x),
                                   F.binary_cross_entropy_with_logits(x, dp.zeros_like(x))]), (2, 3)),
    "where_clip": (lambda x: dp.where(x > 0, x ** 3, dp.clip(x, -0.55, 0.55)) + dp.maximum(x, x * 0.5), (4,)),
}


@pytest.mark.parametrize("name", sorted(FUNCS))
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_jvp_vjp_duality_and_jacobian_modes(name, data):
    f, shape = FUNCS[name]
    x = data.draw(grid(shape, -1.5, 1.5, nonzero=True, unique=True))
    v = data.draw(hnp.arrays(np.float64, shape, elements=st.floats(-1, 1)))
    out, jv = dp.jvp(f, (x,), (v,))
    assert jv.shape == out.shape
    u = data.draw(hnp.arrays(np.float64, out.shape, elements=st.floats(-1, 1)))
    out2, vjp_fn = dp.vjp(f, x)
    np.testing.assert_allclose(out2.numpy(), out.numpy(), rtol=1e-14)
    (jtu,) = vjp_fn(u)
    assert jtu.shape == x.shape
    np.testing.assert_allclose(np.sum(u * jv.numpy()), np.sum(jtu.numpy() * v), rtol=1e-9, atol=1e-10)
    jr = dp.jacobian(f, mode="rev")(x)
    jf = dp.jacobian(f, mode="fwd")(x)
    assert jr.shape == out.shape + x.shape
    assert jf.shape == out.shape + x.shape
    np.testing.assert_allclose(jr.numpy(), jf.numpy(), rtol=1e-10, atol=1e-12)
    # J v from the Jacobian matches jvp
    jm = jr.numpy().reshape(out.size, x.size)
    np.testing.assert_allclose(jm @ v.reshape(-1), jv.numpy().reshape(-1), rtol=1e-9, atol=1e-12)


def test_jacobian_default_mode_and_known_value():
    A = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    J = dp.jacobian(lambda x: dp.tensor(A) @ x)(np.array([0.1, 0.2]))
    np.testing.assert_array_equal(J.numpy(), A)
    with pytest.raises(ValueError):
        dp.jacobian(lambda x: x, mode="sideways")


def test_jvp_with_several_primals():
    a, b = np.array([1.0, 2.0]), np.array([3.0, -1.0])
    ta, tb = np.array([0.5, 1.0]), np.array([2.0, 0.0])
    out, t = dp.jvp(lambda x, y: x * y + x.exp(), (a, b), (ta, tb))
    np.testing.assert_allclose(out.numpy(), a * b + np.exp(a))
    np.testing.assert_allclose(t.numpy(), ta * b + a * tb + np.exp(a) * ta)


# -- hessians ------------------------------------------------------------------------------------
def fd_hessian(f, x, eps=1e-5):
    """Central differences of dp.grad(f): an independent check of the second derivatives."""
    x = np.asarray(x, np.float64)
    H = np.zeros(x.shape + x.shape)
    for idx in np.ndindex(*x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += eps
        xm[idx] -= eps
        H[(Ellipsis,) + idx] = (dp.grad(f)(xp).numpy() - dp.grad(f)(xm).numpy()) / (2 * eps)
    return H


W = np.array([[0.3, -0.2, 0.5], [0.1, 0.4, -0.6]])
HESS = {
    "exp_sin": lambda x: (dp.exp(x) * dp.sin(x)).sum(),
    "log_sqrt": lambda x: (dp.log(x * x + 1) + dp.sqrt(x * x + 2)).sum(),
    "tanh_sigmoid": lambda x: (dp.tanh(x) * dp.sigmoid(x) + dp.cos(x) * x ** 3).sum(),
    "div_pow": lambda x: (1.0 / (x * x + 1) + (x * x + 1) ** 1.5 + 2.0 ** x).sum(),
    "log1p": lambda x: dp.log1p(x * x).sum(),
    "matmul": lambda x: ((dp.tensor(W) @ x.reshape(3, 2)) ** 2).sum() + (x @ x) * x.sum(),
    "reductions": lambda x: x.sum() ** 2 + x.mean() * x.var() + x.std() + dp.logsumexp(x) + x.prod()
    + x.reshape(2, 3).max(axis=1).sum() ** 2,
    "shape_ops": lambda x: (x.reshape(2, 3).T.flatten() * dp.arange(6.0, dtype=np.float64)).sum() ** 2
    + (dp.transpose(x.reshape(3, 2), (1, 0)) ** 3).sum() + (dp.swapaxes(x.reshape(2, 3), 0, 1) ** 3).sum()
    + (dp.broadcast_to(x[None], (2, 6)) ** 2).sum() + dp.expand_dims(x, 0).squeeze(0).prod()
    + (dp.concatenate([x, x ** 2]) ** 2).sum() + (dp.stack([x, x * x]) ** 2).sum()
    + sum((p ** 3).sum() for p in dp.split(x, 3)),
    "indexing": lambda x: (x[[0, 0, 5]] ** 3).sum() + (x[1:4] * x[::-1][:3]).sum() + (x[x.numpy() > 0] ** 4).sum(),
    "softmax": lambda x: (F.softmax(x.reshape(2, 3), axis=-1) * dp.tensor(W)).sum(),
    "log_softmax": lambda x: (F.log_softmax(x.reshape(2, 3), axis=0) * dp.tensor(W)).sum(),
    "cross_entropy": lambda x: F.cross_entropy(x.reshape(2, 3), np.array([2, 0])),
    "cross_entropy_sum": lambda x: F.cross_entropy(x.reshape(3, 2), np.array([1, 0, 1]), reduction="sum"),
    "mse_loss": lambda x: F.mse_loss(x.exp(), dp.tensor(np.arange(6.0) / 6)),
    "bce_logits": lambda x: F.binary_cross_entropy_with_logits(x, dp.tensor(np.linspace(0, 1, 6))),
    "where_max_min": lambda x: (dp.where(x > 0, x ** 3, x ** 2) + dp.maximum(x, -x * 0.5) ** 2
                                + dp.minimum(x * x, 0.5 + x)).sum(),
}


@pytest.mark.parametrize("name", sorted(HESS))
@settings(max_examples=8, deadline=None)
@given(x=grid((6,), -1.5, 1.5, nonzero=True, unique=True))
def test_hessian_against_finite_differences_of_grad(name, x):
    f = HESS[name]
    H = dp.hessian(f)(x)
    assert H.shape == (6, 6)
    Hn = H.numpy()
    np.testing.assert_allclose(Hn, Hn.T, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(Hn, fd_hessian(f, x), rtol=1e-5, atol=1e-6)


def test_hessian_analytic_values():
    x = np.array([0.3, -0.7, 1.2])
    np.testing.assert_allclose(dp.hessian(lambda v: dp.sin(v).sum())(x).numpy(), np.diag(-np.sin(x)), atol=1e-14)
    np.testing.assert_allclose(dp.hessian(lambda v: (v ** 4).sum())(x).numpy(), np.diag(12 * x ** 2), rtol=1e-12)
    A = np.array([[2.0, 1.0, 0.0], [1.0, 3.0, -1.0], [0.0, -1.0, 4.0]])
    np.testing.assert_allclose(dp.hessian(lambda v: 0.5 * (v @ (dp.tensor(A) @ v)))(x).numpy(), A, rtol=1e-12)
    # sum(x)^2 has the all-twos Hessian; x0 * x1 * x2 has the off-diagonal products
    np.testing.assert_allclose(dp.hessian(lambda v: v.sum() ** 2)(x).numpy(), np.full((3, 3), 2.0))
    np.testing.assert_allclose(dp.hessian(lambda v: v.prod())(x).numpy(),
                               [[0, x[2], x[1]], [x[2], 0, x[0]], [x[1], x[0], 0]], rtol=1e-12, atol=1e-15)
    # softmax cross-entropy: (diag(p) - p p^T) / N
    z = np.array([[0.2, -1.0, 0.5], [1.5, 0.1, -0.3]])
    H = dp.hessian(lambda v: F.cross_entropy(v, np.array([0, 2])))(z).numpy()
    assert H.shape == (2, 3, 2, 3)
    for i in range(2):
        p = np.exp(z[i]) / np.exp(z[i]).sum()
        np.testing.assert_allclose(H[i, :, i, :], (np.diag(p) - np.outer(p, p)) / 2, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(H[0, :, 1, :], 0, atol=1e-14)
    # mse: 2/n identity
    np.testing.assert_allclose(dp.hessian(lambda v: F.mse_loss(v, dp.tensor(np.zeros(3))))(x).numpy(),
                               np.eye(3) * 2 / 3, rtol=1e-12)
    # a matrix input: shape x.shape + x.shape
    M = np.array([[1.0, 2.0], [3.0, 4.0]])
    Hm = dp.hessian(lambda m: (m ** 3).sum())(M)
    assert Hm.shape == (2, 2, 2, 2)
    expected = np.zeros((2, 2, 2, 2))
    for i, j in np.ndindex(2, 2):
        expected[i, j, i, j] = 6 * M[i, j]
    np.testing.assert_allclose(Hm.numpy(), expected)


# -- grad of grad and create_graph ----------------------------------------------------------------
def test_grad_of_grad_and_third_order():
    f = lambda x: x ** 4 + dp.sin(x)  # noqa: E731
    for x in [0.5, -1.2, 2.0]:
        np.testing.assert_allclose(dp.grad(f)(np.float64(x)).item(), 4 * x ** 3 + np.cos(x), rtol=1e-12)
        np.testing.assert_allclose(dp.grad(dp.grad(f))(np.float64(x)).item(), 12 * x ** 2 - np.sin(x), rtol=1e-12)
        np.testing.assert_allclose(dp.grad(dp.grad(dp.grad(f)))(np.float64(x)).item(), 24 * x - np.cos(x),
                                   rtol=1e-12)


def test_backward_create_graph_then_differentiate_grad_again():
    x = t64([0.5, -1.0, 2.0], requires_grad=True)
    y = (x ** 3 + dp.exp(x)).sum()
    y.backward(create_graph=True)
    g = x.grad
    np.testing.assert_allclose(g.numpy(), 3 * x.numpy() ** 2 + np.exp(x.numpy()))
    assert g.requires_grad
    x.grad = None
    (g * dp.tensor(np.array([1.0, 2.0, 3.0]))).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), (6 * x.numpy() + np.exp(x.numpy())) * [1, 2, 3], rtol=1e-12)


def test_create_graph_gradient_penalty_through_matmul_and_softmax():
    # d/dW of ||d loss/d x||^2, a typical double-backward use, against finite differences
    rng = np.random.default_rng(1)
    X, W0 = rng.normal(size=(2, 3)), rng.normal(size=(3, 4))

    def penalty(w):
        x = t64(X, requires_grad=True)
        loss = F.cross_entropy(x @ w, np.array([1, 3]))
        (gx,) = dp.vjp(lambda v: F.cross_entropy(v @ w, np.array([1, 3])), x)[1](np.float64(1.0))
        del loss
        return (gx ** 2).sum()

    w = t64(W0, requires_grad=True)
    x = t64(X, requires_grad=True)
    loss = F.cross_entropy(x @ w, np.array([1, 3]))
    loss.backward(create_graph=True)
    gp = (x.grad ** 2).sum()
    w.grad = None
    gp.backward()
    eps = 1e-6
    num = np.zeros_like(W0)
    for idx in np.ndindex(*W0.shape):
        wp, wm = W0.copy(), W0.copy()
        wp[idx] += eps
        wm[idx] -= eps
        num[idx] = (penalty(t64(wp)).item() - penalty(t64(wm)).item()) / (2 * eps)
    np.testing.assert_allclose(w.grad.numpy(), num, rtol=1e-5, atol=1e-8)


# -- value_and_grad, grad argnums, vjp ---------------------------------------------------------------
def test_value_and_grad_argnums_int_and_tuple():
    a, b = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    f = lambda x, y: (x * x * y).sum()  # noqa: E731
    v, g = dp.value_and_grad(f)(a, b)
    assert v.item() == 1 * 3 + 4 * 4
    np.testing.assert_array_equal(g.numpy(), 2 * a * b)
    v, g = dp.value_and_grad(f, argnums=1)(a, b)
    np.testing.assert_array_equal(g.numpy(), a * a)
    v, gs = dp.value_and_grad(f, argnums=(0, 1))(a, b)
    assert isinstance(gs, tuple) and len(gs) == 2
    np.testing.assert_array_equal(gs[0].numpy(), 2 * a * b)
    np.testing.assert_array_equal(gs[1].numpy(), a * a)
    gs = dp.grad(f, argnums=(1,))(a, b)
    assert isinstance(gs, tuple) and len(gs) == 1
    np.testing.assert_array_equal(gs[0].numpy(), a * a)


def test_grad_shapes_and_unused_argument():
    x = np.ones((2, 3))
    g = dp.grad(lambda v, w: (v * 2).sum(), argnums=(0, 1))(x, np.ones(4))
    assert g[0].shape == (2, 3) and g[1].shape == (4,)
    np.testing.assert_array_equal(g[1].numpy(), 0)


def test_grad_requires_scalar_output():
    with pytest.raises((TypeError, ValueError, RuntimeError)):
        dp.grad(lambda v: v * 2)(np.ones(3))


def test_vjp_returns_tuple_one_per_primal():
    a, b = np.array([1.0, 2.0, 3.0]), np.array([0.5, -1.0, 2.0])
    out, vjp_fn = dp.vjp(lambda x, y: x * y + x, a, b)
    np.testing.assert_array_equal(out.numpy(), a * b + a)
    ct = np.array([1.0, 10.0, 100.0])
    res = vjp_fn(ct)
    assert isinstance(res, tuple) and len(res) == 2
    np.testing.assert_array_equal(res[0].numpy(), ct * (b + 1))
    np.testing.assert_array_equal(res[1].numpy(), ct * a)
    res2 = vjp_fn(dp.tensor(ct))  # callable again, with a Tensor cotangent
    np.testing.assert_array_equal(res2[1].numpy(), ct * a)
    (single,) = dp.vjp(lambda x: x.exp(), a)[1](np.ones(3))
    np.testing.assert_allclose(single.numpy(), np.exp(a))


def test_transforms_never_touch_grad():
    w = t64([1.0, 2.0], requires_grad=True)
    x = t64([3.0, 4.0], requires_grad=True)
    f = lambda v: (v * w).sum() ** 2  # noqa: E731   w is closed over
    dp.grad(f)(x)
    dp.value_and_grad(f)(x)
    dp.vjp(lambda v: v * w, x)[1](np.ones(2))
    dp.jvp(lambda v: v * w, (x.numpy(),), (np.ones(2),))
    dp.jacobian(lambda v: v * w)(x)
    dp.jacobian(lambda v: v * w, mode="fwd")(x)
    dp.hessian(f)(x)
    dp.gradcheck(lambda v: v * w, t64([1.0, 2.0], requires_grad=True))
    assert w.grad is None and x.grad is None
    # existing grads are left exactly as they were
    (w * x).sum().backward()
    before_w, before_x = w.grad.numpy(), x.grad.numpy()
    dp.grad(f)(x)
    dp.hessian(f)(x)
    np.testing.assert_array_equal(w.grad.numpy(), before_w)
    np.testing.assert_array_equal(x.grad.numpy(), before_x)


def test_grad_of_tensor_argument_returns_correct_values():
    x = t64([1.0, 2.0], requires_grad=True)
    g = dp.grad(lambda v: (v ** 3).sum())(x)
    np.testing.assert_allclose(g.numpy(), 3 * x.numpy() ** 2)
    assert x.grad is None


def test_transforms_compose_jacobian_of_grad_is_hessian():
    f = lambda v: (dp.sin(v) * v.sum()).sum()  # noqa: E731
    x = np.array([0.2, -0.4, 0.9])
    H1 = dp.hessian(f)(x).numpy()
    H2 = dp.jacobian(dp.grad(f))(x).numpy()
    np.testing.assert_allclose(H1, H2, rtol=1e-12)
    np.testing.assert_allclose(H1, fd_hessian(f, x), rtol=1e-6, atol=1e-8)


def test_forward_over_reverse_hessian():
    f = lambda v: (dp.sin(v) * v.sum()).sum()  # noqa: E731
    x = np.array([0.2, -0.4, 0.9])
    H = dp.jacobian(dp.grad(f), mode="fwd")(x).numpy()
    np.testing.assert_allclose(H, dp.hessian(f)(x).numpy(), rtol=1e-10)


def test_jvp_of_grad_and_jvp_of_jvp():
    x = np.array([1.0, 2.0])
    _, t = dp.jvp(dp.grad(lambda v: (v ** 3).sum()), (x,), (np.ones(2),))
    np.testing.assert_allclose(t.numpy(), 6 * x)
    # nested forward mode is not supported: it says so rather than returning zeros
    with pytest.raises(NotImplementedError, match="nested forward mode"):
        dp.jvp(lambda y: dp.jvp(lambda v: v ** 3, (y,), (np.ones(2),))[1], (x,), (np.ones(2),))


def test_hessian_of_prod_with_a_zero_element_is_refused_not_wrong():
    # the zero-safe VJP of prod is exact for first derivatives but not differentiable again:
    # a clear error instead of silently-zero second derivatives
    with pytest.raises(NotImplementedError, match="prod"):
        dp.hessian(lambda v: v.prod())(np.array([0.0, 2.0, 3.0]))
    np.testing.assert_allclose(dp.hessian(lambda v: v.prod())(np.array([1.0, 2.0, 3.0])).numpy(),
                               [[0, 3, 2], [3, 0, 1], [2, 1, 0]])


def test_prod_first_derivative_with_zeros_is_exact():
    for xv, expected in [([0.0, 2.0, 3.0], [6.0, 0.0, 0.0]), ([0.0, 2.0, 0.0], [0.0, 0.0, 0.0]),
                         ([1.0, -2.0, 4.0], [-8.0, 4.0, -2.0])]:
        x = t64(xv, requires_grad=True)
        x.prod().backward()
        np.testing.assert_array_equal(x.grad.numpy(), expected)
        _, t = dp.jvp(lambda v: v.prod(), (np.array(xv),), (np.ones(3),))
        assert t.item() == sum(expected)


@pytest.mark.parametrize("reduction", ["sum", "mean", "none"])
def test_jvp_vjp_duality_for_losses_in_both_arguments(reduction):
    p, y = np.array([0.2, 0.7, 0.4]), np.array([1.0, 0.5, 0.0])
    tp, ty = np.array([0.3, -0.2, 0.1]), np.array([1.0, 2.0, -1.0])
    for f, first in [(F.binary_cross_entropy_with_logits, p * 3 - 1), (F.mse_loss, p)]:
        g = lambda a, b: f(a, b, reduction=reduction)  # noqa: E731
        out, t = dp.jvp(g, (first, y), (tp, ty))
        u = np.linspace(0.5, 1.5, out.size).reshape(out.shape)
        _, vf = dp.vjp(g, first, y)
        ga, gb = vf(u)
        np.testing.assert_allclose(np.sum(u * t.numpy()), np.sum(ga.numpy() * tp) + np.sum(gb.numpy() * ty),
                                   rtol=1e-10)


def test_jvp_of_binary_cross_entropy_in_the_target():
    p, y = np.array([0.2, 0.7]), np.array([1.0, 0.5])
    tp, ty = np.array([0.3, -0.2]), np.array([1.0, 2.0])
    f = lambda a, b: F.binary_cross_entropy(a, b, reduction="sum")  # noqa: E731
    _, t = dp.jvp(f, (p, y), (tp, ty))
    _, vf = dp.vjp(f, p, y)
    gp, gy = vf(np.float64(1.0))
    np.testing.assert_allclose(t.item(), np.sum(gp.numpy() * tp) + np.sum(gy.numpy() * ty), rtol=1e-10)
    _, t2 = dp.jvp(lambda b: F.binary_cross_entropy(dp.tensor(p), b, reduction="sum"), (y,), (ty,))
    np.testing.assert_allclose(t2.item(), np.sum(gy.numpy() * ty), rtol=1e-10)


def test_nested_grad_reaching_the_outer_variable_through_a_closure():
    # d/dy of d/dp (p^2 y^3) at p = 2 is 2 p * 3 y^2; the inner grad only sees y through a closure
    f = lambda p, y: (p * p * y ** 3).sum()
    p = np.array([2.0])
    y = dp.tensor(np.array([1.5]))
    got = dp.grad(lambda yy: dp.grad(f, argnums=0)(p, yy).sum())(y)
    np.testing.assert_allclose(got.data, [2 * 2.0 * 3 * 1.5 ** 2])
    got = dp.grad(lambda yy: dp.grad(lambda q: f(q, yy))(p).sum())(y)
    np.testing.assert_allclose(got.data, [2 * 2.0 * 3 * 1.5 ** 2])
    h = dp.hessian(lambda v: (v ** 3).sum())(np.array([1.0, 2.0]))
    np.testing.assert_allclose(h.data, np.diag([6.0, 12.0]))
