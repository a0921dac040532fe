"""Linear, activations, GELU/erf, Dropout, BatchNorm1d, Flatten; depth; higher order."""
import math

import numpy as np
import pytest

import deltaprop as dp
from deltaprop import nn
from deltaprop.nn import functional as F
from deltaprop.ops._special import erf, erfc, ndtr, ndtr_single


def t64(*shape, seed=0, scale=1.0):
    return dp.tensor(np.random.default_rng(seed).standard_normal(shape) * scale, requires_grad=True)


# -- linear ----------------------------------------------------------------------------------------
def test_linear_forward_matches_numpy():
    x, w, b = t64(5, 3), t64(4, 3, seed=1), t64(4, seed=2)
    np.testing.assert_allclose(F.linear(x, w, b).data, x.data @ w.data.T + b.data)
    np.testing.assert_allclose(F.linear(x, w).data, x.data @ w.data.T)
    lin = nn.Linear(3, 4, dtype=np.float64)
    np.testing.assert_allclose(lin(x).data, x.data @ lin.weight.data.T + lin.bias.data)


@pytest.mark.parametrize("xshape", [(5, 3), (3,), (2, 4, 3)])
def test_linear_gradcheck(xshape):
    x, w, b = t64(*xshape), t64(4, 3, seed=1), t64(4, seed=2)
    assert dp.gradcheck(F.linear, x, w, b)
    assert dp.gradcheck(lambda x, w: F.linear(x, w), x, w)


def test_linear_grads_and_skips_unneeded_input_grad():
    x = dp.tensor(np.random.default_rng(0).standard_normal((6, 3)))  # input needs no grad
    lin = nn.Linear(3, 2, dtype=np.float64)
    out = lin(x)
    g = np.random.default_rng(1).standard_normal(out.shape)
    out.backward(g)
    np.testing.assert_allclose(lin.weight.grad.data, g.T @ x.data)
    np.testing.assert_allclose(lin.bias.grad.data, g.sum(0))
    assert x.grad is None
    assert lin.weight.grad.dtype == lin.weight.dtype


def test_linear_float32_grads_keep_dtype():
    lin = nn.Linear(3, 2)
    x = dp.randn(4, 3, requires_grad=True)
    lin(x).sum().backward()
    assert lin.weight.grad.dtype == np.float32 and x.grad.dtype == np.float32


def test_linear_shape_error_names_shapes():
    with pytest.raises(ValueError, match=r"linear: input of shape \(2, 5\).*\(4, 3\)"):
        nn.Linear(3, 4)(dp.ones(2, 5))


def test_linear_jvp_matches_jacobian():
    w, b = t64(4, 3, seed=1), t64(4, seed=2)
    x = np.random.default_rng(3).standard_normal((2, 3))
    t = np.random.default_rng(4).standard_normal((2, 3))
    _, tan = dp.jvp(lambda x: F.linear(x, w, b), (x,), (t,))
    np.testing.assert_allclose(tan.data, t @ w.data.T)


def test_hessian_through_linear_tanh_matches_finite_differences():
    rng = np.random.default_rng(0)
    w1, b1 = rng.standard_normal((5, 3)), rng.standard_normal(5)
    w2 = rng.standard_normal((1, 5))

    def f(x):
        return F.linear(F.linear(x, w1, b1).tanh(), w2).sum()

    x0 = rng.standard_normal(3)
    h = dp.hessian(f)(x0).data
    gradf = dp.grad(f)
    eps = 1e-5
    fd = np.zeros((3, 3))
    for j in range(3):
        e = np.zeros(3)
        e[j] = eps
        fd[:, j] = (gradf(x0 + e).data - gradf(x0 - e).data) / (2 * eps)
    np.testing.assert_allclose(h, fd, atol=1e-7)
    np.testing.assert_allclose(h, h.T, atol=1e-12)


def test_second_order_gradcheck_through_linear_weights():
    x, w, b = t64(4, 3), t64(2, 3, seed=1), t64(2, seed=2)

    def grad_w(w, b):
        return dp.grad(lambda w, b: (F.linear(x.detach(), w, b).tanh() ** 2).sum(), argnums=(0, 1))(w, b)[0]

    assert dp.gradcheck(grad_w, w, b)


# -- erf / gelu ------------------------------------------------------------------------------------
def test_erf_matches_math_erf_on_dense_grid():
    x = np.linspace(-8, 8, 400_001)
    ref = np.array([math.erf(v) for v in x])
    assert np.abs(erf(x) - ref).max() < 1e-7
    assert np.abs(erf(x) - ref).max() < 1e-14  # Cody's approximation is at double precision
    refc = np.array([math.erfc(v) for v in x])
    assert np.abs(erfc(x) - refc).max() < 1e-14
    tail = x > 2
    np.testing.assert_allclose(erfc(x[tail]), refc[tail], rtol=1e-13)  # relative accuracy in the tail
    assert erf(np.array([0.0]))[0] == 0.0 and erf(np.array([40.0]))[0] == 1.0 and erfc(np.array([40.0]))[0] == 0.0
    np.testing.assert_allclose(ndtr(np.array([-1.0, 0.0, 1.96])), [0.15865525393145707, 0.5, 0.9750021048517795],
                               rtol=1e-14)


def test_gelu_values():
    x = np.linspace(-6, 6, 101)
    exact = np.array([v * 0.5 * (1 + math.erf(v / math.sqrt(2))) for v in x])
    np.testing.assert_allclose(F.gelu(dp.tensor(x)).data, exact, atol=1e-15)
    approx = 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    np.testing.assert_allclose(F.gelu(dp.tensor(x), approximate="tanh").data, approx, atol=1e-15)
    assert F.gelu(dp.tensor([1.0])).dtype == np.float32
    np.testing.assert_allclose(nn.GELU()(dp.tensor(x)).data, exact, atol=1e-15)
    with pytest.raises(ValueError, match="approximate"):
        F.gelu(dp.tensor(x), approximate="fast")


def test_single_precision_normal_cdf_and_gelu_keep_relative_accuracy_in_the_tails():
    """float32 GELU takes Phi from a one-formula erfc (ndtr_single): within 2e-7 relative of the
    exact value everywhere it is a normal float32, the far negative tail included."""
    x = np.linspace(-14, 14, 200_001).astype(np.float32)
    ref = np.array([0.5 * math.erfc(-float(v) / math.sqrt(2)) for v in x])
    phi = ndtr_single(x)
    assert phi.dtype == np.float32 and phi.shape == x.shape
    normal = ref > np.finfo(np.float32).tiny
    assert (np.abs(phi[normal] - ref[normal]) / ref[normal]).max() < 2e-7
    assert abs(ndtr_single(np.array([0.0], np.float32))[0] - 0.5) <= 3e-8 and phi[-1] == 1.0
    assert ndtr_single(np.zeros((0, 3), np.float32)).shape == (0, 3)
    exact = x.astype(np.float64) * ref
    y = F.gelu(dp.tensor(x)).data
    assert y.dtype == np.float32
    big = np.abs(exact) > 1e-30  # (the product's last bits blur where it nears float32's underflow)
    assert (np.abs(y[big] - exact[big]) / np.abs(exact[big])).max() < 3e-7


def test_float32_gelu_gradient_matches_the_float64_one():
    x = np.random.default_rng(5).standard_normal((64, 33)) * 3
    g32 = dp.grad(lambda v: F.gelu(v).sum())(dp.tensor(x.astype(np.float32)))
    g64 = dp.grad(lambda v: F.gelu(v).sum())(dp.tensor(x))
    assert g32.dtype == np.float32
    np.testing.assert_allclose(g32.data, g64.data, rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_gradcheck_first_and_second_order(approximate):
    x = t64(30, scale=3)
    assert dp.gradcheck(lambda x: F.gelu(x, approximate), x)
    assert dp.gradcheck(lambda x: dp.grad(lambda y: F.gelu(y, approximate).sum())(x), x)
    _, tan = dp.jvp(lambda x: F.gelu(x, approximate), (x.data,), (np.ones(30),))
    np.testing.assert_allclose(tan.data, dp.grad(lambda y: F.gelu(y, approximate).sum())(x.data).data)


# -- activations and flatten --------------------------------------------------------------------------
def test_activation_modules():
    x = dp.tensor(np.array([[-2.0, -0.5, 0.0, 0.5, 2.0]]))
    np.testing.assert_allclose(nn.ReLU()(x).data, np.maximum(x.data, 0))
    np.testing.assert_allclose(nn.Sigmoid()(x).data, 1 / (1 + np.exp(-x.data)))
    np.testing.assert_allclose(nn.Tanh()(x).data, np.tanh(x.data))
    np.testing.assert_allclose(nn.LeakyReLU(0.1)(x).data, np.where(x.data > 0, x.data, 0.1 * x.data))
    sm = nn.Softmax(dim=-1)(x).data
    np.testing.assert_allclose(sm, np.exp(x.data) / np.exp(x.data).sum(), rtol=1e-12)
    np.testing.assert_allclose(nn.LogSoftmax(dim=1)(x).data, np.log(sm), rtol=1e-12)
    np.testing.assert_allclose(nn.Softplus()(x).data, np.log1p(np.exp(x.data)), rtol=1e-12)
    assert nn.Identity()(x) is x
    for m in (nn.ReLU(), nn.Sigmoid(), nn.Tanh(), nn.LeakyReLU(), nn.GELU(), nn.Softmax(), nn.Softplus()):
        assert dp.gradcheck(m, t64(3, 4, seed=5))


def test_flatten():
    x = t64(2, 3, 4, 5)
    assert nn.Flatten()(x).shape == (2, 60)
    assert nn.Flatten(0, 1)(x).shape == (6, 4, 5)
    assert nn.Flatten(1, 2)(x).shape == (2, 12, 5)
    # (times 1: dp.gradcheck reads a view output after perturbing its input, see the engine notes)
    assert dp.gradcheck(lambda x: nn.Flatten()(x) * 1, t64(2, 3, 2))


# -- dropout ---------------------------------------------------------------------------------------
def test_dropout_statistics_and_scaling():
    dp.manual_seed(0)
    x = dp.ones(200, 500)
    y = F.dropout(x, 0.3).data
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 0.01
    np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-6)
    assert y.dtype == np.float32
    assert F.dropout(x, 0.3, training=False) is x
    assert np.all(F.dropout(x, 1.0).data == 0)
    assert F.dropout(x, 0.0) is x
    with pytest.raises(ValueError):
        F.dropout(x, 1.5)


def test_dropout_module_modes_and_seed():
    d = nn.Dropout(0.5)
    x = dp.ones(4, 8)
    dp.manual_seed(3)
    a = d(x).data
    dp.manual_seed(3)
    b = d(x).data
    np.testing.assert_array_equal(a, b)
    d.eval()
    np.testing.assert_array_equal(d(x).data, x.data)


def test_dropout_gradcheck_with_fixed_mask():
    x = t64(4, 5)

    def f(x):
        dp.manual_seed(11)  # the same mask on every call
        return F.dropout(x, 0.4)

    assert dp.gradcheck(f, x)
    f(x).backward(np.ones((4, 5)))
    mask = f(x).data != 0
    np.testing.assert_allclose(x.grad.data, mask / 0.6)


# -- batch norm ------------------------------------------------------------------------------------
def test_batchnorm_training_forward_and_running_stats():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 3)) * 2 + 1
    bn = nn.BatchNorm1d(3, dtype=np.float64)
    y = bn(dp.tensor(x)).data
    np.testing.assert_allclose(y, (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5), rtol=1e-10)
    np.testing.assert_allclose(bn.running_mean.data, 0.1 * x.mean(0))
    np.testing.assert_allclose(bn.running_var.data, 0.9 + 0.1 * x.var(0, ddof=1))
    assert int(bn.num_batches_tracked.data) == 1
    bn.eval()
    y = bn(dp.tensor(x)).data
    np.testing.assert_allclose(y, (x - bn.running_mean.data) / np.sqrt(bn.running_var.data + 1e-5))
    assert int(bn.num_batches_tracked.data) == 1
    assert list(bn.state_dict()) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]


def test_batchnorm_3d_and_cumulative_momentum():
    rng = np.random.default_rng(1)
    bn = nn.BatchNorm1d(2, momentum=None, dtype=np.float64)
    xs = [rng.standard_normal((4, 2, 5)) for _ in range(3)]
    for x in xs:
        bn(dp.tensor(x))
    means = [x.mean((0, 2)) for x in xs]
    np.testing.assert_allclose(bn.running_mean.data, np.mean(means, 0))
    bn2 = nn.BatchNorm1d(2, affine=False, track_running_stats=False, dtype=np.float64)
    assert list(bn2.state_dict()) == []
    x = xs[0]
    bn2.eval()  # no running stats: batch statistics even in eval
    np.testing.assert_allclose(bn2(dp.tensor(x)).data,
                               (x - x.mean((0, 2), keepdims=True)) / np.sqrt(x.var((0, 2), keepdims=True) + 1e-5))


def test_batchnorm_gradcheck():
    bn = nn.BatchNorm1d(3, dtype=np.float64)
    bn.weight.data[...] = [1.0, 2.0, -0.5]
    bn.bias.data[...] = [0.1, 0.2, 0.3]
    x = t64(5, 3)
    assert dp.gradcheck(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), x, bn.weight, bn.bias)
    assert dp.gradcheck(lambda x: nn.BatchNorm1d(3, dtype=np.float64)(x), t64(4, 3, 2))
    bn.eval()
    assert dp.gradcheck(bn, x)


def test_batchnorm_errors():
    with pytest.raises(ValueError, match=r"BatchNorm1d\(3\).*\(4, 5\)"):
        nn.BatchNorm1d(3)(dp.ones(4, 5))
    with pytest.raises(ValueError, match="more than 1 value"):
        nn.BatchNorm1d(3)(dp.ones(1, 3))


# -- depth -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("act,nonlinearity", [(nn.Tanh, "tanh"), (nn.ReLU, "relu")])
def test_ten_layer_mlp_trains(act, nonlinearity):
    """A general method for any depth: 10 Linear layers (scaled init) learn a nonlinear function."""
    dp.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (128, 4)).astype(np.float32)
    y = (np.sin(2 * x[:, :1]) * x[:, 1:2] + x[:, 2:3] ** 2).astype(np.float32)
    layers = [nn.Linear(4, 32), act()]
    for _ in range(8):
        layers += [nn.Linear(32, 32), act()]
    model = nn.Sequential(*layers, nn.Linear(32, 1))
    assert sum(isinstance(m, nn.Linear) for m in model) == 10
    for m in model:
        if isinstance(m, nn.Linear):
            if nonlinearity == "relu":
                nn.init.kaiming_uniform_(m.weight, nonlinearity="relu")
            else:
                nn.init.xavier_uniform_(m.weight, gain=nn.init.calculate_gain("tanh"))
            nn.init.zeros_(m.bias)
    xt, yt = dp.tensor(x), dp.tensor(y)
    losses = []
    for _ in range(150):
        model.zero_grad()
        loss = F.mse_loss(model(xt), yt)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        with dp.no_grad():
            for p in model.parameters():
                p.data -= 0.05 * p.grad.data
        losses.append(loss.item())
    assert all(p.grad is not None for p in model.parameters())
    assert losses[-1] < 0.1 * losses[0], (losses[0], losses[-1])


# -- against PyTorch (the `torch` fixture of tests/conftest.py) -------------------------------------
def test_layers_match_pytorch(torch):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 4))
    for approximate in ("none", "tanh"):
        xt = torch.tensor(x, requires_grad=True)
        torch.nn.functional.gelu(xt, approximate=approximate).sum().backward()
        ours = dp.tensor(x, requires_grad=True)
        out = F.gelu(ours, approximate)
        out.sum().backward()
        np.testing.assert_allclose(out.data, torch.nn.functional.gelu(xt, approximate=approximate).detach().numpy(),
                                   atol=1e-12)
        np.testing.assert_allclose(ours.grad.data, xt.grad.numpy(), atol=1e-12)
    tbn = torch.nn.BatchNorm1d(4).double()
    bn = nn.BatchNorm1d(4, dtype=np.float64)
    for _ in range(2):
        xt = torch.tensor(x, requires_grad=True)
        ours = dp.tensor(x, requires_grad=True)
        tbn(xt).pow(3).sum().backward()
        (bn(ours) ** 3).sum().backward()
        np.testing.assert_allclose(ours.grad.data, xt.grad.numpy(), atol=1e-10)
    for k, v in tbn.state_dict().items():
        np.testing.assert_allclose(bn.state_dict()[k], v.numpy(), atol=1e-12)
    tlin = torch.nn.Linear(4, 3).double()
    lin = nn.Linear(4, 3, dtype=np.float64)
    lin.load_state_dict({k: v.numpy() for k, v in tlin.state_dict().items()})
    np.testing.assert_allclose(lin(dp.tensor(x)).data, tlin(torch.tensor(x)).detach().numpy(), atol=1e-12)


@pytest.mark.parametrize("shape", [(6, 3), (5, 3, 4)])
@pytest.mark.parametrize("affine", [(True, True), (True, False), (False, True), (False, False)])
def test_batch_norm_training_op_first_second_order_and_forward_mode(shape, affine):
    """Training-mode batch norm is one fused op: its closed-form VJP, its double backward and its
    JVP against finite differences, with and without weight and bias."""
    rng = np.random.default_rng(4)
    x = dp.tensor(rng.standard_normal(shape) * 2 + 1, requires_grad=True)
    w = dp.tensor(rng.uniform(0.5, 1.5, shape[1]), requires_grad=True) if affine[0] else None
    b = dp.tensor(rng.standard_normal(shape[1]), requires_grad=True) if affine[1] else None
    params = [p for p in (w, b) if p is not None]

    def f(x, *ps):
        it = iter(ps)
        return F.batch_norm(x, None, None, next(it) if w is not None else None,
                            next(it) if b is not None else None, training=True) * dp.tensor(np.linspace(0.5, 2, x.size).reshape(shape))

    assert dp.gradcheck(f, x, *params)
    assert dp.gradcheck(lambda x, *ps: dp.grad(lambda v: (f(v, *ps) ** 2).sum())(x), x, *params)
    v = rng.standard_normal(shape)
    _, tangent = dp.jvp(lambda a: f(a, *[p.data for p in params]), (x.data,), (v,))
    h = 1e-6
    fd = (f(dp.tensor(x.data + h * v), *params).data - f(dp.tensor(x.data - h * v), *params).data) / (2 * h)
    np.testing.assert_allclose(tangent.data, fd, rtol=1e-6, atol=1e-8)


def test_batch_norm_large_float32_matches_float64_and_updates_running_stats():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((512, 64)) * 3 + 2
    bn64, bn32 = nn.BatchNorm1d(64, dtype=np.float64), nn.BatchNorm1d(64)
    w = rng.uniform(0.5, 1.5, (512, 64))
    grads = []
    for bn, dt in ((bn64, np.float64), (bn32, np.float32)):
        xt = dp.tensor(x.astype(dt), requires_grad=True)
        y = bn(xt)
        (y * dp.tensor(w.astype(dt))).sum().backward()
        grads.append((y.data, xt.grad.data, bn.weight.grad.data, bn.bias.grad.data))
    for a, b in zip(*grads):
        np.testing.assert_allclose(b, a, rtol=1e-3, atol=1e-3)  # (float32 sums over 512 rows)
    np.testing.assert_allclose(bn64.running_mean.data, 0.1 * x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(bn64.running_var.data, 0.9 + 0.1 * x.var(0, ddof=1), rtol=1e-12)
    np.testing.assert_allclose(bn32.running_var.data, bn64.running_var.data, rtol=1e-5)
