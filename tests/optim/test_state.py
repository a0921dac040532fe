"""Optimizer base: parameter groups, zero_grad, state_dict layout, round trips and load validation."""
from __future__ import annotations

import numpy as np
import pytest

import deltaprop as dp
from deltaprop.optim import SGD, Adam, AdamW, Optimizer, RMSprop

from .conftest import GRADS

OPTIMIZERS = [
    (SGD, dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    (Adam, dict(lr=0.1, amsgrad=True, weight_decay=0.1)),
    (AdamW, dict(lr=0.1)),
    (RMSprop, dict(lr=0.1, momentum=0.5, centered=True)),
]
IDS = [cls.__name__ for cls, _ in OPTIMIZERS]


def make_params(dtype=np.float64):
    rng = np.random.default_rng(0)
    return [dp.tensor(rng.standard_normal(s).astype(dtype), requires_grad=True) for s in [(3, 2), (2,), (1, 3)]]


def gradients(step, params):
    rng = np.random.default_rng(100 + step)
    return [rng.standard_normal(p.shape).astype(p.dtype) for p in params]


def train(opt, params, steps, start=0):
    for k in range(start, start + steps):
        for p, g in zip(params, gradients(k, params)):
            p.grad = dp.tensor(g)
        opt.step()


def test_exports():
    import deltaprop.optim as optim
    assert {"Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "lr_scheduler"} <= set(optim.__all__)
    assert dp.optim.lr_scheduler.StepLR and dp.optim.lr_scheduler.CosineAnnealingLR
    assert issubclass(AdamW, Optimizer) and issubclass(SGD, Optimizer)


def test_empty_parameter_list():
    with pytest.raises(ValueError, match="optimizer got an empty parameter list"):
        SGD([])
    with pytest.raises(ValueError, match="optimizer got an empty parameter list"):
        Adam(iter([]))


def test_bad_params():
    p = dp.tensor(np.zeros(2), requires_grad=True)
    with pytest.raises(TypeError, match="iterable of Tensors or dicts"):
        SGD(p)
    with pytest.raises(TypeError, match="can only optimize Tensors"):
        SGD([np.zeros(2)])
    with pytest.raises(ValueError, match="non-leaf"):
        SGD([p * 2])
    with pytest.raises(ValueError, match="more than one parameter group"):
        SGD([{"params": [p]}, {"params": [p]}])
    with pytest.raises(TypeError, match="ordered collections"):
        SGD([{"params": {p}}])


def test_param_groups_carry_every_option():
    a, b = make_params()[:2]
    opt = Adam([{"params": [a]}, {"params": [b], "lr": 0.5, "betas": (0.5, 0.6)}], lr=0.01)
    g0, g1 = opt.param_groups
    assert g0["params"] == [a] and g1["params"] == [b]
    assert g0["lr"] == 0.01 and g1["lr"] == 0.5 and g1["betas"] == (0.5, 0.6)
    for g in (g0, g1):
        assert set(g) == {"params", "lr", "betas", "eps", "weight_decay", "amsgrad", "maximize",
                          "decoupled_weight_decay"}
    with pytest.raises(ValueError, match="Invalid learning rate: -1"):
        Adam([{"params": [a], "lr": -1}])


def test_groups_with_different_lr_update_differently():
    a = dp.tensor(np.array([1.0]), requires_grad=True)
    b = dp.tensor(np.array([1.0]), requires_grad=True)
    opt = SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1)
    a.grad = dp.tensor(np.array([1.0]))
    b.grad = dp.tensor(np.array([1.0]))
    opt.step()
    np.testing.assert_allclose(a.data, [0.9])
    np.testing.assert_allclose(b.data, [0.5])


def test_add_param_group():
    a, b, c = make_params()
    opt = SGD([a], lr=0.1, momentum=0.9)
    opt.add_param_group({"params": [b, c], "lr": 0.2})
    assert len(opt.param_groups) == 2 and opt.param_groups[1]["momentum"] == 0.9
    assert opt.state_dict()["param_groups"][1]["params"] == [1, 2]


def test_named_parameters_are_accepted():
    a, b, _ = make_params()
    opt = SGD([("w", a), ("b", b)], lr=0.1)
    assert opt.param_groups[0]["params"] == [a, b]
    assert opt.state_dict()["param_groups"][0]["param_names"] == ["w", "b"]


def test_zero_grad():
    a, b, c = make_params()
    opt = SGD([a, b, c])
    shared = dp.tensor(np.ones(2))
    b.grad = shared
    a.grad = dp.tensor(np.ones((3, 2)))
    opt.zero_grad(set_to_none=False)
    assert c.grad is None
    np.testing.assert_array_equal(a.grad.data, np.zeros((3, 2)))
    assert isinstance(b.grad, dp.Tensor) and b.grad is not shared and b.grad.dtype == np.float64
    np.testing.assert_array_equal(shared.data, np.ones(2))  # the old (maybe shared) gradient is not written
    opt.zero_grad()
    assert a.grad is None and b.grad is None and c.grad is None


@pytest.mark.parametrize("cls, kw", OPTIMIZERS, ids=IDS)
def test_state_dict_layout(cls, kw):
    a, b, c = make_params()
    opt = cls([{"params": [a, b]}, {"params": [c], "lr": 0.05}], **kw)
    train(opt, [a, b, c], 1)
    sd = opt.state_dict()
    assert list(sd) == ["state", "param_groups"]
    assert [g["params"] for g in sd["param_groups"]] == [[0, 1], [2]]
    assert list(sd["param_groups"][0])[-1] == "params"
    assert sd["param_groups"][1]["lr"] == 0.05
    assert {k: v for k, v in sd["param_groups"][0].items() if k != "params"} == \
        {k: v for k, v in opt.param_groups[0].items() if k != "params"}
    assert sorted(sd["state"]) == [0, 1, 2]
    for i, p in enumerate([a, b, c]):
        assert set(sd["state"][i]) == set(opt.state[p])
        for key, value in sd["state"][i].items():
            if isinstance(value, np.ndarray):
                assert value.shape == p.shape
                np.testing.assert_array_equal(value, opt.state[p][key])
                assert not np.shares_memory(value, opt.state[p][key])
                assert not np.shares_memory(value, p.data)


@pytest.mark.parametrize("cls, kw, keys", [
    (SGD, dict(momentum=0.9), {"momentum_buffer"}),
    (Adam, dict(), {"step", "exp_avg", "exp_avg_sq"}),
    (AdamW, dict(amsgrad=True), {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"}),
    (RMSprop, dict(), {"step", "square_avg"}),
    (RMSprop, dict(momentum=0.9, centered=True), {"step", "square_avg", "momentum_buffer", "grad_avg"}),
])
def test_state_dict_keys_per_optimizer(cls, kw, keys):
    params = make_params()
    opt = cls(params, **kw)
    train(opt, params, 1)
    sd = opt.state_dict()
    assert all(set(sd["state"][i]) == keys for i in range(3))
    if "step" in keys:
        assert sd["state"][0]["step"] == 1


@pytest.mark.parametrize("cls, kw", OPTIMIZERS, ids=IDS)
def test_state_dict_is_a_copy(cls, kw):
    params = make_params()
    opt = cls(params, **kw)
    train(opt, params, 2)
    sd = opt.state_dict()
    for entry in sd["state"].values():
        for v in entry.values():
            if isinstance(v, np.ndarray):
                v[...] = 1e6
    sd["param_groups"][0]["lr"] = 123.0
    assert opt.param_groups[0]["lr"] == kw["lr"]
    train(opt, params, 1, start=2)
    fresh = cls(make_params(), **kw)
    fresh_params = [p for g in fresh.param_groups for p in g["params"]]
    train(fresh, fresh_params, 3)
    for p, q in zip(params, fresh_params):
        np.testing.assert_array_equal(p.data, q.data)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cls, kw", OPTIMIZERS, ids=IDS)
def test_round_trip_two_plus_two_equals_four(cls, kw, dtype):
    straight = make_params(dtype)
    opt = cls([{"params": straight[:2]}, {"params": straight[2:], "lr": 0.03}], **kw)
    train(opt, straight, 4)

    first = make_params(dtype)
    opt1 = cls([{"params": first[:2]}, {"params": first[2:], "lr": 0.03}], **kw)
    train(opt1, first, 2)
    sd = opt1.state_dict()
    weights = [p.data.copy() for p in first]
    del opt1

    resumed = [dp.tensor(w, requires_grad=True) for w in weights]
    opt2 = cls([{"params": resumed[:2]}, {"params": resumed[2:], "lr": 0.5}], **kw)
    opt2.load_state_dict(sd)
    assert opt2.param_groups[1]["lr"] == 0.03  # options come from the state dict
    assert opt2.param_groups[1]["params"] == resumed[2:]
    for entry in sd["state"].values():  # loading copied: changing sd afterwards changes nothing
        for v in entry.values():
            if isinstance(v, np.ndarray):
                v[...] = 7.0
    train(opt2, resumed, 2, start=2)
    for p, q in zip(straight, resumed):
        assert q.data.dtype == dtype
        np.testing.assert_array_equal(p.data, q.data)


def test_load_casts_state_to_the_parameter_dtype():
    p64 = make_params(np.float64)
    opt = Adam(p64, lr=0.1)
    train(opt, p64, 1)
    p32 = make_params(np.float32)
    opt32 = Adam(p32, lr=0.1)
    opt32.load_state_dict(opt.state_dict())
    assert all(v.dtype == np.float32 for s in opt32.state.values() for v in s.values() if isinstance(v, np.ndarray))
    train(opt32, p32, 1, start=1)
    assert all(p.dtype == np.float32 for p in p32)


def _loaded_opt():
    params = make_params()
    opt = Adam([{"params": params[:2]}, {"params": params[2:]}], lr=0.1, amsgrad=True)
    train(opt, params, 2)
    return opt, params


def _assert_unchanged(opt, snapshot):
    after = opt.state_dict()
    assert after["param_groups"] == snapshot["param_groups"]
    assert after["state"].keys() == snapshot["state"].keys()
    for i, entry in snapshot["state"].items():
        for k, v in entry.items():
            np.testing.assert_array_equal(after["state"][i][k], v)


@pytest.mark.parametrize("mutate, message", [
    (lambda sd: sd["param_groups"].pop(), "different number of parameter groups"),
    (lambda sd: sd["param_groups"][0]["params"].pop(), "doesn't match the size of optimizer's group"),
    (lambda sd: sd["state"][1].__setitem__("exp_avg", np.zeros((5,))), r"'exp_avg' of parameter 1 has shape \(5,\)"),
    (lambda sd: sd["state"].__setitem__(9, {"step": 1.0}), "parameter 9"),
    (lambda sd: sd["state"][2].pop("max_exp_avg_sq"), "max_exp_avg_sq"),
    (lambda sd: sd["param_groups"][1].__setitem__("lr", -1.0), "Invalid learning rate"),
    (lambda sd: sd.pop("state"), "'state'"),
])
def test_load_validation_changes_nothing(mutate, message):
    opt, params = _loaded_opt()
    good = opt.state_dict()
    bad = opt.state_dict()
    mutate(bad)
    # a different valid state to load, so a partial load would be visible
    other, _ = _loaded_opt()
    train(other, [p for g in other.param_groups for p in g["params"]], 1, start=5)
    target = other
    snapshot = target.state_dict()
    with pytest.raises(ValueError, match=message):
        target.load_state_dict(bad)
    _assert_unchanged(target, snapshot)
    assert good  # the unmutated state dict still loads
    target.load_state_dict(good)


def test_step_after_load_of_torch_like_state():
    # a state dict whose step is a 0-d array (as torch's tensor(3.) becomes via .numpy()) loads
    p = dp.tensor(np.array([1.0, 2.0]), requires_grad=True)
    opt = Adam([p], lr=0.1)
    sd = {"state": {0: {"step": np.array(3.0, dtype=np.float32), "exp_avg": np.array([0.1, 0.1], np.float32),
                        "exp_avg_sq": np.array([0.01, 0.01], np.float32)}},
          "param_groups": [{"lr": 0.01, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0, "amsgrad": False,
                            "maximize": False, "foreach": None, "capturable": False, "differentiable": False,
                            "fused": None, "decoupled_weight_decay": False, "params": [0]}]}
    opt.load_state_dict(sd)
    assert opt.state[p]["step"] == 3.0 and opt.state[p]["exp_avg"].dtype == np.float64
    p.grad = dp.tensor(np.array([0.0, 0.0]))
    opt.step()
    assert opt.state[p]["step"] == 4.0


def test_load_torch_state_dict(torch):
    rng = np.random.default_rng(5)
    w0 = rng.standard_normal((3, 2))
    grads = rng.standard_normal((4, 3, 2))
    tp = torch.nn.Parameter(torch.tensor(w0))
    to = torch.optim.Adam([tp], lr=0.01)
    for g in grads[:2]:
        tp.grad = torch.tensor(g)
        to.step()
    tsd = to.state_dict()
    sd = {"state": {k: {n: v.numpy().copy() for n, v in s.items()} for k, s in tsd["state"].items()},
          "param_groups": tsd["param_groups"]}
    p = dp.tensor(tp.detach().numpy().copy(), requires_grad=True)
    opt = Adam([p], lr=0.5)
    opt.load_state_dict(sd)
    for g in grads[2:]:
        tp.grad = torch.tensor(g)
        to.step()
        p.grad = dp.tensor(g.copy())
        opt.step()
    np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-12, atol=1e-14)
