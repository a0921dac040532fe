"""scikit-learn's MLPClassifier and MLPRegressor, trained by deltaprop.

Drop-in replacements: the same parameters with the same defaults, the same training rules
(initialisation, batches and shuffling from ``random_state``, the L2 penalty ``alpha``, the adam,
sgd and lbfgs solvers, the learning-rate schedules, stopping on ``tol`` and ``n_iter_no_change``,
``early_stopping``) and the same fitted attributes (``coefs_``, ``loss_curve_``, ``n_iter_``...).
Gradients come from deltaprop's autograd and the steps from ``deltaprop.optim``.
scikit-learn is needed to import this module; ``import deltaprop`` never imports it.
"""
from __future__ import annotations

import math
import numbers
import warnings
from typing import Any

import numpy as np

try:
    from scipy.special import expit, xlogy
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, is_classifier
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import accuracy_score, r2_score
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import LabelBinarizer
    from sklearn.utils import check_random_state, gen_batches
    from sklearn.utils.metaestimators import available_if
    from sklearn.utils.multiclass import type_of_target, unique_labels
    from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(f"deltaprop.sklearn needs scikit-learn ({exc}); install it with: pip install scikit-learn") \
        from None

__all__ = ["MLPClassifier", "MLPRegressor"]

_STOCHASTIC_SOLVERS = ("sgd", "adam")

# scikit-learn checks that fail with early_stopping=True, with the reason: scikit-learn's own MLPs
# fail the same ones with it (its rules forbid partial_fit then, and need a validation set of at
# least 2 rows). With early_stopping=False every check passes (tests/test_sklearn.py).
_XFAIL_EARLY_STOPPING: dict[str, str] = {
    **dict.fromkeys(["check_fit_score_takes_y", "check_n_features_in_after_fitting",
                     "check_estimators_partial_fit_n_features"],
                    "partial_fit does not support early_stopping=True (as scikit-learn's)"),
    **dict.fromkeys(["check_estimators_nan_inf", "check_regressors_no_decision_function", "check_fit2d_1feature"],
                    "the check's data is too small for a validation set of 2 rows (as scikit-learn's)"),
    **dict.fromkeys(["check_sample_weight_equivalence_on_dense_data", "check_sample_weight_equivalence_on_sparse_data"],
                    "the validation split of weighted rows differs from that of repeated rows (as scikit-learn's)"),
}


# ---------------------------------------------------------------------------- parameters

def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


def _is_real(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))


def _is_bool(v: Any) -> bool:
    return isinstance(v, (bool, np.bool_))


def _real_in(lo: float, hi: float, lo_closed: bool, hi_closed: bool) -> tuple[Any, str]:
    def ok(v: Any) -> bool:
        return _is_real(v) and (v >= lo if lo_closed else v > lo) and (v <= hi if hi_closed else v < hi)
    return ok, f"a float in the range {'[' if lo_closed else '('}{lo}, {hi}{']' if hi_closed else ')'}"


# name -> (test, what it must be): scikit-learn's constraints for these parameters
_RULES: dict[str, tuple[Any, str]] = {
    "activation": (lambda v: v in ("identity", "logistic", "tanh", "relu"),
                   "one of 'identity', 'logistic', 'tanh', 'relu'"),
    "solver": (lambda v: v in ("lbfgs", "sgd", "adam"), "one of 'lbfgs', 'sgd', 'adam'"),
    "alpha": _real_in(0.0, math.inf, True, False),
    "batch_size": (lambda v: v == "auto" if isinstance(v, str) else _is_int(v) and v >= 1,
                   "'auto' or an int >= 1"),
    "learning_rate": (lambda v: v in ("constant", "invscaling", "adaptive"),
                      "one of 'constant', 'invscaling', 'adaptive'"),
    "learning_rate_init": _real_in(0.0, math.inf, False, False),
    "power_t": _real_in(0.0, math.inf, True, False),
    "max_iter": (lambda v: _is_int(v) and v >= 1, "an int >= 1"),
    "shuffle": (_is_bool, "a bool"),
    "tol": _real_in(0.0, math.inf, True, False),
    "verbose": (lambda v: _is_bool(v) or _is_int(v), "a bool or an int"),
    "warm_start": (_is_bool, "a bool"),
    "momentum": _real_in(0.0, 1.0, True, True),
    "nesterovs_momentum": (_is_bool, "a bool"),
    "early_stopping": (_is_bool, "a bool"),
    "validation_fraction": _real_in(0.0, 1.0, True, False),
    "beta_1": _real_in(0.0, 1.0, True, False),
    "beta_2": _real_in(0.0, 1.0, True, False),
    "epsilon": _real_in(0.0, math.inf, False, False),
    "n_iter_no_change": (lambda v: (_is_int(v) and v >= 1) or (_is_real(v) and v == math.inf),
                         "an int >= 1 or numpy.inf"),
    "max_fun": (lambda v: _is_int(v) and v >= 1, "an int >= 1"),
    "loss": (lambda v: v in ("squared_error", "poisson"), "one of 'squared_error', 'poisson'"),
}


def _hidden_sizes(est: Any) -> list[int]:
    sizes = est.hidden_layer_sizes
    sizes = list(sizes) if hasattr(sizes, "__iter__") and not isinstance(sizes, str) else [sizes]
    if not all(_is_int(s) for s in sizes):
        raise ValueError(f"{type(est).__name__}: hidden_layer_sizes must be an int or a list of ints, "
                         f"got {est.hidden_layer_sizes!r}")
    if any(s <= 0 for s in sizes):
        raise ValueError(f"hidden_layer_sizes must be > 0, got {sizes}.")
    return [int(s) for s in sizes]


def _sample_weight(sample_weight: Any, n: int, dtype: Any) -> np.ndarray | None:
    """None, or the weights as a float array of shape (n,) (a number: that weight for every row)."""
    if sample_weight is None:
        return None
    if _is_real(sample_weight):
        return np.full(n, sample_weight, dtype=dtype)
    sw = np.asarray(sample_weight, dtype=dtype)
    if sw.shape != (n,):
        raise ValueError(f"sample_weight.shape == {sw.shape}, expected {(n,)}!")
    if not np.isfinite(sw).all():
        raise ValueError("sample_weight contains NaN or infinity")
    if not sw.any():
        raise ValueError("Sample weights must contain at least one non-zero number.")
    return sw


# ---------------------------------------------------------------------------- losses

def _output(z: np.ndarray, out_activation: str) -> np.ndarray:
    """The output layer's activation (softmax, logistic, identity or exp) of the logits z."""
    if out_activation == "softmax":
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    if out_activation == "logistic":
        return expit(z)
    return np.exp(z) if out_activation == "exp" else z


def _reported_loss(y: np.ndarray, p: np.ndarray, out_activation: str, sw: np.ndarray | None) -> float:
    """The loss scikit-learn reports (loss_curve_, tol), from targets y and outputs p: half the mean
    squared error, half the Poisson deviance, or the log loss with p clipped to [eps, 1 - eps]."""
    if out_activation == "identity":
        return float(0.5 * np.average((y - p) ** 2, weights=sw, axis=0).mean())
    if out_activation == "exp":
        return float(np.average(xlogy(y, y / p) - y + p, weights=sw, axis=0).sum())
    eps = np.finfo(p.dtype).eps
    p = np.clip(p, eps, 1 - eps)
    return float(-np.average(xlogy(y, p) + xlogy(1 - y, 1 - p), weights=sw, axis=0).sum()
                 if out_activation == "logistic" else -np.average(xlogy(y, p), weights=sw, axis=0).sum())


def _objective(z: Any, y: np.ndarray, out_activation: str, sw: np.ndarray | None) -> Any:
    """The differentiable data term whose gradient is scikit-learn's: d/dz = (act(z) - y) * sw / sum(sw)
    (cross-entropy of softmax or sigmoid, half squared error, Poisson with exp link)."""
    from deltaprop import ops
    from deltaprop.nn import functional as F

    if out_activation == "softmax":
        per = -(y * F.log_softmax(z, axis=1))
    elif out_activation == "logistic":
        per = F.binary_cross_entropy_with_logits(z, y, reduction="none")
    elif out_activation == "exp":
        per = ops.exp(z) - y * z
    else:
        per = 0.5 * (z - y) ** 2
    per = per.sum(axis=1)
    # (divided by Python floats: float32 stays float32, where a NumPy float64 would promote it)
    return per.sum() / len(y) if sw is None else (per * sw).sum() / float(sw.sum())


# ---------------------------------------------------------------------------- the shared part

class _BaseMLP(BaseEstimator):
    """The shared part: parameters, initialisation, the solvers, stopping and the fitted attributes."""

    _loss_name = "log_loss"  # MLPRegressor has a `loss` parameter instead

    def _expected_failed_checks(self) -> dict[str, str]:
        """scikit-learn checks this estimator is known to fail, with the reason (none without early_stopping)."""
        return dict(_XFAIL_EARLY_STOPPING) if self.early_stopping else {}

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True  # (densified: the network computes with dense arrays)
        return tags

    def _loss_kind(self) -> str:
        return getattr(self, "loss", self._loss_name)

    def _check_params(self) -> None:
        for name, value in self.get_params(deep=False).items():
            rule = _RULES.get(name)
            if rule is not None and not rule[0](value):
                raise ValueError(f"The {name!r} parameter of {type(self).__name__} must be {rule[1]}. "
                                 f"Got {value!r} instead.")

    # --------------------------------------------------------------- the network

    def _initialize(self, y: np.ndarray, layer_units: list[int], dtype: Any) -> None:
        """Fresh weights (Glorot uniform from random_state, as scikit-learn draws them) and counters."""
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = y.shape[1]
        self.n_layers_ = len(layer_units)
        if not is_classifier(self):
            self.out_activation_ = "exp" if self._loss_kind() == "poisson" else "identity"
        elif self._label_binarizer.y_type_ == "multiclass":
            self.out_activation_ = "softmax"
        else:  # binary and multilabel: one logistic unit per column
            self.out_activation_ = "logistic"
        self.coefs_, self.intercepts_ = [], []
        factor = 2.0 if self.activation == "logistic" else 6.0
        for fan_in, fan_out in zip(layer_units[:-1], layer_units[1:]):
            bound = np.sqrt(factor / (fan_in + fan_out))
            self.coefs_.append(self._random_state.uniform(-bound, bound, (fan_in, fan_out)).astype(dtype))
            self.intercepts_.append(self._random_state.uniform(-bound, bound, fan_out).astype(dtype))
        self._best_coefs = [c.copy() for c in self.coefs_]
        self._best_intercepts = [b.copy() for b in self.intercepts_]
        for stale in ("_params", "_optimizer"):
            self.__dict__.pop(stale, None)
        if self.solver in _STOCHASTIC_SOLVERS:
            self.loss_curve_: list[float] = []
            self._no_improvement_count = 0
            if self.early_stopping:
                self.validation_scores_: Any = []  # (None without early_stopping)
                self.best_validation_score_: Any = -np.inf
                self.best_loss_: Any = None
            else:
                self.best_loss_ = np.inf
                self.validation_scores_ = None
                self.best_validation_score_ = None

    def _sync_params(self) -> list[Any]:
        """The deltaprop Parameters the solvers train: coefs_ then intercepts_, sharing their arrays
        (an optimizer step updates coefs_ in place, as scikit-learn's does). Arrays a user assigned
        to coefs_ or intercepts_ are copied in, so the optimizer keeps its state."""
        import deltaprop as dp

        arrays = list(self.coefs_) + list(self.intercepts_)
        params = getattr(self, "_params", None)
        if params is None or len(params) != len(arrays) or \
                any(p.shape != np.shape(a) or p.dtype != np.asarray(a).dtype for p, a in zip(params, arrays)):
            params = [dp.nn.Parameter(np.array(a, dtype=np.asarray(a).dtype, copy=True)) for a in arrays]
            self.__dict__.pop("_optimizer", None)
        else:
            for p, a in zip(params, arrays):
                if p.data is not a:
                    np.copyto(p.data, a, casting="same_kind")
        self._params = params
        k = len(self.coefs_)
        self.coefs_ = [p.data for p in params[:k]]
        self.intercepts_ = [p.data for p in params[k:]]
        return params

    def _logits(self, X: np.ndarray, weights: list[Any]) -> Any:
        """The network's output before the output activation: hidden = act(h @ W + b), layer by layer."""
        import deltaprop as dp

        k = len(weights) // 2
        act = {"identity": lambda t: t, "logistic": lambda t: t.sigmoid(), "tanh": lambda t: t.tanh(),
               "relu": lambda t: t.relu()}[self.activation]
        h = dp.tensor(X)
        for i in range(k):
            h = h @ weights[i] + weights[k + i]
            if i < k - 1:
                h = act(h)
        return h

    def _forward_pass_fast(self, X: Any, check_input: bool = True) -> np.ndarray:
        """The output layer's values for X (probabilities for a classifier), computed by deltaprop."""
        import deltaprop as dp

        if check_input:
            X = validate_data(self, X, accept_sparse=["csr", "csc"], reset=False)
        X = _dense(X)
        weights = [dp.tensor(np.asarray(a)) for a in list(self.coefs_) + list(self.intercepts_)]
        with dp.no_grad(), np.errstate(over="ignore", invalid="ignore"):
            z = np.asarray(self._logits(X, weights).numpy())
            return _output(z, self.out_activation_)

    def _batch(self, X: np.ndarray, y: np.ndarray, sw: np.ndarray | None, params: list[Any]) -> tuple[Any, float]:
        """(objective to differentiate, loss as scikit-learn reports it) of one batch, penalty included:
        0.5 * alpha * sum(||W||^2) / n (n: the batch's size, or its summed sample weights)."""
        z = self._logits(X, params)
        yt = y.astype(z.dtype, copy=False)
        objective = _objective(z, yt, self.out_activation_, sw)
        n = np.float64(len(y) if sw is None else sw.sum())  # (a batch of zero weights: inf, not an exception)
        coefs = params[:len(params) // 2]
        squares = sum(float(np.dot(w.data.ravel(), w.data.ravel())) for w in coefs)
        if self.alpha:
            objective = objective + sum((w * w).sum() for w in coefs) * float(0.5 * self.alpha / n)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            p = _output(np.asarray(z.data, dtype=z.dtype), self.out_activation_)
            loss = _reported_loss(yt, p, self.out_activation_, sw) + 0.5 * self.alpha * squares / n
        return objective, loss

    # --------------------------------------------------------------- fitting

    def _fit(self, X: Any, y: Any, sample_weight: Any = None, incremental: bool = False) -> Any:
        self._check_params()
        hidden = _hidden_sizes(self)
        first_pass = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)
        X, y = self._validate_input(X, y, incremental, reset=first_pass)
        X = _dense(X)
        sw = _sample_weight(sample_weight, X.shape[0], X.dtype)
        if y.ndim == 1:
            y = y.reshape((-1, 1))
        self.n_outputs_ = y.shape[1]
        layer_units = [X.shape[1], *hidden, self.n_outputs_]
        self._random_state = check_random_state(self.random_state)
        if first_pass:
            self._initialize(y, layer_units, X.dtype)
        params = self._sync_params()
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            if self.solver in _STOCHASTIC_SOLVERS:
                self._fit_stochastic(X, y, sw, params, incremental)
            else:
                self._fit_lbfgs(X, y, sw, params)
        for p in self._params:  # (the last batch's gradients: not kept, nor pickled)
            p.grad = None
        if not all(np.isfinite(w).all() for w in list(self.coefs_) + list(self.intercepts_)):
            raise ValueError("Solver produced non-finite parameter weights. The input data may contain large "
                             "values and need to be preprocessed.")
        return self

    def _fit_lbfgs(self, X: np.ndarray, y: np.ndarray, sw: np.ndarray | None, params: list[Any]) -> None:
        """scipy's L-BFGS-B over all the weights, each loss and gradient from deltaprop's autograd."""
        import scipy.optimize

        if any(p.dtype != np.float64 for p in params):
            # scikit-learn's lbfgs writes scipy's float64 vector back into coefs_: float32 inputs
            # train, and end, with float64 weights there, so they do here
            self.coefs_ = [np.asarray(c, dtype=np.float64) for c in self.coefs_]
            self.intercepts_ = [np.asarray(b, dtype=np.float64) for b in self.intercepts_]
            params = self._sync_params()
        sizes = [p.data.size for p in params]
        bounds = np.cumsum([0, *sizes])

        def unpack(theta: np.ndarray) -> None:
            for p, lo, hi in zip(params, bounds[:-1], bounds[1:]):
                p.data[...] = theta[lo:hi].reshape(p.shape)

        def loss_and_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
            unpack(theta)
            for p in params:
                p.grad = None
            objective, loss = self._batch(X, y, sw, params)
            objective.backward()
            # (scipy gets scikit-learn's reported loss with the objective's gradient: for a
            # multi-output squared error they differ by the number of outputs, as in scikit-learn)
            return loss, np.concatenate([np.asarray(p.grad, dtype=np.float64).ravel() for p in params])

        state = {"iteration": 0}

        def progress(theta: np.ndarray) -> None:
            state["iteration"] += 1
            if self.verbose:
                print("Iteration %d, loss = %.8f" % (state["iteration"], loss_and_grad(theta)[0]))

        theta0 = np.concatenate([p.data.astype(np.float64).ravel() for p in params])
        result = scipy.optimize.minimize(loss_and_grad, theta0, method="L-BFGS-B", jac=True, callback=progress,
                                         options={"maxfun": self.max_fun, "maxiter": self.max_iter,
                                                  "gtol": self.tol})
        self.n_iter_ = min(int(result.nit), self.max_iter)
        if result.status != 0:
            message = result.message.decode("latin1") if isinstance(result.message, bytes) else result.message
            warnings.warn(f"lbfgs failed to converge after {self.n_iter_} iteration(s) (status={result.status}):"
                          f"\n{message}\n\nIncrease the number of iterations (max_iter={self.max_iter}) or "
                          f"max_fun={self.max_fun}, or scale the data (sklearn.preprocessing.StandardScaler).",
                          ConvergenceWarning, stacklevel=4)
        self.loss_ = float(result.fun)
        unpack(result.x)

    def _make_optimizer(self, params: list[Any]) -> Any:
        from deltaprop import optim

        if self.solver == "sgd":
            return optim.SGD(params, lr=self.learning_rate_init, momentum=self.momentum,
                             nesterov=bool(self.nesterovs_momentum) and self.momentum > 0)
        return optim.Adam(params, lr=self.learning_rate_init, betas=(self.beta_1, self.beta_2), eps=self.epsilon)

    def _set_learning_rate(self, lr: float) -> None:
        """A new SGD learning rate. scikit-learn's velocity holds -lr * (PyTorch's momentum buffer), so
        rescaling the buffers by old/new keeps the velocities (and the steps) scikit-learn's."""
        group = self._optimizer.param_groups[0]
        old, group["lr"] = group["lr"], lr
        for p in group["params"]:
            buf = self._optimizer.state.get(p, {}).get("momentum_buffer") if p in self._optimizer.state else None
            if buf is not None:
                buf *= old / lr

    def _step(self) -> None:
        if self.solver == "adam":
            # scikit-learn divides by sqrt(v) + epsilon before the bias correction sqrt(1 - beta_2**t),
            # PyTorch's Adam after it: epsilon / sqrt(1 - beta_2**t) gives scikit-learn's step exactly.
            first = self._optimizer.param_groups[0]["params"][0]
            t = self._optimizer.state[first].get("step", 0) + 1 if first in self._optimizer.state else 1
            self._optimizer.param_groups[0]["eps"] = self.epsilon / math.sqrt(1 - self.beta_2 ** t)
        self._optimizer.step()

    def _trigger_stopping(self, msg: str) -> bool:
        """True to stop; with learning_rate='adaptive' (sgd) divide the rate by 5 instead, down to 1e-6."""
        if self.solver != "sgd" or self.learning_rate != "adaptive":
            if self.verbose:
                print(msg + " Stopping.")
            return True
        lr = self._optimizer.param_groups[0]["lr"]
        if lr <= 1e-6:
            if self.verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        self._set_learning_rate(lr / 5.0)
        if self.verbose:
            print(msg + " Setting learning rate to %f" % (lr / 5.0))
        return False

    def _fit_stochastic(self, X: np.ndarray, y: np.ndarray, sw: np.ndarray | None, params: list[Any],
                        incremental: bool) -> None:
        """Epochs of mini-batch adam or sgd, stopping as scikit-learn's _fit_stochastic does."""
        if not incremental or not hasattr(self, "_optimizer"):
            self._optimizer = self._make_optimizer(params)
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        early_stopping = self.early_stopping
        if early_stopping:
            stratify = y if is_classifier(self) and self.n_outputs_ == 1 else None
            parts = [X, y] if sw is None else [X, y, sw]
            split = train_test_split(*parts, random_state=self._random_state, test_size=self.validation_fraction,
                                     stratify=stratify)
            X_train, X_val, y_train, y_val = split[:4]
            sw_train, sw_val = (None, None) if sw is None else (split[4], split[5])
            if X_val.shape[0] < 2:
                raise ValueError("The validation set is too small. Increase 'validation_fraction' or the size "
                                 "of your dataset.")
            if is_classifier(self):
                y_val = self._label_binarizer.inverse_transform(y_val)
        else:
            X_train, y_train, sw_train = X, y, sw
            X_val = y_val = sw_val = None

        n_samples = X_train.shape[0]
        sample_idx = np.arange(n_samples, dtype=int)
        if self.batch_size == "auto":
            batch_size = min(200, n_samples)
        else:
            if self.batch_size > n_samples:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to be clipped",
                              stacklevel=4)
            batch_size = int(np.clip(self.batch_size, 1, n_samples))

        try:
            self.n_iter_ = 0
            for _ in range(self.max_iter):
                if self.shuffle:  # (what sklearn.utils.shuffle draws, without its per-call validation)
                    order = np.arange(n_samples)
                    self._random_state.shuffle(order)
                    sample_idx = sample_idx[order]
                accumulated_loss = 0.0
                for batch_slice in gen_batches(n_samples, batch_size):
                    idx = sample_idx[batch_slice] if self.shuffle else batch_slice
                    objective, loss = self._batch(X_train[idx], y_train[idx],
                                                  None if sw_train is None else sw_train[idx], params)
                    accumulated_loss += loss * (batch_slice.stop - batch_slice.start)
                    self._optimizer.zero_grad()
                    objective.backward()
                    self._step()

                self.n_iter_ += 1
                self.loss_ = accumulated_loss / n_samples
                self.t_ += n_samples
                self.loss_curve_.append(self.loss_)
                if self.verbose:
                    print("Iteration %d, loss = %.8f" % (self.n_iter_, self.loss_))
                self._update_no_improvement_count(early_stopping, X_val, y_val, sw_val)
                if self.solver == "sgd" and self.learning_rate == "invscaling":
                    self._set_learning_rate(float(self.learning_rate_init) / (self.t_ + 1) ** self.power_t)
                if self._no_improvement_count > self.n_iter_no_change:
                    if early_stopping:
                        msg = ("Validation score did not improve more than tol=%f for %d consecutive epochs."
                               % (self.tol, self.n_iter_no_change))
                    else:
                        msg = ("Training loss did not improve more than tol=%f for %d consecutive epochs."
                               % (self.tol, self.n_iter_no_change))
                    if self._trigger_stopping(msg):
                        break
                    self._no_improvement_count = 0
                if incremental:
                    break
                if self.n_iter_ == self.max_iter:
                    warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the "
                                  "optimization hasn't converged yet.", ConvergenceWarning, stacklevel=4)
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.", stacklevel=4)

        if early_stopping:  # the best weights seen on the validation set
            for p, best in zip(params, list(self._best_coefs) + list(self._best_intercepts)):
                np.copyto(p.data, best, casting="same_kind")

    def _update_no_improvement_count(self, early_stopping: bool, X: Any, y: Any, sw: Any) -> None:
        if early_stopping:
            score = self._score(X, y, sample_weight=sw)  # (can be NaN)
            self.validation_scores_.append(score)
            if self.verbose:
                print("Validation score: %f" % score)
            if score < self.best_validation_score_ + self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                self._best_coefs = [c.copy() for c in self.coefs_]
                self._best_intercepts = [b.copy() for b in self.intercepts_]
        else:
            if self.loss_curve_[-1] > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if self.loss_curve_[-1] < self.best_loss_:
                self.best_loss_ = self.loss_curve_[-1]

    def _score_with_function(self, X: Any, y: Any, sample_weight: Any, score_function: Any) -> float:
        y_pred = self._predict(X, check_input=False)
        if np.issubdtype(y_pred.dtype, np.floating) and not np.isfinite(y_pred).all():
            return np.nan
        return float(score_function(y, y_pred, sample_weight=sample_weight))

    def _check_solver(self) -> bool:
        if self.solver not in _STOCHASTIC_SOLVERS:
            raise AttributeError(f"partial_fit is only available for stochastic optimizers. {self.solver} is not "
                                 "stochastic.")
        return True


def _dense(X: Any) -> np.ndarray:
    return X.toarray() if hasattr(X, "toarray") else X


def _partial_fit_first_call(est: Any, classes: Any) -> bool:
    """True on the first partial_fit call (which must name all the classes); checks later calls' classes."""
    if getattr(est, "classes_", None) is None and classes is None:
        raise ValueError("classes must be passed on the first call to partial_fit.")
    if classes is not None:
        if getattr(est, "classes_", None) is not None:
            if not np.array_equal(est.classes_, unique_labels(classes)):
                raise ValueError(f"`classes={classes!r}` is not the same as on last call to partial_fit, was: "
                                 f"{est.classes_!r}")
        else:
            est.classes_ = unique_labels(classes)
            return True
    return False


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier: scikit-learn's MLPClassifier, trained by deltaprop.

    The parameters, their defaults and the fitted attributes are scikit-learn's (see its
    documentation). Multiclass targets get a softmax output; binary and multilabel targets one
    logistic unit per column. Inputs are not scaled: put a StandardScaler in front, as with
    scikit-learn's.
    """

    def __init__(self, hidden_layer_sizes: Any = (100,), activation: str = "relu", *, solver: str = "adam",
                 alpha: float = 0.0001, batch_size: int | str = "auto", learning_rate: str = "constant",
                 learning_rate_init: float = 0.001, power_t: float = 0.5, max_iter: int = 200, shuffle: bool = True,
                 random_state: Any = None, tol: float = 1e-4, verbose: bool | int = False, warm_start: bool = False,
                 momentum: float = 0.9, nesterovs_momentum: bool = True, early_stopping: bool = False,
                 validation_fraction: float = 0.1, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-8, n_iter_no_change: int | float = 10, max_fun: int = 15000) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags

    def _validate_input(self, X: Any, y: Any, incremental: bool, reset: bool) -> tuple[Any, np.ndarray]:
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                             dtype=(np.float64, np.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError("warm_start can only be used where `y` has the same classes as in the "
                                     f"previous call to fit. Previously got {self.classes_}, `y` has {classes}")
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has {self.classes_}. "
                                 f"'y' has {classes}.")
        return X, self._label_binarizer.transform(y).astype(bool)

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPClassifier:
        """Fit the network to (X, y), optionally weighting the rows (with `warm_start`, continue
        from the last fit); return self."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    def predict(self, X: Any) -> np.ndarray:
        """The predicted class of each row (for multilabel y, a 0/1 row per sample)."""
        check_is_fitted(self)
        return self._predict(X)

    def _predict(self, X: Any, check_input: bool = True) -> np.ndarray:
        y_pred = self._forward_pass_fast(X, check_input=check_input)
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        return self._label_binarizer.inverse_transform(y_pred)

    def _score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        return self._score_with_function(X, y, sample_weight, accuracy_score)

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None, classes: Any = None) -> MLPClassifier:
        """One epoch over (X, y) (solvers sgd and adam); the first call needs `classes`, all the labels."""
        if _partial_fit_first_call(self, classes):
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """log of predict_proba."""
        y_prob = self.predict_proba(X)
        with np.errstate(divide="ignore"):
            return np.log(y_prob, out=y_prob)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, one column per entry of classes_ (multilabel: each column's own)."""
        check_is_fitted(self)
        y_pred = self._forward_pass_fast(X)
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        return np.vstack([1 - y_pred, y_pred]).T if y_pred.ndim == 1 else y_pred


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor: scikit-learn's MLPRegressor, trained by deltaprop.

    `loss` is 'squared_error' (identity output) or 'poisson' (exp output); the other parameters,
    their defaults and the fitted attributes are scikit-learn's. Inputs and targets are not scaled.
    """

    def __init__(self, loss: str = "squared_error", hidden_layer_sizes: Any = (100,), activation: str = "relu", *,
                 solver: str = "adam", alpha: float = 0.0001, batch_size: int | str = "auto",
                 learning_rate: str = "constant", learning_rate_init: float = 0.001, power_t: float = 0.5,
                 max_iter: int = 200, shuffle: bool = True, random_state: Any = None, tol: float = 1e-4,
                 verbose: bool | int = False, warm_start: bool = False, momentum: float = 0.9,
                 nesterovs_momentum: bool = True, early_stopping: bool = False, validation_fraction: float = 0.1,
                 beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-8,
                 n_iter_no_change: int | float = 10, max_fun: int = 15000) -> None:
        self.loss = loss
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True  # y may be (n, outputs): one output unit each
        return tags

    def _validate_input(self, X: Any, y: Any, incremental: bool, reset: bool) -> tuple[Any, np.ndarray]:
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True, y_numeric=True,
                             dtype=(np.float64, np.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if self.loss == "poisson" and (np.asarray(y) < 0).any():
            raise ValueError("MLPRegressor(loss='poisson'): the target must be >= 0, it has negative values.")
        return X, y

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPRegressor:
        """Fit the network to (X, y), optionally weighting the rows (with `warm_start`, continue
        from the last fit); return self."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    def predict(self, X: Any) -> np.ndarray:
        """The predicted target of each row: shape (n,) for one output, else (n, outputs)."""
        check_is_fitted(self)
        return self._predict(X)

    def _predict(self, X: Any, check_input: bool = True) -> np.ndarray:
        y_pred = self._forward_pass_fast(X, check_input=check_input)
        return y_pred.ravel() if y_pred.shape[1] == 1 else y_pred

    def _score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        return self._score_with_function(X, y, sample_weight, r2_score)

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPRegressor:
        """One epoch over (X, y) (solvers sgd and adam; the first call also builds the network)."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)
