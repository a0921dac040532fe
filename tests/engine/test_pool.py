"""The engine recycles large freed arrays (deltaprop._pool) only when nothing else holds them:
arrays the library handed out, and arrays the user still references, keep their values."""
import numpy as np

import deltaprop as dp
from deltaprop import _pool
from deltaprop.nn import functional as F


def _cnn():
    dp.manual_seed(0)
    return dp.nn.Sequential(dp.nn.Conv2d(1, 16, 3, padding=1), dp.nn.ReLU(), dp.nn.MaxPool2d(2),
                            dp.nn.Flatten(), dp.nn.Linear(256, 10))


def test_give_refuses_held_arrays_and_views():
    _pool.clear()
    a = np.ones((256, 256), np.float32)       # 256 KB
    keep = a                                  # a second reference: must not be recycled
    _pool.give(a, 1)
    assert _pool.take((256, 256), np.float32) is not a
    del keep
    v = a[:128]                               # a view keeps a reference to a
    _pool.give(a, 1)
    assert _pool.take((256, 256), np.float32) is not a
    _pool.give(v, 1)                          # and a view is never recycled itself
    assert _pool.take((128, 256), np.float32) is not v
    del v
    _pool.give(a, 1)                          # now only this frame holds it
    assert _pool.take((256, 256), np.float32) is a
    _pool.clear()


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
        saved = _pool._MAX_BYTES
        _pool._MAX_BYTES = saved if recycle else 0  # 0: the cache never holds anything
        _pool.clear()
        try:
            for _ in range(5):
                opt.zero_grad()
                F.cross_entropy(model(x), y).backward()
                opt.step()
        finally:
            _pool._MAX_BYTES = saved
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
