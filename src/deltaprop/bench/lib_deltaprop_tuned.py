"""deltaprop's cases after the explicit opt-in `dp.tune_malloc()`: the same code as lib_deltaprop,
measured with glibc keeping freed memory (so per-step arrays cost no page faults)."""
from __future__ import annotations

import deltaprop as dp

from . import lib_deltaprop as base

dp.tune_malloc()


def mlp_sgd():
    return base.mlp_sgd()


def mlp_adam():
    return base.mlp_adam()


def mazur():
    return base.mazur()


def cnn():
    return base.cnn()


def chain():
    return base.chain()


def micro():
    return base.micro()
