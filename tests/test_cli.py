"""The `deltaprop` command: train, evaluate, exit codes, --json, resume, NaN handling."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import deltaprop as dp
from deltaprop import cli

REQUIRED_KEYS = {"dataset", "epochs", "train_loss", "test_accuracy", "seconds", "model_path",
                 "train_accuracy", "hidden", "activation", "optimizer", "lr", "batch_size", "seed"}


def run(capsys, *argv):
    """Run the CLI in-process; return (exit code, stdout, stderr)."""
    rc = cli.main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def last_json(out: str) -> dict:
    lines = out.rstrip("\n").splitlines()
    assert lines, "nothing on stdout"
    return json.loads(lines[-1])


def run_module(*argv, cwd=None):
    return subprocess.run([sys.executable, "-m", "deltaprop", *argv], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def train_json(capsys, tmp_path, *argv, name="model.safetensors"):
    out_path = str(tmp_path / name)
    rc, out, err = run(capsys, "train", *argv, "--out", out_path, "--no-plot", "--json")
    assert rc == 0, err
    return last_json(out), out_path


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    """The real default run (`deltaprop train --json`), once, in a scratch directory."""
    d = tmp_path_factory.mktemp("default")
    proc = run_module("train", "--json", cwd=str(d))
    return proc, d


# ----------------------------------------------------------------------------- help

def test_bare_command_prints_help(capsys):
    rc, out, err = run(capsys)
    assert rc == 0
    assert "usage: deltaprop" in out
    for cmd in ("train", "evaluate", "explain", "bench"):
        assert cmd in out


def test_bare_module_prints_help():
    proc = run_module()
    assert proc.returncode == 0
    assert "usage: deltaprop" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_train_help_shows_every_default(capsys):
    rc, out, _ = run(capsys, "train", "--help")
    assert rc == 0
    flat = " ".join(out.split())
    for opt in ("--dataset", "--hidden", "--activation", "--optimizer", "--lr", "--momentum", "--epochs",
                "--batch-size", "--seed", "--dtype", "--out", "--plot", "--no-plot", "--checkpoint",
                "--resume", "--json"):
        assert opt in flat
    # one "(default: ...)" per option besides --help
    parser = cli.build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]  # noqa: SLF001
    for action in train._actions:  # noqa: SLF001
        if action.dest != "help":
            assert "default" in (action.help or ""), action.dest
    assert "model.safetensors" in flat and "training.png" in flat
    assert "digits 128" in flat  # the per-dataset defaults are listed


# ----------------------------------------------------------------------------- the main job

def test_default_run_reaches_target(default_run):
    proc, d = default_run
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    res = last_json(proc.stdout)
    assert REQUIRED_KEYS <= set(res)
    assert res["dataset"] == "digits"
    assert res["test_accuracy"] >= 0.97
    assert res["seed"] == 0
    assert isinstance(res["seconds"], float) and res["seconds"] > 0
    assert res["model_path"] == "model.safetensors"
    assert (d / "model.safetensors").exists()
    meta = dp.load_metadata(d / "model.safetensors")
    for key in ("sizes", "activation", "dataset", "seed", "dtype", "normalize", "epochs"):
        assert key in meta
    assert meta["epochs"] == res["epochs"]
    assert len(meta["normalize"]["mean"]) == 64
    pytest.importorskip("matplotlib")
    assert (d / "training.png").stat().st_size > 1000


def test_json_is_last_line_of_stdout(default_run):
    proc, _ = default_run
    lines = proc.stdout.rstrip("\n").splitlines()
    assert lines[-1].startswith("{") and lines[-1].endswith("}")
    json.loads(lines[-1])
    assert proc.stdout.endswith("\n")


def test_human_output_prints_test_accuracy(capsys, tmp_path):
    rc, out, err = run(capsys, "train", "--dataset", "moons", "--epochs", "3", "--out",
                       str(tmp_path / "m.safetensors"), "--no-plot")
    assert rc == 0, err
    assert "test accuracy:" in out
    assert "saved model to" in out


def test_evaluate_round_trip_default(default_run, capsys):
    proc, d = default_run
    trained = last_json(proc.stdout)
    rc, out, err = run(capsys, "evaluate", str(d / "model.safetensors"), "--json")
    assert rc == 0, err
    res = last_json(out)
    assert res["test_accuracy"] == trained["test_accuracy"]
    assert res["test_loss"] == pytest.approx(trained["test_loss"], rel=1e-6)


def test_xor_target(capsys, tmp_path):
    res, _ = train_json(capsys, tmp_path, "--dataset", "xor", "--hidden", "2", "--activation", "sigmoid")
    assert res["train_loss"] < 0.01
    assert res["test_accuracy"] == 1.0
    assert res["batch_size"] == 4  # full batch


def test_mazur_regression_and_evaluate(capsys, tmp_path):
    res, path = train_json(capsys, tmp_path, "--dataset", "mazur", "--epochs", "300")
    assert res["sizes"] == [2, 2, 2]
    assert res["train_loss"] < 0.05
    rc, out, err = run(capsys, "evaluate", path, "--json")
    assert rc == 0, err
    ev = last_json(out)
    assert ev["test_accuracy"] == res["test_accuracy"]
    assert ev["test_loss"] == pytest.approx(res["train_loss"], rel=0.2)  # the same single point


@pytest.mark.parametrize("dataset", ["moons", "circles", "spirals"])
def test_other_datasets_run_and_evaluate(capsys, tmp_path, dataset):
    res, path = train_json(capsys, tmp_path, "--dataset", dataset, "--epochs", "3")
    assert res["dataset"] == dataset and res["epochs"] == 3
    rc, out, err = run(capsys, "evaluate", path, "--json")
    assert rc == 0, err
    assert last_json(out)["test_accuracy"] == res["test_accuracy"]


def test_options_are_applied(capsys, tmp_path):
    res, path = train_json(capsys, tmp_path, "--dataset", "moons", "--hidden", "8,4", "--activation", "gelu",
                           "--optimizer", "rmsprop", "--lr", "0.005", "--epochs", "2", "--batch-size", "50",
                           "--seed", "3", "--dtype", "float64")
    assert res["hidden"] == [8, 4] and res["activation"] == "gelu" and res["optimizer"] == "rmsprop"
    assert res["lr"] == 0.005 and res["batch_size"] == 50 and res["seed"] == 3 and res["epochs"] == 2
    sd = dp.load(path)
    assert [sd[k].shape for k in sd] == [(8, 2), (8,), (4, 8), (4,), (2, 4), (2,)]
    assert all(v.dtype == np.float64 for v in sd.values())
    rc, out, err = run(capsys, "evaluate", path, "--json")
    assert rc == 0, err
    assert last_json(out)["test_accuracy"] == res["test_accuracy"]


def test_no_hidden_layer(capsys, tmp_path):
    res, path = train_json(capsys, tmp_path, "--dataset", "moons", "--hidden", "", "--epochs", "2")
    assert res["hidden"] == []
    assert list(dp.load(path)) == ["0.weight", "0.bias"]


def test_same_seed_is_bit_identical_and_seed_matters(capsys, tmp_path):
    args = ("--dataset", "moons", "--epochs", "3")
    r1, p1 = train_json(capsys, tmp_path, *args, name="a.safetensors")
    r2, p2 = train_json(capsys, tmp_path, *args, name="b.safetensors")
    r3, p3 = train_json(capsys, tmp_path, *args, "--seed", "1", name="c.safetensors")
    a, b, c = dp.load(p1), dp.load(p2), dp.load(p3)
    for k in a:
        assert a[k].tobytes() == b[k].tobytes()
    assert r1["train_loss"] == r2["train_loss"]
    assert any(not np.array_equal(a[k], c[k]) for k in a)


def test_plot_written(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    plot = tmp_path / "curves.png"
    rc, out, err = run(capsys, "train", "--dataset", "xor", "--epochs", "20", "--out",
                       str(tmp_path / "m.safetensors"), "--plot", str(plot), "--json")
    assert rc == 0, err
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert last_json(out)["plot_path"] == str(plot)


def test_without_matplotlib_says_how_to_get_the_plot(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    plot = tmp_path / "curves.png"
    rc, out, err = run(capsys, "train", "--dataset", "xor", "--epochs", "5", "--out",
                       str(tmp_path / "m.safetensors"), "--plot", str(plot))
    assert rc == 0
    assert "pip install 'deltaprop[plot]'" in err
    assert not plot.exists()


# ----------------------------------------------------------------------------- usage errors (exit 2)

def test_unknown_dataset_lists_choices_without_traceback():
    proc = run_module("train", "--dataset", "imagenet")
    assert proc.returncode == 2
    for name in ("digits", "xor", "mazur", "moons", "circles", "spirals"):
        assert name in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


@pytest.mark.parametrize("argv, needle", [
    (["train", "--bogus"], "--bogus"),
    (["train", "--lr", "-1"], "--lr"),
    (["train", "--lr", "abc"], "--lr"),
    (["train", "--epochs", "0"], "--epochs"),
    (["train", "--hidden", "a,b"], "--hidden"),
    (["train", "--activation", "swish"], "relu"),
    (["train", "--optimizer", "lbfgs"], "adamw"),
    (["train", "--dtype", "float16"], "float64"),
    (["train", "--momentum", "0.9"], "--momentum"),  # default optimizer is adam
    (["frobnicate"], "train"),
    (["evaluate"], "MODEL"),
])
def test_usage_errors_exit_2(capsys, argv, needle):
    rc, out, err = run(capsys, *argv)
    assert rc == 2
    assert needle in err
    assert "Traceback" not in err


# ----------------------------------------------------------------------------- failures (exit 1)

def test_evaluate_wrong_architecture_names_key_and_shapes(capsys, tmp_path):
    _, small = train_json(capsys, tmp_path, "--dataset", "moons", "--hidden", "8", "--epochs", "1",
                          name="small.safetensors")
    _, big = train_json(capsys, tmp_path, "--dataset", "moons", "--hidden", "16", "--epochs", "1",
                        name="big.safetensors")
    bad = tmp_path / "bad.safetensors"
    dp.save(dp.load(big), bad, metadata=dp.load_metadata(small))  # hidden-16 weights, hidden-8 metadata
    rc, out, err = run(capsys, "evaluate", str(bad))
    assert rc == 1
    assert "'0.weight'" in err
    assert "(16, 2)" in err and "(8, 2)" in err
    assert "Traceback" not in err


def test_evaluate_missing_metadata(capsys, tmp_path):
    plain = tmp_path / "plain.safetensors"
    dp.save({"0.weight": np.zeros((3, 2), np.float32)}, plain)
    rc, out, err = run(capsys, "evaluate", str(plain))
    assert rc == 1
    assert "'dataset'" in err and "metadata" in err
    assert "Traceback" not in err


def test_evaluate_missing_and_corrupt_files(capsys, tmp_path):
    rc, out, err = run(capsys, "evaluate", str(tmp_path / "nope.safetensors"))
    assert rc == 1 and "nope.safetensors" in err and "Traceback" not in err
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"this is not a model")
    rc, out, err = run(capsys, "evaluate", str(junk))
    assert rc == 1 and "junk.safetensors" in err and "Traceback" not in err


def test_evaluate_subprocess_failure_has_no_traceback(tmp_path):
    proc = run_module("evaluate", str(tmp_path / "missing.safetensors"))
    assert proc.returncode == 1
    assert "deltaprop: error:" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_out_directory_missing(capsys, tmp_path):
    rc, out, err = run(capsys, "train", "--dataset", "xor", "--epochs", "1", "--out",
                       str(tmp_path / "no" / "such" / "m.safetensors"), "--no-plot")
    assert rc == 1 and "does not exist" in err and "Traceback" not in err


# Digits with SGD at lr 3 (momentum 0.9) trains for an epoch, then the loss overflows (epoch 2,
# step 42 here; the tests accept any later epoch, since BLAS rounding may move it).
DIVERGE = ("--optimizer", "sgd", "--lr", "3", "--momentum", "0.9", "--epochs", "6")


def test_nan_loss_exits_1_naming_epoch_and_step_and_keeps_last_finite_model(capsys, tmp_path):
    path = tmp_path / "m.safetensors"
    rc, out, err = run(capsys, "train", *DIVERGE, "--out", str(path), "--no-plot")
    assert rc == 1
    m = re.search(r"became (nan|inf|-inf) at epoch (\d+), step (\d+) of 45", err)
    assert m, err
    epoch = int(m.group(2))
    assert 2 <= epoch <= 6
    assert "Traceback" not in err
    assert path.exists()
    meta = dp.load_metadata(path)
    assert meta["epochs"] == epoch - 1
    assert f"last finite epoch ({epoch - 1})" in err
    assert all(np.isfinite(v).all() for v in dp.load(path).values())
    rc, out, err = run(capsys, "evaluate", str(path), "--json")
    assert rc == 0, err
    assert 0.0 <= last_json(out)["test_accuracy"] <= 1.0


def test_nan_loss_json(capsys, tmp_path):
    rc, out, err = run(capsys, "train", *DIVERGE, "--out", str(tmp_path / "m.safetensors"), "--no-plot", "--json")
    assert rc == 1
    res = last_json(out)
    assert res["failed_epoch"] >= 2 and 1 <= res["failed_step"] <= 45
    assert res["epochs"] == res["failed_epoch"] - 1
    assert "error" in res


def test_nan_in_first_epoch_keeps_initial_model(capsys, tmp_path):
    path = tmp_path / "m.safetensors"
    rc, out, err = run(capsys, "train", "--dataset", "moons", "--activation", "relu", "--optimizer", "sgd",
                       "--lr", "1e6", "--out", str(path), "--no-plot")
    assert rc == 1
    assert "epoch 1, step" in err and "initial model" in err
    assert dp.load_metadata(path)["epochs"] == 0


def test_nan_subprocess_no_traceback(tmp_path):
    proc = run_module("train", *DIVERGE, "--out", str(tmp_path / "m.safetensors"), "--no-plot")
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and "Warning" not in proc.stderr
    assert re.search(r"deltaprop: error: the loss became \S+ at epoch \d+, step \d+", proc.stderr)


# ----------------------------------------------------------------------------- resume

@pytest.mark.parametrize("extra", [
    ("--dataset", "digits", "--hidden", "32"),
    ("--dataset", "moons", "--optimizer", "sgd", "--momentum", "0.9", "--lr", "0.05"),
    ("--dataset", "xor"),  # full batch, sgd with momentum
])
def test_resume_equals_straight_run_bit_for_bit(capsys, tmp_path, extra):
    ckpt = tmp_path / "ckpt.safetensors"
    r2, _ = train_json(capsys, tmp_path, *extra, "--epochs", "2", "--checkpoint", str(ckpt), name="two.safetensors")
    assert r2["epochs"] == 2 and ckpt.exists()
    rr, resumed = train_json(capsys, tmp_path, "--resume", str(ckpt), "--epochs", "4",
                             "--checkpoint", str(tmp_path / "ckpt_r.safetensors"), name="resumed.safetensors")
    rs, straight = train_json(capsys, tmp_path, *extra, "--epochs", "4",
                              "--checkpoint", str(tmp_path / "ckpt_s.safetensors"), name="straight.safetensors")
    a, b = dp.load(resumed), dp.load(straight)
    assert list(a) == list(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].tobytes() == b[k].tobytes(), k
    assert rr["train_loss"] == rs["train_loss"]
    assert rr["test_accuracy"] == rs["test_accuracy"]
    assert rr["epochs"] == rs["epochs"] == 4
    # optimizer state too
    ca = dp.io.read_checkpoint(tmp_path / "ckpt_r.safetensors")
    cb = dp.io.read_checkpoint(tmp_path / "ckpt_s.safetensors")
    assert ca.epoch == cb.epoch == 4

    def arrays(tree, out):
        if isinstance(tree, dict):
            for k in sorted(tree, key=str):
                arrays(tree[k], out)
        elif isinstance(tree, (list, tuple)):
            for v in tree:
                arrays(v, out)
        elif isinstance(tree, np.ndarray):
            out.append(tree.tobytes())
        return out
    assert arrays(ca.optimizer_state["state"], []) == arrays(cb.optimizer_state["state"], [])
    # the history (plot curves) covers all 4 epochs
    assert dp.load_metadata(resumed)["history"] == dp.load_metadata(straight)["history"]


def test_resume_errors(capsys, tmp_path):
    ckpt = tmp_path / "ckpt.safetensors"
    train_json(capsys, tmp_path, "--dataset", "moons", "--epochs", "2", "--checkpoint", str(ckpt))
    rc, out, err = run(capsys, "train", "--resume", str(ckpt), "--epochs", "2", "--no-plot",
                       "--out", str(tmp_path / "x.safetensors"))
    assert rc == 2 and "already has 2 epochs" in err
    rc, out, err = run(capsys, "train", "--resume", str(ckpt), "--epochs", "3", "--hidden", "64", "--no-plot",
                       "--out", str(tmp_path / "x.safetensors"))
    assert rc == 2 and "--hidden" in err and "Traceback" not in err
    rc, out, err = run(capsys, "train", "--resume", str(tmp_path / "missing.safetensors"), "--no-plot")
    assert rc == 1 and "missing.safetensors" in err
    model_only = tmp_path / "model_only.safetensors"
    train_json(capsys, tmp_path, "--dataset", "moons", "--epochs", "1", name="model_only.safetensors")
    # a plain model file resumes too (DESIGN: its metadata holds what --resume needs): the
    # weights and the epoch count come back, the optimizer restarts, and the user is told so
    rc, out, err = run(capsys, "train", "--resume", str(model_only), "--epochs", "3", "--no-plot",
                       "--json", "--out", str(tmp_path / "x.safetensors"))
    assert rc == 0 and "optimizer starts fresh" in err and "Traceback" not in err
    res = json.loads(out.strip().splitlines()[-1])
    assert res["epochs"] == 3 and res["resumed_from"] == str(model_only)
    first, resumed = dp.load(str(model_only)), dp.load(str(tmp_path / "x.safetensors"))
    assert set(first) == set(resumed) and any(not np.array_equal(first[k], resumed[k]) for k in first)


def test_evaluate_accepts_a_checkpoint(capsys, tmp_path):
    ckpt = tmp_path / "ckpt.safetensors"
    res, _ = train_json(capsys, tmp_path, "--dataset", "circles", "--epochs", "2", "--checkpoint", str(ckpt))
    rc, out, err = run(capsys, "evaluate", str(ckpt), "--json")
    assert rc == 0, err
    assert last_json(out)["test_accuracy"] == res["test_accuracy"]


# ----------------------------------------------------------------------------- explain / bench

@pytest.mark.parametrize("command, module", [("explain", "deltaprop.explain.cli"), ("bench", "deltaprop.bench")])
def test_delegates_to_subcommand_main(capsys, monkeypatch, command, module):
    import importlib
    import types

    seen = []
    fake = types.ModuleType(module)
    fake.main = lambda argv: seen.append(argv) or 3
    monkeypatch.setitem(sys.modules, module, fake)
    parent, _, child = module.rpartition(".")
    monkeypatch.setattr(importlib.import_module(parent), child, fake, raising=False)
    rc = cli.main([command, "mazur", "--x", "1"])
    assert rc == 3
    assert seen == [["mazur", "--x", "1"]]


def test_missing_subcommand_module_is_a_clear_error(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "deltaprop.explain.cli", None)
    rc, out, err = run(capsys, "explain", "mazur")
    assert rc == 1
    assert "not available" in err and "Traceback" not in err


@pytest.mark.parametrize("key, value", [("sizes", "64-10"), ("activation", "swish"), ("seed", -1),
                                        ("normalize", {"mean": [0.0]}), ("dataset", "imagenet")])
def test_evaluate_malformed_metadata_names_the_key(capsys, tmp_path, key, value):
    _, path = train_json(capsys, tmp_path, "--dataset", "moons", "--epochs", "1")
    meta = dp.load_metadata(path)
    meta[key] = value
    bad = tmp_path / "bad.safetensors"
    dp.save(dp.load(path), bad, metadata=meta)
    rc, out, err = run(capsys, "evaluate", str(bad))
    assert rc == 1
    assert repr(key) in err and "Traceback" not in err
