"""DELTAPROP_RECYCLE=0 turns off every reuse of memory, which memory.py alone decides (#19)."""
import json
import os
import subprocess
import sys

import numpy as np

PROBE = r"""
import json, numpy as np, deltaprop as dp
from deltaprop import memory
out = {"enabled": memory.enabled()}
led = memory.Owned()
out["ledger_records"] = hasattr(led, "count")
ws = memory.Workspace()
like = np.zeros((300, 300))
a, = ws.get(like, 1); b, = ws.get(like, 1)
out["workspace_reused"] = a is b or np.shares_memory(a, b)
out["zeros_cached"] = memory.zeros((4,), np.dtype(np.float64)) is memory.zeros((4,), np.dtype(np.float64))
d = np.ones(100000)
out["product_into_operand"] = memory.product(np.ones(100000), d, True) is d
out["lease_is_plain"] = type(memory.lease((300, 300), np.float64).base) is not memory._Lease
x = memory.take((300, 300), np.float64); memory.give(x)
out["take_reuses"] = memory.take((300, 300), np.float64) is x
out["tune_malloc"] = dp.tune_malloc()
dp.tune_malloc(False)
# training still gives the same numbers
dp.manual_seed(0)
m = dp.nn.Sequential(dp.nn.Linear(64, 300), dp.nn.ReLU(), dp.nn.Linear(300, 10))
opt = dp.optim.Adam(m.parameters(), lr=1e-2)
X, y = dp.data.digits()
for i in range(3):
    opt.zero_grad()
    loss = dp.nn.functional.cross_entropy(m(dp.tensor(X[:256])), y[:256])
    loss.backward(); opt.step()
out["loss"] = float(loss.item())
print(json.dumps(out))
"""


def _probe(mode):
    env = dict(os.environ)
    env.pop("DELTAPROP_TUNE_MALLOC", None)
    if mode is None:
        env.pop("DELTAPROP_RECYCLE", None)
    else:
        env["DELTAPROP_RECYCLE"] = mode
    r = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_one_switch_turns_off_all_reuse_with_the_same_numbers():
    on, off, malloc = _probe(None), _probe("0"), _probe("malloc")
    assert on["enabled"] and on["ledger_records"] and on["workspace_reused"] and on["zeros_cached"]
    assert on["product_into_operand"] and not on["lease_is_plain"] and on["take_reuses"]
    for o in (off, malloc):
        assert not o["enabled"] and not o["ledger_records"] and not o["workspace_reused"]
        assert not o["zeros_cached"] and not o["product_into_operand"] and o["lease_is_plain"]
        assert not o["take_reuses"]
    assert off["tune_malloc"] is False  # the switch refuses malloc tuning too
    if sys.platform.startswith("linux"):
        assert malloc["tune_malloc"] is True  # recycling off, malloc tuning on (a benchmark row)
    assert on["loss"] == off["loss"] == malloc["loss"]
    assert np.isfinite(on["loss"])
