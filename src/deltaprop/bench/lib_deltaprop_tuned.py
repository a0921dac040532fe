"""deltaprop's cases after the explicit opt-in `dp.tune_malloc()`: the same code as lib_deltaprop,
measured with glibc keeping freed memory (so per-step arrays cost no page faults)."""
from __future__ import annotations

import deltaprop as dp

from .lib_deltaprop import chain, cnn, mazur, micro, mlp_adam, mlp_sgd  # noqa: F401  (the same cases)

dp.tune_malloc()
