"""`deltaprop train/evaluate/predict --data FILE.csv`: every CSV case of issue #22 is read right or
refused with one line (exit 1 for a bad file, 2 for a bad option), never a traceback."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

import deltaprop as dp
from deltaprop import cli


def run(capsys, *argv):
    rc = cli.main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def train(capsys, tmp_path, csv_text, *argv, name="d.csv"):
    p = tmp_path / name
    p.write_text(csv_text)
    model = str(tmp_path / "m.safetensors")
    rc, out, err = run(capsys, "train", "--data", str(p), *argv, "--epochs", "1", "--no-plot", "--out", model,
                       "--json")
    return rc, out, err, str(p), model


def one_line_error(err: str, rc: int, want_rc: int) -> str:
    assert rc == want_rc, err
    assert "Traceback" not in err
    lines = err.strip("\n").split("\n")
    assert len(lines) == 1, err
    return lines[0]


def rows(n, fmt):
    return "".join(fmt(i) for i in range(n))


def test_quoted_newlines_train_and_predict(capsys, tmp_path):
    animal = ["cow", "cat\ndog"]
    text = 'a,"b\nc",t\n' + rows(12, lambda i: f'{i},{i % 3},"{animal[i % 2]}"\n')
    rc, out, err, data, model = train(capsys, tmp_path, text)
    assert rc == 0, err
    meta = dp.load_metadata(model)
    assert meta["feature_names"] == ["a", "b\nc"] and meta["classes"] == ["cat\ndog", "cow"]
    rc, out, err = run(capsys, "predict", model, "--data", data, "--out", str(tmp_path / "p.csv"))
    assert rc == 0, err
    import csv
    with open(tmp_path / "p.csv", newline="") as f:
        got = list(csv.reader(f))
    assert got[0] == ["prediction", "p_cat\ndog", "p_cow"] and len(got) == 13


def test_semicolon_in_quoted_header_of_comma_file(capsys, tmp_path):
    text = '"x;y",b,t\n' + rows(10, lambda i: f"{i},{i * 2},{'ab'[i % 2]}\n")
    rc, out, err, _, model = train(capsys, tmp_path, text)
    assert rc == 0, err
    assert dp.load_metadata(model)["feature_names"] == ["x;y", "b"]


def test_big_and_uint64_integer_labels_stay_exact(capsys, tmp_path):
    labels = [9007199254740992, 9007199254740993, 2 ** 64 - 1]
    text = "a,t\n" + rows(12, lambda i: f"{i},{labels[i % 3]}\n")
    rc, out, err, data, model = train(capsys, tmp_path, text)
    assert rc == 0, err
    assert dp.load_metadata(model)["classes"] == labels
    rc, out, err = run(capsys, "evaluate", model, "--data", data, "--json")
    assert rc == 0, err
    assert json.loads(out.splitlines()[-1])["n"] == 12


IRIS_HEAD = "150,4,setosa,versicolor,virginica\n"
IRIS_ROWS = rows(12, lambda i: f"{5 + i / 10:.1f},3.{i % 7},1.{i % 5},0.{i % 3},{i % 3}\n")


def test_numeric_header_refused_with_one_line_naming_it(capsys, tmp_path):
    rc, out, err, data, _ = train(capsys, tmp_path, IRIS_HEAD + IRIS_ROWS, name="iris.csv")
    line = one_line_error(err, rc, 1)
    assert line == (f"deltaprop: error: {data}: the header (line 1: 150,4,setosa,versicolor,virginica) holds numbers "
                    "('150', '4'): it looks like data, not column names; if the file has no header row, use "
                    "--no-header (load_file(header=False)), which names the columns col0, col1, ...; if they are "
                    "the names, use --header (header=True); if it is neither, delete the line")
    # with --no-header the line is data, and its text cell is named
    rc, out, err, data, _ = train(capsys, tmp_path, IRIS_HEAD + IRIS_ROWS, "--no-header", name="iris.csv")
    line = one_line_error(err, rc, 1)
    assert line == (f"deltaprop: error: {data}: line 1 (data row 1), column 'col2': 'setosa' is not a number; "
                    "features must be numeric (encode text categories as numbers first)")
    rc, out, err, _, model = train(capsys, tmp_path, IRIS_HEAD + IRIS_ROWS, "--header", name="iris.csv")
    assert rc == 0, err
    assert dp.load_metadata(model)["feature_names"] == ["150", "4", "setosa", "versicolor"]


def test_no_header_file_trains_evaluates_and_predicts(capsys, tmp_path):
    rc, out, err, data, model = train(capsys, tmp_path, IRIS_ROWS, "--no-header", "--target", "col4")
    assert rc == 0, err
    meta = dp.load_metadata(model)
    assert meta["feature_names"] == ["col0", "col1", "col2", "col3"] and meta["header"] is False
    assert meta["classes"] == [0, 1, 2]
    rc, out, err = run(capsys, "evaluate", model, "--json")  # the split again, read as in training
    assert rc == 0, err
    rc, out, err = run(capsys, "predict", model, "--data", data, "--out", str(tmp_path / "p.csv"))
    assert rc == 0, err  # the model's header setting applies to the new file
    assert len((tmp_path / "p.csv").read_text().splitlines()) == 13


def test_row_of_empty_cells_is_one_line_error(capsys, tmp_path):
    text = "a,b,t\n" + rows(6, lambda i: f"{i},{i},{'xy'[i % 2]}\n") + ",,\n" + "7,7,x\n"
    rc, out, err, data, _ = train(capsys, tmp_path, text)
    line = one_line_error(err, rc, 1)
    assert line == (f"deltaprop: error: {data}: line 8 (data row 7): missing values (every cell is empty); remove "
                    "the row or fill it in")


def test_bad_quotes_are_one_line_error(capsys, tmp_path):
    rc, out, err, data, _ = train(capsys, tmp_path, 'a,t\n1,x\n2,"open\n3,y\n')
    line = one_line_error(err, rc, 1)
    assert line.startswith(f"deltaprop: error: {data}: line 3: not valid CSV (unexpected end of data)")


def test_delimiter_option(capsys, tmp_path):
    text = "a:b:t\n" + rows(10, lambda i: f"{i}:{i % 4}:{'pq'[i % 2]}\n")
    rc, out, err, data, model = train(capsys, tmp_path, text)
    assert "has 1 column" in one_line_error(err, rc, 1)
    rc, out, err, data, model = train(capsys, tmp_path, text, "--delimiter", ":")
    assert rc == 0, err
    assert dp.load_metadata(model)["delimiter"] == ":"
    rc, out, err = run(capsys, "evaluate", model, "--data", data)
    assert rc == 0, err
    tab = tmp_path / "t.tsv"
    tab.write_text(text.replace(":", "\t"))
    rc, out, err = run(capsys, "evaluate", model, "--data", str(tab), "--delimiter", "tab")
    assert rc == 0, err


@pytest.mark.parametrize("argv, needle", [
    (["train", "--data", "x.csv", "--delimiter", "::"], "deltaprop train: error: argument --delimiter: invalid "
     "delimiter '::': expected one character such as ',' or ';' (tab: 'tab' or '\\t')"),
    (["train", "--no-header"], "deltaprop train: error: --target, --task, --delimiter and --header/--no-header "
     "apply to --data FILE only"),
    (["evaluate", "m.safetensors", "--delimiter", ";"], "deltaprop evaluate: error: --delimiter and "
     "--header/--no-header apply to --data FILE only"),
])
def test_csv_option_misuse_is_a_usage_error(capsys, argv, needle):
    rc, out, err = run(capsys, *argv)
    assert needle in one_line_error(err, rc, 2)


def test_docs_python_split_is_the_cli_split(capsys, tmp_path, monkeypatch):
    """docs/own-data.md's load_file + train_test_split lines select the same test rows as `train --data`."""
    from pathlib import Path

    from deltaprop import run as dprun

    docs = (Path(__file__).resolve().parents[1] / "docs" / "own-data.md").read_text()
    wanted = ("X, y, classes = dp.data.load_file(", "Xtr, Xte, ytr, yte = dp.data.train_test_split(")
    found = {line.split("  #")[0].strip() for line in docs.splitlines() if line.strip().startswith(wanted)}
    assert len(found) == 2, found  # one spelling of each, wherever the docs show it
    rng = np.random.default_rng(3)
    n = 57  # uneven classes: a plain random split would differ
    ids = rng.permutation(n)
    labels = np.where(np.arange(n) % 4 == 0, "M", "B")
    text = "id,a,diagnosis\n" + "".join(f"{i},{rng.normal():.4f},{lab}\n" for i, lab in zip(ids, labels))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cancer.csv").write_text(text)
    scope: dict = {"dp": dp}
    for line in sorted(found):  # "X, y..." before "Xtr, ..."
        exec(line, scope)
    docs_test_ids = sorted(int(v) for v in scope["Xte"][:, 0])
    rc, out, err = run(capsys, "train", "--data", "cancer.csv", "--target", "diagnosis", "--epochs", "1",
                       "--dtype", "float64", "--no-plot", "--out", "m.safetensors")
    assert rc == 0, err
    model, meta, cfg = dprun.load_model("m.safetensors")
    d = dprun.load_data(cfg, normalize=meta["normalize"])
    norm = meta["normalize"]
    cli_test_ids = sorted(int(round(v)) for v in d.Xte[:, 0] * norm["std"][0] + norm["mean"][0])
    assert len(cli_test_ids) == 12
    assert docs_test_ids == cli_test_ids


# ----------------------------------------------------------------------------- the bar and the plot

def test_progress_bar_ends_on_the_last_epochs_score(capsys):
    pytest.importorskip("tqdm")
    bar = cli._Bar(total=4, start=0, epochs=2, steps=2)
    bar.on_batch_end(1, 1, 0.9)
    bar.on_batch_end(1, 2, 0.8)
    bar.on_epoch_end(1, {"train_loss": 0.85, "test_accuracy": 0.5})
    bar.on_batch_end(2, 1, 0.7)
    bar.on_batch_end(2, 2, 0.6)
    bar.on_epoch_end(2, {"train_loss": 0.65, "test_accuracy": 0.975})
    assert bar.bar.postfix == "loss=0.6 test_accuracy=0.9750"
    bar.bar.close()
    err = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", capsys.readouterr().err)  # (cursor moves, if any)
    last = [s for s in err.replace("\n", "\r").split("\r") if "epoch" in s][-1]
    assert "epoch 2/2 batch 2/2" in last and "loss=0.6 test_accuracy=0.9750]" in last, repr(err)


def test_plot_title_names_the_file(capsys, tmp_path, monkeypatch):
    titles = []
    monkeypatch.setattr(cli.dp_plot, "plot_history", lambda history, path, title=None: titles.append(title))
    p = tmp_path / "cancer.csv"
    p.write_text("a,t\n" + rows(10, lambda i: f"{i},{'MB'[i % 2]}\n"))
    rc, out, err = run(capsys, "train", "--data", str(p), "--epochs", "1", "--hidden", "4", "--plot",
                       str(tmp_path / "c.png"), "--out", str(tmp_path / "m.safetensors"))
    assert rc == 0, err
    assert titles == ["deltaprop train: cancer.csv 1-4-2 relu, adam lr=0.001"]


def test_evaluate_names_the_model_files_dtype(capsys, tmp_path):
    rc, out, err, data, model = train(capsys, tmp_path, "a,t\n" + rows(10, lambda i: f"{i},{'MB'[i % 2]}\n"),
                                      "--dtype", "float64", "--hidden", "3", name="cancer.csv")
    assert rc == 0, err
    rc, out, err = run(capsys, "evaluate", model)
    assert rc == 0, err
    assert out.splitlines()[0] == f"{model}: cancer.csv 1-3-2 relu, 1 epochs, float64"


@pytest.mark.parametrize("command", [["evaluate"], ["predict", "--data", "x.csv"], ["export"]])
def test_foreign_bfloat16_file_is_one_line_naming_its_dtype(capsys, tmp_path, command):
    import struct

    head = json.dumps({"w": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}}).encode()
    head += b" " * (-len(head) % 8)
    p = tmp_path / "torch.safetensors"
    p.write_bytes(struct.pack("<Q", len(head)) + head + b"\x80\x3f\x00\x40")
    argv = [command[0], str(p), *command[1:]]
    if command[0] == "export":
        argv.append(str(tmp_path / "m.onnx"))
    rc, out, err = run(capsys, *argv)
    line = one_line_error(err, rc, 1)
    assert f"{str(p)!r} (tensors of dtype bfloat16) lacks the metadata 'deltaprop train' writes" in line
