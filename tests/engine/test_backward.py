"""Reverse mode as a user drives it: backward, .grad accumulation, hooks, no_grad, in-place
updates, dp.Function, freed graphs, aliasing of handed-out arrays, and PyTorch's conventions
at ties and kinks."""
from __future__ import annotations

import atexit
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import deltaprop as dp


def t64(x, requires_grad=True):
    return dp.tensor(np.asarray(x, np.float64), requires_grad=requires_grad)


# -- deep graphs -------------------------------------------------------------------------------
# Deleting a 1,000,000-op chain runs in a child process (a recursive deallocation would crash the
# interpreter with a segfault, not raise). It is started when this module is imported, so that its
# ~12 s of graph building overlaps the rest of the suite instead of adding to it.
_DEEP_CODE = textwrap.dedent("""
    import gc, sys
    start = sys.getrecursionlimit()
    import deltaprop as dp
    x = dp.tensor([1.0], requires_grad=True)
    y = x
    for _ in range(1_000_000):
        y = y + 1.0
    del y
    gc.collect()
    z = x * 2.0
    z.sum().backward()
    print("ok", x.grad.item(), sys.getrecursionlimit(), start)
""")
_deep_child = subprocess.Popen([sys.executable, "-c", _DEEP_CODE], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
atexit.register(lambda: _deep_child.poll() is None and _deep_child.kill())


def test_deep_graph_of_a_million_ops_is_deleted_without_crash():
    out, err = _deep_child.communicate(timeout=300)
    assert _deep_child.returncode == 0, err[-2000:]
    assert out.split()[:2] == ["ok", "2.0"]
    assert int(out.split()[2]) == int(out.split()[3])  # not by raising the recursion limit (the child's own:
    # this process's may have been raised by a peer library a benchmark test imported)


def test_100k_op_chain_backpropagates_without_recursion_error():
    x = t64(1.0)
    y = x
    n = 100_000
    for _ in range(n):
        y = y * 1.00001
    limit = sys.getrecursionlimit()
    t0 = time.perf_counter()
    y.backward()
    assert time.perf_counter() - t0 < 30
    assert sys.getrecursionlimit() == limit  # not by raising the recursion limit
    np.testing.assert_allclose(x.grad.item(), 1.00001 ** n, rtol=1e-9)


# -- accumulation and zeroing -----------------------------------------------------------------
def test_grad_is_none_before_backward_and_accumulates():
    x = t64([1.0, 2.0, 3.0])
    assert x.grad is None
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2, 4, 6])
    assert isinstance(x.grad, dp.Tensor)
    (x * 3.0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [5, 7, 9])
    x.grad = None
    (x * 3.0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3, 3, 3])
    x.zero_grad()
    assert x.grad is None
    (x ** 3).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3, 12, 27])


def test_tensor_used_twice_sums_its_gradients():
    x = t64(3.0)
    y = x * x + x.exp() * x + dp.sin(x)
    y.backward()
    np.testing.assert_allclose(x.grad.item(), 2 * 3 + np.exp(3) * 4 + np.cos(3), rtol=1e-12)


def test_one_element_tensor_counts_as_scalar():
    x = t64([[2.0]])
    (x * x).backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[4.0]])


def test_backward_with_explicit_gradient():
    x = t64([1.0, 2.0])
    y = x * x
    y.backward(gradient=np.array([1.0, 10.0]))
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 40.0])
    x.grad = None
    (x * x).backward(dp.tensor(np.array([3.0, 0.5])))
    np.testing.assert_array_equal(x.grad.numpy(), [6.0, 2.0])


def test_broadcast_input_gets_gradient_summed_to_its_shape():
    a = t64(np.ones((2, 3)))
    b = t64(np.array([1.0, 2.0, 3.0]))
    c = t64(np.array([[10.0], [20.0]]))
    s = t64(2.0)
    (a * b * c * s).sum().backward()
    assert b.grad.shape == (3,)
    np.testing.assert_array_equal(b.grad.numpy(), [60.0, 60.0, 60.0])
    assert c.grad.shape == (2, 1)
    np.testing.assert_array_equal(c.grad.numpy(), [[12.0], [12.0]])
    assert s.grad.shape == ()
    np.testing.assert_array_equal(s.grad.numpy(), 6 * 10 + 6 * 20)
    k = t64(np.ones((1, 3)))
    (a + k).sum().backward()
    assert k.grad.shape == (1, 3)
    np.testing.assert_array_equal(k.grad.numpy(), [[2.0, 2.0, 2.0]])


def test_dtype_promotion_and_grad_dtype():
    a = dp.tensor(np.ones((2, 3), np.float32), requires_grad=True)
    b = dp.tensor(np.ones((3, 2), np.float64), requires_grad=True)
    y = a @ b
    assert y.dtype == np.float64
    y.sum().backward()
    assert a.grad.dtype == np.float32
    assert b.grad.dtype == np.float64
    np.testing.assert_array_equal(a.grad.numpy(), np.full((2, 3), 2.0))
    c = dp.tensor([1.0, 2.0], requires_grad=True)  # float32 by default
    d = (c * 2.0 + 1).sum()  # a Python scalar does not promote
    assert d.dtype == np.float32
    d.backward()
    assert c.grad.dtype == np.float32
    e = dp.tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
    (e.astype(np.float64) ** 2).sum().backward()
    assert e.grad.dtype == np.float32
    np.testing.assert_array_equal(e.grad.numpy(), [2.0, 4.0])


# -- retain_grad and hooks -----------------------------------------------------------------
def test_retain_grad_on_non_leaf():
    x = t64([1.0, 2.0])
    h = x * 3.0
    h2 = h * 2.0
    h.retain_grad()
    assert not h.is_leaf
    (h2 ** 2).sum().backward()
    np.testing.assert_array_equal(h.grad.numpy(), 2 * 2 * (h2.numpy()))
    assert h2.grad is None  # not retained: no .grad on non-leaves
    np.testing.assert_array_equal(x.grad.numpy(), 3 * 2 * 2 * h2.numpy())


def test_hook_called_once_with_summed_gradient_before_accumulation():
    x = t64([1.0, 2.0])
    seen = []
    x.register_hook(lambda g: seen.append(g.numpy().copy()))
    (x * 2.0 + x * 3.0 + x).sum().backward()  # three paths into x
    assert len(seen) == 1
    np.testing.assert_array_equal(seen[0], [6.0, 6.0])
    np.testing.assert_array_equal(x.grad.numpy(), [6.0, 6.0])
    (x * 1.0).sum().backward()
    assert len(seen) == 2
    np.testing.assert_array_equal(seen[1], [1.0, 1.0])  # this backward's gradient, not the accumulated one


def test_hook_argument_is_a_tensor_and_return_value_replaces_gradient():
    x = t64([1.0, 2.0])
    kinds = []

    def double(g):
        kinds.append(type(g))
        return g * 2

    h = x.register_hook(double)
    (x * x).sum().backward()
    assert kinds == [dp.Tensor]
    np.testing.assert_array_equal(x.grad.numpy(), [4.0, 8.0])
    h.remove()
    x.grad = None
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 4.0])
    assert len(kinds) == 1


def test_hook_returning_ndarray_and_on_non_leaf():
    x = t64([1.0, 2.0])
    y = x * 3.0
    seen = []

    def hook(g):
        seen.append(g.numpy().copy())
        return np.array([1.0, -1.0])

    y.register_hook(hook)
    (y * y).sum().backward()
    np.testing.assert_array_equal(seen[0], 2 * y.numpy())
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, -3.0])  # replaced before flowing on


def test_multiple_hooks_chain_and_handles_remove_independently():
    x = t64([1.0])
    h1 = x.register_hook(lambda g: g + 1)
    x.register_hook(lambda g: g * 10)
    (x * 1.0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [20.0])
    h1.remove()
    x.grad = None
    (x * 1.0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [10.0])


# -- no_grad, detach, in-place ----------------------------------------------------------------
def test_no_grad_records_no_graph():
    x = t64([1.0, 2.0])
    with dp.no_grad():
        y = x * 2
        z = dp.exp(y).sum()
    assert not y.requires_grad and not z.requires_grad
    assert y.is_leaf
    with pytest.raises(RuntimeError):
        z.backward()
    y2 = x * 2
    assert y2.requires_grad  # restored on exit


def test_no_grad_as_decorator_and_nested_enable_grad():
    x = t64([1.0])

    @dp.no_grad()
    def f(v):
        return v * 2

    assert not f(x).requires_grad
    with dp.no_grad():
        with dp.enable_grad():
            assert (x * 2).requires_grad
        assert not (x * 2).requires_grad
        assert not dp.is_grad_enabled()
    assert dp.is_grad_enabled()


def test_no_grad_restored_after_exception():
    x = t64([1.0])
    with pytest.raises(ZeroDivisionError):
        with dp.no_grad():
            1 / 0
    assert (x * 2).requires_grad


def test_detach_cuts_the_graph():
    x = t64([1.0, 2.0])
    d = (x * 2).detach()
    assert not d.requires_grad and d.is_leaf
    np.testing.assert_array_equal(d.numpy(), [2.0, 4.0])
    y = (d * x).sum()
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 4.0])  # d is a constant


def test_in_place_update_of_leaf_under_no_grad():
    w = t64([1.0, 2.0])
    (w * w).sum().backward()
    with dp.no_grad():
        w -= 0.1 * w.grad
    assert w.requires_grad and w.is_leaf
    np.testing.assert_allclose(w.numpy(), [0.8, 1.6])
    w.grad = None
    (w * w).sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), [1.6, 3.2])
    with dp.no_grad():
        w *= 2
        w += 1
        w /= 2
        w[0] = 5.0
    np.testing.assert_allclose(w.numpy(), [5.0, 2.1])


def test_in_place_on_tensor_requiring_grad_raises_outside_no_grad():
    w = t64([1.0, 2.0])
    for op in (lambda: w.__iadd__(1.0), lambda: w.__isub__(1.0), lambda: w.__imul__(2.0),
               lambda: w.__itruediv__(2.0)):
        with pytest.raises(RuntimeError):
            op()
    with pytest.raises(RuntimeError):
        w[0] = 3.0
    np.testing.assert_array_equal(w.numpy(), [1.0, 2.0])  # nothing changed
    y = w * 2  # a non-leaf is changed in place and the change is recorded (PyTorch's rule)
    y += 1
    (y * y).sum().backward()
    np.testing.assert_allclose(w.grad.data, 2 * (2 * w.data + 1) * 2)


def test_in_place_on_plain_tensor_is_fine():
    a = dp.tensor([1.0, 2.0])
    a += 1
    a *= dp.tensor([2.0, 3.0])
    np.testing.assert_array_equal(a.numpy(), [4.0, 9.0])


# -- dp.Function ------------------------------------------------------------------------------
class Square(dp.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 2 * x * g


class MulAdd(dp.Function):
    """a * b + c with two saved tensors and three gradients (None for c's would also be allowed)."""

    @staticmethod
    def forward(ctx, a, b, c):
        ctx.save_for_backward(a, b)
        return a * b + c

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        return g * b, g * a, g


def test_function_forward_and_backward():
    x = t64([1.0, -2.0, 3.0])
    y = Square.apply(x)
    assert isinstance(y, dp.Tensor) and y.requires_grad
    np.testing.assert_array_equal(y.numpy(), [1.0, 4.0, 9.0])
    (y * dp.tensor(np.array([1.0, 2.0, 3.0]))).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, -8.0, 18.0])


def test_function_with_several_inputs_and_broadcasting():
    a, b, c = t64([[1.0, 2.0]]), t64([3.0, 4.0]), t64(0.5)
    MulAdd.apply(a, b, c).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [[3.0, 4.0]])
    np.testing.assert_array_equal(b.grad.numpy(), [1.0, 2.0])
    assert c.grad.shape == () and c.grad.item() == 2.0


def test_function_under_transforms():
    x = np.array([1.0, 2.0, -0.5])
    np.testing.assert_allclose(dp.grad(lambda v: Square.apply(v).sum())(x).numpy(), 2 * x)
    np.testing.assert_allclose(dp.hessian(lambda v: Square.apply(v).sum())(x).numpy(), 2 * np.eye(3))
    assert dp.gradcheck(lambda v: Square.apply(v), t64(x)) is True


def test_function_composes_with_builtin_ops():
    x = t64(0.7)
    y = dp.sin(Square.apply(dp.exp(x)))
    y.backward()
    e = np.exp(0.7)
    np.testing.assert_allclose(x.grad.item(), np.cos(e * e) * 2 * e * e, rtol=1e-12)


# -- freed graphs -------------------------------------------------------------------------------
def test_second_backward_through_freed_graph_raises():
    x = t64([1.0, 2.0])
    y = (x.exp() * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match=r"(?i)second time|freed"):
        y.backward()
    msg = ""
    try:
        y.backward()
    except RuntimeError as e:
        msg = str(e)
    assert "retain_graph" in msg


def test_retain_graph_allows_second_backward():
    x = t64([1.0, 2.0])
    y = (x.exp() * x).sum()
    y.backward(retain_graph=True)
    g1 = x.grad.numpy()
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * g1)


def test_shared_subgraph_freed_by_first_backward():
    x = t64([1.0, 2.0])
    h = x.exp()
    (h * 2).sum().backward()
    with pytest.raises(RuntimeError, match=r"(?i)second time|freed"):
        (h * 3).sum().backward()


# -- aliasing of handed-out arrays ---------------------------------------------------------------
def test_held_grad_arrays_never_change_on_later_backward():
    x = t64([1.0, 2.0, 3.0])
    (x * x).sum().backward()
    held_np = x.grad.numpy()
    held_view = np.asarray(x.grad)
    held_view_copy = held_view.copy()
    held_tensor = x.grad
    (x * 5.0).sum().backward()
    np.testing.assert_array_equal(held_np, [2.0, 4.0, 6.0])
    np.testing.assert_array_equal(held_view, held_view_copy)
    np.testing.assert_array_equal(held_tensor.numpy(), [2.0, 4.0, 6.0])
    np.testing.assert_array_equal(x.grad.numpy(), [7.0, 9.0, 11.0])


def test_held_grad_unchanged_after_in_place_parameter_update():
    w = t64([1.0, 2.0])
    (w * w).sum().backward()
    g = np.asarray(w.grad)
    with dp.no_grad():
        w -= 0.5 * w.grad
    np.testing.assert_array_equal(g, [2.0, 4.0])
    d = w.numpy()
    with dp.no_grad():
        w += 1.0
    np.testing.assert_array_equal(d, [0.0, 0.0])


def test_numpy_returns_a_copy():
    x = t64([1.0, 2.0])
    a = x.numpy()
    a[0] = 99
    assert x.numpy()[0] == 1.0


def test_user_gradient_array_is_not_aliased():
    x = t64([1.0, 2.0])
    g = np.array([1.0, 1.0])
    (x * 1.0).backward(gradient=g)
    g[0] = 100.0
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 1.0])


def test_sum_of_two_leaves_grads_stay_correct_after_accumulation():
    a = t64([1.0, 2.0, 3.0])
    b = t64([4.0, 5.0, 6.0])
    (a + b).sum().backward()
    (a + b).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [2.0, 2.0, 2.0])
    np.testing.assert_array_equal(b.grad.numpy(), [2.0, 2.0, 2.0])
    ((a + b) * 2.0).sum().backward()
    (a * 10.0).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [14.0, 14.0, 14.0])
    np.testing.assert_array_equal(b.grad.numpy(), [4.0, 4.0, 4.0])


def test_two_leaves_grads_are_distinct_arrays():
    a = t64([1.0, 2.0, 3.0])
    b = t64([4.0, 5.0, 6.0])
    ((a + b) * 2.0).sum().backward()
    assert not np.shares_memory(np.asarray(a.grad), np.asarray(b.grad))
    with dp.no_grad():
        a.grad *= 0  # e.g. an optimizer or clip_grad_norm_ scaling one gradient in place
    np.testing.assert_array_equal(b.grad.numpy(), [2.0, 2.0, 2.0])


# -- conventions at ties and kinks (PyTorch's) -------------------------------------------------
def _g(fn, x):
    t = t64(x)
    fn(t).sum().backward()
    return t.grad.numpy()


def test_relu_and_abs_derivative_zero_at_zero():
    np.testing.assert_array_equal(_g(dp.relu, [-1.0, 0.0, 2.0]), [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(_g(dp.nn.functional.relu, [0.0]), [0.0])
    np.testing.assert_array_equal(_g(dp.abs, [-1.0, 0.0, 2.0]), [-1.0, 0.0, 1.0])


def test_clip_gradient_is_one_at_its_bounds():
    np.testing.assert_array_equal(_g(lambda t: dp.clip(t, -1.0, 1.0), [-2.0, -1.0, 0.0, 1.0, 2.0]),
                                  [0.0, 1.0, 1.0, 1.0, 0.0])


def test_max_min_reduction_ties_split_evenly():
    np.testing.assert_array_equal(_g(lambda t: t.max(), [1.0, 3.0, 3.0, 2.0]), [0, 0.5, 0.5, 0])
    np.testing.assert_array_equal(_g(lambda t: t.min(), [1.0, 1.0, 1.0, 2.0]), [1 / 3, 1 / 3, 1 / 3, 0])
    np.testing.assert_array_equal(_g(lambda t: t.max(axis=1), [[2.0, 2.0], [1.0, 0.0]]), [[0.5, 0.5], [1.0, 0.0]])
    np.testing.assert_array_equal(_g(lambda t: dp.min(t, axis=0, keepdims=True), [[2.0, 2.0], [2.0, 0.0]]),
                                  [[0.5, 0.0], [0.5, 1.0]])


def test_maximum_minimum_ties_give_half_each():
    a, b = t64([1.0, 2.0, 3.0]), t64([1.0, 1.0, 4.0])
    dp.maximum(a, b).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [0.5, 1.0, 0.0])
    np.testing.assert_array_equal(b.grad.numpy(), [0.5, 0.0, 1.0])
    a.grad = b.grad = None
    dp.minimum(a, b).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [0.5, 0.0, 1.0])
    np.testing.assert_array_equal(b.grad.numpy(), [0.5, 1.0, 0.0])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_sqrt_derivative_is_inf_at_zero():
    g = _g(dp.sqrt, [0.0, 4.0])
    assert g[0] == np.inf
    assert g[1] == 0.25


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_pow_zero_exponent_at_zero_has_zero_gradient():
    np.testing.assert_array_equal(_g(lambda t: t ** 0, [0.0, 2.0]), [0.0, 0.0])


def test_function_jvp_missing_is_a_clear_error_and_given_is_used():
    x = np.array([1.0, 2.0])
    with pytest.raises(NotImplementedError, match="Square"):
        dp.jvp(lambda v: Square.apply(v), (x,), (np.ones(2),))

    class CubeWithJvp(dp.Function):
        @staticmethod
        def forward(ctx, v):
            ctx.save_for_backward(v)
            return v * v * v

        @staticmethod
        def backward(ctx, g):
            (v,) = ctx.saved_tensors
            return 3 * v * v * g

        @staticmethod
        def jvp(ctx, t):
            (v,) = ctx.saved_tensors
            return 3 * v * v * t

    out, t = dp.jvp(lambda v: CubeWithJvp.apply(v), (x,), (np.array([1.0, 0.5]),))
    np.testing.assert_allclose(out.numpy(), x ** 3)
    np.testing.assert_allclose(t.numpy(), 3 * x ** 2 * [1.0, 0.5])


def test_held_hook_argument_unchanged_by_later_backward():
    held = []
    x = t64([1.0, 2.0])
    x.register_hook(lambda g: held.append(g))
    (x * 3.0).sum().backward()
    (x * 5.0).sum().backward()
    np.testing.assert_array_equal(held[0].numpy(), [3.0, 3.0])
    np.testing.assert_array_equal(held[1].numpy(), [5.0, 5.0])
    np.testing.assert_array_equal(x.grad.numpy(), [8.0, 8.0])


def test_hook_argument_is_not_the_grad_array():
    held = []
    x = t64([1.0, 2.0])
    x.register_hook(lambda g: held.append(g))
    (x * 3.0).sum().backward()
    assert not np.shares_memory(np.asarray(held[0]), np.asarray(x.grad))


def test_retained_and_leaf_grads_do_not_share_memory():
    x = t64(np.ones((2, 3)))
    y = x.reshape(6)
    y.retain_grad()
    (y * 2.0).sum().backward()
    assert not np.shares_memory(np.asarray(y.grad), np.asarray(x.grad))


def test_in_place_reuse_of_incoming_gradients_never_changes_what_others_hold():
    # The engine lets an elementwise VJP write into its incoming gradient only when nothing else
    # references it; every array that someone else can see must keep its value.
    x = dp.tensor(np.array([[-1.0, 2.0, 3.0], [4.0, -5.0, 6.0]]), requires_grad=True)
    w = dp.tensor(np.array([[0.5, -1.0], [2.0, 1.0], [-0.5, 0.25]]), requires_grad=True)
    seen = []
    h = x @ w                              # (2, 2)
    h.register_hook(lambda g: seen.append(g.numpy()))
    z = h * 3.0
    z.retain_grad()
    a, b = z.relu(), z.tanh()              # z's gradient is the sum of two branches
    u = (a + b) * 2.0                      # add hands one array to both branches
    u.retain_grad()
    r = u.sigmoid()
    loss = (r * np.array([[1.0, -2.0], [0.5, 3.0]])).sum()
    loss.backward()
    # expected, by hand in NumPy
    hv = x.data @ w.data
    zv = 3 * hv
    uv = 2 * (np.maximum(zv, 0) + np.tanh(zv))
    s = 1 / (1 + np.exp(-uv))
    gr = np.array([[1.0, -2.0], [0.5, 3.0]])
    gu = gr * s * (1 - s)
    gz = 2 * gu * ((zv > 0) + (1 - np.tanh(zv) ** 2))
    gh = 3 * gz
    np.testing.assert_allclose(u.grad.numpy(), gu, rtol=1e-12)
    np.testing.assert_allclose(z.grad.numpy(), gz, rtol=1e-12)
    np.testing.assert_allclose(seen[0], gh, rtol=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), gh @ w.data.T, rtol=1e-12)
    np.testing.assert_allclose(w.grad.numpy(), x.data.T @ gh, rtol=1e-12)


def test_user_gradient_is_never_written_by_the_backward():
    x = dp.tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True)
    g = np.array([0.5, 0.5, 0.5])
    x.relu().backward(gradient=g)
    np.testing.assert_array_equal(g, [0.5, 0.5, 0.5])
    np.testing.assert_array_equal(x.grad.numpy(), [0.5, 0.0, 0.5])


def test_backward_uses_the_arrays_the_forward_saw():
    """Rebinding .data after the forward (as `p.data = new` does) does not change the backward:
    each node keeps the arrays its forward read, as PyTorch's saved tensors do."""
    x = dp.tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    w = dp.tensor(np.array([4.0, 5.0, 6.0]), requires_grad=True)
    y = (x * w).sum()
    w.data = np.array([-1.0, -1.0, -1.0])
    y.backward()
    np.testing.assert_array_equal(x.grad.data, [4.0, 5.0, 6.0])
    np.testing.assert_array_equal(w.grad.data, [1.0, 2.0, 3.0])


def test_in_place_change_after_the_forward_raises_at_backward():
    """In-place changes write through and bump the version; a backward that needs the old values
    raises naming the op, the shape and both versions (PyTorch's rule) instead of using the new ones."""
    x = dp.tensor(np.array([1.0, 2.0, 3.0]))          # a constant input
    w = dp.tensor(np.array([4.0, 5.0, 6.0]), requires_grad=True)
    y = (w * x).sum()
    x += 10.0                                          # x is saved by the product
    x[0] = -7.0
    with pytest.raises(RuntimeError, match=r"op 'mul' saved its input 1 \(shape \(3,\)\).*version 0.*version 2"):
        y.backward()
    np.testing.assert_array_equal(x.data, [-7.0, 12.0, 13.0])
    loss = (w * w).sum()
    with dp.no_grad():
        w -= 0.5 * w                                   # the DESIGN's update pattern, graph alive
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        loss.backward()
    a = dp.zeros(3)
    before = id(a.data)
    a += 1.0
    a[1] = 5.0
    assert id(a.data) == before and a.data.tolist() == [1.0, 5.0, 1.0]  # always in place
