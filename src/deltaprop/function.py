"""dp.Function: user-defined ops, PyTorch-style (forward/backward with a ctx that saves tensors)."""
from __future__ import annotations

import functools

import numpy as np

from .autograd import Op, apply, no_grad
from .tensor import Tensor


class Context:
    """The ctx of a dp.Function: save_for_backward / saved_tensors, plus free attributes."""

    def save_for_backward(self, *tensors):
        """Keep tensors for backward; they come back as ctx.saved_tensors."""
        self.saved_tensors = tensors


def _function_vjp(node, g, out, *xs, ctx, cls):
    gt = g if isinstance(g, Tensor) else Tensor(g)
    grads = cls.backward(ctx, gt)
    grads = grads if isinstance(grads, tuple) else (grads,)
    raw = not isinstance(g, Tensor)
    return tuple(None if r is None else (r.data if raw and isinstance(r, Tensor) else r) for r in grads)


def _function_jvp(ts, out, *xs, ctx, cls):
    if cls.jvp is Function.jvp:
        raise NotImplementedError(f"forward mode (dp.jvp) through {cls.__name__}: define a staticmethod "
                                  "jvp(ctx, *tangents) returning the output's tangent")
    r = cls.jvp(ctx, *[None if t is None else Tensor(t) for t in ts])
    return r.data if isinstance(r, Tensor) else r


class Function:
    """A user-defined op, PyTorch-style: static forward(ctx, *args) and backward(ctx, grad)."""

    @classmethod
    def apply(cls, *args):
        """Run forward(ctx, *args) without recording, then record one op whose VJP is backward."""
        ctx = Context()
        ctx.needs_input_grad = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)  # (PyTorch's name)
        with no_grad():
            out = cls.forward(ctx, *args)
        out = out if isinstance(out, Tensor) else Tensor(np.asarray(out))
        op = Op(cls.__name__, lambda *xs, **kw: out.data, functools.partial(_function_vjp, cls=cls),
                functools.partial(_function_jvp, cls=cls), register=False)
        return apply(op, args, {"ctx": ctx})

    @staticmethod
    def forward(ctx, *args):
        """Compute the output from the inputs (override as a staticmethod; ctx saves what backward needs)."""
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad):
        """The VJP: the gradient of each input (or None) from the output's gradient (override as a staticmethod)."""
        raise NotImplementedError

    @staticmethod
    def jvp(ctx, *tangents):
        """Optional: forward-mode rule (the output's tangent from the inputs' tangents)."""
        raise NotImplementedError
