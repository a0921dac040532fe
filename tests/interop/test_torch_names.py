"""PyTorch names a user reaches for (issue 14, point 3): each checked against PyTorch itself,
values and gradients in float64 to 1e-10, defaults and state_dict layouts."""
from __future__ import annotations

import numpy as np
import pytest

import deltaprop as dp
import deltaprop.nn.functional as F

TOL = dict(rtol=1e-10, atol=1e-10)


def _grad_pair(torch, fn_dp, fn_t, *arrays):
    """Run fn on float64 copies in both libraries; return (dp outputs, dp grads, torch out, torch grads)."""
    xs = [dp.tensor(a.copy(), requires_grad=True) for a in arrays]
    ts = [torch.tensor(a.copy(), requires_grad=True) for a in arrays]
    out, tout = fn_dp(*xs), fn_t(*ts)
    out.sum().backward() if out.ndim else out.backward()
    tout.sum().backward() if tout.ndim else tout.backward()
    return out, [x.grad.numpy() for x in xs], tout.detach().numpy(), [t.grad.numpy() for t in ts]


# -- Tensor methods, dp.cat, dp.from_numpy ---------------------------------------------------------
def test_float_double_to():
    x = dp.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)  # float64
    assert x.double() is x and x.to(np.float64) is x and x.to("cpu") is x
    y = x.float()
    assert y.dtype == np.float32 and y.float() is y
    assert x.to(y).dtype == np.float32 and x.to(dtype=np.float32).dtype == np.float32
    (y * 2).sum().backward()
    assert x.grad.dtype == np.float64 and np.all(x.grad.numpy() == 2)
    i = x.to(np.int64)
    assert i.dtype == np.int64 and not i.requires_grad  # an integer cast is not differentiable (PyTorch)
    with pytest.raises(TypeError, match="cpu"):
        x.to(device="cuda")


def test_view_shares_memory_and_version(torch):
    base = dp.tensor(np.arange(12.0).reshape(3, 4))
    v = base.view(4, 3)
    w = base.view(-1)
    assert v.shape == (4, 3) and w.shape == (12,)
    base[0, 0] = 100.0
    assert v.data[0, 0] == 100.0 and w.data[0] == 100.0
    assert v._version_value == base._version_value == w._version_value == 1
    v[1, 1] = -1.0  # a write through the view shows in the base and bumps the shared counter
    assert base.data[1, 0] == -1.0 and base._version_value == 2
    t = torch.arange(12.0).reshape(3, 4)
    assert t.t().is_contiguous() is False
    with pytest.raises(RuntimeError, match="reshape"):
        base.T.view(12)  # not expressible as a view: PyTorch raises too
    with pytest.raises(RuntimeError):
        t.t().view(12)
    # a saved view changed in place makes backward raise, as for reshape's views
    x = dp.tensor(np.arange(4.0), requires_grad=True)
    y = x * 1.0
    z = y.view(2, 2)
    out = (z * z).sum()  # mul saves z, a view of y
    with dp.no_grad():
        y += 1
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        out.backward()


def test_view_gradient(torch):
    a = np.random.default_rng(0).standard_normal((2, 6))
    out, g, tout, tg = _grad_pair(torch, lambda x: (x.view(3, 4) ** 2 * np.arange(4.0)).sum(),
                                  lambda x: (x.view(3, 4) ** 2 * torch.arange(4.0, dtype=torch.float64)).sum(), a)
    np.testing.assert_allclose(out.numpy(), tout, **TOL)
    np.testing.assert_allclose(g[0], tg[0], **TOL)


def test_cat(torch):
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((2, 3)), rng.standard_normal((2, 2))
    w = rng.standard_normal((2, 5))
    out, g, tout, tg = _grad_pair(torch, lambda x, y: (dp.cat([x, y], dim=1) * w).sum(),
                                  lambda x, y: (torch.cat([x, y], dim=1) * torch.tensor(w)).sum(), a, b)
    np.testing.assert_allclose(out.numpy(), tout, **TOL)
    for u, v in zip(g, tg):
        np.testing.assert_allclose(u, v, **TOL)
    assert dp.cat([dp.tensor(a), dp.tensor(a)]).shape == (4, 3)
    with pytest.raises(ValueError, match=r"concatenate: shapes \(2, 3\) and \(2, 2\)"):
        dp.cat([dp.tensor(a), dp.tensor(b)])


def test_from_numpy_shares_memory(torch):
    a = np.arange(3, dtype=np.int32)
    t = dp.from_numpy(a)
    a[1] = 7
    assert t.dtype == np.int32 and t.tolist() == [0, 7, 2]
    t.data[0] = 5
    assert a[0] == 5 and torch.from_numpy(a).tolist() == t.tolist()
    with pytest.raises(TypeError, match="expected np.ndarray, got list"):
        dp.from_numpy([1, 2])


# -- functional and losses ------------------------------------------------------------------------------
def test_one_hot(torch):
    lab = np.array([[0, 2], [1, 4]])
    got = F.one_hot(dp.tensor(lab))
    want = torch.nn.functional.one_hot(torch.tensor(lab))
    assert got.dtype == np.int64 and got.shape == tuple(want.shape) == (2, 2, 5)
    np.testing.assert_array_equal(got.numpy(), want.numpy())
    np.testing.assert_array_equal(F.one_hot(dp.tensor([1]), num_classes=3).numpy(), [[0, 1, 0]])
    with pytest.raises(ValueError, match="class value 3 is out of range for num_classes=3"):
        F.one_hot(dp.tensor([3]), 3)
    with pytest.raises(ValueError, match="out of range"):
        F.one_hot(dp.tensor([-1]), 3)
    with pytest.raises(TypeError, match="integer"):
        F.one_hot(dp.tensor([1.0]))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("case", ["plain", "weight", "ignore", "kdim", "unbatched"])
def test_nll_loss(torch, case, reduction):
    rng = np.random.default_rng(2)
    shape, tshape = {"kdim": ((3, 4, 2, 2), (3, 2, 2)), "unbatched": ((4,), ())}.get(case, ((5, 4), (5,)))
    x = rng.standard_normal(shape)
    t = rng.integers(0, 4, tshape)
    kw = {"reduction": reduction}
    if case == "weight":
        kw["weight"] = rng.uniform(0.5, 2, 4)
    if case == "ignore":
        t[1] = 7
        kw["ignore_index"] = 7
    tkw = {k: torch.tensor(v) if k == "weight" else v for k, v in kw.items()}
    out, g, tout, tg = _grad_pair(torch, lambda a: dp.nn.NLLLoss(**kw)(a, dp.tensor(t)),
                                  lambda a: torch.nn.NLLLoss(**tkw)(a, torch.tensor(t)), x)
    assert out.shape == tuple(tout.shape)
    np.testing.assert_allclose(out.numpy(), tout, **TOL)
    np.testing.assert_allclose(g[0], tg[0], **TOL)


def test_nll_loss_errors_and_state(torch):
    x = dp.tensor(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"target 3 is out of range for 3 classes"):
        F.nll_loss(x, dp.tensor([0, 3]))
    with pytest.raises(ValueError, match=r"needs a target of shape \(2,\)"):
        F.nll_loss(x, dp.tensor([0, 1, 2]))
    with pytest.raises(TypeError, match="integer"):
        F.nll_loss(x, dp.tensor([0.0, 1.0]))
    w = np.array([1.0, 2.0, 3.0])
    assert list(dp.nn.NLLLoss(weight=w).state_dict()) == list(torch.nn.NLLLoss(weight=torch.tensor(w)).state_dict())
    assert list(dp.nn.NLLLoss().state_dict()) == []


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_l1_loss(torch, reduction):
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    b[0, 0] = a[0, 0]  # |d|'(0) = 0, as PyTorch
    out, g, tout, tg = _grad_pair(torch, lambda x, y: dp.nn.L1Loss(reduction=reduction)(x, y),
                                  lambda x, y: torch.nn.L1Loss(reduction=reduction)(x, y), a, b)
    np.testing.assert_allclose(out.numpy(), tout, **TOL)
    for u, v in zip(g, tg):
        np.testing.assert_allclose(u, v, **TOL)
    with pytest.raises(ValueError, match=r"l1_loss: input shape \(4, 3\) and target shape \(3,\) differ"):
        F.l1_loss(dp.tensor(a), dp.tensor(b[0]))
    with pytest.raises(ValueError, match="reduction"):
        dp.nn.L1Loss(reduction="avg")


def test_module_dict(torch):
    torch.manual_seed(0)
    tm = torch.nn.ModuleDict({"enc": torch.nn.Linear(3, 4), "dec": torch.nn.Linear(4, 2)}).double()
    m = dp.nn.ModuleDict({"enc": dp.nn.Linear(3, 4, dtype=np.float64), "dec": dp.nn.Linear(4, 2, dtype=np.float64)})
    assert list(m) == ["enc", "dec"] and "enc" in m and len(m) == 2
    assert list(m.state_dict()) == list(tm.state_dict())
    m.load_state_dict({k: v.numpy() for k, v in tm.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((5, 3))
    np.testing.assert_allclose(m["dec"](m["enc"](dp.tensor(x))).numpy(),
                               tm["dec"](tm["enc"](torch.tensor(x))).detach().numpy(), **TOL)
    m["act"] = dp.nn.ReLU()
    assert list(m.keys()) == ["enc", "dec", "act"] and isinstance(m.pop("act"), dp.nn.ReLU)
    assert len(list(m.parameters())) == 4
    with pytest.raises(TypeError, match="not a dp.nn.Module"):
        m["x"] = 3
    with pytest.raises(KeyError, match="attribute"):
        m["keys"] = dp.nn.ReLU()


# -- optimizers and schedules ------------------------------------------------------------------------
@pytest.mark.parametrize("kw", [{}, {"lr": 0.1, "lr_decay": 0.05, "weight_decay": 0.1},
                                {"initial_accumulator_value": 0.3, "eps": 1e-6, "maximize": True}])
def test_adagrad_matches_torch(torch, kw):
    rng = np.random.default_rng(4)
    w0 = rng.standard_normal((3, 2))
    grads = [rng.standard_normal((3, 2)) for _ in range(5)]
    p = dp.tensor(w0.copy(), requires_grad=True)
    tp = torch.tensor(w0.copy(), requires_grad=True)
    opt, topt = dp.optim.Adagrad([p], **kw), torch.optim.Adagrad([tp], **kw)
    for g in grads:
        p.grad, tp.grad = dp.tensor(g), torch.tensor(g)
        opt.step()
        topt.step()
        np.testing.assert_allclose(p.numpy(), tp.detach().numpy(), **TOL)
    sd, tsd = opt.state_dict(), topt.state_dict()
    assert set(sd["state"][0]) == set(tsd["state"][0]) == {"step", "sum"}
    np.testing.assert_allclose(sd["state"][0]["sum"], tsd["state"][0]["sum"].numpy(), **TOL)
    assert sd["state"][0]["step"] == float(tsd["state"][0]["step"])
    for k, v in sd["param_groups"][0].items():
        assert tsd["param_groups"][0][k] == v, k
    opt2 = dp.optim.Adagrad([dp.tensor(w0.copy(), requires_grad=True)], **kw)
    opt2.load_state_dict(sd)
    np.testing.assert_array_equal(opt2.state_dict()["state"][0]["sum"], sd["state"][0]["sum"])


def test_adagrad_state_from_construction_and_errors(torch):
    p = dp.tensor(np.ones(2), requires_grad=True)
    sd = dp.optim.Adagrad([p], initial_accumulator_value=0.5).state_dict()
    np.testing.assert_array_equal(sd["state"][0]["sum"], [0.5, 0.5])  # PyTorch fills it in __init__ too
    for bad in ({"lr": -1}, {"lr_decay": -1}, {"weight_decay": -1}, {"initial_accumulator_value": -1}, {"eps": -1}):
        with pytest.raises(ValueError, match="Invalid"):
            dp.optim.Adagrad([p], **bad)


class _Scale:
    def __init__(self):
        self.factor = 0.5

    def __call__(self, epoch):
        return self.factor ** epoch


def _sched_pair(torch, make_opt, make_sched, steps=12, groups=1):
    ps = [dp.tensor(np.ones(2), requires_grad=True) for _ in range(groups)]
    tps = [torch.ones(2, dtype=torch.float64, requires_grad=True) for _ in range(groups)]
    opt = make_opt(dp.optim, [{"params": [p], "lr": 0.1 * (i + 1)} for i, p in enumerate(ps)])
    topt = make_opt(torch.optim, [{"params": [p], "lr": 0.1 * (i + 1)} for i, p in enumerate(tps)])
    s, ts = make_sched(dp.optim.lr_scheduler, opt), make_sched(torch.optim.lr_scheduler, topt)
    rows = []
    for _ in range(steps):
        rows.append(([g["lr"] for g in opt.param_groups], [g["lr"] for g in topt.param_groups],
                     [(g.get("momentum"), g.get("betas")) for g in opt.param_groups],
                     [(g.get("momentum"), g.get("betas")) for g in topt.param_groups]))
        opt.step()
        topt.step()
        s.step()
        ts.step()
    for lr, tlr, mom, tmom in rows:
        np.testing.assert_allclose(lr, tlr, rtol=1e-12, atol=0)
        for (m, b), (tm, tb) in zip(mom, tmom):
            assert (m is None) == (tm is None) and (b is None) == (tb is None)
            np.testing.assert_allclose([m or 0, *(b or ())], [tm or 0, *(tb or ())], rtol=1e-12)
    assert s.get_last_lr() == pytest.approx(ts.get_last_lr(), rel=1e-12)
    assert set(s.state_dict()) == set(ts.state_dict())  # PyTorch's state_dict layout
    return s, ts


SGD = lambda mod, groups: mod.SGD(groups, momentum=0.9)  # noqa: E731
ADAM = lambda mod, groups: mod.Adam(groups)  # noqa: E731


@pytest.mark.parametrize("name, make_opt, make_sched, groups", [
    ("lambda", SGD, lambda m, o: m.LambdaLR(o, lambda e: 1 / (1 + e)), 2),
    ("lambda-list", SGD, lambda m, o: m.LambdaLR(o, [lambda e: 0.9 ** e, lambda e: 1 + e]), 2),
    ("multistep", SGD, lambda m, o: m.MultiStepLR(o, [2, 5, 5, 9], gamma=0.5), 1),
    ("exponential", SGD, lambda m, o: m.ExponentialLR(o, 0.8), 2),
    ("onecycle-sgd", SGD, lambda m, o: m.OneCycleLR(o, max_lr=1.0, total_steps=12), 1),
    ("onecycle-adam", ADAM, lambda m, o: m.OneCycleLR(o, max_lr=[0.5, 1.0], epochs=3, steps_per_epoch=4), 2),
    ("onecycle-3phase-linear", SGD, lambda m, o: m.OneCycleLR(
        o, max_lr=2.0, total_steps=13, three_phase=True, anneal_strategy="linear", pct_start=0.25,
        div_factor=10.0, final_div_factor=100.0, base_momentum=0.8, max_momentum=0.9), 1),
    ("onecycle-nomomentum", ADAM, lambda m, o: m.OneCycleLR(o, max_lr=1.0, total_steps=12,
                                                            cycle_momentum=False), 1),
])
def test_schedulers_match_torch(torch, name, make_opt, make_sched, groups):
    _sched_pair(torch, make_opt, make_sched, steps=12, groups=groups)


def test_scheduler_state_and_errors(torch):
    p = dp.tensor(np.ones(2), requires_grad=True)
    opt = dp.optim.SGD([p], lr=1.0)
    fn = _Scale()
    s = dp.optim.lr_scheduler.LambdaLR(opt, fn)
    s.step()
    sd = s.state_dict()
    assert sd["lr_lambdas"] == [{"factor": 0.5}] and sd["last_epoch"] == 1
    fn.factor = 0.1
    s.load_state_dict(sd)
    assert fn.factor == 0.5 and s.last_epoch == 1
    assert dp.optim.lr_scheduler.LambdaLR(opt, lambda e: 1.0).state_dict()["lr_lambdas"] == [None]
    with pytest.raises(ValueError, match="Expected 1 lr_lambdas, but got 2"):
        dp.optim.lr_scheduler.LambdaLR(opt, [fn, fn])
    with pytest.raises(ValueError, match="total_steps OR"):
        dp.optim.lr_scheduler.OneCycleLR(opt, max_lr=1.0)
    with pytest.raises(ValueError, match="momentum or beta1"):
        dp.optim.lr_scheduler.OneCycleLR(dp.optim.RMSprop([p]) if False else dp.optim.Adagrad([p]), 1.0,
                                         total_steps=3)
    s = dp.optim.lr_scheduler.OneCycleLR(dp.optim.SGD([p], lr=0.1, momentum=0.9), 1.0, total_steps=2)
    s.step()
    s.step()
    with pytest.raises(ValueError, match="Tried to step 3 times"):
        s.step()
    # the closed form (deprecated step(epoch)) agrees with the recursion
    opt = dp.optim.SGD([p], lr=1.0)
    m = dp.optim.lr_scheduler.MultiStepLR(opt, [2, 4])
    with pytest.warns(UserWarning):
        m.step(5)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01)


# -- data ------------------------------------------------------------------------------------------------
def test_dataset_base_and_random_split(torch):
    class Squares(dp.data.Dataset):
        def __len__(self):
            return 10

        def __getitem__(self, i):
            return np.float64(i), i * i

    ds = Squares()
    assert isinstance(dp.data.TensorDataset(np.zeros((2, 1))), dp.data.Dataset)
    for lengths in ([0.3, 0.3, 0.4], [0.5, 0.5], [0.33, 0.33, 0.34], [3, 7]):
        parts = dp.data.random_split(ds, lengths, seed=0)
        tparts = torch.utils.data.random_split(range(10), lengths)
        assert [len(p) for p in parts] == [len(p) for p in tparts]
        idx = sorted(i for p in parts for i in p.indices)
        assert idx == list(range(10))
    a = [p.indices for p in dp.data.random_split(ds, [0.5, 0.5], seed=3)]
    b = [p.indices for p in dp.data.random_split(ds, [0.5, 0.5], generator=np.random.default_rng(3))]
    assert a == b and a != [list(range(5)), list(range(5, 10))]
    dp.manual_seed(1)
    c = [p.indices for p in dp.data.random_split(ds, [5, 5])]
    dp.manual_seed(1)
    assert c == [p.indices for p in dp.data.random_split(ds, [5, 5])]
    sub = dp.data.random_split(ds, [4, 6], seed=0)[0]
    x, y = next(iter(dp.data.DataLoader(sub, batch_size=4)))
    assert np.array_equal(y.numpy(), x.numpy().astype(int) ** 2) and sorted(x.numpy()) == sorted(sub.indices)
    assert len(ds + ds) == 20 and (ds + ds)[13] == (3.0, 9)
    with pytest.raises(ValueError, match="does not equal the length"):
        dp.data.random_split(ds, [3, 3])
    with pytest.raises(ValueError, match="not between 0 and 1"):
        dp.data.random_split(ds, [1.5, -0.5])
    with pytest.raises(NotImplementedError, match="__getitem__"):
        dp.data.Dataset()[0]
