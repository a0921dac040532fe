"""dp.compile: a recorded and replayed step is bitwise equal to eager, step after step; it
re-traces when it must, and refuses (falls back to eager) what it cannot replay."""
from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest

import deltaprop as dp
from deltaprop.bench import _common as C
from deltaprop.compiler import NonFiniteStepError

nn = dp.nn
F = dp.nn.functional


# -- the networks of the benchmark (deltaprop/bench/lib_deltaprop.py), built twice identically --------
def _mazur():
    l1, l2 = nn.Linear(2, 2, dtype=np.float64), nn.Linear(2, 2, dtype=np.float64)
    (w1, b1), (w2, b2) = C.mazur_params()
    model = nn.Sequential(l1, l2)
    model.load_state_dict({"0.weight": w1, "0.bias": b1, "1.weight": w2, "1.bias": b2})

    def loss_fn(x, t):
        o = l2(l1(x).sigmoid()).sigmoid()
        return 0.5 * ((t - o) ** 2).sum()
    return model, loss_fn


def _mlp(sizes=C.MLP_SIZES):
    i, h1, h2, k = sizes
    dp.manual_seed(0)
    model = nn.Sequential(nn.Linear(i, h1), nn.ReLU(), nn.Linear(h1, h2), nn.ReLU(), nn.Linear(h2, k))
    return model, lambda x, y: F.cross_entropy(model(x), y)


def _cnn():
    dp.manual_seed(0)
    ch = C.CNN_CHANNELS
    model = nn.Sequential(nn.Conv2d(1, ch, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(ch * 16, 10))
    return model, lambda x, y: F.cross_entropy(model(x), y)


def _optimizer(name, params):
    if name == "sgd":
        return dp.optim.SGD(params, lr=0.05, momentum=0.9, weight_decay=1e-3)
    if name == "nesterov":
        return dp.optim.SGD(params, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-4)
    if name == "adam":
        return dp.optim.Adam(params, lr=1e-3, weight_decay=1e-4)
    return dp.optim.AdamW(params, lr=1e-3)


def _setup(build, opt_name):
    model, loss_fn = build()
    opt = _optimizer(opt_name, model.parameters())

    def step(x, y):
        opt.zero_grad()
        loss = loss_fn(x, y)
        loss.backward()
        opt.step()
        return loss
    return model, opt, step


def _assert_same(m_eager, m_comp, what=""):
    for (name, a), (_, b) in zip(m_eager.named_parameters(), m_comp.named_parameters()):
        assert np.array_equal(a.data, b.data), f"{what}: {name} differs"
        if a.grad is None:
            assert b.grad is None, f"{what}: {name}.grad"
        else:
            assert np.array_equal(a.grad.data, b.grad.data), f"{what}: {name}.grad differs"


def _train_both(build, opt_name, batches, compile_kw=None):
    m1, _o1, eager = _setup(build, opt_name)
    m2, _o2, step = _setup(build, opt_name)
    comp = dp.compile(step, **(compile_kw or {}))
    for i, (x, y) in enumerate(batches):
        l1, l2 = eager(dp.tensor(x), dp.tensor(y)), comp(dp.tensor(x), dp.tensor(y))
        assert np.array_equal(l1.data, l2.data), f"loss at step {i}: {l1} vs {l2}"
        _assert_same(m1, m2, f"step {i}")
    return m1, m2, comp


def _batches(n, shape, classes, steps, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return [(rng.random((n,) + shape).astype(dtype), rng.integers(0, classes, n)) for _ in range(steps)]


@pytest.mark.parametrize("opt_name", ["sgd", "adam"])
def test_mazur_bitwise_100_steps(opt_name):
    rng = np.random.default_rng(1)
    batches = [(rng.random((1, 2)), rng.random((1, 2))) for _ in range(100)]
    _, _, comp = _train_both(_mazur, opt_name, batches)
    assert comp.recordings == 2 and comp.replays == 98


@pytest.mark.parametrize("opt_name", ["sgd", "nesterov", "adam", "adamw"])
def test_mlp_bitwise_100_steps_new_batch_and_labels(opt_name):
    batches = _batches(32, (784,), 10, 100, seed=2)
    _, _, comp = _train_both(_mlp, opt_name, batches)
    assert comp.recordings == 2 and comp.replays == 98


@pytest.mark.parametrize("opt_name", ["sgd", "adamw"])
def test_cnn_bitwise_100_steps(opt_name):
    rng = np.random.default_rng(3)
    batches = [((rng.integers(0, 17, (16, 1, 8, 8)) / 16).astype(np.float32), rng.integers(0, 10, 16))
               for _ in range(100)]
    _, _, comp = _train_both(_cnn, opt_name, batches)
    assert comp.replays == 98


def test_small_mlp_float64_mse_and_tanh():
    def build():
        dp.manual_seed(5)
        model = nn.Sequential(nn.Linear(3, 8, dtype=np.float64), nn.Tanh(), nn.Linear(8, 2, dtype=np.float64))
        return model, lambda x, y: F.mse_loss(model(x), y)
    rng = np.random.default_rng(4)
    batches = [(rng.normal(size=(5, 3)), rng.normal(size=(5, 2))) for _ in range(30)]
    _train_both(build, "sgd", batches)


def test_shape_change_retraces_and_last_smaller_batch_is_cached():
    x = np.random.default_rng(6).random((70, 20)).astype(np.float32)
    y = np.random.default_rng(7).integers(0, 10, 70)
    batches = []
    for _epoch in range(4):  # 32 + 32 + 6 per epoch
        batches += [(x[i:i + 32], y[i:i + 32]) for i in range(0, 70, 32)]
    _, _, comp = _train_both(lambda: _mlp((20, 16, 16, 10)), "sgd", batches)
    assert comp.recordings == 4  # two per shape, then only replays
    assert comp.replays == len(batches) - 4


def test_dropout_masks_new_each_step_and_equal_to_eager():
    def build():
        dp.manual_seed(8)
        model = nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Dropout(0.5), nn.Linear(64, 3))
        return model, lambda x, y: F.cross_entropy(model(x), y)
    batches = _batches(8, (10,), 3, 20, seed=9)
    m1, _o1, eager = _setup(build, "sgd")
    m2, _o2, step = _setup(build, "sgd")
    comp = dp.compile(step)
    drop1, drop2 = [], []
    for i, (x, y) in enumerate(batches):
        dp.manual_seed(100 + i)
        l1 = eager(dp.tensor(x), dp.tensor(y))
        drop1.append(dp.rand(4).numpy())  # the generator's state after the step
        dp.manual_seed(100 + i)
        l2 = comp(dp.tensor(x), dp.tensor(y))
        drop2.append(dp.rand(4).numpy())
        assert np.array_equal(l1.data, l2.data)
        _assert_same(m1, m2, f"step {i}")
    assert all(np.array_equal(a, b) for a, b in zip(drop1, drop2))  # the same number of draws
    assert comp.replays == 18

    # the replay draws a new mask each call: the same input gives different outputs
    model = nn.Sequential(nn.Dropout(0.5))
    f = dp.compile(lambda x: model(x))
    x = dp.ones(1000)
    outs = [f(x).numpy() for _ in range(5)]
    assert f.replays == 3
    assert not np.array_equal(outs[3], outs[4])
    assert set(np.unique(outs[4])) == {0.0, 2.0}


def test_batchnorm_running_stats_equal_eager_and_eval_mode_retraces():
    def build():
        dp.manual_seed(10)
        model = nn.Sequential(nn.Linear(6, 12), nn.BatchNorm1d(12), nn.ReLU(), nn.Linear(12, 3))
        return model, lambda x, y: F.cross_entropy(model(x), y)
    batches = _batches(16, (6,), 3, 30, seed=11)
    m1, m2, comp = _train_both(build, "adam", batches)
    bn1, bn2 = m1[1], m2[1]
    assert np.array_equal(bn1.running_mean.data, bn2.running_mean.data)
    assert np.array_equal(bn1.running_var.data, bn2.running_var.data)
    assert not np.array_equal(bn2.running_mean.data, 0)
    # eval mode: a different computation (running statistics): the module's mode is checked
    x = dp.tensor(batches[0][0])
    m1.eval(), m2.eval()
    f = dp.compile(lambda x: m2(x))
    with dp.no_grad():
        for _ in range(3):
            assert np.array_equal(f(x).data, m1(x).data)
        m1.train(), m2.train()
        for _ in range(3):
            assert np.array_equal(f(x).data, m1(x).data)
    assert np.array_equal(bn1.running_mean.data, bn2.running_mean.data)


def test_lr_change_and_scheduler_apply_on_the_next_step():
    batches = _batches(8, (20,), 10, 12, seed=12)
    m1, o1, eager = _setup(lambda: _mlp((20, 16, 16, 10)), "sgd")
    m2, o2, step = _setup(lambda: _mlp((20, 16, 16, 10)), "sgd")
    comp = dp.compile(step)
    s1, s2 = dp.optim.lr_scheduler.StepLR(o1, 2, 0.5), dp.optim.lr_scheduler.StepLR(o2, 2, 0.5)
    for i, (x, y) in enumerate(batches):
        if i == 7:
            o1.param_groups[0]["lr"] = o2.param_groups[0]["lr"] = 0.3
        eager(dp.tensor(x), dp.tensor(y)), comp(dp.tensor(x), dp.tensor(y))
        s1.step(), s2.step()
        _assert_same(m1, m2, f"step {i}")
    assert comp.replays == 10


def test_scheduler_and_clipping_inside_the_step_are_replayed():
    def setup():
        model, loss_fn = _mlp((20, 16, 16, 10))
        opt = dp.optim.SGD(model.parameters(), lr=0.5)
        sched = dp.optim.lr_scheduler.StepLR(opt, 3, 0.5)

        def step(x, y):
            opt.zero_grad()
            loss = loss_fn(x, y)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 0.05)
            opt.step()
            sched.step()
            return loss
        return model, opt, step
    m1, o1, eager = setup()
    m2, o2, step = setup()
    comp = dp.compile(step)
    for i, (x, y) in enumerate(_batches(8, (20,), 10, 10, seed=13)):
        eager(dp.tensor(x), dp.tensor(y)), comp(dp.tensor(x), dp.tensor(y))
        _assert_same(m1, m2, f"step {i}")
        assert o1.param_groups[0]["lr"] == o2.param_groups[0]["lr"]
    assert comp.replays == 8


def test_replacing_a_parameter_array_retraces():
    batches = _batches(8, (20,), 10, 10, seed=14)
    m1, _o1, eager = _setup(lambda: _mlp((20, 16, 16, 10)), "sgd")
    m2, _o2, step = _setup(lambda: _mlp((20, 16, 16, 10)), "sgd")
    comp = dp.compile(step)
    for i, (x, y) in enumerate(batches):
        if i == 5:
            new = np.full(m1[0].weight.shape, 0.01, np.float32)
            m1[0].weight.data, m2[0].weight.data = new.copy(), new.copy()
        eager(dp.tensor(x), dp.tensor(y)), comp(dp.tensor(x), dp.tensor(y))
        _assert_same(m1, m2, f"step {i}")
    assert comp.recordings == 4


def test_versions_bumped_as_eager():
    m1, _o1, eager = _setup(lambda: _mlp((20, 16, 16, 10)), "sgd")
    m2, _o2, step = _setup(lambda: _mlp((20, 16, 16, 10)), "sgd")
    comp = dp.compile(step)
    for x, y in _batches(8, (20,), 10, 5, seed=15):
        eager(dp.tensor(x), dp.tensor(y)), comp(dp.tensor(x), dp.tensor(y))
    assert [p._version_value for p in m1.parameters()] == [p._version_value for p in m2.parameters()] == [5] * 6


def test_item_inside_fn_warns_and_falls_back_or_raises_under_strict():
    m1, _o1, eager = _setup(lambda: _mlp((20, 16, 16, 10)), "sgd")
    m2, _o2, step = _setup(lambda: _mlp((20, 16, 16, 10)), "sgd")
    seen = []

    def step_with_item(x, y):
        loss = step(x, y)
        seen.append(loss.item())
        return loss
    comp = dp.compile(step_with_item)
    batches = _batches(8, (20,), 10, 5, seed=16)
    with pytest.warns(RuntimeWarning, match=r"runs eagerly: .*\.item\(\)"):
        for x, y in batches:
            eager(dp.tensor(x), dp.tensor(y)), comp(dp.tensor(x), dp.tensor(y))
    _assert_same(m1, m2)
    assert comp.replays == 0 and len(seen) == 5
    strict = dp.compile(step_with_item, strict=True)
    with pytest.raises(RuntimeError, match=r"strict=True.*\.item\(\)"):
        strict(dp.tensor(batches[0][0]), dp.tensor(batches[0][1]))


def test_unreplayable_steps_fall_back_to_eager_with_the_same_numbers():
    def manual_sgd():
        model, loss_fn = _mlp((20, 16, 16, 10))

        def step(x, y):
            model.zero_grad()
            loss_fn(x, y).backward()
            with dp.no_grad():
                for p in model.parameters():
                    p -= 0.1 * p.grad
        return model, step

    def hooked():
        model, loss_fn = _mlp((20, 16, 16, 10))
        opt = dp.optim.SGD(model.parameters(), lr=0.1)
        model[0].weight.register_hook(lambda g: g * 2)

        def step(x, y):
            opt.zero_grad()
            loss_fn(x, y).backward()
            opt.step()
        return model, step

    def fresh_tensor():
        model, loss_fn = _mlp((20, 16, 16, 10))
        opt = dp.optim.SGD(model.parameters(), lr=0.1)

        def step(x, y):
            opt.zero_grad()
            loss_fn(dp.tensor(np.asarray(x) * 2), y).backward()  # NumPy inside fn: not an op, a new array each call
            opt.step()
        return model, step

    for make, why in [(manual_sgd, "in place"), (hooked, "hooks"), (fresh_tensor, "value into Python")]:
        m1, eager = make()
        m2, step = make()
        comp = dp.compile(step)
        with pytest.warns(RuntimeWarning, match=why):
            for x, y in _batches(8, (20,), 10, 5, seed=17):
                eager(dp.tensor(x), dp.tensor(y)), comp(dp.tensor(x), dp.tensor(y))
        _assert_same(m1, m2, make.__name__)
        assert comp.replays == 0


def test_grad_set_by_hand_is_refused():
    model, loss_fn = _mlp((20, 16, 16, 10))
    opt = dp.optim.SGD(model.parameters(), lr=0.1)

    def step(x, y):
        for p in model.parameters():
            p.grad = None
        loss_fn(x, y).backward()
        opt.step()
    comp = dp.compile(step)
    with pytest.warns(RuntimeWarning, match="grad of a tensor"):
        for x, y in _batches(8, (20,), 10, 4, seed=18):
            comp(dp.tensor(x), dp.tensor(y))
    assert comp.replays == 0


def test_non_finite_loss_never_reaches_the_optimizer():
    model, _o, step = _setup(lambda: _mlp((20, 16, 16, 10)), "sgd")
    comp = dp.compile(step)
    batches = _batches(8, (20,), 10, 4, seed=19)
    for x, y in batches[:3]:
        comp(dp.tensor(x), dp.tensor(y))
    assert comp.replays == 1
    before = [p.numpy() for p in model.parameters()]
    bad = batches[3][0].copy()
    bad[0, 0] = np.inf
    with pytest.raises(NonFiniteStepError, match="the loss is nan"):
        comp(dp.tensor(bad), dp.tensor(batches[3][1]))
    assert all(np.array_equal(a, p.data) for a, p in zip(before, model.parameters()))
    assert isinstance(NonFiniteStepError(1.0), FloatingPointError)


def test_two_threads_are_serialised_and_reentry_raises():
    m1, _o1, eager = _setup(lambda: _mlp((20, 16, 16, 10)), "sgd")
    m2, _o2, step = _setup(lambda: _mlp((20, 16, 16, 10)), "sgd")
    comp = dp.compile(step)
    x, y = _batches(8, (20,), 10, 1, seed=20)[0]
    xt, yt = dp.tensor(x), dp.tensor(y)
    errors = []

    def worker():
        try:
            for _ in range(20):
                comp(xt, yt)
        except Exception as e:  # pragma: no cover (reported below)
            errors.append(e)
    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for _ in range(40):
        eager(xt, yt)
    _assert_same(m1, m2, "after 40 serialised steps")

    holder = {}
    f = holder["f"] = dp.compile(lambda x, y: holder["f"](x, y))
    with pytest.raises(RuntimeError, match="not re-entrant"):
        f(xt, yt)


def test_schedule_lists_each_call_with_shapes():
    _, _, step = _setup(lambda: _mlp((20, 16, 16, 10)), "sgd")
    comp = dp.compile(step)
    assert "no schedule yet" in comp.schedule()
    x, y = _batches(8, (20,), 10, 1, seed=21)[0]
    for _ in range(3):
        comp(dp.tensor(x), dp.tensor(y))
    text = comp.schedule()
    assert "linear(a0(8, 20):float32" in text
    assert "cross_entropy(" in text and "-> ():float32" in text
    assert "r = linear.vjp(" in text and "effect Optimizer._update" in text
    assert text.count(".grad =") == 6


def test_grad_and_default_dtype_are_part_of_the_key():
    model, loss_fn = _mlp((20, 16, 16, 10))
    f = dp.compile(lambda x, y: loss_fn(x, y))
    x, y = _batches(8, (20,), 10, 1, seed=22)[0]
    a = [f(dp.tensor(x), dp.tensor(y)) for _ in range(3)]
    with dp.no_grad():
        b = [f(dp.tensor(x), dp.tensor(y)) for _ in range(3)]
    assert f.recordings == 4 and f.replays == 2
    assert all(np.array_equal(t.data, a[0].data) for t in a + b)


def test_decorator_forms_strict_mismatch_and_a_user_effect():
    w = dp.tensor(np.ones(3), requires_grad=True)
    counter = {"n": 0}

    @dp.compile(strict=True)
    def changing(x):  # Python state picks the op: the two recordings differ
        counter["n"] += 1
        return (x * w).sum() if counter["n"] % 2 else (x + w).sum()
    x = dp.tensor(np.arange(3.0))
    changing(x)
    with pytest.raises(RuntimeError, match="strict=True.*did not apply the same ops"):
        changing(x)

    log = []

    def note(v):  # an effect: runs on every replay, with the replay's own array
        log.append(float(v.sum()))

    @dp.compile
    def step(x):
        y = x * 2
        dp.compile.__module__  # (plain Python: recorded away)
        from deltaprop.compiler import effect
        effect(note, y.data)
        return y
    for i in range(4):
        out = step(dp.tensor(np.full(3, float(i))))
        assert np.array_equal(out.data, np.full(3, 2.0 * i))
    assert log == [0.0, 6.0, 12.0, 18.0] and step.replays == 2


def test_dp_tensor_of_an_argument_inside_fn_is_replayed():
    def setup():
        model, loss_fn = _mlp((20, 16, 16, 10))
        opt = dp.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

        def step(x, y):  # NumPy arrays in, tensors made inside
            opt.zero_grad()
            loss = loss_fn(dp.tensor(x), dp.tensor(y))
            loss.backward()
            opt.step()
            return loss
        return model, step
    m1, eager = setup()
    m2, step = setup()
    comp = dp.compile(step)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for i, (x, y) in enumerate(_batches(8, (20,), 10, 10, seed=23)):
            assert np.array_equal(eager(x, y).data, comp(x, y).data)
            _assert_same(m1, m2, f"step {i}")
    assert comp.replays == 8


def test_an_argument_passed_twice_and_a_changing_number_argument():
    w = dp.tensor(np.ones(3), requires_grad=True)
    f = dp.compile(lambda a, b: (a * w + b).sum())
    x = dp.tensor(np.arange(3.0))
    for _ in range(3):
        f(x, x)  # recorded (and replayed) with one tensor in both places
    y = dp.tensor(np.full(3, 10.0))
    assert float(f(x, y)) == float((x * w + y).sum())  # not the schedule of f(x, x)

    g = dp.compile(lambda a, lr: (a * lr).sum())
    with pytest.warns(RuntimeWarning, match="re-traced on every one"):
        for i in range(40):
            assert float(g(x, 0.1 * i)) == float((x * (0.1 * i)).sum())
    assert g.replays == 0
