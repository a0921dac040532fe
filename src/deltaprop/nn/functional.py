"""Functional forms of the layers, activations and losses (PyTorch's names)."""
from __future__ import annotations

from ..ops import (binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy, leaky_relu,
                   log_softmax, mse_loss, relu, sigmoid, softmax, softplus, tanh)

__all__ = ["softmax", "log_softmax", "cross_entropy", "mse_loss", "binary_cross_entropy",
           "binary_cross_entropy_with_logits", "relu", "sigmoid", "tanh", "leaky_relu", "softplus"]
