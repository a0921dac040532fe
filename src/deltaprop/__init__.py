"""deltaprop: backpropagation you can see.

Reverse- and forward-mode automatic differentiation over NumPy arrays, neural-network
training on top of it, and the propagated error signals (deltas) made visible.
"""
from __future__ import annotations

import os as _os

from ._config import get_default_dtype, manual_seed, set_default_dtype
from .memory import tune_malloc
from .tensor import Tensor
from .creation import tensor, arange, eye, from_numpy, full, ones, ones_like, rand, randn, zeros, zeros_like
from .function import Function
from .autograd import detect_anomaly, enable_grad, is_grad_enabled, no_grad
from .ops import (abs, add, argmax, argmin, astype, broadcast_to, cat, clip, concatenate, cos, divide, dot, exp,
                  expand_dims, flatten, log, log1p, logsumexp, matmul, max, maximum, mean, min, minimum,
                  multiply, negative, power, prod, relu, reshape, sigmoid, sin, split, sqrt, square, squeeze,
                  stack, std, subtract, sum, swapaxes, tanh, transpose, unsqueeze, var, where)
from .transforms import grad, hessian, jacobian, jvp, value_and_grad, vjp
from .gradcheck import GradcheckError, gradcheck
from . import nn

__version__ = "0.1.0"

if _os.environ.get("DELTAPROP_TUNE_MALLOC") == "1" or _os.environ.get("DELTAPROP_RECYCLE") == "malloc":  # the user's explicit opt-in (see tune_malloc)
    tune_malloc()


# Loaded on first use, keeping `import deltaprop` fast (`import deltaprop` minus `import numpy`
# <= 0.1 s): subpackages and modules with heavier imports, and the names dp offers from modules
# that a program may never call (tests/test_public_api.py checks both).
_LAZY_MODULES = ("optim", "data", "explain", "distributed", "onnx", "io", "plot", "graph")  # (onnx: the package loads on export)
_LAZY_NAMES = {"compile": "compiler", "load": "io", "load_checkpoint": "io", "load_metadata": "io", "save": "io",
               "save_checkpoint": "io", "plot_history": "plot"}


def __getattr__(name: str):
    import importlib
    if name in _LAZY_NAMES:
        value = getattr(importlib.import_module(f".{_LAZY_NAMES[name]}", __name__), name)
    elif name in _LAZY_MODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module 'deltaprop' has no attribute {name!r}")
    globals()[name] = value  # (later lookups find it without calling this function)
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY_MODULES, *_LAZY_NAMES})
