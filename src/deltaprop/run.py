"""A training run as the library does it: configuration, data, training (resume, checkpoints, the
last finite model, early stopping, LR schedules), evaluation and prediction on files.

The `deltaprop` command and `deltaprop.sklearn` call this module; a script can too::

    from deltaprop import run
    cfg = run.RunConfig.for_dataset("file", data="cancer.csv", target="diagnosis")
    result = run.train_run(cfg, out="model.safetensors")
    run.evaluate_file("model.safetensors", data="cancer.csv")
    run.predict_file("model.safetensors", "new.csv", out="preds.csv")

Every setting of a run and what it learned from the data (layer sizes, standardisation, class
names) is stored in the model file's metadata, so evaluate, predict and resume rebuild it exactly.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping

import numpy as np

__all__ = ["RunConfig", "Data", "RunResult", "Callback", "RunConfigError", "ModelFileError", "ModelTooBigError",
           "DivergedError", "load_data", "build_model", "make_optimizer", "make_scheduler", "train_run",
           "resume_config", "read_model_file", "load_model", "evaluate_file", "predict_file", "regression_metrics",
           "file_split", "file_digest", "data_label",
           "check_outputs", "check_metadata", "defaults_for", "loss_function", "model_spec", "fmt_bytes", "too_big",
           "parameter_count",
           "DATASETS", "MODELS", "OPTIMIZERS", "SCHEDULERS", "DTYPES", "DEFAULTS", "join_mpi_world"]

BUILTIN = ("digits", "xor", "mazur", "moons", "circles", "spirals")
#: What `RunConfig.dataset` may be: a built-in set, "mnist" (files in `data`) or "file" (`data`).
DATASETS: tuple[str, ...] = BUILTIN + ("mnist", "file")
MODELS: tuple[str, ...] = ("mlp", "cnn")
OPTIMIZERS: tuple[str, ...] = ("sgd", "adam", "adamw", "rmsprop")
SCHEDULERS: tuple[str, ...] = ("step", "cosine", "plateau")
DTYPES: tuple[str, ...] = ("float32", "float64")
ACTIVATIONS: tuple[str, ...] = ("relu", "tanh", "sigmoid", "leaky_relu", "gelu")
LOSSES = ("cross_entropy", "mse_half_sum", "mse")
FORMAT = 2  # version of the metadata `train_run` writes; format 1 (before this module) still reads
TEST_SIZE = 0.2  # held-out share of every set but the tiny ones (and MNIST, which has its own test files)
VAL_SIZE = 0.1  # share of the training split held out for early stopping and the plateau schedule
TINY = ("xor", "mazur")  # train = test, full batch, inputs used as they are
MEMORY_FALLBACK = 1 << 40  # bytes assumed when the machine's memory cannot be read (1 TiB)

# Generated sets: the generator's arguments (the run's seed is added as the data seed).
DATA_ARGS: dict[str, dict[str, Any]] = {
    "moons": {"n": 500, "noise": 0.2},
    "circles": {"n": 500, "noise": 0.1, "factor": 0.5},
    "spirals": {"n": 600, "classes": 3, "noise": 0.2},
}


@dataclass(frozen=True)
class Defaults:
    """Per-dataset defaults (chosen so the default runs meet their targets)."""

    hidden: tuple[int, ...]
    activation: str
    optimizer: str
    lr: float
    epochs: int
    batch_size: int  # 0 = full batch
    momentum: float = 0.0  # SGD only
    scheduler: str | None = None


#: The defaults of each dataset (key) or dataset/model pair ("digits/cnn").
DEFAULTS: dict[str, Defaults] = {
    "digits": Defaults((128,), "relu", "adam", 3e-3, 20, 32),
    # 2-2-2 sigmoid XOR has local minima; SGD with momentum escapes them far more often than Adam
    "xor": Defaults((2,), "sigmoid", "sgd", 0.3, 2000, 0, momentum=0.9),
    # Mazur's worked example: plain SGD, lr 0.5, sum-of-squares error on sigmoid outputs
    "mazur": Defaults((2,), "sigmoid", "sgd", 0.5, 3000, 0),
    "moons": Defaults((16, 16), "tanh", "adam", 0.01, 100, 32),
    "circles": Defaults((16, 16), "tanh", "adam", 0.01, 100, 32),
    "spirals": Defaults((32, 32), "relu", "adam", 0.02, 200, 32),
    "mnist": Defaults((128,), "relu", "adam", 1e-3, 5, 64),
    "file": Defaults((64,), "relu", "adam", 1e-3, 100, 32),
    # the CNN: `hidden` is its one fully connected layer; cosine decay settles the last epochs
    "digits/cnn": Defaults((64,), "relu", "adam", 3e-3, 15, 32, scheduler="cosine"),
    "mnist/cnn": Defaults((64,), "relu", "adam", 1e-3, 3, 64, scheduler="cosine"),
    "file/cnn": Defaults((64,), "relu", "adam", 1e-3, 20, 32, scheduler="cosine"),
}


def defaults_for(dataset: str, model: str = "mlp") -> Defaults:
    """The defaults of `dataset` trained with `model` (a CNN on a set without its own: file/cnn's)."""
    if model == "cnn":
        return DEFAULTS.get(f"{dataset}/cnn", DEFAULTS["file/cnn"])
    return DEFAULTS[dataset]


class RunConfigError(ValueError):
    """A configuration that cannot run (a usage error: the CLI exits 2); `field` names the
    RunConfig field at fault when the message starts with it."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ModelTooBigError(RunConfigError):
    """The network would not fit in this machine's memory (`why` says sizes and bytes)."""

    def __init__(self, why: str) -> None:
        self.why = why
        super().__init__(f"the network is too big: {why}")


class ModelFileError(ValueError):
    """A model file or checkpoint whose metadata or weights do not describe a run (names the key)."""


class DivergedError(FloatingPointError):
    """The loss (or the weights) became NaN/Inf; `kept_epoch`'s model was saved to `out` if given."""

    def __init__(self, cause: Any, kept_epoch: int, out: str | None, result: RunResult) -> None:
        self.cause, self.kept_epoch, self.out, self.result = cause, kept_epoch, out, result
        self.epoch, self.step = cause.epoch, cause.step
        saved = ""
        if out:
            which = (f"the model of the last finite epoch ({kept_epoch})" if kept_epoch > 0
                     else "the initial model (no epoch finished)")
            saved = f"; kept {which} in {out}"
        super().__init__(f"{cause}{saved}")


# ----------------------------------------------------------------------------- configuration

@dataclass
class RunConfig:
    """Everything a run is made of. `for_dataset` fills in the dataset's defaults; the model file's
    metadata holds it all (`to_metadata`), and `from_metadata` reads it back, checking each key."""

    dataset: str = "digits"
    data: str | None = None  # the file (dataset "file") or the MNIST directory or .npz ("mnist")
    target: str | None = None  # the target column / array / .npy file (dataset "file")
    task: str | None = None  # "classification" or "regression"; None: decided by the target
    delimiter: str | None = None  # the CSV's delimiter; None: guessed from its records
    header: bool | None = None  # the CSV's first line is its header (None: yes, unless it is numbers)
    model: str = "mlp"
    hidden: tuple[int, ...] = (128,)  # hidden layer sizes (the CNN: its fully connected layer)
    channels: tuple[int, ...] = (16, 32)  # the CNN's convolution channels
    activation: str = "relu"
    optimizer: str = "adam"
    lr: float = 3e-3
    momentum: float | None = None  # SGD only
    weight_decay: float | None = None  # None: the optimizer's default (0; AdamW 0.01)
    epochs: int = 20
    batch_size: int = 32  # 0: full batch
    seed: int = 0
    dtype: str = "float32"
    scheduler: str | None = None
    early_stopping: int | None = None  # patience in epochs, on the validation split's loss

    @classmethod
    def for_dataset(cls, dataset: str = "digits", model: str = "mlp", **given: Any) -> RunConfig:
        """The dataset's (and model's) defaults, with every option in `given` that is not None applied."""
        if dataset not in DATASETS:
            raise RunConfigError(f"unknown dataset {dataset!r}; choose one of: {', '.join(DATASETS)}")
        if model not in MODELS:
            raise RunConfigError(f"unknown model {model!r}; choose one of: {', '.join(MODELS)}")
        d = defaults_for(dataset, model)
        values: dict[str, Any] = {"dataset": dataset, "model": model, "hidden": d.hidden,
                                  "activation": d.activation, "optimizer": d.optimizer, "lr": d.lr,
                                  "epochs": d.epochs, "batch_size": d.batch_size, "scheduler": d.scheduler}
        unknown = [k for k in given if k not in {f.name for f in dataclasses.fields(cls)}]
        if unknown:
            raise TypeError(f"RunConfig.for_dataset: unknown option(s) {', '.join(unknown)}")
        values.update({k: v for k, v in given.items() if v is not None})
        if values["optimizer"] == "sgd":
            values.setdefault("momentum", d.momentum if d.optimizer == "sgd" else 0.0)
        elif values.get("momentum") is not None:
            raise RunConfigError(f"momentum applies to optimizer sgd only (this run uses {values['optimizer']})")
        cfg = cls(**values)
        cfg.check()
        return cfg

    def check(self, where: str = "RunConfig") -> None:
        """Raise RunConfigError naming the first field that holds an impossible value (its `field`)."""
        def bad(key: str, want: str) -> RunConfigError:
            return RunConfigError(f"{where}: {key} is {getattr(self, key)!r}, {want}", field=key)

        def is_int(v: Any, lo: int) -> bool:
            return bool(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= lo)

        def is_num(v: Any) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

        for key, choices in (("dataset", DATASETS), ("model", MODELS), ("activation", ACTIVATIONS),
                             ("optimizer", OPTIMIZERS), ("dtype", DTYPES)):
            if getattr(self, key) not in choices:
                raise bad(key, f"not one of {', '.join(choices)}")
        if self.task not in (None, "classification", "regression"):
            raise bad("task", "not 'classification', 'regression' or None")
        if self.scheduler not in (None, *SCHEDULERS):
            raise bad("scheduler", f"not one of {', '.join(SCHEDULERS)} or None")
        if self.delimiter is not None and not (isinstance(self.delimiter, str) and len(self.delimiter) == 1
                                               and self.delimiter not in "\"\r\n"):
            raise bad("delimiter", "not one character other than a quote or a newline, or None")
        if self.header not in (None, True, False):
            raise bad("header", "not true, false or None")
        if self.dataset in ("file", "mnist") and not self.data:
            raise RunConfigError(f"{where}: dataset {self.dataset!r} needs data (the path of the "
                                 f"{'file' if self.dataset == 'file' else 'MNIST directory or .npz'})")
        self.hidden = tuple(self.hidden)
        self.channels = tuple(self.channels)
        if not all(is_int(n, 1) for n in self.hidden):
            raise bad("hidden", "not a list of positive layer sizes")
        if self.model == "cnn" and len(self.hidden) != 1:
            raise bad("hidden", "not one size (the CNN has one fully connected hidden layer)")
        if not self.channels or not all(is_int(n, 1) for n in self.channels):
            raise bad("channels", "not a list of positive channel counts")
        if not (is_num(self.lr) and self.lr > 0):
            raise bad("lr", "not a positive number")
        if self.momentum is not None and not (is_num(self.momentum) and 0 <= self.momentum < 1):
            raise bad("momentum", "not a number in [0, 1) or None")
        if self.weight_decay is not None and not (is_num(self.weight_decay) and self.weight_decay >= 0):
            raise bad("weight_decay", "not a number >= 0 or None")
        if not is_int(self.epochs, 1):
            raise bad("epochs", "not a positive integer")
        if not is_int(self.batch_size, 0):
            raise bad("batch_size", "not a non-negative integer (0 = full batch)")
        if not is_int(self.seed, 0):
            raise bad("seed", "not a non-negative integer")
        if self.early_stopping is not None and not is_int(self.early_stopping, 1):
            raise bad("early_stopping", "not a positive number of epochs or None")
        if self.dataset == "mazur" and self.model == "cnn":
            raise RunConfigError(f"{where}: model 'cnn' needs image data; dataset 'mazur' has 2 inputs")

    def to_metadata(self) -> dict[str, Any]:
        """The JSON-able fields (the model file's metadata keys of the same names)."""
        d = dataclasses.asdict(self)
        d["hidden"], d["channels"] = list(self.hidden), list(self.channels)
        d["batch_size_option"] = d.pop("batch_size")  # "batch_size" holds the size actually used
        return d

    @classmethod
    def from_metadata(cls, meta: Mapping[str, Any], path: str = "the metadata") -> RunConfig:
        """Rebuild the config a model file was trained with (format 1 or 2); ModelFileError names a bad key."""
        sizes = meta.get("sizes")
        try:
            values: dict[str, Any] = {
                "dataset": meta["dataset"], "data": meta.get("data"), "target": meta.get("target"),
                "task": meta.get("task"), "delimiter": meta.get("delimiter"), "header": meta.get("header"),
                "model": meta.get("model", "mlp"),
                "hidden": meta.get("hidden", sizes[1:-1] if isinstance(sizes, list) else ()),
                "channels": meta.get("channels", [16, 32]), "activation": meta["activation"],
                "optimizer": meta.get("optimizer", "adam"), "lr": meta.get("lr", 1e-3),
                "momentum": meta.get("momentum"), "weight_decay": meta.get("weight_decay"),
                "epochs": meta.get("epochs", 0) or 1,
                "batch_size": meta.get("batch_size_option", meta.get("batch_size", 0)),
                "seed": meta["seed"], "dtype": meta["dtype"], "scheduler": meta.get("scheduler"),
                "early_stopping": meta.get("early_stopping"),
            }
            for key in ("hidden", "channels"):
                if not isinstance(values[key], list):
                    raise ModelFileError(f"{path!r}: metadata key {key!r} is {values[key]!r}, not a list")
            cfg = cls(**values)
            cfg.check(where=f"{path!r}: metadata")
        except RunConfigError as exc:  # name the key as the file spells it
            where = f"{path!r}: metadata: "
            msg = str(exc).replace(where, "")
            key = exc.field or ""
            if key and msg.startswith(key):
                key = "batch_size_option" if key == "batch_size" and "batch_size_option" in meta else key
                msg = f"metadata key {key!r}{msg[len(exc.field or ''):]}"
            raise ModelFileError(f"{path!r}: {msg}") from None
        return cfg


# ----------------------------------------------------------------------------- memory

def _memory_bytes() -> int:
    """The machine's physical memory (page size x pages), or MEMORY_FALLBACK if unknown."""
    try:
        n = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return MEMORY_FALLBACK
    return n if n > 0 else MEMORY_FALLBACK


def fmt_bytes(n: int) -> str:
    """`n` bytes as text: 512 B, 1.5 KiB, 27.3 TiB."""
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


def parameter_count(meta: Mapping[str, Any]) -> int:
    """Parameters of the network `meta` describes (model, sizes, channels, image_shape), in exact integers."""
    from deltaprop import train as tr

    sizes = [int(s) for s in meta["sizes"]]
    if meta.get("model", "mlp") != "cnn":
        return tr.mlp_parameter_count(sizes)
    c, h, w = (int(v) for v in meta["image_shape"])
    n = 0
    for out in meta["channels"]:
        n += c * int(out) * 9 + int(out)
        c = int(out)
        if h >= 2 and w >= 2:
            h, w = h // 2, w // 2
    return n + tr.mlp_parameter_count([c * h * w, *sizes[1:]])


def too_big(meta: Mapping[str, Any], copies: tuple[int, str]) -> str | None:
    """None if the network `meta` describes fits in memory; else why not, naming sizes and bytes.

    Counted from the sizes alone (exact integers), so nothing is allocated to find out.
    """
    params = parameter_count(meta)
    dt = np.dtype(meta["dtype"])
    weights = params * dt.itemsize
    n, purpose = copies
    need = weights * n
    memory = _memory_bytes()
    if need <= memory:
        return None
    arch = "-".join(str(int(v)) for v in meta["sizes"])
    return (f"the network {arch} has {params:,} parameters: {fmt_bytes(weights)} of {dt.name} weights and "
            f"about {fmt_bytes(need)} {purpose}, more than this machine's {fmt_bytes(memory)} of memory")


# ----------------------------------------------------------------------------- data

@dataclass
class Data:
    """A run's data as the network sees it (standardised, in the run's dtype) and how it got so."""

    Xtr: np.ndarray
    ytr: np.ndarray
    Xte: np.ndarray
    yte: np.ndarray
    Xval: np.ndarray | None = None
    yval: np.ndarray | None = None
    task: str = "classification"
    classes: list[Any] | None = None
    feature_names: list[str] | None = None
    target_name: str | None = None
    normalize: dict[str, list[float]] | None = None
    target_normalize: dict[str, float] | None = None
    image_shape: list[int] | None = None
    n_outputs: int = 0

    def info(self) -> dict[str, Any]:
        """The metadata keys that apply this preprocessing to new data."""
        return {"task": self.task, "classes": self.classes, "feature_names": self.feature_names,
                "target": self.target_name, "normalize": self.normalize,
                "target_normalize": self.target_normalize, "image_shape": self.image_shape}


def _raw_data(dataset: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A built-in dataset as float64 arrays (the generated ones seeded by the run's seed)."""
    from deltaprop import data

    if dataset in ("digits", "xor", "mazur"):
        return getattr(data, dataset)(dtype=np.float64)
    gen: Any = {"moons": data.moons, "circles": data.circles, "spirals": data.spirals}[dataset]
    return gen(**DATA_ARGS[dataset], seed=seed, dtype=np.float64)


def _standardization(X: np.ndarray) -> dict[str, list[float]]:
    """Per-feature mean and std of the training inputs (std 0 -> 1)."""
    flat = X.reshape(len(X), -1)
    std = flat.std(axis=0)
    return {"mean": [float(v) for v in flat.mean(axis=0)], "std": [float(v) for v in np.where(std > 0, std, 1.0)]}


def _apply(X: np.ndarray, norm: Mapping[str, Any] | None, dtype: np.dtype) -> np.ndarray:
    if norm is not None:
        shape = X.shape
        X = ((X.reshape(len(X), -1) - np.asarray(norm["mean"], dtype=np.float64))
             / np.asarray(norm["std"], dtype=np.float64)).reshape(shape)
    return np.ascontiguousarray(X, dtype=dtype)


def _image_shape(model: str, X: np.ndarray, dataset: str) -> list[int] | None:
    """(channels, height, width) of image data for the CNN (None for the MLP)."""
    if model != "cnn":
        return None
    if X.ndim == 3:
        return [1, X.shape[1], X.shape[2]]
    if X.ndim == 4:
        return list(X.shape[1:])
    side = math.isqrt(X.shape[1])
    if side * side != X.shape[1] or side < 2:
        raise RunConfigError(f"model 'cnn' needs images: dataset {dataset!r} has {X.shape[1]} features per "
                             "sample, not a square number of pixels nor (samples, height, width) arrays")
    return [1, side, side]


def _raw_split(config: RunConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """(Xtr, Xte, ytr, yte, info) before standardisation: the split the file or set defines."""
    from deltaprop import data, train as tr

    ds, seed = config.dataset, config.seed
    info: dict[str, Any] = {"task": "classification", "classes": None, "feature_names": None, "target": None}
    if ds == "mnist":
        Xtr, ytr = data.load_mnist(config.data, "train", flatten=True, dtype=np.float64)  # type: ignore[arg-type]
        Xte, yte = data.load_mnist(config.data, "test", flatten=True, dtype=np.float64)  # type: ignore[arg-type]
        return Xtr, Xte, ytr, yte, info
    if ds == "file":
        f = data.load_file(config.data, target=config.target, task=config.task,  # type: ignore[arg-type]
                           delimiter=config.delimiter, header=config.header)
        info = {"task": f.task, "classes": f.classes, "feature_names": f.feature_names, "target": f.target_name}
        if len(f.X) < 5:
            raise RunConfigError(f"{config.data}: {len(f.X)} rows are too few to hold out a test split; "
                                 "give at least 5")
        y: Any = f.y  # (a training file has its target column)
        train_idx, test_idx = file_split(y, f.task, seed)
        return f.X[train_idx], f.X[test_idx], y[train_idx], y[test_idx], info
    X, y = _raw_data(ds, seed)
    tr.check_finite(f"the features of dataset {ds!r}", X)
    tr.check_finite(f"the targets of dataset {ds!r}", y)
    if ds == "mazur":
        info["task"] = "mazur"
    if ds in TINY:
        return X, X, y, y, info
    Xtr, Xte, ytr, yte = data.train_test_split(X, y, test_size=TEST_SIZE, seed=seed, stratify=True)
    return Xtr, Xte, ytr, yte, info


def file_split(y: np.ndarray, task: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, test rows) of a file of targets `y`, as `deltaprop train --data` splits it:
    TEST_SIZE held out, seeded, stratified for classification when every class has two rows."""
    from deltaprop import data

    strat = bool(task == "classification" and np.bincount(y).min() >= 2)
    rows = np.arange(len(y))
    train_idx, test_idx, _, _ = data.train_test_split(rows, y, test_size=TEST_SIZE, seed=seed, stratify=strat)
    return train_idx, test_idx


def file_digest(path: str) -> str:
    """The sha256 of a file's bytes, as hex (what identifies a model's training file, and a model file)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_data(config: RunConfig, normalize: Mapping[str, Any] | None = None,
              target_normalize: Mapping[str, float] | None = None) -> Data:
    """The run's data: the train/test split (and a validation split when early stopping or the
    plateau schedule needs one), standardised by the training split's statistics, or by the
    stored `normalize`/`target_normalize` of a model file, in the run's dtype."""
    from deltaprop import data, train as tr

    dtype = np.dtype(config.dtype)
    Xtr, Xte, ytr, yte, info = _raw_split(config)
    task = info["task"]
    Xval = yval = None
    if config.early_stopping or config.scheduler == "plateau":
        if config.dataset in TINY:
            Xval, yval = Xtr, ytr  # train = test: the training points are all there is
        else:
            strat = bool(task == "classification" and np.bincount(ytr.astype(np.int64)).min() >= 2)
            Xtr, Xval, ytr, yval = data.train_test_split(Xtr, ytr, test_size=VAL_SIZE, seed=config.seed,
                                                         stratify=strat)
    tiny = config.dataset in TINY
    norm = None if tiny else (dict(normalize) if normalize is not None else _standardization(Xtr))
    tnorm = None
    if task == "regression":
        if target_normalize is not None:
            tnorm = dict(target_normalize)
        else:
            std = float(ytr.std())
            tnorm = {"mean": float(ytr.mean()), "std": std if std > 0 else 1.0}

    def targets(y: np.ndarray) -> np.ndarray:
        if task == "regression":
            return ((y - tnorm["mean"]) / tnorm["std"]).reshape(-1, 1).astype(dtype)  # type: ignore[index]
        return y.astype(dtype) if task == "mazur" else y

    def features(X: np.ndarray) -> np.ndarray:
        return _apply(X, norm, dtype)

    out = Data(Xtr=features(Xtr), ytr=targets(ytr), Xte=features(Xte), yte=targets(yte),
               Xval=None if Xval is None else features(Xval), yval=None if yval is None else targets(yval),
               task="regression" if task == "regression" else "classification", classes=info["classes"],
               feature_names=info["feature_names"], target_name=info["target"], normalize=norm,
               target_normalize=tnorm, image_shape=_image_shape(config.model, Xtr, config.dataset))
    how = f"as {dtype.name}" if tiny else f"normalized, as {dtype.name}"
    sets = [("", out.Xtr, out.ytr)] if tiny else [("training ", out.Xtr, out.ytr), ("test ", out.Xte, out.yte)]
    for split, X, y in sets:
        tr.check_finite(f"the {split}features of dataset {config.dataset!r} ({how})", X)
        tr.check_finite(f"the {split}targets of dataset {config.dataset!r}", y)
    if task == "mazur":
        out.n_outputs = out.ytr.shape[1]
    elif task == "regression":
        out.n_outputs = 1
    else:
        out.n_outputs = len(info["classes"]) if info["classes"] else int(max(ytr.max(), yte.max())) + 1
    return out


# ----------------------------------------------------------------------------- model pieces

def model_spec(config: RunConfig, data: Data) -> dict[str, Any]:
    """Layer sizes, output activation and loss name of the network for `config` on `data`."""
    n_in = int(np.prod(data.Xtr.shape[1:]))
    spec = {"sizes": [n_in, *config.hidden, data.n_outputs], "output_activation": None, "loss": "cross_entropy"}
    if config.dataset == "mazur":
        spec.update(output_activation="sigmoid", loss="mse_half_sum")
    elif data.task == "regression":
        spec["loss"] = "mse"
    return spec


def build_model(meta: Mapping[str, Any]) -> Any:
    """The network a model file's metadata (or `model_spec` plus config) describes, from the default generator."""
    from deltaprop import train as tr

    dtype = np.dtype(meta["dtype"])
    if meta.get("model", "mlp") == "cnn":
        sizes = meta["sizes"]
        return tr.build_cnn(meta["image_shape"], sizes[-1], meta["channels"], sizes[1], meta["activation"],
                            dtype=dtype)
    return tr.build_mlp(meta["sizes"], meta["activation"], output_activation=meta["output_activation"], dtype=dtype)


def loss_function(name: str) -> Any:
    """The loss called `name` in model files: cross_entropy, mse (regression) or mse_half_sum (Mazur)."""
    from deltaprop import train as tr
    from deltaprop.nn import functional as F

    table = {"cross_entropy": F.cross_entropy, "mse": F.mse_loss, "mse_half_sum": tr.mse_half_sum}
    if name not in table:
        raise ValueError(f"unknown loss {name!r}; the losses are: {', '.join(table)}")
    return table[name]


def make_optimizer(name: str, params: Any, lr: float, momentum: float | None = None,
                   weight_decay: float | None = None) -> Any:
    """The optimizer `name` with PyTorch's defaults besides lr, momentum (SGD) and weight_decay (if not None)."""
    from deltaprop import optim

    kw: dict[str, Any] = {} if weight_decay is None else {"weight_decay": weight_decay}
    if name == "sgd":
        return optim.SGD(params, lr=lr, momentum=momentum or 0.0, **kw)
    cls = {"adam": optim.Adam, "adamw": optim.AdamW, "rmsprop": optim.RMSprop}[name]
    return cls(params, lr=lr, **kw)


def make_scheduler(name: str | None, optimizer: Any, epochs: int) -> Any:
    """The schedule `name` for a run of `epochs`: step (x0.1 every third of the run), cosine (to 0 at
    the end) or plateau (x0.1 after 5 epochs without a better validation loss); None for none.
    A resumed run stretches step and cosine to its new total (so only plateau resumes bit for bit)."""
    from deltaprop.optim import lr_scheduler as ls

    if name is None:
        return None
    if name == "step":
        return ls.StepLR(optimizer, step_size=max(1, epochs // 3), gamma=0.1)
    if name == "cosine":
        return ls.CosineAnnealingLR(optimizer, T_max=epochs)
    return ls.ReduceLROnPlateau(optimizer, patience=5)


def _stretch(sched: Any, epochs: int) -> None:
    """After a resume to a new total: the step and cosine schedules span the whole run again."""
    if hasattr(sched, "T_max"):
        sched.T_max = epochs
    elif hasattr(sched, "step_size"):
        sched.step_size = max(1, epochs // 3)


def regression_metrics(target_normalize: Mapping[str, float] | None = None) -> Any:
    """metrics(out, y) -> {"rmse": ..., "r2": ...} in the target's units (undoing the standardisation)."""
    scale = 1.0 if target_normalize is None else float(target_normalize["std"])

    def metrics(out: np.ndarray, y: np.ndarray) -> dict[str, float]:
        out, y = np.asarray(out, np.float64).reshape(-1), np.asarray(y, np.float64).reshape(-1)
        sse = float(np.sum((out - y) ** 2))
        sst = float(np.sum((y - y.mean()) ** 2))
        return {"rmse": math.sqrt(sse / len(y)) * scale if len(y) else float("nan"),
                "r2": 1.0 - sse / sst if sst > 0 else float("nan")}
    return metrics


def _metrics_for(meta: Mapping[str, Any]) -> Any:
    return regression_metrics(meta.get("target_normalize")) if meta.get("task") == "regression" else None


# ----------------------------------------------------------------------------- model files

def _check_spec(path: str, meta: Mapping[str, Any], resume: bool) -> None:
    """Raise ModelFileError unless the learned part of `meta` (sizes, loss, normalisation...) is sound."""
    from deltaprop import train as tr

    def bad(key: str, want: str) -> ModelFileError:
        return ModelFileError(f"{path!r}: metadata key {key!r} is {meta[key]!r}, {want}")

    sizes = meta["sizes"]
    if not (isinstance(sizes, list) and len(sizes) >= 2
            and all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in sizes)):
        raise bad("sizes", "not a list of layer sizes")
    if meta["output_activation"] not in (None, *ACTIVATIONS):
        raise bad("output_activation", "not an activation name or null")
    if meta["loss"] not in LOSSES:
        raise bad("loss", f"not one of {', '.join(map(repr, LOSSES))}")
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
                    raise ModelFileError(f"{path!r}: metadata key 'normalize' has {k}[{i}] = {v!r} (input "
                                         f"column {i}), not {want}; the file is damaged: re-create it with "
                                         "'deltaprop train'")
    classes = meta.get("classes")
    if classes is not None and not (isinstance(classes, list) and len(classes) == sizes[-1]):
        raise bad("classes", f"not a list of {sizes[-1]} class labels")
    tnorm = meta.get("target_normalize")
    if meta.get("task") == "regression" and not (
            isinstance(tnorm, dict) and all(isinstance(tnorm.get(k), (int, float)) and math.isfinite(tnorm[k])
                                            for k in ("mean", "std")) and tnorm["std"] > 0):
        raise ModelFileError(f"{path!r}: metadata key 'target_normalize' is {tnorm!r}, not "
                             "{'mean': number, 'std': positive number}")
    if meta.get("model") == "cnn":
        shape = meta.get("image_shape")
        if not (isinstance(shape, list) and len(shape) == 3 and all(isinstance(v, int) and v > 0 for v in shape)
                and shape[0] * shape[1] * shape[2] == sizes[0]):
            raise ModelFileError(f"{path!r}: metadata key 'image_shape' is {shape!r}, not [channels, height, "
                                 f"width] with {sizes[0]} pixels")
    if resume:
        epochs = meta.get("epochs", 0)
        if not (isinstance(epochs, int) and not isinstance(epochs, bool) and epochs >= 0):
            raise bad("epochs", "not a non-negative integer")
        try:
            tr.History.from_dict(meta.get("history"))
        except (TypeError, ValueError, AttributeError):
            raise ModelFileError(f"{path!r}: metadata key 'history' is not {{'epochs': [...], 'train_loss': "
                                 "[...], ...} with a list of numbers each; the file is damaged: re-create it "
                                 "with 'deltaprop train'") from None


REQUIRED_META = ("dataset", "sizes", "activation", "output_activation", "loss", "dtype", "seed", "normalize")


def check_metadata(path: str, meta: Mapping[str, Any], resume: bool = False) -> RunConfig:
    """The one validator of model-file metadata: the RunConfig it describes, or ModelFileError
    naming the missing or bad key (and a network too big for this machine)."""
    from deltaprop import io

    needed = REQUIRED_META + (("optimizer", "lr") if resume else ())
    missing = [k for k in needed if k not in meta]
    if missing:  # (a file from another tool, most likely: name what it holds)
        held = io._file_dtypes(path) if os.path.isfile(path) else ""
        raise ModelFileError(
            f"{path!r}{held} lacks the metadata 'deltaprop train' writes (missing key(s) "
            f"{', '.join(repr(k) for k in missing)}), so the network cannot be rebuilt; "
            "use a file written by 'deltaprop train'")
    config = RunConfig.from_metadata(meta, path)
    _check_spec(path, meta, resume)
    copies = _copies("train", config.optimizer, config.momentum) if resume else _copies("evaluate")
    why = too_big(meta, copies)
    if why:
        raise ModelFileError(_file_too_big(path, why))
    return config


def _file_too_big(path: str, why: str) -> str:
    return (f"{path!r}: metadata key 'sizes' describes a network this machine cannot hold: {why}; the file "
            "is damaged, or it needs a machine with more memory")


def check_outputs(paths: Mapping[str, str | None]) -> None:
    """Before any work: raise ValueError unless every path (by label, e.g. {"--out": "m.safetensors"})
    that is not None is a file name in an existing directory."""
    for label, path in paths.items():
        if not path:
            continue
        if os.path.isdir(path):
            name = "training.png" if "plot" in label else "model.safetensors"
            raise ValueError(f"cannot write {path!r} ({label}): it is a directory; give a file name such as "
                             f"{os.path.join(path, name)}")
        d = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(d):
            raise ValueError(f"cannot write {path!r} ({label}): directory {d!r} does not exist; create it first")


def _check_readable(path: str, what: str) -> None:
    if not os.path.exists(path):
        raise FileNotFoundError(2, f"no such {what}", path)
    if os.path.isdir(path):
        raise ModelFileError(f"{path!r} is a directory, not a {what}; give the path of a file written by "
                             "'deltaprop train'")


def read_model_file(path: str, resume: bool = False) -> tuple[dict[str, np.ndarray], dict[str, Any], RunConfig, Any]:
    """(weights, metadata, config, checkpoint or None) of a model file or checkpoint of `train_run`,
    every key and shape checked."""
    from deltaprop import io

    path = os.fspath(path)
    _check_readable(path, "model file")
    meta = io.load_metadata(path)
    ckpt = None
    if meta.get("file") == "checkpoint" or (resume and meta.get("file") != "model"):
        ckpt = io.read_checkpoint(path)  # (a file without our metadata is refused here, naming it)
        state, meta = ckpt.model_state, ckpt.metadata
        config = check_metadata(path, meta, resume)
    else:
        config = check_metadata(path, meta, resume)  # before the weights: a foreign file is refused first
        state = io.load(path)
    return state, meta, config, ckpt


@contextlib.contextmanager
def _dtype_scope(dtype: np.dtype) -> Iterator[None]:
    """deltaprop's default dtype is `dtype` inside (the run's precision), restored after."""
    import deltaprop as dp

    before = dp.get_default_dtype()
    dp.set_default_dtype(dtype)
    try:
        yield
    finally:
        dp.set_default_dtype(before)


def load_model(path: str) -> tuple[Any, dict[str, Any], RunConfig]:
    """(network with its trained weights, metadata, config) of a model file or checkpoint of
    `train_run`, every key and shape checked (ModelFileError names what does not fit)."""
    state, meta, config, _ = read_model_file(os.fspath(path))
    return _load_weights(os.fspath(path), meta, state), meta, config


def _load_weights(path: str, meta: Mapping[str, Any], state: Mapping[str, np.ndarray]) -> Any:
    from deltaprop import io

    model = build_model(meta)
    try:
        io._check_model_state(path, state, model.state_dict())
    except ValueError as exc:
        raise ModelFileError(str(exc).replace("does not match the model", "does not match the network described "
                                              "by its metadata")) from None
    model.load_state_dict(dict(state))
    return model


# ----------------------------------------------------------------------------- training

class Callback:
    """Hooks of `train_run` (override what you need): after each batch and each epoch.
    on_epoch_end may raise deltaprop.train.StopTraining to end the run after that epoch."""

    def on_batch_end(self, epoch: int, step: int, loss: float) -> None:
        """After each optimizer step (epoch and step 1-based)."""

    def on_epoch_end(self, epoch: int, record: dict[str, float]) -> None:
        """After each epoch, with its record (train_loss, test_loss, test_accuracy or test_rmse/test_r2...)."""


@dataclass
class RunResult:
    """What `train_run` returns: the trained model, its config and data, the history and the numbers."""

    model: Any
    config: RunConfig
    data: Data
    history: Any
    metrics: dict[str, Any]
    metadata: dict[str, Any]
    optimizer: Any = None
    scheduler: Any = None
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """The run as one flat JSON-able dict: the final numbers (test_accuracy, or test_rmse and
        test_r2 for regression; train_loss...) and every setting (what `deltaprop train --json` prints)."""
        c, m = self.config, self.metadata
        out = {"dataset": c.dataset, "data": m.get("data"), "epochs": m["epochs"], **self.metrics, "model": c.model, "task": m["task"],
               "hidden": list(c.hidden), "sizes": m["sizes"], "activation": c.activation, "optimizer": c.optimizer,
               "lr": c.lr, "momentum": c.momentum, "weight_decay": c.weight_decay, "scheduler": c.scheduler,
               "early_stopping": c.early_stopping, "batch_size": m["batch_size"], "seed": c.seed, "dtype": c.dtype,
               "n_train": int(len(self.data.Xtr)), "n_test": int(len(self.data.Xte))}
        if c.early_stopping:
            out["best_epoch"] = m["early_stopping_best_epoch"]
        return out


def resume_config(path: str, epochs: int | None = None, **given: Any) -> tuple[RunConfig, Any]:
    """The config of the run saved in `path` (a checkpoint, or a model file: then the optimizer
    restarts) and the checkpoint, with `epochs` as the new total; RunConfigError if it is not more,
    or if a field in `given` (None: not given) differs from the file's."""
    from deltaprop import io

    state, meta, config, ckpt = read_model_file(path, resume=True)
    for key, value in given.items():
        old = getattr(config, key)
        if value is not None and (tuple(value) if key == "hidden" else value) != old:
            shown = (list(value), list(old)) if key == "hidden" else (value, old)
            raise RunConfigError(f"{key} {shown[0]!r} differs from the checkpoint's {shown[1]!r}; leave it out "
                                 "when resuming (or start a fresh run)", field=key)
    if ckpt is None:
        ckpt = io.Checkpoint(model_state=state, optimizer_state=None, epoch=meta.get("epochs", 0), metadata=meta)
    config.epochs = defaults_for(config.dataset, config.model).epochs if epochs is None else epochs
    if config.epochs <= ckpt.epoch:
        raise RunConfigError(f"the checkpoint {path!r} already has {ckpt.epoch} epochs; ask for a total of "
                             f"more than {ckpt.epoch} (--epochs N with N > {ckpt.epoch})")
    return config, ckpt


def train_run(config: RunConfig, *, resume: str | None = None, out: str | None = None,
              checkpoint: str | None = None, callbacks: Iterable[Callback] = (), data: Data | None = None,
              compile: bool = True) -> RunResult:
    """Train as `config` says and return a RunResult; write the model to `out` and a full checkpoint
    (model, optimizer, scheduler, early stopping) to `checkpoint` when given. `compile`: train.fit's
    (dp.compile for the step; False runs it eagerly, the same numbers).

    `resume`: a checkpoint (or model file) to continue from, up to config.epochs in total; the
    other settings come from the file (see `resume_config`). A run resumed from a checkpoint
    repeats the uninterrupted run bit for bit. A NaN/Inf loss raises DivergedError after saving the last finite epoch's model to `out`.
    With `early_stopping` the run stops after that many epochs without a better validation loss and
    keeps the best epoch's weights. Started by `mpiexec -n N`, the N processes train data-parallel
    (`join_mpi_world`, train.fit): the batch size is the global batch, every figure is global,
    only rank 0 writes files, and every rank ends with the same weights.
    """
    import deltaprop as dp
    from deltaprop import io, train as tr

    notes: list[str] = []
    ckpt = None
    if resume is not None:
        config, ckpt = resume_config(os.fspath(resume), config.epochs)
    config.check()
    dtype = np.dtype(config.dtype)
    resume_meta = ckpt.metadata if ckpt is not None else {}
    if data is None:
        data = load_data(config, target_normalize=resume_meta.get("target_normalize"))
    spec = model_spec(config, data)
    batch_size = min(config.batch_size or len(data.Xtr), len(data.Xtr))
    meta: dict[str, Any] = {
        "deltaprop_train": FORMAT, "file": "model", **config.to_metadata(),
        "data_args": DATA_ARGS.get(config.dataset, {}),
        "split": "train=test" if config.dataset in TINY else {"test_size": TEST_SIZE, "stratify": True},
        **spec, **data.info(), "dtype": dtype.name, "batch_size": batch_size,
    }
    if config.data is not None:
        meta["data"] = os.path.abspath(config.data)
        if config.dataset == "file" and os.path.isfile(config.data):  # what identifies its training rows
            n_val = 0 if data.Xval is None else len(data.Xval)
            meta.update(data_sha256=file_digest(config.data), data_rows=len(data.Xtr) + len(data.Xte) + n_val)
    why = too_big(meta, _copies("train", config.optimizer, config.momentum))
    if why and ckpt is not None:
        raise ModelFileError(_file_too_big(str(resume), why))
    if why:
        raise ModelTooBigError(why)

    with _dtype_scope(dtype):
        dp.manual_seed(config.seed)
        model = build_model(meta)
        opt = make_optimizer(config.optimizer, model.parameters(), config.lr, config.momentum, config.weight_decay)
        sched = make_scheduler(config.scheduler, opt, config.epochs)
        history = tr.History()
        start = 0
        stop = {"best": math.inf, "best_epoch": 0, "wait": 0, "best_state": None}
        if ckpt is not None:
            history = tr.History.from_dict(ckpt.metadata.get("history"))
            if ckpt.optimizer_state is None:
                model.load_state_dict(ckpt.model_state)
                start = ckpt.epoch
                notes.append(f"{resume} is a model file: weights and epochs restored, the optimizer starts fresh "
                             "(write a checkpoint for an exact resume)")
            else:
                with_sched = sched if ckpt.scheduler_state is not None else None
                start = io.load_checkpoint(resume, model, opt, scheduler=with_sched)  # type: ignore[arg-type]
                _stretch(sched, config.epochs)
                if ckpt.extra:
                    stop.update(ckpt.extra.get("early_stopping", {}))
        rank, size = join_mpi_world()
        if size > 1:  # data-parallel: rank 0's weights everywhere; dropout draws from seed + rank
            from deltaprop.nn.parallel import DistributedDataParallel

            dp.manual_seed(config.seed + rank)
            model = DistributedDataParallel(model)
        return _fit(config, data, meta, model, opt, sched, history, start, stop, out if rank == 0 else None,
                    checkpoint if rank == 0 else None, list(callbacks), notes, resume, compile)


def join_mpi_world() -> tuple[int, int]:
    """(rank, world size) of this process: it joins the MPI world when `mpiexec` started it
    (deltaprop.distributed), else (0, 1) without importing mpi4py."""
    from deltaprop import distributed as dist

    if not dist.is_initialized():
        if dist._launched_size() is None:
            return 0, 1
        dist.init_process_group()
    return dist.get_rank(), dist.get_world_size()


def _fit(config: RunConfig, data: Data, meta: dict[str, Any], model: Any, opt: Any, sched: Any, history: Any,
         start: int, stop: dict[str, Any], out: str | None, checkpoint: str | None, callbacks: list[Callback],
         notes: list[str], resume: Any, compile: bool = True) -> RunResult:
    import deltaprop as dp
    from deltaprop import io, train as tr
    from deltaprop.nn.parallel import DistributedDataParallel

    tiny = config.dataset in TINY
    batch_size = meta["batch_size"]
    loader = dp.data.DataLoader(dp.data.TensorDataset(data.Xtr, data.ytr), batch_size=batch_size,
                                shuffle=batch_size < len(data.Xtr), seed=config.seed)
    # the tiny sets train on their test points: evaluate once, report it as both
    eval_sets: dict[str, Any]
    eval_sets = {"test": (data.Xte, data.yte)} if tiny else {"train": (data.Xtr, data.ytr), "test": (data.Xte, data.yte)}
    if data.Xval is not None and not tiny:
        eval_sets["val"] = (data.Xval, data.yval)
    metrics = _metrics_for(meta)
    good = {"epoch": start, "state": model.state_dict()}

    def on_epoch(epoch: int, record: dict[str, float]) -> None:
        good["epoch"], good["state"] = epoch, model.state_dict()
        if tiny:
            record = {**record, **{k.replace("test_", "train_"): v for k, v in record.items()
                                   if k.startswith("test_") and k != "test_loss"}}
        watched = record.get("val_loss", record.get("test_loss" if tiny else "train_loss"))
        if sched is not None:
            sched.step(watched) if config.scheduler == "plateau" else sched.step()
        for cb in callbacks:
            cb.on_epoch_end(epoch, record)
        if config.early_stopping:
            if watched < stop["best"]:
                stop.update(best=watched, best_epoch=epoch, wait=0, best_state=model.state_dict())
            else:
                stop["wait"] += 1
                if stop["wait"] >= config.early_stopping:
                    raise tr.StopTraining

    def on_batch(epoch: int, step: int, loss: float) -> None:
        for cb in callbacks:
            cb.on_batch_end(epoch, step, loss)

    def finish_history() -> None:
        if tiny:
            for k in [k for k in history.metrics if k.startswith("test_") and k != "test_loss"]:
                history.metrics[k.replace("test_", "train_")] = list(history.metrics[k])

    plain = model.module if isinstance(model, DistributedDataParallel) else model  # (the user's model)
    result = RunResult(model=plain, config=config, data=data, history=history, metrics={}, metadata=meta,
                       optimizer=opt, scheduler=sched, notes=notes)
    try:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # fit reports NaN/Inf itself
            tr.fit(model, loss_function(meta["loss"]), opt, loader, config.epochs, start_epoch=start,
                   eval_sets=eval_sets, on_epoch=on_epoch, on_batch=on_batch if callbacks else None,
                   history=history, metrics=metrics, compile=compile)
    except tr.NonFiniteLossError as exc:
        finish_history()
        meta.update({"epochs": good["epoch"], "history": history.to_dict()})
        if out:
            io.save(good["state"], out, metadata=meta)
        raise DivergedError(exc, good["epoch"], out, result) from None
    finish_history()
    last = history.epochs[-1] if history.epochs else start
    extra = None
    if config.early_stopping:
        extra = {"early_stopping": {k: v for k, v in stop.items() if v is not None}}
        meta.update(early_stopping_best_epoch=stop["best_epoch"], stopped_epoch=last)
    last_state = model.state_dict()
    if config.early_stopping and stop["best_state"] is not None:
        model.load_state_dict(stop["best_state"])  # the best epoch's weights are the result
    result.metrics = _final_metrics(model, data, meta, history, last, metrics)
    meta.update({"epochs": last, "history": history.to_dict(), "train_loss": result.metrics["train_loss"]})
    for key in ("test_accuracy", "test_rmse", "test_r2"):
        if key in result.metrics:
            meta[key] = result.metrics[key]
    if out:
        io.save(model.state_dict(), out, metadata=meta)
    if checkpoint:
        final = model.state_dict()
        model.load_state_dict(last_state)  # the checkpoint continues from the last epoch, not the best
        io.save_checkpoint(checkpoint, model, opt, epoch=last, metadata={**meta, "file": "checkpoint"},
                           scheduler=sched, extra=extra)
        model.load_state_dict(final)
    return result


def _final_metrics(model: Any, data: Data, meta: Mapping[str, Any], history: Any, last: int,
                   metrics: Any) -> dict[str, Any]:
    """The run's numbers: the last epoch's record, or a fresh evaluation of the kept (best) model."""
    from deltaprop import train as tr

    h = history.metrics
    res: dict[str, Any] = {"train_loss": h["train_loss"][-1] if h.get("train_loss") else float("nan")}
    if meta.get("early_stopping"):
        loss_fn = loss_function(meta["loss"])
        for name, X, y in (("train", data.Xtr, data.ytr), ("test", data.Xte, data.yte)):
            r = tr.evaluate(model, X, y, loss_fn, metrics)
            res[f"{name}_loss" if name == "test" else "train_eval_loss"] = r.pop("loss")
            res.update({f"{name}_{k}": v for k, v in r.items()})
        return res
    for key, values in h.items():
        if key != "train_loss" and values:
            res[key] = values[-1]
    return res


# ----------------------------------------------------------------------------- evaluate and predict

def _new_data(path: str, meta: Mapping[str, Any], data: str, target: str | None, need_target: bool,
              delimiter: str | None = None, header: bool | None = None) -> Any:
    from deltaprop import data as dd

    names = meta.get("feature_names") or [f"x{i}" for i in range(meta["sizes"][0])]
    if target is None and not str(data).lower().endswith(".npy"):  # a .npy's target is its own y.npy
        target = meta.get("target")
    classes = None  # a regression target is read as numbers
    if meta.get("task") != "regression":  # a built-in set's labels are their own class indices
        classes = meta.get("classes") or list(range(meta["sizes"][-1]))
    # A CSV is read as the training file was (its delimiter and header setting) unless told otherwise.
    f = dd.load_file(data, target=target, task=meta.get("task"), features=names, classes=classes,
                     delimiter=delimiter if delimiter is not None else meta.get("delimiter"),
                     header=header if header is not None else meta.get("header"))
    if need_target and f.y is None:
        raise ValueError(f"{data}: no target {target!r} to score the model against; "
                         "give --target COLUMN, or use 'deltaprop predict' for data without targets")
    n = int(np.prod(f.X.shape[1:]))
    if n != meta["sizes"][0]:
        raise ValueError(f"{data}: {n} features per sample, but {path!r} was trained on {meta['sizes'][0]}")
    X = _apply(f.X.reshape(len(f.X), -1), meta["normalize"], np.dtype(meta["dtype"]))
    return X, f


def data_label(meta: Mapping[str, Any]) -> str:
    """How to name a run's data in a sentence: the file's name (cancer.csv) for a run on a file, else
    the dataset's name (digits)."""
    data = meta.get("data")
    if meta.get("dataset") in ("file", "mnist") and data and data != "<arrays>":
        return os.path.basename(os.path.normpath(str(data)))
    return str(meta.get("dataset"))


def _predict(model: Any, X: np.ndarray, meta: Mapping[str, Any]) -> tuple[np.ndarray, Any, Any]:
    """(predictions, probabilities, class indices) of the network on rows already preprocessed:
    for classification the labels, the softmax probabilities and their argmax; for regression the
    values in the target's units (None, None); for Mazur's set the outputs (None, None). `deltaprop
    predict`, `evaluate` and the ONNX export compute exactly this."""
    import deltaprop as dp
    from deltaprop.nn import functional as F

    model.eval()
    with dp.no_grad():
        raw = model(dp.tensor(X))
        if meta.get("task") == "regression":
            tn = meta["target_normalize"]
            return np.asarray(raw, np.float64).reshape(-1) * tn["std"] + tn["mean"], None, None
        if meta["loss"] == "mse_half_sum":
            return np.asarray(raw, np.float64), None, None
        probs = np.asarray(F.softmax(raw, axis=-1), np.float64)
    idx = probs.argmax(axis=1)
    classes = meta.get("classes") or list(range(meta["sizes"][-1]))
    return np.asarray([classes[i] for i in idx], dtype=object), probs, idx


def _score(model: Any, X: np.ndarray, y: np.ndarray, meta: Mapping[str, Any],
           y_units: np.ndarray | None = None) -> dict[str, Any]:
    """loss and accuracy (or rmse, r2, mae) of the model on preprocessed rows X with network targets
    y, and `report`: the confusion matrix and per-class figures (deltaprop.metrics), or the
    regression figures against `y_units` (the targets in their own units; default: y de-standardised)."""
    from deltaprop import metrics as mt, train as tr

    r: dict[str, Any] = tr.evaluate(model, X, y, loss_function(meta["loss"]), _metrics_for(meta))
    preds, _, idx = _predict(model, X, meta)
    if idx is not None:
        classes = meta.get("classes") or list(range(meta["sizes"][-1]))
        r["report"] = mt.classification_report(np.asarray(y), idx, classes)
    elif meta.get("task") == "regression":
        if y_units is None:
            tn = meta["target_normalize"]
            y_units = np.asarray(y, np.float64).reshape(-1) * tn["std"] + tn["mean"]
        rep = mt.regression_report(y_units, preds)
        r.update(rmse=rep["rmse"], r2=rep["r2"], mae=rep["mae"], report=rep)
    return r


def _network_targets(y: np.ndarray, meta: Mapping[str, Any], dtype: np.dtype) -> np.ndarray:
    if meta.get("task") == "regression":
        tn = meta["target_normalize"]
        return ((np.asarray(y, np.float64) - tn["mean"]) / tn["std"]).reshape(-1, 1).astype(dtype)
    return y


def _heldout_rows(meta: Mapping[str, Any], config: RunConfig, data: str, f: Any) -> np.ndarray | None:
    """The held-out (test) rows of `data` when it is the model's training file (the same bytes and
    row count as recorded at training), recomputed as training split them; else None."""
    digest, rows = meta.get("data_sha256"), meta.get("data_rows")
    if not isinstance(digest, str) or f.y is None or len(f.X) != rows or file_digest(data) != digest:
        return None
    return file_split(np.asarray(f.y), meta.get("task", "classification"), config.seed)[1]


def evaluate_file(path: str, data: str | None = None, target: str | None = None, *, delimiter: str | None = None,
                  header: bool | None = None) -> dict[str, Any]:
    """Score the model in `path` (model file or checkpoint): on its own test and train split, or on
    every row of the file `data` (preprocessed as in training; a CSV's `delimiter` and `header` as
    in `load_file`, by default the training file's). Classification adds a `report`
    (`test_report`): confusion matrix, per-class precision, recall, F1 and support, macro and
    weighted means (deltaprop.metrics); regression adds MAE. When `data` is the training file itself,
    `n_seen` rows were seen in training and `heldout` scores the rest on their own."""
    from deltaprop import train as tr

    path = os.fspath(path)
    model, meta, config = load_model(path)
    dtype = np.dtype(meta["dtype"])
    with _dtype_scope(dtype):
        loss_fn, metrics = loss_function(meta["loss"]), _metrics_for(meta)
        result: dict[str, Any] = {"model_path": path, "dataset": config.dataset, "epochs": meta.get("epochs"),
                                  "sizes": meta["sizes"], "activation": config.activation, "model": config.model,
                                  "task": meta.get("task", "classification"), "seed": config.seed,
                                  "dtype": dtype.name, "data_name": data_label(meta)}
        if data is not None:
            X, f = _new_data(path, meta, data, target, need_target=True, delimiter=delimiter, header=header)
            y = _network_targets(f.y, meta, dtype)
            units = np.asarray(f.y, np.float64) if meta.get("task") == "regression" else None
            r = _score(model, X, y, meta, units)
            result.update({"data": data, "data_name": os.path.basename(os.fspath(data)), "n": int(len(X)),
                           "loss": r.pop("loss"), **r})
            test_rows = _heldout_rows(meta, config, data, f)
            if test_rows is not None:
                h = _score(model, X[test_rows], y[test_rows], meta, None if units is None else units[test_rows])
                result["n_seen"] = int(len(X) - len(test_rows))
                result["heldout"] = {"n": int(len(test_rows)), **h}
            return result
        if config.dataset == "file" and config.data and not os.path.exists(config.data):
            raise ValueError(f"{path!r} was trained on {config.data!r}, which is not there any more; pass --data "
                             "FILE to score it on a file (its training file: the held-out rows are scored apart)")
        d = load_data(config, normalize=meta["normalize"], target_normalize=meta.get("target_normalize"))
        if d.Xtr.shape[1:] and int(np.prod(d.Xtr.shape[1:])) != meta["sizes"][0]:
            raise ModelFileError(f"{path!r}: metadata key 'sizes' starts with {meta['sizes'][0]} inputs but dataset "
                                 f"{config.dataset!r} has {int(np.prod(d.Xtr.shape[1:]))} features")
        test = _score(model, d.Xte, d.yte, meta)
        train = tr.evaluate(model, d.Xtr, d.ytr, loss_fn, metrics)
        report = test.pop("report", None)
        result.update({"test_loss": test.pop("loss"), "train_loss_eval": train.pop("loss"), "n_test": int(len(d.Xte))})
        result.update({f"test_{k}": v for k, v in test.items()})
        result.update({f"train_{k}": v for k, v in train.items()})
        if report is not None:
            result["test_report"] = report
        return result


def predict_file(path: str, data: str, out: str | None = None, target: str | None = None, *,
                 delimiter: str | None = None, header: bool | None = None) -> dict[str, Any]:
    """Predict every row of the file `data` with the model in `path`; write a CSV to `out` (atomically)
    with a `prediction` column (class name or value) and, for classification, one probability
    column per class. Returns {"predictions": array, "probabilities": array or None, "n": rows, ...}."""
    from deltaprop import io

    path = os.fspath(path)
    model, meta, _ = load_model(path)
    with _dtype_scope(np.dtype(meta["dtype"])):
        X, _ = _new_data(path, meta, data, target, need_target=False, delimiter=delimiter, header=header)
        preds, probs, _ = _predict(model, X, meta)
    if out:
        io._atomic_write(out, _csv_text(meta, preds, probs).encode("utf-8"))
    return {"model_path": path, "data": data, "n": int(len(X)), "predictions": preds, "probabilities": probs,
            "out": out, "task": meta.get("task", "classification")}


def _csv_text(meta: Mapping[str, Any], preds: np.ndarray, probs: np.ndarray | None) -> str:
    import csv
    import io as _io

    buf = _io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if probs is None:
        if preds.ndim == 2:
            w.writerow([f"prediction_{j}" for j in range(preds.shape[1])])
            w.writerows([[repr(float(v)) for v in row] for row in preds])
        else:
            w.writerow(["prediction"])
            w.writerows([[repr(float(v))] for v in preds])
        return buf.getvalue()
    classes = meta.get("classes") or list(range(probs.shape[1]))
    w.writerow(["prediction", *[f"p_{c}" for c in classes]])
    for p, row in zip(preds, probs):
        w.writerow([p, *[f"{v:.6g}" for v in row]])
    return buf.getvalue()
