"""dp.explain.chain: nodes, local derivatives, adjoints and the sum over paths."""
import math

import numpy as np
import pytest

import deltaprop as dp


def leaf(v):
    return dp.tensor(np.float64(v), requires_grad=True)


def num(text, label):
    """The number after 'label = ' ... on the line: the last %.9g number on the first matching line."""
    for line in text.splitlines():
        if line.strip().startswith(label):
            return float(line.replace("(", " ").replace(")", " ").split()[-1])
    raise AssertionError(f"{label!r} not in\n{text}")


@pytest.mark.parametrize("x0", [-1.3, -0.2, 0.5, 1.0, 2.1])
def test_exp_sin_square_matches_the_analytic_derivative(x0):
    x = leaf(x0)
    y = dp.exp(dp.sin(x ** 2))
    c = dp.explain.chain(y, x)
    expected = math.exp(math.sin(x0 ** 2)) * math.cos(x0 ** 2) * 2 * x0
    assert c.derivative == pytest.approx(expected, rel=1e-12)
    assert float(c.engine) == pytest.approx(expected, rel=1e-12)
    assert [n.name for n in c.nodes] == ["x", "v1", "v2", "y"]
    assert [n.op for n in c.nodes] == ["input", "pow", "sin", "exp"]
    v1, v2, yy = c.nodes[1:]
    assert v1.locals[0][2] == pytest.approx(2 * x0)
    assert v2.locals[0][2] == pytest.approx(math.cos(x0 ** 2))
    assert yy.locals[0][2] == pytest.approx(math.exp(math.sin(x0 ** 2)))
    # adjoints: the error arriving at each node
    assert float(yy.adjoint) == 1.0
    assert float(v2.adjoint) == pytest.approx(math.exp(math.sin(x0 ** 2)))
    assert float(v1.adjoint) == pytest.approx(math.exp(math.sin(x0 ** 2)) * math.cos(x0 ** 2))
    s = str(c)
    assert "y = exp(sin(x ** 2))" in s
    assert "\u2202y/\u2202v2 × \u2202v2/\u2202v1 × \u2202v1/\u2202x" in s
    assert "exp(v2) × cos(v1) × 2*x" in s
    assert ("%.9g" % expected) in s
    assert num(s, "engine") == pytest.approx(expected, rel=1e-8)
    assert x.grad is None   # chain never touches .grad


def test_several_paths_are_summed():
    x0 = 0.7
    x = leaf(x0)
    y = x * x + dp.tanh(x * 3) / (1 + x)
    c = dp.explain.chain(y, x)
    t = math.tanh(3 * x0)
    expected = 2 * x0 + (3 * (1 - t * t) * (1 + x0) - t) / (1 + x0) ** 2
    assert c.n_paths == 4
    assert len(c.path_list) == 4
    assert sum(p.product for p in c.path_list) == pytest.approx(expected, rel=1e-12)
    assert c.derivative == pytest.approx(expected, rel=1e-12)
    assert float(c.nodes[0].adjoint) == pytest.approx(expected, rel=1e-12)
    s = str(c)
    assert s.count("path ") >= 4
    assert ("%.9g" % expected) in s


def test_graph_can_still_be_backpropagated_afterwards():
    x = leaf(1.5)
    y = dp.sigmoid(dp.log(x) * x)
    dp.explain.chain(y, x)
    y.backward()
    s = 1 / (1 + math.exp(-math.log(1.5) * 1.5))
    assert float(x.grad.item()) == pytest.approx(s * (1 - s) * (math.log(1.5) + 1), rel=1e-12)


def test_other_variables_are_constants_and_named():
    x, z = leaf(2.0), leaf(3.0)
    y = x * dp.exp(z) + z
    c = dp.explain.chain(y, x, names={"x": x, "z": z})
    assert c.derivative == pytest.approx(math.exp(3.0))
    assert "exp(z)" in str(c)


def test_no_dependence_and_identity():
    x = leaf(1.0)
    c = dp.explain.chain(x, x)
    assert c.derivative == 1.0
    x2 = leaf(2.0)
    w = leaf(3.0)
    y = w * 2
    c = dp.explain.chain(y, x2)
    assert c.derivative == 0.0
    assert "does not depend" in str(c)


def test_deep_chain_does_not_recurse_and_counts_one_path():
    x = leaf(0.1)
    y = x
    for _ in range(3000):
        y = dp.sin(y)
    c = dp.explain.chain(y, x)
    expected = float(c.engine)
    assert c.n_paths == 1
    assert c.derivative == pytest.approx(expected, rel=1e-9)


def test_path_explosion_is_summarised():
    x = leaf(0.3)
    y = x
    for _ in range(10):   # each y*y doubles the paths: 2**10
        y = y * y
    c = dp.explain.chain(y, x)
    assert c.n_paths == 1024 and c.path_list is None
    assert c.derivative == pytest.approx(1024 * 0.3 ** 1023, rel=1e-9)
    assert "too many to list" in str(c)


def test_errors():
    x = leaf(1.0)
    with pytest.raises(ValueError, match="scalars"):
        dp.explain.chain(dp.stack([x, x]), x)
    with pytest.raises(ValueError, match="requires_grad"):
        dp.explain.chain(dp.tensor(1.0) * 2, dp.tensor(1.0))
    y = dp.exp(x)
    y.backward()
    with pytest.raises(RuntimeError, match="freed"):
        dp.explain.chain(y, x)
