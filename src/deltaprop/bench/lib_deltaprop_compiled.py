"""deltaprop's training-step cases compiled with dp.compile: the same step functions as
lib_deltaprop, recorded on their first calls (the warm-up) and replayed from then on."""
from __future__ import annotations

import deltaprop as dp

from . import lib_deltaprop as _eager


def mlp_sgd():
    """lib_deltaprop.mlp_sgd's step, compiled."""
    return dp.compile(_eager.mlp_sgd())


def mlp_adam():
    """lib_deltaprop.mlp_adam's step, compiled."""
    return dp.compile(_eager.mlp_adam())


def mazur():
    """lib_deltaprop.mazur's step, compiled."""
    return dp.compile(_eager.mazur())


def cnn():
    """lib_deltaprop.cnn's step, compiled."""
    return dp.compile(_eager.cnn())


def train():
    """`deltaprop train --json` with its defaults (the training loop compiles its step)."""
    return _eager.run_train_cli([])
