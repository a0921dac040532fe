"""Scores a practitioner reads: a confusion matrix with per-class precision, recall, F1 and support
(scikit-learn's `classification_report` and `confusion_matrix`, the same figures), and MAE, RMSE
and R² for regression (scikit-learn's `mean_absolute_error`, `root_mean_squared_error`, `r2_score`).

Plain NumPy on predictions already made: `deltaprop evaluate` and `deltaprop.run.evaluate_file`
call these, and so can a script.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

__all__ = ["classification_report", "regression_report", "format_classification_report", "format_confusion_matrix"]


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, 0 where den is 0 (scikit-learn's zero_division default, without its warning)."""
    out = np.zeros(len(num), dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def classification_report(y_true: Any, y_pred: Any, labels: Sequence[Any] | None = None) -> dict[str, Any]:
    """Accuracy, confusion matrix and per-class precision, recall, F1 and support of class indices.

    y_true, y_pred: integer class indices 0..C-1 (C = len(labels), or one past the largest index).
    labels: the class names shown for the indices (default: the indices). Returns a JSON-able dict:
    ``labels``, ``confusion_matrix`` (row = true class, column = predicted), ``precision``,
    ``recall``, ``f1``, ``support`` (one number per class), ``accuracy``, ``n``, and ``macro_avg``
    and ``weighted_avg`` (each {precision, recall, f1, support}). A class never predicted has
    precision 0, one never present recall 0 (scikit-learn's zero_division=0).
    """
    t = np.asarray(y_true).reshape(-1).astype(np.int64)
    p = np.asarray(y_pred).reshape(-1).astype(np.int64)
    if t.shape != p.shape:
        raise ValueError(f"classification_report: y_true has {t.size} labels but y_pred has {p.size}")
    k = len(labels) if labels is not None else int(max(t.max(initial=-1), p.max(initial=-1))) + 1
    for name, v in (("y_true", t), ("y_pred", p)):
        if v.size and (v.min() < 0 or v.max() >= k):
            bad = int(v.min() if v.min() < 0 else v.max())
            raise ValueError(f"classification_report: {name} holds class index {bad}, outside 0..{k - 1} "
                             f"({k} classes)")
    cm = np.bincount(t * k + p, minlength=k * k).reshape(k, k) if k else np.zeros((0, 0), np.int64)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    precision = _ratio(tp, predicted.astype(np.float64))
    recall = _ratio(tp, support.astype(np.float64))
    f1 = _ratio(2 * tp, (support + predicted).astype(np.float64))  # 2tp / (2tp + fp + fn)
    n = int(t.size)

    def avg(weights: np.ndarray | None) -> dict[str, Any]:
        if weights is None:
            mean = (lambda v: float(np.mean(v)) if k else 0.0)
        else:
            total = float(weights.sum())
            mean = (lambda v: float(np.dot(v, weights) / total) if total > 0 else 0.0)
        return {"precision": mean(precision), "recall": mean(recall), "f1": mean(f1), "support": n}

    return {"labels": list(labels) if labels is not None else list(range(k)),
            "confusion_matrix": cm.astype(int).tolist(),
            "precision": precision.tolist(), "recall": recall.tolist(), "f1": f1.tolist(),
            "support": support.astype(int).tolist(),
            "accuracy": float(tp.sum() / n) if n else float("nan"), "n": n,
            "macro_avg": avg(None), "weighted_avg": avg(support.astype(np.float64))}


def regression_report(y_true: Any, y_pred: Any) -> dict[str, float]:
    """{"mae", "rmse", "r2", "n"} of predictions in the target's units; R² as scikit-learn's
    r2_score (1.0 for a perfect fit of a constant target, 0.0 for an imperfect one). With several
    outputs each figure is the mean over them (scikit-learn's 'uniform_average')."""
    t = np.asarray(y_true, np.float64)
    p = np.asarray(y_pred, np.float64)
    if t.shape != p.shape:
        t, p = t.reshape(len(t), -1), p.reshape(len(p), -1)
    if t.shape != p.shape:
        raise ValueError(f"regression_report: y_true has shape {t.shape} but y_pred has {p.shape}")
    t, p = t.reshape(len(t), -1), p.reshape(len(p), -1)
    n = len(t)
    if n == 0:
        return {"mae": float("nan"), "rmse": float("nan"), "r2": float("nan"), "n": 0}
    err = t - p
    sse = np.sum(err ** 2, axis=0)
    sst = np.sum((t - t.mean(axis=0)) ** 2, axis=0)
    r2 = np.where(sst > 0, 1.0 - sse / np.where(sst > 0, sst, 1.0), np.where(sse == 0, 1.0, 0.0))
    return {"mae": float(np.mean(np.mean(np.abs(err), axis=0))),
            "rmse": float(np.mean(np.sqrt(sse / n))), "r2": float(np.mean(r2)), "n": int(n)}


def format_classification_report(report: dict[str, Any], digits: int = 4) -> str:
    """The report as text, laid out like scikit-learn's classification_report."""
    names = [str(v) for v in report["labels"]]
    width = max([len("weighted avg"), digits, *map(len, names)])
    head = f"{'':>{width}} " + "".join(f" {h:>9}" for h in ("precision", "recall", "f1-score", "support"))
    lines = [head, ""]

    def row(name: str, p: float, r: float, f: float, s: int) -> str:
        return f"{name:>{width}} " + "".join(f" {v:>9.{digits}f}" for v in (p, r, f)) + f" {s:>9}"

    for i, name in enumerate(names):
        lines.append(row(name, report["precision"][i], report["recall"][i], report["f1"][i], report["support"][i]))
    lines.append("")
    lines.append(f"{'accuracy':>{width}} " + " " * 20 + f" {report['accuracy']:>9.{digits}f} {report['n']:>9}")
    for key, name in (("macro_avg", "macro avg"), ("weighted_avg", "weighted avg")):
        a = report[key]
        lines.append(row(name, a["precision"], a["recall"], a["f1"], a["support"]))
    return "\n".join(lines)


def format_confusion_matrix(report: dict[str, Any]) -> str:
    """The confusion matrix as text: one row per true class, one column per predicted class."""
    names = [str(v) for v in report["labels"]]
    cm = report["confusion_matrix"]
    corner = "true \\ predicted"
    first = max([len(corner), *map(len, names)])
    widths = [max(len(nm), *(len(str(r[j])) for r in cm)) if cm else len(nm) for j, nm in enumerate(names)]
    lines = [f"{corner:<{first}}" + "".join(f"  {nm:>{w}}" for nm, w in zip(names, widths))]
    for name, r in zip(names, cm):
        lines.append(f"{name:<{first}}" + "".join(f"  {v:>{w}}" for v, w in zip(r, widths)))
    return "\n".join(lines)

