"""Every op's gradient against float64 central differences, over Hypothesis-generated shapes
(broadcast shapes included) and values kept away from ties and kinks.

Each check runs twice: once through `dp.gradcheck`, once through an independent
finite-difference helper written here (a random cotangent w, d/dx sum(w * f(x)))."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import deltaprop as dp

F = dp.nn.functional
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- the independent finite-difference helper ---------------------------------------------------
def fd_grads(fn, arrays, w, eps=1e-6):
    """Central differences of sum(w * fn(*arrays)) with respect to every array (float64)."""
    def scalar(arrs):
        out = fn(*[dp.tensor(a) for a in arrs])
        return float(np.sum(np.asarray(out.numpy(), np.float64) * w))

    grads = []
    for i, a in enumerate(arrays):
        g = np.zeros(a.shape)
        for idx in np.ndindex(*a.shape):
            plus = [x.copy() for x in arrays]
            minus = [x.copy() for x in arrays]
            plus[i][idx] += eps
            minus[i][idx] -= eps
            g[idx] = (scalar(plus) - scalar(minus)) / (2 * eps)
        grads.append(g)
    return grads


def check(fn, *arrays, rtol=1e-5, atol=1e-6, gradcheck=True):
    """Backward through fn with a random cotangent equals central differences; and dp.gradcheck agrees."""
    arrays = [np.asarray(a, np.float64) for a in arrays]
    xs = [dp.tensor(a, requires_grad=True) for a in arrays]
    out = fn(*xs)
    assert isinstance(out, dp.Tensor)
    assert out.dtype == np.float64
    w = np.random.default_rng(0).uniform(0.5, 1.5, out.shape)
    (out * dp.tensor(w)).sum().backward()
    expected = fd_grads(fn, arrays, w)
    for x, e in zip(xs, expected):
        assert x.grad is not None
        assert x.grad.shape == x.shape
        assert x.grad.dtype == np.float64
        np.testing.assert_allclose(x.grad.numpy(), e, rtol=rtol, atol=atol)
    if gradcheck:
        assert dp.gradcheck(fn, *[dp.tensor(a, requires_grad=True) for a in arrays]) is True
    return out


# -- strategies: values on a grid, so ties/kinks are either impossible or at least 0.1 away -------
def grid(shape, lo, hi, *, nonzero=False, unique=False, offset=0.0):
    ints = st.integers(int(round(lo * 10)), int(round(hi * 10)))
    if nonzero:
        ints = ints.filter(lambda i: i != 0)
    return hnp.arrays(np.int64, shape, elements=ints, unique=unique).map(lambda a: a / 10.0 + offset)


shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=3)
nonempty_shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=3)
bshapes = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, min_side=1, max_side=3)


# -- elementwise unary ---------------------------------------------------------------------------
UNARY = {
    "exp": (lambda x: dp.exp(x), -2, 2, False),
    "exp_method": (lambda x: x.exp(), -2, 2, False),
    "log": (lambda x: dp.log(x), 0.2, 3, False),
    "log1p": (lambda x: dp.log1p(x), -0.5, 3, False),
    "sqrt": (lambda x: dp.sqrt(x), 0.2, 3, False),
    "abs": (lambda x: dp.abs(x), -2, 2, True),
    "abs_builtin": (lambda x: abs(x), -2, 2, True),
    "sin": (lambda x: dp.sin(x), -3, 3, False),
    "cos": (lambda x: x.cos(), -3, 3, False),
    "tanh": (lambda x: dp.tanh(x), -3, 3, False),
    "sigmoid": (lambda x: dp.sigmoid(x), -4, 4, False),
    "F.sigmoid": (lambda x: F.sigmoid(x), -4, 4, False),
    "F.tanh": (lambda x: F.tanh(x), -3, 3, False),
    "relu": (lambda x: dp.relu(x), -2, 2, True),
    "F.relu": (lambda x: F.relu(x), -2, 2, True),
    "neg": (lambda x: -x, -2, 2, False),
    "square": (lambda x: x * x, -2, 2, False),
    "pow2": (lambda x: x ** 2, -2, 2, False),
    "pow3": (lambda x: x ** 3, -2, 2, False),
    "pow_half": (lambda x: x ** 0.5, 0.2, 3, False),
    "pow_neg": (lambda x: x ** -1.5, 0.2, 3, False),
    "rpow": (lambda x: 2.0 ** x, -2, 2, False),
    "rsub": (lambda x: 3.0 - x, -2, 2, False),
    "rdiv": (lambda x: 2.0 / x, 0.2, 3, False),
    "div_scalar": (lambda x: x / 4.0, -2, 2, False),
    "radd_rmul": (lambda x: 1.5 + 2.5 * x, -2, 2, False),
    "astype64": (lambda x: x.astype(np.float64), -2, 2, False),
    "dp.astype": (lambda x: dp.astype(x, np.float64), -2, 2, False),
}


@pytest.mark.parametrize("name", sorted(UNARY))
@SETTINGS
@given(data=st.data())
def test_unary_grad(name, data):
    fn, lo, hi, nonzero = UNARY[name]
    x = data.draw(shapes.flatmap(lambda s: grid(s, lo, hi, nonzero=nonzero)))
    check(fn, x)


def test_pow_0d_exponent_gets_gradient():
    x = dp.tensor(1.5, dtype=np.float64, requires_grad=True)
    (2.0 ** x).backward()
    assert x.grad is not None
    np.testing.assert_allclose(x.grad.item(), 2 ** 1.5 * np.log(2))


def test_pow_0d_tensor_exponent_of_vector_base():
    base = np.array([1.5, 2.0])
    b = dp.tensor(3.0, dtype=np.float64, requires_grad=True)
    (dp.tensor(base) ** b).sum().backward()
    assert b.grad is not None
    np.testing.assert_allclose(b.grad.item(), np.sum(base ** 3 * np.log(base)))


def test_grad_wrt_scalar_exponent_transform():
    base = np.array([1.5, 2.0])
    g = dp.grad(lambda b: (dp.tensor(base) ** b).sum())(np.float64(3.0))
    np.testing.assert_allclose(g.item(), np.sum(base ** 3 * np.log(base)))


@SETTINGS
@given(x=shapes.flatmap(lambda s: grid(s, -2, 2, offset=0.05)))
def test_clip_grad_inside_and_outside(x):
    # offset 0.05 keeps every value at least 0.05 from the bounds -0.5 and 0.5
    check(lambda t: dp.clip(t, -0.5, 0.5), x)
    check(lambda t: t.clip(-0.5, 0.5), x)
    check(lambda t: dp.clip(t, None, 0.5), x)
    check(lambda t: dp.clip(t, -0.5, None), x)


# -- elementwise binary with broadcasting ---------------------------------------------------------
BINARY = {
    "add": (lambda a, b: a + b, (-2, 2), (-2, 2)),
    "dp.add": (lambda a, b: dp.add(a, b), (-2, 2), (-2, 2)),
    "sub": (lambda a, b: a - b, (-2, 2), (-2, 2)),
    "dp.subtract": (lambda a, b: dp.subtract(a, b), (-2, 2), (-2, 2)),
    "mul": (lambda a, b: a * b, (-2, 2), (-2, 2)),
    "dp.multiply": (lambda a, b: dp.multiply(a, b), (-2, 2), (-2, 2)),
    "div": (lambda a, b: a / b, (-2, 2), (0.3, 2)),
    "dp.divide": (lambda a, b: dp.divide(a, b), (-2, 2), (0.3, 2)),
    "pow": (lambda a, b: a ** b, (0.3, 2), (-2, 2)),
    "dp.power": (lambda a, b: dp.power(a, b), (0.3, 2), (-2, 2)),
}


@pytest.mark.parametrize("name", sorted(BINARY))
@SETTINGS
@given(data=st.data(), sh=bshapes)
def test_binary_grad_broadcast(name, data, sh):
    fn, (alo, ahi), (blo, bhi) = BINARY[name]
    sa, sb = sh.input_shapes
    a = data.draw(grid(sa, alo, ahi))
    b = data.draw(grid(sb, blo, bhi))
    out = check(fn, a, b)
    assert out.shape == np.broadcast_shapes(sa, sb)


@pytest.mark.parametrize("op", ["maximum", "minimum"])
@SETTINGS
@given(data=st.data(), sh=bshapes)
def test_maximum_minimum_grad_broadcast(op, data, sh):
    sa, sb = sh.input_shapes
    a = data.draw(grid(sa, -2, 2))
    b = data.draw(grid(sb, -2, 2, offset=0.05))  # never equal to a: no ties
    check(getattr(dp, op), a, b)
    check(lambda x, y: getattr(x, op)(y), a, b)


@SETTINGS
@given(data=st.data(), sh=hnp.mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=3, max_side=3))
def test_where_grad_broadcast(data, sh):
    sc, sa, sb = sh.input_shapes
    cond = data.draw(hnp.arrays(np.bool_, sc))
    a = data.draw(grid(sa, -2, 2))
    b = data.draw(grid(sb, -2, 2))
    out = check(lambda x, y: dp.where(cond, x, y), a, b)
    np.testing.assert_allclose(out.numpy(), np.where(cond, a, b))
    # a Tensor condition (bool) works the same
    check(lambda x, y: dp.where(dp.tensor(cond), x, y), a, b)


# -- matmul ------------------------------------------------------------------------------------
dims = st.integers(1, 3)


@SETTINGS
@given(data=st.data(), m=dims, k=dims, n=dims)
def test_matmul_2d(data, m, k, n):
    a = data.draw(grid((m, k), -2, 2))
    b = data.draw(grid((k, n), -2, 2))
    out = check(lambda x, y: x @ y, a, b)
    np.testing.assert_allclose(out.numpy(), a @ b)
    check(lambda x, y: dp.matmul(x, y), a, b)
    check(lambda x, y: x.matmul(y), a, b)


@SETTINGS
@given(data=st.data(), m=dims, k=dims, n=dims,
       batch=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=1, max_dims=2, max_side=3))
def test_matmul_batched_broadcast(data, m, k, n, batch):
    ba, bb = batch.input_shapes
    a = data.draw(grid(ba + (m, k), -2, 2))
    b = data.draw(grid(bb + (k, n), -2, 2))
    out = check(lambda x, y: x @ y, a, b)
    assert out.shape == np.broadcast_shapes(ba, bb) + (m, n)
    np.testing.assert_allclose(out.numpy(), a @ b)


@SETTINGS
@given(data=st.data(), k=dims, n=dims, batch=hnp.array_shapes(min_dims=0, max_dims=2, max_side=3))
def test_matmul_1d_operands(data, k, n, batch):
    v = data.draw(grid((k,), -2, 2))
    w = data.draw(grid((k,), -2, 2))
    m = data.draw(grid(batch + (k, n), -2, 2))
    mt = data.draw(grid(batch + (n, k), -2, 2))
    out = check(lambda x, y: x @ y, v, m)  # 1-D on the left (row vector), batch broadcast
    np.testing.assert_allclose(out.numpy(), v @ m)
    out = check(lambda x, y: x @ y, mt, v)  # 1-D on the right (column vector)
    np.testing.assert_allclose(out.numpy(), mt @ v)
    out = check(lambda x, y: x @ y, v, w)  # inner product: a scalar
    assert out.shape == ()
    np.testing.assert_allclose(out.item(), v @ w)


# -- reductions ---------------------------------------------------------------------------------
@st.composite
def reduction_case(draw, unique=False, lo=-2, hi=2, nonzero=False):
    shape = draw(nonempty_shapes)
    nd = len(shape)
    kind = draw(st.sampled_from(["none", "int", "neg", "tuple"]))
    if kind == "none":
        axis = None
    elif kind == "int":
        axis = draw(st.integers(0, nd - 1))
    elif kind == "neg":
        axis = draw(st.integers(-nd, -1))
    else:
        axes = draw(st.lists(st.integers(0, nd - 1), min_size=1, max_size=nd, unique=True))
        axis = tuple(a - nd if draw(st.booleans()) else a for a in axes)
    keepdims = draw(st.booleans())
    x = draw(grid(shape, lo, hi, unique=unique, nonzero=nonzero))
    return x, axis, keepdims


REDUCTIONS = {
    "sum": (dict(), lambda x, axis, kd: np.sum(x, axis=axis, keepdims=kd)),
    "mean": (dict(), lambda x, axis, kd: np.mean(x, axis=axis, keepdims=kd)),
    "max": (dict(unique=True), lambda x, axis, kd: np.max(x, axis=axis, keepdims=kd)),
    "min": (dict(unique=True), lambda x, axis, kd: np.min(x, axis=axis, keepdims=kd)),
    "var": (dict(), lambda x, axis, kd: np.var(x, axis=axis, keepdims=kd)),
    "std": (dict(unique=True), lambda x, axis, kd: np.std(x, axis=axis, keepdims=kd)),
    "prod": (dict(nonzero=True, lo=-1.5, hi=1.5), lambda x, axis, kd: np.prod(x, axis=axis, keepdims=kd)),
    "logsumexp": (dict(), lambda x, axis, kd: np.log(np.sum(np.exp(x), axis=axis, keepdims=kd))),
}


def _count(shape, axis):
    if axis is None:
        return int(np.prod(shape))
    axes = (axis,) if isinstance(axis, int) else axis
    return int(np.prod([shape[a] for a in axes]))


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
@SETTINGS
@given(data=st.data())
def test_reduction_grad(name, data):
    kw, ref = REDUCTIONS[name]
    x, axis, keepdims = data.draw(reduction_case(**kw))
    if name == "std" and _count(x.shape, axis) < 2:
        axis = None  # std of one element is 0, where sqrt has no derivative
        if x.size < 2:
            x = np.array([0.3, -0.7])
    out = check(lambda t: getattr(dp, name)(t, axis=axis, keepdims=keepdims), x)
    np.testing.assert_allclose(out.numpy(), ref(x, axis, keepdims), rtol=1e-12, atol=1e-12)
    # the method form and the dim= alias agree
    meth = getattr(dp.tensor(x), name)(dim=axis, keepdims=keepdims)
    np.testing.assert_allclose(meth.numpy(), ref(x, axis, keepdims), rtol=1e-12, atol=1e-12)


# -- shape ops --------------------------------------------------------------------------------
@SETTINGS
@given(x=shapes.flatmap(lambda s: grid(s, -2, 2)))
def test_reshape_flatten_transpose_grad(x):
    check(lambda t: t.reshape(-1), x)
    check(lambda t: t.reshape(x.shape[::-1]), x)
    check(lambda t: t.reshape(*x.shape[::-1]) if x.ndim else t.reshape(1, 1), x)
    check(lambda t: dp.reshape(t, (1,) + x.shape), x)
    check(lambda t: t.flatten() * dp.arange(x.size, dtype=np.float64), x)
    check(lambda t: dp.flatten(t), x)
    check(lambda t: t.transpose(), x)
    check(lambda t: t.T, x)
    perm = tuple(np.random.default_rng(x.size).permutation(x.ndim))
    out = check(lambda t: t.transpose(perm), x)
    np.testing.assert_array_equal(out.numpy(), np.transpose(x, perm))
    out = check(lambda t: t.transpose(*perm) if perm else t.transpose(), x)
    np.testing.assert_array_equal(out.numpy(), np.transpose(x, perm))
    check(lambda t: dp.transpose(t, perm), x)


@pytest.mark.parametrize("fn", [lambda t: t.reshape(3, 1), lambda t: t[1:], lambda t: t.reshape(1, 3).T],
                         ids=["reshape", "slice", "transpose"])
def test_gradcheck_on_view_op(fn):
    # regression: gradcheck once read a forward output that is a view of the input it perturbs
    x = dp.tensor([0.5, 1.0, 2.0], dtype=np.float64, requires_grad=True)
    assert dp.gradcheck(fn, x) is True


@SETTINGS
@given(data=st.data(), sh=bshapes)
def test_broadcast_to_grad(data, sh):
    sa, _ = sh.input_shapes
    x = data.draw(grid(sa, -2, 2))
    out = check(lambda t: dp.broadcast_to(t, sh.result_shape), x)
    assert out.shape == sh.result_shape
    check(lambda t: t.broadcast_to(sh.result_shape), x)


@SETTINGS
@given(data=st.data(), shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=2))
def test_squeeze_unsqueeze_swapaxes_grad(data, shape):
    x = data.draw(grid(shape, -2, 2))
    nd = x.ndim
    out = check(lambda t: t.squeeze(), x)
    assert out.shape == np.squeeze(x).shape
    ones = [i for i, s in enumerate(shape) if s == 1]
    if ones:
        ax = data.draw(st.sampled_from(ones))
        out = check(lambda t: dp.squeeze(t, ax), x)
        assert out.shape == np.squeeze(x, ax).shape
        out = check(lambda t: t.squeeze(ax - nd), x)
        assert out.shape == np.squeeze(x, ax).shape
    ax = data.draw(st.integers(-nd - 1, nd))
    out = check(lambda t: dp.expand_dims(t, ax), x)
    assert out.shape == np.expand_dims(x, ax).shape
    out = check(lambda t: t.unsqueeze(ax), x)
    assert out.shape == np.expand_dims(x, ax).shape
    a1, a2 = data.draw(st.integers(-nd, nd - 1)), data.draw(st.integers(-nd, nd - 1))
    out = check(lambda t: dp.swapaxes(t, a1, a2), x)
    np.testing.assert_array_equal(out.numpy(), np.swapaxes(x, a1, a2))


@SETTINGS
@given(data=st.data(), shape=nonempty_shapes, n=st.integers(1, 3))
def test_concatenate_stack_split_grad(data, shape, n):
    nd = len(shape)
    axis = data.draw(st.integers(-nd, nd - 1))
    pieces = []
    for _ in range(n):
        s = list(shape)
        s[axis] = data.draw(st.integers(1, 3))
        pieces.append(data.draw(grid(tuple(s), -2, 2)))
    out = check(lambda *ts: dp.concatenate(ts, axis=axis), *pieces)
    np.testing.assert_array_equal(out.numpy(), np.concatenate(pieces, axis=axis))
    check(lambda *ts: dp.concatenate(list(ts), dim=axis), *pieces)
    same = [data.draw(grid(shape, -2, 2)) for _ in range(n)]
    sax = data.draw(st.integers(-nd - 1, nd))
    out = check(lambda *ts: dp.stack(ts, axis=sax), *same)
    np.testing.assert_array_equal(out.numpy(), np.stack(same, axis=sax))
    # split: equal sections and explicit split points; weight the pieces differently
    big = np.concatenate(pieces, axis=axis)
    size = big.shape[axis]

    def split_points(t):
        parts = dp.split(t, [1], axis=axis) if size > 1 else dp.split(t, 1, axis=axis)
        return sum(((i + 1.0) * p).sum() for i, p in enumerate(parts))
    check(split_points, big)
    parts_np = np.split(big, size, axis=axis)
    parts = dp.split(dp.tensor(big), size, axis=axis)
    assert len(parts) == len(parts_np)
    for p, q in zip(parts, parts_np):
        np.testing.assert_array_equal(p.numpy(), q)

    def split_sections(t):
        return sum(((i + 1.0) * p).sum() for i, p in enumerate(dp.split(t, size, axis=axis)))
    check(split_sections, big)


# -- indexing --------------------------------------------------------------------------------
BASIC_INDEXES = [
    (1,), (slice(None), 2), (slice(1, None), slice(None, None, 2)), (-1, slice(None), 0), (None, 1),
    (Ellipsis, 1), (1, Ellipsis), (slice(None), None, slice(1, 3)), (slice(None, None, -1),),
    (0, 0, 0), (Ellipsis, None), (slice(3, 1, -1), Ellipsis, slice(0, 1)),
]


@pytest.mark.parametrize("index", BASIC_INDEXES, ids=[repr(i) for i in BASIC_INDEXES])
@settings(max_examples=5, deadline=None)
@given(x=grid((4, 5, 3), -2, 2))
def test_basic_indexing_grad(index, x):
    out = check(lambda t: t[index], x)
    np.testing.assert_array_equal(out.numpy(), x[index])
    # the gradient of a basic index is the upstream gradient placed back, zeros elsewhere
    t = dp.tensor(x, requires_grad=True)
    t[index].sum().backward()
    expected = np.zeros_like(x)
    expected[index] = 1
    np.testing.assert_array_equal(t.grad.numpy(), expected)


@SETTINGS
@given(data=st.data(), shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
def test_integer_array_indexing_scatter_adds_repeats(data, shape):
    x = data.draw(grid(shape, -2, 2))
    idx = data.draw(hnp.arrays(np.int64, st.integers(1, 6), elements=st.integers(-shape[0], shape[0] - 1)))
    out = check(lambda t: t[idx], x)
    np.testing.assert_array_equal(out.numpy(), x[idx])
    t = dp.tensor(x, requires_grad=True)
    t[idx].sum().backward()
    counts = np.zeros(shape[0])
    np.add.at(counts, idx, 1)
    expected = np.broadcast_to(counts.reshape((-1,) + (1,) * (len(shape) - 1)), shape)
    np.testing.assert_array_equal(t.grad.numpy(), expected)
    # a list and a Tensor of indices behave like the array
    t2 = dp.tensor(x, requires_grad=True)
    t2[list(idx)].sum().backward()
    np.testing.assert_array_equal(t2.grad.numpy(), expected)
    t3 = dp.tensor(x, requires_grad=True)
    t3[dp.tensor(idx)].sum().backward()
    np.testing.assert_array_equal(t3.grad.numpy(), expected)


def test_repeated_index_scatter_add_exact_values():
    x = dp.tensor([10.0, 20.0, 30.0], requires_grad=True)
    y = x[[0, 0, 2, 0]]
    (y * dp.tensor([1.0, 2.0, 3.0, 4.0])).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [7.0, 0.0, 3.0])
    m = dp.tensor(np.arange(12.0).reshape(3, 4), requires_grad=True)
    m[np.array([1, 1]), np.array([2, 2])].sum().backward()  # the same element twice
    expected = np.zeros((3, 4))
    expected[1, 2] = 2
    np.testing.assert_array_equal(m.grad.numpy(), expected)


@SETTINGS
@given(data=st.data(), shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=3))
def test_boolean_mask_and_mixed_indexing_grad(data, shape):
    x = data.draw(grid(shape, -2, 2))
    mask = data.draw(hnp.arrays(np.bool_, shape))
    out = check(lambda t: t[mask], x)
    np.testing.assert_array_equal(out.numpy(), x[mask])
    check(lambda t: t[dp.tensor(mask)], x)
    t = dp.tensor(x, requires_grad=True)
    t[mask].sum().backward()
    np.testing.assert_array_equal(t.grad.numpy(), mask.astype(np.float64))
    row_mask = data.draw(hnp.arrays(np.bool_, shape[:1]))
    out = check(lambda t: t[row_mask], x)
    np.testing.assert_array_equal(out.numpy(), x[row_mask])
    if len(shape) >= 2:
        cols = np.array([0, shape[1] - 1, 0])
        out = check(lambda t: t[:, cols], x)  # slice + integer array, repeated column
        np.testing.assert_array_equal(out.numpy(), x[:, cols])


# -- nn.functional ------------------------------------------------------------------------------
@SETTINGS
@given(data=st.data(), shape=nonempty_shapes)
def test_softmax_log_softmax_grad(data, shape):
    x = data.draw(grid(shape, -3, 3))
    nd = len(shape)
    axis = data.draw(st.integers(-nd, nd - 1))
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    ref = e / e.sum(axis=axis, keepdims=True)
    out = check(lambda t: F.softmax(t, axis=axis), x)
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-12, atol=1e-12)
    out = check(lambda t: F.log_softmax(t, dim=axis), x)
    np.testing.assert_allclose(out.numpy(), np.log(ref), rtol=1e-10, atol=1e-12)
    check(lambda t: t.softmax(axis), x)
    check(lambda t: t.log_softmax(axis), x)
    if nd >= 1:
        out = check(lambda t: F.softmax(t), x)  # default: the last axis
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        np.testing.assert_allclose(out.numpy(), e / e.sum(axis=-1, keepdims=True), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@SETTINGS
@given(data=st.data(), n=st.integers(1, 4), c=st.integers(1, 4))
def test_cross_entropy_grad(reduction, data, n, c):
    x = data.draw(grid((n, c), -3, 3))
    labels = data.draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, c - 1)))
    out = check(lambda t: F.cross_entropy(t, labels, reduction=reduction), x)
    lse = np.log(np.exp(x).sum(1))
    per = lse - x[np.arange(n), labels]
    ref = {"mean": per.mean(), "sum": per.sum(), "none": per}[reduction]
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-12, atol=1e-12)
    # analytic gradient: (softmax - onehot) / N for the mean
    if reduction != "none":
        t = dp.tensor(x, requires_grad=True)
        F.cross_entropy(t, list(labels), reduction=reduction).backward()
        p = np.exp(x - lse[:, None])
        p[np.arange(n), labels] -= 1
        np.testing.assert_allclose(t.grad.numpy(), p / (n if reduction == "mean" else 1), rtol=1e-10, atol=1e-14)
        t2 = dp.tensor(x, requires_grad=True)
        F.cross_entropy(t2, dp.tensor(labels), reduction=reduction).backward()
        np.testing.assert_allclose(t2.grad.numpy(), t.grad.numpy())


def test_cross_entropy_default_reduction_is_mean():
    x = np.array([[1.0, 2.0, 0.5], [0.1, -1.0, 0.3]])
    a = F.cross_entropy(dp.tensor(x), np.array([1, 2])).item()
    b = F.cross_entropy(dp.tensor(x), np.array([1, 2]), reduction="mean").item()
    assert a == b


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@SETTINGS
@given(data=st.data(), shape=nonempty_shapes)
def test_mse_loss_grad(reduction, data, shape):
    a = data.draw(grid(shape, -2, 2))
    b = data.draw(grid(shape, -2, 2))
    out = check(lambda x, y: F.mse_loss(x, y, reduction=reduction), a, b)
    sq = (a - b) ** 2
    np.testing.assert_allclose(out.numpy(), {"mean": sq.mean(), "sum": sq.sum(), "none": sq}[reduction],
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@SETTINGS
@given(data=st.data(), shape=nonempty_shapes)
def test_binary_cross_entropy_grad(reduction, data, shape):
    p = data.draw(grid(shape, 0.1, 0.9))
    y = data.draw(grid(shape, 0.0, 1.0))
    out = check(lambda x, t: F.binary_cross_entropy(x, t, reduction=reduction), p, y)
    per = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    np.testing.assert_allclose(out.numpy(), {"mean": per.mean(), "sum": per.sum(), "none": per}[reduction],
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@SETTINGS
@given(data=st.data(), shape=nonempty_shapes)
def test_binary_cross_entropy_with_logits_grad(reduction, data, shape):
    x = data.draw(grid(shape, -4, 4))
    y = data.draw(grid(shape, 0.0, 1.0))
    out = check(lambda a, t: F.binary_cross_entropy_with_logits(a, t, reduction=reduction), x, y)
    s = 1 / (1 + np.exp(-x))
    per = -(y * np.log(s) + (1 - y) * np.log(1 - s))
    np.testing.assert_allclose(out.numpy(), {"mean": per.mean(), "sum": per.sum(), "none": per}[reduction],
                               rtol=1e-10, atol=1e-12)


# -- a composite, end to end -------------------------------------------------------------------
@SETTINGS
@given(data=st.data(), n=dims, k=dims, m=dims)
def test_mlp_like_composite_grad(data, n, k, m):
    x = data.draw(grid((n, k), -2, 2))
    w = data.draw(grid((k, m), -1, 1))
    b = data.draw(grid((m,), -1, 1))

    def f(x_, w_, b_):
        h = (x_ @ w_ + b_).tanh()
        return F.log_softmax(h * 2.0, axis=-1).mean(axis=0).sum() + (w_ ** 2).sum() * 0.1
    check(f, x, w, b)


def test_integer_inputs_give_results_in_the_default_float_dtype():
    # one rule for float-only ops (as PyTorch): integer inputs are computed in the default float dtype
    x = np.array([[1, 2, 3]])
    e = np.exp(x - 3)
    for default, rtol in ((np.float32, 1e-6), (np.float64, 1e-15)):
        dp.set_default_dtype(default)
        try:
            cases = [(lambda v: F.softmax(v), e / e.sum()), (lambda v: F.log_softmax(v), np.log(e / e.sum())),
                     (F.sigmoid, 1 / (1 + np.exp(-x))), (F.tanh, np.tanh(x)), (F.leaky_relu, x * 1.0),
                     (F.softplus, np.log1p(np.exp(x)))]
            for f, ref in cases:
                out = f(dp.tensor(x))
                assert out.dtype == default
                np.testing.assert_allclose(out.data, ref, rtol=rtol)
        finally:
            dp.set_default_dtype(np.float32)
