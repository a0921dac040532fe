"""The library's training loop and `deltaprop train` compile their step by default; compile=False
and --no-compile give the same numbers, bit for bit."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import numpy as np

import deltaprop as dp
from deltaprop import train as tr


def _fit(compile, dropout=False):
    dp.manual_seed(0)
    X, y = dp.data.moons(200, noise=0.2, seed=0)
    X = np.asarray(X, np.float32)
    layers = [dp.nn.Linear(2, 16), dp.nn.ReLU()] + ([dp.nn.Dropout(0.2)] if dropout else []) + [dp.nn.Linear(16, 2)]
    model = dp.nn.Sequential(*layers)
    opt = dp.optim.Adam(model.parameters(), lr=1e-2)
    loader = dp.data.DataLoader(dp.data.TensorDataset(X, y), batch_size=32, shuffle=True, seed=0)  # last batch: 8
    hist = tr.fit(model, dp.nn.functional.cross_entropy, opt, loader, 4, eval_sets={"train": (X, y)},
                  compile=compile)
    return hist, model


def test_fit_compiled_equals_eager_bitwise():
    for dropout in (False, True):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the compiled step must not fall back here
            h1, m1 = _fit(True, dropout)
        h0, m0 = _fit(False, dropout)
        assert h1.to_dict() == h0.to_dict()
        for a, b in zip(m1.parameters(), m0.parameters()):
            assert np.array_equal(a.data, b.data)


def test_fit_compiled_non_finite_loss_raises_the_loops_error():
    X = np.random.default_rng(0).normal(size=(8, 2)).astype(np.float32)
    y = np.random.default_rng(1).normal(size=(8, 1)).astype(np.float32)
    model = dp.nn.Sequential(dp.nn.Linear(2, 1))
    opt = dp.optim.SGD(model.parameters(), lr=1e15)  # diverges within a few steps
    loader = dp.data.DataLoader(dp.data.TensorDataset(X, y), batch_size=2)
    with np.errstate(all="ignore"):
        try:
            tr.fit(model, dp.nn.functional.mse_loss, opt, loader, 50)
        except tr.NonFiniteLossError as exc:
            assert exc.epoch >= 1 and exc.step >= 1 and not np.isfinite(exc.value)
        else:
            raise AssertionError("no NonFiniteLossError")


def test_cli_no_compile_gives_the_same_numbers(tmp_path):
    outs = []
    for extra in ([], ["--no-compile"]):
        r = subprocess.run([sys.executable, "-m", "deltaprop", "train", "--dataset", "moons", "--epochs", "3",
                            "--json", "--no-plot", "--out", str(tmp_path / f"m{len(outs)}.safetensors")] + extra,
                           capture_output=True, text=True, cwd=tmp_path, env=dict(os.environ))
        assert r.returncode == 0, r.stderr
        rep = json.loads(r.stdout.strip().splitlines()[-1])
        outs.append({k: rep[k] for k in ("train_loss", "test_accuracy")})
    assert outs[0] == outs[1]
    a, b = (dp.load(str(tmp_path / f"m{i}.safetensors")) for i in range(2))
    assert all(np.array_equal(a[k], b[k]) for k in a)
