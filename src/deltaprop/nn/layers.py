"""Layers: Linear, Conv2d, MaxPool2d, Flatten, Dropout, BatchNorm1d and the activation modules."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import _config
from ..ops import flatten, leaky_relu, log_softmax, relu, sigmoid, softmax, softplus, tanh
from ..tensor import Tensor
from . import functional as F
from .module import Module, Parameter


def _dtype(dtype) -> np.dtype:
    return np.dtype(dtype) if dtype is not None else _config.get_default_dtype()


def _uniform(shape, bound: float, dtype) -> Parameter:
    """U(-bound, bound) from the default generator (PyTorch's default Linear/Conv init)."""
    return Parameter(_config.default_generator().uniform(-bound, bound, shape).astype(dtype))


class Linear(Module):
    """y = x @ W.T + b with W of shape (out_features, in_features); W, b ~ U(-1/sqrt(in), 1/sqrt(in))."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, dtype: Any = None) -> None:
        super().__init__()
        self.in_features, self.out_features = int(in_features), int(out_features)
        dt = _dtype(dtype)
        bound = 1.0 / math.sqrt(in_features) if in_features > 0 else 0.0
        # kaiming_uniform_(a=sqrt(5)) gives exactly this bound for the weight
        self.weight = _uniform((self.out_features, self.in_features), bound, dt)
        if bias:
            self.bias = _uniform((self.out_features,), bound, dt)
        else:
            self.register_parameter("bias", None)

    def forward(self, x: Any) -> Tensor:
        """y = x @ W.T + b over the last axis of x."""
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Conv2d(Module):
    """2-D convolution over NCHW input; weight (out, in, kH, kW), init U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""

    kernel_size: tuple[int, ...]  # (two ints; one in Conv1d)
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    dilation: tuple[int, ...]

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Any = 0, dilation: Any = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", dtype: Any = None) -> None:
        super().__init__()
        if groups != 1 or padding_mode != "zeros":
            raise NotImplementedError("Conv2d: only groups=1 and padding_mode='zeros' are supported")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = F._pair(kernel_size, "Conv2d", "kernel_size")
        self.stride = F._pair(stride, "Conv2d", "stride")
        self.dilation = F._pair(dilation, "Conv2d", "dilation")
        if padding == "valid":
            padding = 0
        elif padding == "same":
            span = [d * (k - 1) for d, k in zip(self.dilation, self.kernel_size)]
            if self.stride != (1, 1) or span[0] % 2 or span[1] % 2:
                raise ValueError("Conv2d: padding='same' needs stride 1 and an even dilation * (kernel_size - 1) "
                                 f"here, got stride={self.stride}, kernel_size={self.kernel_size}, "
                                 f"dilation={self.dilation}")
            padding = (span[0] // 2, span[1] // 2)
        self.padding = F._pair(padding, "Conv2d", "padding")
        dt = _dtype(dtype)
        fan_in = self.in_channels * self.kernel_size[0] * self.kernel_size[1]
        bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        self.weight = _uniform((self.out_channels, self.in_channels) + self.kernel_size, bound, dt)
        if bias:
            self.bias = _uniform((self.out_channels,), bound, dt)
        else:
            self.register_parameter("bias", None)

    def forward(self, x: Any) -> Tensor:
        """2-D cross-correlation of x (N, C_in, H, W) with the weight, plus the bias per output channel."""
        shape = np.shape(x.data if isinstance(x, Tensor) else x)
        if len(shape) not in (3, 4) or shape[-3] != self.in_channels:
            raise ValueError(f"Conv2d({self.in_channels}, {self.out_channels}): expected input of shape "
                             f"(N, {self.in_channels}, H, W), got {tuple(shape)}")
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation)

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0,) * len(self.padding):
            s += f", padding={self.padding}"
        if self.dilation != (1,) * len(self.dilation):
            s += f", dilation={self.dilation}"
        return s + ("" if self.bias is not None else ", bias=False")


class MaxPool2d(Module):
    """Max over kernel_size windows (stride defaults to kernel_size). Gradient to the argmax."""

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
                 return_indices: bool = False, ceil_mode: bool = False) -> None:
        super().__init__()
        if dilation not in (1, (1, 1)) or return_indices or ceil_mode:
            raise NotImplementedError("MaxPool2d: only dilation=1, return_indices=False and ceil_mode=False "
                                      "are supported")
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding = padding

    def forward(self, x: Any) -> Tensor:
        """The maximum over each kernel window of x (N, C, H, W); the gradient goes to the maximum."""
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, dilation=1, "
                "ceil_mode=False")


class Flatten(Module):
    """Merge axes start_dim..end_dim (default: all but the batch axis)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x: Any) -> Tensor:
        """x with axes start_dim..end_dim merged into one."""
        return flatten(x, self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Dropout(Module):
    """Inverted dropout with probability p in training; the identity in eval mode."""

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: probability p must be in [0, 1], got {p}")
        self.p, self.inplace = float(p), inplace

    def forward(self, x: Any) -> Tensor:
        """In training, zero each element with probability p and scale the rest by 1/(1-p); identity in eval."""
        return F.dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class BatchNorm1d(Module):
    """Batch normalisation over (N, C) or (N, C, L) (PyTorch semantics: biased variance to
    normalise, unbiased for running_var; momentum=None gives a cumulative average)."""

    running_mean: Tensor  # buffers (register_buffer)
    running_var: Tensor
    num_batches_tracked: Tensor

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, dtype: Any = None) -> None:
        super().__init__()
        self.num_features, self.eps, self.momentum = int(num_features), eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        dt = _dtype(dtype)
        if affine:
            self.weight = Parameter(np.ones(self.num_features, dt))
            self.bias = Parameter(np.zeros(self.num_features, dt))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", Tensor(np.zeros(self.num_features, dt)))
            self.register_buffer("running_var", Tensor(np.ones(self.num_features, dt)))
            self.register_buffer("num_batches_tracked", Tensor(np.array(0, np.int64)))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def _check_input(self, shape: tuple) -> None:
        if len(shape) not in (2, 3) or shape[1] != self.num_features:
            raise ValueError(f"BatchNorm1d({self.num_features}): expected input of shape (N, {self.num_features}) "
                             f"or (N, {self.num_features}, L), got {tuple(shape)}")

    def reset_running_stats(self) -> None:
        """Running mean 0, running variance 1, no batches tracked."""
        if self.track_running_stats:
            for buf, value in ((self.running_mean, 0), (self.running_var, 1), (self.num_batches_tracked, 0)):
                buf.data[...] = value
                buf._bump()

    def forward(self, x: Any) -> Tensor:
        """(x - mean) / sqrt(var + eps) * weight + bias over the batch (and L) axes: the batch's
        statistics in training (updating the running ones), the running ones in eval."""
        self._check_input(np.shape(x.data if isinstance(x, Tensor) else x))
        if self.training and self.track_running_stats:  # (num_batches_tracked counted at the update)
            return F._batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, True,
                                 self.momentum, self.eps, self.num_batches_tracked)
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, self.training,
                            0.0 if self.momentum is None else self.momentum, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


# -- activations -------------------------------------------------------------------------------------
class ReLU(Module):
    """max(x, 0)."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def forward(self, x: Any) -> Tensor:
        """max(x, 0)."""
        return relu(x)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class Sigmoid(Module):
    """1 / (1 + exp(-x))."""

    def forward(self, x: Any) -> Tensor:
        """1 / (1 + e**-x)."""
        return sigmoid(x)


class Tanh(Module):
    """tanh(x)."""

    def forward(self, x: Any) -> Tensor:
        """tanh(x)."""
        return tanh(x)


class LeakyReLU(Module):
    """x if x > 0 else negative_slope * x."""

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False) -> None:
        super().__init__()
        self.negative_slope, self.inplace = negative_slope, inplace

    def forward(self, x: Any) -> Tensor:
        """x where x > 0, else negative_slope * x."""
        return leaky_relu(x, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class GELU(Module):
    """x * Phi(x) (exact) or its tanh approximation."""

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x: Any) -> Tensor:
        """x * Phi(x) (exact), or its tanh approximation."""
        return F.gelu(x, self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class Softplus(Module):
    """log(1 + exp(x))."""

    def forward(self, x: Any) -> Tensor:
        """log(1 + e**x), computed stably."""
        return softplus(x)


class Softmax(Module):
    """exp(x) / sum(exp(x)) along dim."""

    def __init__(self, dim: int = -1) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x: Any) -> Tensor:
        """exp(x) / sum(exp(x)) along dim."""
        return softmax(x, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    """x - logsumexp(x) along dim."""

    def forward(self, x: Any) -> Tensor:
        """x - logsumexp(x) along dim."""
        return log_softmax(x, self.dim)


class Identity(Module):
    """Returns its input unchanged."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, x: Any) -> Any:
        """x itself."""
        return x
