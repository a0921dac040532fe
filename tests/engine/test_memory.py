"""Array recycling (deltaprop.memory) rests on ownership the engine knows by construction, never on
reference counts: arrays the library handed out, and arrays the user still references, keep
their values; recycling changes no number; DELTAPROP_RECYCLE=0 turns it off; free lists are
per thread."""
import threading

import numpy as np

import deltaprop as dp
from deltaprop import memory
from deltaprop.nn import functional as F


def _cnn():
    dp.manual_seed(0)
    return dp.nn.Sequential(dp.nn.Conv2d(1, 16, 3, padding=1), dp.nn.ReLU(), dp.nn.MaxPool2d(2),
                            dp.nn.Flatten(), dp.nn.Linear(256, 10))


def test_take_returns_what_was_given_and_never_a_view():
    if not memory.enabled():
        return
    memory.clear()
    a = np.ones((256, 256), np.float32)       # 256 KB
    memory.give(a)
    assert memory.take((256, 256), np.float32) is a
    v = np.ones((256, 512), np.float32)[:, :256]
    memory.give(v)                            # a view is never kept
    assert memory.take((256, 256), np.float32) is not v
    small = np.ones(4)
    memory.give(small)                        # small arrays are left to NumPy and malloc
    assert memory.take((4,), np.float64) is not small
    memory.clear()


def test_a_leased_array_comes_back_only_when_it_and_all_its_views_are_gone():
    """lease: an op's output returns to the free lists when nothing refers to it any more (a weak
    reference tells); a view of a view (NumPy shortens chains of bases) still holds it."""
    if not memory.enabled():
        return
    memory.clear()
    a = memory.lease((256, 256), np.float32)
    a[...] = 7
    assert type(a) is np.ndarray and a.flags.c_contiguous and a.flags.writeable
    memory.give(a)                            # never given back by hand: ignored
    v = a[:, 1:].T[::2]                       # a view of views of it
    del a
    assert not np.shares_memory(memory.take((256, 256), np.float32), v)
    assert (v == 7).all()
    ptr = v.__array_interface__["data"][0] - 4
    del v
    back = memory.take((256, 256), np.float32)  # now its memory is free again
    assert back.__array_interface__["data"][0] == ptr
    memory.clear()


def test_leased_outputs_keep_a_training_step_off_fresh_memory():
    """Each step's outputs return to the free lists, so the next step's gradients do not need
    fresh (page-faulting) memory: after the first steps, the same arrays serve every step."""
    if not memory.enabled():
        return
    memory.clear()
    dp.manual_seed(0)  # (the layers whose outputs are leased)
    model = dp.nn.Sequential(dp.nn.Conv2d(1, 16, 3, padding=1), dp.nn.MaxPool2d(2), dp.nn.Flatten(),
                             dp.nn.Linear(256, 10))
    x = dp.tensor(np.random.default_rng(0).standard_normal((64, 1, 8, 8)).astype(np.float32))
    seen, counts = {}, []
    for _ in range(8):
        F.cross_entropy(model(x), np.zeros(64, np.intp)).backward()
        for stack in memory._local.free.values():
            seen.update((id(a), a) for a in stack)  # (kept alive here: an id is never reused)
        counts.append(len(seen))
    assert counts[-1] == counts[3], counts


def test_the_switch_turns_recycling_off():
    was = memory.enabled()
    try:
        memory.set_enabled(False)
        a = np.ones((256, 256), np.float32)
        memory.give(a)
        assert memory.take((256, 256), np.float32) is not a
    finally:
        memory.set_enabled(was)


def test_free_lists_are_per_thread():
    if not memory.enabled():
        return
    memory.clear()
    a = np.ones((256, 256), np.float32)
    memory.give(a)
    got = []
    t = threading.Thread(target=lambda: got.append(memory.take((256, 256), np.float32)))
    t.start()
    t.join()
    assert got[0] is not a                    # another thread never receives this thread's array
    assert memory.take((256, 256), np.float32) is a
    memory.clear()


def test_no_reference_counts_anywhere_in_the_library():
    import pathlib
    src = pathlib.Path(dp.__file__).parent
    for f in src.rglob("*.py"):
        assert "getrefcount" not in f.read_text(), f


def test_training_steps_never_overwrite_what_the_user_holds():
    rng = np.random.default_rng(0)
    x = dp.tensor(rng.random((64, 1, 8, 8)).astype(np.float32))
    y = rng.integers(0, 10, 64)
    model = _cnn()
    opt = dp.optim.SGD(model.parameters(), lr=0.1)
    held, snapshots, grads = [], [], []
    for step in range(4):
        opt.zero_grad()
        h = model[1](model[0](x))             # an activation the user keeps
        seen = []
        h.register_hook(lambda g: seen.append(g))
        loss = F.cross_entropy(model[4](model[3](model[2](h))), y)
        loss.backward()
        held.append((h, seen[0], model[0].weight.grad, np.asarray(model[0].weight.grad)))
        snapshots.append((h.numpy(), seen[0].numpy(), model[0].weight.grad.numpy()))
        opt.step()
    for (h, hook_arg, grad_t, grad_arr), (h0, hook0, g0) in zip(held, snapshots):
        np.testing.assert_array_equal(h.data, h0)
        np.testing.assert_array_equal(hook_arg.data, hook0)
        np.testing.assert_array_equal(grad_t.data, g0)
        np.testing.assert_array_equal(grad_arr, g0)


def test_recycling_gives_the_same_numbers_as_fresh_arrays():
    rng = np.random.default_rng(1)
    x = dp.tensor(rng.random((64, 1, 8, 8)).astype(np.float32))
    y = rng.integers(0, 10, 64)
    results = []
    for recycle in (False, True):
        model = _cnn()
        opt = dp.optim.SGD(model.parameters(), lr=0.1)
        was = memory.enabled()
        memory.set_enabled(recycle)
        try:
            for _ in range(5):
                opt.zero_grad()
                F.cross_entropy(model(x), y).backward()
                opt.step()
        finally:
            memory.set_enabled(was)
        results.append([p.numpy() for p in model.parameters()])
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_retain_graph_backward_twice_gives_the_same_gradients():
    # buffers are recycled and gradients overwritten in place only where nothing else sees them:
    # a retained graph must give identical gradients on every backward
    rng = np.random.default_rng(2)
    x = dp.tensor(rng.random((64, 1, 8, 8)).astype(np.float32))
    y = rng.integers(0, 10, 64)
    model = _cnn()
    loss = F.cross_entropy(model(x), y)
    loss.backward(retain_graph=True)
    first = [p.grad.numpy() for p in model.parameters()]
    model.zero_grad()
    loss.backward(retain_graph=True)
    second = [p.grad.numpy() for p in model.parameters()]
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()  # a fresh graph, recycling whatever the others freed
    third = [p.grad.numpy() for p in model.parameters()]
    for a, b, c in zip(first, second, third):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)


import pytest  # noqa: E402


@pytest.mark.parametrize("name", ["tanh", "sigmoid", "leaky_relu", "softplus", "softmax", "log_softmax",
                                  "gelu", "gelu_tanh", "mse_loss"])
def test_large_float32_ops_on_recycled_arrays_match_float64(name):
    """Large float32 inputs take the in-place, recycled-array paths; values and gradients match the
    float64 computation (small paths), over several steps of reuse and with a held output."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((300, 256)) * 2
    t = rng.standard_normal((300, 256))
    f = {"tanh": F.tanh, "sigmoid": F.sigmoid, "softplus": F.softplus,
         "leaky_relu": lambda v: F.leaky_relu(v, 0.1), "softmax": lambda v: F.softmax(v, 1),
         "log_softmax": lambda v: F.log_softmax(v, 1), "gelu": F.gelu,
         "gelu_tanh": lambda v: F.gelu(v, approximate="tanh"),
         "mse_loss": lambda v: F.mse_loss(v, dp.tensor(t.astype(v.dtype)), reduction="none")}[name]
    w = rng.uniform(0.5, 1.5, x.shape)
    ref = dp.tensor(x, requires_grad=True)
    (f(ref) * dp.tensor(w)).sum().backward()
    held = []
    for _ in range(3):  # reuse: the pool hands the same arrays around between steps
        x32 = dp.tensor(x.astype(np.float32), requires_grad=True)
        y = f(x32)
        held.append((y, y.numpy()))
        (y * dp.tensor(w.astype(np.float32))).sum().backward()
        np.testing.assert_allclose(y.data, f(dp.tensor(x)).data, rtol=2e-5, atol=2e-6)
        np.testing.assert_allclose(x32.grad.data, ref.grad.data, rtol=2e-4, atol=2e-5)
    for y, copy in held:  # outputs the user holds are never recycled under them
        np.testing.assert_array_equal(y.data, copy)


def test_mse_loss_twice_through_a_retained_graph_and_second_order():
    x = dp.tensor(np.array([1.0, -2.0, 0.5]), requires_grad=True)
    t = dp.tensor(np.array([0.0, 1.0, 1.0]), requires_grad=True)
    loss = F.mse_loss(x, t)
    loss.backward(retain_graph=True)
    first = x.grad.numpy()
    np.testing.assert_allclose(first, 2 * (x.data - t.data) / 3)
    np.testing.assert_allclose(t.grad.data, -first)
    loss.backward()
    np.testing.assert_allclose(x.grad.data, 2 * first)
    h = dp.hessian(lambda v: F.mse_loss(v, dp.tensor(t.data)))(dp.tensor(x.data))
    np.testing.assert_allclose(h.data, np.eye(3) * 2 / 3, atol=1e-15)


def test_a_function_backward_returning_an_array_its_user_holds_is_never_recycled():
    held = dp.tensor(np.full((200, 200), 3.0))   # 320 KB, returned by the user's backward

    class Const(dp.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 1.0

        @staticmethod
        def backward(ctx, g):
            return held

    x = dp.tensor(np.ones((200, 200)), requires_grad=True)
    for _ in range(3):
        (Const.apply(x * 1.0) * 2.0).exp().sum().backward()  # held flows on through mul
        (x * 2.0).tanh().sum().backward()       # later VJPs take recycled arrays
    np.testing.assert_array_equal(held.data, np.full((200, 200), 3.0))
