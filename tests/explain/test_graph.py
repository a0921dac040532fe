"""dp.explain.graph: DOT text, grads after backward, SVG when `dot` exists, deep graphs."""
import re
import shutil

import numpy as np
import pytest

import deltaprop as dp


def nodes(source):
    return re.findall(r'^\s*(n\d+) \[label="(.*?)", (shape=\w+)', source, re.M)


def edges(source):
    return re.findall(r"^\s*(n\d+) -> (n\d+);", source, re.M)


def test_scalar_graph_labels_and_grads():
    x = dp.tensor(np.float64(1.0), requires_grad=True)
    y = dp.exp(dp.sin(x ** 2))
    g = dp.explain.graph(y, names={"x": x})
    src = g.source
    assert src.startswith("digraph")
    ns = nodes(src)
    labels = [l for _, l, _ in ns]
    assert len(ns) in (4, 5)   # x, pow (its exponent 2 as an input or a parameter), sin, exp
    assert any(l.startswith("x\\n()\\nvalue 1") for l in labels)
    assert any(l.startswith("pow") for l in labels) and ("p=2" in src or "const\\n()\\nvalue 2" in src) and any(l.startswith("sin\\n()\\nvalue 0.841470985") for l in labels)
    assert any(l.startswith("exp\\n()\\nvalue 2.31977682") for l in labels)
    assert len(edges(src)) == len(ns) - 1
    assert "grad" not in src
    y.backward()
    src = g.source
    expected = np.exp(np.sin(1.0)) * np.cos(1.0) * 2
    assert f"grad {'%.9g' % expected}" in src
    assert "peripheries=2" in src   # the root


def test_matrix_graph_with_retained_grad_and_constants():
    W = dp.tensor(np.ones((2, 3)), requires_grad=True)
    x = dp.tensor(np.arange(3.0))
    h = dp.tanh(W @ x)
    h.retain_grad()
    loss = (h * 2).sum()
    g = dp.explain.graph(loss, names={"W": W, "h": h})   # a retained non-leaf shows its .grad when named
    loss.backward()
    src = g.source
    labels = [l for _, l, _ in nodes(src)]
    assert any(l.startswith("W\\n(2, 3)") and "grad" in l for l in labels)
    assert any(l.startswith("tanh h\\n(2,)") and "grad [2, 2]" in l for l in labels)
    unnamed = dp.explain.graph((dp.tanh(W @ x) * 2).sum(), names={"W": W}).source
    assert "tanh\\n(2,)" in unnamed
    assert any(l.startswith("const\\n(3,)") for l in labels)
    assert len(g) == len(labels)


def test_deep_graph_does_not_recurse():
    x = dp.tensor(np.float64(0.5), requires_grad=True)
    y = x
    for _ in range(10000):
        y = y * 1.0001
    g = dp.explain.graph(y)
    src = g.source
    ops = [l for _, l, shape in nodes(src) if shape == "shape=box"]
    assert len(ops) == 10000
    assert len(edges(src)) == len(nodes(src)) - 1


def test_svg_and_repr():
    x = dp.tensor(np.float64(2.0), requires_grad=True)
    g = dp.explain.graph(x * x + 1)
    if shutil.which("dot") is None:
        assert g.svg() is None and g._repr_svg_() is None
        pytest.skip("Graphviz `dot` is not installed: svg() returns None (checked)")
    svg = g.svg()
    assert "<svg" in svg and "mul" in svg
    assert g._repr_svg_() == svg


def test_freed_graph_is_a_clear_error():
    x = dp.tensor(np.float64(2.0), requires_grad=True)
    y = dp.exp(x)
    y.backward()
    with pytest.raises(RuntimeError, match="freed"):
        dp.explain.graph(y)
