"""The compiling peers of the benchmark, JAX (jax.jit, donated state) and tinygrad (TinyJit):
their steps compute PyTorch's losses, step after step, before anything of theirs is timed; the
first-call case; and the targets of the compiled step against them (#20, point 5).

jax and tinygrad come with the `bench` extra, not with `test`: the tests that run them skip
where they are not installed (CI installs the test extra only, so they skip there too).
"""
from __future__ import annotations


import json
import subprocess
import sys

import numpy as np
import pytest

from deltaprop.bench import _registry, runner, targets

DC = "deltaprop-compiled"
STEP_CASES = ("mlp-sgd", "mlp-adam", "mazur", "cnn")
STEPS = 3  # tinygrad: the plain call, the capture, the first replay; JAX: three jitted calls


def test_registry_has_both_peers_in_the_step_cases_and_the_first_call():
    assert {"jax", "tinygrad"} <= set(runner.PEERS)
    for case in STEP_CASES + ("first-call",):
        assert {"jax", "tinygrad"} <= set(_registry.APPLIES[case]), case
    assert _registry.APPLIES["first-call"][0] == DC and "deltaprop" not in _registry.APPLIES["first-call"]
    assert "first-call" in _registry.ONE_RUN and _registry.LIBS["jax"] == ("lib_jax", "jax")
    for case in ("mlp-sgd", "mlp-adam", "cnn"):  # the compiled step runs right next to JAX's
        libs = _registry.APPLIES[case]
        assert abs(libs.index("jax") - libs.index(DC)) == 1, case


def _losses(module, case: str, steps: int = STEPS) -> list[float]:
    step = getattr(module, case.replace("-", "_"))()
    out = []
    for _ in range(steps):
        loss = step()
        out.append(float(loss.item()))
    return out


@pytest.fixture(scope="module")
def torch_losses(torch):
    from deltaprop.bench import lib_torch
    torch.set_num_threads(1)
    return {case: _losses(lib_torch, case) for case in STEP_CASES}


def _check_same_losses(module, torch_losses):
    for case in STEP_CASES:
        got, want = _losses(module, case), torch_losses[case]
        # float32 cases: agreement to float32 rounding of different summation orders;
        # Mazur's float64 network: to float64 rounding
        rtol = 1e-12 if case == "mazur" else 2e-6
        np.testing.assert_allclose(got, want, rtol=rtol, err_msg=f"{module.__name__} {case}")
        assert got[0] != got[-1], case  # the steps trained: later losses moved


def test_jax_steps_compute_pytorchs_losses(torch_losses):
    jax = pytest.importorskip("jax")
    from deltaprop.bench import lib_jax
    try:
        _check_same_losses(lib_jax, torch_losses)
    finally:
        jax.config.update("jax_enable_x64", False)  # lib_jax.mazur turned float64 on for this process


def test_tinygrad_steps_compute_pytorchs_losses(torch_losses):
    pytest.importorskip("tinygrad")
    from deltaprop.bench import lib_tinygrad
    _check_same_losses(lib_tinygrad, torch_losses)


def test_first_call_of_the_compiled_step_and_of_jax():
    from deltaprop.bench import lib_deltaprop_compiled
    ours = lib_deltaprop_compiled.first_call()
    assert ours["calls"] >= 2 and ours["value"] > 0 and ours["next_call_s"] > 0
    assert ours["first_loss"] == pytest.approx(2.3067660, rel=1e-6)  # the MLP's first loss in every library
    pytest.importorskip("jax")
    from deltaprop.bench import lib_jax
    theirs = lib_jax.first_call()
    assert theirs["calls"] == 1 and theirs["value"] > 0
    assert theirs["first_loss"] == pytest.approx(ours["first_loss"], rel=1e-6)


def test_jax_worker_runs_through_the_peer_bootstrap_with_mazurs_first_loss():
    pytest.importorskip("jax")
    cmd = runner.worker_command(sys.executable, "jax", "mazur", 1, True) + ["--block", "5", "--blocks", "1"]
    proc = subprocess.run(cmd, env=runner.worker_env(1, lib="jax"), capture_output=True, text=True, timeout=300)
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["status"] == "ok", res
    assert res["extra"]["first_loss"] == pytest.approx(0.298371109, abs=1e-9)  # Mazur's published E_total


def _lib(v, **extra):
    return {"status": "ok", "rounds": [v], "median": v, "extra": extra}


def test_targets_against_jax_and_the_buffered_step():
    report = {"cases": {
        "mazur": {"libraries": {DC: _lib(1.0), "numpy-buf": _lib(0.5), "jax": _lib(2.0)}},
        "mlp-sgd": {"libraries": {DC: _lib(1.0), "jax": _lib(0.8)}},
        "mlp-adam": {"libraries": {DC: _lib(1.0), "jax": _lib(1.25), "numpy-buf": _lib(1.0)}},
        "cnn": {"libraries": {DC: _lib(1.0), "jax": _lib(4.0)}},
        "first-call": {"libraries": {DC: _lib(0.3), "jax": _lib(1.0)}},
    }}
    rows = {r[0]: r[1:] for r in targets.evaluate(report)}
    assert rows["2-2-2 step: deltaprop-compiled / hand-written NumPy (buffers)"] == ("<= 1", "2.00", False)
    assert rows["2-2-2 step: deltaprop-compiled / JAX jit"] == ("<= 1", "0.50", True)
    assert rows["MLP step, SGD: deltaprop-compiled / JAX jit"] == ("<= 1", "1.25", False)
    assert rows["MLP step, Adam: deltaprop-compiled / JAX jit"] == ("<= 1", "0.80", True)
    assert rows["MLP step, Adam: deltaprop-compiled / hand-written NumPy (buffers)"] == ("<= 1", "1.00", True)
    assert rows["CNN step: deltaprop-compiled / JAX jit"] == ("<= 1", "0.25", True)
    assert rows["first call (recording + planning) / JAX's (trace + compile)"] == ("<= 0.5", "0.30", True)
    # the targets kept from before are still there
    assert rows["2-2-2 step: deltaprop-compiled / PyTorch"] == ("<= 0.3", "not measured", None)
    assert rows["2-2-2 step: deltaprop-compiled / micrograd"] == ("<= 0.8", "not measured", None)


def test_first_call_rows_in_the_table():
    meta_free = {"cases": {"first-call": {
        "description": _registry.CASES["first-call"][0], "unit": "s", "libraries": {
            DC: {**_lib(0.25, calls=3, first_loss=2.30676, next_call_s=0.0015), "min": 0.25, "max": 0.25},
            "jax": {**_lib(1.5, calls=1, first_loss=2.40000, next_call_s=0.002), "min": 1.5, "max": 1.5,
                    "ratio": 0.25 / 1.5},
        }}}}
    table = runner.format_table(meta_free)
    ours = next(line for line in table.splitlines() if DC in line)
    theirs = next(line for line in table.splitlines() if "| jax" in line)
    assert "250 ms" in ours and "3 calls; the next call 1.5 ms" in ours
    assert "1 call; the next call 2 ms" in theirs and "0.17" in theirs
    assert "first loss 2.4 != 2.30676" in theirs  # a peer that computes something else is flagged
