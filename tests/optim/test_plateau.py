"""ReduceLROnPlateau: PyTorch's defaults and, step for step, PyTorch's learning rates and state."""
from __future__ import annotations

import inspect
import math

import numpy as np
import pytest

import deltaprop as dp
from deltaprop.optim import SGD
from deltaprop.optim.lr_scheduler import ReduceLROnPlateau

# a metric that improves, stalls, wobbles within the threshold, improves again, and rises
METRICS = [1.0, 0.9, 0.9, 0.89995, 0.95, 0.95, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.7, 0.9, 0.9, 0.9, 0.9, 0.9,
           0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9]


def make_opt(lrs=(1.0, 0.5)):
    groups = [{"params": [dp.tensor(np.zeros(2), requires_grad=True)], "lr": lr} for lr in lrs]
    return SGD(groups, lr=0.1)


def test_defaults_match_pytorch(torch):
    ours = inspect.signature(ReduceLROnPlateau).parameters
    theirs = inspect.signature(torch.optim.lr_scheduler.ReduceLROnPlateau).parameters
    for name in ("mode", "factor", "patience", "threshold", "threshold_mode", "cooldown", "min_lr", "eps"):
        assert ours[name].default == theirs[name].default, name


@pytest.mark.parametrize("kw", [
    {},
    {"patience": 1},
    {"patience": 2, "cooldown": 2, "factor": 0.5},
    {"patience": 0, "min_lr": 0.02},
    {"patience": 0, "min_lr": [0.3, 0.001]},
    {"mode": "max", "patience": 1, "threshold": 0.01},
    {"patience": 1, "threshold_mode": "abs", "threshold": 0.05},
    {"mode": "max", "patience": 0, "threshold_mode": "abs", "threshold": 0.0, "eps": 0.2},
])
def test_matches_pytorch_step_by_step(torch, kw):
    opt = make_opt()
    sched = ReduceLROnPlateau(opt, **kw)
    params = [torch.zeros(2, requires_grad=True), torch.zeros(2, requires_grad=True)]
    topt = torch.optim.SGD([{"params": [params[0]], "lr": 1.0}, {"params": [params[1]], "lr": 0.5}], lr=0.1)
    tsched = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, **kw)
    assert sched.get_last_lr() == tsched.get_last_lr()
    for m in METRICS:
        sched.step(m)
        tsched.step(m)
        assert sched.get_last_lr() == tsched.get_last_lr()  # exact: same float operations
        assert [g["lr"] for g in opt.param_groups] == [g["lr"] for g in topt.param_groups]
        assert (sched.best, sched.num_bad_epochs, sched.cooldown_counter, sched.last_epoch) == \
               (tsched.best, tsched.num_bad_epochs, tsched.cooldown_counter, tsched.last_epoch)
    ours, theirs = sched.state_dict(), tsched.state_dict()
    assert set(ours) == set(theirs)
    for key in theirs:
        assert ours[key] == theirs[key], key


def test_literal_reductions():
    opt = make_opt((1.0,))
    sched = ReduceLROnPlateau(opt, patience=2, factor=0.5)
    lrs = []
    for m in [5, 4, 4, 4, 4, 4, 4, 3]:
        sched.step(m)
        lrs.append(sched.get_last_lr()[0])
    # bad epochs: 0, 0, 1, 2, 3 -> reduce (counter reset), 1, 2, then 3 improves
    assert lrs == [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5]


def test_state_dict_round_trip_continues_identically():
    opt, opt2 = make_opt(), make_opt()
    a = ReduceLROnPlateau(opt, patience=1, cooldown=1)
    for m in METRICS[:8]:
        a.step(m)
    b = ReduceLROnPlateau(opt2, mode="min", patience=7)
    b.load_state_dict(a.state_dict())
    for g, g2 in zip(opt.param_groups, opt2.param_groups):
        g2["lr"] = g["lr"]
    assert b.patience == 1 and b.mode_worse == math.inf
    for m in METRICS[8:]:
        a.step(m)
        b.step(m)
        assert a.get_last_lr() == b.get_last_lr()


def test_errors():
    with pytest.raises(ValueError, match="Factor should be < 1.0"):
        ReduceLROnPlateau(make_opt(), factor=1.0)
    with pytest.raises(ValueError, match="expected 2 min_lrs, got 1"):
        ReduceLROnPlateau(make_opt(), min_lr=[0.1])
    with pytest.raises(ValueError, match="mode 'up' is unknown"):
        ReduceLROnPlateau(make_opt(), mode="up")
    with pytest.raises(ValueError, match="threshold_mode 'pct' is unknown"):
        ReduceLROnPlateau(make_opt(), threshold_mode="pct")
    with pytest.raises(TypeError, match="list is not an Optimizer"):
        ReduceLROnPlateau([])


def test_accepts_a_scalar_tensor_metric():
    sched = ReduceLROnPlateau(make_opt((1.0,)), patience=0)
    sched.step(dp.tensor(2.0))
    sched.step(dp.tensor([3.0]))
    assert sched.get_last_lr() == [0.1]
