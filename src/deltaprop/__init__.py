"""deltaprop: backpropagation you can see.

Reverse- and forward-mode automatic differentiation over NumPy arrays, neural-network
training on top of it, and the propagated error signals (deltas) made visible.
"""
from __future__ import annotations

import os as _os

from ._config import get_default_dtype, manual_seed, set_default_dtype, tune_malloc
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
from .compile import compile
from . import nn
from .io import load, load_checkpoint, load_metadata, save, save_checkpoint
from .plot import plot_history

__version__ = "0.1.0"

if _os.environ.get("DELTAPROP_TUNE_MALLOC") == "1":  # the user's explicit opt-in (see tune_malloc)
    tune_malloc()


def __getattr__(name):
    # Subpackages with heavier imports load on first use, keeping `import deltaprop` fast.
    if name in ("optim", "data", "explain", "distributed", "onnx"):  # (onnx: the package itself loads on export)
        import importlib
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'deltaprop' has no attribute {name!r}")
