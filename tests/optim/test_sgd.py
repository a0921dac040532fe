"""SGD against values worked out by hand from PyTorch's algorithm box."""
from __future__ import annotations

import inspect

import numpy as np
import pytest

import deltaprop as dp
from deltaprop.optim import SGD

from .conftest import GRADS, W0


def sgd_by_hand(w0, grads, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False):
    """PyTorch's SGD box, element by element in plain Python floats."""
    w, buf, history = list(w0), None, []
    for grad in grads:
        g = [(-x if maximize else x) + weight_decay * wi for x, wi in zip(grad, w)]
        if momentum != 0:
            if buf is None:
                buf = list(g)
            else:
                buf = [momentum * b + (1 - dampening) * gi for b, gi in zip(buf, g)]
            g = [gi + momentum * b for gi, b in zip(g, buf)] if nesterov else list(buf)
        w = [wi - lr * gi for wi, gi in zip(w, g)]
        history.append(w)
    return history


def test_defaults_match_pytorch():
    sig = inspect.signature(SGD)
    assert {k: v.default for k, v in sig.parameters.items() if k != "params"} == dict(
        lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, maximize=False)
    p = dp.tensor(np.zeros(2), requires_grad=True)
    group = SGD([p]).param_groups[0]
    assert group["lr"] == 1e-3 and group["momentum"] == 0 and group["nesterov"] is False


def test_plain_sgd_literal_values(run_steps):
    # w0 = (1, -2), lr = 0.1: w1 = (1 - 0.05, -2 + 0.1), w2 = w1 - 0.1 * (0.1, 0.2), w3 = w2 - 0.1 * (-0.3, 0.4)
    out = run_steps(lambda ps: SGD(ps, lr=0.1), W0, GRADS)
    np.testing.assert_allclose(out[0], [0.95, -1.9], rtol=1e-15)
    np.testing.assert_allclose(out[1], [0.94, -1.92], rtol=1e-15)
    np.testing.assert_allclose(out[2], [0.97, -1.96], rtol=1e-15)


def test_momentum_buffer_starts_at_the_gradient(run_steps):
    # g = 1 each step, lr 0.1, momentum 0.9: b = 1, 1.9, 2.71; w = 1 - 0.1, - 0.19, - 0.271
    out = run_steps(lambda ps: SGD(ps, lr=0.1, momentum=0.9), [1.0], [[1.0]] * 3)
    np.testing.assert_allclose(np.concatenate(out), [0.9, 0.71, 0.439], rtol=1e-14)


@pytest.mark.parametrize("kw", [
    dict(lr=0.1),
    dict(lr=0.1, momentum=0.9),
    dict(lr=0.05, momentum=0.8, dampening=0.25),
    dict(lr=0.1, momentum=0.9, nesterov=True),
    dict(lr=0.1, weight_decay=0.2),
    dict(lr=0.1, momentum=0.5, weight_decay=0.1, nesterov=True, maximize=True),
    dict(lr=0.2, maximize=True),
])
def test_rule_matches_hand_computation(run_steps, kw):
    out = run_steps(lambda ps: SGD(ps, **kw), W0, GRADS)
    ref = sgd_by_hand(W0, GRADS, **kw)
    np.testing.assert_allclose(np.array(out), np.array(ref), rtol=1e-12, atol=1e-15)


def test_nesterov_literal_values(run_steps):
    # g = 1, lr 0.1, momentum 0.5, nesterov: b = 1, 1.5; step uses g + 0.5 b = 1.5, 1.75
    out = run_steps(lambda ps: SGD(ps, lr=0.1, momentum=0.5, nesterov=True), [0.0], [[1.0], [1.0]])
    np.testing.assert_allclose(np.concatenate(out), [-0.15, -0.325], rtol=1e-14)


def test_state_holds_only_the_momentum_buffer():
    p = dp.tensor(np.array(W0), requires_grad=True)
    opt = SGD([p], lr=0.1)
    p.grad = dp.tensor(np.array(GRADS[0]))
    opt.step()
    assert dict(opt.state) == {} or opt.state[p] == {}
    opt = SGD([p], lr=0.1, momentum=0.9)
    opt.step()
    assert set(opt.state[p]) == {"momentum_buffer"}
    np.testing.assert_array_equal(opt.state[p]["momentum_buffer"], GRADS[0])
    assert not np.shares_memory(opt.state[p]["momentum_buffer"], p.grad.data)


def test_parameter_without_grad_is_skipped():
    p = dp.tensor(np.array(W0), requires_grad=True)
    q = dp.tensor(np.array(W0), requires_grad=True)
    opt = SGD([p, q], lr=0.1, momentum=0.9)
    p.grad = dp.tensor(np.array(GRADS[0]))
    opt.step()
    np.testing.assert_array_equal(q.data, W0)
    assert q not in opt.state or opt.state[q] == {}


def test_gradient_array_is_never_written():
    p = dp.tensor(np.array(W0), requires_grad=True)
    opt = SGD([p], lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1, maximize=True)
    g = np.array(GRADS[0])
    for _ in range(3):
        p.grad = dp.tensor(g)
        opt.step()
        np.testing.assert_array_equal(p.grad.data, GRADS[0])
        np.testing.assert_array_equal(g, GRADS[0])


def test_trains_through_backward():
    # minimise sum((w - 3)^2): grad 2 (w - 3); lr 0.25 halves the distance each step
    w = dp.tensor(np.array([0.0, 1.0]), requires_grad=True)
    opt = SGD([w], lr=0.25)
    for _ in range(3):
        opt.zero_grad()
        ((w - 3.0) ** 2).sum().backward()
        opt.step()
    np.testing.assert_allclose(w.data, [3 - 3 / 8, 3 - 2 / 8], rtol=1e-14)


def test_closure_is_evaluated_and_returned():
    w = dp.tensor(np.array([2.0]), requires_grad=True)
    opt = SGD([w], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert float(loss.item()) == 4.0
    np.testing.assert_allclose(w.data, [2.0 - 0.1 * 4.0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept(dtype):
    p = dp.tensor(np.ones(3, dtype=dtype), requires_grad=True)
    opt = SGD([p], lr=0.1, momentum=0.9, weight_decay=0.01, nesterov=True)
    data = p.data
    for _ in range(2):
        p.grad = dp.tensor(np.full(3, 0.5, dtype=dtype))
        opt.step()
    assert p.data is data  # updated in place
    assert p.data.dtype == dtype and opt.state[p]["momentum_buffer"].dtype == dtype
    np.testing.assert_allclose(p.data, sgd_by_hand([1.0] * 3, [[0.5] * 3] * 2, 0.1, 0.9, 0, 0.01, True)[-1],
                               rtol=1e-6 if dtype == np.float32 else 1e-14)


@pytest.mark.parametrize("kw, message", [
    (dict(lr=-0.1), "Invalid learning rate: -0.1"),
    (dict(momentum=-0.5), "Invalid momentum value: -0.5"),
    (dict(weight_decay=-1e-3), "Invalid weight_decay value: -0.001"),
    (dict(nesterov=True), "Nesterov momentum requires a momentum and zero dampening"),
    (dict(nesterov=True, momentum=0.9, dampening=0.1), "Nesterov momentum requires a momentum and zero dampening"),
])
def test_invalid_options(kw, message):
    p = dp.tensor(np.zeros(2), requires_grad=True)
    with pytest.raises(ValueError, match=message):
        SGD([p], **kw)


def test_matches_pytorch(torch):
    rng = np.random.default_rng(1)
    w0 = rng.standard_normal((4, 3))
    grads = rng.standard_normal((6, 4, 3))
    for kw in [dict(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01),
               dict(lr=0.1, momentum=0.9, nesterov=True, maximize=True)]:
        tp = torch.nn.Parameter(torch.tensor(w0))
        to = torch.optim.SGD([tp], **kw)
        p = dp.tensor(w0.copy(), requires_grad=True)
        opt = SGD([p], **kw)
        for g in grads:
            tp.grad = torch.tensor(g)
            to.step()
            p.grad = dp.tensor(g.copy())
            opt.step()
        np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-12, atol=1e-14)


def test_work_buffers_regrow_for_a_larger_parameter_of_any_shape():
    """The update's work arrays are views cached per shape; a later, larger parameter regrows them
    and every parameter still gets exactly its own update (momentum and weight decay use both)."""
    rng = np.random.default_rng(3)
    shapes = [(3,), (4, 5), (2,), (7, 6), (4, 5)]
    ws = [rng.standard_normal(s) for s in shapes]
    ps = [dp.tensor(w.copy(), requires_grad=True) for w in ws]
    opt = SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01)
    bufs = [None] * len(ps)
    for step in range(3):
        grads = [rng.standard_normal(s) for s in shapes]
        for p, g in zip(ps, grads):
            p.grad = dp.tensor(g)
        opt.step()
        for i, g in enumerate(grads):
            d = g + 0.01 * ws[i]
            bufs[i] = d.copy() if bufs[i] is None else 0.9 * bufs[i] + d
            ws[i] = ws[i] - 0.1 * bufs[i]
            np.testing.assert_allclose(ps[i].data, ws[i], rtol=1e-13, atol=1e-15)
            np.testing.assert_array_equal(ps[i].grad.data, g)  # the gradient itself is never written
