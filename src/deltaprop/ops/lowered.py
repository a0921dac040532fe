"""Straight-line forms of the hottest ops, for dp.compile's replay (compiler.py).

A replayed step normally calls each op's own forward and VJP functions. For the ops below it
runs their NumPy calls inline instead, writing into arrays allocated once per schedule: no
function call, no allocation, no recycling or dtype bookkeeping per step. On a small network
that per-call work is most of the step (the 2-2-2 network's arrays hold two numbers).

The rule that keeps the replay bitwise equal to eager: each form makes the same NumPy calls, on
the same operands, in the same order, as the function named beside it (the op's forward, or its
fast VJP), so each float operation is the same one. tests/engine/test_lowered.py runs every
form against its op on many shapes and dtypes and asserts bitwise equality; a change to one of
those functions must be made here too (the test fails until it is).

A form handles the common case only (float operands of one dtype, no broadcasting that a VJP
would have to undo) and returns None otherwise: the replay then calls the op's functions.

Forward forms: fwd(e, out, xs, names, kw) -> True when emitted. `out` is the recorded output
(its shape and dtype), written into the buffer e.out; xs are the recorded operands (ndarrays,
Python numbers, None) and names their expressions in the code. VJP forms:
vjp(e, g, out, xs, names, kw, dest) -> one expression (or None) per input, or None. dest[i] is
None (no gradient wanted), "node" (the gradient goes on backwards: a reused buffer is fine) or
"leaf" (it becomes a .grad: a new array each step, as in eager).
"""
from __future__ import annotations

import numpy as np

from ..autograd import REGISTRY
from .elementwise import _NUM, zeros_for

LOWERED: dict = {}  # Op -> (forward form, VJP form)


def _floats(*xs) -> bool:
    """All operands ndarrays of one float dtype."""
    return all(type(x) is np.ndarray for x in xs) and xs[0].dtype.kind == "f" and \
        all(x.dtype == xs[0].dtype for x in xs)


def _grad_to(e, dest, like):
    """Where a VJP's result for one input goes: a reused buffer, or a new array each step."""
    return e.buf(like.shape, like.dtype) if dest == "node" else e.fresh(like.shape, like.dtype)


# -- linear: layers._linear_fwd / layers._linear_vjp ---------------------------------------------
def _linear_fwd(e, out, xs, names, kw):
    x, w = xs[0], xs[1]
    b = xs[2] if len(xs) > 2 else None
    if kw or x.ndim != 2 or not _floats(x, w, *(() if b is None else (b,))) or out.dtype != x.dtype:
        return False
    e.emit(f"matmul({names[0]}, {e.view(names[1], 'T')}, out={e.out})")
    if b is not None:
        e.emit(f"add({e.out}, {names[2]}, out={e.out})")  # (out += b)
    return True


def _linear_vjp(e, g, out, xs, names, kw, dest):
    x, w = xs[0], xs[1]
    b = xs[2] if len(xs) > 2 else None
    if kw or x.ndim != 2 or g.ndim != 2 or not _floats(g, x, w, *(() if b is None else (b,))):
        return None
    gx = gw = gb = None
    if dest[0]:
        gx = _grad_to(e, dest[0], x)
        e.emit(f"matmul({e.g}, {names[1]}, out={gx})")
    if dest[1]:
        gw = _grad_to(e, dest[1], w)
        e.emit(f"matmul({e.view(e.g, 'T')}, {names[0]}, out={gw})")
    if b is None:
        return [gx, gw]
    if len(dest) > 2 and dest[2]:
        gb = _grad_to(e, dest[2], b)
        e.emit(f"add.reduce({e.g}, axis=0, out={gb})")
    return [gx, gw, gb]


LOWERED[REGISTRY["linear"]] = (_linear_fwd, _linear_vjp)


# -- sigmoid: elementwise._stable_sigmoid / _dsigmoid and _times -----------------------------------
def _sigmoid_fwd(e, out, xs, names, kw):
    x = xs[0]
    if not _floats(x) or out.dtype != x.dtype:
        return False
    o, x, num = e.out, names[0], e.buf(out.shape, out.dtype)
    e.emit(f"absolute({x}, out={o}); negative({o}, out={o}); exp({o}, out={o})")
    e.emit(f"greater_equal({x}, 0, out={num}); maximum({num}, {o}, out={num})")
    e.emit(f"add({o}, 1, out={o}); divide({num}, {o}, out={o})")
    return True


def _sigmoid_vjp(e, g, out, xs, names, kw, dest):
    if not _floats(g, out) or g.shape != out.shape:
        return None
    d = _grad_to(e, dest[0], out)
    e.emit(f"subtract(1, {e.y}, out={d}); multiply({d}, {e.y}, out={d}); multiply({e.g}, {d}, out={d})")
    return [d]


LOWERED[REGISTRY["sigmoid"]] = (_sigmoid_fwd, _sigmoid_vjp)


# -- relu: its lambda forward (maximum with zeros_for(x)) / unary's _times with the mask x > 0 -------
def _relu_fwd(e, out, xs, names, kw):
    if not _floats(xs[0]):
        return False
    e.emit(f"maximum({names[0]}, {e.const(zeros_for(xs[0]))}, out={e.out})")
    return True


def _relu_vjp(e, g, out, xs, names, kw, dest):
    x = xs[0]
    if not _floats(g, x) or g.shape != x.shape:
        return None
    d, mask = _grad_to(e, dest[0], x), e.buf(x.shape, np.bool_)
    e.emit(f"greater({names[0]}, 0, out={mask}); multiply({e.g}, {mask}, out={d})")
    return [d]


LOWERED[REGISTRY["relu"]] = (_relu_fwd, _relu_vjp)


# -- add, sub, mul: _binop's ufunc(a, b) / their reference VJPs -------------------------------------
def _same(out, xs) -> bool:
    """Both operands arrays of out's shape and dtype, or one of them a Python number."""
    arrays = [x for x in xs if not isinstance(x, _NUM)]
    return len(arrays) >= 1 and _floats(*arrays) and arrays[0].dtype == out.dtype and \
        all(x.shape == out.shape for x in arrays)


def _binary_fwd(ufunc: str):
    def fwd(e, out, xs, names, kw):
        if not _same(out, xs):
            return False
        e.emit(f"{ufunc}({names[0]}, {names[1]}, out={e.out})")
        return True
    return fwd


def _add_vjp(e, g, out, xs, names, kw, dest):
    return [e.g if d else None for d in dest] if _same(g, xs) else None


def _sub_vjp(e, g, out, xs, names, kw, dest):
    if not _same(g, xs):
        return None
    r = [e.g if dest[0] else None, None]
    if dest[1] and not isinstance(xs[1], _NUM):
        r[1] = _grad_to(e, dest[1], g)
        e.emit(f"negative({e.g}, out={r[1]})")
    return r


def _mul_vjp(e, g, out, xs, names, kw, dest):
    if not _same(g, xs):
        return None
    r = [None, None]
    for i in (0, 1):  # d(a b)/da = g * b, d(a b)/db = g * a
        if dest[i] and not isinstance(xs[i], _NUM):
            r[i] = _grad_to(e, dest[i], g)
            e.emit(f"multiply({e.g}, {names[1 - i]}, out={r[i]})")
    return r


LOWERED[REGISTRY["add"]] = (_binary_fwd("add"), _add_vjp)
LOWERED[REGISTRY["sub"]] = (_binary_fwd("subtract"), _sub_vjp)
LOWERED[REGISTRY["mul"]] = (_binary_fwd("multiply"), _mul_vjp)


# -- x ** 2 with a constant exponent: power_const's np.power / _dpow's 2 * a and g * d -------------
def _square_fwd(e, out, xs, names, kw):
    a, p = xs[0], kw.get("p")
    if type(p) is not int or p != 2 or not _floats(a) or a.dtype != out.dtype:
        return False
    e.emit(f"power({names[0]}, 2, out={e.out})")
    return True


def _square_vjp(e, g, out, xs, names, kw, dest):
    a = xs[0]
    if type(kw.get("p")) is not int or kw["p"] != 2 or not _floats(g, a) or g.shape != a.shape:
        return None
    d = _grad_to(e, dest[0], a)
    e.emit(f"multiply(2, {names[0]}, out={d}); multiply({e.g}, {d}, out={d})")
    return [d]


LOWERED[REGISTRY["pow_scalar"]] = (_square_fwd, _square_vjp)


# -- sum over every axis: np.sum / reduce.expand (g broadcast into a new array) ---------------------
def _sum_fwd(e, out, xs, names, kw):
    if kw.get("axis") is not None or kw.get("keepdims") or not _floats(xs[0]) or out.shape != ():
        return False
    e.emit(f"add.reduce({names[0]}, axis=None, out={e.out})")
    return True


def _sum_vjp(e, g, out, xs, names, kw, dest):
    x = xs[0]
    if kw.get("axis") is not None or kw.get("keepdims") or not _floats(g, x) or g.shape != ():
        return None
    d = _grad_to(e, dest[0], x)
    e.emit(f"{d}[...] = {e.g}")
    return [d]


LOWERED[REGISTRY["sum"]] = (_sum_fwd, _sum_vjp)
