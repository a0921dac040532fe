"""save_checkpoint/load_checkpoint carry the LR scheduler's state (and an `extra` tree); files
without it still load."""
from __future__ import annotations

import os

import numpy as np
import pytest

import deltaprop as dp
from deltaprop.optim.lr_scheduler import CosineAnnealingLR, ReduceLROnPlateau, StepLR

FORMAT1 = os.path.join(os.path.dirname(__file__), "fixtures", "format1", "ckpt.safetensors")


def setup(sched_cls, **kw):
    dp.manual_seed(0)
    model = dp.nn.Linear(3, 2)
    opt = dp.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    return model, opt, sched_cls(opt, **kw)


def advance(model, opt, sched, n, metric=False):
    x = dp.tensor(np.ones((4, 3), np.float32))
    for i in range(n):
        opt.zero_grad()
        model(x).sum().backward()
        opt.step()
        sched.step(1.0) if metric else sched.step()


@pytest.mark.parametrize("cls, kw, metric", [(StepLR, {"step_size": 2, "gamma": 0.5}, False),
                                             (CosineAnnealingLR, {"T_max": 7}, False),
                                             (ReduceLROnPlateau, {"patience": 1}, True)])
def test_scheduler_state_round_trip(tmp_path, cls, kw, metric):
    model, opt, sched = setup(cls, **kw)
    advance(model, opt, sched, 3, metric)
    path = tmp_path / "ck.safetensors"
    dp.save_checkpoint(path, model, opt, epoch=3, scheduler=sched)
    model2, opt2, sched2 = setup(cls, **kw)
    assert dp.load_checkpoint(path, model2, opt2, scheduler=sched2) == 3
    assert sched2.get_last_lr() == sched.get_last_lr() and sched2.last_epoch == sched.last_epoch
    advance(model, opt, sched, 4, metric)
    advance(model2, opt2, sched2, 4, metric)
    assert sched2.get_last_lr() == sched.get_last_lr()
    assert [g["lr"] for g in opt2.param_groups] == [g["lr"] for g in opt.param_groups]
    for k, v in model.state_dict().items():
        assert v.tobytes() == model2.state_dict()[k].tobytes()


def test_missing_or_other_scheduler_is_a_clear_error_and_changes_nothing(tmp_path):
    model, opt, sched = setup(StepLR, step_size=2)
    plain = tmp_path / "plain.safetensors"
    dp.save_checkpoint(plain, model, opt, epoch=1)
    model2, opt2, sched2 = setup(StepLR, step_size=2)
    before = model2.state_dict()["weight"].copy()
    with pytest.raises(ValueError, match="holds no LR scheduler state"):
        dp.load_checkpoint(plain, model2, opt2, scheduler=sched2)
    dp.save_checkpoint(tmp_path / "step.safetensors", model, opt, epoch=1, scheduler=sched)
    _, opt3, cos = setup(CosineAnnealingLR, T_max=3)
    with pytest.raises(ValueError, match="holds the state of a StepLR, not of a CosineAnnealingLR"):
        dp.load_checkpoint(tmp_path / "step.safetensors", model2, opt3, scheduler=cos)
    np.testing.assert_array_equal(model2.state_dict()["weight"], before)
    assert dp.load_checkpoint(plain, model2, opt2) == 1  # without scheduler=: as before


def test_old_checkpoint_loads_and_has_no_scheduler_state():
    ck = dp.io.read_checkpoint(FORMAT1)
    assert ck.scheduler_state is None and ck.extra is None and ck.epoch == 2


def test_extra_tree_round_trip(tmp_path):
    model, opt, _ = setup(StepLR, step_size=2)
    best = {k: v * 2 for k, v in model.state_dict().items()}
    dp.save_checkpoint(tmp_path / "e.safetensors", model, opt, epoch=2,
                       extra={"best_state": best, "best_loss": 0.25, "wait": 3})
    ck = dp.io.read_checkpoint(tmp_path / "e.safetensors")
    assert ck.extra["best_loss"] == 0.25 and ck.extra["wait"] == 3
    for k, v in best.items():
        np.testing.assert_array_equal(ck.extra["best_state"][k], v)
