"""`deltaprop export model.safetensors model.onnx` and `dp.onnx.export` of a trained run (issue 22,
point 1): one graph from raw rows to what `deltaprop predict` gives (the stored standardisation, the
network, softmax probabilities and the class labels, or the regression value in the target's
units), checked with onnxruntime against `deltaprop predict` on scikit-learn's breast cancer, wine
and iris data written to CSV as a user would; `--logits` keeps the bare network; errors are one
line with exit 1 or 2."""
from __future__ import annotations

import csv
import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest

import deltaprop as dp
from deltaprop import cli, run
from deltaprop import onnx as dponnx


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "deltaprop", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=600)


def _main(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def _session(ort, path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _props(proto):
    return {p.key: p.value for p in proto.metadata_props}


def _write_bunch(path, bunch, text_target=True):
    """A scikit-learn dataset as a CSV file with a header, the target column last (text labels)."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([*bunch.feature_names, "target"])
        for x, t in zip(bunch.data, bunch.target):
            w.writerow([*(repr(float(v)) for v in x), bunch.target_names[t] if text_target else repr(float(t))])


def _raw_rows(path):
    """The CSV's feature cells as a user hands them to onnxruntime: float32 rows, target dropped."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0][:-1], np.array([[float(v) for v in r[:-1]] for r in rows[1:]], np.float32)


@pytest.mark.parametrize("name", ["breast_cancer", "wine", "iris"])
def test_onnx_on_raw_csv_rows_equals_predict(onnx_runtime, tmp_path, capsys, name):
    onnx, ort = onnx_runtime
    datasets = pytest.importorskip("sklearn.datasets")
    bunch = getattr(datasets, f"load_{name}")()
    data, model, out = tmp_path / f"{name}.csv", tmp_path / "m.safetensors", tmp_path / "m.onnx"
    _write_bunch(data, bunch)
    _main(capsys, "train", "--data", data, "--target", "target", "--epochs", "3", "--out", model, "--no-plot")
    printed = _main(capsys, "export", model, out)
    n_features = len(bunch.feature_names)
    assert printed.strip() == (f"wrote {out}: ONNX opset 17, input 'input' (batch, {n_features}) float32 (raw rows), "
                               "output 'label', 'probabilities'")
    _main(capsys, "predict", model, "--data", data, "--out", tmp_path / "p.csv")
    with open(tmp_path / "p.csv", newline="") as f:
        predicted_labels = [r[0] for r in list(csv.reader(f))[1:]]
    want = run.predict_file(model, str(data))  # the same, with the probabilities unrounded

    names, X = _raw_rows(data)
    label, probs = _session(ort, out).run(["label", "probabilities"], {"input": X})
    assert label.tolist() == predicted_labels == want["predictions"].tolist()  # every row
    np.testing.assert_allclose(probs, want["probabilities"], rtol=0, atol=1e-5)
    # one graph: standardisation, the network, softmax, the label lookup; its metadata
    proto = onnx.load(str(out))
    onnx.checker.check_model(proto, full_check=True)
    ops = [n.op_type for n in proto.graph.node]
    assert ops[:2] == ["Sub", "Div"] and "Gemm" in ops and ops[-3:] == ["Identity", "ArgMax", "Gather"]
    assert "Softmax" in ops
    props = _props(proto)
    assert json.loads(props["feature_names"]) == names == list(bunch.feature_names)
    assert json.loads(props["class_names"]) == sorted(bunch.target_names)
    assert props["deltaprop_version"] == dp.__version__ and props["task"] == "classification"
    assert props["model_sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    # a batch of one row and of three answer the same as the whole file
    sess = _session(ort, out)
    for rows in (slice(0, 1), slice(5, 8)):
        got = sess.run(["probabilities"], {"input": X[rows]})[0]
        np.testing.assert_allclose(got, probs[rows], atol=1e-6)


def test_regression_predictor_and_integer_labels(onnx_runtime, tmp_path, capsys):
    onnx, ort = onnx_runtime
    datasets = pytest.importorskip("sklearn.datasets")
    bunch = datasets.load_diabetes()
    data, model, out = tmp_path / "diabetes.csv", tmp_path / "r.safetensors", tmp_path / "r.onnx"
    _write_bunch(data, bunch, text_target=False)
    _main(capsys, "train", "--data", data, "--target", "target", "--epochs", "3", "--out", model, "--no-plot")
    _main(capsys, "export", model, out)
    _, X = _raw_rows(data)
    (pred,) = _session(ort, out).run(None, {"input": X})
    want = run.predict_file(model, str(data))["predictions"]
    assert [o.name for o in onnx.load(str(out)).graph.output] == ["prediction"] and pred.shape == (len(X),)
    np.testing.assert_allclose(pred, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
    # integer class labels stay integers (int64), the labels of the file
    rng = np.random.default_rng(0)
    Xi = rng.normal(size=(80, 3))
    yi = np.where(Xi[:, 0] > 0, 7, 2)
    np.savez(tmp_path / "i.npz", X=Xi, y=yi)
    _main(capsys, "train", "--data", tmp_path / "i.npz", "--epochs", "3", "--out", tmp_path / "i.safetensors",
          "--no-plot")
    _main(capsys, "export", tmp_path / "i.safetensors", tmp_path / "i.onnx")
    label, _ = _session(ort, tmp_path / "i.onnx").run(None, {"input": Xi.astype(np.float32)})
    assert label.dtype == np.int64
    want = run.predict_file(tmp_path / "i.safetensors", str(tmp_path / "i.npz"))["predictions"]
    assert label.tolist() == want.tolist()


@pytest.mark.parametrize("train_args", [["--dataset", "moons", "--hidden", "8,8", "--activation", "tanh"],
                                        ["--dataset", "digits", "--model", "cnn", "--hidden", "16"]])
def test_builtin_runs_and_logits(onnx_runtime, tmp_path, train_args):
    onnx, ort = onnx_runtime
    r = _cli("train", *train_args, "--epochs", "1", "--out", "m.safetensors", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    state, meta, _, _ = run.read_model_file(str(tmp_path / "m.safetensors"))
    model = run._load_weights(str(tmp_path / "m.safetensors"), meta, state)
    model.eval()
    # the whole predictor: raw rows in, the built-in set's class indices out
    r = _cli("export", "m.safetensors", "p.onnx", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    sess = _session(ort, tmp_path / "p.onnx")
    raw = np.random.default_rng(3).uniform(0, 16, (9, meta["sizes"][0]))
    X = run._apply(raw, meta["normalize"], np.dtype(np.float32))
    labels, probs, _ = run._predict(model, X, meta)
    got_label, got_probs = sess.run(None, {"input": raw.astype(np.float32)})
    assert got_label.tolist() == labels.tolist()
    np.testing.assert_allclose(got_probs, probs, atol=1e-5)
    # --logits: the bare network, standardised rows in, logits out
    r = _cli("export", "m.safetensors", "m.onnx", "--logits", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "wrote m.onnx" in r.stdout and "(standardised rows), output 'output'" in r.stdout
    proto = onnx.load(str(tmp_path / "m.onnx"))
    onnx.checker.check_model(proto, full_check=True)
    assert "feature_names" in _props(proto)
    sess = _session(ort, tmp_path / "m.onnx")
    for n in (1, 9):
        x = np.random.default_rng(n).standard_normal((n, meta["sizes"][0])).astype(meta["dtype"])
        np.testing.assert_allclose(sess.run(None, {"input": x})[0], model(dp.tensor(x)).numpy(), rtol=1e-5,
                                   atol=1e-5)


def test_python_export_of_a_run_result_and_of_a_file(onnx_runtime, tmp_path):
    onnx, ort = onnx_runtime
    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 4)) * [1, 10, 100, 0.1] + [0, 5, -50, 1]
    y = np.array(["no", "yes"])[(X[:, 0] + X[:, 1] / 10 > 0.5).astype(int)]
    with open(tmp_path / "d.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["a", "b", "c", "d", "label"])
        w.writerows([[*map(repr, x), t] for x, t in zip(X.tolist(), y)])
    cfg = run.RunConfig.for_dataset("file", data=str(tmp_path / "d.csv"), target="label", epochs=2, seed=0)
    result = run.train_run(cfg, out=str(tmp_path / "m.safetensors"))
    dponnx.export(result, tmp_path / "run.onnx")
    dponnx.export(str(tmp_path / "m.safetensors"), tmp_path / "file.onnx", dynamic_batch=False)
    want = run.predict_file(tmp_path / "m.safetensors", str(tmp_path / "d.csv"))
    label, probs = _session(ort, tmp_path / "run.onnx").run(None, {"input": X.astype(np.float32)})
    assert label.tolist() == want["predictions"].tolist()
    np.testing.assert_allclose(probs, want["probabilities"], atol=1e-5)
    static = onnx.load(str(tmp_path / "file.onnx"))
    assert static.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1
    label1, _ = _session(ort, tmp_path / "file.onnx").run(None, {"input": X[:1].astype(np.float32)})
    assert label1.tolist() == want["predictions"][:1].tolist()
    assert "model_sha256" not in _props(onnx.load(str(tmp_path / "run.onnx")))  # (no file to digest)
    assert _props(static)["model_file"] == "m.safetensors"
    with pytest.raises(TypeError, match="export"):
        dponnx.export(result, np.zeros((1, 4)), tmp_path / "x.onnx")
    with pytest.raises(TypeError, match="logits=True applies to a trained run"):
        dponnx.export(result.model, np.zeros((1, 4), np.float32), tmp_path / "x.onnx", logits=True)


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
    r = _cli("export", "--help", cwd=tmp_path)
    assert r.returncode == 0 and "raw rows" in r.stdout and "--logits" in r.stdout
