"""Tensor.register_post_accumulate_grad_hook (PyTorch's name and semantics) and the end-of-pass
callback (deltaprop.hooks.queue_callback): when they run, what they see, and what they leave alone."""
from __future__ import annotations

import numpy as np
import pytest

import deltaprop as dp
from deltaprop.hooks import queue_callback


def t64(x):
    return dp.tensor(np.asarray(x, np.float64), requires_grad=True)


class Mark(dp.Function):
    """The identity, logging its backward: shows where in the pass a hook ran."""
    log: list = []

    @staticmethod
    def forward(ctx, x):
        return x * 1.0

    @staticmethod
    def backward(ctx, g):
        Mark.log.append("mid")
        return g


def test_hook_runs_when_the_leaf_is_final_before_earlier_layers_backpropagate():
    # loss = sum(tanh(Mark(x @ w1)) @ w2): w2's gradient is final before Mark's backward runs, and
    # w1's only after it. Without dependency counts every leaf would finish at the end of the pass.
    rng = np.random.default_rng(0)
    x, w1, w2 = t64(rng.normal(size=(4, 3))), t64(rng.normal(size=(3, 5))), t64(rng.normal(size=(5, 2)))
    Mark.log = log = []
    seen = {}

    def hook(name):
        def fn(t):
            log.append(name)
            seen[name] = t.grad.numpy()
        return fn

    w1.register_post_accumulate_grad_hook(hook("w1"))
    w2.register_post_accumulate_grad_hook(hook("w2"))
    (Mark.apply(x @ w1).tanh() @ w2).sum().backward()
    assert log.index("w2") < log.index("mid") < log.index("w1")
    # the values the hooks saw are the final gradients: w2.grad = h^T 1, w1.grad = x^T ((1 w2^T) * (1 - h^2))
    h = np.tanh(x.data @ w1.data)
    np.testing.assert_allclose(seen["w2"], h.T @ np.ones((4, 2)), rtol=1e-14, atol=0)
    np.testing.assert_allclose(seen["w1"], x.data.T @ ((np.ones((4, 2)) @ w2.data.T) * (1 - h ** 2)), rtol=1e-13,
                               atol=1e-15)
    np.testing.assert_array_equal(seen["w1"], w1.grad.numpy())


def test_leaf_used_twice_runs_once_with_the_sum_and_sees_accumulated_grad():
    w = t64([1.0, 2.0])
    calls = []
    w.register_post_accumulate_grad_hook(lambda t: calls.append(t.grad.numpy()))
    ((w * w).sum() + (3 * w).sum()).backward()
    assert len(calls) == 1
    np.testing.assert_array_equal(calls[0], [5.0, 7.0])  # 2w + 3
    (w * 2).sum().backward()  # the hook sees .grad after this pass's gradient was added to it
    assert len(calls) == 2
    np.testing.assert_array_equal(calls[1], [7.0, 9.0])


def test_hook_runs_after_register_hook_and_may_change_grad_in_place():
    w = t64([1.0, -1.0])
    order = []
    w.register_hook(lambda g: order.append("pre") or g * 10)

    def post(t):
        order.append(("post", t.grad.numpy().tolist()))
        with dp.no_grad():
            t.grad *= 0.5

    w.register_post_accumulate_grad_hook(post)
    (w * w).sum().backward()
    assert order == ["pre", ("post", [20.0, -20.0])]
    np.testing.assert_array_equal(w.grad.numpy(), [10.0, -10.0])


def test_remove_and_functional_transforms():
    w = t64([3.0])
    calls = []
    h = w.register_post_accumulate_grad_hook(lambda t: calls.append(1))
    dp.grad(lambda v: (v * v).sum())(w)  # no .grad is accumulated: no post-accumulate hook either
    assert calls == [] and w.grad is None
    (w * w).sum().backward()
    assert calls == [1]
    h.remove()
    (w * w).sum().backward()
    assert calls == [1]
    np.testing.assert_array_equal(w.grad.numpy(), [12.0])


def test_only_leaves_that_require_grad():
    w = t64([1.0])
    y = w * 2
    with pytest.raises(RuntimeError, match="register_post_accumulate_grad_hook: only leaf tensors"):
        y.register_post_accumulate_grad_hook(lambda t: None)
    with pytest.raises(RuntimeError, match="register_post_accumulate_grad_hook"):
        dp.tensor([1.0]).register_post_accumulate_grad_hook(lambda t: None)


def test_unreached_leaf_and_leaf_root():
    a, b = t64([1.0]), t64([2.0])
    calls = []
    a.register_post_accumulate_grad_hook(lambda t: calls.append("a"))
    b.register_post_accumulate_grad_hook(lambda t: calls.append("b"))
    (b * 3).sum().backward()  # a is not in this graph
    assert calls == ["b"]
    a.backward()  # a root that is itself a leaf
    assert calls == ["b", "a"]
    np.testing.assert_array_equal(a.grad.numpy(), [1.0])


def test_queue_callback_runs_after_every_leaf_is_finished():
    w1, w2 = t64([1.0, 2.0]), t64([3.0])
    events = []

    def post(t):
        events.append("post")
        if len(events) == 1:
            queue_callback(lambda: events.append(("end", w1.grad.numpy().tolist(), w2.grad.numpy().tolist())))

    w1.register_post_accumulate_grad_hook(post)
    w2.register_post_accumulate_grad_hook(post)
    ((w1 * w2).sum() * 2).backward()
    assert events == ["post", "post", ("end", [6.0, 6.0], [6.0])]
    with pytest.raises(RuntimeError, match="queue_callback: there is no backward pass"):
        queue_callback(lambda: None)


def _spy_edge_counts(monkeypatch) -> list:
    """Record each pass's dependency count (hooks.count_edges) while still running it; hooked
    tensors that other tests keep alive are set aside for the test."""
    import weakref
    import deltaprop.hooks as hooks
    monkeypatch.setattr(hooks, "_hooked", weakref.WeakValueDictionary())
    calls = []
    real = hooks.count_edges
    monkeypatch.setattr(hooks, "count_edges", lambda roots: calls.append(len(roots)) or real(roots))
    return calls


def test_dependency_counts_only_while_a_hook_is_registered(monkeypatch):
    # A removed hook, or one whose tensor was collected, no longer makes every later pass count the
    # graph's edges (it used to: the flag stayed on for the rest of the process).
    import gc
    from deltaprop.hooks import dependencies
    calls = _spy_edge_counts(monkeypatch)
    w = t64([1.0, 2.0])
    handle = w.register_post_accumulate_grad_hook(lambda t: None)
    (w * 3).sum().backward()
    assert calls == [1]
    handle.remove()
    handle.remove()  # (a second remove does nothing)
    assert dependencies([(w * 3).sum()]) is None
    (w * 3).sum().backward()
    assert calls == [1]
    np.testing.assert_array_equal(w.grad.numpy(), [6.0, 6.0])
    again = w.register_post_accumulate_grad_hook(lambda t: None)
    handle.remove()  # (the old handle, removed again, leaves the new hook counted)
    (w * 3).sum().backward()
    assert calls == [1, 1]
    again.remove()

    v = t64([1.0])
    v.register_post_accumulate_grad_hook(lambda t: None)
    v.register_post_accumulate_grad_hook(lambda t: None)
    (w * 3).sum().backward()
    assert calls == [1, 1, 1]
    del v
    gc.collect()
    assert dependencies([(w * 3).sum()]) is None
    (w * 3).sum().backward()
    assert calls == [1, 1, 1]


def test_several_hooks_on_one_tensor_all_run_even_with_their_handles_dropped():
    # Two post-accumulate hooks on a multi-element leaf (registering the second one raised), and
    # gradient hooks whose handles are dropped at once (a freed handle's id keyed the next hook,
    # which then replaced the first).
    w = t64([1.0, 2.0])
    ran = []
    w.register_post_accumulate_grad_hook(lambda t: ran.append("post1"))
    w.register_post_accumulate_grad_hook(lambda t: ran.append("post2"))
    w.register_hook(lambda g: ran.append("hook1") or g * 2)
    w.register_hook(lambda g: ran.append("hook2") or g * 5)
    (w * 3).sum().backward()
    assert ran == ["hook1", "hook2", "post1", "post2"]
    np.testing.assert_array_equal(w.grad.numpy(), [30.0, 30.0])
