"""The benchmark runner's logic with fake workers: statistics, order, skipping, report shape.

No timing is asserted anywhere here, and nothing needs torch or any other peer.
"""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from deltaprop.bench import _registry, runner, worker

BENCH_DIR = Path(runner.__file__).parent


def test_median_ignores_missing_rounds():
    assert runner.median([3.0, 1.0, 2.0]) == 2.0
    assert runner.median([4.0, None, 1.0, 3.0, 2.0]) == 2.5
    assert runner.median([None, None]) is None
    assert runner.median([]) is None


def test_paired_ratios_pair_by_round():
    base = [2.0, 4.0, None, 9.0]
    other = [1.0, 8.0, 5.0, 3.0]
    assert runner.paired_ratios(base, other) == [2.0, 0.5, 3.0]


def test_median_of_ratios_is_not_ratio_of_medians():
    # deltaprop is exactly twice as slow as the peer in every round while the machine drifts
    base = [2.0, 20.0, 200.0]
    peer = [1.0, 10.0, 100.0]
    s = runner.summarize_lib(peer, base)
    assert s["ratio"] == 2.0
    assert s["ratios"] == [2.0, 2.0, 2.0]
    assert (s["median"], s["min"], s["max"]) == (10.0, 1.0, 100.0)
    assert s["difference"] == 10.0


def test_summary_without_baseline_has_no_ratio():
    s = runner.summarize_lib([1.0, None, 3.0], None)
    assert s["ratio"] is None and s["ratios"] == []
    assert (s["median"], s["min"], s["max"]) == (2.0, 1.0, 3.0)


def test_plan_alternates_libraries_round_by_round():
    """A B C, then C B A: every other round runs in reverse, and the target peers (torch and
    micrograd for mazur) run next to deltaprop in every round."""
    order = runner.plan(["mazur", "import"], ["deltaprop", "torch", "micrograd"], repeats=3)
    assert order == [
        ("mazur", 0, "torch"), ("mazur", 0, "deltaprop"), ("mazur", 0, "micrograd"),
        ("mazur", 1, "micrograd"), ("mazur", 1, "deltaprop"), ("mazur", 1, "torch"),
        ("mazur", 2, "torch"), ("mazur", 2, "deltaprop"), ("mazur", 2, "micrograd"),
        ("import", 0, "deltaprop"), ("import", 0, "torch"),
        ("import", 1, "torch"), ("import", 1, "deltaprop"),
        ("import", 2, "deltaprop"), ("import", 2, "torch"),
    ]


def test_target_peers_run_next_to_deltaprop():
    for case, peer in [("mlp-sgd", "torch"), ("mlp-sgd", "numpy-buf"), ("mlp-adam", "torch"),
                       ("mazur", "torch"), ("mazur", "micrograd"), ("cnn", "torch"), ("chain", "torch")]:
        libs = _registry.APPLIES[case]
        assert abs(libs.index(peer) - libs.index("deltaprop")) == 1, (case, peer)


def test_plan_leaves_out_libraries_a_case_does_not_apply_to():
    order = runner.plan(["mlp-sgd"], ["deltaprop", "micrograd", "gemm"], repeats=1)
    assert [lib for _, _, lib in order] == ["deltaprop", "gemm"]


class FakeMeasure:
    """Deterministic results; records the call order."""

    def __init__(self, values, missing=(), failing=()):
        self.values, self.missing, self.failing = values, set(missing), set(failing)
        self.calls = []

    def __call__(self, lib, case, r):
        self.calls.append((case, r, lib))
        if lib in self.missing:
            return {"lib": lib, "case": case, "status": "not installed", "reason": f"no module named {lib!r}"}
        if lib in self.failing:
            return {"lib": lib, "case": case, "status": "error", "reason": "RecursionError: too deep"}
        v = self.values[lib][r]
        return {"lib": lib, "case": case, "status": "ok", "value": v, "unit": "s", "times": [v],
                "extra": {"first_loss": 0.25, "warmup": 1, "block": 10, "blocks": 3}}


def test_run_plan_asks_a_missing_or_failing_library_once():
    order = runner.plan(["mazur"], ["deltaprop", "torch", "dezero", "micrograd"], repeats=3)
    fake = FakeMeasure({"deltaprop": [1.0, 2.0, 3.0], "torch": [2.0, 2.0, 6.0]},
                       missing={"dezero"}, failing={"micrograd"})
    results = runner.run_plan(order, 3, fake)
    assert [c for c in fake.calls if c[2] == "dezero"] == [("mazur", 0, "dezero")]
    assert [c for c in fake.calls if c[2] == "micrograd"] == [("mazur", 0, "micrograd")]
    assert [c for c in fake.calls if c[2] == "torch"] == [("mazur", r, "torch") for r in range(3)]
    assert results["mazur"]["dezero"]["status"] == "not installed"
    assert results["mazur"]["micrograd"]["status"] == "error"
    assert results["mazur"]["deltaprop"]["values"] == [1.0, 2.0, 3.0]


def _report(missing=("dezero",), base_missing=False):
    libs = ["deltaprop", "torch", "dezero"]
    order = runner.plan(["mazur"], libs, repeats=3)
    fake = FakeMeasure({"deltaprop": [1.0, 2.0, 3.0], "torch": [2.0, 2.0, 6.0]},
                       missing=set(missing) | ({"deltaprop"} if base_missing else set()))
    results = runner.run_plan(order, 3, fake)
    return runner.build_report(results, {"command": "deltaprop bench", "threads": 2, "repeats": 3,
                                         "machine": {"cpu": "test"}, "versions": {}})


def test_report_json_shape_and_ratios():
    rep = json.loads(json.dumps(_report()))  # JSON-serialisable as a whole
    assert set(rep) == {"meta", "cases"}
    case = rep["cases"]["mazur"]
    assert case["unit"] == "s" and case["baseline"] == "deltaprop"
    torch = case["libraries"]["torch"]
    assert torch["status"] == "ok"
    assert torch["ratios"] == [0.5, 1.0, 0.5] and torch["ratio"] == 0.5
    assert (torch["median"], torch["min"], torch["max"]) == (2.0, 2.0, 6.0)
    assert case["libraries"]["deltaprop"]["ratio"] == 1.0
    assert case["libraries"]["dezero"] == {"status": "not installed", "reason": "no module named 'dezero'"}


def test_report_without_deltaprop_has_no_ratios():
    rep = _report(base_missing=True)
    assert rep["cases"]["mazur"]["libraries"]["torch"]["ratio"] is None


def test_table_lists_missing_peer_as_not_installed():
    table = runner.format_table(_report())
    rows = [r for r in table.splitlines() if r.startswith("| mazur")]
    assert len(rows) == 3
    dezero = next(r for r in rows if "dezero" in r)
    assert "not installed" in dezero
    assert "0.50" in next(r for r in rows if "torch" in r)
    # rounds 1-3 s (deltaprop) and 2-6 s (torch): spread beyond x1.3 is flagged as disturbed
    assert "rounds spread x3.0: disturbed" in next(r for r in rows if "deltaprop" in r)
    assert "rounds spread x3.0: disturbed" in next(r for r in rows if "torch" in r)


def test_markdown_has_machine_command_and_table():
    text = runner.format_markdown(_report())
    assert "## Machine" in text and "deltaprop bench" in text and "| mazur" in text


def test_fmt_value_units():
    assert runner.fmt_value(0.00123, "s") == "1.23 ms"
    assert runner.fmt_value(2.5e-6, "s/op") == "2.5 us/op"
    assert runner.fmt_value(12.0, "MB") == "12 MB"
    assert runner.fmt_value(None, "s") == "-"


def test_parse_worker_output_takes_last_json_line():
    out = 'some warning\n{"status": "ok", "value": 1}\nprogress 100%\n{"status": "ok", "value": 2}\n'
    assert runner.parse_worker_output(out, "x", "y")["value"] == 2
    bad = runner.parse_worker_output("Traceback ...\n", "torch", "cnn")
    assert bad["status"] == "error" and bad["lib"] == "torch"


def _fake_command(python, lib, case, threads, quick, start_block=None):
    """A tiny worker: reports its thread variables, or 'not installed' for lib 'ghost'."""
    code = (
        "import json, os, sys\n"
        "lib, case = sys.argv[1], sys.argv[2]\n"
        "print('noise before the result')\n"
        "if lib == 'ghost':\n"
        "    print(json.dumps({'lib': lib, 'case': case, 'status': 'not installed', 'reason': 'no ghost'}))\n"
        "else:\n"
        "    t = int(os.environ['OMP_NUM_THREADS'])\n"
        "    assert os.environ['OPENBLAS_NUM_THREADS'] == os.environ['MKL_NUM_THREADS'] == str(t)\n"
        "    print(json.dumps({'lib': lib, 'case': case, 'status': 'ok', 'value': float(t),"
        " 'unit': 's', 'times': [float(t)], 'extra': {}}))\n"
    )
    return [python, "-c", code, lib, case]


def test_subprocess_measure_runs_each_measurement_in_a_process():
    measure = runner.subprocess_measure(sys.executable, threads=3, quick=True, timeout=60,
                                        command=_fake_command)
    ok = measure("torch", "mazur", 0)
    assert ok["status"] == "ok" and ok["value"] == 3.0
    assert "process_wall_s" in ok["extra"]
    assert measure("ghost", "mazur", 0)["status"] == "not installed"


def test_subprocess_measure_reports_a_crash_as_error():
    def crash(python, lib, case, threads, quick, start_block=None):
        return [python, "-c", "import sys; sys.stderr.write('boom\\n'); sys.exit(3)"]

    res = runner.subprocess_measure(sys.executable, 1, True, 60, command=crash)("torch", "cnn", 0)
    assert res["status"] == "error" and "exit 3" in res["reason"] and "boom" in res["reason"]


def test_worker_env_sets_threads_and_path():
    env = runner.worker_env(4, base={"PATH": "/bin", "PYTHONPATH": "/elsewhere"})
    assert all(env[v] == "4" for v in runner.THREAD_VARS)
    parts = env["PYTHONPATH"].split(os.pathsep)
    assert parts[-1] == "/elsewhere"
    assert (Path(parts[0]) / "deltaprop" / "bench" / "runner.py").exists()
    assert "DELTAPROP_RECYCLE" not in env


def test_worker_commands():
    cmd = runner.worker_command("py", "deltaprop", "cnn", 2, True)
    assert cmd == ["py", "-m", "deltaprop.bench.worker", "deltaprop", "cnn", "--threads", "2", "--quick"]
    peer = runner.worker_command("py", "torch", "cnn", 2, False)
    assert peer[:3] == ["py", "-c", runner.PEER_BOOTSTRAP]
    assert (Path(peer[3]) / "bench" / "worker.py").exists()
    assert peer[4:] == ["torch", "cnn", "--threads", "2"]
    imp = runner.worker_command("py", "deltaprop", "import", 2, False)
    assert imp[:2] == ["py", "-c"] and imp[-2:] == ["deltaprop", "deltaprop"]
    hinted = runner.worker_command("py", "torch", "cnn", 2, False, 500)
    assert hinted[-4:] == ["--threads", "2", "--start-block", "500"]


def test_peer_worker_runs_without_deltaprop_init():
    # the bootstrap stands in for the deltaprop package: its __init__ never runs in a peer
    code = runner.PEER_BOOTSTRAP.replace(
        "from deltaprop.bench.worker import main; sys.exit(main(sys.argv[1:]))",
        "import deltaprop.bench.worker; print(sorted(m for m in sys.modules if m.startswith('deltaprop')))")
    pkg_dir = str(BENCH_DIR.parent)
    proc = subprocess.run([sys.executable, "-c", code, pkg_dir], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    loaded = ast.literal_eval(proc.stdout.strip())
    assert all(m == "deltaprop" or m.startswith("deltaprop.bench") for m in loaded)
    cmd = runner.worker_command(sys.executable, "numpy", "mazur", 1, True)
    res = json.loads(subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout)
    assert res["status"] == "ok" and res["extra"]["first_loss"] == pytest.approx(0.298371109, abs=1e-9)


def test_main_json_with_fake_workers(monkeypatch, capsys, tmp_path):
    fake = FakeMeasure({"deltaprop": [1.0, 1.0], "numpy": [2.0, 4.0]}, missing={"torch"})
    monkeypatch.setattr(runner, "subprocess_measure", lambda *a, **k: fake)
    monkeypatch.setattr(runner, "check_python", lambda *a, **k: None)
    monkeypatch.setattr(runner, "machine_info", lambda python, threads: {"cpu": "fake", "threads": threads})
    monkeypatch.setattr(runner, "lib_versions", lambda python, libs: {lib: None for lib in libs})
    monkeypatch.setattr(runner, "source_revision", lambda: None)
    md = tmp_path / "RESULTS.md"
    rc = runner.main(["--cases", "micro", "--peers", "torch,numpy", "--repeats", "2", "--threads", "2",
                      "--json", "--markdown", str(md)])
    assert rc == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    rep = json.loads(out[0])
    libs = rep["cases"]["micro"]["libraries"]
    assert libs["torch"]["status"] == "not installed"
    assert libs["numpy"]["ratio"] == pytest.approx(0.375)
    assert rep["meta"]["threads"] == 2 and rep["meta"]["repeats"] == 2
    assert rep["meta"]["command"].startswith("deltaprop bench --cases micro")
    assert "| micro" in md.read_text()
    assert fake.calls[:3] == [("micro", 0, "deltaprop"), ("micro", 0, "torch"), ("micro", 0, "numpy")]


def test_main_rejects_unknown_names(capsys):
    assert runner.main(["--peers", "tensorflow"]) == 2
    err = capsys.readouterr().err
    assert "unknown peer: tensorflow" in err and "choose from: deltaprop-tuned" in err
    assert err.count("\n") == 1


def test_registry_is_consistent():
    for case, libs in _registry.APPLIES.items():
        assert case in _registry.CASES and case in _registry.TIMING
        assert all(lib in _registry.LIBS for lib in libs)
    for lib, (module, _pkg) in _registry.LIBS.items():
        src = (BENCH_DIR / f"{module}.py").read_text()
        body = ast.parse(src).body
        names = {n.name for n in body if isinstance(n, ast.FunctionDef)}
        names |= {a.asname or a.name for n in body if isinstance(n, ast.ImportFrom) for a in n.names}
        for case, libs in _registry.APPLIES.items():
            if lib in libs and case != "import":
                assert case.replace("-", "_") in names, f"{module}.py lacks {case}"


def test_worker_reports_not_installed_and_not_applicable(monkeypatch):
    monkeypatch.setattr(worker, "find_spec", lambda name: None)
    res = worker.measure("torch", "mlp-sgd", 0, 1, 1)
    assert res["status"] == "not installed"
    assert worker.measure("micrograd", "cnn", 0, 1, 1)["status"] == "not applicable"


def test_deltaprop_worker_never_imports_a_peer():
    tree = ast.parse((BENCH_DIR / "lib_deltaprop.py").read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module.split(".")[0])
    assert imported <= {"contextlib", "io", "json", "os", "tempfile", "time", "numpy", "deltaprop", "__future__"}


def _run_python(code: str) -> subprocess.CompletedProcess:
    env = runner.worker_env(1)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)


def test_import_deltaprop_does_not_import_the_bench():
    proc = _run_python("import sys, deltaprop; print('deltaprop.bench' in sys.modules)")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_worker_process_prints_one_json_line():
    env = runner.worker_env(1)
    proc = subprocess.run([sys.executable, "-m", "deltaprop.bench.worker", "numpy", "mazur",
                           "--warmup", "0", "--block", "3", "--blocks", "2"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1
    res = json.loads(lines[0])
    assert res["status"] == "ok" and len(res["times"]) == 2 and res["threads"] == 1
    assert (res["extra"]["block"], res["extra"]["blocks"]) == (3, 2) and "calibrated" not in res["extra"]
    assert res["extra"]["first_loss"] == pytest.approx(0.298371109, abs=1e-9)  # Mazur's E_total


def test_peers_train_like_the_default_cli_run():
    # the peers' copy of `deltaprop train`'s digits defaults must not drift from the CLI's
    from deltaprop.bench import _common
    from deltaprop.run import DEFAULTS
    d = DEFAULTS["digits"]
    assert tuple(_common.TRAIN["hidden"]) == tuple(d.hidden)
    assert _common.TRAIN["lr"] == d.lr
    assert _common.TRAIN["epochs"] == d.epochs
    assert _common.TRAIN["batch_size"] == d.batch_size


def test_targets_are_checked_from_paired_rounds():
    from deltaprop.bench.targets import evaluate, format_targets

    def lib(rounds, **extra):
        return {"status": "ok", "rounds": rounds, "median": sorted(rounds)[len(rounds) // 2], "extra": extra}

    report = {"cases": {
        "mlp-sgd": {"libraries": {"deltaprop": lib([0.9, 2.0, 0.95]), "torch": lib([1.0, 1.0, 1.0]),
                                  "numpy-buf": lib([0.45, 1.0, 0.475])}},
        "import": {"libraries": {"numpy": {**lib([0.05]), "difference": 0.15}}},
        "memory": {"libraries": {"deltaprop": lib([40.0], growth_mb=0.5)}},
    }}
    rows = {r[0]: r for r in evaluate(report)}
    # paired per round: 0.9, 2.0, 0.95 -> median 0.95 (<= 1.0); vs numpy-buf: 2, 2, 2 -> 2.0 (> 1.1)
    assert rows["MLP step, SGD: deltaprop / PyTorch"][2:] == ("0.95", True)
    assert rows["MLP step, SGD: deltaprop / hand-written NumPy (buffers)"][2:] == ("2.00", False)
    assert rows["`import deltaprop` minus `import numpy`"][2:] == ("+0.150 s", False)
    assert rows["peak RSS of the training run"][3] is True
    assert rows["CNN step: deltaprop / PyTorch"][2:] == ("not measured", None)
    assert "| **no** |" in format_targets(evaluate(report))
