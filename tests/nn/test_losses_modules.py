"""Loss modules (reduction mean/sum/none) and the functional namespace."""
import numpy as np
import pytest

import deltaprop as dp
from deltaprop import nn
from deltaprop.nn import functional as F


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def test_functional_namespace_is_complete():
    for name in ["softmax", "log_softmax", "cross_entropy", "mse_loss", "binary_cross_entropy",
                 "binary_cross_entropy_with_logits", "relu", "sigmoid", "tanh", "leaky_relu", "gelu", "softplus",
                 "dropout", "linear", "conv2d", "max_pool2d"]:
        assert callable(getattr(F, name)), name
        assert name in F.__all__


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss_module(reduction):
    x, y = rand(4, 3), rand(4, 3, seed=1)
    per = (x - y) ** 2
    expect = {"mean": per.mean(), "sum": per.sum(), "none": per}[reduction]
    np.testing.assert_allclose(nn.MSELoss(reduction=reduction)(dp.tensor(x), dp.tensor(y)).data, expect)
    assert dp.gradcheck(lambda a: nn.MSELoss(reduction=reduction)(a, dp.tensor(y)),
                        dp.tensor(x, requires_grad=True))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_loss_module(reduction):
    x, labels = rand(5, 4), np.array([0, 3, 1, 1, 2])
    logp = x - np.log(np.exp(x).sum(1, keepdims=True))
    per = -logp[np.arange(5), labels]
    expect = {"mean": per.mean(), "sum": per.sum(), "none": per}[reduction]
    loss = nn.CrossEntropyLoss(reduction=reduction)
    np.testing.assert_allclose(loss(dp.tensor(x), labels).data, expect, rtol=1e-12)
    np.testing.assert_allclose(loss(dp.tensor(x), list(labels)).data, expect, rtol=1e-12)
    np.testing.assert_allclose(loss(dp.tensor(x), dp.tensor(labels)).data, expect, rtol=1e-12)
    assert dp.gradcheck(lambda a: loss(a, labels), dp.tensor(x, requires_grad=True))
    with pytest.raises(ValueError, match="out of range"):
        loss(dp.tensor(x), np.array([0, 4, 1, 1, 2]))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bce_modules(reduction):
    z, y = rand(6), (rand(6, seed=1) > 0).astype(np.float64)
    p = 1 / (1 + np.exp(-z))
    per = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    expect = {"mean": per.mean(), "sum": per.sum(), "none": per}[reduction]
    np.testing.assert_allclose(nn.BCELoss(reduction=reduction)(dp.tensor(p), dp.tensor(y)).data, expect,
                               rtol=1e-10)
    np.testing.assert_allclose(nn.BCEWithLogitsLoss(reduction=reduction)(dp.tensor(z), dp.tensor(y)).data,
                               expect, rtol=1e-10)
    assert dp.gradcheck(lambda a: nn.BCEWithLogitsLoss(reduction=reduction)(a, dp.tensor(y)),
                        dp.tensor(z, requires_grad=True))
    assert dp.gradcheck(lambda a: nn.BCELoss(reduction=reduction)(a.sigmoid(), dp.tensor(y)),
                        dp.tensor(z, requires_grad=True))


def test_bad_reduction():
    for cls in (nn.MSELoss, nn.CrossEntropyLoss, nn.BCELoss, nn.BCEWithLogitsLoss):
        with pytest.raises(ValueError, match="reduction"):
            cls(reduction="avg")
    assert repr(nn.MSELoss()) == "MSELoss()"


def test_classifier_end_to_end_with_loss_module():
    dp.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 2)).astype(np.float32)
    y = (x[:, 0] * x[:, 1] > 0).astype(np.int64)
    model = nn.Sequential(nn.Linear(2, 16), nn.GELU(), nn.Linear(16, 16), nn.LeakyReLU(), nn.Linear(16, 2))
    crit = nn.CrossEntropyLoss()
    first = None
    for _ in range(200):
        model.zero_grad()
        loss = crit(model(dp.tensor(x)), y)
        loss.backward()
        for p in model.parameters():
            p.data -= 0.2 * p.grad.data
        first = first if first is not None else loss.item()
    assert loss.item() < 0.5 * first
    model.eval()
    acc = (model(dp.tensor(x)).data.argmax(1) == y).mean()
    assert acc > 0.85


def test_losses_match_pytorch(torch):
    x, labels = rand(5, 4), np.array([0, 3, 1, 1, 2])
    for reduction in ("mean", "sum"):
        xt = torch.tensor(x, requires_grad=True)
        torch.nn.CrossEntropyLoss(reduction=reduction)(xt, torch.tensor(labels)).backward()
        xs = dp.tensor(x, requires_grad=True)
        nn.CrossEntropyLoss(reduction=reduction)(xs, labels).backward()
        np.testing.assert_allclose(xs.grad.data, xt.grad.numpy(), atol=1e-12)
