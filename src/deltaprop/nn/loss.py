"""Loss modules: thin wrappers over the fused loss ops, each with reduction = mean | sum | none."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..tensor import Tensor
from . import functional as F
from .module import Module

_REDUCTIONS = ("mean", "sum", "none")


class _Loss(Module):
    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        if reduction not in _REDUCTIONS:
            raise ValueError(f"{type(self).__name__}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction


class MSELoss(_Loss):
    """mean((input - target)**2) (or sum / per element)."""

    def forward(self, input: Any, target: Any) -> Tensor:
        """mean((input - target)**2) (or sum / none per reduction)."""
        return F.mse_loss(input, target, reduction=self.reduction)


class CrossEntropyLoss(_Loss):
    """Softmax cross-entropy from logits (N, C) and integer labels (N,): -log softmax(x)[label]."""

    def forward(self, input: Any, target: Any) -> Tensor:
        """-log softmax(input)[target], averaged over the batch by default."""
        return F.cross_entropy(input, target, reduction=self.reduction)


class BCELoss(_Loss):
    """-(y log p + (1 - y) log(1 - p)) for probabilities p in [0, 1]."""

    def forward(self, input: Any, target: Any) -> Tensor:
        """-(t log p + (1 - t) log(1 - p)) for probabilities p = input."""
        return F.binary_cross_entropy(input, target, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy of sigmoid(x), computed stably from the logits x."""

    def forward(self, input: Any, target: Any) -> Tensor:
        """Binary cross-entropy of sigmoid(input), computed stably from the logits."""
        return F.binary_cross_entropy_with_logits(input, target, reduction=self.reduction)


class NLLLoss(_Loss):
    """Negative log-likelihood of log-probabilities (N, C) and integer targets (N,): -w[t] * input[n, t];
    `weight` (C,) per class (a buffer, as in PyTorch), targets equal to ignore_index are skipped."""

    weight: Tensor | None  # a buffer (register_buffer)

    def __init__(self, weight: Any = None, ignore_index: int = -100, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.register_buffer("weight", None if weight is None else
                             (weight if isinstance(weight, Tensor) else Tensor(np.asarray(weight))))
        self.ignore_index = ignore_index

    def forward(self, input: Any, target: Any) -> Tensor:
        return F.nll_loss(input, target, self.weight, self.ignore_index, self.reduction)


class L1Loss(_Loss):
    """mean(|input - target|) (or sum / per element)."""

    def forward(self, input: Any, target: Any) -> Tensor:
        return F.l1_loss(input, target, reduction=self.reduction)
