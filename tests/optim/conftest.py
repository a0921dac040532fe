"""Shared helpers for the optimizer tests: drive an optimizer with fixed gradients."""
from __future__ import annotations

import numpy as np
import pytest

import deltaprop as dp


def _run(make_opt, w0, grads, dtype=np.float64):
    """Create a parameter from w0, step `make_opt([p])` once per gradient; return the weights after each step."""
    p = dp.tensor(np.array(w0, dtype=dtype), requires_grad=True)
    opt = make_opt([p])
    out = []
    for g in grads:
        p.grad = dp.tensor(np.array(g, dtype=dtype))
        opt.step()
        out.append(p.data.copy())
    return out


@pytest.fixture
def run_steps():
    return _run


# The small fixed problem of the hand-worked tests: a 2-element parameter, 3 gradients.
W0 = [1.0, -2.0]
GRADS = [[0.5, -1.0], [0.1, 0.2], [-0.3, 0.4]]
