"""StepLR and CosineAnnealingLR against their formulas and PyTorch's recursive forms."""
from __future__ import annotations

import inspect
import math

import numpy as np
import pytest

import deltaprop as dp
from deltaprop.optim import SGD
from deltaprop.optim.lr_scheduler import CosineAnnealingLR, StepLR


def make_opt(lrs=(1.0,)):
    groups = [{"params": [dp.tensor(np.zeros(2), requires_grad=True)], "lr": lr} for lr in lrs]
    return SGD(groups, lr=0.1)


def schedule(sched, n):
    """get_last_lr() after construction, then after each of n steps."""
    out = [sched.get_last_lr()]
    for _ in range(n):
        sched.optimizer.step()
        sched.step()
        out.append(sched.get_last_lr())
    return out


def test_defaults_match_pytorch():
    step = inspect.signature(StepLR).parameters
    assert step["gamma"].default == 0.1 and step["last_epoch"].default == -1
    cos = inspect.signature(CosineAnnealingLR).parameters
    assert cos["eta_min"].default == 0 and cos["last_epoch"].default == -1


def test_step_lr_literal_values():
    opt = make_opt((1.0, 0.5))
    sched = StepLR(opt, step_size=2, gamma=0.1)
    lrs = schedule(sched, 6)
    expected = [[1.0, 0.5], [1.0, 0.5], [0.1, 0.05], [0.1, 0.05], [0.01, 0.005], [0.01, 0.005], [0.001, 0.0005]]
    np.testing.assert_allclose(np.array(lrs), np.array(expected), rtol=1e-15)
    assert [g["lr"] for g in opt.param_groups] == lrs[-1]
    assert [g["initial_lr"] for g in opt.param_groups] == [1.0, 0.5] == sched.base_lrs


def test_cosine_follows_the_closed_form():
    base, eta_min, T = 0.5, 0.01, 5
    opt = make_opt((base,))
    lrs = [x[0] for x in schedule(CosineAnnealingLR(opt, T_max=T, eta_min=eta_min), 3 * T)]
    for epoch, lr in enumerate(lrs):
        assert lr == pytest.approx(eta_min + (base - eta_min) * (1 + math.cos(math.pi * epoch / T)) / 2, rel=1e-12)
    assert lrs[0] == base and lrs[T] == pytest.approx(eta_min) and lrs[2 * T] == pytest.approx(base)


def test_cosine_literal_values():
    # T_max 4, base 1: (1 + cos(k pi / 4)) / 2 for k = 0..4
    lrs = [x[0] for x in schedule(CosineAnnealingLR(make_opt(), T_max=4), 4)]
    s = math.sqrt(2) / 2
    np.testing.assert_allclose(lrs, [1.0, (1 + s) / 2, 0.5, (1 - s) / 2, 0.0], atol=1e-15)


def test_cosine_recursive_form_composes_with_outside_changes():
    # the recursive form scales the *current* lr, so a change made in between carries on (as PyTorch)
    opt = make_opt()
    sched = CosineAnnealingLR(opt, T_max=10)
    sched.step()
    opt.param_groups[0]["lr"] *= 0.5
    sched.step()
    ratio = (1 + math.cos(math.pi * 2 / 10)) / (1 + math.cos(math.pi / 10))
    assert sched.get_last_lr()[0] == pytest.approx(0.5 * (1 + math.cos(math.pi / 10)) / 2 * ratio, rel=1e-14)


def test_step_with_epoch_uses_the_closed_form():
    opt = make_opt((2.0,))
    sched = StepLR(opt, step_size=3, gamma=0.5)
    with pytest.warns(UserWarning, match="epoch parameter"):
        sched.step(7)
    assert sched.get_last_lr() == [2.0 * 0.5 ** 2] and sched.last_epoch == 7
    cos = CosineAnnealingLR(make_opt((1.0,)), T_max=8)
    with pytest.warns(UserWarning):
        cos.step(2)
    assert cos.get_last_lr()[0] == pytest.approx((1 + math.cos(math.pi / 4)) / 2, rel=1e-15)


def test_get_last_lr_is_a_copy():
    sched = StepLR(make_opt(), step_size=1)
    lrs = sched.get_last_lr()
    lrs[0] = 99.0
    assert sched.get_last_lr() == [1.0]


@pytest.mark.parametrize("make", [lambda o: StepLR(o, step_size=2, gamma=0.5),
                                  lambda o: CosineAnnealingLR(o, T_max=6, eta_min=0.1)])
def test_state_dict_round_trip(make):
    opt = make_opt((1.0, 0.3))
    sched = make(opt)
    schedule(sched, 3)
    sd = sched.state_dict()
    assert "optimizer" not in sd and sd["last_epoch"] == 3 and sd["base_lrs"] == [1.0, 0.3]
    assert {"base_lrs", "last_epoch", "_step_count", "_last_lr"} <= set(sd)
    rest = schedule(sched, 4)

    opt2 = make_opt((1.0, 0.3))
    opt2.load_state_dict(opt.state_dict())  # brings initial_lr and the current lr
    sched2 = make(opt2)
    sched2.load_state_dict(sd)
    for group, lr in zip(opt2.param_groups, sd["_last_lr"]):
        group["lr"] = lr
    # replay: the state at epoch 3, then 4 more steps equal the straight run
    assert schedule(sched2, 4)[1:] == rest[1:]


def test_state_dict_does_not_alias():
    sched = StepLR(make_opt(), step_size=1)
    sd = sched.state_dict()
    sd["base_lrs"].append(5.0)
    assert sched.base_lrs == [1.0]


def test_resume_needs_initial_lr():
    with pytest.raises(KeyError, match="initial_lr"):
        StepLR(make_opt(), step_size=2, last_epoch=3)
    opt = make_opt((1.0,))
    StepLR(opt, step_size=2)
    resumed = StepLR(opt, step_size=2, last_epoch=3)
    assert resumed.last_epoch == 4 and resumed.base_lrs == [1.0]


def test_matches_pytorch(torch):
    for name, kw in [("StepLR", dict(step_size=3, gamma=0.5)), ("CosineAnnealingLR", dict(T_max=5, eta_min=0.01))]:
        tp = torch.nn.Parameter(torch.ones(2))
        topt = torch.optim.SGD([{"params": [tp], "lr": 0.1}], lr=0.1)
        tsched = getattr(torch.optim.lr_scheduler, name)(topt, **kw)
        sched = getattr(dp.optim.lr_scheduler, name)(make_opt((0.1,)), **kw)
        for _ in range(20):
            topt.step()
            tsched.step()
            sched.optimizer.step()
            sched.step()
            assert sched.get_last_lr() == tsched.get_last_lr()
