"""`deltaprop evaluate` as a practitioner reads it (issue 22, point 2): the confusion matrix and the
per-class precision, recall, F1 and support equal scikit-learn's classification_report and
confusion_matrix on the same predictions; regression's MAE, RMSE and R2 equal scikit-learn's; on
its own training file the held-out rows are scored apart; a moved training file says --data FILE."""
from __future__ import annotations

import csv
import json
import os
import shutil

import numpy as np
import pytest

from deltaprop import cli, metrics, run

sk_metrics = pytest.importorskip("sklearn.metrics")
sk_datasets = pytest.importorskip("sklearn.datasets")


def cli_out(capsys, *argv, rc=0):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    assert code == rc, err
    return out, err


def last_json(out):
    return json.loads(out.strip().splitlines()[-1])


def write_csv(path, data, target_names=None):
    """A scikit-learn Bunch written as a user would: the feature columns, then a text target column."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([*data.feature_names, "target"])
        for x, t in zip(data.data, data.target):
            w.writerow([*x, target_names[t] if target_names is not None else repr(float(t))])


def sk_report(y_true, y_pred, labels):
    return sk_metrics.classification_report(y_true, y_pred, labels=labels, output_dict=True, zero_division=0)


def assert_report_equals_sklearn(rep, y_true, y_pred):
    """Our report of label arrays y_true/y_pred equals scikit-learn's on the same labels."""
    labels = rep["labels"]
    want = sk_report(y_true, y_pred, labels)
    assert rep["confusion_matrix"] == sk_metrics.confusion_matrix(y_true, y_pred, labels=labels).tolist()
    for i, name in enumerate(labels):
        w = want[str(name)]
        assert rep["precision"][i] == pytest.approx(w["precision"], abs=1e-12)
        assert rep["recall"][i] == pytest.approx(w["recall"], abs=1e-12)
        assert rep["f1"][i] == pytest.approx(w["f1-score"], abs=1e-12)
        assert rep["support"][i] == w["support"]
    for ours, theirs in (("macro_avg", "macro avg"), ("weighted_avg", "weighted avg")):
        for k, kk in (("precision", "precision"), ("recall", "recall"), ("f1", "f1-score"), ("support", "support")):
            assert rep[ours][k] == pytest.approx(want[theirs][kk], abs=1e-12), (ours, k)
    assert rep["accuracy"] == pytest.approx(sk_metrics.accuracy_score(y_true, y_pred), abs=1e-12)
    assert rep["n"] == len(y_true)


# ----------------------------------------------------------------------------- the metrics themselves

def test_classification_report_equals_sklearn_with_an_unpredicted_and_an_absent_class():
    rng = np.random.default_rng(0)
    t = rng.integers(0, 4, 60)  # class 4 never occurs, class 3 is never predicted
    p = rng.integers(0, 3, 60)
    p[:5] = 4
    rep = metrics.classification_report(t, p, ["a", "b", "c", "d", "e"])
    names = np.array(["a", "b", "c", "d", "e"])
    assert_report_equals_sklearn(rep, names[t], names[p])
    assert rep["precision"][3] == 0 and rep["recall"][4] == 0 and rep["support"][4] == 0
    # the text is scikit-learn's layout, figure for figure
    text = sk_metrics.classification_report(names[t], names[p], labels=list(names), digits=4, zero_division=0)
    assert metrics.format_classification_report(rep) == text.rstrip("\n")
    assert metrics.format_confusion_matrix(rep).splitlines()[1].split() == ["a", *map(str, rep["confusion_matrix"][0])]


def test_regression_report_equals_sklearn():
    rng = np.random.default_rng(1)
    y = rng.normal(size=40) * 3 + 10
    p = y + rng.normal(size=40)
    rep = metrics.regression_report(y, p)
    assert rep["mae"] == pytest.approx(sk_metrics.mean_absolute_error(y, p), rel=1e-12)
    assert rep["rmse"] == pytest.approx(np.sqrt(sk_metrics.mean_squared_error(y, p)), rel=1e-12)
    assert rep["r2"] == pytest.approx(sk_metrics.r2_score(y, p), rel=1e-12)
    const = np.full(5, 2.0)  # a constant target: scikit-learn's 1.0 (perfect) and 0.0 (not)
    assert metrics.regression_report(const, const)["r2"] == sk_metrics.r2_score(const, const) == 1.0
    assert metrics.regression_report(const, const + 1)["r2"] == sk_metrics.r2_score(const, const + 1) == 0.0


# ----------------------------------------------------------------------------- the command

@pytest.fixture(scope="module")
def wine_run(tmp_path_factory):
    """Wine written to CSV with text labels, trained briefly; (dir, csv, model, true labels)."""
    d = tmp_path_factory.mktemp("wine")
    bunch = sk_datasets.load_wine()
    data = d / "wine.csv"
    write_csv(data, bunch, bunch.target_names)
    model = d / "m.safetensors"
    assert cli.main(["train", "--data", str(data), "--target", "target", "--epochs", "3", "--hidden", "8",
                     "--out", str(model), "--no-plot", "--json"]) == 0
    return d, data, model, np.asarray(bunch.target_names)[bunch.target]


def test_evaluate_report_equals_sklearn_on_predicts_predictions(capsys, wine_run):
    d, data, model, truth = wine_run
    capsys.readouterr()
    out, _ = cli_out(capsys, "predict", str(model), "--data", str(data), "--out", str(d / "p.csv"))
    with open(d / "p.csv", newline="") as f:
        preds = np.array([r[0] for r in list(csv.reader(f))[1:]])
    out, _ = cli_out(capsys, "evaluate", str(model), "--data", str(data), "--json")
    ev = last_json(out)
    assert ev["n"] == 178 and ev["data_name"] == "wine.csv"
    assert ev["report"]["labels"] == ["class_0", "class_1", "class_2"]
    assert_report_equals_sklearn(ev["report"], truth, preds)
    assert ev["accuracy"] == pytest.approx(np.mean(preds == truth), abs=1e-12)
    # the training file: training saw 142 rows; the 36 it held out are scored apart, the same
    # figures as evaluate without --data (the run's own test split) and as scikit-learn's on them
    assert ev["n_seen"] == 142 and ev["heldout"]["n"] == 36
    own = last_json(cli_out(capsys, "evaluate", str(model), "--json")[0])
    assert own["n_test"] == 36 and own["test_report"] == ev["heldout"]["report"]
    assert own["test_accuracy"] == ev["heldout"]["accuracy"]
    assert own["test_loss"] == pytest.approx(ev["heldout"]["loss"], rel=1e-6)
    _, test_rows = run.file_split(np.searchsorted(["class_0", "class_1", "class_2"], truth), "classification", 0)
    assert_report_equals_sklearn(ev["heldout"]["report"], truth[test_rows], preds[test_rows])


def test_evaluate_text(capsys, wine_run):
    d, data, model, truth = wine_run
    out, _ = cli_out(capsys, "evaluate", str(model), "--data", str(data))
    lines = out.splitlines()
    assert lines[0].startswith(f"{model}: wine.csv 13-8-3 relu, 3 epochs")
    assert "every row of wine.csv: 178 samples, 142 of them seen in training)" in lines[1]
    assert lines[2].startswith("held-out accuracy: ") and "the 36 rows of wine.csv not seen in training" in lines[2]
    assert "held-out rows of wine.csv (36):" in out
    assert "confusion matrix (rows: true label, columns: predicted label):" in out
    rep = last_json(cli_out(capsys, "evaluate", str(model), "--data", str(data), "--json")[0])["heldout"]["report"]
    assert metrics.format_classification_report(rep) in out
    assert metrics.format_confusion_matrix(rep) in out
    # a copy of the file that differs is not the training file: every row, no held-out line
    other = d / "other.csv"
    rows = data.read_text().splitlines()
    other.write_text("\n".join(rows[:-1]) + "\n")
    out, _ = cli_out(capsys, "evaluate", str(model), "--data", str(other))
    assert "seen in training" not in out and "held-out" not in out and "every row of other.csv (177):" in out


def test_moved_training_file_says_pass_data(capsys, wine_run, tmp_path):
    d, data, model, _ = wine_run
    moved = tmp_path / "moved.csv"
    shutil.copy(data, moved)
    m2 = tmp_path / "m.safetensors"
    shutil.copy(model, m2)
    os.rename(data, tmp_path / "gone.csv")
    try:
        _, err = cli_out(capsys, "evaluate", str(m2), rc=1)
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1
        assert f"was trained on {str(data)!r}, which is not there any more; pass --data FILE" in err
        # given where the file is now, its held-out rows are found again (same bytes)
        ev = last_json(cli_out(capsys, "evaluate", str(m2), "--data", str(moved), "--json")[0])
        assert ev["n_seen"] == 142
    finally:
        os.rename(tmp_path / "gone.csv", data)


def test_regression_evaluate_equals_sklearn(capsys, tmp_path):
    bunch = sk_datasets.load_diabetes()
    data = tmp_path / "diabetes.csv"
    write_csv(data, bunch)
    model = tmp_path / "r.safetensors"
    out, _ = cli_out(capsys, "train", "--data", str(data), "--target", "target", "--epochs", "3", "--out", str(model),
                     "--no-plot")
    assert out.startswith("diabetes.csv: 10-64-1 relu")
    cli_out(capsys, "predict", str(model), "--data", str(data), "--out", str(tmp_path / "p.csv"))
    with open(tmp_path / "p.csv", newline="") as f:
        p = np.array([float(r[0]) for r in list(csv.reader(f))[1:]])
    y = bunch.target
    ev = last_json(cli_out(capsys, "evaluate", str(model), "--data", str(data), "--json")[0])
    assert ev["mae"] == pytest.approx(sk_metrics.mean_absolute_error(y, p), rel=1e-12)
    assert ev["rmse"] == pytest.approx(np.sqrt(sk_metrics.mean_squared_error(y, p)), rel=1e-12)
    assert ev["r2"] == pytest.approx(sk_metrics.r2_score(y, p), rel=1e-12)
    _, test_rows = run.file_split(y, "regression", 0)
    h = ev["heldout"]
    assert h["n"] == len(test_rows) == 89 and ev["n_seen"] == 442 - 89
    # (the held-out rows go through the network as a batch of their own: float32 sums may round apart)
    assert h["mae"] == pytest.approx(sk_metrics.mean_absolute_error(y[test_rows], p[test_rows]), rel=1e-6)
    assert h["r2"] == pytest.approx(sk_metrics.r2_score(y[test_rows], p[test_rows]), rel=1e-6)
    out, _ = cli_out(capsys, "evaluate", str(model))
    assert "test MAE: " in out and "test RMSE: " in out and "test R2: " in out
