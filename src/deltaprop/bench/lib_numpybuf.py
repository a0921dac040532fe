"""Hand-written NumPy forward and backward that reuses preallocated buffers (`out=`).

The same math as lib_numpy, with every intermediate written into an array allocated once.
"""
from __future__ import annotations

import numpy as np

from . import _common as C


class _SoftmaxXent:
    """Mean softmax cross-entropy over (n, k) logits; the gradient lands in self.d."""

    def __init__(self, n: int, k: int, y: np.ndarray, dtype) -> None:
        self.y = y
        self.rows = np.arange(n)
        self.mx = np.empty((n, 1), dtype)
        self.s = np.empty((n, 1), dtype)
        self.d = np.empty((n, k), dtype)
        self.picked = np.empty(n, dtype)

    def __call__(self, z: np.ndarray) -> float:
        d, s, n = self.d, self.s, len(self.y)
        np.max(z, axis=1, keepdims=True, out=self.mx)
        np.subtract(z, self.mx, out=d)
        np.exp(d, out=d)
        np.sum(d, axis=1, keepdims=True, out=s)
        np.divide(d, s, out=d)                      # softmax
        np.log(d[self.rows, self.y], out=self.picked)
        loss = -float(self.picked.mean())
        d[self.rows, self.y] -= 1
        d *= 1.0 / n
        return loss


class _SGD:
    def __init__(self, params, lr):
        self.params, self.lr = params, lr
        self.tmp = [np.empty_like(p) for p in params]

    def step(self, grads):
        for p, g, tmp in zip(self.params, grads, self.tmp):
            np.multiply(g, self.lr, out=tmp)
            np.subtract(p, tmp, out=p)


class _Adam:
    def __init__(self, params, lr=C.ADAM_LR):
        self.params, self.lr, self.t = params, lr, 0
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.tmp = [np.empty_like(p) for p in params]

    def step(self, grads):
        b1, b2 = C.ADAM_BETAS
        self.t += 1
        c1, c2 = 1 - b1**self.t, 1 - b2**self.t
        for p, g, m, v, tmp in zip(self.params, grads, self.m, self.v, self.tmp):
            m *= b1
            np.multiply(g, 1 - b1, out=tmp)
            m += tmp
            v *= b2
            np.multiply(g, g, out=tmp)
            tmp *= 1 - b2
            v += tmp
            np.multiply(v, 1.0 / c2, out=tmp)
            np.sqrt(tmp, out=tmp)
            tmp += C.ADAM_EPS
            np.divide(m, tmp, out=tmp)
            tmp *= self.lr / c1
            p -= tmp


def _mlp(adam: bool):
    x, y = C.mlp_data()
    params = [a.copy() for wb in C.mlp_params() for a in wb]
    w1, b1, w2, b2, w3, b3 = params
    n, f32 = len(x), np.float32
    n1, n2, n3 = C.MLP_SIZES[1:]
    z1, h1, d1 = (np.empty((n, n1), f32) for _ in range(3))
    z2, h2, d2 = (np.empty((n, n2), f32) for _ in range(3))
    z3 = np.empty((n, n3), f32)
    m1, m2 = np.empty((n, n1), bool), np.empty((n, n2), bool)
    grads = [np.empty_like(p) for p in params]
    gw1, gb1, gw2, gb2, gw3, gb3 = grads
    xent = _SoftmaxXent(n, n3, y, f32)
    opt = _Adam(params) if adam else _SGD(params, C.MLP_LR)

    def step():
        np.matmul(x, w1.T, out=z1)
        np.add(z1, b1, out=z1)
        np.maximum(z1, 0, out=h1)
        np.matmul(h1, w2.T, out=z2)
        np.add(z2, b2, out=z2)
        np.maximum(z2, 0, out=h2)
        np.matmul(h2, w3.T, out=z3)
        np.add(z3, b3, out=z3)
        loss = xent(z3)
        d3 = xent.d
        np.matmul(d3.T, h2, out=gw3)
        np.sum(d3, axis=0, out=gb3)
        np.matmul(d3, w3, out=d2)
        np.greater(z2, 0, out=m2)
        np.multiply(d2, m2, out=d2)
        np.matmul(d2.T, h1, out=gw2)
        np.sum(d2, axis=0, out=gb2)
        np.matmul(d2, w2, out=d1)
        np.greater(z1, 0, out=m1)
        np.multiply(d1, m1, out=d1)
        np.matmul(d1.T, x, out=gw1)
        np.sum(d1, axis=0, out=gb1)
        opt.step(grads)
        return loss

    return step


def mlp_sgd():
    """The mlp-sgd case in hand-written NumPy with preallocated buffers: returns the step that the worker times, one SGD step of the MLP 784-256-256-10 (float32, batch 128)."""
    return _mlp(adam=False)


def mlp_adam():
    """The mlp-adam case in hand-written NumPy with preallocated buffers: returns the step that the worker times, one Adam step of the MLP 784-256-256-10 (float32, batch 128)."""
    return _mlp(adam=True)


def mazur():
    """The mazur case in hand-written NumPy with preallocated buffers: returns the step that the worker times, one SGD step (lr 0.5) of Mazur's 2-2-2 sigmoid network, float64."""
    x, t = C.mazur_data()
    params = [a for wb in C.mazur_params() for a in wb]
    w1, b1, w2, b2 = params
    h, o, d1, d2, tmp = (np.empty((1, 2)) for _ in range(5))
    grads = [np.empty_like(p) for p in params]
    gw1, gb1, gw2, gb2 = grads
    opt = _SGD(params, C.MAZUR_LR)

    def sigmoid_(a):
        np.negative(a, out=a)
        np.exp(a, out=a)
        a += 1.0
        np.reciprocal(a, out=a)

    def step():
        np.matmul(x, w1.T, out=h)
        np.add(h, b1, out=h)
        sigmoid_(h)
        np.matmul(h, w2.T, out=o)
        np.add(o, b2, out=o)
        sigmoid_(o)
        np.subtract(o, t, out=d2)
        loss = 0.5 * float(np.dot(d2[0], d2[0]))
        np.subtract(1.0, o, out=tmp)
        np.multiply(tmp, o, out=tmp)
        np.multiply(d2, tmp, out=d2)    # (o - t) * o * (1 - o)
        np.matmul(d2.T, h, out=gw2)
        np.sum(d2, axis=0, out=gb2)
        np.matmul(d2, w2, out=d1)
        np.subtract(1.0, h, out=tmp)
        np.multiply(tmp, h, out=tmp)
        np.multiply(d1, tmp, out=d1)    # (d2 @ W2) * h * (1 - h)
        np.matmul(d1.T, x, out=gw1)
        np.sum(d1, axis=0, out=gb1)
        opt.step(grads)
        return loss

    return step


def cnn():
    """The cnn case in hand-written NumPy with preallocated buffers: returns the step that the worker times, one SGD step of the small CNN (Conv2d 1->16 3x3, ReLU, MaxPool 2, Linear 256->10)."""
    x, y = C.cnn_data()
    p = {k: v.copy() for k, v in C.cnn_params().items()}
    names = ["conv_w", "conv_b", "fc_w", "fc_b"]
    params = [p[k] for k in names]
    n, ch, f32 = len(x), C.CNN_CHANNELS, np.float32
    # im2col of the fixed padded input, computed into one buffer per step
    xp = np.zeros((n, 10, 10), f32)
    windows = np.lib.stride_tricks.sliding_window_view(xp, (3, 3), axis=(1, 2))
    cols = np.empty((n, 8, 8, 3, 3), f32)
    cols2 = cols.reshape(n * 64, 9)
    z = np.empty((n * 64, ch), f32)
    a = np.empty((n * 64, ch), f32)
    a6 = a.reshape(n, 4, 2, 4, 2, ch)
    pooled = np.empty((n, 4, 4, ch), f32)
    flat = np.empty((n, ch * 16), f32)
    flat4 = flat.reshape(n, ch, 4, 4)
    logits = np.empty((n, 10), f32)
    dflat = np.empty((n, ch * 16), f32)
    mask = np.empty((n, 4, 2, 4, 2, ch), bool)
    relu_mask = np.empty((n * 64, ch), bool)
    da = np.empty((n, 4, 2, 4, 2, ch), f32)
    grads = [np.empty_like(q) for q in params]
    g_conv_w, g_conv_b, g_fc_w, g_fc_b = grads
    xent = _SoftmaxXent(n, 10, y, f32)
    opt = _SGD(params, C.CNN_LR)
    wc = p["conv_w"].reshape(ch, 9)

    def step():
        xp[:, 1:9, 1:9] = x[:, 0]
        np.copyto(cols, windows)
        np.matmul(cols2, wc.T, out=z)
        np.add(z, p["conv_b"], out=z)
        np.maximum(z, 0, out=a)
        np.max(a6, axis=(2, 4), out=pooled)
        np.copyto(flat4, pooled.transpose(0, 3, 1, 2))
        np.matmul(flat, p["fc_w"].T, out=logits)
        np.add(logits, p["fc_b"], out=logits)
        loss = xent(logits)
        d = xent.d
        np.matmul(d.T, flat, out=g_fc_w)
        np.sum(d, axis=0, out=g_fc_b)
        np.matmul(d, p["fc_w"], out=dflat)
        dpool = dflat.reshape(n, ch, 4, 4).transpose(0, 2, 3, 1)[:, :, None, :, None, :]
        np.equal(a6, pooled[:, :, None, :, None, :], out=mask)
        np.multiply(mask, dpool, out=da)
        dz = da.reshape(n * 64, ch)
        np.greater(z, 0, out=relu_mask)
        dz *= relu_mask
        np.matmul(dz.T, cols2, out=g_conv_w.reshape(ch, 9))
        np.sum(dz, axis=0, out=g_conv_b)
        opt.step(grads)
        return loss

    return step
