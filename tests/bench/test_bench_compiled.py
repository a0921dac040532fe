"""The deltaprop-compiled row: deltaprop's training-step cases through dp.compile, and its targets."""
from __future__ import annotations

import json
import subprocess
import sys

from deltaprop.bench import _registry, runner, targets

DC = "deltaprop-compiled"


def test_compiled_row_runs_the_training_step_cases():
    for case in ("mlp-sgd", "mlp-adam", "cnn", "mazur", "train"):
        assert DC in _registry.APPLIES[case], case
    assert DC in runner.PEERS
    for case, peer in [("mlp-sgd", "numpy-buf"), ("mazur", "micrograd"), ("cnn", "deltaprop")]:
        libs = _registry.APPLIES[case]  # each runs next to the peer its target compares with
        assert abs(libs.index(peer) - libs.index(DC)) == 1, (case, peer)


def test_compiled_worker_measures_the_2_2_2_case_with_eagers_first_loss():
    outs = {}
    for lib in ("deltaprop", DC):
        r = subprocess.run([sys.executable, "-m", "deltaprop.bench.worker", lib, "mazur", "--quick"],
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr
        outs[lib] = json.loads(r.stdout.strip().splitlines()[-1])
        assert outs[lib]["status"] == "ok", outs[lib]
    # (the same step function: the same loss after the warm-up's steps)
    a, b = (outs[k]["extra"].get("first_loss") for k in ("deltaprop", DC))
    assert a == b


def test_targets_include_the_compiled_rows():
    def lib(v):
        return {"status": "ok", "rounds": [v]}
    report = {"cases": {"mazur": {"libraries": {DC: lib(1.0), "torch": lib(4.0), "micrograd": lib(2.0)}},
                        "mlp-sgd": {"libraries": {DC: lib(1.0), "numpy-buf": lib(0.9)}},
                        "cnn": {"libraries": {DC: lib(1.0), "deltaprop": lib(1.1)}}}}
    rows = {r[0]: r for r in targets.evaluate(report)}
    assert rows["2-2-2 step: deltaprop-compiled / PyTorch"][2:] == ("0.25", True)
    assert rows["2-2-2 step: deltaprop-compiled / micrograd"][2:] == ("0.50", True)
    assert rows["MLP step, SGD: deltaprop-compiled / hand-written NumPy (buffers)"][2:] == ("1.11", False)
    assert rows["CNN step: deltaprop-compiled / deltaprop (eager)"][2:] == ("0.91", True)
    assert rows["default training run: compiled / --no-compile"][2:] == ("not measured", None)
