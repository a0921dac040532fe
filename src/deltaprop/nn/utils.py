"""Training utilities: gradient clipping (PyTorch's rules)."""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from ..modes import effect
from ..tensor import Tensor


def _params(parameters: Any) -> list[Tensor]:
    return [parameters] if isinstance(parameters, Tensor) else list(parameters)


def clip_grad_norm_(parameters: Iterable[Tensor] | Tensor, max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False, foreach: Any = None) -> Tensor:
    """Scale all gradients by max_norm / (total_norm + 1e-6) when that is below 1, where total_norm
    is the norm of all gradients together (as one vector). Returns total_norm. A NaN in any gradient
    makes total_norm NaN (for every norm_type, inf included), and then every gradient NaN, as in
    PyTorch; error_if_nonfinite=True raises instead when total_norm is NaN or infinite. Each scaled
    .grad is a new Tensor (never written in place: a .grad may be shared)."""
    # (an effect: a compiled step computes the norm and clips again on every replay)
    return effect(_clip_grad_norm, _params(parameters), max_norm, norm_type, error_if_nonfinite)


def _clip_grad_norm(params: list[Tensor], max_norm: float, norm_type: float, error_if_nonfinite: bool) -> Tensor:
    grads = [p for p in params if p.grad is not None]
    if not grads:
        return Tensor(np.array(0.0))
    norm_type = float(norm_type)
    arrays = [np.asarray(p.grad.data) for p in grads if p.grad is not None]
    if norm_type == np.inf:
        # np.max, not Python's max: a NaN must propagate (max(1.0, nan) is 1.0)
        total = float(np.max([float(np.max(np.abs(a))) if a.size else 0.0 for a in arrays]))
    else:
        parts = [float(np.linalg.norm(a.ravel(), norm_type)) if a.size else 0.0 for a in arrays]
        total = float(np.linalg.norm(np.array(parts), norm_type))
    if error_if_nonfinite and not np.isfinite(total):
        raise RuntimeError(f"clip_grad_norm_: the total norm of order {norm_type} of the gradients is {total}; "
                           "set error_if_nonfinite=False to clip anyway")
    coef = float(max_norm) / (total + 1e-6)
    if not coef >= 1.0:  # (below 1, or NaN: PyTorch multiplies by clamp(coef, max=1), which keeps a NaN)
        with np.errstate(invalid="ignore"):  # (inf * 0 is NaN, as in PyTorch, without a warning)
            for p, a in zip(grads, arrays):
                p.grad = Tensor(a * a.dtype.type(coef))
    return Tensor(np.array(total, dtype=arrays[0].dtype))


def clip_grad_value_(parameters: Iterable[Tensor] | Tensor, clip_value: float, foreach: Any = None) -> None:
    """Clamp every gradient element to [-clip_value, clip_value] (new .grad Tensors)."""
    effect(_clip_grad_value, _params(parameters), float(clip_value))


def _clip_grad_value(params: list[Tensor], c: float) -> None:
    for p in params:
        if p.grad is not None:
            p.grad = Tensor(np.clip(p.grad.data, -c, c))


def parameters_to_vector(parameters: Iterable[Tensor]) -> Tensor:
    """All parameter values concatenated into one 1-D Tensor (a copy)."""
    return Tensor(np.concatenate([np.asarray(p.data).ravel() for p in parameters]))


def vector_to_parameters(vec: Any, parameters: Iterable[Tensor]) -> None:
    """Copy consecutive slices of vec into the parameters, in place."""
    v = np.asarray(vec.data if isinstance(vec, Tensor) else vec)
    i = 0
    for p in parameters:
        n = p.data.size
        p.data[...] = v[i:i + n].reshape(p.data.shape)
        p._bump()  # an in-place change (a graph that saved p raises rather than use the new values)
        i += n
