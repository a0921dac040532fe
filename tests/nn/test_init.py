"""dp.nn.init: PyTorch's gains, fans and distributions, in place; clip_grad_norm_."""
import math

import numpy as np
import pytest

import deltaprop as dp
from deltaprop import nn
from deltaprop.nn import init


def big(*shape, dtype=np.float32):
    return nn.Parameter(np.zeros(shape, dtype))


def test_gains():
    assert init.calculate_gain("linear") == 1 and init.calculate_gain("sigmoid") == 1
    assert init.calculate_gain("conv2d") == 1
    assert init.calculate_gain("tanh") == pytest.approx(5 / 3)
    assert init.calculate_gain("relu") == pytest.approx(math.sqrt(2))
    assert init.calculate_gain("leaky_relu") == pytest.approx(math.sqrt(2 / (1 + 0.01 ** 2)))
    assert init.calculate_gain("leaky_relu", math.sqrt(5)) == pytest.approx(math.sqrt(1 / 3))
    assert init.calculate_gain("selu") == 0.75
    with pytest.raises(ValueError):
        init.calculate_gain("swish")


def test_fans():
    assert init._calculate_fan_in_and_fan_out(big(30, 20)) == (20, 30)
    assert init._calculate_fan_in_and_fan_out(big(8, 3, 5, 5)) == (75, 200)
    with pytest.raises(ValueError):
        init.xavier_uniform_(big(5))


def test_in_place_keeps_identity_dtype_and_returns_tensor():
    p = big(400, 300)
    arr = p.data
    assert init.xavier_uniform_(p) is p
    assert p.data is arr and p.dtype == np.float32 and p.requires_grad and p.is_leaf and p.grad is None


@pytest.mark.parametrize("fn,kwargs,bound_or_std,kind", [
    (init.xavier_uniform_, {}, math.sqrt(6 / (300 + 400)), "uniform"),
    (init.xavier_uniform_, {"gain": 2.0}, 2 * math.sqrt(6 / 700), "uniform"),
    (init.xavier_normal_, {}, math.sqrt(2 / 700), "normal"),
    (init.kaiming_uniform_, {}, math.sqrt(2 / (1 + 0.0)) * math.sqrt(3 / 300), "uniform"),
    (init.kaiming_uniform_, {"a": math.sqrt(5)}, 1 / math.sqrt(300), "uniform"),
    (init.kaiming_uniform_, {"mode": "fan_out", "nonlinearity": "relu"}, math.sqrt(2) * math.sqrt(3 / 400),
     "uniform"),
    (init.kaiming_normal_, {}, math.sqrt(2 / 300), "normal"),
    (init.kaiming_normal_, {"nonlinearity": "tanh", "mode": "fan_out"}, 5 / 3 / math.sqrt(400), "normal"),
])
def test_distributions(fn, kwargs, bound_or_std, kind):
    dp.manual_seed(0)
    p = fn(big(400, 300), **kwargs)
    v = p.data.astype(np.float64)
    if kind == "uniform":
        assert np.abs(v).max() <= bound_or_std * (1 + 1e-6)
        assert np.abs(v).max() > 0.99 * bound_or_std
        assert v.std() == pytest.approx(bound_or_std / math.sqrt(3), rel=0.02)
    else:
        assert v.std() == pytest.approx(bound_or_std, rel=0.02)
    assert abs(v.mean()) < 0.02 * bound_or_std * 3


def test_simple_fills_and_seed():
    p = big(3, 4, dtype=np.float64)
    assert np.all(init.ones_(p).data == 1)
    assert np.all(init.zeros_(p).data == 0)
    assert np.all(init.constant_(p, 0.25).data == 0.25)
    dp.manual_seed(1)
    a = init.uniform_(big(3, 4), -2, 2).data.copy()
    dp.manual_seed(1)
    b = init.uniform_(big(3, 4), -2, 2).data
    np.testing.assert_array_equal(a, b)
    assert a.min() >= -2 and a.max() <= 2
    n = init.normal_(big(1000, 100), mean=3.0, std=0.5).data
    assert n.mean() == pytest.approx(3.0, abs=0.01) and n.std() == pytest.approx(0.5, rel=0.02)


def test_init_under_no_grad_records_nothing():
    lin = nn.Linear(3, 2)
    init.kaiming_normal_(lin.weight, nonlinearity="relu")
    assert lin.weight.is_leaf and lin.weight._node is None
    lin(dp.ones(1, 3)).sum().backward()
    assert lin.weight.grad.shape == (2, 3)


def test_clip_grad_norm():
    a = nn.Parameter(np.array([3.0, 0.0]))
    b = nn.Parameter(np.array([[0.0], [4.0]]))
    a.grad, b.grad = dp.tensor(np.array([3.0, 0.0])), dp.tensor(np.array([[0.0], [4.0]]))
    old = a.grad
    total = nn.utils.clip_grad_norm_([a, b], 1.0)
    assert isinstance(total, dp.Tensor) and total.item() == pytest.approx(5.0)
    coef = 1.0 / (5.0 + 1e-6)
    np.testing.assert_allclose(a.grad.data, [3 * coef, 0])
    np.testing.assert_allclose(b.grad.data, [[0], [4 * coef]])
    np.testing.assert_array_equal(old.data, [3.0, 0.0])  # a new Tensor: the old grad is untouched
    # below the threshold: nothing changes
    total = nn.utils.clip_grad_norm_([a, b], 10.0)
    assert total.item() == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_allclose(a.grad.data, [3 * coef, 0])
    # inf norm, a single tensor, parameters without grads
    c = nn.Parameter(np.array([1.0, -6.0]))
    c.grad = dp.tensor(np.array([1.0, -6.0]))
    assert nn.utils.clip_grad_norm_(c, 3.0, norm_type=float("inf")).item() == 6.0
    np.testing.assert_allclose(c.grad.data, np.array([1.0, -6.0]) * 3 / (6 + 1e-6))
    assert nn.utils.clip_grad_norm_([nn.Parameter(np.ones(2))], 1.0).item() == 0.0


def test_clip_grad_norm_does_not_touch_shared_grad_arrays():
    x = dp.tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = dp.tensor(np.array([1.0, 2.0]), requires_grad=True)
    (x + y).sum().backward()  # the engine may hand both leaves the same gradient array
    nn.utils.clip_grad_norm_([x], 0.1)
    np.testing.assert_array_equal(y.grad.data, [1.0, 1.0])
    assert np.linalg.norm(x.grad.data) == pytest.approx(0.1, rel=1e-4)
    with pytest.raises(RuntimeError):
        x.grad = dp.tensor(np.array([np.nan, 1.0]))
        nn.utils.clip_grad_norm_([x], 1.0, error_if_nonfinite=True)


def test_clip_grad_norm_matches_pytorch(torch):
    rng = np.random.default_rng(0)
    gs = [rng.standard_normal((3, 4)), rng.standard_normal(4)]
    for norm_type in (2.0, 1.0, float("inf")):
        tps = [torch.nn.Parameter(torch.zeros(g.shape, dtype=torch.float64)) for g in gs]
        ops = [nn.Parameter(np.zeros(g.shape)) for g in gs]
        for tp, op, g in zip(tps, ops, gs):
            tp.grad = torch.tensor(g)
            op.grad = dp.tensor(g)
        tn = torch.nn.utils.clip_grad_norm_(tps, 0.5, norm_type=norm_type)
        on = nn.utils.clip_grad_norm_(ops, 0.5, norm_type=norm_type)
        assert on.item() == pytest.approx(tn.item())
        for tp, op in zip(tps, ops):
            np.testing.assert_allclose(op.grad.data, tp.grad.numpy(), rtol=1e-12)


@pytest.mark.parametrize("norm_type", [2.0, 1.0, float("inf")])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", [0, 1])  # the bad value in the first or in a later gradient
def test_clip_grad_norm_nonfinite_matches_pytorch(torch, norm_type, bad, where):
    # A NaN anywhere gives a NaN total (Python's max over [1.0, nan] would give 1.0) and NaN
    # gradients; an inf gives an inf total, and gradients scaled by 0 (inf * 0: NaN there).
    gs = [np.array([1.0, -2.0]), np.array([[0.5], [3.0]])]
    gs[where] = gs[where].copy()
    gs[where].flat[1] = bad
    tps = [torch.nn.Parameter(torch.zeros(g.shape, dtype=torch.float64)) for g in gs]
    ops = [nn.Parameter(np.zeros(g.shape)) for g in gs]
    for tp, op, g in zip(tps, ops, gs):
        tp.grad, op.grad = torch.tensor(g), dp.tensor(g)
    tn = torch.nn.utils.clip_grad_norm_(tps, 1.0, norm_type=norm_type)
    on = nn.utils.clip_grad_norm_(ops, 1.0, norm_type=norm_type)
    np.testing.assert_array_equal(on.numpy(), tn.numpy())  # (equal_nan: NaN matches NaN)
    assert np.isnan(on.item()) == bool(np.isnan(bad))
    for tp, op in zip(tps, ops):
        np.testing.assert_array_equal(op.grad.numpy(), tp.grad.numpy())
    # error_if_nonfinite=True raises, as PyTorch does, and leaves the gradients alone
    for tp, op, g in zip(tps, ops, gs):
        tp.grad, op.grad = torch.tensor(g), dp.tensor(g)
    with pytest.raises(RuntimeError):
        torch.nn.utils.clip_grad_norm_(tps, 1.0, norm_type=norm_type, error_if_nonfinite=True)
    with pytest.raises(RuntimeError, match="clip_grad_norm_: the total norm"):
        nn.utils.clip_grad_norm_(ops, 1.0, norm_type=norm_type, error_if_nonfinite=True)
    for op, g in zip(ops, gs):
        np.testing.assert_array_equal(op.grad.numpy(), g)


def test_clip_grad_norm_inf_norm_with_nan_single_element_grads():
    # The case of the issue (#19): grads [1.0] and [nan] with norm_type=inf.
    a, b = nn.Parameter(np.zeros(1)), nn.Parameter(np.zeros(1))
    a.grad, b.grad = dp.tensor(np.array([1.0])), dp.tensor(np.array([np.nan]))
    assert np.isnan(nn.utils.clip_grad_norm_([a, b], 1.0, norm_type=float("inf")).item())
    assert np.isnan(a.grad.item()) and np.isnan(b.grad.item())
    a.grad, b.grad = dp.tensor(np.array([1.0])), dp.tensor(np.array([np.nan]))
    with pytest.raises(RuntimeError, match="nan"):
        nn.utils.clip_grad_norm_([a, b], 1.0, norm_type=float("inf"), error_if_nonfinite=True)
