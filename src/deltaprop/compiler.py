"""dp.compile: record a training step, then replay it as straight-line code, without the engine.

`step = dp.compile(fn)` returns a callable with fn's signature; fn is a whole step (zero the
grads, forward, loss, backward, optimizer step) returning the loss or any Tensors. The first two
calls with a new signature run eagerly under a recorder that the engine tells about each op's
forward, each VJP with the gradient it receives, each gradient accumulated into a `.grad`, and each
*effect*: a change of state outside the ops that must happen again at that point on every
replay (the optimizer's update and zero_grad, a dropout mask drawn from the default generator,
BatchNorm's running statistics, gradient clipping, a scheduler's step). Both recordings must
agree (the same ops on the same parameters, the same constants): then later calls replay the
schedule, generated once as a Python function of the inputs that calls the ops' own forward and
VJP functions in the recorded order, with the engine's own gradient summing and accumulation.
Same functions, same arrays, same order: the replay is bitwise equal to eager, step after step.

Straight-line forms. For the hottest ops (ops/lowered.py: linear, sigmoid, relu, add, sub, mul,
x ** 2, sum) the schedule holds their NumPy calls themselves, writing into buffers allocated once
per schedule; each form makes the calls of the op's own function in the same order, so the bits
do not change (tests/compile/test_lowered.py checks each). Buffers never leave the step: what fn
returns, what an effect receives and every `.grad` are new arrays on each call, as in eager. The
optimizer's update runs its `_plan()`: the same per-parameter arithmetic with its look-ups done
once. `DELTAPROP_LOWER=0` in the environment turns both off (each op then calls its functions).

What a replay reads afresh on every call: the arguments (Tensors or arrays: a new batch and new
labels), the parameters' current values, the optimizer's hyperparameters and state (a
scheduler's new learning rate applies on the next call), the default random generator.
What the recording fixes: the Python around the ops (control flow, Python numbers, the tensors
fn reads from its closure, the modules' train/eval mode, which is checked on every call).

Guards. The cache key is the arguments' shapes and dtypes (other arguments by value or
identity), grad mode and the default dtype. A schedule then checks, on every call, what it took
as fixed: every tensor it reads still holds the same array (replacing `p.data` re-records), every
module it called has the same attributes by identity (parameters, buffers, sub-modules,
`training`, plain settings such as `p`, `eps`, `momentum`, `padding_idx`), each optimizer whose
update or zero_grad it ran has the same param groups and members, and the variables fn reads from
its closure and globals are the same objects. A change records again (also under strict=True;
`verbose=True` writes one line to stderr naming it): never a stale replay. At most 8 schedules are
kept, the oldest dropped (the last, smaller batch of an epoch is one more entry). Under anomaly
mode the step always runs eagerly.

Refusal. A value read into Python inside fn (`.item()`, `float()`, `bool()`, a comparison in an
`if`), an in-place change outside an optimizer (`w -= lr * w.grad`, `x[i] = ...`), hooks, a
`.grad` set by hand, a `create_graph` backward, a tensor made afresh from NumPy inside fn, or two
recordings that differ: the step then runs eagerly from then on, with one warning naming the
cause (`strict=True` raises RuntimeError instead).

Rules kept: a non-finite loss never reaches the optimizer (the step raises NonFiniteStepError
before the backward pass, recording and replaying alike, also when it fell back to eager);
in-place writes bump versions as in eager; `.grad` arrays are new each step, as in eager (a
`zero_grad(set_to_none=False)` step accumulates into fresh zeros the same way). What a replay
returns has eager's types: the argument and parameter Tensors themselves, a new detached Tensor
for each op output, tuples, namedtuples, lists and dicts rebuilt. A compiled step is not re-entrant: calls from other
threads wait for the running one (serialised); a call from inside fn raises RuntimeError.
"""
from __future__ import annotations

import builtins
import functools
import math
import os
import operator
import re
import sys
import threading
import types
import warnings
from collections import OrderedDict
from typing import Any, Callable

import numpy as np

from . import _config, graph, memory
from .autograd import fit
from .graph import GraphNode
from .modes import effect  # noqa: F401 (effect: in modes.py, so that nn need not load this module)
from .modes import is_anomaly_enabled, is_grad_enabled, recorder as _recorder, set_grad_enabled, set_recorder
from .tensor import Tensor

__all__ = ["compile", "CompiledStep", "effect", "NonFiniteStepError"]

_CACHE_SIZE = 8
# The straight-line forms of ops/lowered.py (on unless DELTAPROP_LOWER=0: then every replayed
# op calls its own functions, which is slower and equal bit for bit).
LOWER = os.environ.get("DELTAPROP_LOWER", "1").strip() != "0"


class NonFiniteStepError(FloatingPointError):
    """A compiled step's loss is NaN or Inf: raised before the backward pass and the update."""

    def __init__(self, value: float) -> None:
        self.value = value
        super().__init__(f"dp.compile: the loss is {value}; the step stopped before the backward pass, so the "
                         "optimizer did not apply it (lower the learning rate, or check the data)")


class _Refused(Exception):
    """A recording that cannot be replayed (the message says why)."""


def _ctx(op, needs: tuple) -> types.SimpleNamespace:
    """What a replayed op receives as its context: the op contract's ctx (which inputs need a
    gradient, and what a forward that keeps something keeps for its VJP)."""
    return types.SimpleNamespace(op=op, needs=needs, extra=None)


class _Emitter:
    """What a straight-line form (ops/lowered.py) writes with: its lines, the buffers it asks
    for (allocated once, named as constants of the schedule), the names it reads."""

    def __init__(self, rec: "_Recorder", out: str | None = None, g: str | None = None, y: str | None = None):
        self.rec, self.out, self.g, self.y = rec, out, g, y
        self.lines: list[str] = []

    def emit(self, line: str) -> None:
        self.lines.append(line)

    def buf(self, shape, dtype) -> str:
        """An array of its own, reused on every replay (it never leaves the step)."""
        return self.rec._buffer(np.empty(shape, dtype))

    def fresh(self, shape, dtype) -> str:
        """A new array on every replay (it becomes a .grad, which the user may keep): leased
        (memory.lease), so last step's .grad memory is reused once nothing refers to it any more."""
        v = f"n{self.rec.n}"
        self.rec.n += 1
        self.rec.fresh.add(v)
        self.rec.info[v] = (tuple(shape), np.dtype(dtype))
        self.lines.append(f"{v} = new({tuple(shape)!r}, {self.rec._const(np.dtype(dtype))})")
        return v

    def const(self, obj) -> str:
        """A constant of the schedule (an array it only reads)."""
        return self.rec._const(obj, "c")

    def view(self, name: str, attr: str) -> str:
        """name.attr (a transpose): made once when name is an array fixed for the schedule."""
        c = self.rec.consts.get(name)
        if isinstance(c, np.ndarray):
            return self.rec._const(getattr(c, attr), "c")
        return f"{name}.{attr}"


class _Checker:
    """The recorder's interface, doing nothing but the non-finite loss check: a step that runs
    eagerly keeps the compiled step's rule that a non-finite loss is never applied."""

    def op(self, op, args, kw, node, out):
        pass

    def read(self, t):
        return t.data

    def bump(self, t):
        pass

    def effect(self, fn, args):
        return _suspended(fn, args)

    def backward(self, roots, grads, retain_graph, create_graph, inputs):
        if inputs is None and not create_graph and len(roots) == 1:
            _check_finite(roots[0].data)

    def vjp(self, node, g, create_graph, run):
        return _suspended(run, (node, g, create_graph))

    def accumulate(self, leaf, g, create_graph, handed, run):
        _suspended(run, (leaf, g, create_graph, handed))

    def module(self, m):
        pass


def _suspended(fn, args):
    """fn(*args) with this thread's recorder off (the engine's own work is not an event)."""
    rec = set_recorder(None)
    try:
        return fn(*args)
    finally:
        set_recorder(rec)


def _check_finite(v) -> None:
    if v.dtype.kind in "fc" and not (math.isfinite(v) if v.ndim == 0 else np.isfinite(v).all()):
        raise NonFiniteStepError(float(v) if v.size == 1 else float("nan"))


class _Recorder(_Checker):
    """One eager call of fn, told by the engine about every event (see the module docstring).

    Values live in numbered slots: the arguments' arrays, the arrays of tensors fn reads, op
    outputs, gradients. `code` is the schedule as lines of Python; `sig` is the same schedule
    in a form two recordings can compare; `consts` are the objects the code refers to."""

    def __init__(self, args, kwargs, strict: bool, prior: "_Recorder | None"):
        self.strict = strict
        self.code: list[str] = []
        self.listing: list[str] = []
        self.sig: list = []
        self.consts: dict[str, Any] = {}
        self._const_ids: dict[int, str] = {}
        self.alive: list = []  # everything whose id the recording uses (ids stay unique)
        self.slot: dict[int, str] = {}  # id(array) -> its variable in the code
        self.arrays: dict[str, Any] = {}  # variable -> the array it held in this recording
        self.info: dict[str, tuple] = {}  # variable -> (shape, dtype)
        self.n = 0
        self.ctx: dict[int, tuple[Any, ...]] = {}  # id(node) -> (ctx variable, op, inputs, keywords)
        self.pending: dict[Any, str] = {}  # backward: id(node or leaf) -> gradient variable so far
        self.leaves: dict[int, tuple] = {}  # id(tensor) -> (tensor, array, requires_grad)
        self.modules: dict[int, tuple] = {}  # id(module) -> (module, training when called)
        self.optimizers: dict[int, Any] = {}  # id(optimizer) -> the optimizer whose effects fn ran
        self.tensors: dict[int, str] = {}  # id(argument tensor) -> its expression
        self.grads: dict[int, tuple] = {}  # id(leaf) -> (leaf, the .grad it should hold now)
        self.bufs: set[str] = set()  # variables that hold (or view) a buffer reused on every replay
        self.fresh: set[str] = set()  # variables that hold an array new on every replay, seen by nothing else
        self.lowered = _lowered() if LOWER else {}
        self.in_backward = False
        self.prelude: list[str] = []  # generated functions the guards call
        self.refused: str | None = None
        self.returned: str | None = None
        for i, a in enumerate(args):
            self._arg(a, f"args[{i}]")
        for k, a in kwargs.items():
            self._arg(a, f"kwargs[{k!r}]")
        if prior is not None:  # leaves whose .grad the previous recording saw: watch them from the start
            for t, _g in prior.grads.values():
                self.grads[id(t)] = (t, t.grad)

    # -- slots ----------------------------------------------------------------------------
    def _new(self, arr, name=None) -> str:
        v = name or f"v{self.n}"
        self.n += 1
        self.alive.append(arr)
        self.slot[id(arr)] = v
        self.arrays[v] = arr
        if isinstance(arr, np.ndarray):
            self.info[v] = (arr.shape, arr.dtype)
        return v

    def _buffer(self, arr, name: str | None = None) -> str:
        """A constant array the schedule writes on every replay (ops/lowered.py's forms)."""
        if name is None:
            name = self._const(arr, "b")
        else:
            self.consts[name] = arr
            self.alive.append(arr)
        self.bufs.add(name)
        return name

    def _aliases(self, arr, others) -> bool:
        """Whether arr may share memory with one of the (variable, array) pairs that is a buffer."""
        return any(v in self.bufs and isinstance(a, np.ndarray) and np.may_share_memory(arr, a) for v, a in others)

    def _copy_if_buffer(self, v: str) -> str:
        """v as it may leave the step: a copy when v is a buffer (the next replay writes it again)."""
        return f"{v}.copy()" if v in self.bufs else v

    def _const(self, obj, prefix="k") -> str:
        name = self._const_ids.get(id(obj))
        if name is None:
            name = self._const_ids[id(obj)] = f"{prefix}{len(self.consts)}"
            self.consts[name] = obj
            self.alive.append(obj)
        return name

    def _arg(self, a, expr: str, depth: int = 0) -> None:
        if isinstance(a, Tensor):
            self.tensors[id(a)] = expr
            self.alive.append(a)
            v = self._new(a.data, f"a{self.n}")
            self.code.append(f"{v} = {expr}.data")
        elif isinstance(a, np.ndarray):
            v = self._new(a, f"a{self.n}")
            self.code.append(f"{v} = {expr}")
        elif isinstance(a, (tuple, list)) and depth == 0:
            for i, x in enumerate(a):
                self._arg(x, f"{expr}[{i}]", 1)

    def _operand(self, x, sig: list) -> str:
        """The code for an op's or effect's argument x, and its comparable form appended to sig."""
        if isinstance(x, Tensor):
            d = x.data
            v = self.slot.get(id(d))
            if v is not None:
                sig.append(("s", v))
                return v
            self._leaf(x, sig)
            return self._const(d, "c")  # (checked to be the tensor's array on every call)
        if isinstance(x, np.ndarray):
            v = self.slot.get(id(x))
            if v is not None:
                sig.append(("s", v))
                return v
            sig.append(("o", id(x)))  # an array from outside: the same object every call (checked)
            return self._const(x, "c")
        if x is None or isinstance(x, (bool, int, str)):
            sig.append(("v", type(x), x))
            return repr(x)
        if isinstance(x, (float, np.generic)):
            sig.append(("v", type(x), x if x == x else "nan"))
            return self._const(x)
        if isinstance(x, (tuple, list)):
            parts = [self._operand(e, sig) for e in x]
            sig.append(("L", type(x), len(x)))
            body = ", ".join(parts) + ("," if len(parts) == 1 and isinstance(x, tuple) else "")
            return f"({body})" if isinstance(x, tuple) else f"[{body}]"
        if isinstance(x, type(len)) or callable(getattr(x, "__func__", None)):
            sig.append(("m", id(getattr(x, "__func__", x)), id(getattr(x, "__self__", None))))
            return self._const(x, "f")
        sig.append(("o", id(x)))
        return self._const(x)

    def _leaf(self, t: Tensor, sig: list) -> str:
        """A tensor fn reads that no op of this call made: an argument, or one it holds (a
        parameter, a buffer, a constant); the latter is checked to hold the same array each call."""
        expr = self.tensors.get(id(t))
        if expr is not None:
            sig.append(("t", expr))
            return expr
        if id(t) not in self.leaves:
            if graph.producer(t) is not None:
                raise _Refused(f"fn uses a tensor of shape {t.shape} computed before the call (its graph "
                               "cannot be replayed); compute it inside fn or pass it as an argument")
            self.leaves[id(t)] = (t, t.data, t.requires_grad)
            self.alive.append(t)
            self.grads.setdefault(id(t), (t, t.grad))
            self._const(t.data, "c")
        sig.append(("o", id(t)))
        return self._const(t, "t")

    def _refuse(self, why: str) -> None:
        if self.strict:
            raise RuntimeError(f"dp.compile(strict=True): {why}")
        if self.refused is None:
            self.refused = why

    # -- what the engine tells -------------------------------------------------------------
    def _after_backward(self) -> None:
        """The first event after a backward pass: grad mode back as the pass leaves it."""
        if self.in_backward:
            self.in_backward = False
            self.code.append("set_grad(grad_mode)")

    def op(self, op, args, kw, node, out):
        if self.refused:
            return
        self._after_backward()
        try:
            if not op.primitive:
                raise _Refused(f"fn applies '{op.name}', a dp.Function, whose backward is Python code")
            sig = ["fwd", op]
            ins = [self._operand(a, sig) for a in args]
            kws = []
            for k, v in kw.items():
                sig.append(k)
                kws.append(f"{k}={self._operand(v, sig)}")
            fwd = self._const(op.fwd, "f")
            o = out.data
            v = self._new(o)
            call_args = ", ".join(ins + kws)
            datas = [a.data if isinstance(a, Tensor) else a for a in args]
            if node is not None:
                c = f"x{len(self.ctx)}"
                self.ctx[id(node)] = (c, op, ins, kws)
                self.alive.append(node)
                needs = tuple(i.requires_grad for i in GraphNode(node).inputs)
                self.consts[c] = _ctx(op, needs)
                sig.append(("ctx", needs))
            form = self.lowered.get(op)
            em = None
            if form is not None and not op.keeps:
                em = _Emitter(self, f"o{self.n}")
                self.n += 1
                if form[0](em, o, datas, ins, kw):
                    self._buffer(np.empty(o.shape, o.dtype), em.out)
                else:
                    em = None
            if em is not None:  # the op's straight-line form: its NumPy calls, into a buffer
                self.code += [f"{v} = {em.out}"] + em.lines
                self.bufs.add(v)
            else:
                if op.keeps:  # (what a forward keeps is new each call)
                    pre, call = ([f"{c}.extra = None"], f"{fwd}({c}, {call_args})") if node is not None \
                        else ([], f"{fwd}(None, {call_args})")
                else:
                    pre, call = [], f"{fwd}({call_args})"
                self.code += pre + [f"{v} = {call}"]
                if o.ndim == 0:  # a reduction may return a NumPy scalar: the engine makes it an array
                    self.code.append(f"if type({v}) is not ndarray: {v} = asarray({v})")
                if self._aliases(o, zip(ins, datas)):  # a view of a buffer (a reshape of it)
                    self.bufs.add(v)
            if node is not None and em is None:
                self._extras(node, c)
            shown = [self._show(n) for n in ins] + [f"{k}={_short(x)}" for k, x in kw.items()]
            self.listing.append(f"{v} = {op.name}({', '.join(shown)})  -> {_fmt(o)}")
            if em is not None:  # its NumPy calls, as the replay makes them
                self.listing += [f"    {self._shapes(ln)}" for ln in em.lines]
            self.sig.append(tuple(sig))
        except _Refused as e:
            self._refuse(str(e))

    def _extras(self, node, c: str) -> None:
        """Arrays the forward kept for its VJP (ctx.extra) may be read by an effect (BatchNorm's
        running statistics): name them too."""
        ex = GraphNode(node).extra
        items = [(None, ex)] if isinstance(ex, np.ndarray) else list(enumerate(ex)) if isinstance(ex, tuple) else []
        for j, a in items:
            if isinstance(a, np.ndarray):
                v = self._new(a)
                self.code.append(f"{v} = {c}.extra" + ("" if j is None else f"[{j}]"))

    def _show(self, name: str) -> str:
        """A variable with its shape and dtype, for the listing."""
        s = self.info.get(name)
        if s is None and name in self.consts and isinstance(self.consts[name], np.ndarray):
            s = (self.consts[name].shape, self.consts[name].dtype)
        return name if s is None else f"{name}{_fmtsd(*s)}"

    def read(self, t):
        self._refuse(f"fn reads a tensor's value into Python (.item(), float(), bool(), np.asarray(t), a "
                     f"comparison in an `if`; shape {t.shape}), which a replay cannot repeat")
        return t.data

    def bump(self, t):
        self._refuse(f"fn changes a tensor of shape {t.shape} in place outside an optimizer (x -= ..., "
                     "x[i] = ..., np.copyto); use an optimizer, or write it out of place")

    def effect(self, fn, args):
        if not self.refused:
            self._after_backward()
            try:
                self._check_grads()
                self._owner(fn)
                sig = ["effect"]
                ops = [self._operand(fn, sig)] + [self._eoperand(a, sig) for a in args]
                plan = _optimizer_plan(fn) if self.lowered and not args else None
                if plan is not None:  # the optimizer's update with its lookups done once
                    ops[0] = self._const(plan, "f")
            except _Refused as e:
                self._refuse(str(e))
        r = _suspended(fn, args)
        if self.refused:
            return r
        self._refresh_grads()
        line = f"{ops[0]}({', '.join(ops[1:])})"
        name = getattr(fn, "__qualname__", repr(fn))
        arr = r.data if isinstance(r, Tensor) else r if isinstance(r, np.ndarray) else None
        if arr is not None:
            v = self._new(arr)
            line = f"{v} = {line}" + (".data" if isinstance(r, Tensor) else "")
            self.listing.append(f"{v} = effect {name}  -> {_fmt(arr)}")
        else:
            self.listing.append(f"effect {name}")
        self.code.append(line)
        self.sig.append(tuple(sig))
        return r

    def _eoperand(self, x, sig: list) -> str:
        """An effect's argument: tensors stay tensors (an effect may write them and bump them)."""
        if isinstance(x, Tensor):
            expr = self.tensors.get(id(x))
            if expr is not None:
                sig.append(("t", expr))
                return expr
            v = self.slot.get(id(x.data))
            if v is not None:  # made by an op of this call: a new, detached tensor on each replay
                sig.append(("s", v))
                return f"Tensor({self._copy_if_buffer(v)})"
            self._leaf(x, sig)
            return self._const(x, "t")
        if isinstance(x, (tuple, list)):
            parts = [self._eoperand(e, sig) for e in x]
            sig.append(("L", type(x), len(x)))
            body = ", ".join(parts) + ("," if len(parts) == 1 and isinstance(x, tuple) else "")
            return f"({body})" if isinstance(x, tuple) else f"[{body}]"
        return self._operand(x, sig)

    def backward(self, roots, grads, retain_graph, create_graph, inputs):
        if not self.refused:
            if create_graph or inputs is not None or len(roots) != 1:
                self._refuse("fn calls backward with create_graph=True or inputs=, or dp.grad-style "
                             "transforms, which dp.compile does not replay")
            elif not isinstance(grads[0], np.ndarray) or not (grads[0] == 1).all():
                self._refuse("fn calls backward(gradient=...) with a gradient other than ones")
            elif id(roots[0].data) not in self.slot:
                self._refuse("fn calls backward on a tensor made outside fn")
        _check_finite(roots[0].data)
        if self.refused:
            return
        r, g = roots[0], grads[0]
        loss = self.slot[id(r.data)]
        self.code.append(f"_check_finite({loss})")
        v = self._new(g)
        shape = "()" if g.ndim == 0 else repr(g.shape)
        dt = self._const(g.dtype)
        self.in_backward = True
        seed = f"np_array(1, {dt})" if g.ndim == 0 else f"np_ones({shape}, {dt})"
        self.code += ["set_grad(False)", "handed = {}", f"{v} = {seed}"]
        self.listing.append(f"# backward from {loss}\n{v} = ones{_fmt(g)}")
        self.pending = {_key(graph.producer(r) or r): v}
        self.sig.append(("backward", g.shape, g.dtype))

    def vjp(self, node, g, create_graph, run):
        igs = _suspended(run, (node, g, create_graph))
        if self.refused:
            return igs
        try:
            self._vjp(GraphNode(node), node, igs)
        except _Refused as e:
            self._refuse(str(e))
        return igs

    def _vjp(self, gn: GraphNode, node, igs) -> None:
        c, op, ins, kws = self.ctx.get(id(node), (None, None, None, None))
        gv = self.pending.pop(gn, None)
        if c is None or gv is None:
            raise _Refused("fn calls backward through a graph built outside fn")
        if gn.hooked:
            raise _Refused("fn registers hooks or retain_grad() on its tensors, which dp.compile does not replay")
        out = self.slot[id(gn.output)]
        inputs = gn.inputs
        sig = ["vjp", op, gv]
        if self._vjp_lowered(gn, op, inputs, igs, c, gv, out, ins, sig):
            return
        fn = self._const(op.vjp, "f")
        self.code.append(f"r = {fn}({c}, {gv}, {out}, {', '.join(ins + kws)})")
        self.listing.append(f"r = {op.name}.vjp({self._show(gv)}, {', '.join(self._show(n) for n in ins)})")
        for i, (inp, ig) in enumerate(zip(inputs, igs)):
            dest = inp.node or inp.leaf  # (the producer the op read, or the leaf)
            if ig is None or dest is None:
                continue
            d = inp.value
            fitted = fit(ig, d, False)  # the engine's one rule for what an input receives
            conv = [".data"] if type(ig) is Tensor else []
            if np.shape(ig) != d.shape:
                conv.append(f"sum_to{d.shape}")
            if ig.dtype != d.dtype:
                conv.append(f"astype({d.dtype})")
            v = self._new(fitted)
            if conv:
                proto = self._const(np.broadcast_to(np.empty((), d.dtype), d.shape), "c")  # (its shape and dtype)
                self.code.append(f"{v} = fit(r[{i}], {proto}, False)")
            else:
                self.code.append(f"{v} = r[{i}]")
                if gv in self.bufs and self._aliases(fitted, [(gv, self._array(gv))]):
                    self.bufs.add(v)  # g itself or a view of it, passed on
            self.info[v] = (d.shape, d.dtype)
            self.listing.append(f"{v} = r[{i}]{''.join(' ' + x for x in conv)}  -> {_fmtsd(d.shape, d.dtype)}")
            self._send(dest, v)
            sig.append((i, tuple(conv)))
        self.sig.append(tuple(sig))

    def _vjp_lowered(self, gn, op, inputs, igs, c, gv, out, ins, sig) -> bool:
        """The VJP's straight-line form (ops/lowered.py), when the op has one for this case and
        every gradient it gives already has its input's shape and dtype."""
        form = self.lowered.get(op)
        if form is None or op.keeps:
            return False
        dest: list[str | None] = []
        for inp, ig in zip(inputs, igs):
            d = inp.value
            if ig is None or (inp.node is None and inp.leaf is None):
                dest.append(None)
            elif not isinstance(ig, (np.ndarray, np.generic)) or ig.shape != d.shape or ig.dtype != d.dtype:
                return False
            else:
                dest.append("leaf" if inp.node is None else "node")
        g = self._array(gv)
        if g is None:
            return False
        g = np.asarray(g)  # (a NumPy scalar in eager, where the replay has a 0-d buffer)
        em = _Emitter(self, g=gv, y=out)
        exprs = form[1](em, g, gn.output, [i.value for i in inputs], ins, gn.kwargs, dest)
        if exprs is None:
            return False
        self.code += em.lines
        self.listing.append(f"r = {op.name}.vjp({self._show(gv)}, {', '.join(self._show(n) for n in ins)}) "
                            "(straight-line)")
        self.listing += [f"    {self._shapes(ln)}" for ln in em.lines]
        for i, (inp, ig) in enumerate(zip(inputs, igs)):
            if dest[i] is None:
                continue
            v = self._new(ig)
            self.code.append(f"{v} = {exprs[i]}")
            if exprs[i] == gv:
                if gv in self.bufs:
                    self.bufs.add(v)
            elif exprs[i] in self.bufs:
                self.bufs.add(v)
            elif exprs[i] in self.fresh:
                self.fresh.add(v)
            self.listing.append(f"{v} = {exprs[i]}  -> {_fmt(inp.value)}")
            self._send(inp.node or inp.leaf, v)  # (the producer the op read, or the leaf)
            sig.append((i, "lowered"))
        self.sig.append(tuple(sig))
        return True

    def _shapes(self, line: str) -> str:
        """A straight-line form's NumPy call for the listing: each array named with its shape."""
        def shaped(m):
            name, t = m.group(1), m.group(2) or ""
            a = self.consts.get(name, self.arrays.get(name))
            if isinstance(a, np.dtype):
                return a.name
            shape = a.shape if isinstance(a, np.ndarray) else self.info[name][0] if name in self.info else None
            if shape is None:
                return m.group(0)
            return f"{name}{t}{tuple(shape)[::-1] if t else tuple(shape)!r}"
        return _NAME.sub(shaped, line)

    def _array(self, v: str):
        """The array a variable held in this recording."""
        return self.arrays.get(v)

    def _send(self, key, v: str) -> None:
        """The engine's _send: the first gradient a node or leaf receives is kept, later ones added."""
        k = _key(key)
        node = isinstance(key, GraphNode)
        old = self.pending.get(k)
        if old is None:
            self.pending[k] = v
            if not node:  # a leaf
                self.alive.append(key)
        else:
            s = f"v{self.n}"
            self.n += 1
            self.info[s] = self.info[v]
            a, b = self.arrays.get(old), self.arrays.get(v)
            if self.lowered and node and isinstance(a, np.ndarray) and isinstance(b, np.ndarray) \
                    and a.shape == b.shape and a.dtype == b.dtype and a.dtype.kind == "f":
                # (summed into a buffer: the sum goes on backwards, never to a .grad)
                self.code += [f"{s} = {self._buffer(np.empty(a.shape, a.dtype))}", f"add({old}, {v}, out={s})"]
                self.bufs.add(s)
            else:
                self.code.append(f"{s} = {old} + {v}")
            self.arrays[s] = a
            self.listing.append(f"{s} = {old} + {v}")
            self.pending[k] = s

    def accumulate(self, leaf, g, create_graph, handed, run):
        self.consts["_accumulate"] = run  # (the engine's accumulation, which the replay calls too)
        if not self.refused:
            try:
                gv = self.pending.pop(id(leaf), None)
                if gv is None:
                    raise _Refused("fn calls backward through a graph built outside fn")
                if graph.hooked(leaf):
                    raise _Refused("a tensor that fn differentiates has hooks registered (e.g. "
                                   "DistributedDataParallel's), which dp.compile does not replay")
                self._check_grads()
                t = self._leaf(leaf, [])
                # (the engine's own accumulation, handed over with this event: its rule is not written here)
                self.code.append(f"_accumulate({t}, {self._copy_if_buffer(gv)}, False, handed)")
                self.listing.append(f"{t}.grad {'=' if leaf.grad is None else '+='} {gv}  ({_fmt(leaf.data)})")
                self.sig.append(("acc", id(leaf)))
            except _Refused as e:
                self._refuse(str(e))
        _suspended(run, (leaf, g, create_graph, handed))
        if id(leaf) in self.grads:
            self.grads[id(leaf)] = (leaf, leaf.grad)

    def module(self, m) -> None:
        self.modules.setdefault(id(m), (m, m.training))

    def _owner(self, fn) -> None:
        """Note the optimizer behind an effect (its update, zero_grad, a scheduler's step): its
        param groups are guarded."""
        from .optim.optimizer import Optimizer
        obj = getattr(fn, "__self__", None)
        for o in (obj, getattr(obj, "optimizer", None)):
            if isinstance(o, Optimizer):
                self.optimizers.setdefault(id(o), o)

    # -- .grad written behind the recorder's back --------------------------------------------
    def _check_grads(self) -> None:
        for t, g in self.grads.values():
            if t.grad is not g:
                raise _Refused(f"the .grad of a tensor of shape {t.shape} was set by code dp.compile cannot "
                               "replay (p.grad = ..., Tensor.zero_grad()); use opt.zero_grad() or "
                               "model.zero_grad()")

    def _refresh_grads(self) -> None:
        for k, (t, _g) in list(self.grads.items()):
            self.grads[k] = (t, t.grad)

    # -- the end ---------------------------------------------------------------------------
    def finish(self, result) -> None:
        if self.refused:
            return
        self._after_backward()
        try:
            self._check_grads()
            if self.pending:
                raise _Refused("fn's backward pass did not finish inside fn")
            sig: list = ["return"]
            self.returned = self._result(result, sig)
            self.sig.append(tuple(sig))
            self.sig.append(tuple(sorted((k, m.training) for k, (m, _t) in self.modules.items())))
        except _Refused as e:
            self._refuse(str(e))

    def _result(self, r, sig) -> str:
        """The code for what fn returns: the same types on every call as eager (the argument and
        parameter Tensors themselves, a new Tensor for an op's output, containers rebuilt)."""
        if isinstance(r, Tensor):
            expr = self.tensors.get(id(r))
            if expr is not None:  # an argument: eager returns that very object
                sig.append(("t", expr))
                return expr
            v = self.slot.get(id(r.data))
            if v is None or id(r) in self.leaves:  # a tensor fn holds (a parameter): the object itself
                self._leaf(r, sig)
                return self._const(r, "t")
            sig.append(("s", v))
            return f"Tensor({self._copy_if_buffer(v)})"
        if isinstance(r, np.ndarray) and id(r) in self.slot:
            v = self.slot[id(r)]
            sig.append(("s", v))
            return self._copy_if_buffer(v)
        if isinstance(r, (tuple, list)):
            parts = [self._result(e, sig) for e in r]
            sig.append(("L", type(r), len(r)))
            body = ", ".join(parts) + ("," if len(parts) == 1 else "")
            if type(r) is tuple:
                return f"({body})"
            if type(r) is list:
                return f"[{body}]"
            kind = self._const(type(r), "f")  # a namedtuple, or a subclass of tuple or list
            return f"{kind}({body})" if hasattr(r, "_fields") else f"{kind}(({body}))"
        if isinstance(r, dict):
            sig.append(("D", type(r), tuple(r)))
            body = "{" + ", ".join(f"{self._const(k)}: {self._result(v, sig)}" for k, v in r.items()) + "}"
            return body if type(r) is dict else f"{self._const(type(r), 'f')}({body})"
        return self._operand(r, sig)

    def _guards(self, fn) -> list[tuple[str, Callable[[], str | None]]]:
        """What a replay checks before it runs, as (expression of the generated code, a function
        naming the change when the expression is false). Taken after the recording, from the state
        the step leaves behind: a replay leaves the same state (fn's Python does not run again)."""
        guards: list[tuple[str, Callable[[], str | None]]] = []
        whys: list = []  # (the module checks' explanations)
        for t, a, r in self.leaves.values():
            tn = self._const(t, "t")
            guards.append((f"{tn}.data is {self._const(a, 'c')} and {tn}.requires_grad is {r}",
                           functools.partial(_leaf_change, t, a, r)))
        trained = tuple(t for t, _a, r in self.leaves.values() if r)
        if trained:  # a hook registered since the recording (the replay runs none)
            guards.append((f"not any(map(hooked, {self._const(trained, 's')}))", lambda: None))
        if self.modules:
            # every parameter, buffer, sub-module and plain attribute (p of dropout, eps, padding_idx,
            # training) of each module called, by identity: replaced, added or removed -> re-record.
            # Compared only once some module was edited through the Module API (Edits.token moved).
            from .nn.module import Edits
            checks = []
            for m, _tr in self.modules.values():
                d = m.__dict__
                snap = tuple(d.values())
                dn, sn = self._const(d, "d"), self._const(snap, "s")
                checks.append(f"len({dn}) == {len(snap)} and all(map(is_, {dn}.values(), {sn}))")
                whys.append(functools.partial(_dict_change, f"{type(m).__name__} module", d, tuple(d), snap))
            en, synced = self._const(Edits, "e"), self._const([Edits.token], "s")
            self.prelude = ["def modules_same():", f"    return {' and '.join(checks)}"]
            guards.append((f"({en}.token is {synced}[0] or _resync({synced}, {en}, modules_same))",
                           functools.partial(_first, tuple(whys))))
        for opt in self.optimizers.values():
            groups = opt.param_groups
            members = tuple(tuple(g["params"]) for g in groups)
            on, pn = self._const(opt, "o"), self._const(groups, "s")
            check = [f"{on}.param_groups is {pn} and len({pn}) == {len(groups)}"]
            for i, (g, m) in enumerate(zip(groups, members)):  # (inline: a function call costs more)
                gn, mn = self._const(g, "d"), self._const(m, "s")
                check.append(f"{pn}[{i}] is {gn} and len({gn}['params']) == {len(m)} and "
                             f"all(map(is_, {gn}['params'], {mn}))")
            guards.append((" and ".join(check), functools.partial(_groups_change, opt, tuple(groups), members)))
        fn = getattr(fn, "__func__", fn)
        cells = getattr(fn, "__closure__", None) or ()
        code = getattr(fn, "__code__", None)
        if cells and code is not None:  # the variables fn reads from the functions around it
            kept = []
            for name, cell in zip(code.co_freevars, cells):
                try:
                    kept.append((name, cell, cell.cell_contents))
                except ValueError:  # (an empty cell: not assigned yet)
                    pass
            if kept:
                names, kcells, values = (tuple(x) for x in zip(*kept))
                cn, vn = self._const(kcells, "s"), self._const(values, "s")
                guards.append((f"all(map(is_, map(cell_contents, {cn}), {vn}))",
                               functools.partial(_cells_change, names, kcells, values)))
        glob = getattr(fn, "__globals__", None)
        if code is not None and glob is not None:  # the module-level names fn reads
            names = tuple(n for n in code.co_names if n in glob and not isinstance(glob[n], types.ModuleType))
            if names:
                gd, vals = self._const(glob, "d"), tuple(glob[n] for n in names)
                nn_, vn = self._const(names, "s"), self._const(vals, "s")
                guards.append((f"all(map(is_, map({gd}.get, {nn_}), {vn}))",
                               functools.partial(_globals_change, glob, names, vals)))
        return guards

    def build(self, fn=None) -> "_Schedule":
        guards = self._guards(fn)
        body = self.code
        src = self.prelude + ["def replay(args, kwargs):",
               f"    if not ({' and '.join(g for g, _w in guards) or 'True'}):",
               "        return MISS",
               "    grad_mode = is_grad()",
               "    try:"]
        src += ["        " + ln for ln in body]
        src += [f"        return {self.returned}", "    finally:", "        set_grad(grad_mode)"]
        env = dict(self.consts, MISS=_MISS, is_grad=is_grad_enabled, set_grad=set_grad_enabled, ndarray=np.ndarray,
                   asarray=np.asarray, np_array=np.array, np_ones=np.ones, fit=fit,
                   _check_finite=_check_finite, Tensor=Tensor, new=memory.lease, hooked=graph.hooked,
                   is_=operator.is_, cell_contents=operator.attrgetter("cell_contents"),
                   _resync=_resync, **_UFUNCS)
        code = "\n".join(src)
        exec(builtins.compile(code, "<dp.compile schedule>", "exec"), env)  # noqa: S102 (generated here)
        return _Schedule(env["replay"], code, self.listing, [w for _g, w in guards])

    def trim(self) -> None:
        """Keep only what the next recording is compared with (drop the arrays of this call)."""
        self.alive, self.slot, self.info, self.code, self.ctx, self.arrays = [], {}, {}, [], {}, {}


_NAME = re.compile(r"\b([a-z]\d+)\b(\.T)?(?! = )")  # a variable or constant of the generated code (transposed)
# the NumPy functions that straight-line forms call, by name
_UFUNCS = {f: getattr(np, f) for f in ("absolute", "add", "divide", "exp", "greater", "greater_equal", "matmul",
                                       "maximum", "multiply", "negative", "power", "subtract")}


def _optimizer_plan(fn):
    """An optimizer's `_plan()` when fn is its `_update` and it updates through `_step_param`."""
    from .optim.optimizer import Optimizer
    opt = getattr(fn, "__self__", None)
    if not isinstance(opt, Optimizer) or getattr(fn, "__func__", None) is not Optimizer._update:
        return None
    kind = type(opt)
    if kind._update_group is not Optimizer._update_group or kind._step_param is Optimizer._step_param:
        return None  # (an optimizer of its own making: its _update runs as it is)
    return opt._plan()


def _lowered() -> dict:
    from .ops.lowered import LOWERED  # (ops import the engine: loaded on the first recording)
    return LOWERED


def _short(x) -> str:
    return _fmt(x) if isinstance(x, np.ndarray) else repr(x)


def _fmtsd(shape, dtype) -> str:
    return f"{tuple(shape)!r}:{np.dtype(dtype).name}"


def _fmt(a) -> str:
    return _fmtsd(a.shape, a.dtype)


_MISS = object()


class _Schedule:
    __slots__ = ("run", "code", "listing", "checks")

    def __init__(self, run, code, listing, checks=()):
        self.run, self.code, self.listing, self.checks = run, code, listing, checks

    def why(self) -> str:
        """What changed since the recording (after run() answered MISS)."""
        for check in self.checks:
            why = check()
            if why:
                return why
        return "a guard failed"


# -- guards: what changed (computed only after a replay's guards failed) -----------------------------
def _leaf_change(t, a, r) -> str | None:
    if t.requires_grad is not r:
        return f"a tensor of shape {t.shape} that fn reads changed requires_grad to {t.requires_grad}"
    if t.data is not a:
        return f"a tensor of shape {t.shape} that fn reads holds a new array (.data replaced)"
    if r and graph.hooked(t):
        return f"a hook was registered on a tensor of shape {t.shape} that fn differentiates"
    return None


def _dict_change(what: str, d: dict, keys: tuple, values: tuple) -> str | None:
    for k, v in zip(keys, values):
        if k not in d:
            return f"{what}: {k!r} was removed"
        if d[k] is not v:
            return f"{what}: {k!r} was replaced ({type(v).__name__} -> {type(d[k]).__name__})"
    added = [k for k in d if k not in keys]
    return f"{what}: {added[0]!r} was added" if added else None


def _first(whys: tuple) -> str | None:
    for why in whys:
        w = why()
        if w:
            return w
    return None


def _resync(synced: list, edits, same: Callable[[], bool]) -> bool:
    """After some module was edited: whether the step's modules are as recorded (then the current
    token is remembered, and the next calls compare nothing until it moves again)."""
    token = edits.token
    if not same():
        return False
    synced[0] = token
    return True


def _same_groups(now: list, groups: tuple, members: tuple) -> bool:
    """An optimizer's param groups are the recorded dicts, holding the recorded parameters."""
    return len(now) == len(groups) and all(map(operator.is_, now, groups)) and \
        all(len(g["params"]) == len(m) and all(map(operator.is_, g["params"], m)) for g, m in zip(now, members))


def _groups_change(opt, groups: tuple, members: tuple) -> str | None:
    if _same_groups(opt.param_groups, groups, members):
        return None
    name = type(opt).__name__
    if len(opt.param_groups) != len(groups):
        return f"{name} has {len(opt.param_groups)} param groups, {len(groups)} when recorded (add_param_group)"
    return f"{name}'s param groups hold other parameters than when recorded"


def _cells_change(names, cells, values) -> str | None:
    for n, c, v in zip(names, cells, values):
        if c.cell_contents is not v:
            return f"the variable {n!r} that fn reads from its enclosing function now holds another object"
    return None


def _globals_change(glob: dict, names: tuple, values: tuple) -> str | None:
    for n, v in zip(names, values):
        if glob.get(n) is not v:
            return f"the global {n!r} that fn reads now holds another object"
    return None


_EAGER = "eager"


class CompiledStep:
    """A training step that records itself and replays (see deltaprop.compiler's docstring)."""

    def __init__(self, fn: Callable, strict: bool = False, verbose: bool = False) -> None:
        self.fn, self.strict, self.verbose = fn, strict, verbose
        self._cache: OrderedDict = OrderedDict()  # key -> _Recorder (one recording) | _Schedule | _EAGER
        self._lock = threading.Lock()
        self._owner: int | None = None
        self._warned = False
        self.replays = self.recordings = 0
        self._streak = 0  # recordings in a row without a replay: a step that re-traces on every call
        functools.update_wrapper(self, fn)

    @staticmethod
    def _key(args, kwargs) -> tuple:
        """What selects a schedule: grad mode, the default dtype, the arguments' signatures."""
        key: tuple = (is_grad_enabled(), _config.get_default_dtype())
        if args:
            key += tuple(map(_sig, args))
            if len(args) > 1:  # the same tensor passed twice is one variable of the schedule
                ids = [id(a) for a in args]
                if len(set(ids)) < len(ids):
                    key += (tuple(ids.index(i) for i in ids),)
        if kwargs:
            key += tuple((k, _sig(v)) for k, v in kwargs.items())
        return key

    def __call__(self, *args, **kwargs):
        me = threading.get_ident()
        if self._owner == me:
            raise RuntimeError("dp.compile: a compiled step was called from inside itself; it is not re-entrant")
        if _recorder() is not None:  # inside another recording (or its eager fallback): be part of it
            return self.fn(*args, **kwargs)
        with self._lock:  # other threads wait: calls are serialised
            self._owner = me
            try:
                return self._call(args, kwargs)
            finally:
                self._owner = None

    def _call(self, args, kwargs):
        if is_anomaly_enabled() or self._streak < 0:
            return self._eager(args, kwargs)
        key = self._key(args, kwargs)
        entry = self._cache.get(key)
        if isinstance(entry, _Schedule):
            r = entry.run(args, kwargs)
            if r is not _MISS:
                self.replays += 1
                self._streak = 0
                return r
            if self.verbose:  # a guard failed (a parameter replaced, a module's mode changed, ...)
                sys.stderr.write(f"dp.compile: {self._name()} re-records: {entry.why()}\n")
            entry = None
        if entry is _EAGER:
            return self._eager(args, kwargs)
        rec = _Recorder(args, kwargs, self.strict, entry if isinstance(entry, _Recorder) else None)
        result = self._record(rec, args, kwargs)
        self.recordings += 1
        self._streak += 1
        if self._streak > 3 * _CACHE_SIZE:  # recording costs more than it ever gives back here
            self._streak = -1
            self._give_up("it re-traced on every one of its last calls (a Python number argument that changes on "
                          "each call, such as a learning rate? pass it as a tensor, or read it from the optimizer)")
        self._cache[key] = self._settle(rec, entry if isinstance(entry, _Recorder) else None)
        self._cache.move_to_end(key)
        while len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return result

    def _record(self, rec, args, kwargs):
        set_recorder(rec)
        try:
            result = self.fn(*args, **kwargs)
            rec.finish(result)
        finally:
            set_recorder(None)
        return result

    def _settle(self, rec: _Recorder, prior: _Recorder | None):
        """After a recording: wait for a second one, build the schedule, or give up on replaying."""
        why = rec.refused
        if why is None and prior is not None:
            if rec.sig != prior.sig:
                why = "two calls with the same argument shapes did not apply the same ops to the same tensors " \
                      "(a tensor made afresh inside fn, or Python control flow that changes between calls)"
            else:
                return rec.build(self.fn)
        if why is None:
            rec.trim()
        if why is not None:
            self._give_up(why)
            return _EAGER
        return rec

    def _name(self) -> str:
        return getattr(self.fn, "__qualname__", "the step")

    def _give_up(self, why: str) -> None:
        if self.strict:
            raise RuntimeError(f"dp.compile(strict=True): {why}")
        if not self._warned:
            self._warned = True
            warnings.warn(f"dp.compile: {getattr(self.fn, '__qualname__', 'the step')} runs eagerly: {why}",
                          RuntimeWarning, stacklevel=5)

    def _eager(self, args, kwargs):
        set_recorder(_Checker())
        try:
            return self.fn(*args, **kwargs)
        finally:
            set_recorder(None)

    def schedule(self) -> str:
        """The most recently used schedule, one line per call (op forwards, VJPs, gradient sums,
        accumulations, effects) with shapes and dtypes, each straight-line op followed by its NumPy
        calls (indented: `bN`/`oN` are the schedule's buffers, `nN` new arrays); says so when
        nothing is compiled yet."""
        for entry in reversed(self._cache.values()):
            if isinstance(entry, _Schedule):
                return "\n".join(entry.listing)
        return "(no schedule yet: the first two calls with new shapes run eagerly and record)"

    def source(self) -> str:
        """The Python code of the most recently used schedule (what a replay executes)."""
        for entry in reversed(self._cache.values()):
            if isinstance(entry, _Schedule):
                return entry.code
        return ""


def _sig(a):
    """An argument's part of the cache key: shape and dtype of arrays, value of Python scalars."""
    if isinstance(a, Tensor):
        return ("T", a.data.shape, a.data.dtype, a.requires_grad)
    if isinstance(a, np.ndarray):
        return ("A", a.shape, a.dtype)
    if isinstance(a, (tuple, list)):
        return (type(a), tuple(_sig(x) for x in a))
    if a is None or isinstance(a, (bool, int, float, str)):
        return (type(a), a)
    return ("O", id(a))


def compile(fn: Callable | None = None, *, strict: bool = False, verbose: bool = False):
    """Compile a training step: the first two calls with new argument shapes run eagerly and
    record; later calls replay the recording (bitwise equal to eager, without the engine's
    bookkeeping). Usable as @dp.compile or @dp.compile(strict=True). `verbose=True` writes one
    line to stderr each time a change (a parameter replaced, a layer added, a module's mode or
    attribute, the optimizer's param groups) makes the step record again. See deltaprop.compiler."""
    if fn is None:
        return lambda f: CompiledStep(f, strict, verbose)
    return CompiledStep(fn, strict, verbose)


def _key(x):
    """A gradient's destination as a key: a GraphNode (equal views of one node are equal), or a leaf by identity."""
    return x if isinstance(x, GraphNode) else id(x)
