"""Adam and AdamW against values worked out by hand from PyTorch's algorithm boxes."""
from __future__ import annotations

import inspect
import math

import numpy as np
import pytest

import deltaprop as dp
from deltaprop.optim import Adam, AdamW

from .conftest import GRADS, W0


def adam_by_hand(w0, grads, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
                 maximize=False, decoupled=False):
    """PyTorch's Adam/AdamW box, element by element in plain Python floats."""
    b1, b2 = betas
    w = list(w0)
    m, v, vmax = [0.0] * len(w), [0.0] * len(w), [0.0] * len(w)
    history = []
    for t, grad in enumerate(grads, start=1):
        g = [-x if maximize else x for x in grad]
        if decoupled:
            w = [wi * (1 - lr * weight_decay) for wi in w]
        else:
            g = [gi + weight_decay * wi for gi, wi in zip(g, w)]
        m = [b1 * mi + (1 - b1) * gi for mi, gi in zip(m, g)]
        v = [b2 * vi + (1 - b2) * gi * gi for vi, gi in zip(v, g)]
        vmax = [max(a, b) for a, b in zip(vmax, v)]
        vv = vmax if amsgrad else v
        bc1, bc2 = 1 - b1 ** t, 1 - b2 ** t
        w = [wi - lr / bc1 * mi / (math.sqrt(vi) / math.sqrt(bc2) + eps) for wi, mi, vi in zip(w, m, vv)]
        history.append(w)
    return history


def test_defaults_match_pytorch():
    common = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, amsgrad=False, maximize=False)
    adam = {k: v.default for k, v in inspect.signature(Adam).parameters.items() if k != "params"}
    adamw = {k: v.default for k, v in inspect.signature(AdamW).parameters.items() if k != "params"}
    assert adam == dict(common, weight_decay=0, decoupled_weight_decay=False)
    assert adamw == dict(common, weight_decay=1e-2)
    p = dp.tensor(np.zeros(2), requires_grad=True)
    assert AdamW([p]).param_groups[0]["weight_decay"] == 1e-2
    assert AdamW([p]).param_groups[0]["decoupled_weight_decay"] is True


def test_constant_gradient_moves_lr_per_step(run_steps):
    # g = 2 every step: m / bc1 = 2 and v / bc2 = 4 exactly, so each step is lr * 2 / (2 + eps)
    out = run_steps(lambda ps: Adam(ps, lr=0.1), [1.0], [[2.0]] * 3)
    step = 0.1 * 2 / (2 + 1e-8)
    np.testing.assert_allclose(np.concatenate(out), [1 - step, 1 - 2 * step, 1 - 3 * step], rtol=1e-13)


def test_first_step_literal_value(run_steps):
    # step 1: m = 0.1 g, v = 0.001 g^2, bc1 = 0.1, bc2 = 0.001 -> p -= lr * g / (|g| + eps)
    out = run_steps(lambda ps: Adam(ps, lr=0.01), W0, GRADS[:1])
    np.testing.assert_allclose(out[0], [1 - 0.01 * 0.5 / (0.5 + 1e-8), -2 + 0.01 * 1.0 / (1.0 + 1e-8)], rtol=1e-12)


@pytest.mark.parametrize("kw", [
    dict(),
    dict(lr=0.1),
    dict(lr=0.05, betas=(0.8, 0.9), eps=1e-3),
    dict(lr=0.1, weight_decay=0.5),
    dict(lr=0.1, amsgrad=True),
    dict(lr=0.1, maximize=True, weight_decay=0.1),
])
def test_adam_rule_matches_hand_computation(run_steps, kw):
    out = run_steps(lambda ps: Adam(ps, **kw), W0, GRADS)
    np.testing.assert_allclose(np.array(out), np.array(adam_by_hand(W0, GRADS, **kw)), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("kw", [
    dict(),
    dict(lr=0.1, weight_decay=0.5),
    dict(lr=0.1, amsgrad=True, weight_decay=0.1),
    dict(lr=0.1, maximize=True),
])
def test_adamw_rule_matches_hand_computation(run_steps, kw):
    out = run_steps(lambda ps: AdamW(ps, **kw), W0, GRADS)
    ref = adam_by_hand(W0, GRADS, **dict(dict(weight_decay=1e-2), **kw), decoupled=True)
    np.testing.assert_allclose(np.array(out), np.array(ref), rtol=1e-12, atol=1e-15)


def test_adamw_decay_is_lr_times_weight_decay(run_steps):
    # a zero gradient leaves m = v = 0, so only the decay moves p: p *= 1 - lr * wd each step
    out = run_steps(lambda ps: AdamW(ps, lr=0.1, weight_decay=0.5), [2.0], [[0.0]] * 2)
    np.testing.assert_allclose(np.concatenate(out), [2 * 0.95, 2 * 0.95 ** 2], rtol=1e-15)
    # Adam's weight decay is L2 instead: the gradient becomes wd * p and Adam normalises it
    out = run_steps(lambda ps: Adam(ps, lr=0.1, weight_decay=0.5), [2.0], [[0.0]])
    np.testing.assert_allclose(out[0], [2 - 0.1 * 1.0 / (1.0 + 1e-8)], rtol=1e-14)


def test_amsgrad_uses_the_running_max(run_steps):
    # a big gradient then small ones: with amsgrad the denominator keeps the large v
    grads = [[10.0], [0.1], [0.1]]
    plain = run_steps(lambda ps: Adam(ps, lr=0.1, betas=(0.5, 0.5)), [0.0], grads)
    ams = run_steps(lambda ps: Adam(ps, lr=0.1, betas=(0.5, 0.5), amsgrad=True), [0.0], grads)
    np.testing.assert_allclose(np.array(ams), np.array(adam_by_hand([0.0], grads, 0.1, (0.5, 0.5), amsgrad=True)),
                               rtol=1e-13)
    assert not np.allclose(plain[-1], ams[-1])


def test_state_keys_and_step_count():
    p = dp.tensor(np.array(W0), requires_grad=True)
    opt = Adam([p], lr=0.1)
    for g in GRADS:
        p.grad = dp.tensor(np.array(g))
        opt.step()
    assert set(opt.state[p]) == {"step", "exp_avg", "exp_avg_sq"}
    assert opt.state[p]["step"] == 3
    q = dp.tensor(np.array(W0), requires_grad=True)
    opt = AdamW([q], amsgrad=True)
    q.grad = dp.tensor(np.array(GRADS[0]))
    opt.step()
    assert set(opt.state[q]) == {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"}
    np.testing.assert_allclose(opt.state[q]["exp_avg"], 0.1 * np.array(GRADS[0]), rtol=1e-15)
    np.testing.assert_allclose(opt.state[q]["exp_avg_sq"], 0.001 * np.array(GRADS[0]) ** 2, rtol=1e-12)


@pytest.mark.parametrize("cls", [Adam, AdamW])
def test_float32_stays_float32(cls):
    p = dp.tensor(np.array(W0, dtype=np.float32), requires_grad=True)
    opt = cls([p], lr=0.1, weight_decay=0.1, amsgrad=True)
    data = p.data
    for g in GRADS:
        p.grad = dp.tensor(np.array(g, dtype=np.float32))
        opt.step()
    assert p.data is data and p.data.dtype == np.float32
    assert all(v.dtype == np.float32 for v in opt.state[p].values() if isinstance(v, np.ndarray))
    ref = adam_by_hand(W0, GRADS, lr=0.1, weight_decay=0.1, amsgrad=True, decoupled=cls is AdamW)
    np.testing.assert_allclose(p.data, ref[-1], rtol=1e-5)


def test_gradient_array_is_never_written():
    p = dp.tensor(np.array(W0), requires_grad=True)
    opt = Adam([p], lr=0.1, weight_decay=0.1, maximize=True)
    for g in GRADS:
        p.grad = dp.tensor(np.array(g))
        opt.step()
        np.testing.assert_array_equal(p.grad.data, g)


@pytest.mark.parametrize("kw, message", [
    (dict(lr=-1.0), "Invalid learning rate: -1.0"),
    (dict(eps=-1e-8), "Invalid epsilon value: -1e-08"),
    (dict(betas=(1.0, 0.999)), "Invalid beta parameter at index 0: 1.0"),
    (dict(betas=(0.9, -0.1)), "Invalid beta parameter at index 1: -0.1"),
    (dict(weight_decay=-0.5), "Invalid weight_decay value: -0.5"),
])
@pytest.mark.parametrize("cls", [Adam, AdamW])
def test_invalid_options(cls, kw, message):
    p = dp.tensor(np.zeros(2), requires_grad=True)
    with pytest.raises(ValueError, match=message):
        cls([p], **kw)


def test_matches_pytorch(torch):
    rng = np.random.default_rng(2)
    w0 = rng.standard_normal((4, 3))
    grads = rng.standard_normal((6, 4, 3))
    for name, kw in [("Adam", dict(lr=0.01, weight_decay=0.1, amsgrad=True)), ("AdamW", dict(lr=0.01, maximize=True))]:
        tp = torch.nn.Parameter(torch.tensor(w0))
        to = getattr(torch.optim, name)([tp], **kw)
        p = dp.tensor(w0.copy(), requires_grad=True)
        opt = getattr(dp.optim, name)([p], **kw)
        for g in grads:
            tp.grad = torch.tensor(g)
            to.step()
            p.grad = dp.tensor(g.copy())
            opt.step()
        np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-12, atol=1e-14)
