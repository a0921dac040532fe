"""Read the user's own data: a CSV table, an .npz archive (arrays X and y) or a pair of .npy files.

One public function, `load_file`. Every problem with the file is one ValueError line that names
the file and, for a CSV, the line, data row and column, so a user can open the file and fix it.
"""
from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

__all__ = ["FileData", "load_file"]

#: The tasks a target can be read as.
TASKS: tuple[str, ...] = ("classification", "regression")
#: An integer-valued numeric target with more distinct values than this is read as regression
#: (unless task="classification" says otherwise): a count or a price, not a class label.
MAX_CLASSES = 100
_MISSING = ("", "na", "nan", "n/a", "null", "none", "?")  # cells read as a missing value


@dataclass
class FileData:
    """What `load_file` read: features `X` (float64, one row per sample), target `y` and the rest.

    For classification `y` is int64 class indices into `classes` (the sorted distinct labels: str
    for a text target, int or float for a numeric one); for regression `y` is float64 and
    `classes` is None. Unpacks as ``X, y, classes = load_file(...)``.
    """

    X: np.ndarray
    y: np.ndarray | None
    classes: list[Any] | None
    task: str
    feature_names: list[str]
    target_name: str
    path: str

    def __iter__(self) -> Iterator[Any]:
        return iter((self.X, self.y, self.classes))


def load_file(path: str | os.PathLike, target: str | None = None, task: str | None = None, *,
              features: list[str] | None = None, classes: list[Any] | None = None) -> FileData:
    """Read features and target from `path`: ``.csv``/``.tsv``/``.txt``, ``.npz`` or ``.npy``.

    - CSV (comma, semicolon or tab separated, header row): `target` names the target column
      (default: the last column); every other column is a numeric feature. A target of text
      labels, or of at most MAX_CLASSES distinct integers, is classification; other numbers are
      regression. Empty cells and NA/NaN/null/? are missing values (an error).
    - ``.npz``: arrays ``X`` (N, ...) and ``y`` (N,); `target` names another target array.
    - ``.npy``: the features; `target` is the path of the target .npy (default: the same file
      name with its last ``X`` replaced by ``y``, e.g. ``train_X.npy`` -> ``train_y.npy``).

    `task` ("classification" or "regression") overrides the guess. Raises ValueError naming the
    file (and line/row/column) for a missing file, an empty file, a missing value, a non-numeric
    feature, a target column that does not exist, or a classification target with one class.

    To read new data for a trained model, pass what it was trained on: `features` (the feature
    names: a CSV must have these columns, in any order; the target becomes optional and `y` is
    None without it) and `classes` (labels map to these indices; an unknown label is an error,
    and one class is fine).
    """
    p = os.fspath(path)
    if task is not None and task not in TASKS:
        raise ValueError(f"load_file: task must be one of {', '.join(TASKS)} or None, got {task!r}")
    if not os.path.exists(p):
        raise ValueError(f"{p}: no such file")
    if os.path.isdir(p):
        raise ValueError(f"{p}: is a directory; give a .csv, .npz or .npy file")
    ext = os.path.splitext(p)[1].lower()
    optional = features is not None
    if ext == ".npz":
        X, raw_y, names, tname = _read_npz(p, target, optional)
    elif ext == ".npy":
        X, raw_y, names, tname = _read_npy_pair(p, target, optional)
    else:
        X, raw_y, names, tname = _read_csv(p, target, features)
    if features is not None and ext in (".npz", ".npy") and len(names) != len(features):
        raise ValueError(f"{p}: the features have {len(names)} columns but the model was trained on "
                         f"{len(features)}")
    if raw_y is None:
        return FileData(X=X, y=None, classes=classes, task=task or "", feature_names=list(features or names),
                        target_name=tname, path=p)
    if classes is not None:
        y, kind = _known_classes(p, tname, raw_y, classes), "classification"
    else:
        y, classes, kind = _target(p, tname, raw_y, task)
    return FileData(X=X, y=y, classes=classes, task=kind, feature_names=list(features or names),
                    target_name=tname, path=p)


# ----------------------------------------------------------------------------- CSV

def _read_csv(path: str, target: str | None,
              features: list[str] | None = None) -> tuple[np.ndarray, np.ndarray | None, list[str], str]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            text = f.read()
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not a text (UTF-8) CSV file ({e.reason} at byte {e.start}); "
                         "give a .csv, .npz or .npy file") from None
    lines = text.splitlines()
    if not any(line.strip() for line in lines):
        raise ValueError(f"{path}: the file is empty; expected a header row and one row per sample")
    header_line = next(line for line in lines if line.strip())
    delim = max(",;\t", key=header_line.count)
    if header_line.count(delim) == 0:
        delim = ","
    rows = csv.reader(text.splitlines(), delimiter=delim)
    header: list[str] | None = None
    header_lineno = 0
    body: list[tuple[int, list[str]]] = []
    for row in rows:
        lineno = rows.line_num
        if not any(cell.strip() for cell in row):
            continue  # blank lines are skipped (a trailing newline, say)
        if header is None:
            header, header_lineno = [c.strip() for c in row], lineno
            continue
        body.append((lineno, row))
    assert header is not None
    cols = len(header)
    if cols < 2:
        raise ValueError(f"{path}: the header (line {header_lineno}) has {cols} column: need the features and a "
                         "target column, separated by commas, semicolons or tabs")
    dup = sorted({h for h in header if header.count(h) > 1})
    if dup:
        raise ValueError(f"{path}: the header (line {header_lineno}) repeats column name(s) "
                         f"{', '.join(map(repr, dup))}; give every column its own name")
    if features is not None:  # a trained model's columns: these, in this order; the target if present
        lost = [f for f in features if f not in header]
        if lost:
            raise ValueError(f"{path}: no column(s) {', '.join(map(repr, lost))}, which the model was trained on; "
                             f"the columns are: {', '.join(header)}")
        t = header.index(target) if target in header else -1
        order = [header.index(f) for f in features]
    elif target is None:
        t = cols - 1
    elif target in header:
        t = header.index(target)
    else:
        raise ValueError(f"{path}: no column {target!r} for the target; the columns are: "
                         f"{', '.join(header)}")
    if features is None:
        order = [i for i in range(cols) if i != t]
    if not body:
        raise ValueError(f"{path}: the file has a header but no data rows")
    names = [header[i] for i in order]
    slot = {col: j for j, col in enumerate(order)}
    X = np.empty((len(body), len(order)), dtype=np.float64)
    labels: list[str] = []
    for r, (lineno, row) in enumerate(body, start=1):
        where = f"{path}: line {lineno} (data row {r})"
        if len(row) != cols:
            raise ValueError(f"{where} has {len(row)} fields but the header has {cols}; every row needs one "
                             "value per column")
        for i, cell in enumerate(row):
            cell = cell.strip()
            if i == t:
                if cell.lower() in _MISSING:
                    raise ValueError(f"{where}, column {header[i]!r}: missing target value; remove the row "
                                     "or fill in its target")
                labels.append(cell)
            elif i in slot:
                X[r - 1, slot[i]] = _number(cell, f"{where}, column {header[i]!r}")
    y = np.asarray(labels, dtype=object) if t >= 0 else None
    return X, y, names, header[t] if t >= 0 else (target or "")


def _number(cell: str, where: str) -> float:
    if cell.lower() in _MISSING:
        raise ValueError(f"{where}: missing value; remove the row or fill it in")
    try:
        v = float(cell)
    except ValueError:
        raise ValueError(f"{where}: {cell!r} is not a number; features must be numeric (encode text "
                         "categories as numbers first)") from None
    if not math.isfinite(v):
        raise ValueError(f"{where}: {cell!r} is not a finite number")
    return v


# ----------------------------------------------------------------------------- NumPy files

def _load_array(path: str, z: Any = None, key: str | None = None) -> np.ndarray:
    try:
        a = z[key] if z is not None else np.load(path, allow_pickle=False)
    except Exception as e:  # a damaged file, or an object array (pickles are refused)
        what = f"array {key!r} of {path}" if key else path
        raise ValueError(f"{what}: not a readable NumPy array ({type(e).__name__}: {e})") from None
    return a


def _read_npz(path: str, target: str | None,
              optional: bool = False) -> tuple[np.ndarray, np.ndarray | None, list[str], str]:
    import zipfile

    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path}: not an .npz archive (save one with np.savez(path, X=..., y=...))")
    ykey = "y" if target is None else target
    try:
        z = np.load(path, allow_pickle=False)
    except Exception as e:
        raise ValueError(f"{path}: not a readable .npz archive ({type(e).__name__}: {e})") from None
    with z:
        keys = list(z.files)
        missing = [k for k in ("X", ykey) if k not in keys and not (optional and k == ykey)]
        if missing:
            raise ValueError(f"{path}: no array {' or '.join(map(repr, missing))}; it has "
                             f"{', '.join(keys) or 'no arrays'} (expected X (N, features) and {ykey} (N,))")
        X = _load_array(path, z, "X")
        y = _load_array(path, z, ykey) if ykey in keys else None
    X = _features(path, X, "array 'X'")
    if y is not None:
        y = _target_array(path, y, len(X), f"array {ykey!r}")
    return X, y, _feature_names(X), ykey


def _read_npy_pair(path: str, target: str | None,
                   optional: bool = False) -> tuple[np.ndarray, np.ndarray | None, list[str], str]:
    if target is None:
        d, base = os.path.split(path)
        i = base.rfind("X")
        if i < 0 and optional:
            target = ""
        elif i < 0:
            raise ValueError(f"{path}: a .npy file holds the features only; give the target .npy file too "
                             "(--target y.npy), or name the pair X.npy and y.npy")
        else:
            target = os.path.join(d, base[:i] + "y" + base[i + 1:])
    X = _features(path, _load_array(path), "the features")
    if optional and not os.path.isfile(target):
        return X, None, _feature_names(X), target
    if not os.path.isfile(target):
        raise ValueError(f"{target}: no such file (the target array of {path}); save it with np.save")
    y = _target_array(target, _load_array(target), len(X), "the target")
    return X, y, _feature_names(X), target


def _features(path: str, X: np.ndarray, what: str) -> np.ndarray:
    if X.ndim < 2 or X.shape[0] == 0:
        raise ValueError(f"{path}: {what} has shape {X.shape}; expected (samples, features) with at least one "
                         "sample (or images (samples, height, width))")
    if X.dtype.kind not in "biuf":
        raise ValueError(f"{path}: {what} has dtype {X.dtype}; features must be numeric")
    X = np.asarray(X, dtype=np.float64)
    bad = ~np.isfinite(X)
    if bad.any():
        idx = tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)), X.shape))
        kind = "missing value (NaN)" if math.isnan(X[idx]) else f"non-finite value {X[idx]}"
        where = f"row {idx[0]}, column {idx[1]}" + (f", index {idx}" if X.ndim > 2 else "")
        raise ValueError(f"{path}: {what}: {kind} at {where} (rows and columns counted from 0)")
    return X


def _target_array(path: str, y: np.ndarray, n: int, what: str) -> np.ndarray:
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or len(y) != n:
        raise ValueError(f"{path}: {what} has shape {y.shape}; expected ({n},), one value per sample of the "
                         "features")
    if y.dtype.kind not in "biufU":
        raise ValueError(f"{path}: {what} has dtype {y.dtype}; expected numbers or text labels")
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        r = int(np.argmax(~np.isfinite(y)))
        raise ValueError(f"{path}: {what}: missing or non-finite target {y[r]} at row {r} (counted from 0)")
    return y


def _feature_names(X: np.ndarray) -> list[str]:
    return [f"x{i}" for i in range(int(np.prod(X.shape[1:])))]


# ----------------------------------------------------------------------------- the target

def _target(path: str, name: str, raw: np.ndarray, task: str | None) -> tuple[np.ndarray, list[Any] | None, str]:
    """(y, classes, task): class indices and sorted labels, or float values for regression."""
    values: np.ndarray = raw
    if raw.dtype == object or raw.dtype.kind == "U":  # CSV cells or text labels: numbers where all are
        try:
            values = np.array([float(v) for v in raw], dtype=np.float64)
            if not np.isfinite(values).all():
                r = int(np.argmax(~np.isfinite(values)))
                raise ValueError(f"{path}: target {name!r}: {raw[r]!r} at data row {r + 1} is not a finite number")
        except ValueError as e:
            if "finite" in str(e):
                raise
            values = np.asarray([str(v) for v in raw], dtype=object)
    numeric = values.dtype != object
    integral = numeric and (values.dtype.kind in "biu" or bool(np.all(values == np.round(values))))
    if task is None:
        n_distinct = len(np.unique(values))
        task = "classification" if not numeric or (integral and n_distinct <= MAX_CLASSES) else "regression"
    if task == "regression":
        if not numeric:
            first = next(v for v in values if _not_float(v))
            raise ValueError(f"{path}: target {name!r} holds text ({first!r}), not numbers; a regression target "
                             "must be numeric (or use task classification)")
        return np.asarray(values, dtype=np.float64), None, "regression"
    if numeric and integral:
        values = values.astype(np.int64)
    labels, y = np.unique(values, return_inverse=True)
    if len(labels) < 2:
        raise ValueError(f"{path}: target {name!r} has one class only ({labels[0]!r} in all {len(values)} rows); "
                         "classification needs at least two")
    classes = [v.item() if isinstance(v, np.generic) else v for v in labels]
    return y.reshape(-1).astype(np.int64), classes, "classification"


def _known_classes(path: str, name: str, raw: np.ndarray, classes: list[Any]) -> np.ndarray:
    """Indices of `raw`'s labels in a trained model's `classes`; ValueError naming an unknown label's row."""
    def key(v: Any) -> str:  # one spelling per label: CSV text "3", "3.0" and the number 3 match
        if isinstance(v, str):
            try:
                f = float(v)
            except ValueError:
                return v
        else:
            f = float(v)
        return repr(int(f)) if f.is_integer() else repr(f)
    index = {key(c): i for i, c in enumerate(classes)}
    y = np.empty(len(raw), dtype=np.int64)
    for r, v in enumerate(raw):
        item = v.item() if isinstance(v, np.generic) else v
        i = index.get(key(item))
        if i is None:
            raise ValueError(f"{path}: target {name!r} has the label {item!r} at data row {r + 1}, which the model "
                             f"was not trained on; its classes are: {', '.join(map(str, classes))}")
        y[r] = i
    return y


def _not_float(v: Any) -> bool:
    try:
        float(v)
    except ValueError:
        return True
    return False
