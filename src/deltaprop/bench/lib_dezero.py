"""DeZero versions: its Layers, Models, functions and optimizers.

DeZero's release uses NumPy aliases removed in NumPy 2 (np.int ...): they are restored here,
in DeZero's own worker process only, before DeZero is imported.
"""
from __future__ import annotations

import warnings

import numpy as np

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # NumPy warns when asked for the removed names
    for _alias, _type in (("int", int), ("float", float), ("bool", bool), ("object", object), ("complex", complex)):
        if not hasattr(np, _alias):
            setattr(np, _alias, _type)

import dezero  # noqa: E402
import dezero.functions as F  # noqa: E402
import dezero.layers as L  # noqa: E402
from dezero import Variable, optimizers  # noqa: E402
from dezero.models import MLP, Model  # noqa: E402

from . import _common as C  # noqa: E402


def _set_linear(layer, w, b):
    """DeZero's Linear keeps W as (in, out): y = x @ W + b."""
    layer.W.data = np.ascontiguousarray(w.T)
    layer.b.data = b.copy()


def _trainer(model, opt, loss_fn):
    opt.setup(model)

    def step():
        loss = loss_fn()
        model.cleargrads()
        loss.backward()
        opt.update()
        return loss

    return step


def _mlp(opt):
    x, y = C.mlp_data()
    model = MLP(C.MLP_SIZES[1:], activation=F.relu)
    for layer, (w, b) in zip(model.layers, C.mlp_params()):
        layer.in_size = w.shape[1]
        layer._init_W()
        _set_linear(layer, w, b)
    return _trainer(model, opt, lambda: F.softmax_cross_entropy(model(x), y))


def mlp_sgd():
    """The mlp-sgd case in DeZero: returns the step that the worker times, one SGD step of the MLP 784-256-256-10 (float32, batch 128)."""
    return _mlp(optimizers.SGD(lr=C.MLP_LR))


def mlp_adam():
    """The mlp-adam case in DeZero: returns the step that the worker times, one Adam step of the MLP 784-256-256-10 (float32, batch 128)."""
    b1, b2 = C.ADAM_BETAS
    return _mlp(optimizers.Adam(alpha=C.ADAM_LR, beta1=b1, beta2=b2, eps=C.ADAM_EPS))


def mazur():
    """The mazur case in DeZero: returns the step that the worker times, one SGD step (lr 0.5) of Mazur's 2-2-2 sigmoid network, float64."""
    x, t = C.mazur_data()
    model = MLP((2, 2), activation=F.sigmoid)
    for layer, (w, b) in zip(model.layers, C.mazur_params()):
        layer.in_size = 2
        layer._init_W()
        _set_linear(layer, w, b)

    def loss_fn():
        o = F.sigmoid(model(x))
        return 0.5 * F.sum((t - o) ** 2)

    return _trainer(model, optimizers.SGD(lr=C.MAZUR_LR), loss_fn)


class _CNN(Model):
    def __init__(self):
        super().__init__()
        p = C.cnn_params()
        self.conv = L.Conv2d(C.CNN_CHANNELS, kernel_size=3, stride=1, pad=1, in_channels=1)
        self.conv.W.data = p["conv_w"].copy()
        self.conv.b.data = p["conv_b"].copy()
        self.fc = L.Linear(10, in_size=C.CNN_CHANNELS * 16)
        _set_linear(self.fc, p["fc_w"], p["fc_b"])

    def forward(self, x):
        h = F.pooling(F.relu(self.conv(x)), 2, 2)
        return self.fc(F.reshape(h, (len(x), -1)))


def cnn():
    """The cnn case in DeZero: returns the step that the worker times, one SGD step of the small CNN (Conv2d 1->16 3x3, ReLU, MaxPool 2, Linear 256->10)."""
    x, y = C.cnn_data()
    model = _CNN()
    return _trainer(model, optimizers.SGD(lr=C.CNN_LR), lambda: F.softmax_cross_entropy(model(x), y))


def chain():
    """The chain case in DeZero: returns the step that the worker times, forward and backward through 100,000 scalar ops (x*c, x+d alternating)."""
    def step():
        x0 = Variable(np.array(C.CHAIN_X0))
        x = x0
        for _ in range(C.CHAIN_OPS // 2):
            x = x * C.CHAIN_MUL
            x = x + C.CHAIN_ADD
        x.backward()
        return x0.grad

    return step


def micro():
    """The micro case in DeZero: returns the step that the worker times, forward and backward through 1,000 adds of 4x4 float32 arrays."""
    a, b = (Variable(v) for v in C.micro_data())

    def step():
        a.cleargrad()
        b.cleargrad()
        y = a
        for _ in range(C.MICRO_OPS):
            y = y + b
        loss = F.sum(y)
        loss.backward()
        return loss

    return step


__all__ = ["dezero", "mlp_sgd", "mlp_adam", "mazur", "cnn", "chain", "micro"]
