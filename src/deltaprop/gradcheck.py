"""gradcheck: compare the engine's gradients with central finite differences in float64."""
from __future__ import annotations

from typing import Callable

import numpy as np

from .tensor import Tensor
from .transforms import _grads


class GradcheckError(RuntimeError):
    """Raised by gradcheck when an analytical gradient disagrees with finite differences."""


def gradcheck(f: Callable, *inputs, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3) -> bool:
    """True if every float input's Jacobian matches central differences; else GradcheckError
    naming the input, the index and the two values that disagree most."""
    arrays = [np.array(a.data if isinstance(a, Tensor) else a) for a in inputs]
    floats = [i for i, a in enumerate(arrays) if a.dtype.kind == "f"]
    marked = [i for i in floats if isinstance(inputs[i], Tensor) and inputs[i].requires_grad]
    check = marked or floats
    if not check:
        raise ValueError("gradcheck: no floating-point input to check")
    args = [Tensor(a.astype(np.float64), requires_grad=True) if i in check else Tensor(a)
            for i, a in enumerate(arrays)]

    def call(xs):
        out = f(*xs)
        if not isinstance(out, Tensor):
            raise TypeError(f"gradcheck: f must return a Tensor, got {type(out).__name__}")
        return out

    out = call(args)
    n_out = out.size
    for i in check:
        x = args[i]
        # analytical: one VJP per output element gives one row of the Jacobian
        analytical = np.zeros((n_out, x.size))
        for k in range(n_out):
            e = np.zeros(n_out)
            e[k] = 1
            analytical[k] = _grads(out, [x], e.reshape(out.shape))[0].data.reshape(-1)
        numerical = np.zeros_like(analytical)
        flat = x.data.reshape(-1)
        for j in range(x.size):
            orig = flat[j]
            flat[j] = orig + eps
            plus = np.array(call(args).data, np.float64).reshape(-1)  # a copy: views move with x
            flat[j] = orig - eps
            minus = np.array(call(args).data, np.float64).reshape(-1)
            flat[j] = orig
            numerical[:, j] = (plus - minus) / (2 * eps)
        bad = np.abs(analytical - numerical) - (atol + rtol * np.abs(numerical))
        if (bad > 0).any() or not np.isfinite(analytical).all():
            k, j = (int(i) for i in np.unravel_index(np.nanargmax(np.where(np.isfinite(bad), bad, np.inf)), bad.shape))
            idx = np.unravel_index(j, x.shape)
            raise GradcheckError(
                f"gradcheck: gradient of input {i} at index {tuple(int(v) for v in idx)} (output element {k}) "
                f"disagrees: analytical {float(analytical[k, j])!r} vs numerical {float(numerical[k, j])!r} "
                f"(atol={atol}, rtol={rtol})")
    return True
