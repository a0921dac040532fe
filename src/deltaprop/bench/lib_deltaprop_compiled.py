"""deltaprop's training-step cases compiled with dp.compile: the same step functions as
lib_deltaprop, recorded on their first calls (the warm-up) and replayed from then on."""
from __future__ import annotations

import time

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


def first_call():
    """Seconds from dp.compile(step) until the compiled step has replayed once (the calls that
    run eagerly and record, the planning, the first replay) for the mlp-sgd step; the model,
    optimizer and data are made first."""
    fn = _eager.mlp_sgd()
    t0 = time.perf_counter()
    step = dp.compile(fn)
    first_loss = float(step().item())
    calls = 1
    while step.replays == 0:
        if calls == 10:
            raise RuntimeError(f"dp.compile's step did not replay in {calls} calls (recordings: "
                               f"{step.recordings}); the first-call case times the calls until it does")
        step()
        calls += 1
    seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    step()
    return {"value": seconds, "calls": calls, "first_loss": first_loss, "next_call_s": time.perf_counter() - t1}
