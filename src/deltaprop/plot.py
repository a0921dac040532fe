"""Plot a training history (matplotlib, imported only when a plot is drawn)."""
from __future__ import annotations

import os
from typing import Any

__all__ = ["plot_history", "check_plot_path"]

# extensions matplotlib always writes (checked without importing it; others ask matplotlib)
_FORMATS = ("png", "pdf", "svg", "svgz", "eps", "ps", "pgf", "jpg", "jpeg", "tif", "tiff", "webp", "raw", "rgba")


def check_plot_path(path: str | os.PathLike) -> None:
    """Raise ValueError (listing the formats) unless matplotlib can write `path`'s file type.

    Common extensions pass without importing matplotlib; without matplotlib, every path passes
    (`plot_history` then says how to install it)."""
    ext = os.path.splitext(os.fspath(path))[1].lstrip(".").lower()
    if not ext or ext in _FORMATS:
        return
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:
        return
    formats = FigureCanvasBase.get_supported_filetypes()
    if ext not in formats:
        raise ValueError(f"{os.fspath(path)!r}: matplotlib cannot write .{ext} files; use one of "
                         f"{', '.join('.' + f for f in sorted(formats))}")


def plot_history(history: Any, path: str | os.PathLike, title: str | None = None) -> None:
    """Write the loss curves and the accuracy (or RMSE for regression) curves of `history` to `path`.

    `history` is a deltaprop.train.History (what `fit` and `run.train_run` return) or its
    ``to_dict()`` form. The file type follows the extension (png, pdf, svg...). Raises ImportError
    saying how to install matplotlib when it is missing.
    """
    try:
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        raise ImportError("matplotlib is not installed, so no plot was written; get it with: "
                          "pip install 'deltaprop[plot]'") from None
    if isinstance(history, dict):
        m = {k: list(v) for k, v in history.items() if k != "epochs"}
        ep = list(history.get("epochs", []))
    else:
        m, ep = history.metrics, history.epochs
    fig = Figure(figsize=(10, 4), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    ax1.plot(ep, m.get("train_loss", []), label="train loss (epoch mean)")
    for key, label in (("val_loss", "validation loss"), ("test_loss", "test loss")):
        if key in m:
            ax1.plot(ep, m[key], label=label)
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("loss")
    losses = [v for v in m.get("train_loss", []) if v > 0]
    if losses and max(losses) / min(losses) > 100:
        ax1.set_yscale("log")
    metric = "accuracy" if any(k.endswith("_accuracy") for k in m) else "rmse"
    for split in ("train", "val", "test"):
        if f"{split}_{metric}" in m:
            ax2.plot(ep, m[f"{split}_{metric}"], label=f"{split} {metric}")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel(metric)
    if metric == "accuracy":
        ax2.set_ylim(-0.02, 1.02)
    for ax in (ax1, ax2):
        ax.legend()
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        fig.suptitle(title)
    fig.savefig(os.fspath(path), dpi=100)
