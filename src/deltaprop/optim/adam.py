"""Adam and AdamW (PyTorch 2.x rules, bias correction as PyTorch computes it)."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from .optimizer import _ema_sq_, _lerp_, Optimizer, ParamsT

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    """Adam, PyTorch's rule. With g = grad (negated if ``maximize``), t = step + 1:
    weight decay: g += wd * p, or p *= 1 - lr * wd if ``decoupled_weight_decay`` (AdamW);
    m = beta1 * m + (1 - beta1) * g; v = beta2 * v + (1 - beta2) * g**2 (``amsgrad``: vmax = max(vmax, v));
    p -= lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps).
    """

    def __init__(self, params: ParamsT, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0, amsgrad: bool = False, maximize: bool = False,
                 decoupled_weight_decay: bool = False) -> None:
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize, decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults)

    def _check_options(self, options: Mapping[str, Any]) -> None:
        super()._check_options(options)
        eps, wd = options.get("eps", 0.0), options.get("weight_decay", 0.0)
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        betas = options.get("betas", (0.0, 0.0))
        if len(betas) != 2:
            raise ValueError(f"Invalid betas: {betas!r} (expected two values)")
        for i, beta in enumerate(betas):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"Invalid beta parameter at index {i}: {beta}")
        if not 0.0 <= wd:
            raise ValueError(f"Invalid weight_decay value: {wd}")

    def _validate_state(self, group: Mapping[str, Any], index: int, entry: Mapping[str, Any]) -> None:
        if not entry:
            return
        need = ["step", "exp_avg", "exp_avg_sq"] + (["max_exp_avg_sq"] if group["amsgrad"] else [])
        missing = [k for k in need if entry.get(k) is None]
        if missing:
            raise ValueError(f"loaded state dict: {type(self).__name__} state of parameter {index!r} lacks "
                             f"{', '.join(map(repr, missing))}")

    def _options(self, group: dict[str, Any]) -> tuple:
        return (group["lr"], group["betas"], group["eps"], group["weight_decay"], group["amsgrad"], group["maximize"],
                group.get("decoupled_weight_decay", False))

    def _step_param(self, p, w: np.ndarray, g: np.ndarray, a: np.ndarray, b: np.ndarray, o: tuple) -> None:
        lr, (beta1, beta2), eps, wd, amsgrad, maximize, decoupled = o
        t = w.dtype.type
        state = self.state[p]
        if not state:
            state["step"] = 0.0
            state["exp_avg"] = np.zeros_like(w)
            state["exp_avg_sq"] = np.zeros_like(w)
            if amsgrad:
                state["max_exp_avg_sq"] = np.zeros_like(w)
        m, v = state["exp_avg"], state["exp_avg_sq"]
        if maximize:
            np.negative(g, out=a)
            g = a
        state["step"] = step = state["step"] + 1
        if wd != 0:
            if decoupled:
                np.multiply(w, t(1 - lr * wd), out=w)
            else:  # g + wd * p into scratch: the grad array is never modified
                np.multiply(w, t(wd), out=b)
                np.add(g, b, out=a)
                g = a
        _lerp_(m, g, t(1 - beta1), b)  # m.lerp_(g, 1 - beta1)
        _ema_sq_(v, g, beta2, b)       # v = beta2 * v + ((1 - beta2) * g) * g
        if amsgrad:
            vmax = state.get("max_exp_avg_sq")
            if vmax is None:
                vmax = state["max_exp_avg_sq"] = np.zeros_like(w)
            np.maximum(vmax, v, out=vmax)
            v = vmax
        bias_correction1 = 1 - beta1 ** step
        bias_correction2_sqrt = (1 - beta2 ** step) ** 0.5
        step_size = lr / bias_correction1
        # denom = sqrt(v) / sqrt(bc2) + eps;  p += (-step_size * m) / denom
        np.sqrt(v, out=b)
        np.divide(b, t(bias_correction2_sqrt), out=b)
        np.add(b, t(eps), out=b)
        np.multiply(m, t(-step_size), out=a)
        np.divide(a, b, out=a)
        np.add(w, a, out=w)


class AdamW(Adam):
    """AdamW: Adam with decoupled weight decay, p *= 1 - lr * weight_decay before the Adam step."""

    def __init__(self, params: ParamsT, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False,
                 maximize: bool = False) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                         maximize=maximize, decoupled_weight_decay=True)
