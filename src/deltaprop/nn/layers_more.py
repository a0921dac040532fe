"""More layers with PyTorch's names, arguments, defaults and state_dict layout: Conv1d,
AvgPool2d, AdaptiveAvgPool2d, BatchNorm2d, LayerNorm and Embedding."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import _config
from ..tensor import Tensor
from . import functional as F
from .layers import BatchNorm1d, Conv2d, _dtype, _uniform
from .module import Module, Parameter

__all__ = ["Conv1d", "AvgPool2d", "AdaptiveAvgPool2d", "BatchNorm2d", "LayerNorm", "Embedding"]


def _single(v: Any, name: str) -> int:
    t = tuple(v) if isinstance(v, (tuple, list)) else (v,)
    if len(t) != 1 or not isinstance(t[0], (int, np.integer)):
        raise ValueError(f"Conv1d: {name} must be an int or a 1-tuple of ints, got {v!r}")
    return int(t[0])


class Conv1d(Conv2d):
    """1-D convolution over (N, C, L); weight (out, in, k), init U(-1/sqrt(in*k), 1/sqrt(in*k));
    stride, padding (an int, 'valid' or 'same') and dilation as in PyTorch."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Any = 0, dilation: Any = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", dtype: Any = None) -> None:
        Module.__init__(self)
        if groups != 1 or padding_mode != "zeros":
            raise NotImplementedError("Conv1d: only groups=1 and padding_mode='zeros' are supported")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = (_single(kernel_size, "kernel_size"),)
        self.stride, self.dilation = (_single(stride, "stride"),), (_single(dilation, "dilation"),)
        if padding == "valid":
            padding = 0
        elif padding == "same":
            span = self.dilation[0] * (self.kernel_size[0] - 1)
            if self.stride != (1,) or span % 2:
                raise ValueError("Conv1d: padding='same' needs stride 1 and an even dilation * (kernel_size - 1) "
                                 f"here, got stride={self.stride}, kernel_size={self.kernel_size}, "
                                 f"dilation={self.dilation}")
            padding = span // 2
        self.padding = (_single(padding, "padding"),)
        dt = _dtype(dtype)
        fan_in = self.in_channels * self.kernel_size[0]
        bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        self.weight = _uniform((self.out_channels, self.in_channels) + self.kernel_size, bound, dt)
        if bias:
            self.bias = _uniform((self.out_channels,), bound, dt)
        else:
            self.register_parameter("bias", None)

    def forward(self, x: Any) -> Tensor:
        return F.conv1d(x, self.weight, self.bias, self.stride, self.padding, self.dilation)


class AvgPool2d(Module):
    """Mean over kernel_size windows (stride defaults to kernel_size); zero padding is counted in
    the divisor unless count_include_pad=False; divisor_override replaces the divisor."""

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
                 count_include_pad: bool = True, divisor_override: int | None = None) -> None:
        super().__init__()
        if ceil_mode:
            raise NotImplementedError("AvgPool2d: ceil_mode=True is not supported")
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding, self.ceil_mode = padding, ceil_mode
        self.count_include_pad, self.divisor_override = count_include_pad, divisor_override

    def forward(self, x: Any) -> Tensor:
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad,
                            self.divisor_override)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    """Average pooling to a fixed output_size (an int, a pair, None entries keep the input size)."""

    def __init__(self, output_size: Any) -> None:
        super().__init__()
        self.output_size = output_size

    def forward(self, x: Any) -> Tensor:
        return F.adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class BatchNorm2d(BatchNorm1d):
    """Batch normalisation per channel of (N, C, H, W) input (statistics over N, H and W), with
    BatchNorm1d's running statistics, momentum and state_dict."""

    def _check_input(self, shape: tuple) -> None:
        if len(shape) != 4 or shape[1] != self.num_features:
            raise ValueError(f"BatchNorm2d({self.num_features}): expected input of shape "
                             f"(N, {self.num_features}, H, W), got {tuple(shape)}")


class LayerNorm(Module):
    """Normalise over the last len(normalized_shape) axes: (x - mean) / sqrt(var + eps) * weight + bias
    (biased variance); weight ones and bias zeros of normalized_shape."""

    def __init__(self, normalized_shape: Any, eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True, dtype: Any = None) -> None:
        super().__init__()
        ns = normalized_shape
        self.normalized_shape = (int(ns),) if isinstance(ns, (int, np.integer)) else tuple(int(n) for n in ns)
        self.eps, self.elementwise_affine = eps, elementwise_affine
        dt = _dtype(dtype)
        if elementwise_affine:
            self.weight = Parameter(np.ones(self.normalized_shape, dt))
            if bias:
                self.bias = Parameter(np.zeros(self.normalized_shape, dt))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x: Any) -> Tensor:
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class Embedding(Module):
    """A lookup table: row i of weight (num_embeddings, embedding_dim) for each integer index i;
    weight ~ N(0, 1), the padding_idx row zero and never updated by gradients."""

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 max_norm: float | None = None, norm_type: float = 2.0, scale_grad_by_freq: bool = False,
                 sparse: bool = False, _weight: Any = None, _freeze: bool = False, dtype: Any = None) -> None:
        super().__init__()
        if max_norm is not None or scale_grad_by_freq or sparse:
            raise NotImplementedError("Embedding: max_norm, scale_grad_by_freq and sparse are not supported")
        self.num_embeddings, self.embedding_dim = int(num_embeddings), int(embedding_dim)
        if padding_idx is not None:
            if not -self.num_embeddings <= padding_idx < self.num_embeddings:
                raise ValueError(f"Embedding: padding_idx {padding_idx} must be within num_embeddings "
                                 f"({self.num_embeddings})")
            padding_idx %= self.num_embeddings
        self.padding_idx = padding_idx
        if _weight is None:
            w = _config.default_generator().standard_normal((self.num_embeddings, self.embedding_dim))
            w = w.astype(_dtype(dtype))
            if padding_idx is not None:
                w[padding_idx] = 0
        else:
            w = np.array(_weight.data if isinstance(_weight, Tensor) else _weight)
            if w.shape != (self.num_embeddings, self.embedding_dim):
                raise ValueError(f"Embedding: _weight has shape {w.shape}, expected "
                                 f"{(self.num_embeddings, self.embedding_dim)}")
        self.weight = Parameter(w, requires_grad=not _freeze)

    @classmethod
    def from_pretrained(cls, embeddings: Any, freeze: bool = True, padding_idx: int | None = None) -> Embedding:
        """An Embedding holding a copy of the 2-D `embeddings` (not trained when freeze)."""
        shape = np.shape(embeddings.data if isinstance(embeddings, Tensor) else embeddings)
        if len(shape) != 2:
            raise ValueError(f"Embedding.from_pretrained: embeddings must be 2-D, got shape {shape}")
        return cls(shape[0], shape[1], padding_idx, _weight=embeddings, _freeze=freeze)

    def forward(self, input: Any) -> Tensor:
        return F.embedding(input, self.weight, self.padding_idx)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}" + (
            f", padding_idx={self.padding_idx}" if self.padding_idx is not None else "")
