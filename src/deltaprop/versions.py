"""Version counters (PyTorch's): in-place changes made after the forward raise in backward
instead of giving a wrong number.

Every tensor's storage has a counter, a one-element list shared by its views (created on first
need) and bumped by every in-place change through the API (`Tensor._bump`). A Node records, for
what its VJP will read, (input index or -1 for the output, counter, version then); backward
compares them with the counters' values now.
"""
from __future__ import annotations

import numpy as np

from .tensor import Tensor


def counter(t: Tensor) -> list:
    """t's version counter (shared with its views), created on first need."""
    c = t._version
    if c is None:
        c = t._version = [0]
    return c


def reads(op, needs: tuple, n: int) -> tuple:
    """(indices of the inputs op's VJP reads, whether it reads the output), for these `needs`."""
    saves, so = op.saves, op.saves_out
    idx = range(n) if saves is None else saves(needs) if callable(saves) else saves
    return idx, bool(so(needs) if callable(so) else so)


def saved(op, node, args: tuple, out: Tensor, exact: bool = True) -> list:
    """(input index or -1 for the output, counter, version now) for what the op's VJP reads
    (op.saves / op.saves_out, see autograd.Op)."""
    idx, so = reads(op, node.needs, len(args))
    if exact:  # integer or bool Tensors (labels, indices, masks) are always checked
        idx = sorted(set(idx) | {i for i, a in enumerate(args) if isinstance(a, Tensor) and a.data.dtype.kind != "f"})
    vs = [(i, c, c[0]) for i in idx if isinstance(a := args[i], Tensor) for c in (counter(a),)]
    if so:
        c = counter(out)
        vs.append((-1, c, c[0]))
    return vs


def watch(out: Tensor, tensors) -> None:
    """Version-check, in out's node, Tensors the op read besides its inputs (index tensors)."""
    node = out._node
    if node is not None:
        node.versions = (node.versions or []) + [("index", c, c[0]) for t in tensors for c in (counter(t),)]


def check(node) -> None:
    """Raise RuntimeError naming the op, the shape and both versions if something the node
    saved for its VJP was changed in place since the forward."""
    for i, c, v in node.versions:
        if c[0] != v:
            what = "its index" if i == "index" else "its output" if i < 0 else f"its input {i}"
            shape = "" if i == "index" else f" (shape {np.shape(node.out if i < 0 else node.datas[i])})"
            raise RuntimeError(
                f"backward: op '{node.op.name}' saved {what}{shape} for its gradient, and it has been "
                f"modified by an in-place operation since: it was at version {v}, it is now at version {c[0]}. "
                "Make the change after backward(), or write it out of place (x = x + c instead of x += c).")
