"""Hand-written NumPy forward and backward, the usual style: every op allocates a new array.

The same math as the autodiff libraries with no graph at all: the practical floor.
"""
from __future__ import annotations

import numpy as np

from . import _common as C


def _softmax_xent(z: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean softmax cross-entropy and its gradient with respect to the logits z."""
    n = len(y)
    rows = np.arange(n)
    shifted = z - z.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    s = e.sum(axis=1, keepdims=True)
    loss = -(shifted[rows, y] - np.log(s[:, 0])).mean()
    d = e / s
    d[rows, y] -= 1
    d /= n
    return loss, d


def _mlp(adam: bool):
    x, y = C.mlp_data()
    params = [a.copy() for wb in C.mlp_params() for a in wb]
    state: dict = {}
    t = [0]

    def step():
        w1, b1, w2, b2, w3, b3 = params
        z1 = x @ w1.T + b1
        h1 = np.maximum(z1, 0)
        z2 = h1 @ w2.T + b2
        h2 = np.maximum(z2, 0)
        z3 = h2 @ w3.T + b3
        loss, d3 = _softmax_xent(z3, y)
        gw3 = d3.T @ h2
        gb3 = d3.sum(axis=0)
        d2 = (d3 @ w3) * (z2 > 0)
        gw2 = d2.T @ h1
        gb2 = d2.sum(axis=0)
        d1 = (d2 @ w2) * (z1 > 0)
        gw1 = d1.T @ x
        gb1 = d1.sum(axis=0)
        grads = [gw1, gb1, gw2, gb2, gw3, gb3]
        if adam:
            t[0] += 1
            C.numpy_adam(params, grads, state, t[0])
        else:
            for p, g in zip(params, grads):
                p -= C.MLP_LR * g
        return loss

    return step


def mlp_sgd():
    """The mlp-sgd case in hand-written NumPy: returns the step that the worker times, one SGD step of the MLP 784-256-256-10 (float32, batch 128)."""
    return _mlp(adam=False)


def mlp_adam():
    """The mlp-adam case in hand-written NumPy: returns the step that the worker times, one Adam step of the MLP 784-256-256-10 (float32, batch 128)."""
    return _mlp(adam=True)


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def mazur():
    """The mazur case in hand-written NumPy: returns the step that the worker times, one SGD step (lr 0.5) of Mazur's 2-2-2 sigmoid network, float64."""
    x, t = C.mazur_data()
    (w1, b1), (w2, b2) = C.mazur_params()
    lr = C.MAZUR_LR

    def step():
        h = _sigmoid(x @ w1.T + b1)
        o = _sigmoid(h @ w2.T + b2)
        loss = 0.5 * ((t - o) ** 2).sum()
        d2 = (o - t) * o * (1 - o)
        gw2 = d2.T @ h
        gb2 = d2.sum(axis=0)
        d1 = (d2 @ w2) * h * (1 - h)
        gw1 = d1.T @ x
        gb1 = d1.sum(axis=0)
        for p, g in zip((w1, b1, w2, b2), (gw1, gb1, gw2, gb2)):
            p -= lr * g
        return loss

    return step


def _im2col(x: np.ndarray) -> np.ndarray:
    """(N, 1, 8, 8) -> (N*8*8, 9): the 3x3 neighbourhood (zero padding 1) of every pixel."""
    n = x.shape[0]
    xp = np.pad(x[:, 0], ((0, 0), (1, 1), (1, 1)))
    windows = np.lib.stride_tricks.sliding_window_view(xp, (3, 3), axis=(1, 2))
    return windows.reshape(n * 64, 9)


def cnn():
    """The cnn case in hand-written NumPy: returns the step that the worker times, one SGD step of the small CNN (Conv2d 1->16 3x3, ReLU, MaxPool 2, Linear 256->10)."""
    x, y = C.cnn_data()
    p = {k: v.copy() for k, v in C.cnn_params().items()}
    n, ch = len(x), C.CNN_CHANNELS

    def step():
        cols = _im2col(x)                                       # (N*64, 9)
        z = cols @ p["conv_w"].reshape(ch, 9).T + p["conv_b"]   # (N*64, 16), channels last
        a = np.maximum(z, 0).reshape(n, 4, 2, 4, 2, ch)
        pooled = a.max(axis=(2, 4))                             # (N, 4, 4, 16)
        flat = pooled.transpose(0, 3, 1, 2).reshape(n, ch * 16)  # PyTorch's (C, H, W) order
        logits = flat @ p["fc_w"].T + p["fc_b"]
        loss, d = _softmax_xent(logits, y)
        g_fc_w = d.T @ flat
        g_fc_b = d.sum(axis=0)
        d_pooled = (d @ p["fc_w"]).reshape(n, ch, 4, 4).transpose(0, 2, 3, 1)
        first = (a == pooled[:, :, None, :, None, :]).reshape(n, 4, 2, 4, 2, ch)
        da = first * d_pooled[:, :, None, :, None, :]
        dz = da.reshape(n * 64, ch) * (z > 0)
        g_conv_w = (dz.T @ cols).reshape(ch, 1, 3, 3)
        g_conv_b = dz.sum(axis=0)
        for k, g in (("conv_w", g_conv_w), ("conv_b", g_conv_b), ("fc_w", g_fc_w), ("fc_b", g_fc_b)):
            p[k] -= C.CNN_LR * g
        return loss

    return step


def chain():
    """Plain Python floats: the forward loop, then the product of the local derivatives (dx/dx0)."""
    half = C.CHAIN_OPS // 2
    mul, add = C.CHAIN_MUL, C.CHAIN_ADD

    def step():
        x = C.CHAIN_X0
        for _ in range(half):
            x = x * mul
            x = x + add
        g = 1.0
        for _ in range(half):
            g = g * 1.0  # d(x + add)/dx
            g = g * mul  # d(x * mul)/dx
        return g

    return step


def micro():
    """The micro case in hand-written NumPy: returns the step that the worker times, forward and backward through 1,000 adds of 4x4 float32 arrays."""
    a, b = C.micro_data()

    def step():
        y = a
        for _ in range(C.MICRO_OPS):
            y = y + b
        loss = y.sum()
        g = np.ones_like(y)
        gb = np.zeros_like(b)
        for _ in range(C.MICRO_OPS):
            gb += g
        ga = g.copy()
        return loss + 0 * (ga[0, 0] + gb[0, 0])

    return step
