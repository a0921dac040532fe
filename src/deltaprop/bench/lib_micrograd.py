"""micrograd versions where scalar autodiff applies: the 2-2-2 step and the scalar chain.

micrograd's Value has no exp or sigmoid; the sigmoid below is written the way micrograd
writes its own ops (the output and, right there, the closure sending gradient back).
Its topological sort is recursive: the chain case raises the recursion limit to run at all.
"""
from __future__ import annotations

import math
import sys

from micrograd.engine import Value

from . import _common as C


def _sigmoid(v: Value) -> Value:
    s = 1.0 / (1.0 + math.exp(-v.data))
    out = Value(s, (v,), "sigmoid")

    def _backward():
        v.grad += s * (1.0 - s) * out.grad

    out._backward = _backward
    return out


def mazur():
    """The mazur case in micrograd: returns the step that the worker times, one SGD step (lr 0.5) of Mazur's 2-2-2 sigmoid network, float64."""
    x = [Value(v) for v in C.MAZUR_X]
    t = C.MAZUR_T
    (w1, b1), (w2, b2) = C.mazur_params()
    W1 = [[Value(float(w)) for w in row] for row in w1]
    B1 = [Value(float(b)) for b in b1]
    W2 = [[Value(float(w)) for w in row] for row in w2]
    B2 = [Value(float(b)) for b in b2]
    params = [p for row in W1 + W2 for p in row] + B1 + B2

    def layer(inp, W, B):
        return [_sigmoid(sum((wi * xi for wi, xi in zip(row, inp)), b)) for row, b in zip(W, B)]

    def step():
        o = layer(layer(x, W1, B1), W2, B2)
        loss = sum(0.5 * (ti - oi) ** 2 for ti, oi in zip(t, o))
        for p in params:
            p.grad = 0.0
        loss.backward()
        for p in params:
            p.data -= C.MAZUR_LR * p.grad
        return loss

    return step


def chain():
    """The chain case in micrograd: returns the step that the worker times, forward and backward through 100,000 scalar ops (x*c, x+d alternating)."""
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 4 * C.CHAIN_OPS))

    def step():
        x0 = Value(C.CHAIN_X0)
        x = x0
        for _ in range(C.CHAIN_OPS // 2):
            x = x * C.CHAIN_MUL
            x = x + C.CHAIN_ADD
        x.backward()
        return x0.grad

    return step
