"""Fixtures of the interop tests: `onnx_runtime` (onnx + onnxruntime, the export's oracle).

Both are in the `test` extra (wheels exist for Python 3.11 to 3.14): without them a test is
skipped with the reason, and under CI=true it FAILS (a silent skip would hide that the export
was never checked), the rule of the `torch` fixture in tests/conftest.py.
"""
from __future__ import annotations

import os
import warnings

import pytest


@pytest.fixture(scope="session")
def onnx_runtime():
    """(onnx, onnxruntime); skips or (under CI=true) fails the test without them."""
    try:
        import onnx
        import onnxruntime
        return onnx, onnxruntime
    except ImportError as exc:
        reason = f"onnx/onnxruntime not installed ({exc}); pip install -e '.[test]' installs them"
    except Exception as exc:  # an installed but broken package
        reason = f"onnx/onnxruntime did not import: {type(exc).__name__}: {exc}"
    if os.environ.get("CI") == "true":
        pytest.fail(f"onnx test cannot run under CI=true: {reason}", pytrace=False)
    warnings.warn(f"onnx tests skipped: {reason}")
    pytest.skip(reason)
