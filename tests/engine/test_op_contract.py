"""The op contract, checked for every primitive in deltaprop.autograd.REGISTRY.

Each registered op gets sample inputs (SAMPLES, plus VARIANTS of its settings: broadcasting,
axes, reductions, strides, padding, 0-d inputs) and is checked for:

* the fast first-order VJP against the reference VJP, for every needs pattern (same numbers; g
  not written, also when g is a read-only non-contiguous view; no returned gradient sharing
  memory with what the node saved; the node's arrays left as they were; one gradient per input);
* the VJP (through an ordinary backward) against central finite differences, float64, and a
  second backward through a retained graph giving the same gradient again;
* the JVP (forward mode through `apply`) against finite differences of the forward;
* the second derivative (create_graph, reverse over reverse) with dp.gradcheck;
* the version contract: an in-place change to an input or output the op declares saved makes
  backward raise naming the op; changing one it does not declare saved leaves the gradient as it
  was (nothing the VJP reads is left out); and conversely, what it declares saved is read
  (otherwise a legitimate in-place change after the forward raises for nothing);
* large inputs (where deltaprop.memory recycles arrays), float64 and float32: several backward
  passes in a row give the same numbers as a pass with recycling off and as the reference VJP,
  and nothing handed out earlier (outputs, .grad) changes afterwards. Run the file with
  DELTAPROP_RECYCLE=check too: every recycled array is then poisoned with NaN.

A new op without a sample fails test_every_registered_op_has_a_sample.
"""
from __future__ import annotations

import re
import zlib

import numpy as np
import pytest

import deltaprop as dp
from deltaprop import memory
from deltaprop.autograd import REGISTRY, apply, sum_to
from deltaprop.ops import layers
from deltaprop.tensor import Tensor


# -- sample inputs -------------------------------------------------------------------------------
# A sample is fn(rng, big) -> (args, kw): positional args as the op's public wrapper passes them
# (float64 ndarrays are the differentiable inputs), kw its static settings. big=True gives inputs
# large enough (>= memory.MIN_BYTES) that the recycler takes part; small ones are used for the
# finite-difference checks. Points where an op is not differentiable are avoided (ties, 0 for
# abs/relu, clip bounds), and so are domain edges (log/sqrt/pow bases are positive).

def _shape(big, small=(3, 4), large=(128, 128)):
    return large if big else small


def _normal(rng, shape):
    return rng.standard_normal(shape)


def _away_from_zero(rng, shape, lo=0.2, hi=2.0):
    return rng.uniform(lo, hi, shape) * rng.choice([-1.0, 1.0], shape)


def _positive(rng, shape, lo=0.5, hi=2.0):
    return rng.uniform(lo, hi, shape)


def _distinct(rng, shape, lo=-2.0, hi=2.0):
    """Values with no ties: the gaps are (hi - lo) / size (far above the finite-difference step)."""
    n = int(np.prod(shape))
    return (lo + (hi - lo) * (rng.permutation(n) + rng.uniform(0.2, 0.8, n)) / n).reshape(shape)


def _unary(make):
    return lambda rng, big: ([make(rng, _shape(big))], {})


def _binary(make_a=_normal, make_b=_normal, b_shape=None):
    def fn(rng, big):
        s = _shape(big)
        return [make_a(rng, s), make_b(rng, b_shape(s) if b_shape else s)], {}
    return fn


def _reduction(make=_normal, axis=1, keepdims=False):
    return lambda rng, big: ([make(rng, _shape(big))], {"axis": axis, "keepdims": keepdims})


def _pair_apart(rng, big):
    """maximum/minimum: two inputs that are never within 0.1 of each other."""
    s = _shape(big)
    a = _normal(rng, s)
    return [a, a + _away_from_zero(rng, s, 0.1, 1.0)], {}


def _clip_sample(lo, hi):
    def fn(rng, big):
        s = _shape(big)
        x = np.where(rng.random(s) < 0.5, rng.uniform(0.1, 0.9, s), rng.uniform(1.1, 2.0, s))
        return [x * rng.choice([-1.0, 1.0], s)], {"lo": lo, "hi": hi}
    return fn


def _cross_entropy(reduction):
    def fn(rng, big):
        n, c = (256, 80) if big else (4, 5)
        labels = rng.integers(0, c, n).astype(np.intp)
        return [_normal(rng, (n, c)), labels], {"reduction": reduction}
    return fn


def _loss(make_x, make_t, reduction):
    def fn(rng, big):
        s = _shape(big)
        return [make_x(rng, s), make_t(rng, s)], {"reduction": reduction}
    return fn


def _conv_shapes(big, stride, padding):
    n, c, o, h = (8, 4, 6, 24) if big else (2, 2, 3, 5)
    k = 3
    ho = (h + 2 * padding[0] - k) // stride[0] + 1
    wo = (h + 2 * padding[1] - k) // stride[1] + 1
    return (n, c, h, h), (o, c, k, k), (n, o, ho, wo)


def _conv2d(stride=(1, 1), padding=(0, 0), bias=True):
    def fn(rng, big):
        xs, ws, _ = _conv_shapes(big, stride, padding)
        args = [_normal(rng, xs), _normal(rng, ws)] + ([_normal(rng, ws[:1])] if bias else [])
        return args, {"stride": stride, "padding": padding}
    return fn


def _conv_input_grad(stride=(1, 1), padding=(0, 0)):
    def fn(rng, big):
        xs, ws, gs = _conv_shapes(big, stride, padding)
        return [_normal(rng, gs), _normal(rng, ws)], {"x_shape": xs, "stride": stride, "padding": padding}
    return fn


def _conv_weight_grad(stride=(1, 1), padding=(0, 0)):
    def fn(rng, big):
        xs, ws, gs = _conv_shapes(big, stride, padding)
        return [_normal(rng, xs), _normal(rng, gs)], {"w_shape": ws, "stride": stride, "padding": padding}
    return fn


def _pool_x(rng, big, kernel, stride, padding):
    xs = (8, 4, 32, 32) if big else (2, 2, 5, 5) if stride != kernel else (2, 2, 4, 4)
    x = _distinct(rng, xs)
    return x, layers._pool_fwd(x, kernel=kernel, stride=stride, padding=padding)


def _max_pool2d(kernel=(2, 2), stride=(2, 2), padding=(0, 0)):
    def fn(rng, big):
        x, _ = _pool_x(rng, big, kernel, stride, padding)
        return [x], {"kernel": kernel, "stride": stride, "padding": padding}
    return fn


def _pool_internal(which, kernel=(2, 2), stride=(2, 2), padding=(0, 0)):
    """max_pool2d's scatter (its VJP) and gather (the scatter's adjoint), with the argmax of a real
    input as `arg`."""
    def fn(rng, big):
        x, out = _pool_x(rng, big, kernel, stride, padding)
        arg = layers._pool_argmax(x, out, kernel, stride, padding)
        kw = {"arg": arg, "x_shape": x.shape, "kernel": kernel, "stride": stride, "padding": padding}
        return [_normal(rng, out.shape if which == "scatter" else x.shape)], kw
    return fn


def _avg_pool2d(kernel=(2, 2), stride=(2, 2), padding=(0, 0), count_include_pad=True):
    def fn(rng, big):
        xs = (8, 4, 32, 32) if big else (2, 2, 5, 5)
        divisor = layers.avg_pool_divisor(xs, kernel, stride, padding, count_include_pad)
        return [_normal(rng, xs)], {"kernel": kernel, "stride": stride, "padding": padding, "divisor": divisor}
    return fn


def _batch_norm(three_d=False, affine=True):
    def fn(rng, big):
        if three_d:
            xs, axes, shape = ((32, 16, 32) if big else (4, 3, 5)), (0, 2), (1, 0, 1)
        else:
            xs, axes, shape = ((512, 48) if big else (4, 3)), (0,), (1, 0)
        shape = tuple(xs[1] if s == 0 else 1 for s in shape)
        x = _normal(rng, xs) * 2 + 0.5
        w = _positive(rng, (xs[1],)) if affine else None
        b = _normal(rng, (xs[1],)) if affine else None
        return [x, w, b], {"axes": axes, "shape": shape, "eps": 1e-5}
    return fn


def _linear(bias=True, batch=False):
    def fn(rng, big):
        n, k, o = (256, 96, 80) if big else (3, 4, 5)
        xs = (2, n, k) if batch else (n, k)
        args = [_normal(rng, xs), _normal(rng, (o, k))] + ([_normal(rng, (o,))] if bias else [])
        return args, {}
    return fn


def _matmul(a_shape, b_shape, big_a=(128, 128), big_b=(128, 128)):
    return lambda rng, big: ([_normal(rng, big_a if big else a_shape), _normal(rng, big_b if big else b_shape)], {})


def _getitem(index_small, index_big=None):
    def fn(rng, big):
        s = _shape(big)
        index = index_big(rng) if big and index_big else index_small
        return [_normal(rng, s)], {"index": index}
    return fn


def _scatter_add(index_small, shape_small, index_big, shape_big):
    def fn(rng, big):
        index, shape = (index_big(rng), shape_big) if big else (index_small, shape_small)
        g_shape = np.zeros(shape)[index].shape
        return [_normal(rng, g_shape)], {"index": index, "shape": shape}
    return fn


def _setitem(index_small, v_small, index_big, v_big):
    def fn(rng, big):
        s = _shape(big)
        index, vs = (index_big, v_big) if big else (index_small, v_small)
        return [_normal(rng, s), _normal(rng, vs)], {"index": index}
    return fn


def _cat_or_stack(shapes_small, shapes_big, axis):
    return lambda rng, big: ([_normal(rng, s) for s in (shapes_big if big else shapes_small)], {"axis": axis})


def _rows(rng):
    return rng.integers(0, 128, 160)  # repeated rows: scatter-add must add, not assign


SAMPLES = {
    # elementwise
    "abs": _unary(_away_from_zero),
    "add": _binary(),
    "astype": lambda rng, big: ([_normal(rng, _shape(big))], {"dtype": np.dtype(np.float64)}),
    "clip": _clip_sample(-1.0, 1.0),
    "cos": _unary(_normal),
    "div": _binary(_normal, _away_from_zero),
    "exp": _unary(_normal),
    "leaky_relu": lambda rng, big: ([_away_from_zero(rng, _shape(big))], {"slope": 0.1}),
    "log": _unary(_positive),
    "log1p": _unary(lambda rng, s: rng.uniform(-0.5, 2.0, s)),
    "maximum": _pair_apart,
    "minimum": _pair_apart,
    "mul": _binary(),
    "neg": _unary(_normal),
    "pow": _binary(_positive, lambda rng, s: rng.uniform(-1.5, 1.5, s)),
    "pow_scalar": lambda rng, big: ([_positive(rng, _shape(big))], {"p": 3}),
    "relu": _unary(_away_from_zero),
    "sigmoid": _unary(lambda rng, s: 2 * _normal(rng, s)),
    "sin": _unary(_normal),
    "softplus": _unary(lambda rng, s: 2 * _normal(rng, s)),
    "sqrt": _unary(_positive),
    "sub": _binary(),
    "tanh": _unary(_normal),
    "where": lambda rng, big: ([rng.random(_shape(big)) < 0.5, _normal(rng, _shape(big)),
                                _normal(rng, _shape(big))], {}),
    "ndtr": _unary(lambda rng, s: 2 * _normal(rng, s)),
    "gelu": lambda rng, big: ([2 * _normal(rng, _shape(big))], {"approximate": "none"}),
    # reductions and matmul
    "sum": _reduction(),
    "mean": _reduction(),
    "max": _reduction(_distinct),
    "min": _reduction(_distinct),
    "prod": _reduction(lambda rng, s: _away_from_zero(rng, s, 0.5, 1.5)),
    "logsumexp": _reduction(),
    "var": lambda rng, big: ([_normal(rng, _shape(big))], {"axis": 1, "keepdims": False, "ddof": 0}),
    "matmul": _matmul((3, 4), (4, 2)),
    # shape ops
    "reshape": lambda rng, big: ([_normal(rng, _shape(big))], {"shape": (64, 256) if big else (2, 6)}),
    "transpose": lambda rng, big: ([_normal(rng, (32, 32, 32) if big else (2, 3, 4))], {"axes": (2, 0, 1)}),
    "broadcast_to": lambda rng, big: ([_normal(rng, (128, 1) if big else (3, 1))],
                                      {"shape": (4, 128, 128) if big else (2, 3, 4)}),
    "getitem": _getitem(np.array([0, 2, 0]), lambda rng: _rows(rng)),
    "scatter_add": _scatter_add(np.array([0, 2, 0]), (3, 4), _rows, (128, 128)),
    "setitem": _setitem((1, slice(1, 3)), (2,), (slice(0, 128, 2),), (64, 128)),
    "concatenate": _cat_or_stack([(3, 2), (3, 4), (3, 1)], [(128, 40), (128, 50), (128, 40)], 1),
    "stack": _cat_or_stack([(3, 4)] * 3, [(128, 128)] * 3, 1),
    # nn
    "softmax": lambda rng, big: ([_normal(rng, _shape(big))], {"axis": -1}),
    "log_softmax": lambda rng, big: ([_normal(rng, _shape(big))], {"axis": -1}),
    "cross_entropy": _cross_entropy("mean"),
    "mse_loss": _loss(_normal, _normal, "mean"),
    "binary_cross_entropy": _loss(lambda rng, s: rng.uniform(0.1, 0.9, s), lambda rng, s: rng.random(s), "mean"),
    "binary_cross_entropy_with_logits": _loss(_normal, lambda rng, s: rng.random(s), "mean"),
    # layers
    "linear": _linear(),
    "conv2d": _conv2d(),
    "conv2d_input_grad": _conv_input_grad(),
    "conv2d_weight_grad": _conv_weight_grad(),
    "max_pool2d": _max_pool2d(),
    "max_pool2d_backward": _pool_internal("scatter"),
    "max_pool2d_gather": _pool_internal("gather"),
    "batch_norm": _batch_norm(),
    "avg_pool2d": _avg_pool2d(),
}

# Other settings of the same ops (broadcasting, axes, reductions, strides, padding, ...).
VARIANTS = {
    "add": {"broadcast": _binary(b_shape=lambda s: s[1:])},
    "sub": {"broadcast": _binary(b_shape=lambda s: (s[0], 1))},
    "mul": {"broadcast": _binary(b_shape=lambda s: s[1:])},
    "div": {"broadcast": _binary(_normal, _away_from_zero, b_shape=lambda s: (1,) + s[1:])},
    "pow": {"broadcast": _binary(_positive, lambda rng, s: rng.uniform(-1.5, 1.5, s), b_shape=lambda s: s[1:])},
    "pow_scalar": {"square": lambda rng, big: ([_away_from_zero(rng, _shape(big))], {"p": 2}),
                   "fractional": lambda rng, big: ([_positive(rng, _shape(big))], {"p": -1.5}),
                   "zero": lambda rng, big: ([_positive(rng, _shape(big))], {"p": 0}),
                   "array": lambda rng, big: ([_positive(rng, _shape(big))],
                                              {"p": rng.uniform(-2, 2, _shape(big))})},
    "maximum": {"broadcast": lambda rng, big: ([_distinct(rng, _shape(big)), _distinct(rng, _shape(big))[:1] + 0.01],
                                               {})},
    "where": {"broadcast": lambda rng, big: ([rng.random(_shape(big)) < 0.5, _normal(rng, _shape(big)),
                                              _normal(rng, (1,) + _shape(big)[1:])], {})},
    "clip": {"lower_only": _clip_sample(-1.0, None), "upper_only": _clip_sample(None, 1.0)},
    "gelu": {"tanh": lambda rng, big: ([2 * _normal(rng, _shape(big))], {"approximate": "tanh"})},
    "sum": {"all": _reduction(axis=None), "keepdims": _reduction(axis=(0,), keepdims=True)},
    "mean": {"all": _reduction(axis=None), "keepdims": _reduction(axis=0, keepdims=True)},
    "max": {"all": _reduction(_distinct, axis=None), "keepdims": _reduction(_distinct, axis=0, keepdims=True)},
    "min": {"all": _reduction(_distinct, axis=None)},
    "prod": {"all": lambda rng, big: ([_away_from_zero(rng, (3, 4), 0.5, 1.5)], {"axis": None, "keepdims": False}),
             "keepdims": _reduction(lambda rng, s: _away_from_zero(rng, s, 0.5, 1.5), axis=0, keepdims=True)},
    "logsumexp": {"all": _reduction(axis=None), "keepdims": _reduction(axis=0, keepdims=True)},
    "var": {"ddof1": lambda rng, big: ([_normal(rng, _shape(big))], {"axis": None, "keepdims": False, "ddof": 1}),
            "keepdims": lambda rng, big: ([_normal(rng, _shape(big))], {"axis": 0, "keepdims": True, "ddof": 0})},
    "matmul": {"vec_mat": _matmul((4,), (4, 2), (128,), (128, 128)),
               "mat_vec": _matmul((3, 4), (4,), (128, 128), (128,)),
               "vec_vec": _matmul((4,), (4,), (128,), (128,)),
               "batched": _matmul((2, 3, 4), (4, 5), (4, 64, 128), (128, 64)),
               "batch_broadcast": _matmul((2, 1, 3, 4), (3, 4, 2), (2, 1, 64, 128), (3, 128, 64))},
    "transpose": {"reverse": lambda rng, big: ([_normal(rng, _shape(big))], {"axes": None})},
    "getitem": {"basic": _getitem((slice(0, 2), slice(None, None, 2)),
                                  lambda rng: (slice(0, 64), slice(None, None, 2))),
                "mask": _getitem(np.array([[True, False, True, True], [False] * 4, [True, True, False, True]]),
                                 lambda rng: np.random.default_rng(1).random((128, 128)) < 0.5)},
    "scatter_add": {"basic": _scatter_add((slice(0, 2), 1), (3, 4), lambda rng: (slice(0, 90), 1), (128, 128))},
    "setitem": {"rows": _setitem(np.array([2, 0]), (2, 4), np.arange(0, 128, 2), (64, 128)),
                "broadcast_value": _setitem((slice(0, 2),), (1, 4), (slice(0, 64),), (1, 128))},
    "stack": {"axis0": _cat_or_stack([(3, 4)] * 2, [(128, 128)] * 2, 0)},
    "concatenate": {"axis0": _cat_or_stack([(1, 4), (3, 4)], [(40, 128), (96, 128)], 0)},
    "softmax": {"axis0": lambda rng, big: ([_normal(rng, _shape(big))], {"axis": 0})},
    "log_softmax": {"axis0": lambda rng, big: ([_normal(rng, _shape(big))], {"axis": 0})},
    "cross_entropy": {"sum": _cross_entropy("sum"), "none": _cross_entropy("none")},
    "mse_loss": {"sum": _loss(_normal, _normal, "sum"), "none": _loss(_normal, _normal, "none")},
    "binary_cross_entropy": {r: _loss(lambda rng, s: rng.uniform(0.1, 0.9, s), lambda rng, s: rng.random(s), r)
                             for r in ("sum", "none")},
    "binary_cross_entropy_with_logits": {r: _loss(_normal, lambda rng, s: rng.random(s), r) for r in ("sum", "none")},
    "linear": {"no_bias": _linear(bias=False), "batched": _linear(batch=True)},
    "conv2d": {"stride_padding": _conv2d((2, 2), (1, 1), bias=False), "padding": _conv2d((1, 1), (1, 1))},
    "conv2d_input_grad": {"stride_padding": _conv_input_grad((2, 2), (1, 1))},
    "conv2d_weight_grad": {"stride_padding": _conv_weight_grad((2, 2), (1, 1))},
    "max_pool2d": {"overlap_padding": _max_pool2d((3, 3), (1, 1), (1, 1)), "gaps": _max_pool2d((2, 2), (3, 3))},
    "max_pool2d_backward": {"overlap_padding": _pool_internal("scatter", (3, 3), (1, 1), (1, 1)),
                            "gaps": _pool_internal("scatter", (2, 2), (3, 3))},
    "max_pool2d_gather": {"overlap_padding": _pool_internal("gather", (3, 3), (1, 1), (1, 1))},
    "batch_norm": {"3d": _batch_norm(three_d=True), "no_affine": _batch_norm(affine=False)},
    "avg_pool2d": {"overlap_padding": _avg_pool2d((3, 3), (1, 1), (1, 1)),
                   "exclude_pad": _avg_pool2d((3, 3), (2, 2), (1, 1), count_include_pad=False),
                   "gaps": _avg_pool2d((2, 2), (3, 3))},
}

# 0-d inputs: the fast paths' scalar corners (NumPy scalars instead of arrays, nothing to write into).
_UNARY_0D = {"abs": (_away_from_zero, {}), "cos": (_normal, {}), "exp": (_normal, {}), "log": (_positive, {}),
             "log1p": (_positive, {}), "neg": (_normal, {}), "relu": (_away_from_zero, {}),
             "sigmoid": (_normal, {}), "sin": (_normal, {}), "softplus": (_normal, {}), "sqrt": (_positive, {}),
             "tanh": (_normal, {}), "ndtr": (_normal, {}), "gelu": (_normal, {"approximate": "none"}),
             "leaky_relu": (_away_from_zero, {"slope": 0.1}), "clip": (lambda rng, s: np.array(0.5), {"lo": -1.0,
                                                                                                   "hi": 1.0}),
             "pow_scalar": (_positive, {"p": 3}), "astype": (_normal, {"dtype": np.dtype(np.float64)}),
             "sum": (_normal, {"axis": None, "keepdims": False}), "reshape": (_normal, {"shape": (1, 1)})}
for _k, (_make, _kw) in _UNARY_0D.items():
    VARIANTS.setdefault(_k, {})["0d"] = lambda rng, big, make=_make, kw=_kw: ([np.asarray(make(rng, ()))], dict(kw))
for _k, _make_b in {"add": _normal, "sub": _normal, "mul": _normal, "div": _away_from_zero,
                    "pow": lambda rng, s: rng.uniform(-1.5, 1.5, s)}.items():
    _make_a = _positive if _k == "pow" else _normal
    VARIANTS[_k]["0d_operand"] = lambda rng, big, a=_make_a, b=_make_b: ([np.asarray(a(rng, ())),
                                                                         b(rng, _shape(big))], {})
VARIANTS["maximum"]["0d_operand"] = lambda rng, big: (lambda a: ([np.asarray(a), a + _away_from_zero(
    rng, _shape(big), 0.1, 1.0)], {}))(rng.standard_normal())

CASES = [(k, "default") for k in sorted(REGISTRY)] + [
    (k, v) for k in sorted(VARIANTS) if k in REGISTRY for v in VARIANTS[k]]

# Known contract violations: (test, op or "op-variant") -> reason (strict: once fixed, the xfail
# fails and must be removed). None are known now.
XFAIL: dict[tuple[str, str], str] = {}
# Samples on which the "declared saved is read" check cannot show a dependence that exists in general.
NOT_READ_HERE = {("pow_scalar", "zero"): "d(x**0)/dx is 0 whatever x is"}


def _params(test):
    """CASES as pytest params for one test, with the known violations marked xfail(strict): XFAIL
    keys name an op (all its samples) or one sample ("op-variant")."""
    out = []
    for key, variant in CASES:
        pid = key if variant == "default" else f"{key}-{variant}"
        reason = XFAIL.get((test, pid)) or XFAIL.get((test, key))
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        out.append(pytest.param((key, variant), id=pid, marks=marks))
    return out


# Second derivatives that cannot be checked, and why (keep this minimal). None is needed: every op
# is checked, prod at inputs without zeros (test_prod_with_zeros_... covers its documented limit),
# and ops whose second derivative is 0 (linear ones, masks) are checked against a numerical 0.
SECOND_ORDER_EXEMPT: dict[str, str] = {}

EPS = 1e-6


class Case:
    """One op with one sample: its inputs, which of them are differentiable, its settings."""

    def __init__(self, key, variant, big=False, dtype=np.float64):
        self.key, self.variant, self.op = key, variant, REGISTRY[key]
        fn = SAMPLES[key] if variant == "default" else VARIANTS[key][variant]
        self.rng = np.random.default_rng(zlib.crc32(f"{key}/{variant}/{big}".encode()))
        self.args, self.kw = fn(self.rng, big)
        self.diff = [i for i, a in enumerate(self.args) if _is_float(a)]
        assert self.diff, f"{key}: a sample needs at least one float64 input"
        for i in self.diff:
            assert self.args[i].dtype == np.float64
            self.args[i] = self.args[i].astype(dtype)

    def needs_patterns(self):
        """Every differentiable input requiring grad, then each one alone (other float inputs
        then enter as Tensors that do not require grad: constants whose versions still count)."""
        pats = [tuple(self.diff)]
        if len(self.diff) > 1:
            pats += [(i,) for i in self.diff]
        return pats

    def tensors(self, needs=None, args=None):
        """Fresh copies of the inputs: float arrays as Tensors (requiring grad when in needs)."""
        needs = self.diff if needs is None else needs
        out = []
        for i, a in enumerate(self.args if args is None else args):
            if _is_float(a):
                out.append(Tensor(np.array(a, copy=True), requires_grad=i in needs))
            else:
                out.append(np.array(a, copy=True) if isinstance(a, np.ndarray) else a)
        return out

    def value(self, args=None):
        """The forward on copies of the inputs, with no graph: a new ndarray."""
        with dp.no_grad():
            return np.array(apply(self.op, self.tensors((), args), self.kw).data, copy=True)

    def fd_grad(self, w, i):
        """d sum(w * f) / d args[i] by central differences."""
        x = self.args[i]
        grad = np.zeros_like(x)
        for j in np.ndindex(x.shape):
            args = list(self.args)
            xp = x.copy()
            xp[j] += EPS
            args[i] = xp
            plus = np.sum(w * self.value(args))
            xm = x.copy()
            xm[j] -= EPS
            args[i] = xm
            minus = np.sum(w * self.value(args))
            grad[j] = (plus - minus) / (2 * EPS)
        return grad

    def fd_jvp(self, tangents):
        """(f(x + eps t) - f(x - eps t)) / 2 eps for tangents {index: array}."""
        plus, minus = list(self.args), list(self.args)
        for i, t in tangents.items():
            plus[i] = self.args[i] + EPS * t
            minus[i] = self.args[i] - EPS * t
        return (self.value(plus) - self.value(minus)) / (2 * EPS)


def _is_float(a):
    return isinstance(a, np.ndarray) and a.dtype.kind == "f"


def _arr(g):
    return None if g is None else np.asarray(g.data if isinstance(g, Tensor) else g)


def _close(actual, expected, rtol, what):
    """|actual - expected| <= rtol * max(1, max|expected|) everywhere, with a readable message."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert np.isfinite(actual).all(), f"{what}: non-finite values {actual}"
    scale = max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    err = float(np.max(np.abs(actual - expected), initial=0.0))
    assert err <= rtol * scale, f"{what}: max |error| {err:.3g} > {rtol:.0e} * {scale:.3g}\n{actual}\n{expected}"


def _saves_out(op, flags):
    """Whether the op's VJP reads its output for this needs pattern (a bool or a function of it)."""
    so = op.saves_out
    return bool(so(tuple(flags)) if callable(so) else so)


def _saved(op, needs_flags):
    """The input indices an op declares its VJP reads, for this needs pattern."""
    if op.saves is None:
        return set(range(len(needs_flags)))
    return set(op.saves(needs_flags) if callable(op.saves) else op.saves)


def _case(request_param, big=False, dtype=np.float64):
    key, variant = request_param
    return Case(key, variant, big, dtype)


# -- the registry -------------------------------------------------------------------------------
def test_every_registered_op_has_a_sample():
    assert set(SAMPLES) == set(REGISTRY)
    assert set(VARIANTS) <= set(REGISTRY)


def test_registry_entries_are_ops_with_the_contract_fields():
    for key, op in REGISTRY.items():
        assert isinstance(op, dp.autograd.Op), key
        assert callable(op.fwd) and callable(op.vjp) and callable(op.jvp), key
        assert op.graph_vjp is None or callable(op.graph_vjp), key
        assert op.saves is None or callable(op.saves) or all(isinstance(i, int) for i in op.saves), key


# -- a. the VJP on arrays == its differentiable companion (where an op has one) ----------------------
@pytest.mark.parametrize("param", _params("test_fast_vjp_matches_reference"))
def test_fast_vjp_matches_reference(param):
    """The op's one VJP on arrays keeps the contract (g not written, also read-only and
    non-contiguous; nothing saved shared or changed); where an op has a differentiable companion
    for create_graph (graph_vjp), both give the same numbers."""
    case = _case(param)
    op = case.op
    for needs in case.needs_patterns():
        ts = case.tensors(needs)
        out = apply(op, ts, case.kw)
        node = out._node
        assert node is not None and node.needs == tuple(i in needs for i in range(len(ts)))
        # the forward gives the same value when nothing is recorded (keeps ops see ctx None)
        np.testing.assert_array_equal(out.data, case.value())
        g = case.rng.standard_normal(np.shape(node.out))
        saved = [np.array(d, copy=True) if isinstance(d, np.ndarray) else d for d in node.datas]
        out_before = np.array(node.out, copy=True)
        results = {}
        for which in ("vjp", "graph_vjp", "vjp_readonly_g"):
            fn = op.graph_vjp if which == "graph_vjp" else op.vjp
            if fn is None:
                continue
            gi = g.copy()
            if which == "vjp_readonly_g":  # as the engine may pass it: a read-only, non-C-contiguous view
                node = apply(op, case.tensors(needs), case.kw)._node  # (a fast VJP may use ctx.extra once)
                gi = np.asfortranarray(gi) if gi.ndim >= 2 else gi  # (asfortranarray makes a 0-d array 1-d)
                gi.setflags(write=False)
            grads = fn(node, gi, node.out, *node.datas, **node.kw)
            np.testing.assert_array_equal(gi, g, err_msg=f"{case.key}: the {which} VJP wrote into g")
            assert isinstance(grads, tuple) and len(grads) >= len(ts), f"{case.key}: {which} returned {grads!r}"
            for i, r in enumerate(grads):
                if r is None or i not in needs:
                    continue
                r = _arr(r)
                for d in list(node.datas) + [node.out]:
                    if isinstance(d, np.ndarray):
                        assert not np.shares_memory(r, d), \
                            f"{case.key}: the {which} VJP's gradient {i} shares memory with a saved array"
            results[which] = grads
            for d, before in zip(node.datas, saved):  # a VJP never changes what the node saved
                if isinstance(d, np.ndarray):
                    np.testing.assert_array_equal(d, before, err_msg=f"{case.key}: {which} changed an input")
            np.testing.assert_array_equal(node.out, out_before, err_msg=f"{case.key}: {which} changed the output")
        for i in needs:
            ref = results.get("graph_vjp", results["vjp"])[i]
            assert ref is not None, f"{case.key}: the VJP gave no gradient for input {i}"
            ref = sum_to(_arr(ref), case.args[i].shape)
            for which in ("vjp", "vjp_readonly_g"):
                if which not in results:
                    continue
                fast = results[which][i]
                assert fast is not None, f"{case.key}: the {which} VJP gave no gradient for input {i}"
                fast = sum_to(_arr(fast), case.args[i].shape)
                assert fast.dtype == np.float64, f"{case.key}: {which} gradient {i} has dtype {fast.dtype}"
                _close(fast, ref, 1e-12, f"{case.key}: {which} vs reference VJP, input {i}, needs {needs}")


@pytest.mark.parametrize("param", _params("test_vjp_returns_one_gradient_per_input"))
def test_vjp_returns_one_gradient_per_input(param):
    """vjp/fast return a tuple with exactly one entry (gradient or None) per positional input."""
    case = _case(param)
    ts = case.tensors()
    node = apply(case.op, ts, case.kw)._node
    g = np.ones(np.shape(node.out))
    for fn in (case.op.vjp, case.op.graph_vjp):
        if fn is not None:
            grads = fn(node, g.copy(), node.out, *node.datas, **node.kw)
            assert isinstance(grads, tuple) and len(grads) == len(ts), \
                f"{case.key}: {len(grads)} gradients for {len(ts)} inputs"


# -- b. VJP against finite differences ------------------------------------------------------------
@pytest.mark.parametrize("param", _params("test_vjp_matches_finite_differences"))
def test_vjp_matches_finite_differences(param):
    case = _case(param)
    w = case.rng.standard_normal(case.value().shape)
    numerical = {i: case.fd_grad(w, i) for i in case.diff}
    for needs in case.needs_patterns():
        ts = case.tensors(needs)
        out = apply(case.op, ts, case.kw)
        out.backward(w)
        for i, t in enumerate(ts):
            if i in needs:
                assert t.grad is not None, f"{case.key}: no gradient for input {i}"
                assert t.grad.dtype == np.float64
                _close(t.grad.data, numerical[i], 1e-6, f"{case.key}: VJP vs finite differences, input {i}")
            elif isinstance(t, Tensor):
                assert t.grad is None


@pytest.mark.parametrize("param", _params("test_retained_graph_backward_twice"))
def test_retained_graph_backward_twice(param):
    """A second backward through a retained graph gives the same gradient again (a fast VJP that
    consumes what the forward kept in ctx.extra must rebuild it)."""
    case = _case(param)
    w = case.rng.standard_normal(case.value().shape)
    ts = case.tensors()
    out = apply(case.op, ts, case.kw)
    out.backward(w, retain_graph=True)
    first = [ts[i].grad.data.copy() for i in case.diff]
    out.backward(w)
    for i, g in zip(case.diff, first):
        _close(ts[i].grad.data, 2 * g, 1e-12, f"{case.key}: second backward through a retained graph, input {i}")


# -- c. JVP against finite differences ------------------------------------------------------------
@pytest.mark.parametrize("param", _params("test_jvp_matches_finite_differences"))
def test_jvp_matches_finite_differences(param):
    case = _case(param)
    tangents = {i: case.rng.standard_normal(case.args[i].shape) for i in case.diff}
    patterns = [tuple(case.diff)] + ([(i,) for i in case.diff] if len(case.diff) > 1 else [])
    for pat in patterns:
        ts = case.tensors(())
        for i in pat:
            ts[i]._tangent = tangents[i]
        out = apply(case.op, ts, case.kw)
        assert out._tangent is not None, f"{case.key}: no tangent"
        assert out._tangent.shape == out.shape, f"{case.key}: tangent shape {out._tangent.shape} != {out.shape}"
        _close(out._tangent, case.fd_jvp({i: tangents[i] for i in pat}), 1e-6,
               f"{case.key}: JVP vs finite differences, tangents on {pat}")


# -- d. second derivatives -----------------------------------------------------------------------
@pytest.mark.parametrize("param", _params("test_second_derivative_matches_finite_differences"))
def test_second_derivative_matches_finite_differences(param):
    case = _case(param)
    if case.key in SECOND_ORDER_EXEMPT:
        pytest.skip(SECOND_ORDER_EXEMPT[case.key])
    w = case.rng.standard_normal(case.value().shape)
    vs = [case.rng.standard_normal(case.args[i].shape) for i in case.diff]

    def projection(*xs):
        args = case.tensors(())
        for i, x in zip(case.diff, xs):
            args[i] = x
        if case.key == "setitem":  # it writes into its first input: give it a copy (as Tensor.__setitem__)
            args[0] = args[0] + 0.0
        return (apply(case.op, args, case.kw) * w).sum()

    def first_gradient_dot_v(*xs):
        gs = dp.grad(projection, argnums=tuple(range(len(xs))))(*xs)
        return sum((g * v).sum() for g, v in zip(gs, vs))

    xs = [Tensor(case.args[i].copy(), requires_grad=True) for i in case.diff]
    # the first derivative itself, through the create_graph path, against the fast path's
    gs = dp.grad(projection, argnums=tuple(range(len(xs))))(*xs)
    for i, g in zip(case.diff, gs):
        ts = case.tensors()
        apply(case.op, ts, case.kw).backward(w)
        _close(g.data, ts[i].grad.data, 1e-12, f"{case.key}: create_graph gradient vs first-order, input {i}")
    assert dp.gradcheck(first_gradient_dot_v, *xs, eps=EPS, atol=1e-6, rtol=1e-5)


def test_prod_with_zeros_first_order_exact_second_order_refused():
    """prod's documented limit: exact first derivatives with zeros, NotImplementedError (never a
    wrong number) for higher orders there."""
    x = np.array([[2.0, 0.0, 3.0], [0.0, 0.0, 5.0]])
    g = dp.grad(lambda t: dp.prod(t, axis=1).sum())(x)
    np.testing.assert_array_equal(g.data, [[0.0, 6.0, 0.0], [0.0, 0.0, 0.0]])
    with pytest.raises(NotImplementedError, match="prod"):
        dp.hessian(lambda t: dp.prod(t))(np.array([1.0, 0.0, 2.0]))


# -- e. versions ---------------------------------------------------------------------------------
def _grads_after(case, needs, w, edit=None):
    """Leaf gradients of sum(w * f) (None where none), with `edit(ts, out)` run between forward and
    backward."""
    ts = case.tensors(needs)
    out = apply(case.op, ts, case.kw)
    if edit is not None:
        edit(ts, out)
    out.backward(w)
    return [t.grad.data if isinstance(t, Tensor) and t.grad is not None else None for t in ts]


@pytest.mark.parametrize("param", _params("test_versions_of_saved_values"))
def test_versions_of_saved_values(param):
    case = _case(param)
    op = case.op
    name = re.escape(f"op '{op.name}'")
    w = case.rng.standard_normal(case.value().shape)
    for needs in case.needs_patterns():
        flags = tuple(i in needs for i in range(len(case.args)))
        saved = _saved(op, flags)
        expected = _grads_after(case, needs, w)

        for i in case.diff:  # every Tensor input (needed or a constant)
            if i in saved:
                def bump(ts, out, i=i):
                    ts[i]._bump()
                with pytest.raises(RuntimeError, match=name):
                    _grads_after(case, needs, w, bump)
            else:  # not declared saved: change it for real; the gradient must not notice
                def change(ts, out, i=i):
                    shares_out = np.shares_memory(ts[i].data, out.data)
                    if ts[i].data.flags.writeable and not (shares_out and _saves_out(op, flags)):
                        ts[i].data[...] += case.rng.uniform(0.5, 1.0, ts[i].shape)
                    ts[i]._bump()
                got = _grads_after(case, needs, w, change)
                for j in needs:
                    _close(got[j], expected[j], 1e-12,
                           f"{case.key}: input {i} is not declared saved, yet changing it changed gradient {j}")

        # the output: bumping it raises iff the op saves it, or it shares the counter of a saved input
        def bump_out(ts, out):
            out._bump()
        ts = case.tensors(needs)
        out = apply(op, ts, case.kw)
        shared = [i for i in case.diff if out._version is not None and out._version is ts[i]._version]
        if _saves_out(op, flags) or any(i in saved for i in shared):
            with pytest.raises(RuntimeError, match=name):
                _grads_after(case, needs, w, bump_out)
        else:
            def change_out(ts, out):
                if out.data.flags.writeable and not any(np.shares_memory(out.data, ts[i].data) for i in saved
                                                        if isinstance(ts[i], Tensor)):
                    out.data[...] += 1.0
                out._bump()
            got = _grads_after(case, needs, w, change_out)
            for j in needs:
                _close(got[j], expected[j], 1e-12,
                       f"{case.key}: the output is not declared saved, yet changing it changed gradient {j}")


# -- large inputs: recycling -----------------------------------------------------------------------
def _chain_backward(case, w, retain=False):
    """x -> x * 1.0 -> op -> sum(w * .): the op's incoming gradient and its outputs pass through
    the engine's owned (recyclable) arrays. Returns the op's output and the leaves' gradients
    (retain: of a second backward through the retained graph, the first one's .grad dropped)."""
    ts = case.tensors()
    mids = [t * 1.0 if isinstance(t, Tensor) else t for t in ts]
    y = apply(case.op, mids, case.kw)
    loss = (y * w).sum()
    loss.backward(retain_graph=retain)
    if retain:
        for t in ts:
            if isinstance(t, Tensor):
                t.grad = None
        loss.backward()
    return y.data, [ts[i].grad.data for i in case.diff]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("param", _params("test_large_inputs_with_recycling"))
def test_large_inputs_with_recycling(param, dtype):
    case = _case(param, big=True, dtype=dtype)
    key = case.key
    sizes = [a.nbytes for a in case.args if isinstance(a, np.ndarray)] + [case.value().nbytes]
    if param[1] == "default":  # (a few variants keep their small shapes)
        assert max(sizes) >= memory.MIN_BYTES, f"{key}: the large sample is too small to be recycled"
    w = case.rng.standard_normal(case.value().shape).astype(case.value().dtype)
    exact, loose = (1e-13, 1e-10) if dtype == np.float64 else (1e-6, 1e-4)

    was = memory.enabled()
    memory.set_enabled(False)
    try:
        ref_out, ref_grads = _chain_backward(case, w)
        ref_out, ref_grads = ref_out.copy(), [g.copy() for g in ref_grads]
    finally:
        memory.set_enabled(was)

    # the reference VJP on ndarrays agrees with the engine (the fast path at this size)
    ts = case.tensors()
    out = apply(case.op, ts, case.kw)
    node = out._node
    vjp = case.op.vjp(node, w.copy(), node.out, *node.datas, **node.kw)
    for i, g in zip(case.diff, ref_grads):
        assert g.dtype == dtype, f"{key}: gradient {i} has dtype {g.dtype}"
        _close(g, sum_to(_arr(vjp[i]), case.args[i].shape), loose, f"{key}: engine vs reference VJP, input {i}")

    rounds = [_chain_backward(case, w) for _ in range(3)] + [_chain_backward(case, w, retain=True)]
    for r, (y, grads) in enumerate(rounds):  # checked after all rounds: nothing handed out was reused
        _close(y, ref_out, exact, f"{key}: forward output of round {r}")
        for i, g, ref in zip(case.diff, grads, ref_grads):
            _close(g, ref, exact, f"{key}: gradient of input {i} in round {r}")


def _grads_edited(case, needs, w, item, create_graph):
    """Leaf gradients of sum(w * f) after overwriting `item` (an input index or "out") with other
    values, WITHOUT bumping its version (item None: no change)."""
    ts = case.tensors(needs)
    out = apply(case.op, ts, case.kw)
    if item is not None:
        target = out if item == "out" else ts[item]
        # far from the old values, signs flipped: masks (relu, clip, max, ...) change too
        d = target.data
        d[...] = -3 * d - 2 * np.sign(d) + np.random.default_rng(7).standard_normal(d.shape)
    out.backward(w, create_graph=create_graph)
    return [_arr(t.grad) for t in ts if isinstance(t, Tensor) and t.requires_grad]


@pytest.mark.parametrize("param", _params("test_declared_saved_values_are_read"))
def test_declared_saved_values_are_read(param):
    """The converse of the version test: what an op declares saved, its VJP (fast or reference)
    really reads. An over-declared value makes a legitimate in-place change after the forward
    (y = bn(x); y += skip) raise at backward for nothing."""
    if param in NOT_READ_HERE:
        pytest.skip(NOT_READ_HERE[param])
    case = _case(param)
    op = case.op
    w = case.rng.standard_normal(case.value().shape)
    unread = []
    for needs in case.needs_patterns():
        flags = tuple(i in needs for i in range(len(case.args)))
        items = [i for i in sorted(_saved(op, flags)) if i in case.diff] + (["out"] if _saves_out(op, flags) else [])
        for item in items:
            if item == "out" and not apply(op, case.tensors(needs), case.kw).data.flags.writeable:
                continue
            changed = False
            for create_graph in (False, True):
                base = _grads_edited(case, needs, w, None, create_graph)
                with np.errstate(all="ignore"):  # (the new values may leave the op's domain: NaN is a change too)
                    edited = _grads_edited(case, needs, w, item, create_graph)
                changed |= any(not np.array_equal(a, b) for a, b in zip(base, edited))
            if not changed:
                unread.append(f"{'its output' if item == 'out' else f'input {item}'} (needs {flags})")
    assert not unread, f"{case.key}: declared saved, but no gradient depends on: {'; '.join(unread)}"


# -- e. forward mode == reverse mode ---------------------------------------------------------------
@pytest.mark.parametrize("param", _params("test_jvp_matches_finite_differences"))
def test_jacobian_forward_equals_reverse(param):
    """For every op and input: jacobian(mode="fwd") (one JVP per input element) equals
    jacobian(mode="rev") (one VJP per output element); both are checked against finite
    differences above."""
    case = _case(param)
    for i in case.diff:
        n_out = case.value().size
        if n_out * case.args[i].size > 20000:
            continue

        def f(xi, i=i):
            args = case.tensors(())
            args[i] = xi
            if case.key == "setitem":  # it writes into its first input: give it a copy (as Tensor.__setitem__)
                args[0] = args[0] + 0.0
            return apply(case.op, args, case.kw)
        fwd = dp.jacobian(f, mode="fwd")(case.args[i].copy()).numpy()
        rev = dp.jacobian(f, mode="rev")(case.args[i].copy()).numpy()
        _close(fwd, rev, 1e-10, f"{case.key}: jacobian fwd vs rev, input {i}")
