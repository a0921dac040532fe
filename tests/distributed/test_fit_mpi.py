"""The library's training loop (train.fit / evaluate) with a DistributedDataParallel model:
the same run as one process, unequal and empty shards included."""
from __future__ import annotations

import json

import pytest

FIT = """
import json, sys
import numpy as np, deltaprop as dp, deltaprop.distributed as dist
from deltaprop import train as tr
from deltaprop.nn.parallel import DistributedDataParallel as DDP
dist.init_process_group()
r, n = dist.get_rank(), dist.get_world_size()
dp.set_default_dtype(np.float64)
rng = np.random.default_rng(0)
X, y = rng.normal(size=(21, 4)), rng.integers(0, 3, 21)   # batches of 10, 10 and 1: unequal and empty shards
Xte, yte = rng.normal(size=(8, 4)), rng.integers(0, 3, 8)

def run(wrap):
    dp.manual_seed(0)
    model = tr.build_mlp([4, 6, 3], "tanh")
    net = DDP(model) if wrap else model
    opt = dp.optim.SGD(net.parameters(), lr=0.3, momentum=0.9)
    loader = dp.data.DataLoader(dp.data.TensorDataset(X, y), batch_size=10, shuffle=True, seed=1)
    h = tr.fit(net, dp.nn.functional.cross_entropy, opt, loader, 3, eval_sets={"test": (Xte, yte), "train": (X, y)})
    return model, h

model, h = run(True)
ref, rh = run(False)  # one process, the whole batches
pdiff = max(float(np.abs(p.numpy() - q.numpy()).max()) for p, q in zip(model.parameters(), ref.parameters()))
mdiff = max(abs(a - b) for k in rh.metrics for a, b in zip(h.metrics[k], rh.metrics[k]))
lines = dist._allgather_object(json.dumps({"pdiff": pdiff, "mdiff": mdiff, "params": [p.numpy().tolist() for p in model.parameters()],
                                           "metrics": h.metrics}), "test")
if r == 0:
    print(json.dumps([json.loads(line) for line in lines]))
"""


@pytest.mark.parametrize("n", [2, 3])
def test_fit_with_ddp_is_the_one_process_run(mpirun, n):
    out = mpirun(n, FIT)
    ranks = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(ranks) == n
    for res in ranks:
        assert res["pdiff"] <= 1e-12  # the weights after 3 epochs, with batches split 5/5/(1,0) or 3/3/4/(0,0,1)
        assert res["mdiff"] <= 1e-12  # train loss, test and train-eval loss and accuracy: the global figures
        assert res["params"] == ranks[0]["params"] and res["metrics"] == ranks[0]["metrics"]  # identical everywhere
