"""The engine's layers (#19): code outside the engine reads graphs through the public graph API
only, and the package's imports follow the import contract in pyproject.toml.

* import-linter checks module imports (`lint-imports`: no import cycle, the engine's layers, its
  internal modules imported by it alone). It cannot see attribute access, so the test below
  scans the source outside the engine for the engine's private names (a Tensor's `_node`, the
  `Node` class and its fields, `_seq`, `_state`, `_accumulate`, `_call_vjp`, ...).
* Files that still use them are listed in ALLOWED, each moving to the graph API: the list only
  shrinks. A listed file that no longer uses any fails the test too, so that it leaves the list.
"""
from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "src" / "deltaprop"

# The engine: these may use its private names.
ENGINE = {"tensor.py", "tensor_methods.py", "autograd.py", "versions.py", "hooks.py", "modes.py", "anomaly.py",
          "memory.py", "ops", "graph.py"}

# Engine privates: Tensor's graph fields, the Node class and its fields, the engine's state and
# its internal functions. (`GraphNode`, the public view of a node, does not match `\bNode\b`.)
PRIVATE = re.compile(r"\._node\b|\bNode\b|\b_seq\b|\b_state\b|\b_accumulate\b|\b_call_vjp\b|\._tangent\b"
                     r"|\._version\b|\._hooks\b|\._post_hooks\b|\.datas\b|\.retained\b|\.seq\b|\.edges\b"
                     r"|\.needs\b|\.kw\b")

# Known offenders, moving to the graph API (#19). Remove a file once it reads graphs through it.
# (Empty since every module outside the engine moved: keep it so.)
ALLOWED: set[str] = set()


# Comments and string text: on Python 3.12+ an f-string's literal text is FSTRING_MIDDLE (3.14: t-strings too)
_TEXT = {tokenize.COMMENT, tokenize.STRING} | {getattr(tokenize, n) for n in ("FSTRING_MIDDLE", "TSTRING_MIDDLE")
                                                 if hasattr(tokenize, n)}


def _code_only(source: str) -> list[str]:
    """The source's lines with comments and string literals blanked out (a docstring may name
    `_node`; code may not)."""
    lines = source.splitlines()
    out = [list(line) for line in lines]
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type not in _TEXT:
            continue
        (r0, c0), (r1, c1) = tok.start, tok.end
        for r in range(r0, r1 + 1):
            row = out[r - 1]
            lo = c0 if r == r0 else 0
            hi = c1 if r == r1 else len(row)
            row[lo:hi] = " " * (hi - lo)
    return ["".join(row) for row in out]


def _hits() -> dict[str, list[str]]:
    """{file relative to the package: ['line: code', ...]} for private names outside the engine."""
    found: dict[str, list[str]] = {}
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG).as_posix()
        if rel.split("/")[0] in ENGINE:
            continue
        for no, line in enumerate(_code_only(path.read_text(encoding="utf-8")), 1):
            if PRIVATE.search(line):
                found.setdefault(rel, []).append(f"{no}: {line.strip()}")
    return found


def test_no_engine_privates_outside_the_engine():
    hits = _hits()
    new = {f: h for f, h in hits.items() if f not in ALLOWED}
    assert not new, ("engine internals used outside the engine (read graphs through the graph API, "
                     "deltaprop.graph; docs/engine.md):\n" + "\n".join(f"  src/deltaprop/{f}:{h}" for f, hs in new.items()
                                                              for h in hs))
    gone = sorted(ALLOWED - set(hits))
    assert not gone, f"no engine internals left in {gone}: remove them from ALLOWED in {Path(__file__).name}"


def test_the_scan_sees_code_and_not_comments_or_strings():
    code = _code_only('x = t._node  # not t._state\ns = "Node"\ny = f(t._tangent)\n')
    assert [bool(PRIVATE.search(line)) for line in code] == [True, False, True]
    assert "_state" not in code[0]
    assert not PRIVATE.search("g = ag.producer(t); GraphNode; t.node_count")


def _tool(module: str, name: str) -> list[str]:
    """The command that runs a checker from the test's Python (the `test` extra installs it)."""
    try:
        __import__(module)
    except ImportError:
        reason = f"{name} is not installed: pip install -e '.[test]'"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (required under CI=true)", pytrace=False)
        pytest.skip(reason)
    exe = Path(sys.executable).with_name(name)
    return [str(exe)] if exe.exists() else [shutil.which(name) or name]


def _env() -> dict[str, str]:
    """The test's environment, with src/ importable (a checkout without `pip install -e .`)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src")] + [p for p in [env.get("PYTHONPATH")] if p])
    return env


def test_import_contract_holds():
    cmd = _tool("importlinter", "lint-imports")
    r = subprocess.run(cmd + ["--no-cache"], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"lint-imports failed (contracts: pyproject.toml [tool.importlinter]):\n{r.stdout}{r.stderr}"
    assert "0 broken" in r.stdout, r.stdout
