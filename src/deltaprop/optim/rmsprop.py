"""RMSprop (PyTorch 2.x rule: eps added outside the square root, optional centering and momentum)."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from .optimizer import _ema_sq_, _lerp_, Optimizer, ParamsT

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    """RMSprop, PyTorch's rule. With g = grad (negated if ``maximize``) + weight_decay * p:
    s = alpha * s + (1 - alpha) * g**2; ``centered``: a = alpha * a + (1 - alpha) * g, d = sqrt(s - a**2) + eps,
    else d = sqrt(s) + eps; with momentum: b = momentum * b + g / d, p -= lr * b; else p -= lr * g / d.
    """

    def __init__(self, params: ParamsT, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0, momentum: float = 0, centered: bool = False,
                 maximize: bool = False) -> None:
        defaults = dict(lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=centered,
                        weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    def _check_options(self, options: Mapping[str, Any]) -> None:
        super()._check_options(options)
        for name, label in (("eps", "epsilon"), ("momentum", "momentum"), ("weight_decay", "weight_decay"),
                            ("alpha", "alpha")):
            value = options.get(name, 0.0)
            if not 0.0 <= value:
                raise ValueError(f"Invalid {label} value: {value}")

    def _validate_state(self, group: Mapping[str, Any], index: int, entry: Mapping[str, Any]) -> None:
        if not entry:
            return
        need = ["step", "square_avg"]
        need += ["momentum_buffer"] if group["momentum"] > 0 else []
        need += ["grad_avg"] if group["centered"] else []
        missing = [k for k in need if entry.get(k) is None]
        if missing:
            raise ValueError(f"loaded state dict: RMSprop state of parameter {index!r} lacks "
                             f"{', '.join(map(repr, missing))}")

    def _options(self, group: dict[str, Any]) -> tuple:
        return (group["lr"], group["alpha"], group["eps"], group["weight_decay"], group["momentum"], group["centered"],
                group["maximize"])

    def _step_param(self, p, w: np.ndarray, g: np.ndarray, a: np.ndarray, b: np.ndarray, o: tuple) -> None:
        lr, alpha, eps, wd, momentum, centered, maximize = o
        t = w.dtype.type
        state = self.state[p]
        if not state:
            state["step"] = 0.0
            state["square_avg"] = np.zeros_like(w)
            if momentum > 0:
                state["momentum_buffer"] = np.zeros_like(w)
            if centered:
                state["grad_avg"] = np.zeros_like(w)
        if maximize:
            np.negative(g, out=a)
            g = a
        state["step"] += 1
        if wd != 0:  # g + wd * p into scratch: the grad array is never modified
            np.multiply(w, t(wd), out=b)
            np.add(g, b, out=a)
            g = a
        s = state["square_avg"]
        _ema_sq_(s, g, alpha, b)  # s = alpha * s + ((1 - alpha) * g) * g
        if centered:
            ga = state.get("grad_avg")
            if ga is None:
                ga = state["grad_avg"] = np.zeros_like(w)
            _lerp_(ga, g, t(1 - alpha), b)  # ga.lerp_(g, 1 - alpha); avg = sqrt(s - ga * ga)
            np.negative(ga, out=b)
            np.multiply(b, ga, out=b)
            np.add(s, b, out=b)
            np.sqrt(b, out=b)
        else:
            np.sqrt(s, out=b)
        np.add(b, t(eps), out=b)
        if momentum > 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = np.zeros_like(w)
            np.multiply(buf, t(momentum), out=buf)
            np.divide(g, b, out=a)
            np.add(buf, a, out=buf)
            np.multiply(buf, t(-lr), out=a)
            np.add(w, a, out=w)
        else:
            np.multiply(g, t(-lr), out=a)
            np.divide(a, b, out=a)
            np.add(w, a, out=w)
