"""ONNX export: `export(model, example_input, path)` and `deltaprop export model.safetensors model.onnx`.

Export traces. It runs the model in eval mode on the example input with every parameter
recording, reads the recorded graph through deltaprop's public graph API (`deltaprop.graph`:
each node's op, inputs and settings, producers before consumers) and maps each op to ONNX
nodes, built with the `onnx` package's own helpers (opset 17, IR version 8, so that current
runtimes load it). Whatever does not depend on the input (a weight reshaped, a dilated kernel)
is folded into a constant. Any module built from deltaprop's ops exports, Sequential or not.

Nothing is patched. A value the model reads into Python (`x.shape[0]`, `.item()`, `bool()` of a
tensor, a comparison `h > 0`, which the engine does not record) would become a constant of the
example; so the model is traced twice, the second time on other values (and, with
dynamic_batch, one more row), and the two graphs are compared node by node and constant by
constant: the first that differs raises ExportError naming its op. An op without a mapping (a
user's dp.Function) raises ExportError naming it too. With dynamic_batch the first axis of the
input and of every value that follows it is a symbolic "batch" dimension; shapes baked into
reshapes are written so that they follow it.

`onnx` is optional (`pip install 'deltaprop[onnx]'`) and imported only when exporting.
"""
from __future__ import annotations

import argparse
import itertools
import math
import os
import sys
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from . import graph as dgraph
from .graph import GraphInput, GraphNode
from .autograd import REGISTRY, enable_grad
from .nn.module import Module, Parameter, Sequential
from .tensor import Tensor

__all__ = ["export", "build", "build_predictor", "ExportError", "main"]

OPSET = 17
IR_VERSION = 8  # the IR version of opset 17 (onnx 1.12); every current onnxruntime loads it
_SCALED = "scaled"  # a `lead` value: axis 0 is a fixed multiple of the batch (after a reshape merged axes)
Lead = bool | str  # whether axis 0 of a value is the dynamic batch: True, False or _SCALED


class ExportError(RuntimeError):
    """The model cannot be exported as traced (an op without an ONNX mapping, a value read in
    Python during the trace, a shape that cannot follow a dynamic batch)."""


def _onnx():
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError as exc:
        raise ImportError(f"ONNX export needs the onnx package ({exc}); install it with "
                          "pip install 'deltaprop[onnx]'") from None
    return onnx, helper, numpy_helper


# ----------------------------------------------------------------------------- tracing
class _N:
    """One recorded op as the mappings read it (from a deltaprop.graph.GraphNode): its name, its
    inputs (GraphInput: the producer bound when the op ran, the Tensor passed, the value read),
    the values they held, its settings and its output."""

    __slots__ = ("node", "op", "args", "values", "kwargs", "out")

    def __init__(self, node: GraphNode) -> None:
        self.node, self.op = node, node.op
        self.args: tuple[GraphInput, ...] = node.inputs
        self.values = [i.value for i in self.args]
        self.kwargs, self.out = node.kwargs, node.output


def _value_of(a: Any) -> Any:
    """The array (or number) behind a GraphInput, a Tensor or a raw value."""
    if isinstance(a, GraphInput):
        return a.value
    return a.data if isinstance(a, Tensor) else a


class _Trace:
    """What one traced forward recorded: the input, the outputs, every node they depend on
    (deltaprop.graph.walk), which of them depend on the input, and what names a module in errors
    (the module owning a parameter an op read; for a Sequential, the child whose call made it)."""

    def __init__(self, x: Tensor, outs: list[Tensor], owners: dict[int, str], spans: dict[GraphNode, str],
                 root: str | None) -> None:
        self.x, self.owners, self.spans, self.root = x, owners, spans, root
        self.nodes = dgraph.walk(*outs)
        self.dep: dict[GraphNode, bool] = {}
        for n in self.nodes:  # producers come first: one pass
            self.dep[n] = any(self.input_depends(i) for i in n.inputs) or self._index_depends(n.kwargs.get("index"))

    def input_depends(self, inp: GraphInput) -> bool:
        return inp.tensor is self.x or (inp.node is not None and self.dep.get(inp.node, False))

    def depends(self, t: Any) -> bool:
        """Whether t (a GraphInput or Tensor) depends on the traced input."""
        if isinstance(t, GraphInput):
            return self.input_depends(t)
        if not isinstance(t, Tensor):
            return False
        if t is self.x:
            return True
        node = dgraph.producer(t)
        return node is not None and self.dep.get(node, False)

    def _index_depends(self, index: Any) -> bool:
        parts = index if isinstance(index, tuple) else (index,)
        return any(isinstance(p, np.ndarray) and p is self.x.data for p in parts)

    def module_of(self, node: GraphNode) -> str | None:
        """The module that made node: the owner of a parameter it read, else the Sequential child
        whose call made it, else the traced module itself."""
        for i in node.inputs:
            if isinstance(i.tensor, Parameter) and id(i.tensor) in self.owners:
                return self.owners[id(i.tensor)]
        return self.spans.get(node, self.root)


def _label(name: str, m: Module) -> str:
    return f"'{name or type(m).__name__}' ({type(m).__name__})"


def _run_traced(model: Any, x: Tensor) -> tuple[_Trace, Any]:
    """Run model(x) in eval mode with recording on (every float parameter requiring grad for the
    call) and read its graph; restore the model's modes afterwards. Nothing is patched."""
    modules = list(model.modules()) if isinstance(model, Module) else []
    modes = [(m, m.training) for m in modules]
    params = [(p, p.requires_grad) for p in (model.parameters() if modules else [])]
    # An Embedding's padding_idx only stops gradients (a where over a mask made from the indices
    # in NumPy, which would be a constant of the example's values): the forward values are the
    # same without it, so it is off for the trace.
    pads = [(m, getattr(m, "padding_idx")) for m in modules if isinstance(getattr(m, "padding_idx", None), int)]
    owners = {id(p): _label(name, m) for name, m in (model.named_modules() if modules else [])
              for p in m.parameters(recurse=False)}
    spans: dict[GraphNode, str] = {}
    try:
        for m in modules:
            m.training = False
        for p, _ in params:
            if p.data.dtype.kind == "f":
                p.requires_grad = True
        for m, _ in pads:
            setattr(m, "padding_idx", None)
        with enable_grad():
            if type(model).forward is Sequential.forward:  # child by child, to name the one that failed
                out, seen = x, set()
                for name, child in model.named_children():
                    out = child(out)
                    made = [n for n in dgraph.walk(out) if n not in seen] if isinstance(out, Tensor) else []
                    spans.update((n, _label(name, child)) for n in made)
                    seen.update(made)
            else:
                out = model(x)
    finally:
        for m, pad in pads:
            setattr(m, "padding_idx", pad)
        for p, r in params:
            p.requires_grad = r
        for m, t in modes:
            m.training = t
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    root = _label("", model) if isinstance(model, Module) and not isinstance(model, Sequential) else None
    return _Trace(x, [o for o in outs if isinstance(o, Tensor)], owners, spans, root), out


# ----------------------------------------------------------------------------- building
class _Graph:
    """The ONNX graph under construction: nodes, constants, and for each value its name, dtype,
    shape and whether its axis 0 follows the dynamic batch (`lead`)."""

    def __init__(self, tr: _Trace, dynamic: bool) -> None:
        self.onnx, self.helper, self.numpy_helper = _onnx()
        self.tr, self.dynamic = tr, dynamic
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self.lead: dict[str, Lead] = {"input": dynamic}
        self.names: dict[GraphNode, str] = {}  # recorded node -> its output's name
        self.consts: dict[tuple, str] = {}
        self._keep: list[Any] = []  # (what const ids refer to stays alive)
        self._n = itertools.count()
        self.node: _N | None = None
        self.origin: dict[str, str] = {}  # ONNX value name -> the deltaprop op (and module) that made it

    # names and constants
    def fresh(self, base: str) -> str:
        return f"{base}_{next(self._n)}"

    def const(self, value: Any, dtype: Any = None) -> str:
        arr = np.asarray(value)
        if dtype is not None and arr.dtype != np.dtype(dtype):
            arr = arr.astype(dtype)
        key = (id(value), arr.dtype.str, arr.shape) if isinstance(value, np.ndarray) and dtype is None else None
        if key is not None and key in self.consts:
            return self.consts[key]
        name = self.fresh("const")
        self.inits.append(self.numpy_helper.from_array(np.ascontiguousarray(arr), name))
        self.origin[name] = self.where()
        self.lead[name] = False
        if key is not None:
            self.consts[key] = name
            self._keep.append(value)
        return name

    def ints(self, values: Sequence[int]) -> str:
        return self.const(np.asarray(list(values), np.int64))

    def add(self, op_type: str, inputs: Sequence[str], lead: Lead = False, **attrs: Any) -> str:
        out = self.fresh(op_type.lower())
        self.nodes.append(self.helper.make_node(op_type, list(inputs), [out], **attrs))
        self.origin[out] = self.where()
        self.lead[out] = lead
        return out

    # operands
    def _traced(self, a: Any) -> str | None:
        """The ONNX name of a (GraphInput or Tensor) when it is the input or a mapped op's output."""
        if isinstance(a, GraphInput):
            if a.tensor is self.tr.x:
                return "input"
            return self.names.get(a.node) if a.node is not None else None
        if isinstance(a, Tensor):
            if a is self.tr.x:
                return "input"
            node = dgraph.producer(a)
            return self.names.get(node) if node is not None else None
        return None

    def value(self, a: Any, dtype: Any = None) -> str:
        """The name of arg a (a traced value or a constant), cast to dtype if given."""
        name = self._traced(a)
        data = _value_of(a)
        if name is None:
            self._check_constant(data)
            if dtype is None and not isinstance(data, np.ndarray):
                dtype = self.node.out.dtype if self.node is not None else None
            return self.const(data, dtype)
        if dtype is not None and np.dtype(dtype) != np.asarray(data).dtype:
            return self.add("Cast", [name], self.lead[name], to=self.helper.np_dtype_to_tensor_dtype(np.dtype(dtype)))
        return name

    def _check_constant(self, data: Any) -> None:
        """A constant that shares memory with a traced value (x.detach(), x.data) would freeze
        the example input's numbers into the graph: refuse."""
        if isinstance(data, np.ndarray) and data.size and np.may_share_memory(data, self.tr.x.data):
            raise ExportError(f"onnx export: {self.where()} uses the input's values as a constant (through "
                              ".detach() or .data?); the graph would not depend on its input there")

    def where(self) -> str:
        n = self.node
        if n is None:
            return "the model"
        mod = self.tr.module_of(n.node)
        return f"op '{n.op}'" + (f" in module {mod}" if mod else "")

    def shape_of(self, a: Any) -> tuple:
        return tuple(np.shape(_value_of(a)))

    def is_lead(self, a: Any) -> Lead:
        name = self._traced(a)
        return False if name is None else self.lead[name]

    def refuse(self, why: str) -> None:
        raise ExportError(f"onnx export: {self.where()}: {why}")


# ----------------------------------------------------------------------------- op mappings
# Each mapping gets the graph and the node (op, args, kw, out) and returns the output's name.
_MAP: dict[str, Callable[[_Graph, _N], str]] = {}


def _maps(*names: str):
    def reg(fn):
        for n in names:
            _MAP[n] = fn
        return fn
    return reg


def _args(g: _Graph, n: _N, dtype: Any = "out") -> list[str]:
    dt = n.out.dtype if dtype == "out" else dtype
    return [g.value(a, dt) for a in n.args]


def _elementwise_lead(g: _Graph, n: _N) -> Lead:
    """Axis 0 of an elementwise result follows the batch when an operand of the same rank has it."""
    leads = [g.is_lead(a) for a in n.args if len(g.shape_of(a)) == n.out.ndim]
    return True if True in leads else (_SCALED if _SCALED in leads else False)


_BINARY = {"add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div", "maximum": "Max", "minimum": "Min"}
_UNARY = {"neg": "Neg", "exp": "Exp", "log": "Log", "sqrt": "Sqrt", "abs": "Abs", "sin": "Sin", "cos": "Cos",
          "tanh": "Tanh", "sigmoid": "Sigmoid", "relu": "Relu"}


@_maps(*_BINARY)
def _binary(g: _Graph, n: _N) -> str:
    return g.add(_BINARY[n.op], _args(g, n), _elementwise_lead(g, n))


@_maps(*_UNARY)
def _unary(g: _Graph, n: _N) -> str:
    return g.add(_UNARY[n.op], _args(g, n), _elementwise_lead(g, n))


def _scalar(g: _Graph, n: _N, v: float) -> str:
    return g.const(np.asarray(v, n.out.dtype))


@_maps("log1p")
def _log1p(g: _Graph, n: _N) -> str:
    lead = _elementwise_lead(g, n)
    return g.add("Log", [g.add("Add", [_args(g, n)[0], _scalar(g, n, 1)], lead)], lead)


@_maps("softplus")
def _softplus(g: _Graph, n: _N) -> str:
    """relu(x) + log(1 + exp(-|x|)): stable for large |x| (as deltaprop computes it)."""
    lead = _elementwise_lead(g, n)
    x = _args(g, n)[0]
    e = g.add("Exp", [g.add("Neg", [g.add("Abs", [x], lead)], lead)], lead)
    return g.add("Add", [g.add("Relu", [x], lead), g.add("Log", [g.add("Add", [e, _scalar(g, n, 1)], lead)], lead)],
                 lead)


@_maps("leaky_relu")
def _leaky(g: _Graph, n: _N) -> str:
    return g.add("LeakyRelu", _args(g, n), _elementwise_lead(g, n), alpha=float(n.kwargs["slope"]))


def _phi(g: _Graph, n: _N, x: str, lead: Lead) -> str:
    """Phi(x) = (1 + erf(x / sqrt 2)) / 2. onnxruntime has no float64 Erf: a float64 model's erf runs
    in float32 (Cast there and back; about 1e-7 relative)."""
    z = g.add("Mul", [x, _scalar(g, n, 1 / math.sqrt(2))], lead)
    if n.out.dtype == np.float64:
        to = g.helper.np_dtype_to_tensor_dtype
        f32 = g.add("Erf", [g.add("Cast", [z], lead, to=to(np.dtype(np.float32)))], lead)
        erf = g.add("Cast", [f32], lead, to=to(np.dtype(np.float64)))
    else:
        erf = g.add("Erf", [z], lead)
    return g.add("Mul", [g.add("Add", [erf, _scalar(g, n, 1)], lead), _scalar(g, n, 0.5)], lead)


@_maps("ndtr")
def _ndtr(g: _Graph, n: _N) -> str:
    return _phi(g, n, _args(g, n)[0], _elementwise_lead(g, n))


@_maps("gelu")
def _gelu(g: _Graph, n: _N) -> str:
    """GELU written out in opset-17 ops: x Phi(x) (Erf), or 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    lead = _elementwise_lead(g, n)
    x = _args(g, n)[0]
    if n.kwargs["approximate"] == "tanh":
        x3 = g.add("Mul", [g.add("Mul", [x, x], lead), x], lead)
        inner = g.add("Add", [x, g.add("Mul", [x3, _scalar(g, n, 0.044715)], lead)], lead)
        t = g.add("Tanh", [g.add("Mul", [inner, _scalar(g, n, math.sqrt(2 / math.pi))], lead)], lead)
        half = g.add("Mul", [x, _scalar(g, n, 0.5)], lead)
        return g.add("Mul", [half, g.add("Add", [t, _scalar(g, n, 1)], lead)], lead)
    return g.add("Mul", [x, _phi(g, n, x, lead)], lead)


@_maps("pow")
def _pow(g: _Graph, n: _N) -> str:
    lead = _elementwise_lead(g, n)
    if "p" in n.kwargs:  # x ** constant
        return g.add("Pow", [_args(g, n)[0], g.value(n.kwargs["p"], n.out.dtype)], lead)
    return g.add("Pow", _args(g, n), lead)


@_maps("clip")
def _clip(g: _Graph, n: _N) -> str:
    lo, hi = n.kwargs["lo"], n.kwargs["hi"]
    dt = n.out.dtype
    ins = [_args(g, n)[0], "" if lo is None else g.value(lo, dt), "" if hi is None else g.value(hi, dt)]
    if any(np.ndim(b) for b in (lo, hi) if b is not None):  # Clip takes scalar bounds only
        x = ins[0]
        if lo is not None:
            x = g.add("Max", [x, ins[1]], _elementwise_lead(g, n))
        if hi is not None:
            x = g.add("Min", [x, ins[2]], _elementwise_lead(g, n))
        return x
    while ins and ins[-1] == "":
        ins.pop()
    return g.add("Clip", ins, _elementwise_lead(g, n))


@_maps("where")
def _where(g: _Graph, n: _N) -> str:
    c, a, b = n.args
    return g.add("Where", [g.value(c, bool), g.value(a, n.out.dtype), g.value(b, n.out.dtype)],
                 _elementwise_lead(g, n))


@_maps("astype")
def _astype(g: _Graph, n: _N) -> str:
    return g.add("Cast", [g.value(n.args[0])], _elementwise_lead(g, n),
                 to=g.helper.np_dtype_to_tensor_dtype(np.dtype(n.kwargs["dtype"])))


# reductions
def _axes(n: _N) -> tuple[int, ...]:
    nd = np.ndim(n.values[0])
    axis = n.kwargs.get("axis")
    if axis is None:
        return tuple(range(nd))
    return tuple(sorted(int(a) % nd for a in ((axis,) if isinstance(axis, (int, np.integer)) else axis)))


def _reduce_lead(g: _Graph, n: _N, axes: tuple[int, ...]) -> Lead:
    kept = n.kwargs.get("keepdims") or n.out.ndim == np.ndim(n.values[0]) - len(axes)
    return 0 not in axes and kept and g.is_lead(n.args[0])


_REDUCE = {"mean": "ReduceMean", "max": "ReduceMax", "min": "ReduceMin", "prod": "ReduceProd",
           "logsumexp": "ReduceLogSumExp"}


@_maps("sum", *_REDUCE)
def _reduce(g: _Graph, n: _N) -> str:
    axes = _axes(n)
    x, keep = _args(g, n)[0], int(bool(n.kwargs.get("keepdims")))
    lead = _reduce_lead(g, n, axes)
    if n.op == "sum":  # (axes became an input in opset 13; the others follow in opset 18)
        return g.add("ReduceSum", [x, g.ints(axes)], lead, keepdims=keep)
    return g.add(_REDUCE[n.op], [x], lead, axes=list(axes), keepdims=keep)


@_maps("var")
def _var(g: _Graph, n: _N) -> str:
    axes = _axes(n)
    x = _args(g, n)[0]
    lead = _reduce_lead(g, n, axes)
    xl = g.is_lead(n.args[0])
    c = g.add("Sub", [x, g.add("ReduceMean", [x], 0 not in axes and xl, axes=list(axes), keepdims=1)], xl)
    m = g.add("ReduceMean", [g.add("Mul", [c, c], xl)], lead, axes=list(axes), keepdims=int(bool(n.kwargs["keepdims"])))
    count = int(np.prod([np.shape(n.values[0])[a] for a in axes]))
    if 0 in axes and xl:
        g.refuse("a variance over the batch axis cannot follow a dynamic batch; export with dynamic_batch=False")
    ddof = n.kwargs.get("ddof", 0)
    return m if not ddof else g.add("Mul", [m, _scalar(g, n, count / (count - ddof))], lead)


@_maps("softmax", "log_softmax")
def _softmax(g: _Graph, n: _N) -> str:
    # opset >= 13: one axis (opset < 13 flattened everything from `axis` on: not what softmax(axis) means)
    axis = n.kwargs["axis"] % n.out.ndim
    return g.add("Softmax" if n.op == "softmax" else "LogSoftmax", _args(g, n), axis != 0 and g.is_lead(n.args[0]),
                 axis=axis)


@_maps("matmul")
def _matmul(g: _Graph, n: _N) -> str:
    a, b = n.args
    lead = np.ndim(n.values[0]) >= 2 and g.is_lead(a) or np.ndim(n.values[1]) > 2 and g.is_lead(b)
    return g.add("MatMul", _args(g, n), lead)


@_maps("linear")
def _linear(g: _Graph, n: _N) -> str:
    """Gemm(x, W, b, transB=1) on 2-D input (W is (out, in): forgetting transB passes the checker
    on a square W and gives wrong numbers); MatMul with W.T and Add above."""
    x, w = n.args[0], n.args[1]
    lead = np.ndim(n.values[0]) >= 2 and g.is_lead(x)
    names = _args(g, n)
    if np.ndim(n.values[0]) == 2:
        return g.add("Gemm", names, lead, transB=1)
    if not g.tr.depends(w):
        wt = g.const(np.ascontiguousarray(np.asarray(n.values[1]).T).astype(n.out.dtype))
    else:
        wt = g.add("Transpose", [names[1]], False, perm=[1, 0])
    y = g.add("MatMul", [names[0], wt], lead)
    return y if len(names) == 2 else g.add("Add", [y, names[2]], lead)


# layers
@_maps("conv2d")
def _conv(g: _Graph, n: _N) -> str:
    (sh, sw), (ph, pw) = n.kwargs["stride"], n.kwargs["padding"]
    return g.add("Conv", _args(g, n), g.is_lead(n.args[0]), strides=[sh, sw], pads=[ph, pw, ph, pw])


@_maps("max_pool2d")
def _max_pool(g: _Graph, n: _N) -> str:
    (kh, kw), (sh, sw), (ph, pw) = n.kwargs["kernel"], n.kwargs["stride"], n.kwargs["padding"]
    return g.add("MaxPool", _args(g, n), g.is_lead(n.args[0]), kernel_shape=[kh, kw], strides=[sh, sw],
                 pads=[ph, pw, ph, pw])


@_maps("avg_pool2d")
def _avg_pool(g: _Graph, n: _N) -> str:
    (kh, kw), (sh, sw), (ph, pw) = n.kwargs["kernel"], n.kwargs["stride"], n.kwargs["padding"]
    divisor = n.kwargs["divisor"]
    x = _args(g, n)[0]
    lead = g.is_lead(n.args[0])
    h, w = np.shape(n.values[0])[2:]
    if (kh, kw) == (h, w) and (ph, pw) == (0, 0) and divisor == kh * kw:  # adaptive to 1x1, or a global mean
        return g.add("GlobalAveragePool", [x], lead)
    if isinstance(divisor, np.ndarray):  # count_include_pad=False: the count of real elements in each window
        return g.add("AveragePool", [x], lead, kernel_shape=[kh, kw], strides=[sh, sw], pads=[ph, pw, ph, pw],
                     count_include_pad=0)
    y = g.add("AveragePool", [x], lead, kernel_shape=[kh, kw], strides=[sh, sw], pads=[ph, pw, ph, pw],
              count_include_pad=1)
    return y if divisor == kh * kw else g.add("Mul", [y, _scalar(g, n, kh * kw / divisor)], lead)


@_maps("batch_norm")
def _batch_norm(g: _Graph, n: _N) -> str:
    """Batch statistics (a BatchNorm without running stats normalises with its batch in eval)."""
    axes, shape, eps = list(n.kwargs["axes"]), n.kwargs["shape"], n.kwargs["eps"]
    if g.is_lead(n.args[0]):
        g.refuse("batch statistics (track_running_stats=False) cannot follow a dynamic batch; export with "
                 "dynamic_batch=False")
    x = g.value(n.args[0], n.out.dtype)
    c = g.add("Sub", [x, g.add("ReduceMean", [x], axes=axes, keepdims=1)])
    var = g.add("ReduceMean", [g.add("Mul", [c, c])], axes=axes, keepdims=1)
    y = g.add("Div", [c, g.add("Sqrt", [g.add("Add", [var, _scalar(g, n, eps)])])])
    w, b = n.args[1], n.args[2]
    if w is not None:
        y = g.add("Mul", [y, g.const(np.reshape(_value_of(w), shape), n.out.dtype)])
    if b is not None:
        y = g.add("Add", [y, g.const(np.reshape(_value_of(b), shape), n.out.dtype)])
    return y


# shapes
@_maps("reshape")
def _reshape(g: _Graph, n: _N) -> str:
    src, out = np.shape(n.values[0]), n.out.shape
    lead: Lead = g.is_lead(n.args[0])
    target = list(out)
    if lead:  # axis 0 must absorb the batch: -1 there, the rest fixed
        rest_in, rest_out = int(np.prod(src[1:])), int(np.prod(out[1:]))
        if not out or rest_out == 0 or rest_in % rest_out if rest_out else True:
            g.refuse(f"a reshape from {src} to {out} does not keep the batch in axis 0; export with "
                     "dynamic_batch=False")
        target[0] = -1
        if out[0] != src[0]:
            lead = _SCALED  # axis 0 is a multiple of the batch now, not the batch
    return g.add("Reshape", [g.value(n.args[0]), g.ints(target)], lead)


@_maps("transpose")
def _transpose(g: _Graph, n: _N) -> str:
    nd = np.ndim(n.values[0])
    perm = list(n.kwargs["axes"]) if n.kwargs["axes"] is not None else list(range(nd))[::-1]
    lead = g.is_lead(n.args[0])
    if lead and perm[0] != 0:
        g.refuse(f"a transpose {tuple(perm)} moves the batch axis; export with dynamic_batch=False")
    return g.add("Transpose", _args(g, n), lead, perm=perm)


@_maps("broadcast_to")
def _broadcast(g: _Graph, n: _N) -> str:
    shape = list(n.kwargs["shape"])
    lead = np.ndim(n.values[0]) == len(shape) and g.is_lead(n.args[0])
    if lead:
        shape[0] = 1  # Expand broadcasts 1 against the input's own (dynamic) batch
    elif g.dynamic and g.is_lead(n.args[0]):
        g.refuse("broadcast_to adds axes before the batch axis; export with dynamic_batch=False")
    return g.add("Expand", [g.value(n.args[0]), g.ints(shape)], lead)


@_maps("concatenate")
def _concat(g: _Graph, n: _N) -> str:
    axis = n.kwargs["axis"] % n.out.ndim
    leads = [g.is_lead(a) for a in n.args]
    if axis != 0 and any(leads) and not all(leads):
        g.refuse("a concatenation mixes batch-sized and fixed tensors; export with dynamic_batch=False")
    return g.add("Concat", _args(g, n), next((v for v in leads if v), False), axis=axis)


@_maps("stack")
def _stack(g: _Graph, n: _N) -> str:
    axis = n.kwargs["axis"] % n.out.ndim
    leads = [g.is_lead(a) for a in n.args]
    if any(leads) and (axis == 0 or not all(leads)):
        g.refuse("a stack along the batch axis (or of batch-sized and fixed tensors) cannot follow a dynamic "
                 "batch; export with dynamic_batch=False")
    ax = g.ints([axis])
    parts = [g.add("Unsqueeze", [a, ax], l) for a, l in zip(_args(g, n), leads)]
    return g.add("Concat", parts, next((v for v in leads if v), False), axis=axis)


@_maps("getitem")
def _getitem(g: _Graph, n: _N) -> str:
    """Basic indexing as Slice/Squeeze/Unsqueeze; one integer array (an Embedding's lookup) as Gather."""
    src = n.args[0]
    shape = np.shape(n.values[0])
    index = n.kwargs["index"]
    parts = list(index) if isinstance(index, tuple) else [index]
    arrays = [i for i, p in enumerate(parts) if isinstance(p, np.ndarray)]
    lead = g.is_lead(src)
    if arrays:
        if len(arrays) > 1 or parts[arrays[0]].dtype == bool or any(
                not (isinstance(p, slice) and p == slice(None)) and p is not Ellipsis
                for i, p in enumerate(parts) if i != arrays[0]):
            g.refuse("only one integer index array (with full slices around it) exports, as Gather")
        axis = len(shape) - (len(parts) - 1 - arrays[0]) if any(p is Ellipsis for p in parts) else arrays[0]
        arr = parts[arrays[0]]
        tr = g.tr
        if arr is tr.x.data:
            idx, ilead = "input", g.lead["input"]
        else:
            idx, ilead = g.const(np.asarray(arr, np.int64)), False
        if lead and axis == 0:
            g.refuse("indexing the batch axis with an array cannot follow a dynamic batch")
        return g.add("Gather", [g.value(src), idx], (axis != 0 and lead) or (axis == 0 and ilead),
                     axis=axis)
    # expand Ellipsis, then walk the input axes
    if any(p is Ellipsis for p in parts):
        k = next(i for i, p in enumerate(parts) if p is Ellipsis)
        used = sum(1 for p in parts if p is not None and p is not Ellipsis)
        parts[k:k + 1] = [slice(None)] * (len(shape) - used)
    starts, ends, axes, steps, squeeze, unsqueeze = [], [], [], [], [], []
    ax = pos = 0
    for p in parts:
        if p is None:
            unsqueeze.append(pos)
            pos += 1
            continue
        if isinstance(p, (int, np.integer)):
            i = int(p) % shape[ax]
            starts.append(i)
            ends.append(i + 1)
            axes.append(ax)
            steps.append(1)
            squeeze.append(ax)
        elif p != slice(None):
            a, b, s = p.indices(shape[ax])
            if s < 0 and b < 0:
                b = -shape[ax] - 1  # "before the first element" for a negative step
            starts.append(a)
            ends.append(b)
            axes.append(ax)
            steps.append(s)
            pos += 1
        else:
            pos += 1
        if ax == 0 and lead and not (isinstance(p, slice) and p == slice(None)):
            g.refuse("indexing the batch axis cannot follow a dynamic batch; export with dynamic_batch=False")
        ax += 1
    y = g.value(src)
    if axes:
        y = g.add("Slice", [y, g.ints(starts), g.ints(ends), g.ints(axes), g.ints(steps)], lead)
    if squeeze:
        y = g.add("Squeeze", [y, g.ints(squeeze)], 0 not in squeeze and lead)
    if unsqueeze:
        y = g.add("Unsqueeze", [y, g.ints(unsqueeze)], 0 not in unsqueeze and lead)
    return y


# ----------------------------------------------------------------------------- export
def _as_input(example_input: Any) -> Tensor:
    arr = example_input.data if isinstance(example_input, Tensor) else np.asarray(example_input)
    if arr.dtype.kind == "f":
        return Tensor(arr, requires_grad=True)
    if arr.dtype.kind in "iu":
        return Tensor(arr)
    raise TypeError(f"onnx export: example_input must be a float or integer array or Tensor, got dtype {arr.dtype}")


def _trace_graph(model: Any, x: Tensor, dynamic_batch: bool) -> tuple[_Graph, list[Tensor]]:
    """Trace model(x) and map every recorded op that depends on x to ONNX nodes."""
    tr, out = _run_traced(model, x)
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    if not outs or not all(isinstance(o, Tensor) for o in outs):
        raise ExportError(f"onnx export: the model must return a Tensor or a tuple of Tensors, got "
                          f"{type(out).__name__}")
    g = _Graph(tr, dynamic_batch)
    for node in tr.nodes:
        if not tr.dep[node]:
            continue  # a constant: its value (node.output) becomes an initializer where it is used
        g.node = _N(node)
        fn = _MAP.get(node.op)
        if fn is None:
            mod = tr.module_of(node)
            kind = "an op" if node.op in REGISTRY else "a user-defined dp.Function"
            raise ExportError(f"onnx export: {kind} '{node.op}'" + (f" in module {mod}" if mod else "") +
                              " has no ONNX mapping; write it with deltaprop's built-in ops to export it")
        g.names[node] = fn(g, g.node)
    g.node = None
    for i, o in enumerate(outs):
        if not tr.depends(o):
            raise ExportError(f"onnx export: model output {i} does not depend on the input")
    return g, outs


def _second_input(x: Tensor, dynamic_batch: bool) -> Tensor:
    """The input of the second trace: other values (floats -2x - 1, so signs and sums change;
    integers rotated, so indices stay valid) and, with dynamic_batch, one more row."""
    arr = np.concatenate([x.data, x.data[:1]], axis=0) if dynamic_batch else x.data.copy()
    if arr.dtype.kind == "f":
        arr = -2 * arr - 1
    elif arr.size:
        arr = np.roll(arr, 1)
    return _as_input(arr)


def _shown(t: Any) -> str:
    from onnx import numpy_helper

    arr = numpy_helper.to_array(t)
    return f"{arr.reshape(-1)[0].item()!r}" if arr.size == 1 else f"an array of shape {arr.shape}"


def _same_graphs(a: _Graph, b: _Graph, n: int, dynamic_batch: bool) -> None:
    """The graph must not depend on the example it was traced on: a number read into Python from the
    input (x.shape[0], len(x), .item(), bool() of a tensor) or a comparison of traced values (which
    the engine does not record) becomes a constant, right for the example only. The model is traced
    a second time on other values (with dynamic_batch, one more row), and every node and constant
    compared; the first that differs is refused, naming its op."""
    consts_a = {t.name: t for t in a.inits}
    consts_b = {t.name: t for t in b.inits}
    first, second = ((f"batch {n}", f"batch {n + 1}") if dynamic_batch else ("the example", "other values"))
    fix = ("compute it with tensor ops instead (e.g. x.mean(axis=0) rather than x.sum(axis=0) / x.shape[0]; "
           "dp.where/maximum/clip instead of an if on a tensor's value)")
    if dynamic_batch:
        fix += ", or export with dynamic_batch=False"
    for k, node in enumerate(a.nodes):
        other = b.nodes[k] if k < len(b.nodes) else None
        where = a.origin.get(node.output[0], "the model")
        if other is None or node.SerializeToString() != other.SerializeToString():
            raise ExportError(f"onnx export: {where} is traced differently at {first} and at {second}: the model "
                              "reads the batch size or a tensor's value into Python (x.shape[0], .item(), "
                              f"bool(), float()) and the graph follows it; {fix}")
        for name in node.input:
            ca, cb = consts_a.get(name), consts_b.get(name)
            if ca is None or (cb is not None and ca.SerializeToString() == cb.SerializeToString()):
                continue
            if ca.data_type == a.helper.np_dtype_to_tensor_dtype(np.dtype(bool)):
                why = ("a mask made from the input (a comparison such as h > 0, which the engine does not record) "
                       "would be baked into the graph; write it with tensor ops (dp.maximum, clip, relu, "
                       "leaky_relu) instead")
            else:
                why = ("a number read from the input in Python (x.shape[0], len(x), .item()) would be baked into the "
                       f"graph; {fix}")
            raise ExportError(f"onnx export: {where} uses a constant that changes with the input ({_shown(ca)} at "
                              f"{first}, {'none' if cb is None else _shown(cb)} at {second}): {why}")
    if len(b.nodes) > len(a.nodes):
        where = b.origin.get(b.nodes[len(a.nodes)].output[0], "the model")
        raise ExportError(f"onnx export: {where} is traced at {second} but not at {first}; {fix}")


def _build(model: Any, example_input: Any, dynamic_batch: bool, names: Sequence[str] | None = None) -> Any:
    """The ModelProto of model traced on example_input, its outputs called `names` (default
    'output', or 'output0', 'output1'...), not yet checked. Traced twice (see _same_graphs)."""
    _, helper, _ = _onnx()
    x = _as_input(example_input)
    if dynamic_batch and x.ndim == 0:
        raise ValueError("onnx export: a 0-d example input has no batch axis; pass dynamic_batch=False")
    g, outs = _trace_graph(model, x, dynamic_batch)
    with np.errstate(all="ignore"):  # (the other values may leave a log's domain: only the graph matters)
        again = _trace_graph(model, _second_input(x, dynamic_batch), dynamic_batch)[0]
    _same_graphs(g, again, x.shape[0] if x.ndim else 1, dynamic_batch)
    if names is None:
        names = ["output"] if len(outs) == 1 else [f"output{i}" for i in range(len(outs))]
    graph_outputs = []
    for name, o in zip(names, outs):
        src = g.value(o)
        g.nodes.append(helper.make_node("Identity", [src], [name]))
        lead = g.lead[src]
        dims = [("batch" if lead is True else None) if lead and k == 0 else d for k, d in enumerate(o.shape)]
        graph_outputs.append(helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(o.dtype), dims))
    in_dims = ["batch" if dynamic_batch and k == 0 else d for k, d in enumerate(x.shape)]
    inputs = [helper.make_tensor_value_info("input", helper.np_dtype_to_tensor_dtype(x.dtype), in_dims)]
    graph = helper.make_graph(g.nodes, type(model).__name__, inputs, graph_outputs, initializer=g.inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="deltaprop",
                             ir_version=IR_VERSION)


def build(model: Any, example_input: Any, dynamic_batch: bool = True) -> Any:
    """The onnx.ModelProto of `model` traced on example_input (what `export` writes): input
    'input', output 'output' (or 'output0', 'output1', ... for a tuple), checked by onnx.checker.
    The model is traced twice (the second time on other values, and with dynamic_batch one more
    row): a graph that differs between them (a batch size or a value read into Python) is refused
    with ExportError naming the op."""
    onnx, _, _ = _onnx()
    proto = _build(model, example_input, dynamic_batch)
    onnx.checker.check_model(proto, full_check=True)
    return proto


# ----------------------------------------------------------------------------- the whole predictor
class _Predictor(Module):
    """Raw rows (batch, features) -> what `deltaprop predict` computes before its labels (see
    run._predict): the stored standardisation, the network, then softmax probabilities
    (classification), the value in the target's units (regression), or the outputs as they are."""

    def __init__(self, net: Any, meta: Mapping[str, Any]) -> None:
        super().__init__()
        self.net = net
        dt = np.dtype(meta["dtype"])
        norm = meta.get("normalize")
        self.mean = None if norm is None else np.asarray(norm["mean"], dt)
        self.std = None if norm is None else np.asarray(norm["std"], dt)
        self.task = _predictor_task(meta)
        tn = meta.get("target_normalize") or {"mean": 0.0, "std": 1.0}
        self.t_mean, self.t_std = np.asarray(tn["mean"], dt), np.asarray(tn["std"], dt)

    def forward(self, x: Any) -> Any:
        from .nn import functional as F

        if self.mean is not None:
            x = (x - self.mean) / self.std
        out = self.net(x)
        if self.task == "classification":
            return F.softmax(out, axis=-1)
        if self.task == "regression":
            return out[:, 0] * self.t_std + self.t_mean
        return out


def _predictor_task(meta: Mapping[str, Any]) -> str:
    if meta.get("task") == "regression":
        return "regression"
    return "outputs" if meta.get("loss") == "mse_half_sum" else "classification"


def _labels_tensor(classes: Sequence[Any]) -> np.ndarray:
    """The class labels as an ONNX-storable array: strings, int64, or float64 as they were read."""
    if all(isinstance(c, str) for c in classes):
        return np.asarray(list(classes), dtype=object)
    if all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in classes):
        return np.asarray(classes, dtype=np.int64)
    if all(isinstance(c, (int, float, np.integer, np.floating)) and not isinstance(c, bool) for c in classes):
        return np.asarray(classes, dtype=np.float64)
    return np.asarray([str(c) for c in classes], dtype=object)


def _source(source: Any) -> tuple[Any, dict[str, Any], str | None, str | None]:
    """(network, metadata, model file digest, file name) of a model file path or a run.RunResult."""
    from . import run

    if isinstance(source, run.RunResult):
        return source.model, dict(source.metadata), None, None
    path = os.fspath(source)
    state, meta, _, _ = run.read_model_file(path)
    with run._dtype_scope(np.dtype(meta["dtype"])):
        model = run._load_weights(path, meta, state)
    return model, meta, run.file_digest(path), os.path.basename(path)


def build_predictor(source: Any, *, logits: bool = False, dynamic_batch: bool = True) -> Any:
    """The onnx.ModelProto of a trained run (a model file's path, or the RunResult of run.train_run):
    one graph from raw rows (input 'input', (batch, features) in the model's dtype, the columns of
    metadata 'feature_names' in that order) to what `deltaprop predict` gives: the stored
    standardisation, the network, and for classification the outputs 'label' (the class labels as
    they were in the file: strings or integers) and 'probabilities' (softmax, (batch, classes));
    for regression 'prediction' (batch,) in the target's units. `metadata_props` hold the feature
    names, class names, task, deltaprop's version and the model file's sha256. logits=True: the bare
    network instead (standardised rows in, 'output' logits out), with the same metadata."""
    import json

    from . import __version__

    onnx, helper, numpy_helper = _onnx()
    model, meta, digest, name = _source(source)
    dt = np.dtype(meta["dtype"])
    x = np.zeros((1, int(meta["sizes"][0])), dt)
    task = _predictor_task(meta)
    classes = list(meta.get("classes") or range(int(meta["sizes"][-1])))
    if logits:
        proto = _build(model, x, dynamic_batch)
    elif task == "classification":
        proto = _build(_Predictor(model, meta), x, dynamic_batch, ["probabilities"])
        g = proto.graph
        labels = numpy_helper.from_array(_labels_tensor(classes), "class_labels")
        g.initializer.append(labels)
        g.node.extend([helper.make_node("ArgMax", ["probabilities"], ["class_index"], axis=1, keepdims=0),
                       helper.make_node("Gather", ["class_labels", "class_index"], ["label"], axis=0)])
        g.output.insert(0, helper.make_tensor_value_info("label", labels.data_type,
                                                         ["batch" if dynamic_batch else 1]))
    else:
        proto = _build(_Predictor(model, meta), x, dynamic_batch, ["prediction"])
    proto.graph.name = f"deltaprop {name or 'model'}" + (" (logits)" if logits else "")
    props = {"deltaprop_version": __version__, "task": meta.get("task") or "classification",
             "input": ("standardised rows (batch, features): apply metadata 'normalize' of the model file first"
                       if logits else "raw rows (batch, features), columns in the order of feature_names"),
             "outputs": ("output (logits)" if logits else
                         "label, probabilities" if task == "classification" else "prediction"),
             "feature_names": json.dumps(meta.get("feature_names") or [f"x{i}" for i in range(meta["sizes"][0])]),
             "target": json.dumps(meta.get("target"))}
    if task == "classification":
        props["class_names"] = json.dumps([c if isinstance(c, (str, int, float)) else str(c) for c in classes])
    if digest is not None:
        props.update(model_file=name, model_sha256=digest)
    helper.set_model_props(proto, props)
    onnx.checker.check_model(proto, full_check=True)
    return proto


def export(model: Any, example_input: Any = None, path: str | os.PathLike | None = None,
           dynamic_batch: bool = True, *, logits: bool = False) -> None:
    """Write an ONNX file (opset 17), atomically. Two forms:

    - ``export(module, example_input, path)``: the module traced in eval mode on example_input;
      with dynamic_batch the first axis is a symbolic 'batch'.
    - ``export("model.safetensors", path)`` or ``export(run_result, path)``: a trained run as one
      graph from raw rows to labels and probabilities (see `build_predictor`; logits=True: the
      bare network).

    Raises ExportError naming the op (and module) that cannot be exported."""
    from . import run
    from .io import _atomic_write

    if isinstance(model, (str, os.PathLike, run.RunResult)):
        out = path if path is not None else example_input
        if not isinstance(out, (str, os.PathLike)) or (path is not None and example_input is not None):
            raise TypeError("onnx export of a trained run: export(model_file_or_run_result, path)")
        proto = build_predictor(model, logits=logits, dynamic_batch=dynamic_batch)
        _atomic_write(out, proto.SerializeToString())
        return
    if example_input is None or path is None:
        raise TypeError("onnx export of a module: export(module, example_input, path)")
    if logits:
        raise TypeError("onnx export: logits=True applies to a trained run (a model file or RunResult)")
    proto = build(model, example_input, dynamic_batch)
    _atomic_write(path, proto.SerializeToString())


# ----------------------------------------------------------------------------- command line
def main(argv: Sequence[str] | None = None) -> int:
    """`deltaprop export MODEL.safetensors OUT.onnx [--logits] [--static-batch]`: the whole predictor
    (`build_predictor`) of a model file written by `deltaprop train`, or with --logits the bare
    network. Exit 0, 2 usage, 1 failure."""
    prog = "deltaprop export"
    parser = argparse.ArgumentParser(
        prog=prog, description="Export a model file written by 'deltaprop train' to ONNX (opset "
        f"{OPSET}), for onnxruntime and other runtimes: one graph from raw rows (batch, features), the "
        "columns of the training file in its order, to what 'deltaprop predict' gives: the standardisation "
        "stored in the model file, the network, the class probabilities ('probabilities') and labels "
        "('label', the names in the file), or for regression the value in the target's units "
        "('prediction'). The file's metadata_props hold the feature names, class names, deltaprop's "
        "version and the model file's sha256.")
    parser.add_argument("model", help="a .safetensors model file (or checkpoint) written by 'deltaprop train'")
    parser.add_argument("out", help="the .onnx file to write (atomically)")
    parser.add_argument("--logits", action="store_true",
                        help="export the bare network instead: standardised rows in, logits ('output') out")
    parser.add_argument("--static-batch", action="store_true",
                        help="fix the batch size to 1 instead of a symbolic 'batch' axis")
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:  # --help, usage errors (argparse printed the message)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    try:
        proto = build_predictor(args.model, logits=args.logits, dynamic_batch=not args.static_batch)
        from .io import _atomic_write

        _atomic_write(args.out, proto.SerializeToString())
    except (ImportError, ValueError, OSError, ExportError) as exc:
        msg = f"no such file: {exc.filename!r}" if isinstance(exc, FileNotFoundError) and exc.filename else exc
        print(f"{prog}: error: {msg}", file=sys.stderr)
        return 1
    batch = 1 if args.static_batch else "batch"
    inp = proto.graph.input[0]
    features = inp.type.tensor_type.shape.dim[1].dim_value
    dtype = np.dtype(_onnx()[1].tensor_dtype_to_np_dtype(inp.type.tensor_type.elem_type)).name
    outs = ", ".join(f"'{o.name}'" for o in proto.graph.output)
    what = "standardised rows" if args.logits else "raw rows"
    print(f"wrote {args.out}: ONNX opset {OPSET}, input 'input' ({batch}, {features}) {dtype} ({what}), "
          f"output {outs}")
    return 0
