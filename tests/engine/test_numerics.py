"""Numerical edge cases of the ops, values and gradients, against PyTorch (the `torch` fixture)
or exact values: cross-entropy at large logits, integer inputs of float-only ops (the default
float dtype), float16 tanh-GELU, 0-d inputs, degenerate reductions (var/std with ddof >= n,
prod and logsumexp over nothing), and the gradients of a**b at a <= 0.

Each gradient is taken three ways, by the fast VJP (a plain backward), again through the retained
graph (the fast VJP without what the forward kept) and by the reference VJP (create_graph=True);
where it is finite the JVP is checked against it: <g, J t> = <J^T g, t>.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import deltaprop as dp
import deltaprop.nn.functional as F


@pytest.fixture(autouse=True)
def _quiet():
    """The edge cases here warn by design (NumPy's log of 0, ddof >= n, 0 * inf); PyTorch warns too."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.filterwarnings("ignore", "(var|std)\\(\\): degrees of freedom", UserWarning)  # (PyTorch's)
        with np.errstate(all="ignore"):
            yield


@pytest.fixture
def default_float64():
    old = dp.get_default_dtype()
    dp.set_default_dtype(np.float64)
    yield
    dp.set_default_dtype(old)


def _same(actual, expected, rtol=1e-6, atol=0.0, dtype=None):
    """Equal shapes (and dtype if given), nan in the same places, inf of the same sign, else close."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    if dtype is not None:
        assert actual.dtype == dtype, (actual.dtype, dtype)
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected), err_msg=f"{actual} vs {expected}")
    np.testing.assert_allclose(actual.astype(np.float64), expected.astype(np.float64), rtol=rtol, atol=atol)


def _dp(f, *arrays, g=None):
    """f's value and the gradients of its inputs (ndarrays, dtypes kept) for upstream g (ones by
    default), by the fast VJP; the reference VJP (create_graph) must give the same numbers, and so
    must a second backward through a retained graph (the fast VJP without what the forward kept)."""
    results = []
    for create_graph in (False, True):
        ts = [dp.tensor(a, requires_grad=True) for a in arrays]
        y = f(*ts)
        gy = np.ones(y.shape, y.dtype) if g is None else np.asarray(g, y.dtype)
        y.backward(gy, create_graph=create_graph, retain_graph=True)
        results.append((y.data, [np.asarray(t.grad.data) for t in ts]))
        if not create_graph:
            for t in ts:
                t.grad = None
            y.backward(gy)
            for a, t in zip(results[0][1], ts):
                _same(t.grad.data, a, rtol=0)
    (value, fast), (_, ref) = results
    for a, b in zip(fast, ref):  # (the two formulas may round differently: float32 1e-7 absolute)
        _same(a, b, **{np.float16: dict(rtol=1e-3, atol=1e-4), np.float32: dict(rtol=1e-5, atol=1e-7)}.get(
            a.dtype.type, dict(rtol=1e-12, atol=1e-15)))
    return value, fast


def _torch(torch, f, *arrays, g=None):
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    y = f(*ts)
    y.backward(torch.ones_like(y) if g is None else torch.tensor(np.asarray(g), dtype=y.dtype))
    return y.detach().numpy(), [t.grad.numpy() for t in ts]


def _jvp_agrees(f, arrays, grads, g=None, rtol=1e-5, seed=0):
    """<g, J t> by forward mode equals <J^T g, t> from the VJP's gradients, for a random t."""
    rng = np.random.default_rng(seed)
    tangents = tuple(rng.standard_normal(np.shape(a)).astype(np.asarray(a).dtype) for a in arrays)
    _, tout = dp.jvp(f, tuple(arrays), tangents)
    t = tout.data.astype(np.float64)
    gg = np.ones(t.shape) if g is None else np.asarray(g, np.float64)
    lhs = float(np.sum(gg * t))
    rhs = float(sum(np.sum(gr.astype(np.float64) * tg) for gr, tg in zip(grads, tangents)))
    assert math.isclose(lhs, rhs, rel_tol=rtol, abs_tol=1e-6), (lhs, rhs)


# -- 1. cross-entropy at large logits ------------------------------------------------------------
EXACT_CE = math.log(1 + math.exp(-1) + math.exp(-2))  # 0.40760596...: logits (m, m-1, m-2), label 0


@pytest.mark.parametrize("dtype, top, tol", [(np.float16, 300, 1e-3), (np.float32, 1e6, 1e-3),
                                             (np.float64, 1e15, 1e-12)])
def test_cross_entropy_of_large_logits_is_exact(dtype, top, tol):
    x = np.array([[top, top - 1, top - 2]], dtype)
    value, (gx,) = _dp(lambda t: F.cross_entropy(t, np.array([0])), x)
    assert value.dtype == dtype
    assert abs(float(value) - EXACT_CE) <= tol  # (a sum before the max subtraction gave 0.5 in float16)
    p = np.exp([0.0, -1.0, -2.0]) / np.exp([0.0, -1.0, -2.0]).sum()
    _same(gx, [p - [1, 0, 0]], rtol=1e-3 if dtype == np.float16 else 1e-6, atol=1e-3 if dtype == np.float16 else 0)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("dtype, offset", [(np.float16, 200.0), (np.float32, 1e4), (np.float32, 0.0),
                                           (np.float64, 1e8)])
def test_cross_entropy_matches_torch(torch, reduction, dtype, offset):
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((5, 4)) * 3 + offset).astype(dtype)
    labels = rng.integers(0, 4, 5)
    g = rng.standard_normal(5).astype(dtype) if reduction == "none" else None
    value, (gx,) = _dp(lambda t: F.cross_entropy(t, labels, reduction=reduction), x, g=g)
    tv, (tg,) = _torch(torch, lambda t: torch.nn.functional.cross_entropy(
        t, torch.tensor(labels), reduction=reduction), x, g=g)
    tol = dict(rtol=2e-3, atol=2e-3) if dtype == np.float16 else dict(rtol=1e-5, atol=1e-6)
    _same(value, tv, dtype=dtype, **tol)
    _same(gx, tg, **tol)
    if dtype == np.float64:
        _jvp_agrees(lambda t: F.cross_entropy(t, labels, reduction=reduction), [x], [gx], g=g)


# -- 2. integer inputs of float-only ops: the default float dtype ------------------------------
FLOAT_OPS = {  # name: (deltaprop, torch on float64, positive inputs only)
    "exp": (dp.exp, lambda T, t: T.exp(t)),
    "log": (dp.log, lambda T, t: T.log(t)),
    "log1p": (dp.log1p, lambda T, t: T.log1p(t)),
    "sqrt": (dp.sqrt, lambda T, t: T.sqrt(t)),
    "sin": (dp.sin, lambda T, t: T.sin(t)),
    "cos": (dp.cos, lambda T, t: T.cos(t)),
    "tanh": (dp.tanh, lambda T, t: T.tanh(t)),
    "sigmoid": (dp.sigmoid, lambda T, t: T.sigmoid(t)),
    "softplus": (F.softplus, lambda T, t: T.nn.functional.softplus(t)),
    "gelu": (F.gelu, lambda T, t: T.nn.functional.gelu(t)),
    "gelu_tanh": (lambda x: F.gelu(x, approximate="tanh"), lambda T, t: T.nn.functional.gelu(t, approximate="tanh")),
    "leaky_relu": (F.leaky_relu, lambda T, t: T.nn.functional.leaky_relu(t)),
    "softmax": (F.softmax, lambda T, t: T.softmax(t, -1)),
    "log_softmax": (F.log_softmax, lambda T, t: T.log_softmax(t, -1)),
    "logsumexp": (lambda x: dp.logsumexp(x, axis=1), lambda T, t: T.logsumexp(t, 1)),
    "logsumexp_all": (dp.logsumexp, lambda T, t: T.logsumexp(t, (0, 1))),
    "mean": (dp.mean, lambda T, t: T.mean(t)),
    "mean_axis": (lambda x: dp.mean(x, axis=0), lambda T, t: T.mean(t, 0)),
    "var": (dp.var, lambda T, t: T.var(t, correction=0)),
    "var_ddof1": (lambda x: dp.var(x, axis=1, ddof=1), lambda T, t: T.var(t, 1, correction=1)),
    "std": (dp.std, lambda T, t: T.std(t, correction=0)),
    "std_method": (lambda x: x.std(axis=0, ddof=1), lambda T, t: T.std(t, 0, correction=1)),
    "mse_loss": (lambda x: F.mse_loss(x, x.data[::-1].copy()), lambda T, t: T.nn.functional.mse_loss(t, t.flip(0))),
    "bce_with_logits": (lambda x: F.binary_cross_entropy_with_logits(x, (x.data > 1).astype(x.dtype)),
                        lambda T, t: T.nn.functional.binary_cross_entropy_with_logits(t, (t > 1).double())),
    "cross_entropy": (lambda x: F.cross_entropy(x, np.array([0, 3])),
                      lambda T, t: T.nn.functional.cross_entropy(t, T.tensor([0, 3]))),
}
INTS = np.array([[0, 1, 2, 3], [3, 1, 2, 0]])


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.int8, np.uint8, np.bool_])
@pytest.mark.parametrize("name", sorted(FLOAT_OPS))
def test_integer_input_of_a_float_op_gives_the_default_float_dtype(torch, name, dtype):
    f, ref = FLOAT_OPS[name]
    x = (INTS > 1) if dtype == np.bool_ else INTS.astype(dtype)
    out = f(dp.tensor(x))
    assert out.dtype == dp.get_default_dtype() == np.float32  # not float64/float16 as NumPy, never ints
    expected = ref(torch, torch.tensor(x.astype(np.float64))).numpy()
    _same(out.data, expected, rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize("name", sorted(FLOAT_OPS))
def test_integer_input_follows_set_default_dtype(torch, default_float64, name):
    f, ref = FLOAT_OPS[name]
    out = f(dp.tensor(INTS))
    assert out.dtype == np.float64
    _same(out.data, ref(torch, torch.tensor(INTS.astype(np.float64))).numpy(), rtol=1e-12, atol=1e-14)


def test_gelu_of_integers_is_not_truncated():
    x = dp.tensor(np.array([-2, -1, 0, 1, 2]))
    for approximate in ("none", "tanh"):
        out = F.gelu(x, approximate=approximate)
        assert out.dtype == np.float32
        np.testing.assert_allclose(out.data, [-0.0455, -0.1588, 0.0, 0.8413, 1.9545], atol=2e-4)


def test_binary_cross_entropy_of_integer_probabilities(torch):
    p, y = np.array([0, 1, 1, 0]), np.array([0, 1, 0, 1])
    out = F.binary_cross_entropy(dp.tensor(p), dp.tensor(y))
    assert out.dtype == np.float32
    expected = torch.nn.functional.binary_cross_entropy(torch.tensor(p, dtype=torch.float64),
                                                       torch.tensor(y, dtype=torch.float64))
    _same(out.data, expected.numpy(), rtol=1e-6)


def test_integer_target_takes_the_input_dtype(torch):
    x = np.array([0.5, 1.5, -2.0], np.float32)
    for f, tf in [(F.mse_loss, torch.nn.functional.mse_loss),
                  (F.binary_cross_entropy_with_logits, torch.nn.functional.binary_cross_entropy_with_logits)]:
        value, (gx,) = _dp(lambda t: f(t, np.array([1, 0, 1])), x)
        tv, (tg,) = _torch(torch, lambda t: tf(t, torch.tensor([1, 0, 1]).float()), x)
        _same(value, tv, dtype=np.float32)
        _same(gx, tg)


@pytest.mark.parametrize("fn", [dp.relu, dp.abs, dp.negative, dp.sum, dp.prod, dp.max, dp.min,
                                lambda x: dp.sum(x, axis=0), lambda x: x * 2, lambda x: x + 1])
def test_ops_exact_on_integers_keep_them(fn):
    assert fn(dp.tensor(INTS)).dtype == np.int64


def test_integer_primal_in_forward_mode():
    _, t = dp.jvp(F.leaky_relu, (np.array([-2, 3]),), (np.array([1, 1]),))
    np.testing.assert_allclose(t.data, [0.01, 1.0])  # (the slope is not truncated to 0)
    _, t = dp.jvp(F.gelu, (np.array([-2, 3]),), (np.array([1, 1]),))
    assert t.dtype == np.float32 and np.all(np.abs(t.data) > 0)


# -- 3. float16 tanh-GELU ------------------------------------------------------------------------
GELU16 = np.array([-100, -79, -5, 0, 5, 79, 100], np.float16)


@pytest.mark.parametrize("approximate", ["tanh", "none"])
def test_float16_gelu_is_computed_in_float32(torch, approximate):
    value, (gx,) = _dp(lambda t: F.gelu(t, approximate=approximate), GELU16)
    assert value.dtype == gx.dtype == np.float16
    assert np.isfinite(gx).all()
    # PyTorch in float32, rounded to float16 (what its half kernels do)
    tv, (tg,) = _torch(torch, lambda t: torch.nn.functional.gelu(t, approximate=approximate),
                       GELU16.astype(np.float32))
    # four float16 subnormal steps: PyTorch's float32 1 + erf(x / sqrt 2) cancels at x = -5, by two to four
    # steps depending on the CPU's vector path (ours, -1.4305e-6, is the float16 nearest the true -1.4333e-6)
    sub = 2.4e-7
    _same(value, tv.astype(np.float16), rtol=1e-3, atol=sub)
    _same(gx, tg.astype(np.float16), rtol=1e-3, atol=sub)
    np.testing.assert_array_equal(gx[[0, 1, 5, 6]], [0, 0, 1, 1])  # the exact limits
    hv, (hg,) = _torch(torch, lambda t: torch.nn.functional.gelu(t, approximate=approximate), GELU16)
    _same(gx, hg, rtol=1e-3, atol=sub)  # and PyTorch's own float16
    _, t = dp.jvp(lambda t: F.gelu(t, approximate=approximate), (GELU16,), (np.ones(7, np.float16),))
    assert t.dtype == np.float16
    _same(t.data, gx, rtol=1e-3)  # forward mode: the same derivative, also finite


@pytest.mark.parametrize("approximate", ["tanh", "none"])
def test_float32_gelu_gradient_is_finite_where_x_cubed_overflows(torch, approximate):
    x = np.array([-1e15, -3e12, -1e6, 1e6, 3e12, 1e15], np.float32)
    _, (gx,) = _dp(lambda t: F.gelu(t, approximate=approximate), x)
    _, (tg,) = _torch(torch, lambda t: torch.nn.functional.gelu(t, approximate=approximate), x)
    _same(gx, tg)
    np.testing.assert_array_equal(gx, [0, 0, 0, 1, 1, 1])


def test_float16_gelu_second_derivative_is_finite():
    x = dp.tensor(GELU16, requires_grad=True)
    (g,) = [dp.grad(lambda t: F.gelu(t, approximate="tanh").sum())(x)]
    assert np.isfinite(g.data).all()
    h = dp.grad(lambda t: dp.grad(lambda u: F.gelu(u, approximate="tanh").sum())(t).sum())(GELU16)
    assert h.dtype == np.float16 and np.isfinite(h.data).all()


# -- 4. 0-d inputs -------------------------------------------------------------------------------
ZERO_D = {  # name: (deltaprop, torch)
    "softmax": (F.softmax, lambda T, t: T.softmax(t, -1)),
    "softmax_dim0": (lambda x: F.softmax(x, dim=0), lambda T, t: T.softmax(t, 0)),
    "log_softmax": (F.log_softmax, lambda T, t: T.log_softmax(t, -1)),
    "leaky_relu": (F.leaky_relu, lambda T, t: T.nn.functional.leaky_relu(t)),
    "leaky_relu_steep": (lambda x: F.leaky_relu(x, 1.5), lambda T, t: T.nn.functional.leaky_relu(t, 1.5)),
    "gelu": (F.gelu, lambda T, t: T.nn.functional.gelu(t)),
    "gelu_tanh": (lambda x: F.gelu(x, approximate="tanh"), lambda T, t: T.nn.functional.gelu(t, approximate="tanh")),
    "mse_loss": (lambda x: F.mse_loss(x, np.array(0.25, x.dtype)),
                 lambda T, t: T.nn.functional.mse_loss(t, T.tensor(0.25, dtype=t.dtype))),
    "mse_loss_none": (lambda x: F.mse_loss(x, np.array(0.25, x.dtype), reduction="none"),
                      lambda T, t: T.nn.functional.mse_loss(t, T.tensor(0.25, dtype=t.dtype), reduction="none")),
    "bce_with_logits": (lambda x: F.binary_cross_entropy_with_logits(x, np.array(1.0, x.dtype)),
                        lambda T, t: T.nn.functional.binary_cross_entropy_with_logits(t, T.tensor(1.0, dtype=t.dtype))),
    "logsumexp": (dp.logsumexp, lambda T, t: T.logsumexp(t, 0)),
    "exp": (dp.exp, lambda T, t: T.exp(t)),
    "tanh": (dp.tanh, lambda T, t: T.tanh(t)),
    "sigmoid": (dp.sigmoid, lambda T, t: T.sigmoid(t)),
    "softplus": (F.softplus, lambda T, t: T.nn.functional.softplus(t)),
    "relu": (F.relu, lambda T, t: T.relu(t)),
    "sqrt": (lambda x: dp.sqrt(x * x), lambda T, t: T.sqrt(t * t)),
    "mean": (dp.mean, lambda T, t: T.mean(t)),
    "var": (lambda x: dp.var(x * x), lambda T, t: T.var(t * t, correction=0)),
}


@pytest.mark.parametrize("value", [1.5, -0.75])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(ZERO_D))
def test_0d_input_forward_and_backward(torch, name, dtype, value):
    f, ref = ZERO_D[name]
    x = np.array(value, dtype)
    out, (gx,) = _dp(f, x, g=np.array(0.5))
    tv, (tg,) = _torch(torch, lambda t: ref(torch, t), x, g=np.array(0.5))
    assert out.shape == () and gx.shape == ()
    _same(out, tv, dtype=dtype, rtol=1e-6, atol=1e-7)
    _same(gx, tg, dtype=dtype, rtol=1e-6, atol=1e-7)
    _jvp_agrees(f, [x], [gx], g=np.array(0.5))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("tdtype", [np.float64, np.float32, np.int64])
@pytest.mark.parametrize("name", ["mse_loss", "binary_cross_entropy_with_logits", "binary_cross_entropy"])
def test_0d_losses_with_a_target_of_another_dtype(torch, name, tdtype, reduction):
    x, target = np.array(0.75, np.float32), np.array(1, tdtype)
    out, (gx,) = _dp(lambda t: getattr(F, name)(t, target, reduction=reduction), x)
    tv, (tg,) = _torch(torch, lambda t: getattr(torch.nn.functional, name)(
        t, torch.tensor(target, dtype=torch.float64), reduction=reduction), x.astype(np.float64))
    assert gx.dtype == np.float32
    _same(out, tv, rtol=1e-6)
    _same(gx, tg, rtol=1e-6)


# -- 5. degenerate reductions --------------------------------------------------------------------
SPREAD = np.array([1.0, 2.0, 4.0], np.float32)
FLAT = np.array([3.0, 3.0, 3.0], np.float32)


@pytest.mark.parametrize("x", [SPREAD, FLAT], ids=["spread", "constant"])
@pytest.mark.parametrize("ddof", [3, 4, 6])
@pytest.mark.parametrize("name", ["var", "std"])
def test_var_std_with_ddof_at_least_n_match_torch(torch, name, ddof, x):
    """Over all axes, as torch.var/std(x, correction=ddof): the value is inf (nan for a constant x),
    the var gradient nan where x == mean and inf elsewhere, the std gradient nan."""
    f = getattr(dp, name)
    value, (gx,) = _dp(lambda t: f(t, ddof=ddof), x)
    tv, (tg,) = _torch(torch, lambda t: getattr(torch, name)(t, correction=ddof), x)
    _same(value, tv, dtype=np.float32)
    _same(gx, tg)
    if name == "std":
        assert np.isnan(gx).all()


@pytest.mark.parametrize("name", ["var", "std"])
def test_var_std_over_an_axis_with_ddof_equal_n_match_torch(torch, name):
    x = np.stack([SPREAD, FLAT])
    value, (gx,) = _dp(lambda t: getattr(dp, name)(t, axis=1, ddof=3), x)
    tv, (tg,) = _torch(torch, lambda t: getattr(torch, name)(t, 1, correction=3), x)
    _same(value, tv)
    _same(gx, tg)  # var: 2 (x - mean) / 0, +-inf by sign and nan at the mean; std: nan


def test_var_std_over_an_axis_with_ddof_above_n_give_no_finite_gradient():
    """PyTorch's dim= path divides by n - ddof < 0 here: finite gradients of an infinite value.
    deltaprop keeps the ddof == n gradient (n - ddof clamped at 0, as the value's)."""
    x = np.stack([SPREAD, FLAT])
    value, (gx,) = _dp(lambda t: dp.var(t, axis=1, ddof=5), x)
    _same(value, [np.inf, np.nan])
    _same(gx, [[-np.inf, -np.inf, np.inf], [np.nan, np.nan, np.nan]])
    value, (gx,) = _dp(lambda t: dp.std(t, axis=1, ddof=5), x)
    _same(value, [np.inf, np.nan])
    assert np.isnan(gx).all()


def test_var_std_with_ddof_below_n_are_unchanged(torch):
    x = np.random.default_rng(2).standard_normal((3, 4))
    for name in ("var", "std"):
        for axis, ddof in [(None, 0), (None, 11), (1, 1), (0, 2), ((0, 1), 1)]:
            value, (gx,) = _dp(lambda t: getattr(dp, name)(t, axis=axis, ddof=ddof), x)
            tv, (tg,) = _torch(torch, lambda t: getattr(torch, name)(t, axis, correction=ddof), x)
            _same(value, tv, rtol=1e-12)
            _same(gx, tg, rtol=1e-12)
            _jvp_agrees(lambda t: getattr(dp, name)(t, axis=axis, ddof=ddof), [x], [gx], rtol=1e-10)


def test_var_degenerate_jvp_is_the_vjp_summed():
    _, (gx,) = _dp(lambda t: dp.var(t, ddof=3), SPREAD)
    _, t = dp.jvp(lambda t: dp.var(t, ddof=3), (SPREAD,), (np.array([1.0, 0.5, 2.0], np.float32),))
    assert t.data == np.inf and np.all(gx == np.inf)


@pytest.mark.parametrize("shape, axis", [((0,), None), ((2, 0), 1), ((2, 0), None), ((0, 3), 1), ((0, 3), 0),
                                         ((2, 0, 3), (1, 2))])
def test_prod_over_nothing_is_one_with_an_empty_gradient(torch, shape, axis):
    x = np.zeros(shape, np.float32)
    value, (gx,) = _dp(lambda t: dp.prod(t, axis=axis), x)
    dims = tuple(range(len(shape))) if axis is None else axis

    def tprod(t):
        for d in sorted((dims,) if isinstance(dims, int) else dims, reverse=True):
            t = t.prod(d)
        return t
    tv, (tg,) = _torch(torch, tprod, x)
    _same(value, tv, dtype=np.float32)
    _same(gx, tg)
    _, tan = dp.jvp(lambda t: dp.prod(t, axis=axis), (x,), (x,))
    _same(tan.data, np.zeros(value.shape))


@pytest.mark.parametrize("shape, axis", [((0,), None), ((0,), 0), ((2, 0), 1), ((2, 0), None), ((0, 3), 1),
                                         ((0, 3), 0), ((2, 0), (0, 1))])
def test_logsumexp_over_nothing_is_minus_inf_with_an_empty_gradient(torch, shape, axis):
    x = np.zeros(shape, np.float32)
    value, (gx,) = _dp(lambda t: dp.logsumexp(t, axis=axis), x)
    tv, (tg,) = _torch(torch, lambda t: torch.logsumexp(t, tuple(range(len(shape))) if axis is None else axis), x)
    _same(value, tv, dtype=np.float32)
    _same(gx, tg)
    _, tan = dp.jvp(lambda t: dp.logsumexp(t, axis=axis), (x,), (x,))
    _same(tan.data, np.zeros(value.shape))


@pytest.mark.parametrize("shape", [(2, 0), (0, 3), (0,)])
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_of_an_empty_array_is_empty(torch, name, shape):
    x = np.zeros(shape, np.float32)
    value, (gx,) = _dp(getattr(F, name), x)
    tv, (tg,) = _torch(torch, lambda t: getattr(torch, name)(t, -1), x)
    _same(value, tv, dtype=np.float32)
    _same(gx, tg)


# -- 6. a ** b at a <= 0 -------------------------------------------------------------------------
POW_A = np.array([-2.0, -2.0, -0.5, -3.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.0, 3.0, 0.5])
POW_B = np.array([0.5, 2.0, 3.0, 0.0, 0.5, 1.0, 0.0, -1.0, 2.0, -2.5, 0.0, -1.5, 1.5])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pow_gradients_at_nonpositive_bases_match_torch(torch, dtype):
    a, b = POW_A.astype(dtype), POW_B.astype(dtype)
    value, (ga, gb) = _dp(lambda x, y: x ** y, a, b)
    tv, (ta, tb) = _torch(torch, lambda x, y: x ** y, a, b)
    _same(value, tv, dtype=dtype)
    _same(ga, ta)  # b a**(b-1), and 0 where b == 0 (also at a == 0)
    _same(gb, tb)  # a**b log(a): nan at a < 0, 0 at a == 0 <= b, -inf at a == 0 > b
    assert np.isnan(gb[:4]).all()
    np.testing.assert_array_equal(ga[[3, 6, 10]], 0)


def test_pow_broadcast_exponent_and_number_base(torch):
    a = np.array([-2.0, 0.0, 1.5])
    b = np.array(2.0)
    value, (ga, gb) = _dp(lambda x, y: x ** y, a, b)
    tv, (ta, tb) = _torch(torch, lambda x, y: x ** y, a, b)
    _same(value, tv)
    _same(ga, ta)
    _same(gb, tb)  # nan: one a < 0 in the sum
    value, (gb,) = _dp(lambda y: dp.power(0.0, y), np.array([0.0, 1.0, -1.0]))
    _, (tb,) = _torch(torch, lambda y: torch.pow(0.0, y), np.array([0.0, 1.0, -1.0]))
    _same(gb, tb)


def test_pow_constant_exponent_keeps_zero_gradient_where_b_is_zero(torch):
    a = np.array([-2.0, 0.0, np.inf, 3.0])
    for p in (0, 0.0, 2, 0.5, -1):
        value, (ga,) = _dp(lambda x: x ** p, a)
        tv, (ta,) = _torch(torch, lambda x: x ** p, a)
        _same(value, tv)
        _same(ga, ta)


def test_pow_jvp_agrees_with_vjp_where_finite():
    a, b = np.array([0.5, 1.5, 2.0, 3.0]), np.array([-1.0, 0.0, 0.5, 2.0])
    _, grads = _dp(lambda x, y: x ** y, a, b)
    _jvp_agrees(lambda x, y: x ** y, [a, b], grads, rtol=1e-10)
    _, (gb,) = _dp(lambda y: dp.tensor(np.array([-2.0, 0.0])) ** y, np.array([2.0, 1.0]))
    _, t = dp.jvp(lambda y: dp.tensor(np.array([-2.0, 0.0])) ** y, (np.array([2.0, 1.0]),), (np.array([1.0, 1.0]),))
    _same(t.data, gb)  # nan at a < 0, 0 at a == 0 < b

