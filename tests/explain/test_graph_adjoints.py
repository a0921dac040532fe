"""Graph drawings like micrograd's: every node's value and adjoint from the drawing's own
backward pass (no .grad, no hook, nothing freed); chain notation; rich display in notebooks."""
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest

import deltaprop as dp


def labels(src):
    return dict(re.findall(r'^\s*(n\d+) \[label="(.*?)"', src, re.M))


def field(label, name):
    m = re.search(rf"\\n{name} ([^\\]+)", label)
    return None if m is None else m.group(1)


def test_every_node_shows_value_and_adjoint_and_nothing_is_touched():
    x = dp.tensor(np.float64(0.8), requires_grad=True)
    calls = []
    x.register_hook(lambda g: calls.append(g))
    a = x * x            # parallel edges: x enters mul twice
    b = dp.sin(x)
    y = dp.exp(a + b)
    g = dp.explain.graph(y, names={"x": x})
    assert x.grad is None and calls == []
    src = g.source
    lab = labels(src)
    # the adjoint arriving at each node, checked by hand: y = exp(u), u = a + b
    u = 0.8 ** 2 + np.sin(0.8)
    dy_du = np.exp(u)
    expect = {"exp": 1.0, "add": dy_du, "mul": dy_du, "sin": dy_du, "x": dy_du * (2 * 0.8 + np.cos(0.8))}
    for nid, text in lab.items():
        title = text.split("\\n")[0]
        assert field(text, "value") is not None, text
        assert float(field(text, "adjoint")) == pytest.approx(expect[title], rel=1e-8), text
    ids = {text.split("\\n")[0]: nid for nid, text in lab.items()}
    assert src.count(f"{ids['x']} -> {ids['mul']};") == 2
    # the drawing did not free the graph: a normal backward still works and gives the same number
    y.backward()
    assert float(x.grad) == pytest.approx(expect["x"], rel=1e-12)
    assert len(calls) == 1
    assert "grad " in labels(g.source)[ids["x"]]


def test_after_backward_with_retain_graph_and_the_message_after_a_plain_backward():
    W = dp.tensor(np.array([[0.5, -1.0], [2.0, 0.25]]), requires_grad=True)
    x = dp.tensor(np.array([1.0, 2.0]))
    loss = dp.tanh(W @ x).sum()
    loss.backward(retain_graph=True)
    src = dp.explain.graph(loss, names={"W": W}).source
    wl = [t for t in labels(src).values() if t.startswith("W\\n")][0]
    assert "adjoint [" in wl and "grad [" in wl
    t = np.tanh(np.array([[0.5, -1.0], [2.0, 0.25]]) @ np.array([1.0, 2.0]))
    expected = np.outer(1 - t ** 2, [1.0, 2.0])
    np.testing.assert_allclose(np.asarray(W.grad), expected, rtol=1e-12)
    shown = [float(v) for v in field(wl, "adjoint").strip("[]").split(",")]
    np.testing.assert_allclose(shown, expected.ravel(), rtol=1e-6)
    loss2 = dp.tanh(W @ x).sum()
    loss2.backward()
    with pytest.raises(RuntimeError, match=r"retain_graph=True"):
        dp.explain.graph(loss2)


def test_chain_notation_and_singular_points():
    x = dp.tensor(np.float64(0.7), requires_grad=True)
    c = dp.explain.chain(x * x + dp.sin(x), x)
    s = str(c)
    assert "\u2202v1/\u2202x (operand 1) = x = 0.7" in s and "\u2202v1/\u2202x (operand 2) = x = 0.7" in s
    assert "path 1: x -(operand 1)-> v1 -> y" in s and "path 2: x -(operand 2)-> v1 -> y" in s
    assert "dy/dx = dy/dv1 × \u2202v1/\u2202x (operand 1) + dy/dv1 × \u2202v1/\u2202x (operand 2)" in s
    assert "dy/dy × \u2202y/\u2202v1" in s      # totals d, locals partial: never 'dy/dy x dy/dv2'
    assert c.derivative == pytest.approx(2 * 0.7 + np.cos(0.7), rel=1e-12)
    p = str(c.paths())
    assert "path 3" in p and "forward pass" not in p
    z = dp.tensor(np.float64(0.0), requires_grad=True)
    with np.errstate(all="ignore"):
        lz = dp.log(z)           # (the forward's own warning is NumPy's, outside the explanation)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = str(dp.explain.chain(lz, z))
    assert "singular point" in s


def run_chain(*args):
    return subprocess.run([sys.executable, "-W", "default", "-m", "deltaprop", "explain", "chain", *args],
                          capture_output=True, text=True, timeout=120)


def test_cli_chain_expression_as_typed_caret_and_no_numpy_warning():
    r = run_chain("2*pi*x + 1/x", "--at", "0.5")
    assert r.returncode == 0 and r.stdout.startswith("y = 2*pi*x + 1/x at x = 0.5")
    r = run_chain("x^2", "--at", "1")
    assert r.returncode == 2 and "use" not in r.stdout and "write powers with **" in r.stderr
    for expr in ("log(x)", "1/x", "sqrt(x)"):
        r = run_chain(expr, "--at", "0")
        assert r.returncode == 0 and "singular point" in r.stdout, (expr, r.stdout, r.stderr)
        assert "Warning" not in r.stderr and r.stderr == "", r.stderr


def test_rich_display_for_notebooks():
    x = dp.tensor(np.float64(1.0), requires_grad=True)
    c = dp.explain.chain(dp.exp(dp.sin(x ** 2)), x)
    h = c._repr_html_()
    assert h.startswith("<pre") and "exp(sin(x ** 2))" in h
    assert c._repr_markdown_().startswith("```text")
    rows = dp.explain.modes([1, 2])
    assert isinstance(rows, list) and len(rows) == 4 and isinstance(rows[0], dp.explain.ModeRow)
    assert "<table>" in rows._repr_html_() and "VJP passes" in str(rows)
    tr = dp.explain.trace(dp.explain.mazur_model(), *dp.data.mazur(np.float64), "sse")
    assert "<table>" in tr._repr_html_()
    g = dp.explain.graph(dp.exp(x), names={"x": x})
    assert "<svg" in g._repr_html_() or "<pre" in g._repr_html_()
