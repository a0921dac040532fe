"""DistributedDataParallel under mpiexec: gradients and training equal to one process on the whole
batch, replicas bitwise identical, no_sync, buffers following rank 0, and clear errors."""
from __future__ import annotations

import textwrap

import numpy as np
import pytest

import deltaprop as dp
import deltaprop.distributed as dist
from deltaprop.nn.parallel import DistributedDataParallel

PRELUDE = """
import numpy as np, deltaprop as dp, deltaprop.distributed as dist
from deltaprop.nn.parallel import DistributedDataParallel as DDP
dist.init_process_group()
r, n = dist.get_rank(), dist.get_world_size()

def report(*values):
    # one line per rank, printed by rank 0 in rank order (ranks' own prints could interleave)
    lines = dist._allgather_object(" ".join(map(str, values)), "report")
    for line in lines if r == 0 else ():
        print(line, flush=True)

def same_everywhere(values):
    # True when every rank holds exactly these bits (gathered from all ranks)
    flat = np.concatenate([np.asarray(v, np.float64).ravel() for v in values])
    parts = [np.empty_like(flat) for _ in range(n)]
    dist.all_gather(parts, flat)
    return all(np.array_equal(p, parts[0]) for p in parts)
"""

EQUAL_TO_ONE_PROCESS = PRELUDE + """
dp.set_default_dtype(np.float64)
def build(seed):
    dp.manual_seed(seed)
    return dp.nn.Sequential(dp.nn.Linear(6, 16), dp.nn.Tanh(), dp.nn.Linear(16, 16), dp.nn.ReLU(), dp.nn.Linear(16, 3))
rng = np.random.default_rng(0)
X, y = rng.normal(size=(60, 6)), rng.integers(0, 3, 60)
for name in ("sgd", "adam"):
    model, ref = build(100 + r), build(100)  # ranks start from different weights; DDP takes rank 0's
    ddp = DDP(model, bucket_cap_mb=0.0005)  # ~0.5 KB buckets: several Allreduces overlap the backward
    assert len(ddp._buckets) >= 3, len(ddp._buckets)
    make = ((lambda ps: dp.optim.SGD(ps, lr=0.1, momentum=0.9)) if name == "sgd"
            else (lambda ps: dp.optim.Adam(ps, lr=0.01)))
    opt, ropt = make(ddp.parameters()), make(ref.parameters())
    for step in range(20):
        batch = np.random.default_rng([1, step]).permutation(60)[:12]  # a new shuffled batch each step
        mine = batch[r::n]  # this rank's equal share of it
        opt.zero_grad()
        dp.nn.functional.cross_entropy(ddp(dp.tensor(X[mine])), y[mine]).backward()
        ropt.zero_grad()
        dp.nn.functional.cross_entropy(ref(dp.tensor(X[batch])), y[batch]).backward()
        if step == 0:
            gdiff = max(np.abs(p.grad.numpy() - q.grad.numpy()).max()
                        for p, q in zip(model.parameters(), ref.parameters()))
        opt.step()
        ropt.step()
    pdiff = max(np.abs(p.numpy() - q.numpy()).max() for p, q in zip(model.parameters(), ref.parameters()))
    pmax = max(np.abs(q.numpy()).max() for q in ref.parameters())
    report(name, gdiff, pdiff / pmax, same_everywhere(model.parameters()))
"""


@pytest.mark.parametrize("n", [2, 3])
def test_ddp_equals_one_process_on_the_whole_batch(mpirun, n):
    out = mpirun(n, EQUAL_TO_ONE_PROCESS)
    lines = out.stdout.split("\n")[:-1]
    assert len(lines) == 2 * n
    for line in lines:
        name, gdiff, rel, same = line.split()
        assert float(gdiff) <= 1e-12, line  # float64 gradients of the first step
        assert float(rel) <= 1e-10, line  # parameters after 20 steps of SGD with momentum / Adam
        assert same == "True", line  # every replica holds the same bits


REPLICAS = PRELUDE + """
dp.manual_seed(r)  # different seeds: different initial weights and different dropout masks
model = dp.nn.Sequential(dp.nn.Linear(8, 32), dp.nn.BatchNorm1d(32), dp.nn.ReLU(), dp.nn.Dropout(0.3),
                         dp.nn.Linear(32, 4))
ddp = DDP(model)
assert same_everywhere(model.state_dict().values())
opt = dp.optim.Adam(ddp.parameters(), lr=1e-2)
rng = np.random.default_rng(r)  # every rank its own data
for step in range(10):
    x, t = rng.normal(size=(16, 8)).astype(np.float32), rng.integers(0, 4, 16)
    opt.zero_grad()
    dp.nn.functional.cross_entropy(ddp(dp.tensor(x)), t).backward()
    opt.step()
    assert same_everywhere(p.grad for p in model.parameters())
params_same = same_everywhere(model.parameters())
before = model[1].running_mean.numpy()  # each rank's own batch statistics of the last step
buffers_differed = not same_everywhere([before])
ddp.eval()
ddp(dp.tensor(np.zeros((2, 8), np.float32)))  # a forward takes rank 0's buffers
report(params_same, buffers_differed, same_everywhere(model.state_dict().values()), list(ddp.state_dict())[:3])
"""


@pytest.mark.parametrize("n", [2, 3])
def test_replicas_from_different_seeds_end_bitwise_identical(mpirun, n):
    out = mpirun(n, REPLICAS)
    lines = out.stdout.split("\n")[:-1]
    assert lines == ["True True True ['0.weight', '0.bias', '1.weight']"] * n


def test_no_sync_accumulates_locally_then_averages(mpirun):
    code = PRELUDE + textwrap.dedent("""
    dp.set_default_dtype(np.float64)
    dp.manual_seed(0)
    model = dp.nn.Sequential(dp.nn.Linear(3, 5), dp.nn.Tanh(), dp.nn.Linear(5, 1))
    ref = dp.nn.Sequential(dp.nn.Linear(3, 5), dp.nn.Tanh(), dp.nn.Linear(5, 1))
    ref.load_state_dict(model.state_dict())
    ddp = DDP(model, bucket_cap_mb=0.0001)
    data = [np.random.default_rng([k, m]).normal(size=(4, 3)) for k in range(n) for m in range(2)]
    mine = data[2 * r:2 * r + 2]
    with ddp.no_sync():
        ddp(dp.tensor(mine[0])).sum().backward()
    local = [p.grad.numpy() for p in model.parameters()]  # not averaged yet
    ddp(dp.tensor(mine[1])).sum().backward()
    for d in data:  # the reference: every rank's two micro-batches, one process
        ref(dp.tensor(d)).sum().backward()
    expect = [q.grad.numpy() / n for q in ref.parameters()]
    err = max(np.abs(p.grad.numpy() - e).max() for p, e in zip(model.parameters(), expect))
    differs = not same_everywhere(local)
    report(err < 1e-12, differs, same_everywhere(p.grad for p in model.parameters()))
    """)
    out = mpirun(2, code)
    assert out.stdout.split("\n")[:-1] == ["True True True"] * 2


def test_a_parameter_without_gradient_on_one_rank_counts_as_zero(mpirun):
    code = PRELUDE + textwrap.dedent("""
    dp.set_default_dtype(np.float64)
    a, b = dp.nn.Linear(2, 2), dp.nn.Linear(2, 2)
    model = dp.nn.ModuleList([a, b])
    ddp = DDP(model, bucket_cap_mb=0.00001)
    x = dp.tensor(np.ones((1, 2)))
    (a(x).sum() + (b(x).sum() if r == 0 else 0)).backward()  # b unused on rank 1
    report(b.weight.grad.numpy().tolist(), a.weight.grad.numpy().tolist())
    """)
    out = mpirun(2, code)
    assert out.stdout.split("\n")[:-1] == ["[[0.5, 0.5], [0.5, 0.5]] [[1.0, 1.0], [1.0, 1.0]]"] * 2


def test_different_models_on_the_ranks_are_a_clear_error(mpirun):
    code = PRELUDE + textwrap.dedent("""
    for make in (lambda: dp.nn.Linear(3, 4 + r), lambda: dp.nn.Sequential(*[dp.nn.Linear(3, 3) for _ in range(1 + r)])):
        try:
            DDP(make())
        except RuntimeError as e:
            report(e)
    """)
    out = mpirun(2, code)
    lines = out.stdout.split("\n")[:-1]
    assert lines.count("DistributedDataParallel: the ranks do not hold the same model: parameter 'weight' has "
                       "shape (4, 3) and dtype float32 on rank 0 but shape (5, 3) and dtype float32 on rank 1. "
                       "Build the same architecture on every rank (same sizes, same dtype) before wrapping it") == 2
    assert sum("rank 1 has parameter '1.weight', parameter '1.bias' that rank 0 lacks" in x for x in lines) == 2


def _mlp_run(wrap: bool) -> list[np.ndarray]:
    dp.manual_seed(3)
    model = dp.nn.Sequential(dp.nn.Linear(5, 8), dp.nn.ReLU(), dp.nn.Dropout(0.2), dp.nn.Linear(8, 2))
    net = DistributedDataParallel(model) if wrap else model
    opt = dp.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    rng = np.random.default_rng(0)
    for _ in range(5):
        opt.zero_grad()
        x, t = rng.normal(size=(7, 5)).astype(np.float32), rng.integers(0, 2, 7)
        dp.nn.functional.cross_entropy(net(dp.tensor(x)), t).backward()
        opt.step()
    return [p.numpy() for p in model.parameters()]


def test_world_of_one_is_bitwise_the_plain_model(monkeypatch):
    for var in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    plain = _mlp_run(False)
    dist.init_process_group()
    try:
        wrapped = _mlp_run(True)
    finally:
        dist.destroy_process_group()
    assert all(np.array_equal(a, b) for a, b in zip(plain, wrapped))


def test_wrapper_api(monkeypatch):
    for var in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    model = dp.nn.Sequential(dp.nn.Linear(2, 3), dp.nn.BatchNorm1d(3))
    with pytest.raises(RuntimeError, match="process group is not initialized; call deltaprop.distributed"):
        DistributedDataParallel(model)
    dist.init_process_group()
    try:
        ddp = DistributedDataParallel(model)
        assert ddp.module is model
        assert list(ddp.state_dict()) == list(model.state_dict())
        sd = {k: v + 1 for k, v in model.state_dict().items()}
        ddp.load_state_dict(sd)
        np.testing.assert_array_equal(model[0].weight.numpy(), sd["0.weight"])
        assert [id(p) for p in ddp.parameters()] == [id(p) for p in model.parameters()]
        with pytest.raises(TypeError, match="expected a dp.nn.Module, got list"):
            DistributedDataParallel([])
    finally:
        dist.destroy_process_group()


COMPILED = PRELUDE + """
import warnings
def replica():
    dp.manual_seed(5)
    model = dp.nn.Sequential(dp.nn.Linear(6, 12), dp.nn.ReLU(), dp.nn.Linear(12, 3))
    ddp = DDP(model, bucket_cap_mb=0.0005)
    opt = dp.optim.SGD(ddp.parameters(), lr=0.1, momentum=0.9)

    def step(x, t):
        opt.zero_grad()
        loss = dp.nn.functional.cross_entropy(ddp(x), t)
        loss.backward()
        opt.step()
        return loss
    return model, step

(compiled_model, step), (eager_model, eager) = replica(), replica()
step = dp.compile(step)
rng = np.random.default_rng(r)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    for _ in range(5):
        x, t = dp.tensor(rng.normal(size=(8, 6)).astype(np.float32)), rng.integers(0, 3, 8)
        step(x, t)
        eager(x, t)
same = all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(compiled_model.parameters(), eager_model.parameters()))
eagerly = [str(w.message) for w in caught if "runs eagerly" in str(w.message)]
report(same, same_everywhere(compiled_model.parameters()), len(eagerly), "hooks" in eagerly[0] if eagerly else None)
"""


def test_dp_compile_runs_a_ddp_step_eagerly(mpirun):
    # the Allreduces happen in hooks and an end-of-backward callback, which a replay would skip:
    # dp.compile sees the hooks on the parameters and runs the step eagerly (one warning)
    out = mpirun(2, COMPILED)
    assert out.stdout.split("\n")[:-1] == ["True True 1 True"] * 2


def test_dp_compile_replays_ddp_in_a_world_of_one(monkeypatch):
    # one process: nothing to reduce, no hooks; the compiled step replays, bitwise as eager
    for var in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    dist.init_process_group()
    try:
        runs = []
        for compiled in (False, True):
            dp.manual_seed(5)
            model = dp.nn.Sequential(dp.nn.Linear(6, 12), dp.nn.ReLU(), dp.nn.Linear(12, 3))
            ddp = DistributedDataParallel(model)
            opt = dp.optim.Adam(ddp.parameters(), lr=0.01)

            def step(x, t):
                opt.zero_grad()
                loss = dp.nn.functional.cross_entropy(ddp(x), t)
                loss.backward()
                opt.step()
                return loss
            fn = dp.compile(step, strict=True) if compiled else step  # strict: a fallback would raise
            rng = np.random.default_rng(0)
            for _ in range(6):
                fn(dp.tensor(rng.normal(size=(8, 6)).astype(np.float32)), rng.integers(0, 3, 8))
            runs.append([p.numpy() for p in model.parameters()])
        assert all(np.array_equal(a, b) for a, b in zip(*runs))
    finally:
        dist.destroy_process_group()
