"""`mpirun`: run a small Python script under `mpiexec -n N` with this interpreter.

mpi4py and an `mpiexec` (the `mpich` wheel of the `test` extra puts one next to the interpreter)
decide whether these tests run: without them they are skipped with the reason, except under
CI=true, where they fail (a silent skip would hide that the multi-process tests never ran).
Ranks are oversubscribed on one machine (CI has 2 cores; 3 ranks still run).
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest


def find_mpiexec() -> str | None:
    """The mpiexec beside this interpreter (the `mpich` wheel's), else the one on PATH."""
    beside = Path(sys.executable).parent / "mpiexec"
    return str(beside) if beside.exists() else shutil.which("mpiexec")


def _unavailable() -> str | None:
    if importlib.util.find_spec("mpi4py") is None:
        return "mpi4py is not installed (pip install -e '.[test]' or '.[mpi]' installs it with the mpich wheel)"
    if find_mpiexec() is None:
        return "no mpiexec beside this Python or on PATH (the `mpich` wheel provides one)"
    return None


@pytest.fixture(scope="session")
def mpirun():
    """mpirun(n, code, args=(), cwd=None, check=True, timeout=180, module=False, per_rank=None)
    -> CompletedProcess (text output); module=True runs `python -m code args`."""
    reason = _unavailable()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"MPI test cannot run under CI=true: {reason}", pytrace=False)
        pytest.skip(reason)
    mpiexec = find_mpiexec()

    def run(n: int, code: str, args=(), cwd=None, check: bool = True, timeout: float = 180,
            module: bool = False, per_rank=None):
        if per_rank is not None:  # MPMD: rank r runs `python *per_rank[r]` (n and code unused)
            cmd = [mpiexec]
            for i, rank_args in enumerate(per_rank):
                cmd += ([":"] if i else []) + ["-n", "1", sys.executable, *rank_args]
        elif module:  # code is the module to run: python -m code args...
            cmd = [mpiexec, "-n", str(n), sys.executable, "-m", code, *args]
        else:
            cmd = [mpiexec, "-n", str(n), sys.executable, "-c", textwrap.dedent(code), *args]
        # UCX_LOG_LEVEL: MPICH over UCX logs an ERROR line to stdout where /sys is not mounted (a chroot,
        # as python-next's), which would mix into what the ranks print.
        env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
                   UCX_LOG_LEVEL="fatal")
        import deltaprop  # the ranks import the deltaprop this test session imports

        src = str(Path(deltaprop.__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join([src] + [p for p in [env.get("PYTHONPATH")] if p])
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"mpiexec -n {n} failed (exit {proc.returncode}):\nstdout:\n{proc.stdout}\n"
                                 f"stderr:\n{proc.stderr}")
        return proc
    return run
