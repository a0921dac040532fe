"""deltaprop.sklearn: scikit-learn's check_estimator, pipelines, grid search, cross-validation."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn", reason="scikit-learn is a test extra: pip install -e '.[test]'")

from sklearn.datasets import load_iris  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import deltaprop as dp  # noqa: E402
from deltaprop.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

FAST = dict(hidden_layer_sizes=(16,), max_iter=60, learning_rate_init=0.01, random_state=0)


@parametrize_with_checks([MLPClassifier(**FAST), MLPRegressor(**FAST)],
                         expected_failed_checks=lambda est: est._expected_failed_checks())
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_import_deltaprop_does_not_import_sklearn():
    code = "import sys, deltaprop, deltaprop.run, deltaprop.cli; print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_classifier_on_digits_with_string_labels():
    X, y = dp.data.digits(dtype=np.float64)
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])[y]
    Xtr, Xte, ytr, yte = train_test_split(X, names, test_size=0.2, random_state=0, stratify=names)
    clf = MLPClassifier(hidden_layer_sizes=(64,), max_iter=20, learning_rate_init=3e-3, random_state=0)
    assert clf.fit(Xtr, ytr) is clf
    assert sorted(clf.classes_) == sorted(set(names)) and clf.n_features_in_ == 64
    assert clf.score(Xte, yte) >= 0.95
    p = clf.predict_proba(Xte)
    assert p.shape == (len(Xte), 10) and np.allclose(p.sum(axis=1), 1)
    np.testing.assert_array_equal(clf.predict(Xte), clf.classes_[p.argmax(axis=1)])
    assert len(clf.loss_curve_) == 20 == clf.n_iter_
    # the same random_state gives the same model
    again = MLPClassifier(hidden_layer_sizes=(64,), max_iter=20, learning_rate_init=3e-3, random_state=0)
    np.testing.assert_array_equal(again.fit(Xtr, ytr).predict_proba(Xte), p)


def test_partial_fit_continues_the_same_epochs_as_fit():
    X, y = load_iris(return_X_y=True)
    a = MLPClassifier(hidden_layer_sizes=(8,), max_iter=3, random_state=1).fit(X, y)
    b = MLPClassifier(hidden_layer_sizes=(8,), max_iter=3, random_state=1)
    for _ in range(3):
        b.partial_fit(X, y, classes=[0, 1, 2])
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    with pytest.raises(ValueError, match="the first call needs classes="):
        MLPClassifier().partial_fit(X, y)
    with pytest.raises(ValueError, match=r"labels \[7\] are not in classes"):
        b.partial_fit(X[:2], [0, 7])


def test_pipeline_grid_search_and_cross_validation():
    X, y = load_iris(return_X_y=True)
    pipe = make_pipeline(StandardScaler(), MLPClassifier(max_iter=40, learning_rate_init=0.01, random_state=0))
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.shape == (3,) and scores.mean() > 0.85
    grid = GridSearchCV(pipe, {"mlpclassifier__hidden_layer_sizes": [(4,), (16,)],
                               "mlpclassifier__alpha": [0.0, 1e-3]}, cv=3)
    grid.fit(X, y)
    assert set(grid.best_params_) == {"mlpclassifier__hidden_layer_sizes", "mlpclassifier__alpha"}
    assert grid.best_score_ > 0.85
    assert pipe.set_params(mlpclassifier__solver="sgd").get_params()["mlpclassifier__solver"] == "sgd"


def test_regressor_fits_a_linear_function():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    y = X @ [1.5, -2.0, 0.5] + 10.0
    reg = MLPRegressor(hidden_layer_sizes=(32,), max_iter=80, learning_rate_init=0.01, random_state=0).fit(X, y)
    assert reg.score(X, y) > 0.99
    assert reg.predict(X).shape == (300,)
    Y = np.column_stack([y, -y])
    two = MLPRegressor(hidden_layer_sizes=(32,), max_iter=80, learning_rate_init=0.01, random_state=0).fit(X, Y)
    assert two.predict(X).shape == (300, 2) and two.score(X, Y) > 0.99


def test_bad_parameters_are_named():
    X, y = load_iris(return_X_y=True)
    with pytest.raises(ValueError, match="activation is 'swish'"):
        MLPClassifier(activation="swish").fit(X, y)
    with pytest.raises(ValueError, match="max_iter must be a positive integer"):
        MLPClassifier(max_iter=0).fit(X, y)
