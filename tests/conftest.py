"""Project-wide test fixtures.

`torch`: PyTorch as a test oracle. The tests that compare against PyTorch take this fixture
instead of importing torch themselves, so that whether they run is decided in one place:

* torch importable: the test runs;
* Python 3.14+ without torch: skipped, there is no CPU torch wheel for that Python (the `test`
  extra leaves torch off there);
* otherwise torch should have come with `pip install -e '.[test]'`: under CI=true the test
  FAILS (a silent skip would hide that the oracle never ran), elsewhere it is skipped with the
  reason and a warning (the same rule as the report's browser tests).
"""
from __future__ import annotations

import os
import shutil
import sys
import warnings

import pytest

NO_WHEEL = "no CPU torch wheel for this Python"


def _torch_unavailable(reason):
    if sys.version_info >= (3, 14):
        pytest.skip(NO_WHEEL)
    if os.environ.get("CI") == "true":
        pytest.fail(f"torch test cannot run under CI=true: {reason}", pytrace=False)
    warnings.warn(f"torch tests skipped: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def torch():
    """The `torch` module; skips or (under CI=true, Python < 3.14) fails the test without it."""
    try:
        import torch as torch_module
        return torch_module
    except ImportError as exc:
        reason = f"torch is not installed ({exc}); pip install -e '.[test]' installs it"
    except Exception as exc:  # an installed but broken torch
        reason = f"torch did not import: {type(exc).__name__}: {exc}"
    _torch_unavailable(reason)  # outside the except blocks: no chained traceback in the report


# -- the browser tests' Chromium (tests/explain/test_report_page.py, tests/playground/test_page.py) --
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _chromium_path():
    for candidate in (os.environ.get("DELTAPROP_CHROMIUM"), "/usr/bin/chromium",
                      shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and os.path.exists(candidate):
            return candidate
    return None


def _browser_unavailable(reason):
    if os.environ.get("CI") == "true":
        pytest.fail(f"browser test cannot run under CI=true: {reason}")
    warnings.warn(f"browser tests skipped: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium through Playwright; skipped with a reason where either is missing (fails under CI=true)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _browser_unavailable("playwright for Python is not installed (pip install playwright)")
    path = _chromium_path()
    if path is None:
        _browser_unavailable("Chromium is not installed (apt-get install chromium)")
    with sync_playwright() as pw:
        try:
            b = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        except Exception as exc:  # a broken or stub chromium
            _browser_unavailable(f"Chromium at {path} did not start: {exc}")
        yield b
        b.close()
