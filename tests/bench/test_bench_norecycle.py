"""The deltaprop-norecycle row: deltaprop's cases in a worker with DELTAPROP_RECYCLE=0.

Only the command and environment construction is tested here (no timing).
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from deltaprop.bench import _registry, runner, worker

NR = "deltaprop-norecycle"


def test_norecycle_runs_deltaprops_cases_in_the_training_steps():
    assert _registry.LIBS[NR] == _registry.LIBS["deltaprop"]  # the same module, the same code
    for case in ("mlp-sgd", "mlp-adam", "cnn", "mazur"):
        assert NR in _registry.APPLIES[case], case
    assert NR in runner.PEERS  # selected by the default --peers all
    order = runner.plan(["mlp-sgd"], ["deltaprop"] + runner.PEERS, repeats=1)
    assert (("mlp-sgd", 0, NR)) in order


def test_norecycle_worker_env_sets_the_switch_and_no_other_worker_does():
    base = {"PATH": "/bin", "DELTAPROP_RECYCLE": "0"}  # even when the caller's shell has it set
    assert runner.worker_env(2, base=base, lib=NR)["DELTAPROP_RECYCLE"] == "0"
    for lib in ("deltaprop", "deltaprop-tuned", "torch", None):
        assert "DELTAPROP_RECYCLE" not in runner.worker_env(2, base=base, lib=lib), lib


def test_norecycle_command_is_the_deltaprop_worker():
    cmd = runner.worker_command("py", NR, "cnn", 2, False)
    assert cmd == ["py", "-m", "deltaprop.bench.worker", NR, "cnn", "--threads", "2"]


def _env_echo_command(python, lib, case, threads, quick, start_block=None):
    code = ("import json, os, sys\n"
            "print(json.dumps({'lib': sys.argv[1], 'case': sys.argv[2], 'status': 'ok', 'value': 1.0,"
            " 'unit': 's', 'times': [1.0], 'extra': {'recycle_env': os.environ.get('DELTAPROP_RECYCLE')}}))\n")
    return [python, "-c", code, lib, case]


def test_subprocess_measure_gives_each_library_its_environment(monkeypatch):
    monkeypatch.setenv("DELTAPROP_RECYCLE", "1")
    measure = runner.subprocess_measure(sys.executable, 1, True, 60, command=_env_echo_command)
    assert measure(NR, "mlp-sgd", 0)["extra"]["recycle_env"] == "0"
    assert measure("deltaprop", "mlp-sgd", 0)["extra"]["recycle_env"] is None
    assert measure(NR, "mlp-sgd", 1)["extra"]["recycle_env"] == "0"


def test_report_lists_norecycle_right_after_deltaprop():
    def fake(lib, case, r):
        return {"status": "ok", "value": {"deltaprop": 1.0, NR: 1.25}.get(lib, 2.0), "unit": "s",
                "times": [1.0], "extra": {"recycle": False} if lib == NR else {}}

    order = runner.plan(["mlp-sgd"], ["deltaprop", "torch", "numpy-buf", NR], repeats=2)
    report = runner.build_report(runner.run_plan(order, 2, fake), {})
    libs = report["cases"]["mlp-sgd"]["libraries"]
    assert list(libs) == ["deltaprop", NR, "torch", "numpy-buf"]
    assert libs[NR]["ratio"] == pytest.approx(0.8)  # deltaprop / norecycle: the recycler's worth
    row = next(r for r in runner.format_table(report).splitlines() if NR in r)
    assert "DELTAPROP_RECYCLE=0 (recycler off)" in row


def test_norecycle_worker_refuses_to_run_with_the_recycler_on(monkeypatch):
    monkeypatch.setattr(worker, "_recycling", lambda lib: True)
    res = worker.measure(NR, "mazur", 0, 1, 1, block=1)
    assert res["status"] == "error" and "DELTAPROP_RECYCLE=0" in res["reason"]


def test_norecycle_worker_process_has_the_recycler_off():
    try:
        from deltaprop import memory
    except ImportError:
        memory = None
    if not hasattr(memory, "enabled"):
        pytest.skip("this deltaprop has no deltaprop.memory.enabled() to confirm the switch")
    cmd = runner.worker_command(sys.executable, NR, "mazur", 1, True, 1)
    out = {}
    for lib in (NR, "deltaprop"):
        cmd[3] = lib
        proc = subprocess.run(cmd + ["--warmup", "0", "--blocks", "1"], env=runner.worker_env(1, lib=lib),
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        out[lib] = json.loads(proc.stdout)
    assert out[NR]["status"] == "ok", out[NR]
    assert out[NR]["extra"]["recycle"] is False
    assert out["deltaprop"]["extra"]["recycle"] is True
