"""Forward mode step by step: tangents carried from dx/dx = 1 through the expression equal the
engine's forward mode (dp.jvp) node by node; `explain modes` on the user's expression and on a
network counts the passes each mode needs; products are written with ×, never an ASCII x."""
import json
import math
import re
import subprocess
import sys

import numpy as np
import pytest

import deltaprop as dp


def cli(*args):
    return subprocess.run([sys.executable, "-m", "deltaprop", "explain", *args], capture_output=True, text=True,
                          timeout=300)


def jvp(f, x0):
    _, t = dp.jvp(f, (dp.tensor(np.float64(x0)),), (dp.tensor(np.float64(1.0)),))
    return float(np.asarray(t.data if hasattr(t, "data") else t))


@pytest.mark.parametrize("x0", [-1.3, 0.4, 1.0, 2.1])
def test_tangents_equal_dp_jvp_node_by_node(x0):
    x = dp.tensor(np.float64(x0), requires_grad=True)
    c = dp.explain.chain(dp.exp(dp.sin(x ** 2)), x)
    tan = c.tangents
    assert list(tan) == ["x", "v1", "v2", "y"] and tan["x"] == 1.0
    assert tan["v1"] == pytest.approx(jvp(lambda v: v ** 2, x0), rel=1e-13)
    assert tan["v2"] == pytest.approx(jvp(lambda v: dp.sin(v ** 2), x0), rel=1e-13)
    assert tan["y"] == pytest.approx(jvp(lambda v: dp.exp(dp.sin(v ** 2)), x0), rel=1e-13)
    assert tan["y"] == pytest.approx(math.exp(math.sin(x0 ** 2)) * math.cos(x0 ** 2) * 2 * x0, rel=1e-12)
    text = str(c.forward())
    assert "from dx/dx = 1" in text and "dv1/dx = \u2202v1/\u2202x × dx/dx" in text
    assert "= cos(v1) × dv1/dx" in text
    for name in ("v1", "v2", "y"):
        assert ("%.9g" % tan[name]) in text
    # beside the reverse sweep of the same expression, and both results
    assert "reverse mode, the same expression: one sweep back from dy/dy = 1" in text
    assert f"dy/dv1 = {'%.9g' % float(c.nodes[1].adjoint)}" in text
    assert f"forward mode: dy/dx = {'%.9g' % tan['y']}" in text and f"reverse mode: dy/dx = {'%.9g' % tan['y']}" in text


def test_an_input_used_twice_sums_both_tangents():
    x = dp.tensor(np.float64(0.7), requires_grad=True)
    c = dp.explain.chain(x * x + dp.sin(x), x)
    assert c.tangents["v1"] == pytest.approx(1.4) and c.tangents["y"] == pytest.approx(1.4 + math.cos(0.7))
    assert "= 0.7 × 1 + 0.7 × 1 = 1.4" in str(c.forward())


def test_cli_chain_forward_mode_ends_with_dp_jvp():
    r = cli("chain", "exp(sin(x**2))", "--at", "1.0", "--mode", "forward")
    assert r.returncode == 0, r.stderr
    want = "%.9g" % (math.exp(math.sin(1.0)) * math.cos(1.0) * 2)
    assert r.stdout.rstrip().endswith(f"engine (forward mode, dp.jvp with dx/dx = 1): dy/dx = {want}")
    assert "dx/dx = 1" in r.stdout and "reverse mode, the same expression" in r.stdout
    r = cli("chain", "x*y + sin(x)", "--at", "x=1,y=2", "--mode", "forward", "--wrt", "y")
    assert r.returncode == 0 and r.stdout.rstrip().endswith("df/dy = 1")
    assert cli("chain", "x", "--mode", "sideways").returncode == 2


def test_chain_writes_products_with_times_never_an_ascii_x():
    r = cli("chain", "x * exp(x)", "--at", "0.5")
    assert r.returncode == 0, r.stderr
    assert "= x × exp(x)" in r.stdout and "= 0.5 × 1.64872127 = 0.824360635" in r.stdout
    assert "x x exp(x)" not in r.stdout and not re.search(r"[\d)] x [\d(]", r.stdout)


def test_modes_on_the_users_expression():
    r = cli("modes", "x*y + sin(x*z)", "--at", "x=1,y=2,z=3", "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout.strip().splitlines()[-1])
    row = res["rows"][0]
    assert (row["n"], row["m"], row["jvp_passes"], row["vjp_passes"], row["agree"]) == (3, 1, 3, 1, True)
    np.testing.assert_allclose(res["gradient"], [2 + 3 * math.cos(3), 1, math.cos(3)], rtol=1e-12)
    assert "forward mode: 3 JVP passes" in r.stdout and "reverse mode: 1 VJP pass " in r.stdout
    assert "3 inputs and 1 output: reverse mode needs fewer passes" in r.stdout
    r = cli("modes", "exp(sin(x**2))", "--at", "1.0")
    assert r.returncode == 0 and f"df/dx = {'%.9g' % (math.exp(math.sin(1)) * math.cos(1) * 2)}" in r.stdout
    assert "both modes need the same number of passes" in r.stdout


def test_modes_on_a_network():
    r = cli("modes", "--dataset", "spirals", "--hidden", "8,8", "--json")
    assert r.returncode == 0, r.stderr
    row = json.loads(r.stdout.strip().splitlines()[-1])["rows"][0]
    assert (row["n"], row["m"], row["jvp_passes"], row["vjp_passes"], row["agree"]) == (2, 3, 2, 3, True)
    assert "2-8-8-3 network" in r.stdout and "do3/di2 = " in r.stdout
    assert "by the 123 weights and biases: forward mode would need 123 passes, reverse mode 1" in r.stdout
    assert cli("modes", "x", "--dataset", "xor").returncode == 2
