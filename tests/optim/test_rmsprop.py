"""RMSprop against values worked out by hand from PyTorch's algorithm box."""
from __future__ import annotations

import inspect
import math

import numpy as np
import pytest

import deltaprop as dp
from deltaprop.optim import RMSprop

from .conftest import GRADS, W0


def rmsprop_by_hand(w0, grads, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False,
                    maximize=False):
    """PyTorch's RMSprop box, element by element in plain Python floats."""
    w = list(w0)
    n = len(w)
    sq, gavg, buf = [0.0] * n, [0.0] * n, [0.0] * n
    history = []
    for grad in grads:
        g = [(-x if maximize else x) + weight_decay * wi for x, wi in zip(grad, w)]
        sq = [alpha * s + (1 - alpha) * gi * gi for s, gi in zip(sq, g)]
        if centered:
            gavg = [alpha * a + (1 - alpha) * gi for a, gi in zip(gavg, g)]
            denom = [math.sqrt(s - a * a) + eps for s, a in zip(sq, gavg)]
        else:
            denom = [math.sqrt(s) + eps for s in sq]
        if momentum > 0:
            buf = [momentum * b + gi / d for b, gi, d in zip(buf, g, denom)]
            w = [wi - lr * b for wi, b in zip(w, buf)]
        else:
            w = [wi - lr * gi / d for wi, gi, d in zip(w, g, denom)]
        history.append(w)
    return history


def test_defaults_match_pytorch():
    defaults = {k: v.default for k, v in inspect.signature(RMSprop).parameters.items() if k != "params"}
    assert defaults == dict(lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False,
                            maximize=False)


def test_first_step_literal_value(run_steps):
    # step 1: s = 0.01 g^2, so p -= 0.01 * g / (0.1 |g| + eps) = 0.1 * sign(g) (up to eps)
    out = run_steps(lambda ps: RMSprop(ps), W0, GRADS[:1])
    np.testing.assert_allclose(out[0], [1 - 0.01 * 0.5 / (0.05 + 1e-8), -2 + 0.01 * 1.0 / (0.1 + 1e-8)], rtol=1e-12)


def test_centered_first_step_literal_value(run_steps):
    # alpha 0.5, g = 2: s = 2, a = 1, denom = sqrt(2 - 1) + eps; p -= 0.1 * 2 / (1 + eps)
    out = run_steps(lambda ps: RMSprop(ps, lr=0.1, alpha=0.5, centered=True), [0.0], [[2.0]])
    np.testing.assert_allclose(out[0], [-0.2 / (1 + 1e-8)], rtol=1e-14)


@pytest.mark.parametrize("kw", [
    dict(),
    dict(lr=0.1, alpha=0.9),
    dict(lr=0.1, momentum=0.9),
    dict(lr=0.1, centered=True),
    dict(lr=0.1, centered=True, momentum=0.5, weight_decay=0.1),
    dict(lr=0.05, eps=1e-2, weight_decay=0.3, maximize=True),
])
def test_rule_matches_hand_computation(run_steps, kw):
    out = run_steps(lambda ps: RMSprop(ps, **kw), W0, GRADS)
    np.testing.assert_allclose(np.array(out), np.array(rmsprop_by_hand(W0, GRADS, **kw)), rtol=1e-12, atol=1e-15)


def test_state_keys():
    p = dp.tensor(np.array(W0), requires_grad=True)
    opt = RMSprop([p])
    p.grad = dp.tensor(np.array(GRADS[0]))
    opt.step()
    assert set(opt.state[p]) == {"step", "square_avg"} and opt.state[p]["step"] == 1
    opt = RMSprop([p], momentum=0.9, centered=True)
    opt.step()
    assert set(opt.state[p]) == {"step", "square_avg", "momentum_buffer", "grad_avg"}
    np.testing.assert_allclose(opt.state[p]["square_avg"], 0.01 * np.array(GRADS[0]) ** 2, rtol=1e-12)
    np.testing.assert_allclose(opt.state[p]["grad_avg"], 0.01 * np.array(GRADS[0]), rtol=1e-12)


def test_float32_stays_float32_and_grad_untouched():
    p = dp.tensor(np.array(W0, dtype=np.float32), requires_grad=True)
    opt = RMSprop([p], lr=0.1, momentum=0.9, centered=True, weight_decay=0.1, maximize=True)
    data = p.data
    for g in GRADS:
        p.grad = dp.tensor(np.array(g, dtype=np.float32))
        opt.step()
        np.testing.assert_array_equal(p.grad.data, np.array(g, dtype=np.float32))
    assert p.data is data and p.data.dtype == np.float32
    assert all(v.dtype == np.float32 for v in opt.state[p].values() if isinstance(v, np.ndarray))
    ref = rmsprop_by_hand(W0, GRADS, lr=0.1, momentum=0.9, centered=True, weight_decay=0.1, maximize=True)
    np.testing.assert_allclose(p.data, ref[-1], rtol=1e-5)


@pytest.mark.parametrize("kw, message", [
    (dict(lr=-1.0), "Invalid learning rate: -1.0"),
    (dict(eps=-1.0), "Invalid epsilon value: -1.0"),
    (dict(momentum=-1.0), "Invalid momentum value: -1.0"),
    (dict(weight_decay=-1.0), "Invalid weight_decay value: -1.0"),
    (dict(alpha=-1.0), "Invalid alpha value: -1.0"),
])
def test_invalid_options(kw, message):
    p = dp.tensor(np.zeros(2), requires_grad=True)
    with pytest.raises(ValueError, match=message):
        RMSprop([p], **kw)


def test_matches_pytorch(torch):
    rng = np.random.default_rng(3)
    w0 = rng.standard_normal((4, 3))
    grads = rng.standard_normal((6, 4, 3))
    kw = dict(lr=0.01, momentum=0.9, centered=True, weight_decay=0.1)
    tp = torch.nn.Parameter(torch.tensor(w0))
    to = torch.optim.RMSprop([tp], **kw)
    p = dp.tensor(w0.copy(), requires_grad=True)
    opt = RMSprop([p], **kw)
    for g in grads:
        tp.grad = torch.tensor(g)
        to.step()
        p.grad = dp.tensor(g.copy())
        opt.step()
    np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-12, atol=1e-14)
