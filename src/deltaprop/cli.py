"""The `deltaprop` command: train, evaluate, explain, bench.

Exit codes: 0 success; 2 usage error (unknown dataset/option, bad value: the message lists the
valid ones); 1 a failure (a loss that became NaN/Inf, a model file that does not match its
metadata, a missing or unreadable file). User errors never print a traceback.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np

PROG = "deltaprop"
DATASETS = ("digits", "xor", "mazur", "moons", "circles", "spirals")
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
DTYPES = ("float32", "float64")
FORMAT = 1  # version of the model-file metadata written by `deltaprop train`
TEST_SIZE = 0.2
MEMORY_FALLBACK = 1 << 40  # bytes assumed when the machine's memory cannot be read (1 TiB)
# --plot extensions matplotlib always writes (checked without importing it; others ask matplotlib)
PLOT_FORMATS = ("png", "pdf", "svg", "svgz", "eps", "ps", "pgf", "jpg", "jpeg", "tif", "tiff", "webp", "raw",
                "rgba")


@dataclass(frozen=True)
class Defaults:
    """Per-dataset defaults of `deltaprop train` (chosen so the default runs meet their targets)."""

    hidden: tuple[int, ...]
    activation: str
    optimizer: str
    lr: float
    epochs: int
    batch_size: int  # 0 = full batch
    momentum: float = 0.0  # SGD only (PyTorch's default unless a dataset needs more)


DEFAULTS: dict[str, Defaults] = {
    "digits": Defaults((128,), "relu", "adam", 3e-3, 20, 32),
    # 2-2-2 sigmoid XOR has local minima; SGD with momentum escapes them far more often than Adam
    "xor": Defaults((2,), "sigmoid", "sgd", 0.3, 2000, 0, momentum=0.9),
    # Mazur's worked example: plain SGD, lr 0.5, sum-of-squares error on sigmoid outputs
    "mazur": Defaults((2,), "sigmoid", "sgd", 0.5, 3000, 0, momentum=0.0),
    "moons": Defaults((16, 16), "tanh", "adam", 0.01, 100, 32),
    "circles": Defaults((16, 16), "tanh", "adam", 0.01, 100, 32),
    "spirals": Defaults((32, 32), "relu", "adam", 0.02, 200, 32),
}

# Generated sets: the generator's arguments (the run's --seed is added as the data seed).
DATA_ARGS: dict[str, dict[str, Any]] = {
    "moons": {"n": 500, "noise": 0.2},
    "circles": {"n": 500, "noise": 0.1, "factor": 0.5},
    "spirals": {"n": 600, "classes": 3, "noise": 0.2},
}
TINY = ("xor", "mazur")  # train = test, full batch, inputs used as they are


class UsageError(Exception):
    """A bad combination of options (exit 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors: 'deltaprop train: error: ...; see ... --help' (exit 2).

    The usage block argparse prints by default is left out: the line names the problem, the
    message of every option type says what a valid value looks like, and --help lists the rest.
    """

    commands: dict[str, argparse.ArgumentParser]  # the top-level parser's subcommand parsers

    def error(self, message: str) -> Any:  # noqa: D102 (argparse API)
        self.exit(2, f"{self.prog}: error: {message}; see '{self.prog} --help'\n")


class CommandError(Exception):
    """A failure to report without a traceback (exit 1)."""


# ----------------------------------------------------------------------------- argument types

def _hidden(text: str) -> tuple[int, ...]:
    s = text.strip()
    if s in ("", "0"):
        return ()
    try:
        sizes = tuple(int(part) for part in s.split(","))
    except ValueError:
        sizes = ()
    if not sizes or any(n < 1 for n in sizes):
        raise argparse.ArgumentTypeError(
            f"invalid hidden sizes {text!r}: use comma-separated positive integers like 64 or 16,16 "
            "(\"\" or 0 for no hidden layer)")
    return sizes


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = float("nan")
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected a positive number such as 0.01")
    return v


def _unit_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = float("nan")
    if not 0.0 <= v < 1.0:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected a number in [0, 1) such as 0.9")
    return v


def _int_at_least(minimum: int, what: str):
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            v = minimum - 1
        if v < minimum:
            raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected {what}")
        return v
    return parse


def _fmt_hidden(h: Sequence[int]) -> str:
    return ",".join(str(n) for n in h) if h else '""'


def _per_dataset(field: str, fmt=str) -> str:
    return "; ".join(f"{name} {fmt(getattr(d, field))}" for name, d in DEFAULTS.items())


# ----------------------------------------------------------------------------- memory

def _memory_bytes() -> int:
    """The machine's physical memory (page size x pages), or MEMORY_FALLBACK if unknown."""
    try:
        n = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return MEMORY_FALLBACK
    return n if n > 0 else MEMORY_FALLBACK


def _fmt_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB"):
        if value < 1024:
            return f"{value:.0f} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.3g} YiB"


def _copies(task: str, optimizer: str | None = None, momentum: float | None = None) -> tuple[int, str]:
    """How many arrays the size of all the weights a command holds at once, and what they are."""
    if task == "evaluate":
        return 2, "to evaluate it (the network and the file's weights)"
    slots = {"adam": 2, "adamw": 2, "rmsprop": 1}.get(optimizer or "", 1 if momentum else 0)
    state = f", {optimizer}'s state" if slots else ""
    return 3 + slots, f"to train it with {optimizer} (weights, gradients{state}, the last finite epoch's copy)"


def _too_big(sizes: Sequence[int], dtype: Any, copies: tuple[int, str]) -> str | None:
    """None if the MLP with layer `sizes` fits in memory; else why not, naming sizes and bytes.

    Counted from the sizes alone (exact integers), so nothing is allocated to find out.
    """
    from deltaprop import train as tr

    params = tr.mlp_parameter_count(sizes)
    dt = np.dtype(dtype)
    weights = params * dt.itemsize
    n, purpose = copies
    need = weights * n
    memory = _memory_bytes()
    if need <= memory:
        return None
    arch = "-".join(str(int(v)) for v in sizes)
    return (f"the network {arch} has {params:,} parameters: {_fmt_bytes(weights)} of {dt.name} weights and "
            f"about {_fmt_bytes(need)} {purpose}, more than this machine's {_fmt_bytes(memory)} of memory")


# ----------------------------------------------------------------------------- parser

def build_parser() -> argparse.ArgumentParser:
    from deltaprop import __version__

    parser = _Parser(
        prog=PROG,
        description="Backpropagation you can see: train and evaluate networks on built-in data, "
                    "explain the chain rule step by step, benchmark against peers.",
        epilog="Run 'deltaprop COMMAND --help' for a command's options. Exit codes: 0 success, "
               "1 failure (e.g. the loss became NaN), 2 usage error.",
    )
    parser.add_argument("--version", action="version", version=f"deltaprop {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")

    fb = lambda b: "full batch" if b == 0 else str(b)  # noqa: E731
    t = sub.add_parser(
        "train", help="train an MLP (default: on the embedded digits) and save it",
        description="Train an MLP on a built-in dataset with a progress bar (stderr); print the test "
                    "accuracy; write the model (safetensors, with the metadata 'evaluate' and "
                    "'--resume' need) and a plot of the loss and accuracy curves. Options left out take "
                    "the dataset's defaults, shown below.",
        epilog="Examples: deltaprop train | deltaprop train --dataset xor --hidden 2 --activation sigmoid | "
               "deltaprop train --epochs 2 --checkpoint ckpt.safetensors && "
               "deltaprop train --resume ckpt.safetensors --epochs 4",
    )
    t.add_argument("--dataset", choices=DATASETS, default=None,
                   help="built-in dataset (default: digits, an 80/20 split seeded by --seed; xor and "
                        "mazur are tiny and train on their test points)")
    t.add_argument("--hidden", type=_hidden, default=None, metavar="SIZES",
                   help="hidden layer sizes, comma-separated ('' or 0 for none) "
                        f"(default: {_per_dataset('hidden', _fmt_hidden)})")
    t.add_argument("--activation", choices=("relu", "tanh", "sigmoid", "leaky_relu", "gelu"), default=None,
                   help=f"hidden activation (default: {_per_dataset('activation')})")
    t.add_argument("--optimizer", choices=OPTIMIZERS, default=None,
                   help=f"optimizer, with PyTorch's defaults besides --lr (default: {_per_dataset('optimizer')})")
    t.add_argument("--lr", type=_positive_float, default=None, help=f"learning rate (default: {_per_dataset('lr')})")
    t.add_argument("--momentum", type=_unit_float, default=None,
                   help="momentum of --optimizer sgd, in [0, 1) "
                        f"(default: {_per_dataset('momentum')})")
    t.add_argument("--epochs", type=_int_at_least(1, "a positive integer"), default=None,
                   help="total number of epochs, counting those of a --resume checkpoint "
                        f"(default: {_per_dataset('epochs')})")
    t.add_argument("--batch-size", type=_int_at_least(0, "a non-negative integer (0 = full batch)"),
                   default=None, metavar="N",
                   help=f"minibatch size, 0 for full batch (default: {_per_dataset('batch_size', fb)})")
    t.add_argument("--seed", type=_int_at_least(0, "a non-negative integer"), default=None,
                   help="seed of the data, the split, the initial weights and the shuffling; one seed "
                        "makes a run bit-identical (default: 0)")
    t.add_argument("--dtype", choices=DTYPES, default=None, help="floating-point precision (default: float32)")
    t.add_argument("--out", default="model.safetensors", metavar="PATH",
                   help="where to write the trained model (default: %(default)s)")
    t.add_argument("--plot", default="training.png", metavar="PATH",
                   help="where to write the loss/accuracy plot, needs matplotlib (default: %(default)s)")
    t.add_argument("--no-plot", action="store_true", help="do not write the plot (default: off)")
    t.add_argument("--checkpoint", default=None, metavar="PATH",
                   help="also write a full checkpoint (model + optimizer state + epoch) to resume from "
                        "(default: none)")
    t.add_argument("--resume", default=None, metavar="CKPT",
                   help="continue training from a checkpoint written with --checkpoint, up to --epochs "
                        "in total; architecture, data and seed come from the checkpoint (default: none)")
    t.add_argument("--json", action="store_true",
                   help="print one JSON object with the results as the last line of stdout (default: off)")

    e = sub.add_parser(
        "evaluate", help="evaluate a saved model on its dataset's test split",
        description="Rebuild the network from a model file's metadata (written by 'deltaprop train'), "
                    "re-create the same data split and print the accuracy and loss.",
    )
    e.add_argument("model", metavar="MODEL", help="a model file (or checkpoint) written by 'deltaprop train'")
    e.add_argument("--json", action="store_true",
                   help="print one JSON object with the results as the last line of stdout (default: off)")

    sub.add_parser("explain", add_help=False, help="see backpropagation step by step "
                   "(deltaprop explain --help)")
    sub.add_parser("bench", add_help=False, help="benchmark against the installed peers "
                   "(deltaprop bench --help)")
    parser.commands = {"train": t, "evaluate": e}
    return parser


# ----------------------------------------------------------------------------- data and model

@contextlib.contextmanager
def _default_dtype(dtype: np.dtype) -> Iterator[None]:
    import deltaprop as dp

    before = dp.get_default_dtype()
    dp.set_default_dtype(dtype)
    try:
        yield
    finally:
        dp.set_default_dtype(before)


def _raw_data(dataset: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from deltaprop import data

    if dataset == "digits":
        return data.digits(dtype=np.float64)
    if dataset == "xor":
        return data.xor(dtype=np.float64)
    if dataset == "mazur":
        return data.mazur(dtype=np.float64)
    gen = {"moons": data.moons, "circles": data.circles, "spirals": data.spirals}[dataset]
    return gen(**DATA_ARGS[dataset], seed=seed, dtype=np.float64)


def _split(dataset: str, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from deltaprop import data, train as tr

    X, y = _raw_data(dataset, seed)
    tr.check_finite(f"the features of dataset {dataset!r}", X)
    tr.check_finite(f"the targets of dataset {dataset!r}", y)
    if dataset in TINY:
        return X, X, y, y
    return data.train_test_split(X, y, test_size=TEST_SIZE, seed=seed, stratify=True)


def _normalization(dataset: str, Xtr: np.ndarray) -> dict[str, list[float]] | None:
    """Per-feature mean and std of the TRAIN inputs (std 0 -> 1); None for the tiny sets."""
    if dataset in TINY:
        return None
    mean = Xtr.mean(axis=0)
    std = Xtr.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return {"mean": [float(v) for v in mean], "std": [float(v) for v in std]}


def _normalize(X: np.ndarray, norm: dict[str, Any] | None, dtype: np.dtype) -> np.ndarray:
    if norm is not None:
        X = (X - np.asarray(norm["mean"], dtype=np.float64)) / np.asarray(norm["std"], dtype=np.float64)
    return np.ascontiguousarray(X, dtype=dtype)


def _task(dataset: str, y: np.ndarray, n_features: int, hidden: Sequence[int]) -> dict[str, Any]:
    """Layer sizes, output activation and loss name for a dataset."""
    if dataset == "mazur":
        n_out = y.shape[1]
        return {"sizes": [n_features, *hidden, n_out], "output_activation": "sigmoid", "loss": "mse_half_sum"}
    n_out = int(y.max()) + 1
    return {"sizes": [n_features, *hidden, n_out], "output_activation": None, "loss": "cross_entropy"}


def _loss_fn(name: str):
    from deltaprop import train as tr

    if name == "cross_entropy":
        from deltaprop.nn import functional as F

        return F.cross_entropy
    if name == "mse_half_sum":
        return tr.mse_half_sum
    raise ValueError(f"unknown loss {name!r} in the model file's metadata")


def _make_optimizer(name: str, params: Any, lr: float, momentum: float | None) -> Any:
    from deltaprop import optim

    if name == "sgd":
        return optim.SGD(params, lr=lr, momentum=momentum or 0.0)
    cls = {"adam": optim.Adam, "adamw": optim.AdamW, "rmsprop": optim.RMSprop}[name]
    return cls(params, lr=lr)


REQUIRED_META = ("dataset", "sizes", "activation", "output_activation", "loss", "dtype", "seed", "normalize")


def _check_meta(path: str, meta: dict[str, Any], resume: bool = False) -> None:
    """Raise CommandError unless `meta` holds what rebuilding the run needs, naming the bad key."""
    from deltaprop import train as tr

    needed = REQUIRED_META + (("optimizer", "lr") if resume else ())
    missing = [k for k in needed if k not in meta]
    if missing:
        raise CommandError(
            f"{path!r} lacks the metadata 'deltaprop train' writes (missing key(s) "
            f"{', '.join(repr(k) for k in missing)}), so the network cannot be rebuilt; "
            "use a file written by 'deltaprop train'")

    def bad(key: str, want: str) -> CommandError:
        return CommandError(f"{path!r}: metadata key {key!r} is {meta[key]!r}, {want}")

    if meta["dataset"] not in DATASETS:
        raise bad("dataset", f"not one of {', '.join(DATASETS)}")
    if meta["dtype"] not in DTYPES:
        raise bad("dtype", f"not one of {', '.join(DTYPES)}")
    sizes = meta["sizes"]
    if not (isinstance(sizes, list) and len(sizes) >= 2
            and all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in sizes)):
        raise bad("sizes", "not a list of layer sizes")
    acts = ("relu", "tanh", "sigmoid", "leaky_relu", "gelu")
    if meta["activation"] not in acts:
        raise bad("activation", f"not one of {', '.join(acts)}")
    if meta["output_activation"] not in (None, *acts):
        raise bad("output_activation", "not an activation name or null")
    if meta["loss"] not in ("cross_entropy", "mse_half_sum"):
        raise bad("loss", "not 'cross_entropy' or 'mse_half_sum'")
    seed = meta["seed"]
    if not (isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0):
        raise bad("seed", "not a non-negative integer")
    norm = meta["normalize"]
    if norm is not None:
        ok = isinstance(norm, dict) and all(
            isinstance(norm.get(k), list) and len(norm[k]) == sizes[0]
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in norm[k])
            for k in ("mean", "std"))
        if not ok:
            raise bad("normalize", f"not {{'mean': [...], 'std': [...]}} with {sizes[0]} numbers each")
        for k in ("mean", "std"):  # a NaN here would make every input NaN (JSON allows NaN)
            for i, v in enumerate(norm[k]):
                if not math.isfinite(v) or (k == "std" and v <= 0):
                    want = "a positive number" if k == "std" else "a finite number"
                    raise CommandError(f"{path!r}: metadata key 'normalize' has {k}[{i}] = {v!r} (input "
                                       f"column {i}), not {want}; the file is damaged: re-create it with "
                                       "'deltaprop train'")
    if resume:
        if meta["optimizer"] not in OPTIMIZERS:
            raise bad("optimizer", f"not one of {', '.join(OPTIMIZERS)}")
        lr = meta["lr"]
        if not (isinstance(lr, (int, float)) and not isinstance(lr, bool) and math.isfinite(lr) and lr > 0):
            raise bad("lr", "not a positive number")
        bs = meta.get("batch_size_option", meta.get("batch_size"))
        if not (isinstance(bs, int) and not isinstance(bs, bool) and bs >= 0):
            raise CommandError(f"{path!r}: metadata key 'batch_size' is {bs!r}, not a non-negative integer")
        mom = meta.get("momentum")
        if mom is not None and not (isinstance(mom, (int, float)) and 0 <= mom < 1):
            raise bad("momentum", "not a number in [0, 1) or null")
        epochs = meta.get("epochs", 0)
        if not (isinstance(epochs, int) and not isinstance(epochs, bool) and epochs >= 0):
            raise bad("epochs", "not a non-negative integer")
        try:
            tr.History.from_dict(meta.get("history"))
        except (TypeError, ValueError, AttributeError):
            raise CommandError(f"{path!r}: metadata key 'history' is not {{'epochs': [...], 'train_loss': [...], "
                               "...} with a list of numbers each; the file is damaged: re-create it with "
                               "'deltaprop train'") from None
    copies = _copies("train", meta["optimizer"], meta.get("momentum")) if resume else _copies("evaluate")
    too_big = _too_big(sizes, meta["dtype"], copies)
    if too_big:
        raise CommandError(_file_too_big(path, too_big))


def _file_too_big(path: str, why: str) -> str:
    return (f"{path!r}: metadata key 'sizes' describes a network this machine cannot hold: {why}; the file "
            "is damaged, or it needs a machine with more memory")


def _check_state(path: str, state: dict[str, np.ndarray], model: Any) -> None:
    """Raise CommandError naming the first key/shape that differs from the rebuilt model."""
    want = model.state_dict()
    for key, arr in want.items():
        if key not in state:
            raise CommandError(
                f"{path!r} does not match the network described by its metadata: key {key!r} "
                f"(shape {tuple(arr.shape)}) is missing from the file (it has {', '.join(map(repr, state))})")
        if tuple(state[key].shape) != tuple(arr.shape):
            raise CommandError(
                f"{path!r} does not match the network described by its metadata: {key!r} has shape "
                f"{tuple(state[key].shape)} in the file but the network needs {tuple(arr.shape)}")
    extra = [k for k in state if k not in want]
    if extra:
        raise CommandError(
            f"{path!r} does not match the network described by its metadata: unexpected key(s) "
            f"{', '.join(map(repr, extra))} (shapes {', '.join(str(tuple(state[k].shape)) for k in extra)})")


def _check_readable(path: str, what: str) -> None:
    """Raise CommandError unless `path` is an existing file (not a directory)."""
    if not os.path.exists(path):
        raise CommandError(f"no such file: {path!r}")
    if os.path.isdir(path):
        raise CommandError(f"{path!r} is a directory, not a {what}; give the path of a file written by "
                           "'deltaprop train'")


def _read_model_file(path: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(state dict, metadata) of a model file or a checkpoint written by `deltaprop train`."""
    from deltaprop import io

    _check_readable(path, "model file")
    meta = io.load_metadata(path)
    if meta.get("file") == "checkpoint":
        ckpt = io.read_checkpoint(path)
        return ckpt.model_state, ckpt.metadata
    return io.load(path), meta


# ----------------------------------------------------------------------------- output helpers

def _print(*args: Any, **kw: Any) -> None:
    print(*args, **kw, flush=True)


def _json_line(obj: dict[str, Any]) -> None:
    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v
    sys.stdout.write(json.dumps(clean(obj)) + "\n")
    sys.stdout.flush()


def _write_plot(path: str, history: Any, title: str) -> str | None:
    """Write the loss and accuracy curves; return an error note instead when impossible."""
    try:
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        return ("matplotlib is not installed, so no plot was written; get it with: "
                "pip install 'deltaprop[plot]'")
    m = history.metrics
    ep = history.epochs
    fig = Figure(figsize=(10, 4), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    ax1.plot(ep, m.get("train_loss", []), label="train loss (epoch mean)")
    if "test_loss" in m:
        ax1.plot(ep, m["test_loss"], label="test loss")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("loss")
    losses = [v for v in m.get("train_loss", []) if v > 0]
    if losses and max(losses) / min(losses) > 100:
        ax1.set_yscale("log")
    ax1.legend()
    ax1.grid(alpha=0.3)
    if "train_accuracy" in m:
        ax2.plot(ep, m["train_accuracy"], label="train accuracy")
    if "test_accuracy" in m:
        ax2.plot(ep, m["test_accuracy"], label="test accuracy")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("accuracy")
    ax2.set_ylim(-0.02, 1.02)
    ax2.legend()
    ax2.grid(alpha=0.3)
    for ax in (ax1, ax2):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(title)
    fig.savefig(path, dpi=100)
    return None


# ----------------------------------------------------------------------------- train

def _resolve_train_config(args: argparse.Namespace) -> tuple[dict[str, Any], Any]:
    """The run's configuration from the options (and the checkpoint when resuming)."""
    from deltaprop import io

    if args.resume is None:
        dataset = args.dataset or "digits"
        d = DEFAULTS[dataset]
        cfg = {
            "dataset": dataset,
            "hidden": list(d.hidden if args.hidden is None else args.hidden),
            "activation": args.activation or d.activation,
            "optimizer": args.optimizer or d.optimizer,
            "lr": d.lr if args.lr is None else args.lr,
            "batch_size": d.batch_size if args.batch_size is None else args.batch_size,
            "seed": 0 if args.seed is None else args.seed,
            "dtype": args.dtype or "float32",
            "epochs": d.epochs if args.epochs is None else args.epochs,
        }
        if args.momentum is not None and cfg["optimizer"] != "sgd":
            raise UsageError(f"--momentum applies to --optimizer sgd only (this run uses {cfg['optimizer']})")
        cfg["momentum"] = (d.momentum if args.momentum is None else args.momentum) if cfg["optimizer"] == "sgd" else None
        return cfg, None
    if not os.path.exists(args.resume):
        raise CommandError(f"no such checkpoint: {args.resume!r}")
    _check_readable(args.resume, "checkpoint")
    meta_plain = io.load_metadata(args.resume)
    if "deltaprop.checkpoint" in meta_plain or meta_plain.get("file") != "model":
        ckpt = io.read_checkpoint(args.resume)
        _check_meta(args.resume, ckpt.metadata, resume=True)
    else:  # a model file of `deltaprop train`: weights, epochs and history; the optimizer restarts
        _check_meta(args.resume, meta_plain, resume=True)
        ckpt = io.Checkpoint(model_state=io.load(args.resume), optimizer_state=None,
                             epoch=meta_plain.get("epochs", 0), metadata=meta_plain)
    meta = ckpt.metadata
    cfg = {
        "dataset": meta["dataset"],
        "hidden": list(meta["sizes"][1:-1]),
        "activation": meta["activation"],
        "optimizer": meta["optimizer"],
        "lr": meta["lr"],
        "batch_size": meta.get("batch_size_option", meta.get("batch_size")),
        "seed": meta["seed"],
        "dtype": meta["dtype"],
        "momentum": meta.get("momentum"),
    }
    given = {"dataset": args.dataset, "hidden": None if args.hidden is None else list(args.hidden),
             "activation": args.activation, "optimizer": args.optimizer, "lr": args.lr,
             "batch_size": args.batch_size, "seed": args.seed, "dtype": args.dtype,
             "momentum": args.momentum}
    for key, value in given.items():
        if value is not None and value != cfg[key]:
            opt = "--" + key.replace("_", "-")
            raise UsageError(f"{opt} {value!r} differs from the checkpoint's {cfg[key]!r}; leave {opt} out "
                             "when resuming (or start a fresh run)")
    done = ckpt.epoch
    cfg["epochs"] = DEFAULTS[cfg["dataset"]].epochs if args.epochs is None else args.epochs
    if cfg["epochs"] <= done:
        raise UsageError(f"the checkpoint {args.resume!r} already has {done} epochs; pass --epochs N with "
                         f"N > {done} for the total to reach")
    return cfg, ckpt


def _check_outputs(args: argparse.Namespace) -> None:
    """Before any work: every path the run will write is a file name in an existing directory."""
    if not args.out:
        raise UsageError(f"--out {args.out!r} is not a file path; give one such as model.safetensors")
    plot = None if args.no_plot else args.plot
    for opt, path in (("--out", args.out), ("--checkpoint", args.checkpoint), ("--plot", plot)):
        if not path:
            continue
        if os.path.isdir(path):
            raise CommandError(f"cannot write {path!r} ({opt}): it is a directory; give a file name such as "
                               f"{os.path.join(path, 'training.png' if opt == '--plot' else 'model.safetensors')}")
        d = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(d):
            raise CommandError(f"cannot write {path!r}: directory {d!r} does not exist; create it first")
    ext = os.path.splitext(plot or "")[1].lstrip(".").lower()
    if ext and ext not in PLOT_FORMATS:  # ask matplotlib only about the unusual ones (importing it is slow)
        try:
            from matplotlib.backend_bases import FigureCanvasBase
        except ImportError:
            return  # no plot is written; the run says so at the end
        formats = FigureCanvasBase.get_supported_filetypes()
        if ext not in formats:
            raise UsageError(f"--plot {plot!r}: matplotlib cannot write .{ext} files; use one of "
                             f"{', '.join('.' + f for f in sorted(formats))}")


def _check_inputs(dataset: str, dtype: np.dtype, Xtr: np.ndarray, Xte: np.ndarray, ytr: np.ndarray,
                  yte: np.ndarray) -> None:
    """Raise NonFiniteInputError (exit 1) naming the array, row and column of a NaN/Inf in the data
    as the network sees it (normalized, in `dtype`), so a NaN loss is never blamed on --lr."""
    from deltaprop import train as tr

    if dataset in TINY:  # train = test, inputs as they are
        sets = [("", Xtr, ytr, f"as {dtype.name}")]
    else:
        how = f"normalized, as {dtype.name}"
        sets = [("training ", Xtr, ytr, how), ("test ", Xte, yte, how)]
    for split, X, y, how in sets:
        tr.check_finite(f"the {split}features of dataset {dataset!r} ({how})", X)
        tr.check_finite(f"the {split}targets of dataset {dataset!r}", y)


def _cmd_train(args: argparse.Namespace) -> int:
    import deltaprop as dp
    from deltaprop import io
    from deltaprop import train as tr

    t0 = time.perf_counter()
    cfg, ckpt = _resolve_train_config(args)
    dataset, seed = cfg["dataset"], cfg["seed"]
    dtype = np.dtype(cfg["dtype"])
    _check_outputs(args)

    Xtr_raw, Xte_raw, ytr, yte = _split(dataset, seed)
    norm = _normalization(dataset, Xtr_raw)
    Xtr, Xte = _normalize(Xtr_raw, norm, dtype), _normalize(Xte_raw, norm, dtype)
    if dataset == "mazur":
        ytr, yte = ytr.astype(dtype), yte.astype(dtype)
    _check_inputs(dataset, dtype, Xtr, Xte, ytr, yte)
    task = _task(dataset, ytr, Xtr.shape[1], cfg["hidden"])
    too_big = _too_big(task["sizes"], dtype, _copies("train", cfg["optimizer"], cfg["momentum"]))
    if too_big and ckpt is not None:
        raise CommandError(_file_too_big(args.resume, too_big))
    if too_big:
        raise UsageError(f"--hidden {_fmt_hidden(cfg['hidden'])} is too big: {too_big}; use smaller hidden sizes")
    batch_size = cfg["batch_size"] or len(Xtr)
    batch_size = min(batch_size, len(Xtr))
    meta: dict[str, Any] = {
        "deltaprop_train": FORMAT,
        "file": "model",
        "dataset": dataset,
        "data_args": DATA_ARGS.get(dataset, {}),
        "split": "train=test" if dataset in TINY else {"test_size": TEST_SIZE, "stratify": True},
        "seed": seed,
        "sizes": task["sizes"],
        "hidden": cfg["hidden"],
        "activation": cfg["activation"],
        "output_activation": task["output_activation"],
        "loss": task["loss"],
        "dtype": dtype.name,
        "normalize": norm,
        "optimizer": cfg["optimizer"],
        "lr": cfg["lr"],
        "momentum": cfg["momentum"],
        "batch_size": batch_size,
        "batch_size_option": cfg["batch_size"],
    }

    with _default_dtype(dtype):
        dp.manual_seed(seed)
        model = tr.build_mlp(task["sizes"], cfg["activation"], output_activation=task["output_activation"],
                             dtype=dtype)
        opt = _make_optimizer(cfg["optimizer"], model.parameters(), cfg["lr"], cfg["momentum"])
        loss_fn = _loss_fn(task["loss"])
        history = tr.History()
        start = 0
        if ckpt is not None and ckpt.optimizer_state is None:
            model.load_state_dict(ckpt.model_state)
            start = ckpt.epoch
            history = tr.History.from_dict(ckpt.metadata.get("history"))
            print(f"note: {args.resume} is a model file: weights and epochs restored, the optimizer starts "
                  "fresh (write --checkpoint PATH for an exact resume)", file=sys.stderr)
        elif ckpt is not None:
            start = io.load_checkpoint(args.resume, model, opt)
            history = tr.History.from_dict(ckpt.metadata.get("history"))
        loader = dp.data.DataLoader(dp.data.TensorDataset(Xtr, ytr), batch_size=batch_size,
                                    shuffle=batch_size < len(Xtr), seed=seed)
        # the tiny sets train on their test points: evaluate once, report it as both
        eval_sets = {"test": (Xte, yte)} if dataset in TINY else {"train": (Xtr, ytr), "test": (Xte, yte)}
        acc_key = "test_accuracy" if dataset in TINY else "train_accuracy"

        epochs = cfg["epochs"]
        steps = len(loader)
        good = {"epoch": start, "state": model.state_dict()}
        bar = _progress_bar((epochs - start) * steps, start, epochs)
        last_acc = [history.last(acc_key)]

        def on_epoch(epoch: int, record: dict[str, float]) -> None:
            good["epoch"] = epoch
            good["state"] = model.state_dict()
            last_acc[0] = record[acc_key]
            if bar is not None:
                test = "" if dataset in TINY else f" test_acc={record['test_accuracy']:.4f}"
                bar.set_postfix_str(f"loss={record['train_loss']:.4g} acc={last_acc[0]:.4f}{test}")

        def finish_history() -> None:
            if dataset in TINY:
                history.metrics["train_accuracy"] = list(history.metrics.get("test_accuracy", []))

        on_batch = None
        if bar is not None:
            def on_batch(epoch: int, step: int, loss: float) -> None:
                acc = "" if last_acc[0] is None else f" acc={last_acc[0]:.4f}"
                bar.set_description_str(f"epoch {epoch}/{epochs} batch {step}/{steps}", refresh=False)
                bar.set_postfix_str(f"loss={loss:.4g}{acc}", refresh=False)
                bar.update(1)

        try:
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # fit reports NaN/Inf itself
                tr.fit(model, loss_fn, opt, loader, epochs, start_epoch=start, eval_sets=eval_sets,
                       on_epoch=on_epoch, on_batch=on_batch, history=history)
        except tr.NonFiniteLossError as exc:
            if bar is not None:
                bar.close()
            finish_history()
            meta.update({"epochs": good["epoch"], "history": history.to_dict()})
            saved = ""
            if args.out:
                io.save(good["state"], args.out, metadata=meta)
                which = (f"the model of the last finite epoch ({good['epoch']})" if good["epoch"] > 0
                         else "the initial model (no epoch finished)")
                saved = f"; kept {which} in {args.out}"
            msg = f"{exc}{saved}"
            if args.json:
                _json_line({"error": msg, "failed_epoch": exc.epoch, "failed_step": exc.step,
                            "epochs": good["epoch"], "dataset": dataset, "model_path": args.out})
            _print(f"{PROG}: error: {msg}", file=sys.stderr)
            return 1
        if bar is not None:
            bar.close()
        finish_history()
        seconds = time.perf_counter() - t0

        h = history.metrics
        result = {
            "dataset": dataset,
            "epochs": epochs,
            "train_loss": h["train_loss"][-1],
            "train_accuracy": h["train_accuracy"][-1],
            "test_loss": h["test_loss"][-1],
            "test_accuracy": h["test_accuracy"][-1],
            "seconds": round(seconds, 4),
            "model_path": args.out,
            "hidden": cfg["hidden"],
            "sizes": task["sizes"],
            "activation": cfg["activation"],
            "optimizer": cfg["optimizer"],
            "lr": cfg["lr"],
            "momentum": cfg["momentum"],
            "batch_size": batch_size,
            "seed": seed,
            "dtype": dtype.name,
            "n_train": int(len(Xtr)),
            "n_test": int(len(Xte)),
            "resumed_from": args.resume,
            "checkpoint_path": args.checkpoint,
        }
        meta.update({"epochs": epochs, "history": history.to_dict(),
                     "train_loss": result["train_loss"], "test_accuracy": result["test_accuracy"]})
        io.save(model.state_dict(), args.out, metadata=meta)
        if args.checkpoint:
            io.save_checkpoint(args.checkpoint, model, opt, epoch=epochs, metadata={**meta, "file": "checkpoint"})

    out = sys.stderr if args.json else sys.stdout
    arch = "-".join(str(s) for s in task["sizes"])
    mom = f" momentum={cfg['momentum']:g}" if cfg["momentum"] else ""
    _print(f"{dataset}: {arch} {cfg['activation']}, {cfg['optimizer']} lr={cfg['lr']:g}{mom}, batch {batch_size}, "
           f"{epochs} epochs, seed {seed}, {dtype.name}", file=out)
    test_what = "train = test points" if dataset in TINY else f"{len(Xte)} held-out samples"
    _print(f"train loss {result['train_loss']:.6g}  train accuracy {result['train_accuracy']:.4f}  "
           f"({seconds:.2f} s)", file=out)
    _print(f"test accuracy: {result['test_accuracy']:.4f}  (test loss {result['test_loss']:.6g}, {test_what})",
           file=out)
    _print(f"saved model to {args.out}", file=out)
    if args.checkpoint:
        _print(f"saved checkpoint to {args.checkpoint}", file=out)
    plot_path = None
    if not args.no_plot and args.plot:
        note = _write_plot(args.plot, history, f"deltaprop train: {dataset} {arch} {cfg['activation']}, "
                                               f"{cfg['optimizer']} lr={cfg['lr']:g}")
        if note is None:
            plot_path = args.plot
            _print(f"saved plot to {args.plot}", file=out)
        else:
            _print(f"note: {note}", file=sys.stderr)
    if args.json:
        result["plot_path"] = plot_path
        _json_line(result)
    return 0


def _progress_bar(total: int, start: int, epochs: int) -> Any:
    """A tqdm bar on stderr, or None when stderr is not a terminal."""
    if not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty()):
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, file=sys.stderr, unit="batch", leave=True, dynamic_ncols=True,
                desc=f"epoch {start + 1}/{epochs}")


# ----------------------------------------------------------------------------- evaluate

def _cmd_evaluate(args: argparse.Namespace) -> int:
    import deltaprop as dp
    from deltaprop import train as tr

    path = args.model
    state, meta = _read_model_file(path)
    _check_meta(path, meta)
    dataset, seed = meta["dataset"], meta["seed"]
    dtype = np.dtype(meta["dtype"])
    sizes = meta["sizes"]
    Xtr_raw, Xte_raw, ytr, yte = _split(dataset, seed)
    norm = meta["normalize"]
    Xtr, Xte = _normalize(Xtr_raw, norm, dtype), _normalize(Xte_raw, norm, dtype)
    if dataset == "mazur":
        ytr, yte = ytr.astype(dtype), yte.astype(dtype)
    _check_inputs(dataset, dtype, Xtr, Xte, ytr, yte)
    if sizes[0] != Xtr.shape[1]:
        raise CommandError(f"{path!r}: metadata key 'sizes' starts with {sizes[0]} inputs but dataset "
                           f"{dataset!r} has {Xtr.shape[1]} features")
    with _default_dtype(dtype):
        model = tr.build_mlp(sizes, meta["activation"], output_activation=meta["output_activation"], dtype=dtype)
        _check_state(path, state, model)
        model.load_state_dict(state)
        loss_fn = _loss_fn(meta["loss"])
        test = tr.evaluate(model, Xte, yte, loss_fn)
        train = tr.evaluate(model, Xtr, ytr, loss_fn)
    result = {
        "model_path": path,
        "dataset": dataset,
        "epochs": meta.get("epochs"),
        "sizes": sizes,
        "activation": meta["activation"],
        "test_accuracy": test["accuracy"],
        "test_loss": test["loss"],
        "train_accuracy": train["accuracy"],
        "train_loss_eval": train["loss"],
        "n_test": int(len(Xte)),
        "seed": seed,
        "dtype": dtype.name,
    }
    out = sys.stderr if args.json else sys.stdout
    what = "train = test points" if dataset in TINY else f"{len(Xte)} held-out samples, split seed {seed}"
    _print(f"{path}: {dataset} {'-'.join(map(str, sizes))} {meta['activation']}, {meta.get('epochs')} epochs",
           file=out)
    _print(f"test accuracy: {test['accuracy']:.4f}  (test loss {test['loss']:.6g}, {what})", file=out)
    _print(f"train accuracy: {train['accuracy']:.4f}  (train loss {train['loss']:.6g})", file=out)
    if args.json:
        _json_line(result)
    return 0


# ----------------------------------------------------------------------------- delegation

def _delegate(module: str, argv: list[str]) -> int:
    import importlib

    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and module.startswith(exc.name) or exc.name == module:
            _print(f"{PROG}: error: '{module}' is not available in this installation of deltaprop "
                   "(the command is not built yet)", file=sys.stderr)
            return 1
        raise
    fn = getattr(mod, "main", None)
    if fn is None:
        _print(f"{PROG}: error: '{module}' has no main(argv); the command is not available", file=sys.stderr)
        return 1
    rc = fn(argv)
    return int(rc or 0)


# ----------------------------------------------------------------------------- entry point

def main(argv: Sequence[str] | None = None) -> int:
    """Run the `deltaprop` command with `argv` (default: sys.argv[1:]); return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "explain":
        return _delegate("deltaprop.explain.cli", argv[1:])
    if argv and argv[0] == "bench":
        return _delegate("deltaprop.bench", argv[1:])
    parser = build_parser()
    if not argv:
        parser.print_help()
        return 0
    try:
        args, extra = parser.parse_known_args(argv)
        if extra:  # name the command's options too (DESIGN: the message lists the valid ones)
            which = parser.commands.get(args.command, parser)
            opts = [o for a in which._actions for o in a.option_strings if o.startswith("--")]
            which.error(f"unrecognized argument(s): {' '.join(extra)} (the options are: {', '.join(opts)})")
    except SystemExit as exc:  # --help, --version, usage errors (argparse printed the message)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    if args.command is None:
        parser.print_help()
        return 0
    sub = {"train": _cmd_train, "evaluate": _cmd_evaluate}[args.command]
    try:
        return sub(args)
    except UsageError as exc:
        _print(f"{PROG} {args.command}: error: {exc}; see '{PROG} {args.command} --help'", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        _print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except MemoryError as exc:  # the size checks come first; this is the rest (e.g. a huge batch)
        why = f" ({exc})" if str(exc) else ""
        todo = ("use a smaller network (--hidden) or --batch-size" if args.command == "train"
                else "free some memory or use a machine with more")
        _print(f"{PROG}: error: out of memory{why}; {todo}", file=sys.stderr)
        return 1
    except (CommandError, ValueError, OSError, FloatingPointError) as exc:
        msg = str(exc)
        if isinstance(exc, OSError) and exc.filename and exc.strerror:
            msg = f"{exc.strerror}: {exc.filename!r}"
        _print(f"{PROG}: error: {msg}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
