"""Matt Mazur's "A Step by Step Backpropagation Example" (2015), every number from the engine.

A 2-2-2 network of logistic units built with dp.nn in float64, E = sum 1/2 (target - out)^2,
trained by dp.optim.SGD(lr=0.5) on the two weight matrices (the biases b1 = 0.35, b2 = 0.60
stay fixed). The forward values, deltas and gradients come from `trace` (the engine's reverse
pass); the updated weights and the errors after 1 and 10,000 updates from real SGD steps.
Where the post prints a different figure (see mazur.json), the walkthrough says so and why.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np

__all__ = ["Walkthrough", "walkthrough", "reference", "build", "mazur_model"]

LR = 0.5


def reference() -> dict:
    """The reference file: the post's published figures and their float64 recomputation."""
    return json.loads(resources.files("deltaprop.explain").joinpath("mazur.json").read_text(encoding="utf-8"))


def build():
    """(model, x, target): Mazur's network as a dp.nn.Sequential in float64, biases frozen."""
    from .. import nn

    model = nn.Sequential(nn.Linear(2, 2, dtype=np.float64), nn.Sigmoid(),
                          nn.Linear(2, 2, dtype=np.float64), nn.Sigmoid())
    model.load_state_dict({"0.weight": np.array([[0.15, 0.20], [0.25, 0.30]]), "0.bias": np.array([0.35, 0.35]),
                           "2.weight": np.array([[0.40, 0.45], [0.50, 0.55]]), "2.bias": np.array([0.60, 0.60])})
    model[0].bias.requires_grad_(False)
    model[2].bias.requires_grad_(False)
    return model, np.array([0.05, 0.10]), np.array([0.01, 0.99])


def mazur_model():
    """Mazur's 2-2-2 network of logistic units with the post's weights, in float64 (biases
    b1 = 0.35 and b2 = 0.60 frozen, as in the post). Its data: dp.data.mazur(np.float64)."""
    return build()[0]


def loss(out, target):
    """E_total = sum over outputs of 1/2 (target - out)^2."""
    return 0.5 * ((target - out) ** 2).sum()


@dataclass
class Walkthrough:
    values: dict      # keyed like mazur.json's "values"
    text: str
    trace: Any
    seconds: float


def _g(v: Any) -> str:
    return "%.9g" % float(v)


def _p(v: Any) -> str:
    s = _g(v)
    return f"({s})" if s.startswith("-") else s


_WHY = {
    "dE_o2/dout_h1": "the post rounded an intermediate; the exact value is -0.01904911826",
    "E_total after 1 update": ("the result when the hidden deltas use the already-updated w5..w8, as an earlier "
                               "version of the author's script did; the post's text, and this run, use the "
                               "original weights"),
    "E_total after 10000 updates": ("this rule gives that after 9,999 updates (3.51085481e-05); no single run "
                                    "reproduces all three of the post's 10,000-update figures"),
    "out_o1 after 10000 updates": "the already-updated-w5..w8 order gives that after 10,000 updates",
    "out_o2 after 10000 updates": "the already-updated-w5..w8 order gives that after 10,000 updates",
}


def walkthrough(updates: int = 10000) -> Walkthrough:
    """Run the example: one traced step, then `updates` SGD steps in all; values and text."""
    import time

    import deltaprop as dp
    from .trace import trace

    t0 = time.perf_counter()
    ref = reference()["values"]
    model, x, target = build()
    tr = trace(model, x, target, loss, lr=LR)
    h, o = tr.layers
    i = x
    W1, W2 = h.weight, o.weight
    b1, b2 = h.bias[0], o.bias[0]  # type: ignore[index]  # (Mazur's layers have biases)
    v: dict[str, float] = {}
    v["net_h1"], v["net_h2"] = h.net[0]
    v["out_h1"], v["out_h2"] = h.out[0]
    v["net_o1"], v["net_o2"] = o.net[0]
    v["out_o1"], v["out_o2"] = o.out[0]
    with dp.no_grad():
        e = (0.5 * (dp.tensor(target) - dp.tensor(o.out[0])) ** 2).numpy()
    v["E_o1"], v["E_o2"] = e
    v["E_total"] = tr.loss
    v["dE_total/dout_o1"] = o.dout[0, 0]
    v["dout_o1/dnet_o1"] = o.fprime[0, 0]
    v["dnet_o1/dw5"] = o.input[0, 0]
    gw2, gw1 = tr.grads["2.weight"], tr.grads["0.weight"]
    for k, (r, c) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        v[f"dE_total/dw{k + 5}"] = gw2[r, c]
        v[f"dE_total/dw{k + 1}"] = gw1[r, c]
        v[f"w{k + 5}+"] = tr.updated["2.weight"][r, c]
        v[f"w{k + 1}+"] = tr.updated["0.weight"][r, c]
    v["delta_o1 = dE_o1/dnet_o1"], v["delta_o2 = dE_o2/dnet_o2"] = o.delta[0]
    v["dnet_o1/dout_h1 (= w5)"] = W2[0, 0]
    v["dE_o1/dout_h1"] = o.delta[0, 0] * W2[0, 0]
    v["dE_o2/dout_h1"] = o.delta[0, 1] * W2[1, 0]
    v["dE_total/dout_h1"], v["dE_total/dout_h2"] = h.dout[0]
    v["dout_h1/dnet_h1"] = h.fprime[0, 0]
    v["dnet_h1/dw1 (= i1)"] = h.input[0, 0]

    # real training: SGD on the two weight matrices, biases fixed
    opt = dp.optim.SGD([model[0].weight, model[2].weight], lr=LR)
    X, T = dp.tensor(x), dp.tensor(target)
    after_one: Any = None
    for step in range(updates):
        opt.zero_grad()
        loss(model(X), T).backward()
        opt.step()
        if step == 0:
            after_one = {k: a.copy() for k, a in model.state_dict().items()}
            with dp.no_grad():
                out1 = model(X)
                v["E_total after 1 update"] = float(loss(out1, T).item())
                v["out_o1 after 1 update"], v["out_o2 after 1 update"] = out1.numpy()
    with dp.no_grad():
        out_n = model(X)
        v[f"E_total after {updates} updates"] = float(loss(out_n, T).item())
        v[f"out_o1 after {updates} updates"], v[f"out_o2 after {updates} updates"] = out_n.numpy()
    v = {k: float(val) for k, val in v.items()}
    seconds = time.perf_counter() - t0

    L: list[str] = []
    add = L.append

    def note(key: str) -> None:
        r = ref.get(key)
        if r and r.get("status") == "differs":
            add(f"      (the post prints {r['published']}: {_WHY.get(key, r.get('note', ''))})")

    add("Matt Mazur, \"A Step by Step Backpropagation Example\" (2015), computed by deltaprop's engine")
    add("network 2-2-2 of logistic units (dp.nn, float64); E_total = sum of 1/2 (target - out)^2;")
    add(f"one pattern i = ({_g(i[0])}, {_g(i[1])}), targets ({_g(target[0])}, {_g(target[1])}); "
        f"biases b1 = {_g(b1)}, b2 = {_g(b2)} fixed; learning rate {_g(LR)}; numbers as %.9g")
    add("")
    add("1. The forward pass")
    for j, hn in enumerate(("h1", "h2")):
        wa, wb = 2 * j + 1, 2 * j + 2
        add(f"  net_{hn} = w{wa} i1 + w{wb} i2 + b1 = {_g(W1[j, 0])} × {_g(i[0])} + {_g(W1[j, 1])} × {_g(i[1])}"
            f" + {_g(b1)} = {_g(h.net[0, j])}")
        add(f"  out_{hn} = 1 / (1 + e^-net_{hn}) = {_g(h.out[0, j])}")
    for j, on in enumerate(("o1", "o2")):
        wa, wb = 2 * j + 5, 2 * j + 6
        add(f"  net_{on} = w{wa} out_h1 + w{wb} out_h2 + b2 = {_g(W2[j, 0])} × {_g(h.out[0, 0])} + "
            f"{_g(W2[j, 1])} × {_g(h.out[0, 1])} + {_g(b2)} = {_g(o.net[0, j])}")
        add(f"  out_{on} = 1 / (1 + e^-net_{on}) = {_g(o.out[0, j])}")
    add("")
    add("2. The total error")
    for j, on in enumerate(("o1", "o2")):
        add(f"  E_{on} = 1/2 (target_{on} - out_{on})^2 = 1/2 ({_g(target[j])} - {_g(o.out[0, j])})^2 = {_g(e[j])}")
    add(f"  E_total = E_o1 + E_o2 = {_g(tr.loss)}")
    add("")
    add("3. The backward pass, output layer (w5..w8)")
    add(f"  dE_total/dout_o1 = -(target_o1 - out_o1) = {_g(o.dout[0, 0])}")
    add(f"  dout_o1/dnet_o1 = out_o1 (1 - out_o1) = {_g(o.fprime[0, 0])}")
    add(f"  dnet_o1/dw5 = out_h1 = {_g(o.input[0, 0])}")
    add(f"  dE_total/dw5 = dE_total/dout_o1 × dout_o1/dnet_o1 × dnet_o1/dw5 = {_g(o.dout[0, 0])} × "
        f"{_g(o.fprime[0, 0])} × {_g(o.input[0, 0])} = {_g(gw2[0, 0])}")
    for j, on in enumerate(("o1", "o2")):
        add(f"  delta_{on} = dE_total/dnet_{on} = dE_total/dout_{on} × dout_{on}/dnet_{on} = {_p(o.dout[0, j])} × "
            f"{_g(o.fprime[0, j])} = {_g(o.delta[0, j])}")
    for k, (r, c) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        add(f"  dE_total/dw{k + 5} = delta_o{r + 1} × out_h{c + 1} = {_p(o.delta[0, r])} × {_g(o.input[0, c])} = "
            f"{_g(gw2[r, c])}")
    for k, (r, c) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        add(f"  w{k + 5}+ = w{k + 5} - {_g(LR)} × dE_total/dw{k + 5} = {_g(W2[r, c])} - {_g(LR)} × "
            f"{_p(gw2[r, c])} = {_g(tr.updated['2.weight'][r, c])}")
    add("")
    add("4. The backward pass, hidden layer (w1..w4), with the ORIGINAL w5..w8")
    for c, hn in enumerate(("h1", "h2")):
        t1 = o.delta[0, 0] * W2[0, c]
        t2 = o.delta[0, 1] * W2[1, c]
        add(f"  dE_o1/dout_{hn} = delta_o1 × w{5 + c} = {_g(o.delta[0, 0])} × {_g(W2[0, c])} = {_g(t1)}")
        add(f"  dE_o2/dout_{hn} = delta_o2 × w{7 + c} = {_p(o.delta[0, 1])} × {_g(W2[1, c])} = {_g(t2)}")
        if hn == "h1":
            note("dE_o2/dout_h1")
        add(f"  dE_total/dout_{hn} = dE_o1/dout_{hn} + dE_o2/dout_{hn} = {_g(h.dout[0, c])}")
        add(f"  dout_{hn}/dnet_{hn} = out_{hn} (1 - out_{hn}) = {_g(h.fprime[0, c])}")
        add(f"  delta_{hn} = dE_total/dnet_{hn} = {_g(h.dout[0, c])} × {_g(h.fprime[0, c])} = {_g(h.delta[0, c])}")
    add(f"  dnet_h1/dw1 = i1 = {_g(h.input[0, 0])}")
    add(f"  dE_total/dw1 = dE_total/dout_h1 × dout_h1/dnet_h1 × dnet_h1/dw1 = {_g(h.dout[0, 0])} × "
        f"{_g(h.fprime[0, 0])} × {_g(h.input[0, 0])} = {_g(gw1[0, 0])}")
    for k, (r, c) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        add(f"  dE_total/dw{k + 1} = delta_h{r + 1} × i{c + 1} = {_g(h.delta[0, r])} × {_g(h.input[0, c])} = "
            f"{_g(gw1[r, c])}")
    for k, (r, c) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        add(f"  w{k + 1}+ = w{k + 1} - {_g(LR)} × dE_total/dw{k + 1} = {_g(W1[r, c])} - {_g(LR)} × "
            f"{_g(gw1[r, c])} = {_g(tr.updated['0.weight'][r, c])}")
    add("")
    add("5. After the update (dp.optim.SGD changed all eight weights at once)")
    same = all(np.allclose(after_one[k], tr.updated[k], rtol=1e-15, atol=0) for k in tr.updated)
    add(f"  the optimizer's weights equal the w+ above: {'yes' if same else 'NO'}")
    add(f"  out_o1 = {_g(v['out_o1 after 1 update'])}, out_o2 = {_g(v['out_o2 after 1 update'])}")
    add(f"  E_total after 1 update = {_g(v['E_total after 1 update'])} (was {_g(tr.loss)})")
    note("E_total after 1 update")
    if updates > 1:
        add(f"  after {updates:,} updates: E_total = {_g(v[f'E_total after {updates} updates'])}, "
            f"out_o1 = {_g(v[f'out_o1 after {updates} updates'])} (target {_g(target[0])}), "
            f"out_o2 = {_g(v[f'out_o2 after {updates} updates'])} (target {_g(target[1])})")
        for key in (f"E_total after {updates} updates", f"out_o1 after {updates} updates",
                    f"out_o2 after {updates} updates"):
            note(key)
    return Walkthrough(v, "\n".join(L), tr, seconds)
