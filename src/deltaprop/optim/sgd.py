"""Stochastic gradient descent with momentum, dampening, Nesterov and weight decay (PyTorch 2.x)."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from .optimizer import Optimizer, ParamsT

__all__ = ["SGD"]


class SGD(Optimizer):
    """SGD, PyTorch's rule. With g = grad (negated if ``maximize``) + weight_decay * p:
    b = g on the first step, else b = momentum * b + (1 - dampening) * g;
    g = g + momentum * b if ``nesterov`` else b (when momentum != 0); p -= lr * g.
    """

    def __init__(self, params: ParamsT, lr: float = 1e-3, momentum: float = 0, dampening: float = 0,
                 weight_decay: float = 0, nesterov: bool = False, maximize: bool = False) -> None:
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize)
        super().__init__(params, defaults)

    def _check_options(self, options: Mapping[str, Any]) -> None:
        super()._check_options(options)
        momentum, wd = options.get("momentum", 0), options.get("weight_decay", 0)
        if not 0.0 <= momentum:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if not 0.0 <= wd:
            raise ValueError(f"Invalid weight_decay value: {wd}")
        if options.get("nesterov", False) and (momentum <= 0 or options.get("dampening", 0) != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")

    def _validate_state(self, group: Mapping[str, Any], index: int, entry: Mapping[str, Any]) -> None:
        if group["momentum"] != 0 and entry and "momentum_buffer" not in entry:
            raise ValueError(f"loaded state dict: SGD state of parameter {index!r} lacks 'momentum_buffer'")

    def _options(self, group: dict[str, Any]) -> tuple:
        return (group["lr"], group["momentum"], group["dampening"], group["weight_decay"], group["nesterov"],
                group["maximize"])

    def _step_param(self, p, w: np.ndarray, g: np.ndarray, a: np.ndarray, b: np.ndarray, o: tuple) -> None:
        lr, momentum, dampening, wd, nesterov, maximize = o
        t = w.dtype.type
        if maximize:
            np.negative(g, out=a)
            g = a
        if wd != 0:  # g + wd * p, written to scratch (the grad array is never modified)
            np.multiply(w, t(wd), out=b)
            np.add(g, b, out=a)
            g = a
        if momentum != 0:
            state = self.state[p]
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = np.array(g, dtype=w.dtype, copy=True)
            else:
                np.multiply(buf, t(momentum), out=buf)
                if dampening != 0:
                    np.multiply(g, t(1 - dampening), out=b)
                    np.add(buf, b, out=buf)
                else:
                    np.add(buf, g, out=buf)
            if nesterov:
                np.multiply(buf, t(momentum), out=b)
                np.add(g, b, out=a)
                g = a
            else:
                g = buf
        np.multiply(g, t(-lr), out=b)
        np.add(w, b, out=w)
