"""HIPS autograd versions: a loss function of the parameters, value_and_grad, NumPy updates."""
from __future__ import annotations

import autograd.numpy as anp
import numpy as np
from autograd import grad, value_and_grad

from . import _common as C
from .lib_numpy import _im2col


def _xent(logits, y):
    """Mean softmax cross-entropy written in differentiable NumPy (log-sum-exp)."""
    m = anp.max(logits, axis=1, keepdims=True)
    logp = logits - m - anp.log(anp.sum(anp.exp(logits - m), axis=1, keepdims=True))
    return -anp.mean(logp[np.arange(len(y)), y])


def _mlp_loss(params, x, y):
    w1, b1, w2, b2, w3, b3 = params
    h = anp.maximum(anp.dot(x, w1.T) + b1, 0.0)
    h = anp.maximum(anp.dot(h, w2.T) + b2, 0.0)
    return _xent(anp.dot(h, w3.T) + b3, y)


def _trainer(loss_fn, params, args, lr, adam=False):
    vg = value_and_grad(loss_fn)
    state: dict = {}
    t = [0]

    def step():
        loss, grads = vg(params, *args)
        if adam:
            t[0] += 1
            C.numpy_adam(params, grads, state, t[0])
        else:
            for p, g in zip(params, grads):
                p -= lr * g
        return loss

    return step


def mlp_sgd():
    """The mlp-sgd case in HIPS autograd: returns the step that the worker times, one SGD step of the MLP 784-256-256-10 (float32, batch 128)."""
    return _trainer(_mlp_loss, [a.copy() for wb in C.mlp_params() for a in wb], C.mlp_data(), C.MLP_LR)


def mlp_adam():
    """The mlp-adam case in HIPS autograd: returns the step that the worker times, one Adam step of the MLP 784-256-256-10 (float32, batch 128)."""
    params = [a.copy() for wb in C.mlp_params() for a in wb]
    return _trainer(_mlp_loss, params, C.mlp_data(), C.ADAM_LR, adam=True)


def _sigmoid(z):
    return 1.0 / (1.0 + anp.exp(-z))


def _mazur_loss(params, x, t):
    w1, b1, w2, b2 = params
    h = _sigmoid(anp.dot(x, w1.T) + b1)
    o = _sigmoid(anp.dot(h, w2.T) + b2)
    return 0.5 * anp.sum((t - o) ** 2)


def mazur():
    """The mazur case in HIPS autograd: returns the step that the worker times, one SGD step (lr 0.5) of Mazur's 2-2-2 sigmoid network, float64."""
    params = [a.copy() for wb in C.mazur_params() for a in wb]
    return _trainer(_mazur_loss, params, C.mazur_data(), C.MAZUR_LR)


def _cnn_loss(params, x, y):
    wc, bc, wf, bf = params
    n, ch = len(x), C.CNN_CHANNELS
    z = anp.dot(_im2col(x), anp.reshape(wc, (ch, 9)).T) + bc        # (N*64, 16), channels last
    a = anp.reshape(anp.maximum(z, 0.0), (n, 4, 2, 4, 2, ch))
    pooled = anp.max(anp.max(a, axis=4), axis=2)                     # (N, 4, 4, 16)
    flat = anp.reshape(anp.transpose(pooled, (0, 3, 1, 2)), (n, ch * 16))
    return _xent(anp.dot(flat, wf.T) + bf, y)


def cnn():
    """The cnn case in HIPS autograd: returns the step that the worker times, one SGD step of the small CNN (Conv2d 1->16 3x3, ReLU, MaxPool 2, Linear 256->10)."""
    p = C.cnn_params()
    params = [p[k].copy() for k in ("conv_w", "conv_b", "fc_w", "fc_b")]
    return _trainer(_cnn_loss, params, C.cnn_data(), C.CNN_LR)


def _chain(x):
    for _ in range(C.CHAIN_OPS // 2):
        x = x * C.CHAIN_MUL
        x = x + C.CHAIN_ADD
    return x


def chain():
    """The chain case in HIPS autograd: returns the step that the worker times, forward and backward through 100,000 scalar ops (x*c, x+d alternating)."""
    dchain = grad(_chain)
    return lambda: dchain(C.CHAIN_X0)


def micro():
    """The micro case in HIPS autograd: returns the step that the worker times, forward and backward through 1,000 adds of 4x4 float32 arrays."""
    a, b = C.micro_data()

    def f(a, b):
        y = a
        for _ in range(C.MICRO_OPS):
            y = y + b
        return anp.sum(y)

    vg = value_and_grad(f, argnum=(0, 1))
    return lambda: vg(a, b)[0]
