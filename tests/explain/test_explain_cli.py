"""`deltaprop explain`: mazur, chain, graph, modes, the report, and usage errors (exit 2, no traceback)."""
import json
import math
import os
import time

import numpy as np
import pytest

import deltaprop as dp
from deltaprop.explain.cli import main
from deltaprop.explain.record import report_data, report_loss, report_model


def run(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_mazur(capsys):
    rc, out, err = run(capsys, "mazur", "--updates", "10000")
    assert rc == 0
    for fig in ("0.298371109", "0.0821670406", "0.35891648", "0.149780716", "0.291027774", "3.51018778e-05",
                "0.0159136204", "0.984064274"):
        assert fig in out
    assert "the post prints 0.291027924" in out


@pytest.mark.parametrize("x0", [-1.0, 0.3, 1.0, 1.7])
def test_chain_matches_the_analytic_derivative(capsys, x0):
    rc, out, err = run(capsys, "chain", "exp(sin(x**2))", "--at", str(x0))
    assert rc == 0, err
    expected = math.exp(math.sin(x0 ** 2)) * math.cos(x0 ** 2) * 2 * x0
    last = out.strip().splitlines()[-1]
    assert last.startswith("engine") and float(last.split()[-1]) == pytest.approx(expected, rel=1e-8)
    assert ("%.9g" % expected) in out
    assert "\u2202y/\u2202v2 × \u2202v2/\u2202v1 × \u2202v1/\u2202x" in out


def test_chain_several_variables(capsys):
    rc, out, err = run(capsys, "chain", "x * y + sin(y)", "--at", "x=1,y=2")
    assert rc == 0
    assert "df/dx = 2" in out and ("df/dy = %.9g" % (1 + math.cos(2))) in out
    rc, out, err = run(capsys, "chain", "x * y", "--at", "x=1,y=2", "--wrt", "y")
    assert rc == 0 and "df/dy = 1" in out and "df/dx" not in out


@pytest.mark.parametrize("expr, pos", [("__import__('os')", 1), ("x.__class__", 2), ("exp(", 5), ("2 +* x", 4),
                                       ("open('/etc/passwd').read()", 1), ("x; rm -rf /", 2)])
def test_chain_rejects_bad_expressions_with_the_position(capsys, expr, pos):
    rc, out, err = run(capsys, "chain", expr, "--at", "1.0")
    assert rc == 2
    assert f"position {pos}" in err
    assert "Traceback" not in err and out == ""


def test_usage_errors(capsys):
    assert run(capsys, "chain", "x", "--at", "abc")[0] == 2
    assert run(capsys, "chain", "x", "--at", "__x=1")[0] == 2
    rc, out, err = run(capsys, "--dataset", "nope")
    assert rc == 2 and "xor" in err and "spirals" in err
    rc, out, err = run(capsys, "frobnicate")
    assert rc == 2 and "mazur" in err
    assert run(capsys, "--hidden", "4,x")[0] == 2
    assert run(capsys, "modes", "--sizes", "0")[0] == 2
    rc, out, err = run(capsys)
    assert rc == 0 and "usage" in out


def test_graph(capsys):
    rc, out, err = run(capsys, "graph", "x * exp(x)", "--at", "0.5")
    assert rc == 0 and out.startswith("digraph")
    assert ("grad %.9g" % (math.exp(0.5) * 1.5)) in out


def test_modes(capsys):
    rc, out, err = run(capsys, "modes", "--sizes", "1,10,100", "--repeat", "1", "--json")
    assert rc == 0
    rows = json.loads(out.strip().splitlines()[-1])["rows"]
    assert len(rows) == 9
    for r in rows:
        assert r["jvp_passes"] == r["n"] and r["vjp_passes"] == r["m"] and r["agree"]


def test_report_is_written_fast_and_small(capsys, tmp_path):
    path = tmp_path / "report.html"
    t0 = time.perf_counter()
    rc, out, err = run(capsys, "--dataset", "xor", "--hidden", "4,4", "--steps", "200", "--html", str(path))
    seconds = time.perf_counter() - t0
    assert rc == 0, err
    assert seconds < 5
    assert path.exists() and os.path.getsize(path) < 2_000_000
    text = path.read_text()
    assert "<script" in text and 'src="http' not in text and "<link" not in text   # self-contained
    assert "wrote" in out


def _page_forward(data, k, i):
    """What the page computes for step k and sample i (report.py's docstring), in NumPy."""
    acts = {"tanh": (np.tanh, lambda o: 1 - o * o),
            "sigmoid": (lambda z: 1 / (1 + np.exp(-z)), lambda o: o * (1 - o)),
            "relu": (lambda z: np.maximum(z, 0), lambda o: (o > 0).astype(float))}
    f, fp = acts[data["activation"]]
    a = np.asarray(data["X"][i], dtype=float)
    nets, outs = [], []
    layers = data["params"][k]
    for l, p in enumerate(layers):
        W, b = np.asarray(p["W"]), np.asarray(p["b"])
        net = W @ a + b
        if l < len(layers) - 1:
            out = f(net)
        elif data["output"] == "sigmoid":
            out = 1 / (1 + np.exp(-net))
        else:
            e = np.exp(net - net.max())
            out = e / e.sum()
        nets.append(net)
        outs.append(out)
        a = out
    y = int(data["y"][i])
    target = np.array([y], float) if data["output"] == "sigmoid" else np.eye(len(outs[-1]))[y]
    deltas = [outs[-1] - target]
    for l in range(len(layers) - 2, -1, -1):
        W_next = np.asarray(layers[l + 1]["W"])
        deltas.insert(0, fp(outs[l]) * (W_next.T @ deltas[0]))
    return nets, outs, deltas


@pytest.mark.parametrize("dataset, activation, hidden", [("xor", "tanh", (4, 4)), ("moons", "sigmoid", (5,)),
                                                         ("spirals", "tanh", (6, 4)), ("circles", "relu", (4, 3))])
def test_trace_on_recorded_weights_gives_the_page_deltas(dataset, activation, hidden):
    data = report_data(dataset, hidden, steps=30, activation=activation, seed=1)
    assert len(data["steps"]) == 30 and len(data["params"]) == 30
    loss = report_loss(data)
    for k in (0, 17, 29):
        model = report_model(data, k)
        for i in (0, 3):
            tr = dp.explain.trace(model, data["X"][i], data["y"][i], loss)
            nets, outs, deltas = _page_forward(data, k, i)
            for l, layer in enumerate(tr.layers):
                np.testing.assert_allclose(layer.net[0], nets[l], rtol=1e-12, atol=1e-14)
                np.testing.assert_allclose(layer.delta[0], deltas[l], rtol=1e-9, atol=1e-14)
                if l < len(tr.layers) - 1:
                    np.testing.assert_allclose(layer.out[0], outs[l], rtol=1e-12, atol=1e-14)


def test_recorded_gradients_are_the_batch_gradients_before_the_update():
    data = report_data("moons", (4, 4), steps=5, lr=0.5, seed=0)
    for k in range(4):
        model = report_model(data, k)
        loss = report_loss(data)(model(dp.tensor(np.asarray(data["X"]))), np.asarray(data["y"]))
        loss.backward()
        assert float(loss.item()) == pytest.approx(data["loss"][k], rel=1e-12)
        for l, lin in enumerate([m for m in model if isinstance(m, dp.nn.Linear)]):
            np.testing.assert_allclose(np.asarray(lin.weight.grad), data["params"][k][l]["gW"], rtol=1e-12)
            # the next step's weights are this step's minus lr * gradient (plain SGD)
            np.testing.assert_allclose(data["params"][k + 1][l]["W"],
                                       data["params"][k][l]["W"] - 0.5 * data["params"][k][l]["gW"], rtol=1e-12)
