"""dp.compile's guards: a change to what the step reads (a parameter replaced, a layer added, a
param group added, a module's attribute or mode, a variable fn reads) re-records, also under
strict=True, never replays stale; verbose=True says so in one line on stderr. And what a
compiled step returns has eager's types on every call."""
from __future__ import annotations

from collections import namedtuple

import numpy as np
import pytest

import deltaprop as dp

nn = dp.nn
X = np.arange(12, dtype=np.float32).reshape(4, 3) / 10
Y = np.ones((4, 1), np.float32)


def _pair(build, change, steps=8, at=3, verbose=False):
    """The same training run eagerly and compiled (strict); `change(model, opt)` is applied to
    both before call `at`. Returns the compiled step; asserts every loss and parameter is equal."""
    runs = []
    for compiled in (False, True):
        dp.manual_seed(0)
        model = build()
        opt = dp.optim.SGD(model.parameters(), lr=0.1, momentum=0.5)

        def step(x, y, model=model, opt=opt):
            opt.zero_grad()
            loss = ((model(x) - y) ** 2).mean()
            loss.backward()
            opt.step()
            return loss
        fn = dp.compile(step, strict=True, verbose=verbose) if compiled else step
        losses = []
        for i in range(steps):
            if i == at:
                change(model, opt)
            losses.append(fn(dp.tensor(X), dp.tensor(Y)).data.copy())
        runs.append((model, losses, fn))
    (m_e, l_e, _), (m_c, l_c, fn) = runs
    for i, (a, b) in enumerate(zip(l_e, l_c)):
        assert np.array_equal(a, b), f"loss of call {i}: eager {a}, compiled {b}"
    for (k, a), (_, b) in zip(m_e.state_dict().items(), m_c.state_dict().items()):
        assert np.array_equal(a, b), k
    return fn


def test_a_replaced_parameter_re_records():
    def change(model, opt):
        model[0].weight = nn.Parameter(np.zeros((2, 3), np.float32))
        opt.param_groups[0]["params"][0] = model[0].weight
    fn = _pair(lambda: nn.Sequential(nn.Linear(3, 2), nn.Tanh(), nn.Linear(2, 1)), change)
    assert fn.recordings == 4 and fn.replays == 4


def test_an_appended_layer_and_an_added_param_group_re_record():
    def change(model, opt):
        model.append(nn.Linear(1, 1))
        opt.add_param_group({"params": model[2].parameters(), "lr": 0.05})
    fn = _pair(lambda: nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1)), change)
    assert fn.recordings == 4


def test_a_param_group_added_alone_re_records():
    extra = nn.Parameter(np.ones(2, np.float32))

    def change(model, opt):
        extra.grad = None
        opt.add_param_group({"params": [extra]})
    fn = _pair(lambda: nn.Sequential(nn.Linear(3, 1)), change)
    assert fn.recordings == 4


@pytest.mark.parametrize("change", [
    lambda m, o: setattr(m[1], "negative_slope", 0.5),
    lambda m, o: setattr(m[2], "p", 0.0),
    lambda m, o: m[2].eval(),
    lambda m, o: setattr(m[3], "eps", 1.0),
    lambda m, o: setattr(m[3], "momentum", 0.9),
], ids=["negative_slope", "dropout-p", "eval", "eps", "momentum"])
def test_a_module_attribute_the_forward_reads_re_records(change):
    def build():
        return nn.Sequential(nn.Linear(3, 4), nn.LeakyReLU(0.01), nn.Dropout(0.25), nn.BatchNorm1d(4),
                             nn.Linear(4, 1))
    fn = _pair(build, change)
    assert fn.recordings == 4


def test_verbose_writes_one_line_per_re_record(capsys):
    def change(model, opt):
        model[0].weight = nn.Parameter(np.zeros((1, 3), np.float32))
        opt.param_groups[0]["params"][0] = model[0].weight
    _pair(lambda: nn.Sequential(nn.Linear(3, 1)), change, verbose=True)
    err = capsys.readouterr().err.splitlines()
    assert err == ["dp.compile: _pair.<locals>.step re-records: Linear module: 'weight' was replaced "
                   "(Parameter -> Parameter)"]


def test_a_variable_fn_reads_from_its_closure_re_records():
    def run(compiled):
        dp.manual_seed(0)
        m = nn.Linear(3, 1)
        opt = dp.optim.SGD(m.parameters(), lr=0.1)
        scale = 1.0

        def step(x):
            opt.zero_grad()
            loss = (m(x) ** 2).mean() * scale  # (a Python number: part of the recording)
            loss.backward()
            opt.step()
            return loss
        fn = dp.compile(step, strict=True) if compiled else step
        out = []
        for i in range(7):
            if i == 3:
                scale = 3.0
            out.append(fn(dp.tensor(X)).data.copy())
        return out, fn
    (eager, _), (comp, fn) = run(False), run(True)
    assert [a.tobytes() for a in eager] == [b.tobytes() for b in comp]
    assert fn.recordings == 4 and fn.replays == 3


def test_return_types_are_eager_s_on_every_call():
    Out = namedtuple("Out", "loss x weight")
    dp.manual_seed(0)
    m = nn.Linear(3, 1)
    opt = dp.optim.SGD(m.parameters(), lr=0.1)
    x = dp.tensor(X)

    def step(x):
        opt.zero_grad()
        y = m(x)
        loss = (y ** 2).mean()
        loss.backward()
        opt.step()
        return (loss, x, m.weight), Out(loss, x, m.weight), {"loss": loss, "y": y.data}, [y]

    fn = dp.compile(step, strict=True)
    for _ in range(4):
        (loss, xr, wr), nt, d, lst = fn(x)
        assert (type(loss), type(xr), type(wr)) == (dp.Tensor, dp.Tensor, nn.Parameter)
        assert xr is x and wr is m.weight  # the objects themselves, as eager returns them
        assert type(nt) is Out and nt.x is x and nt.weight is m.weight
        assert type(d) is dict and type(d["y"]) is np.ndarray and type(lst) is list and type(lst[0]) is dp.Tensor
    assert fn.replays == 2
    kept = fn(x)[2]["y"].copy()
    held = fn(x)[2]["y"]
    fn(x)
    assert not np.array_equal(kept, held) and held is not fn(x)[2]["y"]  # a new array each call, never reused


def test_a_hook_registered_after_recording_is_not_skipped():
    dp.manual_seed(0)
    m = nn.Linear(3, 1)
    opt = dp.optim.SGD(m.parameters(), lr=0.1)
    seen = []

    def step(x):
        opt.zero_grad()
        loss = (m(x) ** 2).mean()
        loss.backward()
        opt.step()
        return loss
    fn = dp.compile(step)
    for _ in range(3):
        fn(dp.tensor(X))
    m.weight.register_hook(lambda g: seen.append(g.shape) or g * 0)
    with pytest.warns(RuntimeWarning, match="hooks"):
        fn(dp.tensor(X))
    before = m.weight.data.copy()
    fn(dp.tensor(X))
    assert seen == [(1, 3), (1, 3)] and np.array_equal(m.weight.data, before)  # the hook ran, zeroing the update


def test_a_thread_that_builds_and_trains_other_modules_changes_nothing_here():
    """Recording is per thread, and module edits elsewhere (another thread building and training
    its own model) only make the guards compare the modules: both runs equal their eager runs."""
    import threading

    def train(compiled, steps=30, build_more=False):
        m = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))
        for p in m.parameters():  # (a fixed start: the default generator is shared by the threads)
            p.data[...] = np.linspace(-0.5, 0.5, p.data.size, dtype=np.float32).reshape(p.shape)
        opt = dp.optim.SGD(m.parameters(), lr=0.05)

        def step(x, y):
            opt.zero_grad()
            loss = ((m(x) - y) ** 2).mean()
            loss.backward()
            opt.step()
            return loss
        fn = dp.compile(step, strict=True) if compiled else step
        out = []
        for i in range(steps):
            if build_more:
                nn.Linear(3, 3).eval()  # (edits of other modules, as the other thread runs)
            out.append(fn(dp.tensor(X + i / 100), dp.tensor(Y)).data.tobytes())
        return out

    expected = train(False)
    results = {}
    threads = [threading.Thread(target=lambda: results.__setitem__("a", train(True))),
               threading.Thread(target=lambda: results.__setitem__("b", train(False, build_more=True)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results["a"] == expected and results["b"] == expected
