"""`deltaprop bench` checks its options before it measures anything, and writes --markdown whole.

A bad option: exit code 2, one line on stderr naming the value and what to do, no traceback,
and no worker started (the fake measure below records every call; there must be none).
"""
from __future__ import annotations

import os
import stat
import subprocess
import sys
import tempfile

import pytest

from deltaprop.bench import runner


class RecordingMeasure:
    def __init__(self, on_call=None):
        self.calls = []
        self.on_call = on_call

    def __call__(self, lib, case, r):
        self.calls.append((case, r, lib))
        if self.on_call:
            self.on_call()
        return {"status": "ok", "value": 1.0, "unit": "s", "times": [1.0], "extra": {}}


@pytest.fixture
def fake_run(monkeypatch):
    """main() with a recording measure and no machine probes (no process runs for a measurement)."""
    fake = RecordingMeasure()
    monkeypatch.setattr(runner, "subprocess_measure", lambda *a, **k: fake)
    monkeypatch.setattr(runner, "machine_info", lambda python, threads: {"cpu": "fake"})
    monkeypatch.setattr(runner, "lib_versions", lambda python, libs: {})
    monkeypatch.setattr(runner, "source_revision", lambda: None)
    return fake


def _script(tmp_path, name, body):
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return str(path)


def _fails_fast(capsys, fake, argv, *needles):
    rc = runner.main(argv)
    out, err = capsys.readouterr()
    assert rc == 2, err
    assert err.startswith("deltaprop bench: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and out == ""
    for needle in needles:
        assert needle in err, (needle, err)
    assert fake.calls == []  # nothing was measured
    return err


SMALL = ["--cases", "mazur", "--peers", "none"]


def test_markdown_in_a_missing_directory(capsys, fake_run, tmp_path):
    path = str(tmp_path / "nodir" / "x.md")
    _fails_fast(capsys, fake_run, SMALL + ["--markdown", path], repr(path), "does not exist", "create it")


def test_markdown_under_a_file(capsys, fake_run, tmp_path):
    (tmp_path / "afile").write_text("")
    _fails_fast(capsys, fake_run, SMALL + ["--markdown", str(tmp_path / "afile" / "x.md")], "does not exist")


def test_markdown_that_is_a_directory(capsys, fake_run, tmp_path):
    _fails_fast(capsys, fake_run, SMALL + ["--markdown", str(tmp_path)], "is a directory", "RESULTS.md")


def test_markdown_path_empty(capsys, fake_run):
    _fails_fast(capsys, fake_run, SMALL + ["--markdown", ""], "the path is empty")


def test_markdown_in_an_unwritable_directory(capsys, fake_run, tmp_path, monkeypatch):
    def refuse(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)  # root may write anywhere: simulate the refusal
    _fails_fast(capsys, fake_run, SMALL + ["--markdown", str(tmp_path / "x.md")], "cannot write",
                "Permission denied", "writable directory")


def test_python_that_does_not_exist(capsys, fake_run):
    _fails_fast(capsys, fake_run, SMALL + ["--python", "/nonexistent"], "'/nonexistent'", "no such file",
                "Python interpreter")


def test_python_that_is_not_executable(capsys, fake_run, tmp_path):
    plain = tmp_path / "python"
    plain.write_text("")
    _fails_fast(capsys, fake_run, SMALL + ["--python", str(plain)], "not an executable file")
    _fails_fast(capsys, fake_run, SMALL + ["--python", str(tmp_path)], "not an executable file")


def test_python_that_is_not_python(capsys, fake_run, tmp_path):
    _fails_fast(capsys, fake_run, SMALL + ["--python", _script(tmp_path, "true", "exit 0")],
                "not a Python interpreter")


def test_python_without_numpy(capsys, fake_run, tmp_path):
    bad = _script(tmp_path, "python", "echo \"ModuleNotFoundError: No module named 'numpy'\" >&2; exit 1")
    _fails_fast(capsys, fake_run, SMALL + ["--python", bad], "cannot import numpy, deltaprop",
                "No module named 'numpy'")


def test_python_check_imports_deltaprop_only_when_deltaprop_runs(tmp_path):
    log = tmp_path / "args"
    py = _script(tmp_path, "python", f"echo \"$2\" > {log}; exit 1")
    assert "deltaprop" in runner.check_python(py, ("deltaprop",), 1)
    assert "import sys, numpy, deltaprop;" in log.read_text()
    runner.check_python(py, (), 1)
    assert "import sys, numpy;" in log.read_text()
    assert runner.check_python(sys.executable, (), 1) is None


@pytest.mark.parametrize("argv, needles", [
    (["--cases", "nosuch"], ["--cases", "unknown case: nosuch", "choose from: mlp-sgd"]),
    (["--peers", "torch,tensorflow"], ["--peers", "unknown peer: tensorflow"]),
    (["--repeats", "0"], ["--repeats", "'0'", "1 or more"]),
    (["--repeats", "two"], ["--repeats", "'two'"]),
    (["--threads", "-1"], ["--threads", "'-1'"]),
    (["--timeout", "0"], ["--timeout", "'0'"]),
    (["--timeout", "nan"], ["--timeout", "'nan'"]),
    (["--cases", "none"], ["nothing to measure"]),
    (["--cases", "trace", "--no-deltaprop"], ["nothing to measure"]),
    (["--bogus"], ["unrecognized arguments: --bogus"]),
])
def test_bad_values(capsys, fake_run, argv, needles):
    _fails_fast(capsys, fake_run, argv, *needles)


def test_cli_fails_fast_without_a_traceback(tmp_path):
    """The real command line, in a process: the run would take minutes; the error comes first."""
    for args, needle in [(["--markdown", str(tmp_path / "nodir" / "x.md")], "does not exist"),
                         (["--python", "/nonexistent"], "no such file")]:
        proc = subprocess.run([sys.executable, "-m", "deltaprop.bench", *args], capture_output=True,
                              text=True, timeout=120, env=runner.worker_env(1))
        assert proc.returncode == 2, proc.stderr
        assert proc.stdout == "" and "Traceback" not in proc.stderr
        assert proc.stderr.count("\n") == 1 and needle in proc.stderr


def test_good_options_run(capsys, fake_run, tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "check_python", lambda *a, **k: None)
    path = tmp_path / "RESULTS.md"
    assert runner.main(SMALL + ["--repeats", "2", "--markdown", str(path)]) == 0
    assert fake_run.calls == [("mazur", 0, "deltaprop"), ("mazur", 1, "deltaprop")]
    assert "| mazur" in path.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["RESULTS.md"]  # no temporary file left


def test_markdown_directory_gone_by_the_end(capsys, tmp_path, monkeypatch):
    """Checked up front, but removed during the run: the table is still printed, one error line, exit 1."""
    folder = tmp_path / "out"
    folder.mkdir()
    fake = RecordingMeasure(on_call=lambda: folder.exists() and folder.rmdir())
    monkeypatch.setattr(runner, "subprocess_measure", lambda *a, **k: fake)
    monkeypatch.setattr(runner, "check_python", lambda *a, **k: None)
    monkeypatch.setattr(runner, "machine_info", lambda python, threads: {"cpu": "fake"})
    monkeypatch.setattr(runner, "lib_versions", lambda python, libs: {})
    monkeypatch.setattr(runner, "source_revision", lambda: None)
    rc = runner.main(SMALL + ["--repeats", "1", "--markdown", str(folder / "x.md")])
    out, err = capsys.readouterr()
    assert rc == 1 and "| mazur" in out
    assert err.count("\n") == 1 and "not written" in err and "Traceback" not in err


def test_write_atomic_replaces_whole_and_keeps_the_mode(tmp_path):
    path = tmp_path / "RESULTS.md"
    path.write_text("old")
    path.chmod(0o640)
    runner.write_atomic(str(path), "new text\n")
    assert path.read_text() == "new text\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    fresh = tmp_path / "fresh.md"
    runner.write_atomic(str(fresh), "x")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o666 & ~umask


def test_write_atomic_leaves_the_old_file_when_it_fails(tmp_path, monkeypatch):
    path = tmp_path / "RESULTS.md"
    path.write_text("old")

    def fail(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        runner.write_atomic(str(path), "new")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["RESULTS.md"]


def test_write_atomic_follows_a_symlink(tmp_path):
    real = tmp_path / "real.md"
    real.write_text("old")
    link = tmp_path / "link.md"
    link.symlink_to(real)
    runner.write_atomic(str(link), "new")
    assert link.is_symlink() and real.read_text() == "new"
