"""`deltaprop export model.safetensors model.onnx`: the network rebuilt from the file's metadata,
written as ONNX, gives deltaprop's outputs in onnxruntime; errors are one line with exit 1 or 2."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import deltaprop as dp
from deltaprop import run


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "deltaprop", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=600)


@pytest.mark.parametrize("train_args", [["--dataset", "moons", "--hidden", "8,8", "--activation", "tanh"],
                                        ["--dataset", "digits", "--model", "cnn", "--hidden", "16"]])
def test_export_command_matches_the_model(onnx_runtime, tmp_path, train_args):
    onnx, ort = onnx_runtime
    r = _cli("train", *train_args, "--epochs", "1", "--out", "m.safetensors", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = _cli("export", "m.safetensors", "m.onnx", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "wrote m.onnx" in r.stdout
    proto = onnx.load(str(tmp_path / "m.onnx"))
    onnx.checker.check_model(proto, full_check=True)
    state, meta, _, _ = run.read_model_file(str(tmp_path / "m.safetensors"))
    model = run._load_weights(str(tmp_path / "m.safetensors"), meta, state)
    model.eval()
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    for n in (1, 9):
        x = np.random.default_rng(n).standard_normal((n, meta["sizes"][0])).astype(meta["dtype"])
        np.testing.assert_allclose(sess.run(None, {"input": x})[0], model(dp.tensor(x)).numpy(), rtol=1e-5,
                                   atol=1e-5)


def test_export_command_errors(onnx_runtime, tmp_path):
    r = _cli("export", "missing.safetensors", "m.onnx", cwd=tmp_path)
    assert r.returncode == 1 and r.stderr.strip() == "deltaprop export: error: no such file: 'missing.safetensors'"
    r = _cli("export", cwd=tmp_path)
    assert r.returncode == 2 and "the following arguments are required" in r.stderr
    (tmp_path / "bad.safetensors").write_bytes(b"not a model")
    r = _cli("export", "bad.safetensors", "m.onnx", cwd=tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr and "bad.safetensors" in r.stderr
    assert not (tmp_path / "m.onnx").exists()
    r = _cli(cwd=tmp_path)
    assert "export" in r.stdout
