"""Model files written by `deltaprop train` before the run API (metadata format 1, committed in
tests/fixtures/format1, made with: train --dataset digits --hidden 8 --epochs 2 --checkpoint;
train --dataset mazur --epochs 50) still evaluate, resume and rebuild with today's code."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

import deltaprop as dp
from deltaprop import cli

HERE = os.path.join(os.path.dirname(__file__), "fixtures", "format1")


def fixture(name):
    return os.path.join(HERE, name)


def expected(name):
    with open(fixture(name)) as f:
        return json.load(f)


def run_json(capsys, *argv):
    rc = cli.main(list(argv))
    out, err = capsys.readouterr()
    assert rc == 0, err
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.parametrize("model, reference", [("model.safetensors", "evaluate.json"),
                                              ("ckpt.safetensors", "evaluate.json"),
                                              ("mazur.safetensors", "mazur_eval.json")])
def test_old_files_evaluate_to_the_numbers_they_had(capsys, model, reference):
    got = run_json(capsys, "evaluate", fixture(model), "--json")
    want = expected(reference)
    for key in ("dataset", "epochs", "sizes", "activation", "n_test", "seed", "dtype"):
        assert got[key] == want[key], key
    for key in ("test_accuracy", "train_accuracy"):
        assert got[key] == want[key], key
    for key in ("test_loss", "train_loss_eval"):
        assert got[key] == pytest.approx(want[key], rel=1e-5), key


def test_old_checkpoint_resumes_like_a_straight_run(capsys, tmp_path):
    ckpt = tmp_path / "ckpt.safetensors"
    shutil.copy(fixture("ckpt.safetensors"), ckpt)
    out = tmp_path / "resumed.safetensors"
    res = run_json(capsys, "train", "--resume", str(ckpt), "--epochs", "3", "--out", str(out), "--no-plot", "--json")
    assert res["epochs"] == 3 and res["dataset"] == "digits" and res["sizes"] == [64, 8, 10]
    straight = dp.load(fixture("straight3.safetensors"))  # the old code's uninterrupted 3-epoch run
    resumed = dp.load(out)
    assert list(resumed) == list(straight)
    for k in straight:  # same code path and data: equal up to BLAS rounding on another machine
        np.testing.assert_allclose(resumed[k], straight[k], rtol=1e-5, atol=1e-6, err_msg=k)
    assert dp.load_metadata(out)["history"]["epochs"] == [1, 2, 3]


def test_old_model_file_resumes_with_a_fresh_optimizer(capsys, tmp_path):
    res = run_json(capsys, "train", "--resume", fixture("model.safetensors"), "--epochs", "3",
                   "--out", str(tmp_path / "m.safetensors"), "--no-plot", "--json")
    assert res["epochs"] == 3 and res["resumed_from"] == fixture("model.safetensors")
