"""scikit-learn estimators backed by deltaprop: MLPClassifier and MLPRegressor.

They follow scikit-learn's conventions (fit/predict/predict_proba/score, get_params/set_params,
partial_fit, classes_, n_features_in_) and pass its `check_estimator`, so they drop into
pipelines, grid search and cross-validation::

    from deltaprop.sklearn import MLPClassifier
    clf = MLPClassifier(hidden_layer_sizes=(64,), max_iter=50).fit(X_train, y_train)
    clf.score(X_test, y_test)

scikit-learn is needed to import this module (``pip install scikit-learn``); ``import deltaprop``
never imports it. The network, optimizer, loss and training loop are deltaprop.run's and
deltaprop.train's: inputs are standardised with the training data's mean and std (and a
regression target too), as `deltaprop train` does.
"""
from __future__ import annotations

from typing import Any

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(f"deltaprop.sklearn needs scikit-learn ({exc}); install it with: pip install scikit-learn") \
        from None

__all__ = ["MLPClassifier", "MLPRegressor"]

# Checks the estimators cannot pass, with the reason (scikit-learn >= 1.6 takes them through
# `expected_failed_checks`; see `_expected_failed_checks` and tests/test_sklearn.py).
_XFAIL: dict[str, str] = {}


class _DeltapropMLP(BaseEstimator):
    """The shared part: parameters, validation, the network and the epochs."""

    _regression = False

    def __init__(self, hidden_layer_sizes: tuple[int, ...] = (100,), activation: str = "relu",
                 solver: str = "adam", alpha: float = 0.0, batch_size: int | str = "auto",
                 learning_rate_init: float = 1e-3, max_iter: int = 200, momentum: float = 0.9,
                 random_state: int | None = None, dtype: str = "float32") -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.momentum = momentum
        self.random_state = random_state
        self.dtype = dtype

    def _expected_failed_checks(self) -> dict[str, str]:
        """scikit-learn checks this estimator is known to fail, with the reason (none at present)."""
        return dict(_XFAIL)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.non_deterministic = self.random_state is None
        return tags

    # ----------------------------------------------------------------- the network

    def _config(self) -> Any:
        from deltaprop import run

        name = type(self).__name__
        hidden = self.hidden_layer_sizes
        hidden = (hidden,) if isinstance(hidden, (int, np.integer)) else tuple(hidden)
        if self.batch_size != "auto" and not (isinstance(self.batch_size, (int, np.integer)) and self.batch_size >= 1):
            raise ValueError(f"{name}: batch_size must be 'auto' or a positive integer, got {self.batch_size!r}")
        if not (isinstance(self.max_iter, (int, np.integer)) and self.max_iter >= 1):
            raise ValueError(f"{name}: max_iter must be a positive integer, got {self.max_iter!r}")
        cfg = run.RunConfig(dataset="file", data="<arrays>", hidden=hidden, activation=self.activation,
                            optimizer=self.solver, lr=self.learning_rate_init, weight_decay=self.alpha,
                            momentum=self.momentum if self.solver == "sgd" else None, epochs=int(self.max_iter),
                            dtype=self.dtype)
        try:
            cfg.check(where=name)
        except run.RunConfigError as exc:
            raise ValueError(str(exc)) from None
        return cfg

    def _initialize(self, X: np.ndarray, n_outputs: int) -> None:
        import deltaprop as dp
        from deltaprop import run

        cfg = self._config()
        seed = np.random.default_rng(self.random_state).integers(2**31) if self.random_state is None \
            else int(self.random_state)
        mean, std = X.mean(axis=0), X.std(axis=0)
        self._x_norm = {"mean": mean, "std": np.where(std > 0, std, 1.0)}
        self._meta = {"model": "mlp", "sizes": [X.shape[1], *cfg.hidden, n_outputs], "activation": cfg.activation,
                      "output_activation": None, "dtype": cfg.dtype}
        dp.manual_seed(int(seed))  # the initial weights come from deltaprop's default generator
        self._model = run.build_model(self._meta)
        self._optimizer = run.make_optimizer(cfg.optimizer, self._model.parameters(), cfg.lr, cfg.momentum,
                                             cfg.weight_decay)
        self._seed = int(seed)
        self._epoch = 0
        self.loss_curve_ = []

    def _inputs(self, X: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray((X - self._x_norm["mean"]) / self._x_norm["std"], dtype=np.dtype(self.dtype))

    def _epochs(self, X: np.ndarray, t: np.ndarray, epochs: int) -> None:
        import deltaprop as dp
        from deltaprop import run, train as tr

        batch = min(200, len(X)) if self.batch_size == "auto" else min(int(self.batch_size), len(X))
        loader = dp.data.DataLoader(dp.data.TensorDataset(self._inputs(X), t), batch_size=batch,
                                    shuffle=batch < len(X), seed=self._seed)
        loss = run.loss_function("mse" if self._regression else "cross_entropy")
        try:
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                history = tr.fit(self._model, loss, self._optimizer, loader, self._epoch + epochs,
                                 start_epoch=self._epoch)
        except tr.NonFiniteLossError as exc:
            raise ValueError(f"{type(self).__name__}: {exc}") from None
        self._epoch += epochs
        self.loss_curve_ += history.metrics.get("train_loss", [])
        self.n_iter_ = self._epoch
        self.loss_ = self.loss_curve_[-1] if self.loss_curve_ else float("nan")

    def _forward(self, X: np.ndarray) -> np.ndarray:
        import deltaprop as dp

        self._model.eval()
        with dp.no_grad():
            out = self._model(dp.tensor(self._inputs(X)))
        return np.asarray(out, dtype=np.float64)


class MLPClassifier(ClassifierMixin, _DeltapropMLP):
    """A multi-layer perceptron classifier trained by deltaprop (softmax cross-entropy).

    Parameters follow scikit-learn's MLPClassifier: `hidden_layer_sizes`, `activation` (relu, tanh,
    sigmoid, leaky_relu, gelu), `solver` (adam, sgd, adamw, rmsprop), `alpha` (weight decay),
    `batch_size` ("auto": min(200, n)), `learning_rate_init`, `max_iter` (epochs), `momentum`
    (sgd), `random_state`, plus `dtype`. Fitted: classes_, n_features_in_, loss_curve_, n_iter_.
    """

    def fit(self, X: Any, y: Any) -> MLPClassifier:
        """Train a fresh network for `max_iter` epochs on (X, y); return self."""
        X, y = validate_data(self, X, y, reset=True, dtype=np.float64)
        check_classification_targets(y)
        self.classes_, t = np.unique(y, return_inverse=True)
        self._initialize(X, max(2, len(self.classes_)))
        self._epochs(X, t.reshape(-1).astype(np.int64), self._config().epochs)
        return self

    def partial_fit(self, X: Any, y: Any, classes: Any = None) -> MLPClassifier:
        """One more epoch on (X, y); the first call needs `classes` (all the labels there will be)."""
        first = not hasattr(self, "_model")
        X, y = validate_data(self, X, y, reset=first, dtype=np.float64)
        check_classification_targets(y)
        if first:
            if classes is None:
                raise ValueError("MLPClassifier.partial_fit: the first call needs classes=, all the labels "
                                 "the data will have")
            self.classes_ = np.unique(classes)
            self._initialize(X, max(2, len(self.classes_)))
        elif classes is not None and not np.array_equal(np.unique(classes), self.classes_):
            raise ValueError(f"MLPClassifier.partial_fit: classes={np.unique(classes).tolist()} differ from the "
                             f"first call's {self.classes_.tolist()}")
        unknown = np.setdiff1d(y, self.classes_)
        if len(unknown):
            raise ValueError(f"MLPClassifier.partial_fit: labels {unknown.tolist()} are not in classes "
                             f"{self.classes_.tolist()}")
        self._epochs(X, np.searchsorted(self.classes_, y).astype(np.int64), 1)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (softmax of the logits), one column per entry of classes_."""
        check_is_fitted(self, "_model")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        z = self._forward(X)[:, :len(self.classes_)]
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """log of predict_proba."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each row."""
        proba = self.predict_proba(X)  # first: it raises NotFittedError before classes_ is read
        return self.classes_[np.argmax(proba, axis=1)]


class MLPRegressor(RegressorMixin, _DeltapropMLP):
    """A multi-layer perceptron regressor trained by deltaprop (mean squared error on the
    standardised target; predictions in the target's units). Parameters as MLPClassifier's."""

    _regression = True

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True  # y may be (n, outputs): one output unit each
        return tags

    def _targets(self, y: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(((y - self._y_mean) / self._y_std).reshape(len(y), -1), dtype=np.dtype(self.dtype))

    def fit(self, X: Any, y: Any) -> MLPRegressor:
        """Train a fresh network for `max_iter` epochs on (X, y); return self."""
        X, y = validate_data(self, X, y, reset=True, dtype=np.float64, y_numeric=True, multi_output=True)
        self._start(X, y)
        self._epochs(X, self._targets(y), self._config().epochs)
        return self

    def _start(self, X: np.ndarray, y: np.ndarray) -> None:
        self._y_mean, std = y.mean(axis=0), y.std(axis=0)
        self._y_std = np.where(std > 0, std, 1.0)
        self._y_ndim = y.ndim
        self._initialize(X, 1 if y.ndim == 1 else y.shape[1])

    def partial_fit(self, X: Any, y: Any) -> MLPRegressor:
        """One more epoch on (X, y) (the first call also builds the network)."""
        first = not hasattr(self, "_model")
        X, y = validate_data(self, X, y, reset=first, dtype=np.float64, y_numeric=True, multi_output=True)
        if first:
            self._start(X, y)
        self._epochs(X, self._targets(y), 1)
        return self

    def predict(self, X: Any) -> np.ndarray:
        """The predicted target of each row (shape (n,) or (n, outputs) as y had)."""
        check_is_fitted(self, "_model")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        out = self._forward(X) * self._y_std + self._y_mean
        return out.reshape(-1) if self._y_ndim == 1 else out
