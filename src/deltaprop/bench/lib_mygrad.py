"""MyGrad versions: mygrad tensors, its nnet layers and losses, in-place updates of .data."""
from __future__ import annotations

import mygrad as mg
import numpy as np
from mygrad.nnet.activations import relu, sigmoid
from mygrad.nnet.layers import conv_nd, max_pool
from mygrad.nnet.losses import softmax_crossentropy

from . import _common as C


def _trainer(forward_loss, params, lr, adam=False):
    state: dict = {}
    t = [0]

    def step():
        loss = forward_loss()
        loss.backward()
        grads = [p.grad for p in params]
        arrays = [p.data for p in params]
        if adam:
            t[0] += 1
            C.numpy_adam(arrays, grads, state, t[0])
        else:
            for w, g in zip(arrays, grads):
                w -= lr * g
        return loss

    return step


def _mlp(adam):
    x, y = C.mlp_data()
    params = [mg.tensor(a.copy()) for wb in C.mlp_params() for a in wb]
    w1, b1, w2, b2, w3, b3 = params

    def forward_loss():
        h = relu(mg.matmul(x, w1.T) + b1)
        h = relu(mg.matmul(h, w2.T) + b2)
        return softmax_crossentropy(mg.matmul(h, w3.T) + b3, y)

    return _trainer(forward_loss, params, C.ADAM_LR if adam else C.MLP_LR, adam)


def mlp_sgd():
    """The mlp-sgd case in MyGrad: returns the step that the worker times, one SGD step of the MLP 784-256-256-10 (float32, batch 128)."""
    return _mlp(False)


def mlp_adam():
    """The mlp-adam case in MyGrad: returns the step that the worker times, one Adam step of the MLP 784-256-256-10 (float32, batch 128)."""
    return _mlp(True)


def mazur():
    """The mazur case in MyGrad: returns the step that the worker times, one SGD step (lr 0.5) of Mazur's 2-2-2 sigmoid network, float64."""
    x, t = C.mazur_data()
    params = [mg.tensor(a.copy()) for wb in C.mazur_params() for a in wb]
    w1, b1, w2, b2 = params

    def forward_loss():
        h = sigmoid(mg.matmul(x, w1.T) + b1)
        o = sigmoid(mg.matmul(h, w2.T) + b2)
        return 0.5 * mg.sum((t - o) ** 2)

    return _trainer(forward_loss, params, C.MAZUR_LR)


def cnn():
    """The cnn case in MyGrad: returns the step that the worker times, one SGD step of the small CNN (Conv2d 1->16 3x3, ReLU, MaxPool 2, Linear 256->10)."""
    x, y = C.cnn_data()
    p = C.cnn_params()
    params = [mg.tensor(p[k].copy()) for k in ("conv_w", "conv_b", "fc_w", "fc_b")]
    wc, bc, wf, bf = params
    n = len(x)

    def forward_loss():
        z = conv_nd(x, wc, stride=1, padding=1) + bc.reshape(1, -1, 1, 1)
        a = max_pool(relu(z), pool=(2, 2), stride=2)
        return softmax_crossentropy(mg.matmul(a.reshape(n, -1), wf.T) + bf, y)

    return _trainer(forward_loss, params, C.CNN_LR)


def chain():
    """The chain case in MyGrad: returns the step that the worker times, forward and backward through 100,000 scalar ops (x*c, x+d alternating)."""
    def step():
        x0 = mg.tensor(C.CHAIN_X0)
        x = x0
        for _ in range(C.CHAIN_OPS // 2):
            x = x * C.CHAIN_MUL
            x = x + C.CHAIN_ADD
        x.backward()
        return x0.grad

    return step


def micro():
    """The micro case in MyGrad: returns the step that the worker times, forward and backward through 1,000 adds of 4x4 float32 arrays."""
    a, b = (mg.tensor(v) for v in C.micro_data())

    def step():
        y = a
        for _ in range(C.MICRO_OPS):
            y = y + b
        loss = mg.sum(y)
        loss.backward()
        return loss

    return step
