"""Functional transforms, JAX-style: grad, value_and_grad, vjp, jvp, jacobian, hessian.

They never touch any .grad. Inside another transform (an argument that already requires
grad) they keep the graph, so they compose: grad(grad(f)), hessian = jacobian(grad(f)).
"""
from __future__ import annotations

import contextlib
import threading
from typing import Callable

import numpy as np

from . import autograd, graph
from .ops import add
from .creation import _to_array
from .tensor import Tensor


_active = threading.local()  # how many transforms are evaluating their function in this thread


@contextlib.contextmanager
def _evaluating():
    """Marks f's evaluation: a transform called inside it is nested and must keep its graph, even
    when it reaches the outer variable only through a closure."""
    _active.depth = getattr(_active, "depth", 0) + 1
    try:
        yield
    finally:
        _active.depth -= 1


def _input(a) -> Tensor:
    """A fresh differentiable input; inside an outer transform, a graph-connected alias of it."""
    if isinstance(a, Tensor) and a.requires_grad and autograd.is_grad_enabled():
        return add(a, 0)  # non-leaf alias: gradients w.r.t. it flow on to the outer graph
    arr = _to_array(a)
    if arr.dtype.kind != "f":
        raise TypeError(f"cannot differentiate with respect to an argument of dtype {arr.dtype}; pass floats")
    x = Tensor(arr, requires_grad=True)
    if isinstance(a, Tensor) and graph.tangent(a) is not None:  # forward over reverse (jvp of grad): keep it
        graph.set_tangent(x, graph.tangent(a))
    return x


def _grads(out: Tensor, inputs: list, cotangent=None) -> list:
    """d(out)/d(inputs) (times cotangent) as Tensors; zeros where out does not depend on an input."""
    # Inside an outer transform keep the graph; under an outer jvp, run the VJPs on Tensors so
    # that the tangents flow through the backward pass too.
    nested = getattr(_active, "depth", 0) > 0 or any(not a.is_leaf or graph.tangent(a) is not None for a in inputs)
    if not out.requires_grad:
        return [Tensor(np.zeros_like(a.data)) for a in inputs]
    if cotangent is None:
        cotangent = np.ones(out.shape, out.dtype)
    seed = cotangent if nested and isinstance(cotangent, Tensor) else Tensor(cotangent) if nested else (
        cotangent.data if isinstance(cotangent, Tensor) else np.asarray(cotangent, out.dtype))
    gs = autograd.run_backward([out], [seed], retain_graph=True, create_graph=nested, inputs=inputs)
    return [Tensor(np.zeros_like(a.data)) if g is None else (g if isinstance(g, Tensor) else Tensor(g))
            for a, g in zip(inputs, gs)]


def _scalar(out, name):
    if not isinstance(out, Tensor) or out.size != 1:
        shape = out.shape if isinstance(out, Tensor) else type(out).__name__
        raise TypeError(f"{name}: f must return a scalar (one-element) Tensor, got {shape}; "
                        "for vector outputs use dp.vjp or dp.jacobian")
    return out


def value_and_grad(f: Callable, argnums: int | tuple = 0) -> Callable:
    """A function returning (f(*args), df/d(args[argnums])); f must return a scalar."""
    def vg(*args):
        nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
        args = list(args)
        for i in nums:
            args[i] = _input(args[i])
        with autograd.enable_grad(), _evaluating():
            out = _scalar(f(*args), "grad")
        ins = [args[i] for i in nums]
        gs = _grads(out, ins)
        if all(a.is_leaf for a in ins):  # not inside another transform: a plain value
            out = out.detach()
        return out, (gs[0] if isinstance(argnums, int) else tuple(gs))
    return vg


def grad(f: Callable, argnums: int | tuple = 0) -> Callable:
    """df/dx as a function: grad(f)(x) has x's shape (a tuple of them when argnums is a tuple)."""
    def g(*args):
        return value_and_grad(f, argnums)(*args)[1]
    return g


def vjp(f: Callable, *primals):
    """(f(*primals), vjp_fn) where vjp_fn(cotangent) -> tuple of cotangent @ J, one per primal."""
    xs = [_input(p) for p in primals]
    with autograd.enable_grad(), _evaluating():
        out = f(*xs)

    def vjp_fn(cotangent):
        ct = cotangent if isinstance(cotangent, Tensor) else np.asarray(cotangent, dtype=out.dtype)
        if tuple(np.shape(ct.data if isinstance(ct, Tensor) else ct)) != out.shape:
            raise ValueError(f"vjp: cotangent shape {np.shape(ct)} must equal the output shape {out.shape}")
        return tuple(_grads(out, xs, ct))
    return out, vjp_fn


def jvp(f: Callable, primals: tuple, tangents: tuple):
    """Forward mode: (f(*primals), J @ tangents), computed in one forward pass with tangents."""
    if len(primals) != len(tangents):
        raise ValueError(f"jvp: got {len(primals)} primals but {len(tangents)} tangents")
    xs = []
    if any(isinstance(p, Tensor) and graph.tangent(p) is not None for p in primals):
        raise NotImplementedError("jvp of jvp (nested forward mode) is not supported; for second "
                                  "derivatives use dp.hessian, dp.grad(dp.grad(f)) or jvp of grad")
    for p, t in zip(primals, tangents):
        x = Tensor(_to_array(p))
        tv = np.asarray(t.data if isinstance(t, Tensor) else t, dtype=x.dtype)
        if tv.shape != x.shape:
            raise ValueError(f"jvp: tangent shape {tv.shape} must equal its primal's shape {x.shape}")
        graph.set_tangent(x, tv)
        xs.append(x)
    out = f(*xs)
    t = graph.tangent(out)
    t = np.zeros(out.shape, out.dtype) if t is None else t
    res = Tensor(out.data)
    return res, Tensor(np.broadcast_to(t, out.shape).copy())


def jacobian(f: Callable, mode: str = "rev") -> Callable:
    """The full Jacobian of f at x, shape out.shape + x.shape: m VJPs ("rev") or n JVPs ("fwd")."""
    if mode not in ("rev", "fwd"):
        raise ValueError(f"jacobian: mode must be 'rev' or 'fwd', got {mode!r}")

    def jac(x):
        if mode == "fwd":
            xa = _to_array(x)
            cols = []
            for i in range(xa.size):
                e = np.zeros(xa.size, xa.dtype)
                e[i] = 1
                out, t = jvp(f, (xa,), (e.reshape(xa.shape),))
                cols.append(t.data)
            return Tensor(np.stack(cols, -1).reshape(out.shape + xa.shape))
        xi = _input(x)
        with autograd.enable_grad(), _evaluating():
            out = f(xi)
        rows = []
        for i in range(out.size):
            e = np.zeros(out.size, out.dtype)
            e[i] = 1
            rows.append(_grads(out, [xi], e.reshape(out.shape))[0])
        from .ops import stack
        return stack(rows).reshape(out.shape + xi.shape) if rows else Tensor(np.zeros(out.shape + xi.shape))
    return jac


def hessian(f: Callable) -> Callable:
    """Second derivatives of a scalar f: shape x.shape + x.shape (reverse over reverse)."""
    return jacobian(grad(f), mode="rev")
