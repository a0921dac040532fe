"""The public graph API (deltaprop.graph): walk, producer, node views, VJP/JVP of a node, and a
backward that writes no .grad and fires no hook."""
import numpy as np
import pytest

import deltaprop as dp
from deltaprop import graph


def _mlp():
    rng = np.random.default_rng(0)
    x = dp.tensor(rng.normal(size=(4, 3)))
    w1 = dp.tensor(rng.normal(size=(5, 3)), requires_grad=True)
    b1 = dp.tensor(rng.normal(size=5), requires_grad=True)
    w2 = dp.tensor(rng.normal(size=(2, 5)), requires_grad=True)
    net1 = dp.nn.functional.linear(x, w1, b1)
    h = net1.tanh()
    net2 = h @ w2.T
    loss = (net2 ** 2).sum()
    return x, (w1, b1, w2), net1, h, net2, loss


def test_walk_lists_producers_before_consumers_with_their_inputs():
    x, (w1, b1, w2), net1, h, net2, loss = _mlp()
    nodes = graph.walk(loss)
    assert [n.op for n in nodes] == ["linear", "tanh", "transpose", "matmul", "pow", "sum"]
    assert [n.order for n in nodes] == sorted(n.order for n in nodes)
    lin = nodes[0]
    assert lin == graph.producer(net1) and graph.producer(w1) is None
    ins = lin.inputs
    assert ins[0].tensor is x and ins[0].node is None and not ins[0].requires_grad and ins[0].leaf is None
    assert ins[1].tensor is w1 and ins[1].leaf is w1 and ins[2].leaf is b1
    np.testing.assert_array_equal(lin.output, net1.numpy())
    mm = nodes[3]
    assert mm.inputs[0].node == nodes[1] and mm.inputs[1].node == nodes[2]
    assert graph.walk(w1) == [] and graph.walk(x) == []


def test_node_vjp_is_the_backward_pass_rule():
    x, params, net1, h, net2, loss = _mlp()
    (dnet1,) = graph.grad(loss, [net1], retain_graph=True)
    lin = graph.producer(net1)
    gx, gw, gb = lin.vjp(dnet1)
    assert gx is None  # x needs no gradient
    loss.backward()
    np.testing.assert_allclose(gw, params[0].grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(gb, params[1].grad.numpy(), rtol=1e-12)  # summed over the batch to (5,)
    assert gb.shape == (5,)


def test_node_jvp_is_forward_mode():
    x = dp.tensor([0.3, -1.2], requires_grad=True)
    y = x.sin()
    node = graph.producer(y)
    np.testing.assert_allclose(node.jvp([np.array([1.0, 2.0])]), np.cos([0.3, -1.2]) * [1, 2], rtol=1e-6)


def test_grad_writes_no_grad_and_fires_no_hook():
    x, (w1, b1, w2), net1, h, net2, loss = _mlp()
    fired = []
    w1.register_hook(lambda g: fired.append("w1"))
    net1.register_hook(lambda g: fired.append("net1"))
    w2.register_post_accumulate_grad_hook(lambda t: fired.append("post"))
    gw1, gnet1, gx = graph.grad(loss, [w1, net1, w2], retain_graph=True)
    assert fired == [] and w1.grad is None and w2.grad is None
    assert gw1.shape == (5, 3) and gnet1.shape == (4, 5)
    ref = dp.grad(lambda w: (((dp.nn.functional.linear(x, w, b1).tanh()) @ w2.T) ** 2).sum())(w1.detach())
    np.testing.assert_allclose(gw1.numpy(), ref.numpy(), rtol=1e-10)
    # the delta of the first layer: dL/dnet1 = (dL/dh) * (1 - h^2)
    dh = (2 * net2.numpy()) @ w2.numpy()
    np.testing.assert_allclose(gnet1.numpy(), dh * (1 - h.numpy() ** 2), rtol=1e-10)
    loss.backward()
    assert fired.count("w1") == 1 and "post" in fired


def test_grad_create_graph_gives_differentiable_gradients():
    x = dp.tensor([1.0, 2.0], requires_grad=True)
    y = (x ** 3).sum()
    (g,) = graph.grad(y, [x], create_graph=True)
    (h,) = graph.grad(g.sum(), [x])
    np.testing.assert_allclose(h.numpy(), 6 * np.array([1.0, 2.0]))


def test_graph_is_bound_to_what_each_op_read():
    x = dp.tensor([1., 2., 3.], requires_grad=True)
    h = x * 1.0
    y = h * 2.0
    first = graph.producer(h)
    h *= x
    assert graph.producer(y).inputs[0].node == first  # y's op read the old h
    assert graph.producer(h) != first and graph.producer(h).inputs[0].node == first
    assert [n.op for n in graph.walk(y)] == ["mul", "mul"]


def test_freed_graph_and_bad_grad_outputs_say_so():
    x = dp.tensor([1., 2.], requires_grad=True)
    y = (x * x).sum()
    node = graph.producer(y)
    y.backward()
    assert node.freed
    with pytest.raises(RuntimeError, match="freed"):
        node.inputs
    z = x * 2
    with pytest.raises(RuntimeError, match="scalar outputs"):
        graph.grad(z, [x])
    with pytest.raises(ValueError, match=r"\(3,\).*\(2,\)"):
        graph.grad(z, [x], grad_outputs=np.ones(3))
