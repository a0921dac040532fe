"""Adagrad (PyTorch 2.x rule: per-element sums of squared gradients, lr decayed by step)."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from .optimizer import Optimizer, ParamsT

__all__ = ["Adagrad"]


class Adagrad(Optimizer):
    """Adagrad, PyTorch's rule. With g = grad (negated if ``maximize``) + weight_decay * p and
    step t: s += g**2; p -= lr / (1 + (t - 1) * lr_decay) * g / (sqrt(s) + eps).
    s starts at ``initial_accumulator_value``; the state exists from construction, as in PyTorch."""

    def __init__(self, params: ParamsT, lr: float = 1e-2, lr_decay: float = 0, weight_decay: float = 0,
                 initial_accumulator_value: float = 0, eps: float = 1e-10, maximize: bool = False) -> None:
        defaults = dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, maximize=maximize)
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                self.state[p]["step"] = 0.0
                self.state[p]["sum"] = np.full_like(p.data, group["initial_accumulator_value"])

    def _check_options(self, options: Mapping[str, Any]) -> None:
        super()._check_options(options)
        for name in ("lr_decay", "weight_decay", "initial_accumulator_value", "eps"):
            value = options.get(name, 0.0)
            if not 0.0 <= value:
                raise ValueError(f"Invalid {name} value: {value}")

    def _validate_state(self, group: Mapping[str, Any], index: int, entry: Mapping[str, Any]) -> None:
        missing = [k for k in ("step", "sum") if entry.get(k) is None]
        if missing:
            raise ValueError(f"loaded state dict: Adagrad state of parameter {index!r} lacks "
                             f"{', '.join(map(repr, missing))}")

    def _options(self, group: dict[str, Any]) -> tuple:
        return (group["lr"], group["lr_decay"], group["eps"], group["weight_decay"], group["maximize"],
                group["initial_accumulator_value"])

    def _step_param(self, p, w: np.ndarray, g: np.ndarray, a: np.ndarray, b: np.ndarray, o: tuple) -> None:
        lr, lr_decay, eps, wd, maximize, initial = o
        t = w.dtype.type
        state = self.state[p]
        if "sum" not in state:  # (a parameter added to a group after construction)
            state["step"] = 0.0
            state["sum"] = np.full_like(w, initial)
        if maximize:
            np.negative(g, out=a)
            g = a
        if wd != 0:  # g + wd * p into scratch: the grad array is never modified
            np.multiply(w, t(wd), out=b)
            np.add(g, b, out=a)
            g = a
        state["step"] += 1
        clr = lr / (1 + (state["step"] - 1) * lr_decay)
        s = state["sum"]
        np.multiply(g, g, out=b)
        np.add(s, b, out=s)
        np.sqrt(s, out=b)
        np.add(b, t(eps), out=b)
        np.divide(g, b, out=b)
        np.multiply(b, t(-clr), out=b)
        np.add(w, b, out=w)
