"""deltaprop.sklearn: the same signature, training and attributes as scikit-learn's MLPs (compared
with scikit-learn on the same data), its check_estimator, pipelines, grid search, cross-validation.
scikit-learn's own MLP tests, adapted, are in test_sklearn_mlp_compat.py."""
from __future__ import annotations

import inspect
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn", reason="scikit-learn is a test extra: pip install -e '.[test]'")

from sklearn import neural_network as sk  # noqa: E402
from sklearn.datasets import load_iris, make_regression  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import deltaprop as dp  # noqa: E402
from deltaprop.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

@pytest.fixture(autouse=True)
def _one_blas_thread():
    """Small matrices: one BLAS thread is faster, and on a busy machine threaded BLAS is 100x slower."""
    from threadpoolctl import threadpool_limits  # (a scikit-learn dependency)

    with threadpool_limits(limits=1, user_api="blas"):
        yield


FAST = dict(hidden_layer_sizes=(16,), max_iter=60, learning_rate_init=0.01, random_state=0)


@parametrize_with_checks([MLPClassifier(**FAST), MLPRegressor(**FAST), MLPClassifier(solver="lbfgs", **FAST),
                          MLPRegressor(solver="sgd", early_stopping=True, **FAST)],
                         expected_failed_checks=lambda est: est._expected_failed_checks())
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_expected_failures_only_with_early_stopping():
    assert MLPClassifier()._expected_failed_checks() == {}
    assert MLPRegressor(solver="lbfgs")._expected_failed_checks() == {}
    assert "check_fit2d_1feature" in MLPRegressor(early_stopping=True)._expected_failed_checks()


@pytest.mark.parametrize("name", ["MLPClassifier", "MLPRegressor"])
def test_signature_and_defaults_are_scikit_learns(name):
    ours, theirs = inspect.signature(getattr(dp.sklearn, name)), inspect.signature(getattr(sk, name))
    assert [(p.name, p.kind, p.default) for p in ours.parameters.values()] == \
        [(p.name, p.kind, p.default) for p in theirs.parameters.values()]
    assert getattr(dp.sklearn, name)().get_params() == getattr(sk, name)().get_params()


def test_import_deltaprop_does_not_import_sklearn():
    code = "import sys, deltaprop, deltaprop.run, deltaprop.cli; print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


# ----------------------------------------------------------------------- the same as scikit-learn

_rng = np.random.default_rng(0)
X_CLS, y_CLS = load_iris(return_X_y=True)
X_CLS = StandardScaler().fit_transform(X_CLS)
X_REG, Y_REG = make_regression(n_samples=120, n_features=6, n_targets=2, noise=5.0, random_state=0)
Y_REG = Y_REG / 100.0
SW = _rng.uniform(0.5, 2.0, size=150)

# (estimator, parameters, targets, sample weights): every solver, schedule and stopping rule
SAME = [
    ("MLPClassifier", dict(hidden_layer_sizes=(12,), max_iter=25), "multiclass", None),
    ("MLPClassifier", dict(hidden_layer_sizes=(10, 6), activation="tanh", solver="sgd", learning_rate="invscaling",
                           learning_rate_init=0.2, power_t=0.3, max_iter=25, batch_size=32), "multiclass", None),
    ("MLPClassifier", dict(hidden_layer_sizes=(8,), activation="logistic", solver="sgd", learning_rate="adaptive",
                           learning_rate_init=0.5, tol=1e-2, n_iter_no_change=2, nesterovs_momentum=False,
                           max_iter=60), "binary", None),
    ("MLPClassifier", dict(hidden_layer_sizes=(8,), activation="identity", solver="sgd", momentum=0.0,
                           max_iter=20, alpha=0.5, shuffle=False, batch_size=40), "binary", "weights"),
    ("MLPClassifier", dict(hidden_layer_sizes=(12,), early_stopping=True, validation_fraction=0.2, alpha=0.01,
                           n_iter_no_change=3, tol=1e-3, max_iter=80, learning_rate_init=0.01), "multiclass", None),
    ("MLPClassifier", dict(hidden_layer_sizes=(6,), solver="lbfgs", max_iter=30), "multiclass", None),
    ("MLPClassifier", dict(hidden_layer_sizes=(6,), beta_1=0.8, beta_2=0.99, epsilon=1e-4, max_iter=15,
                           batch_size=16), "multilabel", None),
    ("MLPRegressor", dict(hidden_layer_sizes=(10,), max_iter=30, batch_size=25), "regression", "weights"),
    ("MLPRegressor", dict(hidden_layer_sizes=(10,), solver="sgd", learning_rate_init=0.01, early_stopping=True,
                           max_iter=40), "regression", None),
    ("MLPRegressor", dict(hidden_layer_sizes=(10,), solver="lbfgs", max_iter=25, alpha=1.0), "regression", None),
    ("MLPRegressor", dict(loss="poisson", hidden_layer_sizes=(5,), solver="sgd", learning_rate_init=0.01,
                          max_iter=20), "counts", None),
]


def _data(kind):
    if kind == "multiclass":
        return X_CLS, np.array(["setosa", "versicolor", "virginica"])[y_CLS]
    if kind == "binary":
        return X_CLS, (y_CLS == 1).astype(int)
    if kind == "multilabel":
        return X_CLS, np.column_stack([y_CLS == 0, y_CLS == 1, X_CLS[:, 0] > 0]).astype(int)
    if kind == "counts":
        return X_REG[:, :3] / 2, np.random.default_rng(1).poisson(2.0, size=len(X_REG)).astype(float)
    return X_REG, Y_REG


@pytest.mark.parametrize("name, params, kind, weights", SAME,
                         ids=[f"{n}-{p.get('solver', 'adam')}-{k}-{i}" for i, (n, p, k, _w) in enumerate(SAME)])
def test_training_is_scikit_learns(name, params, kind, weights):
    """The same data, parameters and random_state give scikit-learn's loss curve, iterations and
    weights (to rounding): same initialisation, batches, penalty, optimizer steps and stopping."""
    X, y = _data(kind)
    sw = SW[:len(X)] if weights else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        theirs = getattr(sk, name)(random_state=3, **params).fit(X, y, sample_weight=sw)
        ours = getattr(dp.sklearn, name)(random_state=3, **params).fit(X, y, sample_weight=sw)
    assert ours.n_iter_ == theirs.n_iter_ and ours.t_ == theirs.t_
    for attr in ("n_layers_", "n_outputs_", "out_activation_", "n_features_in_"):
        assert getattr(ours, attr) == getattr(theirs, attr), attr
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(ours.loss_, theirs.loss_, rtol=1e-7)
    if params.get("solver") == "lbfgs":
        assert not hasattr(ours, "loss_curve_") and not hasattr(theirs, "loss_curve_")
    else:
        np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-9)
        assert ours.best_loss_ == pytest.approx(theirs.best_loss_, rel=1e-9) if theirs.best_loss_ is not None \
            else ours.best_loss_ is None
        if params.get("early_stopping"):
            np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_, rtol=1e-9)
            assert ours.best_validation_score_ == pytest.approx(theirs.best_validation_score_, rel=1e-9)
        else:
            assert ours.validation_scores_ is None and ours.best_validation_score_ is None
    if name == "MLPClassifier":
        np.testing.assert_array_equal(ours.classes_, theirs.classes_)
        np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
        np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), rtol=1e-6, atol=1e-9)
    else:
        np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-6, atol=1e-9)
    assert ours.score(X, y) == pytest.approx(theirs.score(X, y), rel=1e-9)


def _random_params(rng):
    p = dict(hidden_layer_sizes=tuple(int(v) for v in rng.integers(1, 12, size=rng.integers(0, 3))),
             activation=str(rng.choice(["identity", "logistic", "tanh", "relu"])),
             solver=str(rng.choice(["adam", "sgd", "lbfgs"])), alpha=float(rng.choice([0, 1e-4, 0.3])),
             batch_size=rng.choice(["auto", 7, 32, 500]),
             learning_rate=str(rng.choice(["constant", "invscaling", "adaptive"])),
             learning_rate_init=float(rng.choice([1e-3, 0.01, 0.1])), power_t=float(rng.choice([0.5, 0.2])),
             max_iter=int(rng.integers(1, 30)), shuffle=bool(rng.integers(2)), tol=float(rng.choice([1e-4, 1e-2, 0.1])),
             momentum=float(rng.choice([0, 0.5, 0.9])), nesterovs_momentum=bool(rng.integers(2)),
             early_stopping=bool(rng.integers(2)), validation_fraction=float(rng.choice([0.1, 0.3])),
             beta_1=float(rng.choice([0.9, 0.5])), beta_2=float(rng.choice([0.999, 0.9])),
             epsilon=float(rng.choice([1e-8, 1e-3])), n_iter_no_change=int(rng.choice([1, 3, 10])),
             max_fun=int(rng.choice([15000, 20])), random_state=int(rng.integers(100)))
    p["batch_size"] = "auto" if p["batch_size"] == "auto" else int(p["batch_size"])
    return p


@pytest.mark.parametrize("seed", range(12))
def test_random_parameters_train_as_scikit_learn(seed):
    """Random combinations of every parameter, float32 or float64 inputs, with or without weights:
    the same iterations, weights (float32: to float32 rounding), dtypes and predictions."""
    rng = np.random.default_rng(1000 + seed)
    params = _random_params(rng)
    kind = str(rng.choice(["multiclass", "binary", "multilabel", "regression"]))
    name = "MLPRegressor" if kind == "regression" else "MLPClassifier"
    X, y = _data(kind)
    dtype = np.float32 if rng.random() < 0.3 else np.float64
    X = X.astype(dtype)
    sw = SW[:len(X)] if rng.random() < 0.3 else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", UserWarning)  # (a batch_size clipped to the data)
        theirs = getattr(sk, name)(**params).fit(X, y, sample_weight=sw)
        ours = getattr(dp.sklearn, name)(**params).fit(X, y, sample_weight=sw)
    tol = 1e-3 if dtype == np.float32 else 1e-6
    assert ours.n_iter_ == theirs.n_iter_, params
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        assert a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol, err_msg=str(params))
    pa, pb = ours.predict(X), theirs.predict(X)
    assert pa.dtype == pb.dtype and pa.shape == pb.shape
    if dtype == np.float64 and name == "MLPClassifier":
        np.testing.assert_array_equal(pa, pb)
    elif dtype == np.float64:
        np.testing.assert_allclose(pa, pb, rtol=tol, atol=tol)


def test_partial_fit_and_warm_start_are_scikit_learns():
    X, y = X_CLS, y_CLS
    kw = dict(hidden_layer_sizes=(8,), solver="sgd", learning_rate="invscaling", random_state=0, max_iter=4)
    a, b = sk.MLPClassifier(**kw), MLPClassifier(**kw)
    for _ in range(3):
        a.partial_fit(X[:100], y[:100], classes=[0, 1, 2])
        b.partial_fit(X[:100], y[:100], classes=[0, 1, 2])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a.set_params(warm_start=True).fit(X, y)
        b.set_params(warm_start=True).fit(X, y)
    np.testing.assert_allclose(b.loss_curve_, a.loss_curve_, rtol=1e-9)
    np.testing.assert_allclose(b.coefs_[0], a.coefs_[0], rtol=1e-7, atol=1e-9)
    assert b.t_ == a.t_ == 300 + 4 * 150 and b.n_iter_ == a.n_iter_ == 4


def test_float32_stays_float32_and_close_to_float64():
    X, y = X_REG.astype(np.float32), Y_REG[:, 0]
    kw = dict(hidden_layer_sizes=(10,), max_iter=20, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        r32 = MLPRegressor(**kw).fit(X, y)
        r64 = MLPRegressor(**kw).fit(X.astype(np.float64), y)
    assert all(c.dtype == np.float32 for c in r32.coefs_ + r32.intercepts_)
    assert r32.predict(X).dtype == np.float32
    np.testing.assert_allclose(r32.predict(X), r64.predict(X.astype(np.float64)), rtol=1e-3, atol=1e-3)


def test_verbose_prints_what_scikit_learn_prints(capsys):
    kw = dict(hidden_layer_sizes=(5,), max_iter=30, tol=0.05, n_iter_no_change=2, random_state=0, verbose=True,
              early_stopping=True)
    sk.MLPClassifier(**kw).fit(X_CLS, y_CLS)
    theirs = capsys.readouterr().out
    MLPClassifier(**kw).fit(X_CLS, y_CLS)
    ours = capsys.readouterr().out
    assert ours == theirs
    assert "Iteration 1, loss = " in ours and "Validation score did not improve more than tol=0.050000" in ours


def test_convergence_warning_at_max_iter_and_stop_on_tol():
    with pytest.warns(ConvergenceWarning, match=r"Maximum iterations \(3\) reached"):
        MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0).fit(X_CLS, y_CLS)
    with pytest.warns(ConvergenceWarning, match="lbfgs failed to converge after 2 iteration"):
        MLPClassifier(hidden_layer_sizes=(4,), solver="lbfgs", max_iter=2, random_state=0).fit(X_CLS, y_CLS)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # it stops before max_iter: no warning
        clf = MLPClassifier(hidden_layer_sizes=(4,), max_iter=500, tol=0.1, n_iter_no_change=1,
                            random_state=0).fit(X_CLS, y_CLS)
    assert clf.n_iter_ < 500 and clf._no_improvement_count == 2
    assert len(clf.loss_curve_) == clf.n_iter_ and clf.best_loss_ == min(clf.loss_curve_)


def test_pickle_then_partial_fit_continues_exactly():
    X, y = X_REG, Y_REG
    kw = dict(hidden_layer_sizes=(8,), solver="sgd", random_state=0, max_iter=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = MLPRegressor(**kw).fit(X, y)
    b = pickle.loads(pickle.dumps(a))
    a.partial_fit(X, y)
    b.partial_fit(X, y)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    assert b.coefs_[0] is b._params[0].data  # the optimizer still trains what coefs_ shows


def test_assigned_coefs_are_used():
    clf = MLPClassifier(hidden_layer_sizes=(3,), max_iter=5, random_state=0, solver="sgd")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X_CLS, y_CLS)
    clf.coefs_ = [np.zeros_like(c) for c in clf.coefs_]
    clf.intercepts_ = [np.zeros(3), np.array([0.0, 5.0, 0.0])]
    np.testing.assert_array_equal(clf.predict(X_CLS), np.ones(150))
    clf.partial_fit(X_CLS, y_CLS)  # trains from the assigned weights
    assert clf.coefs_[0] is clf._params[0].data and np.abs(clf.intercepts_[1][1] - 5.0) < 0.1


def test_lbfgs_has_no_partial_fit_and_sparse_is_dense():
    assert not hasattr(MLPClassifier(solver="lbfgs"), "partial_fit")
    assert not hasattr(MLPRegressor(solver="lbfgs"), "partial_fit")
    scipy_sparse = pytest.importorskip("scipy.sparse")
    kw = dict(hidden_layer_sizes=(5,), solver="lbfgs", max_iter=20, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        dense = MLPClassifier(**kw).fit(X_CLS, y_CLS)
        sparse = MLPClassifier(**kw).fit(scipy_sparse.csr_matrix(X_CLS), y_CLS)
    np.testing.assert_allclose(sparse.predict_proba(scipy_sparse.csr_matrix(X_CLS)), dense.predict_proba(X_CLS))


# ----------------------------------------------------------------------- everyday use

def test_classifier_on_digits_with_string_labels():
    X, y = dp.data.digits(dtype=np.float64)
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])[y]
    Xtr, Xte, ytr, yte = train_test_split(X / 16.0, names, test_size=0.2, random_state=0, stratify=names)
    clf = MLPClassifier(hidden_layer_sizes=(64,), max_iter=20, learning_rate_init=3e-3, random_state=0)
    with pytest.warns(ConvergenceWarning):
        assert clf.fit(Xtr, ytr) is clf
    assert sorted(clf.classes_) == sorted(set(names)) and clf.n_features_in_ == 64
    assert clf.score(Xte, yte) >= 0.95
    p = clf.predict_proba(Xte)
    assert p.shape == (len(Xte), 10) and np.allclose(p.sum(axis=1), 1)
    np.testing.assert_array_equal(clf.predict(Xte), clf.classes_[p.argmax(axis=1)])
    assert len(clf.loss_curve_) == 20 == clf.n_iter_
    assert [c.shape for c in clf.coefs_] == [(64, 64), (64, 10)] and clf.n_layers_ == 3
    again = clone(clf)
    with pytest.warns(ConvergenceWarning):
        np.testing.assert_array_equal(again.fit(Xtr, ytr).predict_proba(Xte), p)  # same random_state, same model


def test_early_stopping_keeps_the_best_validation_weights():
    X, y = dp.data.digits(dtype=np.float64)
    clf = MLPClassifier(hidden_layer_sizes=(32,), early_stopping=True, n_iter_no_change=3, max_iter=200,
                        learning_rate_init=0.01, random_state=0).fit(X / 16.0, y)
    assert clf.n_iter_ < 200 and len(clf.validation_scores_) == clf.n_iter_
    assert clf.best_validation_score_ == max(clf.validation_scores_) > 0.9 and clf.best_loss_ is None
    best = int(np.argmax(clf.validation_scores_))
    assert clf.n_iter_ - 1 - best >= 3  # stopped n_iter_no_change + 1 epochs without a better score
    np.testing.assert_array_equal(clf.coefs_[0], clf._best_coefs[0])


def test_pipeline_grid_search_and_cross_validation_score_as_scikit_learns():
    X, y = load_iris(return_X_y=True)
    kw = dict(max_iter=40, learning_rate_init=0.01, random_state=0)
    pipe = make_pipeline(StandardScaler(), MLPClassifier(**kw))
    theirs = make_pipeline(StandardScaler(), sk.MLPClassifier(**kw))
    grid_params = {"mlpclassifier__hidden_layer_sizes": [(4,), (16,)], "mlpclassifier__alpha": [0.0, 1e-3]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        scores = cross_val_score(pipe, X, y, cv=3)
        np.testing.assert_allclose(scores, cross_val_score(theirs, X, y, cv=3), rtol=1e-12)
        assert scores.shape == (3,) and scores.mean() > 0.8
        grid = GridSearchCV(pipe, grid_params, cv=3).fit(X, y)
        their_grid = GridSearchCV(theirs, grid_params, cv=3).fit(X, y)
    assert grid.best_params_ == their_grid.best_params_
    np.testing.assert_allclose(grid.cv_results_["mean_test_score"], their_grid.cv_results_["mean_test_score"])
    assert pipe.set_params(mlpclassifier__solver="sgd").get_params()["mlpclassifier__solver"] == "sgd"


def test_regressor_fits_a_linear_function():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    y = X @ [1.5, -2.0, 0.5] + 1.0
    reg = MLPRegressor(hidden_layer_sizes=(32,), max_iter=300, learning_rate_init=0.01, random_state=0).fit(X, y)
    assert reg.score(X, y) > 0.99 and reg.n_iter_ < 300  # stopped on tol
    assert reg.predict(X).shape == (300,)
    Y = np.column_stack([y, -y])
    two = MLPRegressor(hidden_layer_sizes=(32,), max_iter=300, learning_rate_init=0.01, random_state=0).fit(X, Y)
    assert two.predict(X).shape == (300, 2) and two.score(X, Y) > 0.99 and two.n_outputs_ == 2


def test_bad_parameters_are_named():
    X, y = load_iris(return_X_y=True)
    with pytest.raises(ValueError, match=r"The 'activation' parameter of MLPClassifier must be one of 'identity', "
                                         r"'logistic', 'tanh', 'relu'. Got 'swish' instead."):
        MLPClassifier(activation="swish").fit(X, y)
    with pytest.raises(ValueError, match=r"'max_iter' parameter of MLPClassifier must be an int >= 1. Got 0"):
        MLPClassifier(max_iter=0).fit(X, y)
    with pytest.raises(ValueError, match=r"'validation_fraction' parameter of MLPRegressor must be a float in the "
                                         r"range \[0.0, 1.0\). Got 1.5"):
        MLPRegressor(validation_fraction=1.5).fit(X, y)
    with pytest.raises(ValueError, match=r"hidden_layer_sizes must be > 0, got \[4, 0\]"):
        MLPRegressor(hidden_layer_sizes=(4, 0)).fit(X, y)
    with pytest.raises(ValueError, match="the target must be >= 0"):
        MLPRegressor(loss="poisson").fit(X, y - 1.0)
    with pytest.raises(AttributeError, match="has no attribute 'partial_fit'") as info:
        MLPClassifier(solver="lbfgs").partial_fit(X, y, classes=[0, 1, 2])
    assert "partial_fit is only available for stochastic optimizers. lbfgs is not" in str(info.value.__cause__)
