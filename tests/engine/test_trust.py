"""Never a silently wrong number: in-place changes after the forward raise at backward (version
counters, PyTorch's rule), writes go through to views, setitem is differentiable, and grad and
anomaly modes are per thread."""
import threading

import numpy as np
import pytest

import deltaprop as dp

VERSION_ERROR = "modified by an in-place operation"


def t64(values, requires_grad=True):
    return dp.tensor(np.array(values, dtype=np.float64), requires_grad=requires_grad)


# -- in-place changes after the forward -------------------------------------------------------
def test_optimizer_step_between_two_backwards_raises():
    w = t64([1.0, 2.0, 3.0])
    x = t64([5.0, 7.0, 9.0], requires_grad=False)
    opt = dp.optim.SGD([w], lr=10.0)
    l1 = (w * x).sum()
    l2 = (w * w * x).sum()
    l1.backward()
    np.testing.assert_array_equal(w.grad.data, [5.0, 7.0, 9.0])
    opt.step()  # w changes in place: l2 saved the old w
    with pytest.raises(RuntimeError, match=VERSION_ERROR):
        l2.backward()


def test_optimizer_step_then_retained_graph_backward_raises():
    w = t64([1.0, 2.0])
    loss = (w * w).sum()
    loss.backward(retain_graph=True)
    dp.optim.Adam([w], lr=0.1).step()
    with pytest.raises(RuntimeError, match=r"op 'mul'.*shape \(2,\).*version 0.*version 1"):
        loss.backward()


def test_a_parameter_used_only_additively_may_change():
    # add's VJP reads neither input (as PyTorch): changing one after the forward is fine
    b = t64([1.0, 2.0])
    x = t64([3.0, 4.0], requires_grad=False)
    loss = (x + b).sum()
    with dp.no_grad():
        b -= 1.0
    loss.backward()
    np.testing.assert_array_equal(b.grad.data, [1.0, 1.0])


@pytest.mark.parametrize("edit", ["row", "column", "reshape_view", "copyto", "setitem", "view_no_grad"])
def test_in_place_edit_of_a_saved_2d_input_raises(edit):
    x = dp.tensor(np.arange(6.0).reshape(2, 3))
    w = t64(np.ones((2, 3)))
    y = (w * x).sum()  # mul saved x for w's gradient
    if edit == "row":
        x[0] += 100.0
    elif edit == "column":
        x[:, 0] += 100.0
    elif edit == "reshape_view":
        v = x.reshape(-1)
        v += 100.0
    elif edit == "copyto":
        np.copyto(x, np.full((2, 3), 100.0))
    elif edit == "setitem":
        x[1, 1] = 100.0
    elif edit == "view_no_grad":
        with dp.no_grad():
            v = x[1]
            v *= 3.0
    assert x._version_value > 0
    with pytest.raises(RuntimeError, match=VERSION_ERROR):
        y.backward()


def test_view_of_a_leaf_edited_under_no_grad_raises_and_writes_through():
    w = t64(np.arange(6.0).reshape(2, 3))
    loss = (w * w).sum()
    with dp.no_grad():
        v = w.reshape(-1)
        v[0] = 50.0
    assert w.data[0, 0] == 50.0  # the view's write reached the base
    with pytest.raises(RuntimeError, match=VERSION_ERROR):
        loss.backward()


def test_writes_go_through_to_views_and_share_the_version():
    x = dp.tensor(np.zeros((2, 3)))
    row, flat, t = x[0], x.reshape(-1), x.T
    x += 1.0
    x[1, 2] = 7.0
    np.testing.assert_array_equal(row.data, [1.0, 1.0, 1.0])
    assert flat.data[5] == 7.0 and t.data[2, 1] == 7.0
    assert row._version_value == flat._version_value == x._version_value == 2
    d = x.detach()
    d += 1.0  # detach shares memory and version, as PyTorch
    assert x.data[0, 0] == 2.0 and x._version_value == 3


def test_changes_before_the_forward_and_after_the_backward_are_fine():
    w = t64([1.0, 2.0])
    with dp.no_grad():
        w *= 2.0
    loss = (w * w).sum()
    loss.backward()
    np.testing.assert_array_equal(w.grad.data, [4.0, 8.0])
    with dp.no_grad():
        w -= 0.5 * w.grad
    np.testing.assert_array_equal(w.data, [0.0, 0.0])


def test_load_state_dict_and_init_bump_the_version():
    lin = dp.nn.Linear(2, 2, dtype=np.float64)
    x = t64([[1.0, 2.0]])  # x's gradient reads the weight
    loss = lin(x).sum()
    dp.nn.init.constant_(lin.weight, 0.5)
    with pytest.raises(RuntimeError, match=VERSION_ERROR):
        loss.backward()
    loss = (lin(x) ** 2).sum()
    lin.load_state_dict({"weight": np.ones((2, 2)), "bias": np.zeros(2)})
    with pytest.raises(RuntimeError, match=VERSION_ERROR):
        loss.backward()


def test_in_place_on_an_output_the_op_saved_raises():
    x = t64([0.5, 1.0])
    y = x.exp()  # exp's VJP reads its output
    y += 1.0     # recorded (y is not a leaf), but exp's saved output changed
    with pytest.raises(RuntimeError, match=r"op 'exp' saved its output"):
        y.sum().backward()


def test_in_place_on_a_non_leaf_is_recorded():
    x = t64([1.0, 2.0, 3.0])
    h = x * 2.0
    h *= x        # h = 2 x * x
    h += 1.0
    h.sum().backward()
    np.testing.assert_allclose(x.grad.data, 4 * x.data)


def test_in_place_on_a_leaf_requiring_grad_raises_and_changes_nothing():
    w = t64([1.0, 2.0])
    with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
        w += 1.0
    with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
        w[0] = 5.0
    np.testing.assert_array_equal(w.data, [1.0, 2.0])
    assert w._version_value == 0


def test_recorded_in_place_through_a_view_raises_clearly():
    x = t64([1.0, 2.0, 3.0])
    h = x * 2.0
    v = h[1:]
    with pytest.raises(RuntimeError, match="view"):
        v += x[1:]


def test_data_is_the_unchecked_escape_hatch():
    w = t64([1.0, 2.0])
    loss = (w * w).sum()
    w.data[0] = 10.0  # documented: .data bypasses the version counter (as in PyTorch)
    assert w._version_value == 0
    loss.backward()
    np.testing.assert_array_equal(w.grad.data, [20.0, 4.0])


# -- setitem is differentiable ----------------------------------------------------------------
def test_setitem_gives_the_value_its_gradient():
    buf = dp.zeros(4, dtype=np.float64)
    v = t64([1.0, 2.0])
    buf[1:3] = v * 10
    c = np.array([1.0, 2.0, 3.0, 4.0])
    (buf * c).sum().backward()
    np.testing.assert_array_equal(v.grad.data, [20.0, 30.0])
    np.testing.assert_array_equal(buf.data, [0.0, 10.0, 20.0, 0.0])
    assert not buf.is_leaf and buf.requires_grad


def test_setitem_overwritten_part_gets_no_gradient():
    x = t64([1.0, 2.0, 3.0, 4.0])
    h = x * 3.0
    s = t64(5.0)
    h[np.array([0, 2])] = s  # a 0-d value broadcast into two slots
    (h * h).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [0.0, 2 * 6.0 * 3, 0.0, 2 * 12.0 * 3])
    assert s.grad.item() == 2 * 5.0 * 2


def test_setitem_second_order():
    def f(v):
        buf = dp.zeros(3, dtype=np.float64)
        buf[0] = v * v
        buf[2] = v
        return (buf * buf).sum()   # v**4 + v**2
    x = t64(1.5)
    np.testing.assert_allclose(dp.grad(f)(x).item(), 4 * 1.5 ** 3 + 2 * 1.5)
    np.testing.assert_allclose(dp.grad(dp.grad(f))(x).item(), 12 * 1.5 ** 2 + 2)


def test_setitem_under_no_grad_is_a_plain_write():
    w = t64([1.0, 2.0])
    with dp.no_grad():
        w[0] = 7.0
    assert w.is_leaf and w.data[0] == 7.0 and w._version_value == 1


# -- threads -----------------------------------------------------------------------------------
def _train(steps, out):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((32, 4))
    y = rng.integers(0, 3, 32)
    dp.manual_seed(0)
    model = dp.nn.Sequential(dp.nn.Linear(4, 8, dtype=np.float64), dp.nn.Tanh(), dp.nn.Linear(8, 3, dtype=np.float64))
    opt = dp.optim.SGD(model.parameters(), lr=0.1)
    missing = 0
    for _ in range(steps):
        opt.zero_grad()
        loss = dp.nn.functional.cross_entropy(model(dp.tensor(X)), y)
        loss.backward()
        missing += sum(p.grad is None for p in model.parameters())
        opt.step()
    out.append((missing, [p.numpy() for p in model.parameters()]))


def test_threads_keep_their_own_grad_mode_and_results_are_exact():
    expected = []
    _train(150, expected)
    stop = threading.Event()
    evals, seconds, errors, trained = [], [], [], []

    def evaluate():
        try:
            while not stop.is_set():
                with dp.no_grad():
                    z = dp.tensor(np.ones((4, 4))) @ dp.tensor(np.ones((4, 4)))
                    evals.append(z.requires_grad)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    def second_derivatives():
        try:
            while not stop.is_set():
                g2 = dp.grad(dp.grad(lambda v: (v ** 3).sum()))(np.array([2.0]))
                seconds.append(float(g2.data[0]))
        except Exception as e:  # pragma: no cover
            errors.append(e)

    threads = [threading.Thread(target=evaluate), threading.Thread(target=second_derivatives)]
    for t in threads:
        t.start()
    try:
        _train(150, trained)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors
    assert trained[0][0] == 0  # no step lost a gradient
    for a, b in zip(trained[0][1], expected[0][1]):
        np.testing.assert_array_equal(a, b)
    assert seconds and all(s == 12.0 for s in seconds)
    assert evals and not any(evals)
    assert dp.is_grad_enabled()


def test_a_new_thread_starts_with_grad_on_and_anomaly_off():
    seen = []
    with dp.no_grad(), dp.detect_anomaly():
        t = threading.Thread(target=lambda: seen.append(
            (dp.is_grad_enabled(), dp.autograd._state.anomaly)))
        t.start()
        t.join()
        assert not dp.is_grad_enabled()
    assert seen == [(True, False)]
    assert dp.is_grad_enabled() and not dp.autograd._state.anomaly


def test_anomaly_mode_is_restored_when_blocks_in_threads_interleave():
    barrier = threading.Barrier(2)

    def work():
        with dp.detect_anomaly():
            barrier.wait()
            barrier.wait()

    t = threading.Thread(target=work)
    t.start()
    barrier.wait()
    assert not dp.autograd._state.anomaly  # another thread's block does not leak into this one
    with dp.detect_anomaly():
        barrier.wait()
    t.join()
    assert not dp.autograd._state.anomaly


def test_no_grad_decorates_generator_functions():
    x = t64([1.0, 2.0])

    @dp.no_grad()
    def gen():
        for _ in range(2):
            yield x * 2, dp.is_grad_enabled()

    outs = list(gen())
    assert all(not y.requires_grad and not mode for y, mode in outs)
    assert dp.is_grad_enabled()
    g = gen()
    y, mode = next(g)
    assert dp.is_grad_enabled() and not mode  # between resumes the caller's mode holds
    assert (x * 2).requires_grad
    g.close()

    @dp.enable_grad()
    def inside():
        yield (x * 2).requires_grad

    with dp.no_grad():
        assert list(inside()) == [True]


def test_an_output_that_is_not_a_view_of_a_tensor_may_change_in_place():
    # cross_entropy(reduction="none") returns an array that NumPy made as a view of its own
    # temporary: it is no other tensor's memory, so a recorded in-place change is fine
    x = t64([[1.0, 2.0, 0.5], [0.1, 0.2, 0.3]])
    loss = dp.nn.functional.cross_entropy(x, [0, 2], reduction="none")
    loss *= 2.0
    loss.sum().backward()
    p = np.exp(x.data) / np.exp(x.data).sum(1, keepdims=True)
    np.testing.assert_allclose(x.grad.data, 2 * (p - np.eye(3)[[0, 2]]))
