"""The `deltaprop` command on bad input: one line on stderr naming the problem and what to do,
exit 2 for a usage error, 1 for a failure, never a traceback.

Covers: layer sizes too big for the machine's memory (from --hidden or from a model file's
metadata, checked before anything is allocated), NaN/Inf in the data (named by array, row and
column instead of being blamed on the learning rate), and the other bad paths and values.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import deltaprop as dp
from deltaprop import cli, run
from deltaprop import train as tr


def run_module(*argv, cwd=None):
    return subprocess.run([sys.executable, "-m", "deltaprop", *argv], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def error_line(stderr: str) -> str:
    """The one line of a clean error: no traceback, nothing else on stderr."""
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def check(proc, rc, *needles):
    assert proc.returncode == rc, (proc.returncode, proc.stderr)
    line = error_line(proc.stderr)
    for needle in needles:
        assert needle in line, (needle, line)
    return line


def run_inproc(capsys, *argv):
    rc = cli.main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def memory_text() -> str:
    return run.fmt_bytes(run._memory_bytes())


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A real moons model file and checkpoint (1 epoch) written by `deltaprop train`."""
    d = tmp_path_factory.mktemp("robust")
    model, ckpt = d / "model.safetensors", d / "ckpt.safetensors"
    rc = cli.main(["train", "--dataset", "moons", "--epochs", "1", "--out", str(model), "--checkpoint", str(ckpt),
                   "--no-plot"])
    assert rc == 0
    return model, ckpt


def with_metadata(src, dst, **changes):
    """Copy a model file or checkpoint with some metadata values changed.

    The file carries a SHA-256 of its metadata and tensors (io's 'deltaprop.sha256'); writing
    through dp.save / dp.io.save_checkpoint recomputes it, so the result is a valid file whose
    metadata says what the test wants, not a corrupted one.
    """
    meta = dp.load_metadata(src)
    if meta.get("file") == "checkpoint":
        ck = dp.io.read_checkpoint(src)
        meta = {**ck.metadata, **changes}
        old = ck.metadata
        model = tr.build_mlp(old["sizes"], old["activation"], output_activation=old["output_activation"],
                             dtype=np.dtype(old["dtype"]))
        opt = run.make_optimizer(old["optimizer"], model.parameters(), old["lr"], old["momentum"])
        epoch = dp.io.load_checkpoint(src, model, opt)
        dp.io.save_checkpoint(dst, model, opt, epoch=epoch, metadata=meta)
    else:
        dp.save(dp.load(src), dst, metadata={**meta, **changes})
    written = dp.load_metadata(dst)
    assert all(json.dumps(written[k]) == json.dumps(v) for k, v in changes.items())  # json: NaN == NaN
    return str(dst)


# ----------------------------------------------------------------------------- 1. --hidden too big

def test_huge_hidden_is_a_usage_error_naming_size_and_memory(tmp_path):
    out = tmp_path / "m.safetensors"
    proc = run_module("train", "--hidden", "99999999999", "--out", str(out), "--no-plot")
    line = check(proc, 2, "--hidden 99999999999", "64-99999999999-10", "7,499,999,999,935 parameters",
                 "27.3 TiB of float32 weights", f"this machine's {memory_text()} of memory", "smaller")
    assert line.startswith("deltaprop train: error:")
    assert not out.exists()


def test_absurd_hidden_sizes_do_not_overflow():
    proc = run_module("train", "--hidden", "99999999999999999999999,5", "--no-plot")
    check(proc, 2, "99999999999999999999999", "parameters", memory_text())


def test_size_check_counts_weights_gradients_and_optimizer_state(capsys, tmp_path, monkeypatch):
    # digits 64-100-10: 64*100 + 100 + 100*10 + 10 = 7510 parameters = 30040 bytes as float32.
    # Training with adam holds 5 such arrays (weights, gradients, 2 moments, the last good epoch).
    assert tr.mlp_parameter_count([64, 100, 10]) == 7510
    out = str(tmp_path / "m.safetensors")
    base = ("train", "--hidden", "100", "--epochs", "1", "--out", out, "--no-plot")
    monkeypatch.setattr(run, "_memory_bytes", lambda: 5 * 30040 - 1)
    rc, _, err = run_inproc(capsys, *base)
    assert rc == 2 and "7,510 parameters" in err and "adam" in err and "Traceback" not in err
    assert not os.path.exists(out)
    monkeypatch.setattr(run, "_memory_bytes", lambda: 5 * 30040)
    rc, _, err = run_inproc(capsys, *base)
    assert rc == 0, err
    # plain SGD has no state: 3 arrays; float64 doubles the bytes
    monkeypatch.setattr(run, "_memory_bytes", lambda: 3 * 60080 - 1)
    rc, _, err = run_inproc(capsys, *base, "--optimizer", "sgd", "--momentum", "0", "--dtype", "float64")
    assert rc == 2 and "float64" in err
    monkeypatch.setattr(run, "_memory_bytes", lambda: 3 * 60080)
    rc, _, err = run_inproc(capsys, *base, "--optimizer", "sgd", "--momentum", "0", "--dtype", "float64")
    assert rc == 0, err


def test_memory_falls_back_to_a_fixed_cap(monkeypatch):
    def no_sysconf(name):
        raise ValueError(name)
    monkeypatch.setattr(os, "sysconf", no_sysconf)
    assert run._memory_bytes() == run.MEMORY_FALLBACK == 1 << 40


def test_running_out_of_memory_anyway_is_one_line(capsys, tmp_path, monkeypatch):
    def oom(*a, **k):
        raise MemoryError("Unable to allocate 3.0 GiB for an array with shape (1000, 1000, 100)")
    monkeypatch.setattr(tr, "build_mlp", oom)
    rc, _, err = run_inproc(capsys, "train", "--dataset", "xor", "--out", str(tmp_path / "m.safetensors"),
                            "--no-plot")
    assert rc == 1
    line = error_line(err)
    assert "out of memory" in line and "3.0 GiB" in line and "--hidden" in line


# ----------------------------------------------------------------------------- 2. file sizes too big

@pytest.mark.parametrize("kind", ["model", "checkpoint"])
@pytest.mark.parametrize("command", ["evaluate", "resume"])
def test_file_whose_metadata_sizes_are_too_big(files, tmp_path, kind, command):
    src = files[0] if kind == "model" else files[1]
    bad = with_metadata(src, tmp_path / "big.safetensors", sizes=[2, 10**12, 2])
    if command == "evaluate":
        proc = run_module("evaluate", bad)
    else:
        proc = run_module("train", "--resume", bad, "--epochs", "3", "--out", str(tmp_path / "x.safetensors"),
                          "--no-plot")
    line = check(proc, 1, repr(bad), "'sizes'", "2-1000000000000-2", "5,000,000,000,002 parameters",
                 f"this machine's {memory_text()} of memory")
    assert line.startswith("deltaprop: error:")


# ----------------------------------------------------------------------------- 3. non-finite data

def nan_data(dataset, row, col, value):
    real = run._raw_data

    def poisoned(name, seed):
        X, y = real(name, seed)
        X = X.copy()
        if name == dataset:
            X[row, col] = value
        return X, y
    return poisoned


@pytest.mark.parametrize("dataset, row, col, value", [("moons", 7, 1, np.nan), ("xor", 3, 0, np.inf)])
def test_nonfinite_data_is_named_not_blamed_on_the_learning_rate(capsys, tmp_path, monkeypatch,
                                                                 dataset, row, col, value):
    monkeypatch.setattr(run, "_raw_data", nan_data(dataset, row, col, value))
    out = tmp_path / "m.safetensors"
    rc, _, err = run_inproc(capsys, "train", "--dataset", dataset, "--out", str(out), "--no-plot")
    assert rc == 1
    line = error_line(err)
    assert f"features of dataset {dataset!r}" in line
    assert f"{value} at row {row}, column {col}" in line
    assert "lower the learning rate" not in line and "--lr" not in line
    assert not out.exists()


def test_evaluate_sees_nonfinite_data_too(capsys, files, monkeypatch):
    monkeypatch.setattr(run, "_raw_data", nan_data("moons", 11, 0, -np.inf))
    rc, _, err = run_inproc(capsys, "evaluate", str(files[0]))
    assert rc == 1
    assert "-inf at row 11, column 0" in error_line(err)


def test_evaluate_nan_normalization_in_metadata_names_the_column(files, tmp_path):
    meta = dp.load_metadata(files[0])
    norm = {"mean": [meta["normalize"]["mean"][0], float("nan")], "std": meta["normalize"]["std"]}
    bad = with_metadata(files[0], tmp_path / "nan.safetensors", normalize=norm)
    check(run_module("evaluate", bad), 1, repr(bad), "'normalize'", "mean[1] = nan", "column 1")


def test_fit_names_nonfinite_inputs_instead_of_the_learning_rate():
    X, y = dp.data.moons(n=100, noise=0.1, seed=0)
    X[5, 1] = np.nan
    dp.manual_seed(0)
    model = tr.build_mlp([2, 8, 2], "tanh")
    opt = dp.optim.SGD(model.parameters(), lr=0.1)
    loader = dp.data.DataLoader(dp.data.TensorDataset(X, y), batch_size=10)
    from deltaprop.nn import functional as F
    with pytest.raises(tr.NonFiniteInputError, match=r"training inputs .* nan at row 5, column 1") as info:
        tr.fit(model, F.cross_entropy, opt, loader, 1)
    assert not isinstance(info.value, tr.NonFiniteLossError)
    assert "lower the learning rate" not in str(info.value)
    assert info.value.index == (5, 1) and info.value.count == 1
    # an evaluation set is checked too
    X[5, 1] = 0.0
    Xte = X.copy()
    Xte[2, 0] = np.inf
    with pytest.raises(tr.NonFiniteInputError, match=r"evaluation set 'test' .* inf at row 2, column 0"):
        tr.fit(model, F.cross_entropy, opt, loader, 1, eval_sets={"test": (Xte, y)})


def test_fit_checks_the_batch_of_other_loaders_when_the_loss_is_not_finite():
    X, y = dp.data.moons(n=40, noise=0.1, seed=0)
    X[13, 0] = np.nan
    batches = [(dp.tensor(X[i:i + 10]), dp.tensor(y[i:i + 10])) for i in range(0, 40, 10)]
    dp.manual_seed(0)
    model = tr.build_mlp([2, 4, 2], "tanh")
    opt = dp.optim.SGD(model.parameters(), lr=0.1)
    from deltaprop.nn import functional as F
    with pytest.raises(tr.NonFiniteInputError, match=r"inputs of batch 2 of epoch 1 .* nan at row 3, column 0"):
        tr.fit(model, F.cross_entropy, opt, batches, 1)


# ----------------------------------------------------------------------------- 4. the other bad inputs

USAGE_ERRORS = [
    (["train", "--hidden", "4,,x"], ["--hidden", "'4,,x'"]),
    (["train", "--hidden", "16,0"], ["--hidden", "'16,0'", "positive"]),
    (["train", "--hidden", "-3"], ["--hidden", "'-3'"]),
    (["train", "--epochs", "-1"], ["--epochs", "'-1'"]),
    (["train", "--epochs", "2.5"], ["--epochs", "'2.5'"]),
    (["train", "--batch-size", "-5"], ["--batch-size", "'-5'"]),
    (["train", "--lr", "-0.1"], ["--lr", "'-0.1'"]),
    (["train", "--lr", "nan"], ["--lr", "'nan'"]),
    (["train", "--lr", "inf"], ["--lr", "'inf'"]),
    (["train", "--optimizer", "sgd", "--momentum", "1.5"], ["--momentum", "'1.5'"]),
    (["train", "--seed", "-1"], ["--seed", "'-1'"]),
    (["train", "--dataset", "imagenet"], ["'imagenet'", "digits", "spirals"]),
    (["train", "--bogus"], ["--bogus", "--hidden", "--epochs"]),  # lists the valid options
    (["train", "--out", ""], ["--out", "''"]),
    (["train", "--dataset", "xor", "--plot", "curves.docx"], ["--plot", "'curves.docx'", ".png"]),
    (["evaluate"], ["MODEL"]),
    (["evaluate", "a.safetensors", "b.safetensors"], ["b.safetensors"]),
    (["frobnicate"], ["'frobnicate'", "train", "evaluate"]),
]


@pytest.mark.parametrize("argv, needles", USAGE_ERRORS, ids=[" ".join(argv) for argv, _ in USAGE_ERRORS])
def test_usage_errors_are_one_line_exit_2(tmp_path, argv, needles):
    line = check(run_module(*argv, cwd=str(tmp_path)), 2, *needles)
    assert "--help" in line  # what to do
    assert not (tmp_path / "model.safetensors").exists()


@pytest.mark.parametrize("option", ["--out", "--checkpoint", "--plot"])
def test_output_path_that_is_a_directory_fails_before_training(tmp_path, option):
    d = tmp_path / "somewhere"
    d.mkdir()
    argv = ["train", "--dataset", "xor", "--epochs", "1", "--out", str(tmp_path / "m.safetensors"), option, str(d)]
    check(run_module(*argv, cwd=str(tmp_path)), 1, option, repr(str(d)), "is a directory", "file name")
    assert not (tmp_path / "m.safetensors").exists()  # nothing was trained
    assert not (tmp_path / "somewhere.png").exists()


@pytest.mark.parametrize("command", ["evaluate", "resume"])
def test_directory_given_as_model_file(tmp_path, command):
    argv = ["evaluate", str(tmp_path)] if command == "evaluate" else ["train", "--resume", str(tmp_path)]
    check(run_module(*argv), 1, repr(str(tmp_path)), "is a directory", "not a", "deltaprop train")


@pytest.mark.parametrize("key, value, needle", [
    ("epochs", [1], "'epochs'"),
    ("epochs", "abc", "'epochs'"),
    ("history", [1, 2], "'history'"),
    ("history", {"train_loss": 5}, "'history'"),
    ("lr", float("inf"), "'lr'"),
])
def test_resume_from_file_with_bad_metadata_names_the_key(files, tmp_path, key, value, needle):
    bad = with_metadata(files[0], tmp_path / "bad.safetensors", **{key: value})
    proc = run_module("train", "--resume", bad, "--epochs", "3", "--no-plot", "--out", str(tmp_path / "x.safetensors"))
    line = check(proc, 1, repr(bad), needle)
    assert "lower the learning rate" not in line


def test_file_errors_that_were_already_one_line(tmp_path):
    """Regression guard (these passed before this file was written): missing, empty and garbage
    model files give one line naming the file, for evaluate and for --resume."""
    missing = str(tmp_path / "missing.safetensors")
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 8 + b"not a model")
    for path in (missing, str(empty), str(junk)):
        check(run_module("evaluate", path), 1, repr(path))
        check(run_module("train", "--resume", path, "--no-plot"), 1, repr(path))
