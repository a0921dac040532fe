"""Only the matrix products of each step, through NumPy's BLAS into preallocated outputs.

The physical floor: no activation, loss, reduction or update, just the GEMMs of the forward
and backward passes (the input's own gradient is never needed, as in every other version).
"""
from __future__ import annotations

import numpy as np

from . import _common as C


def _products(shapes, dtype):
    """[(a (m, k), b (k, n), out (m, n)), ...] of fixed random operands."""
    rng = np.random.default_rng(5)
    triples = []
    for m, k, n in shapes:
        a = rng.random((m, k), dtype=np.float64).astype(dtype)
        b = rng.random((k, n), dtype=np.float64).astype(dtype)
        triples.append((a, b, np.empty((m, n), dtype)))
    return triples


def _step(triples):
    def step():
        for a, b, out in triples:
            np.matmul(a, b, out=out)
        return 0.0

    return step


def _mlp():
    n = C.MLP_BATCH
    i, h1, h2, k = C.MLP_SIZES
    shapes = [
        (n, i, h1), (n, h1, h2), (n, h2, k),            # forward
        (k, n, h2), (n, k, h2),                         # last layer: dW3, dh2
        (h2, n, h1), (n, h2, h1),                       # dW2, dh1
        (h1, n, i),                                     # dW1
    ]
    return _step(_products(shapes, np.float32))


def mlp_sgd():
    """The mlp-sgd case in the matrix products alone (NumPy BLAS, preallocated): returns the step that the worker times, one SGD step of the MLP 784-256-256-10 (float32, batch 128)."""
    return _mlp()


def mlp_adam():
    """The mlp-adam case in the matrix products alone (NumPy BLAS, preallocated): returns the step that the worker times, one Adam step of the MLP 784-256-256-10 (float32, batch 128)."""
    return _mlp()


def mazur():
    """The mazur case in the matrix products alone (NumPy BLAS, preallocated): returns the step that the worker times, one SGD step (lr 0.5) of Mazur's 2-2-2 sigmoid network, float64."""
    shapes = [(1, 2, 2), (1, 2, 2), (2, 1, 2), (1, 2, 2), (2, 1, 2)]
    return _step(_products(shapes, np.float64))


def cnn():
    """The cnn case in the matrix products alone (NumPy BLAS, preallocated): returns the step that the worker times, one SGD step of the small CNN (Conv2d 1->16 3x3, ReLU, MaxPool 2, Linear 256->10)."""
    n, ch = C.CNN_BATCH, C.CNN_CHANNELS
    shapes = [
        (n * 64, 9, ch),          # convolution as im2col @ W.T
        (n, ch * 16, 10),         # linear forward
        (10, n, ch * 16),         # linear dW
        (n, 10, ch * 16),         # linear dX
        (ch, n * 64, 9),          # convolution dW
    ]
    return _step(_products(shapes, np.float32))
