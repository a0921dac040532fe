"""The straight-line forms of ops/lowered.py and the optimizers' replay plans: for every op that
has a form, in float32 and float64, on small arrays and on arrays large enough for the recycler,
a replayed step gives bitwise the eager step's loss, gradients and parameters, step after step
(a new batch each step), and the replay really used the form."""
from __future__ import annotations

import importlib

import numpy as np
import pytest

import deltaprop as dp
from deltaprop.autograd import REGISTRY
from deltaprop.ops.lowered import LOWERED

F = dp.nn.functional
dpc = importlib.import_module("deltaprop.compiler")  # (the module behind the function dp.compile)

# op name -> (how a step applies it to x (the batch) and w (a parameter shaped like x), whether w is 2-D)
_CASES = {
    "linear": lambda x, w, b: F.linear(x, w, b),
    "sigmoid": lambda x, w, b: (x * w).sigmoid(),
    "relu": lambda x, w, b: (x - w).relu(),
    "add": lambda x, w, b: (x + w) + 1.5,
    "sub": lambda x, w, b: (x - w) - (2.0 - w),
    "mul": lambda x, w, b: (x * w) * 0.5,
    "pow_scalar": lambda x, w, b: (x * w) ** 2,
    "sum": lambda x, w, b: (x * w).sum() * (x + w),
}


def test_every_lowered_op_has_a_case():
    assert {op for op in LOWERED} == {REGISTRY[name] for name in _CASES}


def _run(name, dtype, n, k, seed, lower):
    dpc.LOWER = lower
    try:
        rng = np.random.default_rng(seed)
        w = dp.tensor(rng.standard_normal((k, k) if name == "linear" else (n, k)).astype(dtype), requires_grad=True)
        b = dp.tensor(rng.standard_normal(k).astype(dtype), requires_grad=True)
        r = dp.tensor(rng.standard_normal((n, k)).astype(dtype))  # weights the outputs: every gradient differs
        opt = dp.optim.SGD([w, b], lr=0.01, momentum=0.9)

        def step(x):
            opt.zero_grad()
            loss = (_CASES[name](x, w, b) * r).sum()
            if name != "linear":  # (b takes part in every graph)
                loss = loss + (b * b).sum()
            loss.backward()
            opt.step()
            return loss
        comp = dp.compile(step, strict=True)
        out = []
        for i in range(6):
            x = dp.tensor(np.random.default_rng(seed + 1 + i).standard_normal((n, k)).astype(dtype))
            loss = comp(x)
            out.append((loss.numpy().copy(), w.numpy().copy(), b.numpy().copy(), w.grad.numpy().copy(),
                        b.grad.numpy().copy()))
        return out, comp
    finally:
        dpc.LOWER = True


@pytest.mark.parametrize("name", sorted(_CASES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n,k", [(1, 2), (3, 5), (256, 300)])
def test_the_form_replays_bitwise_as_eager(name, dtype, n, k):
    eager, c0 = _run(name, dtype, n, k, 7, False)
    lowered, c1 = _run(name, dtype, n, k, 7, True)
    assert c0.replays == c1.replays == 4
    for i, (a, b) in enumerate(zip(eager, lowered)):
        for what, x, y in zip(("loss", "w", "b", "w.grad", "b.grad"), a, b):
            assert x.dtype == y.dtype and np.array_equal(x, y), f"step {i}: {what} differs"
    # the op ran as its straight-line form, forward and backward
    assert "straight-line" in c1.schedule()
    assert "straight-line" not in c0.schedule()
    op_name = REGISTRY[name].name
    assert any(line.startswith(f"r = {op_name}.vjp") and line.endswith("(straight-line)")
               for line in c1.schedule().splitlines())


def test_grads_and_losses_are_new_arrays_each_replay():
    """Buffers never leak: what a step returns and the .grad arrays it leaves belong to the user."""
    w = dp.tensor(np.ones((3, 2)), requires_grad=True)
    opt = dp.optim.SGD([w], lr=0.1)

    def step(x):
        opt.zero_grad()
        loss = (F.linear(x, w).sigmoid() ** 2).sum()
        loss.backward()
        opt.step()
        return loss, w.grad
    comp = dp.compile(step, strict=True)
    kept = [comp(dp.tensor(np.full((4, 2), float(i)))) for i in range(6)]
    assert comp.replays == 4
    losses = [float(loss.item()) for loss, _g in kept]
    assert len(set(losses)) == 6  # each kept loss still holds its own step's value
    grads = [g.numpy() for _l, g in kept]
    assert all(not np.shares_memory(a, b) for i, a in enumerate(grads) for b in grads[i + 1:])


def test_optimizer_plan_follows_a_replaced_param_group_and_lr():
    w = dp.tensor(np.array([1.0, 2.0]), requires_grad=True)
    opt = dp.optim.SGD([w], lr=0.1)

    def step():
        opt.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        opt.step()
        return loss
    comp = dp.compile(step, strict=True)
    for _ in range(3):
        comp()
    expect = w.numpy().copy()
    opt.param_groups[0]["lr"] = 0.5  # a scheduler's change: read on the next replay
    comp()
    assert np.array_equal(w.numpy(), expect - 0.5 * 2 * expect)
    state = opt.state_dict()
    state["param_groups"][0]["lr"] = 0.25
    opt.load_state_dict(state)  # new group dicts: the plan must not read the old ones
    expect = w.numpy().copy()
    comp()
    assert np.array_equal(w.numpy(), expect - 0.25 * 2 * expect)


def test_schedule_lists_the_numpy_calls_with_shapes():
    """Mazur's 2-2-2 step, written out: each straight-line op followed by its NumPy calls."""
    import re

    from deltaprop.bench import lib_deltaprop_compiled as L

    step = L.mazur()
    for _ in range(3):
        step()
    text = step.schedule()
    calls = [ln.strip() for ln in text.splitlines() if ln.startswith("    ")]
    # the first layer's forward: x (1, 2) @ W.T (2, 2), then + b, into one buffer
    assert re.fullmatch(r"matmul\(c\d+\(1, 2\), c\d+\(2, 2\), out=o\d+\(1, 2\)\)", calls[0]), calls[0]
    assert re.fullmatch(r"add\(o\d+\(1, 2\), c\d+\(2,\), out=o\d+\(1, 2\)\)", calls[1]), calls[1]
    # a weight gradient: delta (1, 2) transposed times the layer's input (1, 2), into a new array
    assert any(re.fullmatch(r"matmul\(v\d+\.T\(2, 1\), v\d+\(1, 2\), out=n\d+\(2, 2\)\)", c) for c in calls)
    assert sum(c.count("(") for c in calls) > 40 and "exp(" in text and "negative(" in text


@pytest.mark.parametrize("n", [3, 300])  # (300 x 300: large enough for the recycler's leases)
def test_a_kept_grad_is_never_overwritten_by_later_replays(n):
    w = dp.tensor(np.ones((n, n)), requires_grad=True)
    opt = dp.optim.SGD([w], lr=1e-3)

    def step(x):
        opt.zero_grad()
        loss = (F.linear(x, w).relu() * 0.5).sum()
        loss.backward()
        opt.step()
        return loss
    comp = dp.compile(step, strict=True)
    kept, copies, views = [], [], []
    for i in range(8):
        comp(dp.tensor(np.full((4, n), float(i + 1))))
        kept.append(w.grad)                  # the Tensor
        views.append(w.grad.numpy()[1:])     # a view of its array only
        copies.append(w.grad.numpy().copy())
    assert comp.replays == 6
    for g, v, c in zip(kept, views, copies):
        assert np.array_equal(g.numpy(), c) and np.array_equal(v, c[1:])
