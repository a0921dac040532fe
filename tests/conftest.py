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
