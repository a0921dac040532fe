"""The main job scaled out: `mpiexec -n N deltaprop train` is the one-process run, split across
ranks; only rank 0 prints and writes; a checkpoint written by rank 0 resumes on every rank."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def _json(stdout: str) -> dict:
    lines = [ln for ln in stdout.splitlines() if ln.startswith("{")]
    assert len(lines) == 1, stdout  # one JSON line: rank 0's
    return json.loads(lines[0])


def _files(root) -> list[str]:
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


def test_mpiexec_train_json_reaches_the_accuracy_and_writes_one_model_file(mpirun, tmp_path):
    out = mpirun(2, "deltaprop", ["train", "--json", "--no-plot", "--out", "model.safetensors"], cwd=tmp_path,
                 module=True, timeout=300)
    res = _json(out.stdout)
    assert res["world_size"] == 2 and res["batch_size"] == 32  # the global batch
    assert res["test_accuracy"] >= 0.97
    assert _files(tmp_path) == ["model.safetensors"]
    assert (out.stdout + out.stderr).count("saved model to") == 1  # rank 0's summary only
    ev = subprocess.run([sys.executable, "-m", "deltaprop", "evaluate", "model.safetensors", "--json"],
                        cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert ev.returncode == 0, ev.stderr
    assert abs(_json(ev.stdout)["test_accuracy"] - res["test_accuracy"]) < 1e-12


@pytest.mark.parametrize("n, extra", [(2, ["--epochs", "2"]),
                                      # early stopping and the plateau schedule decide on global figures
                                      (3, ["--epochs", "10", "--lr", "0.05", "--early-stopping", "1",
                                           "--scheduler", "plateau"])])
def test_the_scaled_out_run_is_the_one_process_run(mpirun, tmp_path, n, extra):
    # float64, digits' 1437 training samples in global batches of 32 (the last one 29: unequal shards)
    args = ["train", "--json", "--no-plot", "--dtype", "float64", *extra]
    one = subprocess.run([sys.executable, "-m", "deltaprop", *args, "--out", "one.safetensors"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr
    many = _json(mpirun(n, "deltaprop", [*args, "--out", "many.safetensors"], cwd=tmp_path, module=True,
                        timeout=300).stdout)
    one = _json(one.stdout)
    assert many["world_size"] == n and "world_size" in one and one["world_size"] == 1
    assert many["epochs"] == one["epochs"] and many.get("best_epoch") == one.get("best_epoch")
    for key in ("train_loss", "test_loss", "train_accuracy", "test_accuracy"):
        assert abs(many[key] - one[key]) <= 1e-10 * max(1.0, abs(one[key])), key


def test_only_rank_0_writes_and_every_rank_resumes_from_its_checkpoint(mpirun, tmp_path):
    # MPMD launch: rank 0 is told to write into a/, rank 1 into b/; only a/ may receive files
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
    common = ["-m", "deltaprop", "train", "--json", "--epochs", "2", "--dtype", "float64"]
    per_rank = [[*common, "--out", f"{d}/model.safetensors", "--checkpoint", f"{d}/ckpt.safetensors",
                 "--plot", f"{d}/training.png"] for d in ("a", "b")]
    mpirun(2, "", per_rank=per_rank, cwd=tmp_path, timeout=300)
    written = _files(tmp_path)
    assert [f for f in written if f.startswith("b/")] == []
    assert "a/model.safetensors" in written and "a/ckpt.safetensors" in written
    # every rank resumes from rank 0's checkpoint: 2 ranks and 1 process continue alike
    resume = ["train", "--json", "--no-plot", "--resume", "a/ckpt.safetensors", "--epochs", "3"]
    many = _json(mpirun(2, "deltaprop", [*resume, "--out", "many.safetensors"], cwd=tmp_path, module=True,
                        timeout=300).stdout)
    one = subprocess.run([sys.executable, "-m", "deltaprop", *resume, "--out", "one.safetensors"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    one = _json(one.stdout)
    assert many["epochs"] == one["epochs"] == 3
    assert abs(many["train_loss"] - one["train_loss"]) <= 1e-10 * abs(one["train_loss"])


def test_a_failure_on_one_rank_ends_the_whole_run(mpirun, tmp_path):
    # rank 0 cannot write its model file, rank 1 could: the job ends at once, with rank 0's message
    per_rank = [["-m", "deltaprop", "train", "--epochs", "1", "--out", str(tmp_path / "missing" / "m.safetensors")],
                ["-m", "deltaprop", "train", "--epochs", "1", "--out", "ok.safetensors"]]
    out = mpirun(2, "", per_rank=per_rank, cwd=tmp_path, check=False, timeout=120)
    assert out.returncode != 0
    assert "deltaprop: error (rank 0 of 2): cannot write" in out.stderr and "does not exist" in out.stderr
    assert _files(tmp_path) == []
