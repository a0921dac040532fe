"""scikit-learn's MLPClassifier on the train case's split: same layers, Adam, batch size, epochs."""
from __future__ import annotations

import time
import warnings

from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier

from . import _common as C


def train():
    """The train case in scikit-learn: MLPClassifier with the `deltaprop train` defaults on the digits; seconds and test accuracy."""
    t0 = time.perf_counter()
    xtr, xte, ytr, yte = C.digits_split()
    cfg = C.TRAIN
    clf = MLPClassifier(
        hidden_layer_sizes=tuple(cfg["hidden"]), activation="relu", solver="adam",
        learning_rate_init=cfg["lr"], batch_size=cfg["batch_size"], max_iter=cfg["epochs"],
        alpha=0.0, tol=0.0, n_iter_no_change=cfg["epochs"] + 1, shuffle=True, random_state=cfg["seed"],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(xtr, ytr)
    acc = float((clf.predict(xte) == yte).mean())
    seconds = time.perf_counter() - t0
    return {"value": seconds, "seconds": seconds, "test_accuracy": acc, "epochs": int(clf.n_iter_),
            "train_loss": float(clf.loss_), "peak_rss_mb": C.peak_rss_mb()}
