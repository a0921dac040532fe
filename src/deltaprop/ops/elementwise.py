"""Elementwise ops: forward, VJP and JVP side by side.

VJPs use NumPy calls only; in a create_graph backward their arguments are Tensors, which
dispatch those calls back to these ops, so the same line gives differentiable gradients.
Broadcasting is undone by the engine (autograd.sum_to), not here.

Integer inputs. An op whose result is a float whatever its input (exp, log, log1p, sqrt, sin,
cos, tanh, sigmoid, softplus, leaky_relu, gelu, softmax, log_softmax, logsumexp, mean, var, std
and the losses) computes an integer or bool input in the default float dtype
(dp.get_default_dtype(), float32 unless set), as PyTorch does, never in float64 or float16 by
NumPy's promotion and never truncated back to integers. Float inputs keep their dtype. Ops
that are exact on integers (add, multiply, sum, prod, max, min, abs, relu, neg, clip, where)
keep the integer dtype, and binary arithmetic follows NumPy's promotion. `floating` is that
rule; every float-only op applies it to its inputs first.
"""
from __future__ import annotations

import numpy as np

from .. import _config, memory
from ..autograd import Op, apply
from ..tensor import Tensor


_NO_KW: dict = {}  # shared, never written: ops without keyword arguments


def raw(x):
    """The ndarray behind x (constants and masks are computed on raw values)."""
    return x.data if isinstance(x, Tensor) else x


def _into(a):
    """a as the out= of a VJP's next step on arrays (a is the VJP's own new array); None on a Tensor
    (create_graph: the differentiable op makes a new value)."""
    return a if type(a) is np.ndarray else None


def kept(ctx, g):
    """What the forward kept for the VJP (ctx.extra), taken (a retained graph's second backward
    recomputes it); None under create_graph (g a Tensor), where the VJP recomputes it
    differentiably."""
    if isinstance(g, Tensor):
        return None
    k, ctx.extra = ctx.extra, None
    return k


def floating(x):
    """The integer-input rule (see the module docstring): x itself when it is floating, else x
    converted to the default float dtype. A dtype check only, on the float path."""
    return x if x.dtype.kind in "fc" else x.astype(_config.get_default_dtype())


def _t(ts, i, like):
    """Tangent i, or zeros when that input carries none."""
    t = ts[i]
    return np.zeros_like(like) if t is None else t


_times = memory.product  # g * d for a VJP: into d when `fresh` (d made for this product alone)


def _new(x):
    """Where a float result goes: a recycled array when it is large (no page faults; see memory.py);
    a new 0-d array for a 0-d x (a ufunc without out= returns a scalar there, which no later
    out= can take); else None (NumPy allocates). None for a Tensor: a VJP written with out=_new(x)
    is the same rule on arrays and, under create_graph, on Tensors (the op makes a new value)."""
    if isinstance(x, Tensor) or x.dtype.kind != "f":
        return None
    if x.nbytes >= memory.MIN_BYTES:
        return memory.take(x.shape, x.dtype)
    return None if x.ndim else np.empty((), x.dtype)


def _float_ufunc(uf):
    def fwd(x):
        if x.dtype.kind != "f":
            x = floating(x)
        return uf(x, out=_new(x))
    return fwd


def unary(name, fwd, deriv, doc, *, fresh=False, saves=(0,), saves_out=False, floats=True):
    """An elementwise op whose derivative is deriv(x, out): VJP g * d, JVP t * d. `fresh`: deriv
    returns a new array of its own (the fast VJP writes the product into it). A ufunc forward
    writes a float result into a recycled array; `floats`: it is a float-only ufunc (integer
    inputs become the default float dtype: `floating`), False for one exact on integers. Other
    forwards apply `floating` themselves (no extra call on the hot path)."""
    if isinstance(fwd, np.ufunc):
        fwd = _float_ufunc(fwd) if floats else (lambda uf: lambda x: uf(x, out=_new(x)))(fwd)
    op = Op(name, fwd, lambda ctx, g, out, x: (_times(g, deriv(x, out), fresh),),
            lambda ts, out, x: ts[0] * raw(deriv(x, out)), saves=saves, saves_out=saves_out)

    def f(x):
        return apply(op, (x,), _NO_KW)
    f.__name__, f.__doc__ = name, doc
    return f


def _stable_sigmoid(x):
    """1 / (1 + e**-x) as e**x / (1 + e**x) for x < 0: never overflows, exact in both tails."""
    if x.dtype.kind != "f":
        x = floating(x)
    dt = x.dtype
    e = np.abs(x, out=_new(x))
    np.negative(e, out=e)
    np.exp(e, out=e)  # e = exp(-|x|) lies in (0, 1]
    with memory.scratch() as s:
        num = np.greater_equal(x, 0, out=s.take(e.shape, dt))
        np.maximum(num, e, out=num)  # 1 where x >= 0, else e (no np.where: a random mask is slow)
        e += 1
        return np.divide(num, e, out=e)


def _dtanh(x, y):
    """1 - y**2, in place on arrays (the same line on Tensors under create_graph)."""
    d = np.multiply(y, y, out=_new(y))
    return np.subtract(1, d, out=_into(d))


def _dsigmoid(x, y):
    """y (1 - y), in place on arrays."""
    d = np.subtract(1, y, out=_new(y))
    return np.multiply(d, y, out=_into(d))


_OUT = {"saves": (), "saves_out": True}  # derivatives written in terms of the output
exp = unary("exp", np.exp, lambda x, y: y, "e**x. VJP: g * exp(x)", **_OUT)
log = unary("log", np.log, lambda x, y: 1 / x, "Natural log. VJP: g / x", fresh=True)
log1p = unary("log1p", np.log1p, lambda x, y: 1 / (1 + x), "log(1 + x), accurate near 0. VJP: g / (1 + x)", fresh=True)
sqrt = unary("sqrt", np.sqrt, lambda x, y: 0.5 / y, "Square root. VJP: g / (2 sqrt(x)) (inf at 0, as PyTorch)",
             fresh=True, **_OUT)
sin = unary("sin", np.sin, lambda x, y: np.cos(x), "Sine. VJP: g * cos(x)", fresh=True)
cos = unary("cos", np.cos, lambda x, y: -np.sin(x), "Cosine. VJP: -g * sin(x)", fresh=True)
tanh = unary("tanh", np.tanh, _dtanh, "Hyperbolic tangent. VJP: g * (1 - y**2)", fresh=True, **_OUT)
# sigmoid, relu, add, sub, mul and x ** 2 also have straight-line forms for dp.compile's replay
# (ops/lowered.py: the same NumPy calls as these functions; change both together).
sigmoid = unary("sigmoid", _stable_sigmoid, _dsigmoid, "1 / (1 + e**-x). VJP: g * y (1 - y)", fresh=True, **_OUT)
abs = unary("abs", np.abs, lambda x, y: np.sign(raw(x)), "|x|. VJP: g * sign(x) (0 at 0, as PyTorch)", fresh=True,
            floats=False)
def zeros_for(x):
    """Read-only zeros shaped and typed like x (memory.zeros): relu's second operand."""
    return memory.zeros(x.shape, x.dtype)


relu = unary("relu", lambda x: np.maximum(x, zeros_for(x), out=memory.take(x.shape, x.dtype)),
             lambda x, y: raw(x) > 0, "max(x, 0). VJP: g * (x > 0)")
negative = unary("neg", np.negative, lambda x, y: -1, "-x. VJP: -g", saves=(), floats=False)


def _softplus_fwd(x):
    x = floating(x)
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def _sigmoid_of(x):
    """sigmoid(x): the differentiable op on a Tensor (create_graph), the stable form on an array."""
    return sigmoid(x) if isinstance(x, Tensor) else _stable_sigmoid(x)


softplus = unary("softplus", _softplus_fwd, lambda x, y: _sigmoid_of(x),
                 "log(1 + e**x), computed stably. VJP: g * sigmoid(x)", fresh=True)


def _leaky_fwd(x, slope):
    if x.dtype.kind != "f":
        x = floating(x)
    # max(x, slope x) for slope <= 1 and min(x, slope x) above: no np.where, whose branch on a
    # random mask costs ten times a plain pass
    sx = np.multiply(x, slope, out=_new(x))
    return np.maximum(x, sx, out=sx) if slope <= 1 else np.minimum(x, sx, out=sx)


def _leaky_deriv(x, slope):
    """1 where x > 0, else slope, in x's dtype (a constant: computed on raw values)."""
    x = raw(x)
    if 0 <= slope <= 1 and x.dtype.kind == "f":  # max(x > 0, slope) is exactly 1 or slope
        d = np.greater(x, 0, out=memory.take(x.shape, x.dtype))
        return np.maximum(d, slope, out=d)
    return np.where(x > 0, 1.0, slope).astype(x.dtype if x.dtype.kind == "f" else _config.get_default_dtype())


_leaky = Op("leaky_relu", _leaky_fwd, lambda ctx, g, out, x, slope: (_times(g, _leaky_deriv(x, slope), True),),
            lambda ts, out, x, slope: ts[0] * _leaky_deriv(x, slope), saves_out=False)


def leaky_relu(x, negative_slope: float = 0.01):
    """x if x > 0 else slope * x. VJP: g * (1 or slope)."""
    return _leaky(x, slope=negative_slope)


def _clip_mask(x, lo, hi):
    x = raw(x)
    m = np.ones(x.shape, bool)
    if lo is not None:
        m &= x >= raw(lo)
    if hi is not None:
        m &= x <= raw(hi)
    return m


_clip = Op("clip", lambda x, lo, hi: np.clip(x, lo, hi),
           lambda ctx, g, out, x, lo, hi: (g * _clip_mask(x, lo, hi),),
           lambda ts, out, x, lo, hi: ts[0] * _clip_mask(x, lo, hi), saves_out=False)


def clip(x, a_min=None, a_max=None, *, min=None, max=None):
    """Clamp to [a_min, a_max] (either may be None). VJP: g where a_min <= x <= a_max (bounds pass, as PyTorch)."""
    lo, hi = (a_min if a_min is not None else min), (a_max if a_max is not None else max)
    if lo is None and hi is None:
        raise ValueError("clip: give at least one of a_min / a_max")
    return _clip(x, lo=raw(lo), hi=raw(hi))


def _binop(name, ufunc, vjp, jvp, doc, saves=None):
    def fwd(a, b):
        try:
            return ufunc(a, b)
        except ValueError:
            raise ValueError(f"{name}: shapes {np.shape(a)} and {np.shape(b)} cannot be broadcast together; "
                             "make them equal or size 1 in each axis (aligned from the right)") from None
    op = Op(name, fwd, vjp, jvp, saves=saves, saves_out=False)

    def f(a, b):
        return apply(op, (a, b), _NO_KW)  # (apply directly: this is the hottest call there is)
    f.__name__, f.__doc__ = name, doc
    return f


_NUM = (int, float)  # a Python number operand is a constant: its gradient is never needed


add = _binop("add", np.add, lambda ctx, g, out, a, b: (g, g),
             lambda ts, out, a, b: _t(ts, 0, a) + _t(ts, 1, b), "a + b (broadcasting). VJP: g, g",
             saves=())
subtract = _binop("sub", np.subtract, lambda ctx, g, out, a, b: (g, None if isinstance(b, _NUM) else -g),
                  lambda ts, out, a, b: _t(ts, 0, a) - _t(ts, 1, b), "a - b. VJP: g, -g", saves=())
multiply = _binop("mul", np.multiply, lambda ctx, g, out, a, b: (None if isinstance(a, _NUM) else g * b,
                                                             None if isinstance(b, _NUM) else g * a),
                  lambda ts, out, a, b: _t(ts, 0, a) * b + a * _t(ts, 1, b), "a * b. VJP: g * b, g * a",
                  saves=lambda needs: ((1,) if needs[0] else ()) + ((0,) if needs[1] else ()))
divide = _binop("div", np.divide, lambda ctx, g, out, a, b: (None if isinstance(a, _NUM) else g / b,
                                                       None if isinstance(b, _NUM) else -g * a / (b * b)),
                lambda ts, out, a, b: (_t(ts, 0, a) - out * _t(ts, 1, b)) / b, "a / b. VJP: g / b, -g a / b**2",
                saves=lambda needs: (1,) + ((0,) if needs[1] else ()))


def _dpow_db(a, b, out):
    """d(a**b)/db = a**b log(a), as PyTorch: 0 where a == 0 and b >= 0 (a**b is 0 or 1 there: no
    0 * -inf), -inf where a == 0 and b < 0, nan where a < 0 (the log of a negative number). The
    masked bases become 1 before the log, so a create_graph backward sees no -inf either."""
    ra, rb = raw(a), raw(b)
    zero = (ra == 0) & (rb >= 0)
    with np.errstate(invalid="ignore", divide="ignore"):  # (nan for a < 0, -inf for a == 0 > b)
        if not np.any(zero):
            return out * np.log(a)
        return out * np.log(np.where(zero, 1, a) if isinstance(a, Tensor) else np.where(zero, 1, ra))


def _dpow(a, b):
    """d(a**b)/da = b a**(b-1), and 0 where b == 0 (as PyTorch: no 0 * inf at a = 0)."""
    if isinstance(b, _NUM):  # the common case, x ** 2: no array work beyond the product
        return np.zeros_like(raw(a)) if b == 0 else 2 * a if b == 2 else b * a ** (b - 1)
    d = b * a ** (b - 1)
    return d if np.all(raw(b) != 0) else np.where(raw(b) == 0, 0, d)


def _pow_jvp(ts, out, a, b):
    r = 0
    if ts[0] is not None:
        r = ts[0] * _dpow(a, b)
    if ts[1] is not None:
        r = r + ts[1] * _dpow_db(a, b, out)
    return r


power_tensor = Op("pow", np.power, lambda ctx, g, out, a, b: (g * _dpow(a, b), g * _dpow_db(a, b, out)), _pow_jvp,
                  saves_out=lambda needs: needs[1])  # (only the exponent's gradient reads the output)
# A constant exponent (a number or an array that is not a Tensor) needs no log(a) term.
power_const = Op("pow", lambda a, p: np.power(a, p), lambda ctx, g, out, a, p: (g * _dpow(a, p),),
                 lambda ts, out, a, p: ts[0] * _dpow(a, p), saves_out=False, key="pow_scalar")


def power(a, b):
    """a ** b. VJP: g b a**(b-1) and, for a Tensor exponent, g a**b log(a)."""
    if isinstance(b, Tensor) or not isinstance(a, Tensor):
        try:
            return power_tensor(a, b)
        except ValueError:
            raise ValueError(f"pow: shapes {np.shape(raw(a))} and {np.shape(raw(b))} cannot be broadcast "
                             "together") from None
    return power_const(a, p=b)


def _tie_mask(a, b, greater):
    ra, rb = raw(a), raw(b)
    win = (ra > rb) if greater else (ra < rb)
    return np.where(win, 1.0, np.where(ra == rb, 0.5, 0.0)).astype(np.result_type(ra, rb))


maximum = _binop("maximum", np.maximum,
                 lambda ctx, g, out, a, b: (g * _tie_mask(a, b, True), g * _tie_mask(b, a, True)),
                 lambda ts, out, a, b: _t(ts, 0, a) * _tie_mask(a, b, True) + _t(ts, 1, b) * _tie_mask(b, a, True),
                 "Elementwise max. VJP: g to the larger input (half each at ties, as PyTorch)")
minimum = _binop("minimum", np.minimum,
                 lambda ctx, g, out, a, b: (g * _tie_mask(a, b, False), g * _tie_mask(b, a, False)),
                 lambda ts, out, a, b: _t(ts, 0, a) * _tie_mask(a, b, False) + _t(ts, 1, b) * _tie_mask(b, a, False),
                 "Elementwise min. VJP: g to the smaller input (half each at ties, as PyTorch)")

def _where_fwd(c, a, b):
    try:
        return np.where(c, a, b)
    except ValueError:
        raise ValueError(f"where: shapes {np.shape(c)}, {np.shape(a)} and {np.shape(b)} cannot be broadcast "
                         "together") from None


_where = Op("where", _where_fwd,
            lambda ctx, g, out, c, a, b: (None, np.where(raw(c), g, 0), np.where(raw(c), 0, g)),
            lambda ts, out, c, a, b: np.where(c, _t(ts, 1, a), _t(ts, 2, b)), saves=(), saves_out=False)


def where(condition, x, y):
    """x where condition else y (broadcasting). VJP: g masked to each branch."""
    return _where(np.asarray(raw(condition), dtype=bool), x, y)


_cast = Op("astype", lambda x, dtype: x.astype(dtype),
           lambda ctx, g, out, x, dtype: (g.astype(raw(x).dtype),), lambda ts, out, x, dtype: ts[0].astype(dtype),
           saves=(), saves_out=False)


def astype(x, dtype):
    """A copy with another dtype; the gradient is cast back to x's dtype."""
    return _cast(x, dtype=np.dtype(dtype))


def to(x, *args, **kwargs):
    """PyTorch's Tensor.to: to(dtype), to(other_tensor) (its dtype) or to('cpu') (no-op; the only
    device). x itself when nothing changes; otherwise a cast that is differentiable between float
    dtypes (a cast to an integer or bool dtype is not, as in PyTorch)."""
    dtype = kwargs.pop("dtype", None)
    kwargs.pop("copy", None), kwargs.pop("non_blocking", None)
    device = kwargs.pop("device", None)
    if kwargs:
        raise TypeError(f"to: unexpected keyword arguments {sorted(kwargs)}")
    for a in args + ((device,) if device is not None else ()):
        if isinstance(a, Tensor):
            dtype = a.dtype
        elif isinstance(a, str) and a.split(":")[0] == "cpu":
            continue
        elif a is not None:
            try:
                dtype = np.dtype(a)
            except TypeError:
                raise TypeError(f"to: expected a dtype, a Tensor or the device 'cpu', got {a!r} (deltaprop runs "
                                "on the CPU only)") from None
    if dtype is None or np.dtype(dtype) == raw(x).dtype:
        return x
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        return Tensor(raw(x).astype(dtype))
    return _cast(x, dtype=dtype)


def float32(x):
    """x as float32 (x itself if it already is). Differentiable."""
    return to(x, np.float32)


def float64(x):
    """x as float64 (x itself if it already is). Differentiable."""
    return to(x, np.float64)


def _compare(ufunc):
    def f(a, b):
        return Tensor(ufunc(raw(a), raw(b)))
    f.__name__, f.__doc__ = ufunc.__name__, f"np.{ufunc.__name__} as a bool tensor (not differentiable)."
    return f


less, less_equal, greater, greater_equal, equal, not_equal = (
    _compare(u) for u in (np.less, np.less_equal, np.greater, np.greater_equal, np.equal, np.not_equal))
