"""detect_anomaly's checks: NaN in a forward value, NaN or Inf in a gradient, named by op and shapes."""
from __future__ import annotations

from typing import Any

import numpy as np

_autograd: Any = None  # deltaprop.autograd, which imports this module: bound by deltaprop.ops (bind)


def bind(autograd: Any) -> None:
    """Called by deltaprop.ops once the engine has loaded: the module whose apply/VJP the checks run."""
    global _autograd
    _autograd = autograd


def _shapes(args) -> str:
    return ", ".join(str(np.shape(getattr(a, "data", a))) for a in args)


def checked_apply(op, args, kw):
    """Run op without NumPy warnings, then raise if its forward output holds a NaN."""
    autograd = _autograd
    autograd._state.anomaly = False  # the op itself runs unchecked; re-enabled right after
    try:
        with np.errstate(all="ignore"):
            out = autograd.apply(op, args, kw)
    finally:
        autograd._state.anomaly = True
    if out.data.dtype.kind == "f" and np.isnan(out.data).any():
        raise FloatingPointError(f"detect_anomaly: op '{op.name}' produced NaN in its forward "
                                 f"output {out.shape} from inputs of shapes {_shapes(args)}")
    return out


def checked_vjp(node, g, create_graph):
    """A node's VJP; a NaN inside it (e.g. a dp.Function's backward) is reported as that node's."""
    autograd = _autograd
    try:
        with np.errstate(all="ignore"):
            return autograd._call_vjp(node, g, create_graph)
    except FloatingPointError as e:
        raise FloatingPointError(f"detect_anomaly: the backward of op '{node.op.name}' (inputs of shapes "
                                 f"{_shapes(node.args)}) failed: {e}") from None


def check_grad(node, g, args) -> None:
    """Raise if a gradient flowing out of node holds NaN or Inf."""
    v = getattr(g, "data", g)
    if not np.isfinite(v).all():
        what = "NaN" if np.isnan(v).any() else "Inf"
        raise FloatingPointError(f"detect_anomaly: the backward of op '{node.op.name}' produced {what} "
                                 f"in a gradient of shape {v.shape}; its inputs have shapes {_shapes(args)}")
