"""deltaprop.run and the CLI on the user's own files: train, evaluate and predict on CSV, .npz and
.npy pairs; regression; the CNN; schedules, weight decay, early stopping; MNIST files."""
from __future__ import annotations

import csv
import gzip
import json
import os

import numpy as np
import pytest

import deltaprop as dp
from deltaprop import cli, run


def cli_json(capsys, *argv, rc=0):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    assert code == rc, err
    return json.loads(out.strip().splitlines()[-1]) if rc == 0 and "--json" in argv else err


def blobs_csv(path, n=120, seed=0, labels=("benign", "malignant", "unknown")):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % len(labels)
    X = rng.normal(size=(n, 3)) + 3.0 * y[:, None]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["radius", "texture", "diagnosis", "area"])  # target in the middle
        for x, t in zip(X, y):
            w.writerow([f"{x[0]:.6f}", f"{x[1]:.6f}", labels[t], f"{x[2]:.6f}"])
    return X, y


def read_preds(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def test_csv_string_target_round_trips_class_names(capsys, tmp_path):
    data = tmp_path / "cancer.csv"
    X, y = blobs_csv(data)
    model = str(tmp_path / "m.safetensors")
    res = cli_json(capsys, "train", "--data", str(data), "--target", "diagnosis", "--out", model,
                   "--no-plot", "--json")
    assert res["dataset"] == "file" and res["task"] == "classification" and res["sizes"] == [3, 64, 3]
    assert res["n_train"] == 96 and res["n_test"] == 24 and res["test_accuracy"] >= 0.9
    meta = dp.load_metadata(model)
    assert meta["classes"] == ["benign", "malignant", "unknown"]
    assert meta["feature_names"] == ["radius", "texture", "area"] and meta["target"] == "diagnosis"
    assert len(meta["normalize"]["mean"]) == 3 and meta["split"] == {"test_size": 0.2, "stratify": True}
    # evaluate without --data: the same held-out split and numbers as the run
    ev = cli_json(capsys, "evaluate", model, "--json")
    assert ev["test_accuracy"] == res["test_accuracy"] and ev["n_test"] == 24
    # evaluate --data: every row; predict on the same file agrees with it
    ev = cli_json(capsys, "evaluate", model, "--data", str(data), "--json")
    assert ev["n"] == 120
    preds = tmp_path / "preds.csv"
    pr = cli_json(capsys, "predict", model, "--data", str(data), "--out", str(preds), "--json")
    assert pr["n"] == 120 and pr["out"] == str(preds)
    header, rows = read_preds(preds)
    assert header == ["prediction", "p_benign", "p_malignant", "p_unknown"]
    names = ["benign", "malignant", "unknown"]
    truth = [names[t] for t in y]
    assert {r[0] for r in rows} <= set(names)
    agree = np.mean([r[0] == t for r, t in zip(rows, truth)])
    assert agree == pytest.approx(ev["accuracy"], abs=1e-12)
    for r in rows:
        p = np.array(r[1:], dtype=float)
        assert abs(p.sum() - 1) < 1e-4 and r[0] == names[int(p.argmax())]


def test_predict_on_features_only_and_reordered_columns(capsys, tmp_path):
    data = tmp_path / "d.csv"
    blobs_csv(data)
    model = str(tmp_path / "m.safetensors")
    cli_json(capsys, "train", "--data", str(data), "--target", "diagnosis", "--epochs", "5", "--out", model,
             "--no-plot", "--json")
    rows = list(csv.reader(open(data)))
    new = tmp_path / "new.csv"
    with open(new, "w", newline="") as f:  # no target, columns in another order
        csv.writer(f).writerows([[r[3], r[0], r[1]] for r in rows])
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    cli_json(capsys, "predict", model, "--data", str(data), "--out", str(a), "--json")
    cli_json(capsys, "predict", model, "--data", str(new), "--out", str(b), "--json")
    assert a.read_text() == b.read_text()
    # evaluating needs the target; a missing feature column is named
    err = cli_json(capsys, "evaluate", model, "--data", str(new), rc=1)
    assert "no target 'diagnosis'" in err and "Traceback" not in err
    with open(new, "w", newline="") as f:
        csv.writer(f).writerows([[r[0], r[1]] for r in rows])
    err = cli_json(capsys, "predict", model, "--data", str(new), "--out", str(b), rc=1)
    assert "no column(s) 'area', which the model was trained on" in err
    # an unknown label is named with its row
    with open(new, "w", newline="") as f:
        csv.writer(f).writerows(rows[:3] + [[*rows[3][:2], "weird", rows[3][3]]])
    err = cli_json(capsys, "evaluate", model, "--data", str(new), rc=1)
    assert "the label 'weird' at data row 3, which the model was not trained on" in err


def test_bad_file_is_one_line_exit_1(capsys, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,t\n1,2,x\n3,,y\n")
    err = cli_json(capsys, "train", "--data", str(bad), "--target", "t", "--no-plot",
                   "--out", str(tmp_path / "m.safetensors"), rc=1)
    assert err.strip() == f"deltaprop: error: {bad}: line 3 (data row 2), column 'b': missing value; remove the " \
                          "row or fill it in"
    err = cli_json(capsys, "train", "--data", str(bad), "--target", "nope", "--no-plot", rc=1)
    assert "no column 'nope' for the target; the columns are: a, b, t" in err
    assert not (tmp_path / "m.safetensors").exists()


def test_usage_errors_of_the_new_options(capsys, tmp_path):
    for argv, needle in [(["--data", "x.csv", "--dataset", "moons"], "exclude each other"),
                         (["--dataset", "mnist"], "--data-dir"), (["--target", "t"], "--data FILE only"),
                         (["--scheduler", "linear"], "plateau"), (["--model", "rnn"], "cnn"),
                         (["--early-stopping", "0"], "--early-stopping"), (["--weight-decay", "-1"], "--weight-decay"),
                         (["--dataset", "moons", "--model", "cnn"], "model 'cnn' needs images")]:
        err = cli_json(capsys, "train", *argv, "--no-plot", "--out", str(tmp_path / "m.safetensors"), rc=2)
        assert needle in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, (argv, err)


def regression_data(n=200, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    y = X @ np.array([1.0, 2.0, -1.0, 0.5]) + 3.0 + 0.05 * rng.normal(size=n)
    return X, y


@pytest.mark.parametrize("fmt", ["csv", "npz", "npy"])
def test_regression_every_format(capsys, tmp_path, fmt):
    X, y = regression_data()
    if fmt == "csv":
        data = tmp_path / "r.csv"
        np.savetxt(data, np.column_stack([X, y]), delimiter=",", header="a,b,c,d,price", comments="")
    elif fmt == "npz":
        data = tmp_path / "r.npz"
        np.savez(data, X=X, y=y)
    else:
        data = tmp_path / "r_X.npy"
        np.save(data, X)
        np.save(tmp_path / "r_y.npy", y)
    model = str(tmp_path / "m.safetensors")
    res = cli_json(capsys, "train", "--data", str(data), "--epochs", "60", "--out", model, "--no-plot", "--json")
    assert res["task"] == "regression" and "test_accuracy" not in res and res["sizes"] == [4, 64, 1]
    assert res["test_r2"] > 0.95 and res["test_rmse"] < 0.6
    ev = cli_json(capsys, "evaluate", model, "--json")
    assert ev["test_rmse"] == pytest.approx(res["test_rmse"], rel=1e-6)
    ev = cli_json(capsys, "evaluate", model, "--data", str(data), "--json")
    preds = tmp_path / "p.csv"
    cli_json(capsys, "predict", model, "--data", str(data), "--out", str(preds), "--json")
    header, rows = read_preds(preds)
    p = np.array([float(r[0]) for r in rows])
    assert header == ["prediction"] and len(p) == 200
    # predict agrees with evaluate: the RMSE and R2 of the written predictions, in the target's units
    assert np.sqrt(np.mean((p - y) ** 2)) == pytest.approx(ev["rmse"], rel=1e-4)
    assert 1 - np.sum((p - y) ** 2) / np.sum((y - y.mean()) ** 2) == pytest.approx(ev["r2"], rel=1e-4)


def test_task_override_and_int_target(capsys, tmp_path):
    data = tmp_path / "i.npz"
    rng = np.random.default_rng(1)
    X = rng.normal(size=(100, 2))
    np.savez(data, X=X, y=(X[:, 0] > 0).astype(int) * 5 + 2)  # labels 2 and 7
    model = str(tmp_path / "m.safetensors")
    res = cli_json(capsys, "train", "--data", str(data), "--epochs", "20", "--out", model, "--no-plot", "--json")
    assert res["task"] == "classification" and dp.load_metadata(model)["classes"] == [2, 7]
    preds = tmp_path / "p.csv"
    cli_json(capsys, "predict", model, "--data", str(data), "--out", str(preds), "--json")
    assert {r[0] for r in read_preds(preds)[1]} <= {"2", "7"}
    res = cli_json(capsys, "train", "--data", str(data), "--task", "regression", "--epochs", "2", "--out", model,
                   "--no-plot", "--json")
    assert res["task"] == "regression" and "test_r2" in res


def test_file_resume_is_bit_identical(capsys, tmp_path):
    data = tmp_path / "c.csv"
    blobs_csv(data)
    common = ("--no-plot", "--json")
    ck = str(tmp_path / "ck.safetensors")
    cli_json(capsys, "train", "--data", str(data), "--target", "diagnosis", "--epochs", "3", "--scheduler", "plateau",
             "--out", str(tmp_path / "a.safetensors"), "--checkpoint", ck, *common)
    r = cli_json(capsys, "train", "--resume", ck, "--epochs", "6", "--out", str(tmp_path / "r.safetensors"), *common)
    s = cli_json(capsys, "train", "--data", str(data), "--target", "diagnosis", "--epochs", "6", "--scheduler",
                 "plateau", "--out", str(tmp_path / "s.safetensors"), *common)
    a, b = dp.load(tmp_path / "r.safetensors"), dp.load(tmp_path / "s.safetensors")
    assert all(a[k].tobytes() == b[k].tobytes() for k in a)
    assert r["train_loss"] == s["train_loss"]


@pytest.mark.parametrize("scheduler", ["step", "cosine", "plateau"])
def test_schedulers_change_the_learning_rate(scheduler, tmp_path):
    cfg = run.RunConfig.for_dataset("moons", epochs=6, scheduler=scheduler)
    r = run.train_run(cfg)
    lr = r.optimizer.param_groups[0]["lr"]
    if scheduler == "step":
        assert lr == pytest.approx(0.01 * 0.001)  # x0.1 after epochs 2, 4 and 6 (epochs 5-6 ran at 1e-4)
    elif scheduler == "cosine":
        assert lr == pytest.approx(0.0, abs=1e-12)
    else:
        assert r.data.Xval is not None and len(r.data.Xval) == 40  # 10% of the 400 training points
        assert "val_loss" in r.history.metrics


def test_weight_decay_reaches_the_optimizer():
    r = run.train_run(run.RunConfig.for_dataset("moons", epochs=1, weight_decay=0.25, optimizer="sgd"))
    assert r.optimizer.param_groups[0]["weight_decay"] == 0.25
    with pytest.raises(run.RunConfigError, match="weight_decay is -1.0"):
        run.RunConfig.for_dataset("moons", weight_decay=-1.0)


def test_early_stopping_keeps_the_best_validation_model(tmp_path):
    # a learning rate far too high: the validation loss stops improving quickly
    cfg = run.RunConfig.for_dataset("spirals", epochs=60, early_stopping=3, lr=0.05)
    out = tmp_path / "m.safetensors"
    r = run.train_run(cfg, out=str(out))
    val = r.history.metrics["val_loss"]
    best = int(np.argmin(val))
    stopped = len(val)
    assert stopped < 60 and stopped == best + 1 + 3  # three epochs without improvement after the best
    meta = dp.load_metadata(out)
    assert meta["early_stopping_best_epoch"] == best + 1 and meta["stopped_epoch"] == stopped
    # the saved weights are the best epoch's: their validation loss is the best one
    model = run.build_model(meta)
    model.load_state_dict(dp.load(out))
    from deltaprop import train as tr
    loss = tr.evaluate(model, r.data.Xval, r.data.yval, run.loss_function("cross_entropy"))["loss"]
    assert loss == pytest.approx(val[best], rel=1e-5)


def test_cnn_on_digits_learns(capsys, tmp_path):
    # the full run (15 epochs) reaches >= 0.98; 3 epochs keep the test quick
    res = cli_json(capsys, "train", "--model", "cnn", "--epochs", "3", "--out", str(tmp_path / "c.safetensors"),
                   "--no-plot", "--json")
    assert res["model"] == "cnn" and res["scheduler"] == "cosine" and res["test_accuracy"] > 0.85
    meta = dp.load_metadata(tmp_path / "c.safetensors")
    assert meta["image_shape"] == [1, 8, 8] and meta["channels"] == [16, 32]
    ev = cli_json(capsys, "evaluate", str(tmp_path / "c.safetensors"), "--json")
    assert ev["test_accuracy"] == res["test_accuracy"]


def write_idx(path, arr, magic):
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


def test_mnist_from_idx_files(capsys, tmp_path):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 60), ("t10k", 20)):
        labels = np.arange(n) % 3
        images = rng.integers(0, 40, size=(n, 28, 28))
        images[:, 4 + 6 * labels, 4:24] = 255  # one bright bar per class
        images[np.arange(n), :, 4 + 6 * labels] = 255
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", images, 0x803)
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", labels, 0x801)
    model = str(tmp_path / "m.safetensors")
    res = cli_json(capsys, "train", "--dataset", "mnist", "--data-dir", str(tmp_path), "--epochs", "5",
                   "--batch-size", "10", "--out", model, "--no-plot", "--json")
    assert res["n_train"] == 60 and res["n_test"] == 20 and res["sizes"] == [784, 128, 3]
    assert res["test_accuracy"] == 1.0
    res = cli_json(capsys, "train", "--dataset", "mnist", "--data-dir", str(tmp_path), "--model", "cnn",
                   "--epochs", "2", "--out", model, "--no-plot", "--json")
    assert dp.load_metadata(model)["image_shape"] == [1, 28, 28]
    ev = cli_json(capsys, "evaluate", model, "--json")
    assert ev["test_accuracy"] == res["test_accuracy"]


def test_library_api_round_trip(tmp_path):
    X, y = regression_data(80)
    np.savez(tmp_path / "r.npz", X=X, y=y)
    cfg = run.RunConfig.for_dataset("file", data=str(tmp_path / "r.npz"), epochs=5)
    r = run.train_run(cfg, out=str(tmp_path / "m.safetensors"))
    meta = dp.load_metadata(tmp_path / "m.safetensors")
    back = run.RunConfig.from_metadata(meta)
    assert back.dataset == "file" and back.epochs == 5 and back.hidden == (64,) and back.task == "regression"
    assert back.data == os.path.abspath(tmp_path / "r.npz")
    p = run.predict_file(tmp_path / "m.safetensors", str(tmp_path / "r.npz"))
    assert p["predictions"].shape == (80,) and p["probabilities"] is None
    assert r.metrics["test_rmse"] == run.evaluate_file(tmp_path / "m.safetensors")["test_rmse"]


def test_default_cnn_run_reaches_098_on_digits(capsys, tmp_path):
    # the target (measured at about 9 s on 2 busy cores; no timing asserted here)
    res = cli_json(capsys, "train", "--model", "cnn", "--out", str(tmp_path / "c.safetensors"), "--no-plot", "--json")
    assert res["epochs"] == 15 and res["test_accuracy"] >= 0.98


def test_early_stopping_checkpoint_resumes(capsys, tmp_path):
    ck = str(tmp_path / "ck.safetensors")
    a = cli_json(capsys, "train", "--dataset", "moons", "--epochs", "4", "--early-stopping", "50", "--checkpoint", ck,
                 "--out", str(tmp_path / "a.safetensors"), "--no-plot", "--json")
    ckpt = dp.io.read_checkpoint(ck)
    state = ckpt.extra["early_stopping"]
    assert state["best_epoch"] == a["best_epoch"] and set(state["best_state"]) == set(ckpt.model_state)
    r = cli_json(capsys, "train", "--resume", ck, "--epochs", "8", "--out", str(tmp_path / "r.safetensors"),
                 "--no-plot", "--json")
    s = cli_json(capsys, "train", "--dataset", "moons", "--epochs", "8", "--early-stopping", "50",
                 "--out", str(tmp_path / "s.safetensors"), "--no-plot", "--json")
    assert r["best_epoch"] == s["best_epoch"] and r["test_accuracy"] == s["test_accuracy"]
    ra, sa = dp.load(tmp_path / "r.safetensors"), dp.load(tmp_path / "s.safetensors")
    assert all(ra[k].tobytes() == sa[k].tobytes() for k in ra)


def test_plot_history_writes_the_curves(tmp_path):
    pytest.importorskip("matplotlib")
    r = run.train_run(run.RunConfig.for_dataset("moons", epochs=3))
    dp.plot_history(r.history, tmp_path / "h.png", title="moons")
    assert (tmp_path / "h.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    dp.plot_history(r.history.to_dict(), tmp_path / "h.svg")  # the metadata form, another format
    assert b"<svg" in (tmp_path / "h.svg").read_bytes()[:2000]
    with pytest.raises(ValueError, match=r"matplotlib cannot write \.docx files; use one of"):
        dp.plot.check_plot_path("curves.docx")


def test_plot_history_without_matplotlib_says_how_to_install(monkeypatch, tmp_path):
    import sys
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"pip install 'deltaprop\[plot\]'"):
        dp.plot_history({"epochs": [1], "train_loss": [0.5]}, tmp_path / "x.png")


def test_builtin_model_evaluates_a_file_of_its_own_labels(capsys, tmp_path):
    # a digits model scores an .npz of digits rows: labels are the class indices (3 stays 3)
    model = str(tmp_path / "d.safetensors")
    cli_json(capsys, "train", "--hidden", "16", "--epochs", "3", "--out", model, "--no-plot", "--json")
    X, y = dp.data.digits(dtype=np.float64)
    keep = (y == 3) | (y == 5)
    np.savez(tmp_path / "d.npz", X=X[keep], y=y[keep])
    ev = cli_json(capsys, "evaluate", model, "--data", str(tmp_path / "d.npz"), "--json")
    cli_json(capsys, "predict", model, "--data", str(tmp_path / "d.npz"), "--out", str(tmp_path / "p.csv"), "--json")
    header, rows = read_preds(tmp_path / "p.csv")
    assert header == ["prediction", *[f"p_{i}" for i in range(10)]]
    assert np.mean([int(r[0]) == t for r, t in zip(rows, y[keep])]) == pytest.approx(ev["accuracy"])
    assert ev["n"] == int(keep.sum()) and ev["accuracy"] > 0.5


@pytest.mark.parametrize("given", [
    {"dataset": "digits"},
    {"dataset": "digits", "model": "cnn", "scheduler": "step", "weight_decay": 1e-4, "early_stopping": 4},
    {"dataset": "xor", "optimizer": "sgd", "momentum": 0.5, "batch_size": 0, "dtype": "float64"},
    {"dataset": "file", "data": "/data/x.csv", "target": "t", "task": "regression", "hidden": (8, 4), "seed": 7},
])
def test_run_config_round_trips_through_metadata(given):
    cfg = run.RunConfig.for_dataset(**given)
    meta = json.loads(json.dumps(cfg.to_metadata()))  # as stored in a model file
    meta.update(sizes=[2, *cfg.hidden, 2], output_activation=None, loss="cross_entropy", normalize=None)
    assert run.RunConfig.from_metadata(meta) == cfg


def test_run_config_errors_name_the_field():
    with pytest.raises(run.RunConfigError) as e:
        run.RunConfig.for_dataset("moons", lr=-1.0)
    assert e.value.field == "lr" and str(e.value) == "RunConfig: lr is -1.0, not a positive number"
    with pytest.raises(run.RunConfigError, match="unknown dataset 'imagenet'; choose one of: digits"):
        run.RunConfig.for_dataset("imagenet")
    with pytest.raises(run.RunConfigError, match="dataset 'file' needs data"):
        run.RunConfig.for_dataset("file")
    with pytest.raises(run.RunConfigError, match="momentum applies to optimizer sgd only"):
        run.RunConfig.for_dataset("moons", momentum=0.9)
