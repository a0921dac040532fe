"""The layers added for PyTorch users (issue 14, point 3), each against torch.nn in float64:
outputs, input and parameter gradients to 1e-10, defaults, state_dict keys both ways, errors."""
from __future__ import annotations

import numpy as np
import pytest

import deltaprop as dp
import deltaprop.nn.functional as F

TOL = dict(rtol=1e-10, atol=1e-10)


def _compare(torch, m, tm, x, train=False, int_input=False):
    """Copy tm's state into m (and check keys), run both on x, backprop a fixed random cotangent,
    compare the output, the input's gradient and every parameter's gradient."""
    tm = tm.double()
    sd = {k: v.detach().numpy() for k, v in tm.state_dict().items()}
    assert list(m.state_dict()) == list(sd)
    m.load_state_dict(sd)
    m.train(train)
    tm.train(train)
    xd = dp.tensor(x) if int_input else dp.tensor(x.copy(), requires_grad=True)
    xt = torch.tensor(x) if int_input else torch.tensor(x.copy(), requires_grad=True)
    out, tout = m(xd), tm(xt)
    assert out.shape == tuple(tout.shape)
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), **TOL)
    g = np.random.default_rng(9).standard_normal(out.shape)
    out.backward(g)
    tout.backward(torch.tensor(g))
    if not int_input:
        np.testing.assert_allclose(xd.grad.numpy(), xt.grad.numpy(), **TOL)
    tparams = dict(tm.named_parameters())
    for name, p in m.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), tparams[name].grad.numpy(), **TOL, err_msg=name)
    # and back: deltaprop's state loads into torch unchanged
    tm.load_state_dict({k: torch.tensor(v) for k, v in m.state_dict().items()})
    for k, v in tm.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), m.state_dict()[k])
    return out


RNG = np.random.default_rng(0)


@pytest.mark.parametrize("kw", [{}, {"stride": 2}, {"padding": 2}, {"dilation": 2}, {"padding": "same"},
                                {"stride": 2, "padding": 1, "dilation": 3, "bias": False}])
def test_conv1d(torch, kw):
    x = RNG.standard_normal((2, 3, 11))
    out = _compare(torch, dp.nn.Conv1d(3, 4, 3, **kw, dtype=np.float64), torch.nn.Conv1d(3, 4, 3, **kw), x)
    assert out.dtype == np.float64
    # unbatched (C, L)
    np.testing.assert_allclose(F.conv1d(dp.tensor(x[0]), dp.tensor(np.ones((4, 3, 3)))).numpy(),
                               torch.nn.functional.conv1d(torch.tensor(x[0]), torch.ones(4, 3, 3,
                                                          dtype=torch.float64)).numpy(), **TOL)


def test_conv1d_defaults_and_errors(torch):
    m, tm = dp.nn.Conv1d(2, 3, 5), torch.nn.Conv1d(2, 3, 5)
    assert m.weight.shape == tuple(tm.weight.shape) and m.weight.dtype == np.float32
    bound = 1 / np.sqrt(2 * 5)
    assert np.abs(m.weight.numpy()).max() <= bound and np.abs(m.bias.numpy()).max() <= bound
    with pytest.raises(ValueError, match=r"conv1d: expected input of shape \(N, 2, L\)"):
        m(dp.tensor(np.zeros((1, 3, 8), np.float32)))
    with pytest.raises(ValueError, match="padding='same'"):
        dp.nn.Conv1d(2, 3, 4, padding="same")
    with pytest.raises(NotImplementedError, match="groups"):
        dp.nn.Conv1d(2, 2, 3, groups=2)


@pytest.mark.parametrize("kw", [{"dilation": 2}, {"dilation": (2, 3), "stride": 2, "padding": (2, 1)},
                                {"dilation": 2, "padding": "same"}])
def test_conv2d_dilation(torch, kw):
    x = RNG.standard_normal((2, 2, 9, 10))
    _compare(torch, dp.nn.Conv2d(2, 3, 3, **kw, dtype=np.float64), torch.nn.Conv2d(2, 3, 3, **kw), x)


@pytest.mark.parametrize("kw", [{"kernel_size": 2}, {"kernel_size": 3, "stride": 2, "padding": 1},
                                {"kernel_size": 3, "stride": 1, "padding": 1, "count_include_pad": False},
                                {"kernel_size": (2, 3), "stride": (1, 2), "divisor_override": 4}])
def test_avg_pool2d(torch, kw):
    x = RNG.standard_normal((2, 3, 7, 8))
    _compare(torch, dp.nn.AvgPool2d(**kw), torch.nn.AvgPool2d(**kw), x)
    x3 = RNG.standard_normal((3, 7, 8))  # unbatched
    np.testing.assert_allclose(dp.nn.AvgPool2d(**kw)(dp.tensor(x3)).numpy(),
                               torch.nn.AvgPool2d(**kw)(torch.tensor(x3)).numpy(), **TOL)


def test_avg_pool2d_errors():
    with pytest.raises(ValueError, match="at most half the kernel"):
        F.avg_pool2d(dp.tensor(np.zeros((1, 1, 4, 4))), 2, padding=2)
    with pytest.raises(ValueError, match="larger than the padded input"):
        F.avg_pool2d(dp.tensor(np.zeros((1, 1, 2, 2))), 3)
    with pytest.raises(ValueError, match=r"4-D input .* got shape \(4, 4\)"):
        F.avg_pool2d(dp.tensor(np.zeros((4, 4))), 2)
    with pytest.raises(NotImplementedError, match="ceil_mode"):
        dp.nn.AvgPool2d(2, ceil_mode=True)


@pytest.mark.parametrize("size, hw", [(1, (6, 6)), ((2, 3), (6, 9)), (3, (7, 5)), ((None, 2), (5, 4)),
                                      ((4, 3), (5, 7))])
def test_adaptive_avg_pool2d(torch, size, hw):
    x = RNG.standard_normal((2, 3) + hw)
    _compare(torch, dp.nn.AdaptiveAvgPool2d(size), torch.nn.AdaptiveAvgPool2d(size), x)


@pytest.mark.parametrize("kw", [{}, {"momentum": None}, {"affine": False}, {"track_running_stats": False}])
def test_batch_norm2d(torch, kw):
    m, tm = dp.nn.BatchNorm2d(3, **kw, dtype=np.float64), torch.nn.BatchNorm2d(3, **kw)
    if kw.get("affine", True):
        with torch.no_grad():
            tm.weight.uniform_(0.5, 1.5)
            tm.bias.uniform_(-0.5, 0.5)
    for step in range(3):  # training steps update the running stats exactly as torch's
        x = RNG.standard_normal((4, 3, 5, 6)) * 2 + 1
        _compare(torch, m, tm, x, train=True) if step == 0 else None
        if step:
            m.train()
            tm.train()
            m(dp.tensor(x))
            tm(torch.tensor(x))
        for k, v in tm.state_dict().items():
            np.testing.assert_allclose(m.state_dict()[k], v.numpy(), **TOL, err_msg=k)
    _compare(torch, m, tm, RNG.standard_normal((2, 3, 4, 4)), train=False)  # eval: running stats
    with pytest.raises(ValueError, match=r"BatchNorm2d\(3\): expected input of shape \(N, 3, H, W\)"):
        m(dp.tensor(np.zeros((4, 3))))


def test_batch_norm2d_bumps_running_stat_versions():
    m = dp.nn.BatchNorm2d(2)
    v0 = m.running_mean._version_value
    m(dp.tensor(np.random.default_rng(0).standard_normal((3, 2, 2, 2)).astype(np.float32)))
    assert m.running_mean._version_value == v0 + 1 and int(m.num_batches_tracked.item()) == 1


@pytest.mark.parametrize("shape, kw", [((4, 5), {}), ((2, 3, 4, 5), {"normalized_shape": (4, 5)}),
                                       ((3, 6), {"elementwise_affine": False}), ((3, 6), {"bias": False}),
                                       ((3, 6), {"eps": 1e-2})])
def test_layer_norm(torch, shape, kw):
    ns = kw.pop("normalized_shape", shape[-1])
    tm = torch.nn.LayerNorm(ns, **kw)
    if getattr(tm, "weight", None) is not None:
        with torch.no_grad():
            tm.weight.uniform_(0.5, 1.5)
            if tm.bias is not None:
                tm.bias.uniform_(-1, 1)
    _compare(torch, dp.nn.LayerNorm(ns, **kw, dtype=np.float64), tm, RNG.standard_normal(shape) * 3 + 1)


def test_layer_norm_errors():
    with pytest.raises(ValueError, match=r"layer_norm: input of shape \(2, 3\) does not end with normalized_shape "
                                         r"\(4,\)"):
        dp.nn.LayerNorm(4)(dp.tensor(np.zeros((2, 3))))


@pytest.mark.parametrize("kw", [{}, {"padding_idx": 1}, {"padding_idx": -1}])
def test_embedding(torch, kw):
    idx = np.array([[0, 1, 4], [1, 1, 3]])
    m, tm = dp.nn.Embedding(5, 3, **kw, dtype=np.float64), torch.nn.Embedding(5, 3, **kw)
    if "padding_idx" in kw:  # the padding row starts at zero, as in torch
        assert np.all(m.weight.numpy()[kw["padding_idx"]] == 0)
        with torch.no_grad():
            tm.weight[kw["padding_idx"]] = 0.7  # a loaded nonzero padding row: still no gradient
    _compare(torch, m, tm, idx, int_input=True)
    assert m.padding_idx == tm.padding_idx


def test_embedding_from_pretrained_and_errors(torch):
    w = RNG.standard_normal((4, 2))
    m, tm = dp.nn.Embedding.from_pretrained(w), torch.nn.Embedding.from_pretrained(torch.tensor(w))
    assert not m.weight.requires_grad and not tm.weight.requires_grad
    np.testing.assert_array_equal(m(dp.tensor([3, 0])).numpy(), tm(torch.tensor([3, 0])).numpy())
    with pytest.raises(IndexError, match=r"index 4 is out of range for 4 embeddings"):
        m(dp.tensor([4]))
    with pytest.raises(TypeError, match="integer"):
        m(dp.tensor([1.0]))
    with pytest.raises(NotImplementedError, match="max_norm"):
        dp.nn.Embedding(3, 2, max_norm=1.0)
    # default init N(0, 1)
    dp.manual_seed(0)
    big = dp.nn.Embedding(1000, 100).weight.numpy()
    assert abs(big.mean()) < 0.01 and abs(big.std() - 1) < 0.01
