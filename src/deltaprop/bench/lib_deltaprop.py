"""deltaprop versions of the cases, written against the public API only (DESIGN.md section 1).

This process never imports torch or any other peer.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
import time

import numpy as np

import deltaprop as dp
from deltaprop.nn import functional as F

from . import _common as C

nn = dp.nn


def _load(model, arrays: dict) -> None:
    model.load_state_dict(arrays)


def _classifier_step(model, opt, x, y):
    def step():
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    return step


def _mlp_model():
    i, h1, h2, k = C.MLP_SIZES
    model = nn.Sequential(nn.Linear(i, h1), nn.ReLU(), nn.Linear(h1, h2), nn.ReLU(), nn.Linear(h2, k))
    (w1, b1), (w2, b2), (w3, b3) = C.mlp_params()
    _load(model, {"0.weight": w1, "0.bias": b1, "2.weight": w2, "2.bias": b2, "4.weight": w3, "4.bias": b3})
    return model


def mlp_sgd():
    """The mlp-sgd case in deltaprop: returns the step that the worker times, one SGD step of the MLP 784-256-256-10 (float32, batch 128)."""
    x, y = C.mlp_data()
    model = _mlp_model()
    return _classifier_step(model, dp.optim.SGD(model.parameters(), lr=C.MLP_LR), dp.tensor(x), y)


def mlp_adam():
    """The mlp-adam case in deltaprop: returns the step that the worker times, one Adam step of the MLP 784-256-256-10 (float32, batch 128)."""
    x, y = C.mlp_data()
    model = _mlp_model()
    opt = dp.optim.Adam(model.parameters(), lr=C.ADAM_LR, betas=C.ADAM_BETAS, eps=C.ADAM_EPS)
    return _classifier_step(model, opt, dp.tensor(x), y)


def mazur():
    """The mazur case in deltaprop: returns the step that the worker times, one SGD step (lr 0.5) of Mazur's 2-2-2 sigmoid network, float64."""
    x, t = (dp.tensor(a) for a in C.mazur_data())
    l1 = nn.Linear(2, 2, dtype=np.float64)
    l2 = nn.Linear(2, 2, dtype=np.float64)
    model = nn.Sequential(l1, l2)
    (w1, b1), (w2, b2) = C.mazur_params()
    _load(model, {"0.weight": w1, "0.bias": b1, "1.weight": w2, "1.bias": b2})
    opt = dp.optim.SGD(model.parameters(), lr=C.MAZUR_LR)

    def step():
        opt.zero_grad()
        o = l2(l1(x).sigmoid()).sigmoid()
        loss = 0.5 * ((t - o) ** 2).sum()
        loss.backward()
        opt.step()
        return loss

    return step


def cnn():
    """The cnn case in deltaprop: returns the step that the worker times, one SGD step of the small CNN (Conv2d 1->16 3x3, ReLU, MaxPool 2, Linear 256->10)."""
    x, y = C.cnn_data()
    ch = C.CNN_CHANNELS
    model = nn.Sequential(
        nn.Conv2d(1, ch, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(ch * 16, 10)
    )
    p = C.cnn_params()
    _load(model, {"0.weight": p["conv_w"], "0.bias": p["conv_b"], "4.weight": p["fc_w"], "4.bias": p["fc_b"]})
    return _classifier_step(model, dp.optim.SGD(model.parameters(), lr=C.CNN_LR), dp.tensor(x), y)


def chain():
    """The chain case in deltaprop: returns the step that the worker times, forward and backward through 100,000 scalar ops (x*c, x+d alternating)."""
    def step():
        x0 = dp.tensor(np.array(C.CHAIN_X0), requires_grad=True)
        x = x0
        for _ in range(C.CHAIN_OPS // 2):
            x = x * C.CHAIN_MUL
            x = x + C.CHAIN_ADD
        x.backward()
        return x0.grad

    return step


def micro():
    """The micro case in deltaprop: returns the step that the worker times, forward and backward through 1,000 adds of 4x4 float32 arrays."""
    a, b = (dp.tensor(v, requires_grad=True) for v in C.micro_data())

    def step():
        a.grad = b.grad = None
        y = a
        for _ in range(C.MICRO_OPS):
            y = y + b
        loss = y.sum()
        loss.backward()
        return loss

    return step


def train():
    """`deltaprop train --json --no-compile`: the defaults, every step eager (lib_deltaprop_compiled's
    row is the default, compiled run), in this process; its JSON line is the result."""
    return run_train_cli(["--no-compile"])


def run_train_cli(extra: list[str]) -> dict:
    """`deltaprop train --json` with its defaults and `extra` options, in this process."""
    from deltaprop import cli

    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        out = io.StringIO()
        os.chdir(tmp)  # anything the run writes beside the model (a plot) stays in tmp
        try:
            t0 = time.perf_counter()
            with contextlib.redirect_stdout(out), open(os.devnull, "w") as devnull, \
                    contextlib.redirect_stderr(devnull):
                rc = cli.main(["train", "--json", "--out", os.path.join(tmp, "model.safetensors")] + extra)
            wall = time.perf_counter() - t0
        finally:
            os.chdir(cwd)
    if rc not in (0, None):
        raise RuntimeError(f"deltaprop train exited with {rc}")
    lines = [ln for ln in out.getvalue().splitlines() if ln.strip().startswith("{")]
    if not lines:
        raise RuntimeError("deltaprop train --json printed no JSON line")
    report = json.loads(lines[-1])
    seconds = float(report.get("seconds", wall))
    return {"value": seconds, "seconds": seconds, "wall_seconds": wall,
            "test_accuracy": report.get("test_accuracy"), "peak_rss_mb": C.peak_rss_mb(),
            "cli": {k: v for k, v in report.items() if k != "model_path"}}


def memory():
    """The train case's model and loop, with the RSS read after every epoch."""
    dp.manual_seed(C.TRAIN["seed"])
    x, y = dp.data.digits()
    xtr, xte, ytr, yte = dp.data.train_test_split(x, y, test_size=C.TRAIN["test_size"], seed=C.TRAIN["seed"])
    xtr, xte = C.standardize(np.asarray(xtr, np.float64), np.asarray(xte, np.float64))
    layers = []
    n_in = xtr.shape[1]
    for h in C.TRAIN["hidden"]:
        layers += [nn.Linear(n_in, h), nn.ReLU()]
        n_in = h
    model = nn.Sequential(*layers, nn.Linear(n_in, 10))
    opt = dp.optim.Adam(model.parameters(), lr=C.TRAIN["lr"])
    loader = dp.data.DataLoader(dp.data.TensorDataset(xtr, ytr), batch_size=C.TRAIN["batch_size"],
                                shuffle=True, seed=C.TRAIN["seed"])
    rss = []
    for _epoch in range(C.TRAIN["epochs"]):
        model.train()
        for xb, yb in loader:
            opt.zero_grad()
            loss = F.cross_entropy(model(xb if isinstance(xb, dp.Tensor) else dp.tensor(xb)), yb)
            loss.backward()
            opt.step()
        rss.append(C.rss_mb())
    model.eval()
    with dp.no_grad():
        acc = float((np.asarray(model(dp.tensor(xte)).argmax(axis=1)) == yte).mean())
    return {"value": C.peak_rss_mb(), "rss_per_epoch_mb": rss,
            "growth_mb": rss[-1] - rss[1] if len(rss) > 1 else 0.0, "test_accuracy": acc}


def trace():
    """One sample through a 784-256-10 network, every delta and gradient (issue target: < 1 s)."""
    dp.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 256), nn.Sigmoid(), nn.Linear(256, 10), nn.Sigmoid())
    x = np.random.default_rng(0).random(784).astype(np.float32)
    target = np.eye(10, dtype=np.float32)[3]

    def step():
        tr = dp.explain.trace(model, x, target, loss=lambda out, t: 0.5 * ((t - out) ** 2).sum(), lr=0.5)
        return float(tr.layers[-1].delta.sum())

    return step


def report():
    """The interactive report for 200 steps of a 2-4-4-1 network, written to a file (target: < 5 s)."""
    from deltaprop.explain.cli import main as explain_main
    path = os.path.join(tempfile.mkdtemp(), "report.html")

    def step():
        with contextlib.redirect_stdout(io.StringIO()):
            rc = explain_main(["--dataset", "moons", "--hidden", "4,4", "--steps", "200", "--html", path])
        if rc != 0:
            raise RuntimeError(f"deltaprop explain exited {rc}")
        return os.path.getsize(path) / 1e6

    return step


def playground():
    """`deltaprop playground` driven over its WebSocket (bench/playground.py); value: seconds per frame."""
    from .playground import run

    return run()


def ddp():
    """2 MPI ranks x 1 thread against 1 process x 2 threads (bench/ddp.py); value: the 2-rank step."""
    from .ddp import run

    return run()
