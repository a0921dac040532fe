"""The `ddp` case: the MLP 784-256-256-10 SGD step (global batch 128) data-parallel over MPI.

`run()` (called by the deltaprop worker) starts two measurements in fresh processes:
  * `mpiexec -n 2 python -m deltaprop.bench.ddp --ranks` with one BLAS thread per rank: each rank
    steps on its 64 samples with DistributedDataParallel, in these variants, alternating over
    rounds: `overlap` (buckets of 0.25 MB, Allreduces started during backward), `one_bucket`
    (the default 25 MB: this 1.07 MB model is one bucket, reduced after backward), `local` (the
    same step without any communication: compute only), and the time of one blocking Allreduce
    of the 1.07 MB gradient (`allreduce_s`). Times are the slowest rank's median per step.
  * `python -m deltaprop.bench.ddp --single` with two BLAS threads: the same step on all 128.
The case's value is the `overlap` step; the extras hold the rest and the speed-up.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np

from . import _common as C

STEPS, ROUNDS, WARMUP = 40, 5, 5


def _model_and_step(x, y, wrap=None):
    import deltaprop as dp
    from deltaprop.nn import functional as F

    nn = dp.nn
    i, h1, h2, k = C.MLP_SIZES
    model = nn.Sequential(nn.Linear(i, h1), nn.ReLU(), nn.Linear(h1, h2), nn.ReLU(), nn.Linear(h2, k))
    (w1, b1), (w2, b2), (w3, b3) = C.mlp_params()
    model.load_state_dict({"0.weight": w1, "0.bias": b1, "2.weight": w2, "2.bias": b2, "4.weight": w3, "4.bias": b3})
    net = wrap(model) if wrap else model
    opt = dp.optim.SGD(net.parameters(), lr=C.MLP_LR)
    xt = dp.tensor(x)

    def step():
        opt.zero_grad()
        loss = F.cross_entropy(net(xt), y)
        loss.backward()
        opt.step()
        return loss
    return step


def _time(step, steps: int) -> float:
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - t0) / steps


def _ranks() -> dict:
    import deltaprop.distributed as dist
    from deltaprop.nn.parallel import DistributedDataParallel as DDP

    dist.init_process_group()
    r, n = dist.get_rank(), dist.get_world_size()
    x, y = C.mlp_data()
    mine = slice(r * len(x) // n, (r + 1) * len(x) // n)
    x, y = x[mine], y[mine]
    wrapped = []

    def wrap(cap):
        return lambda m: wrapped.append(DDP(m, bucket_cap_mb=cap)) or wrapped[-1]
    steps = {"overlap": _model_and_step(x, y, wrap(0.25)),
             "one_bucket": _model_and_step(x, y, wrap(25.0)),
             "local": _model_and_step(x, y)}
    buf = np.ones(sum(p.size for pair in C.mlp_params() for p in pair), np.float32)

    def allreduce():
        dist.all_reduce(buf)
    steps["allreduce"] = allreduce
    times: dict[str, list[float]] = {k: [] for k in steps}
    for s in steps.values():
        for _ in range(WARMUP):
            s()
    for _ in range(ROUNDS):
        for name, s in steps.items():
            dist.barrier()
            t = np.array([_time(s, STEPS)])
            dist.all_reduce(t, op=dist.ReduceOp.MAX)  # the slowest rank sets the pace
            times[name].append(float(t[0]))
    return {"world_size": n, "buckets": [len(d._buckets) for d in wrapped],
            **{k: float(np.median(v)) for k, v in times.items()}, "rounds": times}


def _single() -> dict:
    x, y = C.mlp_data()
    step = _model_and_step(x, y)
    for _ in range(WARMUP):
        step()
    times = [_time(step, STEPS) for _ in range(ROUNDS)]
    return {"single": float(np.median(times)), "rounds": times}


def _run_json(cmd: list[str], threads: int, timeout: float = 600) -> dict:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"{' '.join(cmd[:4])} ... exited {proc.returncode}: {' | '.join(tail)}"[:500])
    return json.loads(lines[-1])


def run() -> dict:
    """Both measurements; value = the overlapped 2-rank step (seconds)."""
    import shutil
    from importlib.util import find_spec

    if find_spec("mpi4py") is None:
        raise ModuleNotFoundError("the ddp case needs mpi4py (pip install 'deltaprop[mpi]')")
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    mpiexec = beside if os.path.exists(beside) else shutil.which("mpiexec")
    if mpiexec is None:
        raise ModuleNotFoundError("the ddp case needs an mpiexec (the `mpich` wheel installs one)")
    ranks = _run_json([mpiexec, "-n", "2", sys.executable, "-m", "deltaprop.bench.ddp", "--ranks"], threads=1)
    single = _run_json([sys.executable, "-m", "deltaprop.bench.ddp", "--single"], threads=2)
    out = {"value": ranks["overlap"], "ddp_2x1_overlap_s": ranks["overlap"],
           "ddp_2x1_one_bucket_s": ranks["one_bucket"],
           "local_1x1_half_batch_s": ranks["local"], "allreduce_1_07MB_s": ranks["allreduce"],
           "single_1x2_s": single["single"], "speedup_vs_single": single["single"] / ranks["overlap"],
           "overlap_won_s": ranks["one_bucket"] - ranks["overlap"], "buckets": ranks["buckets"],
           "communication_per_step_s": ranks["overlap"] - ranks["local"],
           "rounds": {"ranks": ranks["rounds"], "single": single["rounds"]}}
    return out


if __name__ == "__main__":
    result = _ranks() if "--ranks" in sys.argv else _single()
    import deltaprop.distributed as _dist

    if not _dist.is_initialized() or _dist.get_rank() == 0:
        sys.stdout.write(json.dumps(result) + "\n")
