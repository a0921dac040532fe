"""deltaprop.distributed: the world of one process (no MPI), the collectives under mpiexec, and
failures that abort the job instead of hanging it."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import deltaprop as dp
import deltaprop.distributed as dist


@pytest.fixture
def world_of_one(monkeypatch):
    for var in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    dist.init_process_group()
    yield
    dist.destroy_process_group()


def test_import_deltaprop_never_imports_mpi4py():
    code = ("import sys, deltaprop as dp, deltaprop.distributed as d, deltaprop.nn.parallel, deltaprop.data\n"
            "d.init_process_group(); assert d.get_world_size() == 1 and d.get_rank() == 0\n"
            "print(sorted(m for m in sys.modules if m.startswith('mpi4py')))")
    env = {k: v for k, v in os.environ.items() if k not in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_not_initialized_and_double_init(world_of_one):
    dist.destroy_process_group()
    assert not dist.is_initialized()
    with pytest.raises(RuntimeError, match="get_rank: the process group is not initialized; call "
                                           "deltaprop.distributed.init_process_group"):
        dist.get_rank()
    dist.init_process_group()
    assert dist.is_initialized()
    with pytest.raises(RuntimeError, match="already initialized"):
        dist.init_process_group()
    dist.destroy_process_group()
    with pytest.raises(ValueError, match="backend 'nccl' is not available"):
        dist.init_process_group("nccl")
    dist.init_process_group()


def test_world_of_one_collectives_are_the_identity(world_of_one):
    t = dp.tensor(np.array([[1.0, -2.0], [3.0, 4.5]]))
    v0 = t._version_value
    for op in dist.ReduceOp:
        dist.all_reduce(t, op=op)
    np.testing.assert_array_equal(t.numpy(), [[1.0, -2.0], [3.0, 4.5]])
    assert t._version_value > v0  # written in place: recorded as an in-place change
    work = dist.all_reduce(t, async_op=True)
    assert work.wait() and work.is_completed()
    dist.broadcast(t, src=0)
    with pytest.raises(ValueError, match="broadcast: src=1 is not a rank of this world of 1"):
        dist.broadcast(t, src=1)
    out = [dp.zeros((2, 2), dtype=np.float64)]
    dist.all_gather(out, t)
    np.testing.assert_array_equal(out[0].numpy(), t.numpy())
    ro = np.arange(4.0).reshape(2, 2)
    ro.flags.writeable = False  # a read-only source is fine (it is only read); a read-only target is not
    dist.all_gather(out, ro)
    np.testing.assert_array_equal(out[0].numpy(), ro)
    with pytest.raises(ValueError, match=r"all_gather: the array \(shape \(2, 2\)\) is read-only"):
        dist.all_gather([ro], t)
    with pytest.raises(ValueError, match="all_gather: tensor_list has 2 entries; it needs one per rank"):
        dist.all_gather(out * 2, t)
    with pytest.raises(TypeError, match="ReduceOp.AVG needs a floating-point tensor"):
        dist.all_reduce(dp.tensor([1, 2]), op=dist.ReduceOp.AVG)
    with pytest.raises(TypeError, match="expected a deltaprop Tensor or a NumPy array, got list"):
        dist.all_reduce([1.0])
    dist.barrier()


def test_world_size_argument_must_match(monkeypatch):
    for var in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(RuntimeError, match=r"world_size=2 was asked for but the MPI world gives world_size 1 "
                                           r"\(launched with no MPI launcher\); start it with mpiexec -n 2"):
        dist.init_process_group(world_size=2)
    assert not dist.is_initialized()


def test_launcher_and_mpi_library_disagree(mpirun):  # (mpirun: runs only where mpi4py is installed)
    # PMI_SIZE says 2 processes were started, but mpi4py's MPI sees a world of one: the typical
    # symptom of an mpiexec from another MPI installation. A clear error, not a silent 1-rank run.
    code = "import deltaprop.distributed as d\nd.init_process_group()"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, PMI_SIZE="2"))
    assert out.returncode == 1
    assert "the launcher started 2 processes" in out.stderr and "MPI reports a world of 1" in out.stderr


COLLECTIVES = """
import numpy as np, deltaprop as dp, deltaprop.distributed as dist
dist.init_process_group()
r, n = dist.get_rank(), dist.get_world_size()
t = dp.tensor(np.arange(6, dtype=np.float64).reshape(2, 3) + 10 * r)
s = t.detach() * 1.0
dist.all_reduce(s)
assert np.array_equal(s.numpy(), sum(np.arange(6.0).reshape(2, 3) + 10 * k for k in range(n)))
m = t.detach() * 1.0
dist.all_reduce(m, op=dist.ReduceOp.MAX)
assert np.array_equal(m.numpy(), np.arange(6.0).reshape(2, 3) + 10 * (n - 1))
a = t.detach() * 1.0
dist.all_reduce(a, op=dist.ReduceOp.AVG, async_op=True).wait()
np.testing.assert_allclose(a.numpy(), np.arange(6.0).reshape(2, 3) + 10 * (n - 1) / 2, rtol=1e-15)
tr = (t.detach() * 1.0).T  # not contiguous: reduced through a copy, written back
dist.all_reduce(tr, op=dist.ReduceOp.MIN)
assert np.array_equal(tr.numpy(), np.arange(6.0).reshape(2, 3).T)
b = dp.tensor([float(r), -1.0])
dist.broadcast(b, src=n - 1)
assert b.tolist() == [n - 1.0, -1.0]
parts = [dp.zeros(3, dtype=np.int64) for _ in range(n)]
dist.all_gather(parts, dp.tensor([r, r * r, 7]))
assert [p.tolist() for p in parts] == [[k, k * k, 7] for k in range(n)]
dist.barrier()
lines = dist._allgather_object(f"ok {r} {n}", "test")  # (printed by one rank: outputs could interleave)
for line in lines if r == 0 else ():
    print(line)
"""


def test_collectives_under_mpiexec(mpirun):
    out = mpirun(3, COLLECTIVES)
    assert sorted(out.stdout.split("\n")[:-1]) == ["ok 0 3", "ok 1 3", "ok 2 3"]


def test_an_exception_on_one_rank_aborts_the_job(mpirun):
    code = """
    import deltaprop.distributed as dist
    dist.init_process_group()
    if dist.get_rank() == 1:
        raise ValueError("bad batch on rank one")
    dist.barrier()  # rank 0 would wait here forever without the abort
    print("rank 0 passed the barrier")
    """
    out = mpirun(2, code, check=False, timeout=60)
    assert out.returncode != 0
    assert "rank 1 of 2 failed; aborting the MPI job" in out.stderr
    assert "ValueError: bad batch on rank one" in out.stderr
    assert "passed the barrier" not in out.stdout


def test_world_mismatch_under_mpiexec(mpirun):
    code = """
    import deltaprop.distributed as dist
    import sys
    try:
        dist.init_process_group(world_size=3)
    except RuntimeError as e:
        sys.stdout.write(str(e) + chr(10))  # (one write: the ranks share the output)
    """
    out = mpirun(2, code)
    assert out.stdout.count("world_size=3 was asked for but the MPI world gives world_size 2") == 2
