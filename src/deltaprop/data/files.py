"""Read the user's own data: a CSV table, an .npz archive (arrays X and y) or a pair of .npy files.

One public function, `load_file`. Every problem with the file is one ValueError line that names
the file and, for a CSV, the line, data row and column, so a user can open the file and fix it.
"""
from __future__ import annotations

import csv
import io
import math
import os
import re
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
              features: list[str] | None = None, classes: list[Any] | None = None,
              delimiter: str | None = None, header: bool | None = None) -> FileData:
    """Read features and target from `path`: ``.csv``/``.tsv``/``.txt``, ``.npz`` or ``.npy``.

    - CSV, read by Python's `csv` module (quoted fields keep their delimiters and newlines):
      `target` names the target column (default: the last column); every other column is a
      numeric feature. The delimiter is `delimiter`, or the one of DELIMITERS that splits every
      record into as many fields as the header (csv.Sniffer decides between several). The first
      line is the header; a header of numbers (other than column positions 0, 1, 2...) is refused
      as data unless `header=True`; `header=False` reads a file without one, naming the columns
      col0, col1, ... A target of text labels, or of at most MAX_CLASSES distinct integers, is
      classification (integer labels stay exact: int64, or uint64 beyond it); other numbers are
      regression. Empty cells and NA/NaN/null/? are missing values (an error naming the row and
      column), and so is a row of empty cells.
    - ``.npz``: arrays ``X`` (N, ...) and ``y`` (N,); `target` names another target array.
    - ``.npy``: the features; `target` is the path of the target .npy (default: the same file
      name with its last ``X`` replaced by ``y``, e.g. ``train_X.npy`` -> ``train_y.npy``).

    `delimiter` and `header` apply to CSV files only. `task` ("classification" or "regression")
    overrides the guess. Raises ValueError naming the file (and line/row/column) for a missing
    file, an empty file, a missing value, a non-numeric feature, a target column that does not
    exist, a classification target with one class, a ragged row, bad quoting or a numeric header.

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
        X, raw_y, names, tname = _read_csv(p, target, features, delimiter, header)
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

#: The delimiters a CSV may use when none is given: the one that splits the first records (a 64 KiB
#: sample, read whole by the csv module) into equally many fields, 2 or more, without a quoting
#: error; csv.Sniffer decides between several, the order here where it cannot.
DELIMITERS: tuple[str, ...] = (",", ";", "\t", "|")
_SNIFF_CHARS = 1 << 16  # how much of the file the delimiter is guessed from
_SNIFF_RECORDS = 200
_INT = re.compile(r"[+-]?[0-9]+")


def _read_csv(path: str, target: str | None, features: list[str] | None = None, delimiter: str | None = None,
              header: bool | None = None) -> tuple[np.ndarray, np.ndarray | None, list[str], str]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            text = f.read()
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not a text (UTF-8) CSV file ({e.reason} at byte {e.start}); "
                         "give a .csv, .npz or .npy file") from None
    if not text.strip():
        raise ValueError(f"{path}: the file is empty; expected a header row and one row per sample")
    delim = _delimiter(path, text, delimiter)
    records = _records(path, text, delim)
    if not records:
        raise ValueError(f"{path}: the file is empty; expected a header row and one row per sample")
    if header is False:
        cols = len(records[0][1])
        names_all, header_lineno, body = [f"col{i}" for i in range(cols)], 0, records
    else:
        header_lineno, first = records[0]
        names_all, body = [c.strip() for c in first], records[1:]
        cols = len(names_all)
        if header is None:
            _check_header(path, header_lineno, names_all, delim)
    head = "the first row" if header is False else "the header"
    if cols < 2:
        sep = "commas, semicolons, tabs or |" if delimiter is None else repr(delimiter)
        raise ValueError(f"{path}: {head} (line {records[0][0]}) has {cols} column: need the features and a "
                         f"target column, separated by {sep}")
    dup = sorted({h for h in names_all if names_all.count(h) > 1})
    if dup:
        raise ValueError(f"{path}: the header (line {header_lineno}) repeats column name(s) "
                         f"{', '.join(map(repr, dup))}; give every column its own name")
    shown = ", ".join(map(_show, names_all))
    if features is not None:  # a trained model's columns: these, in this order; the target if present
        lost = [f for f in features if f not in names_all]
        if lost:
            raise ValueError(f"{path}: no column(s) {', '.join(map(repr, lost))}, which the model was trained on; "
                             f"the columns are: {shown}")
        t = names_all.index(target) if target in names_all else -1
        order = [names_all.index(f) for f in features]
    else:
        if target is None:
            t = cols - 1
        elif target in names_all:
            t = names_all.index(target)
        else:
            raise ValueError(f"{path}: no column {target!r} for the target; the columns are: {shown}")
        order = [i for i in range(cols) if i != t]
    if not body:
        raise ValueError(f"{path}: the file has a header but no data rows")
    names = [names_all[i] for i in order]
    for r, (lineno, row) in enumerate(body, start=1):
        if len(row) != cols:
            what = "the first row" if header is False else "the header"
            raise ValueError(f"{path}: line {lineno} (data row {r}) has {len(row)} fields but {what} has {cols}; "
                             "every row needs one value per column")
        if not any(cell.strip() for cell in row):  # a row of empty cells: missing values, not a blank line
            raise ValueError(f"{path}: line {lineno} (data row {r}): missing values (every cell is empty); remove "
                             "the row or fill it in")
    labels = [row[t].strip() for _, row in body] if t >= 0 else []
    # The fast way: NumPy parses the whole table at once. Where it cannot (a missing value, text, a
    # non-finite number, a missing target), the cell-by-cell reading below names the first problem.
    try:
        if order == list(range(len(order))):  # the target last (or absent): the leading cells
            table: list[Any] = [row[:len(order)] for _, row in body]
        else:
            table = [[row[i] for i in order] for _, row in body]
        X = np.array(table, dtype=np.float64).reshape(len(body), len(order))
        ok = bool(np.isfinite(X).all()) and not any(v.lower() in _MISSING for v in labels)
    except ValueError:
        ok = False
    if not ok:
        X = _cell_by_cell(path, body, names_all, order, t)
    y = np.asarray(labels, dtype=object) if t >= 0 else None
    return X, y, names, names_all[t] if t >= 0 else (target or "")


def _cell_by_cell(path: str, body: list[tuple[int, list[str]]], names_all: list[str], order: list[int],
                  t: int) -> np.ndarray:
    """The features read one cell at a time, raising on the first bad cell (or missing target) in file order."""
    slot = {col: j for j, col in enumerate(order)}
    X = np.empty((len(body), len(order)), dtype=np.float64)
    for r, (lineno, row) in enumerate(body, start=1):
        where = f"{path}: line {lineno} (data row {r})"
        for i, cell in enumerate(row):
            cell = cell.strip()
            if i == t:
                if cell.lower() in _MISSING:
                    raise ValueError(f"{where}, column {names_all[i]!r}: missing target value; remove the row "
                                     "or fill in its target")
            elif i in slot:
                X[r - 1, slot[i]] = _number(cell, f"{where}, column {names_all[i]!r}")
    return X


def _show(name: str) -> str:
    """A column name as messages print it: as is, or quoted when it holds a newline or the like."""
    return name if name.isprintable() and name else repr(name)


def _delimiter(path: str, text: str, given: str | None) -> str:
    """`given` (checked), or the delimiter that splits the first records into equally many fields."""
    if given is not None:
        if not isinstance(given, str) or len(given) != 1 or given in "\"\r\n":
            raise ValueError(f"{path}: delimiter {given!r} is not one character other than a quote or a newline; "
                             "give one such as ',' ';' or '\\t'")
        return given
    sample = text[:_SNIFF_CHARS]
    read = {d: _field_counts(sample, d, cut=len(text) > len(sample)) for d in DELIMITERS}
    counts = {d: c for d, (c, _) in read.items()}
    fits = [d for d, (c, clean) in read.items() if clean and c and c[0] >= 2 and all(n == c[0] for n in c)]
    if len(fits) == 1:
        return fits[0]
    if len(fits) > 1:  # several split every record alike: let the standard library's guess decide
        try:
            guess = csv.Sniffer().sniff(sample, delimiters="".join(fits)).delimiter
        except csv.Error:
            guess = fits[0]
        return guess if guess in fits else fits[0]
    # No delimiter splits the records alike: the one that gives the header the most columns, so
    # that the message names the row at fault (or says the header has one column).
    return max(DELIMITERS, key=lambda d: counts[d][0] if counts[d] else 0)


def _field_counts(sample: str, delim: str, cut: bool) -> tuple[list[int], bool]:
    """(the number of fields of each whole record of `sample`, blank lines left out; whether the
    records read without a quoting error: a quote where `delim` splits wrongly)."""
    reader = csv.reader(io.StringIO(sample), delimiter=delim, strict=True)
    counts: list[int] = []
    clean = True
    try:
        for row in reader:
            if row and not (len(row) == 1 and not row[0].strip()):
                counts.append(len(row))
            if len(counts) > _SNIFF_RECORDS:
                break
    except csv.Error:  # excused only where the sample was cut inside a quoted field: at its last line
        clean = cut and reader.line_num >= sample.count("\n")
    else:
        if cut and counts:
            counts.pop()  # the sample may end inside the last record
    return counts, clean


def _records(path: str, text: str, delim: str) -> list[tuple[int, list[str]]]:
    """(first line, fields) of every record; blank lines are skipped; bad quoting names its line."""
    reader = csv.reader(io.StringIO(text), delimiter=delim, strict=True)
    out: list[tuple[int, list[str]]] = []
    end = 0  # the line the previous record ended on: a record may span lines (quoted newlines)
    try:
        for row in reader:
            start, end = end + 1, reader.line_num
            if row and not (len(row) == 1 and not row[0].strip()):  # a blank line (a trailing newline, say)
                out.append((start, row))
    except csv.Error as e:
        raise ValueError(f"{path}: line {end + 1}: not valid CSV ({e}); check the quotes of that record "
                         f"(a field with {delim!r}, a quote or a newline in it must be quoted, its quotes "
                         "doubled)") from None
    return out


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return any(ch.isdigit() for ch in cell)


def _check_header(path: str, lineno: int, header: list[str], delim: str = ",") -> None:
    """Refuse a first line that looks like data: numbers that are not column positions (0, 1, 2...)."""
    nums = [(i, c) for i, c in enumerate(header) if _is_number(c)]
    if not nums:
        return
    # pandas writes a frame's default column names 0, 1, 2... (after an index column ""): numbers
    # that count the columns are names; others (150, 4, 5.1) are data.
    if all(_INT.fullmatch(c) for _, c in nums):
        offsets = {int(c) - i for i, c in nums}
        if len(offsets) == 1 and all(0 <= int(c) <= len(header) for _, c in nums):
            return
    cells = ", ".join(repr(c) for _, c in nums[:4]) + (", ..." if len(nums) > 4 else "")
    sep = delim if delim.isprintable() else ", "  # (a tab shown as ", ": the message stays readable)
    line = sep.join(map(_show, header[:6])) + (f"{sep}..." if len(header) > 6 else "")
    raise ValueError(f"{path}: the header (line {lineno}: {line}) holds numbers "
                     f"({cells}): it looks like data, not column names; if the file has no header row, use "
                     "--no-header (load_file(header=False)), which names the columns col0, col1, ...; if they "
                     "are the names, use --header (header=True); if it is neither, delete the line")


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
    values = _labels(path, name, raw) if raw.dtype == object or raw.dtype.kind == "U" else raw
    numeric = values.dtype != object
    if values.dtype.kind in "biu":
        integral = True
    else:  # whole floats are class labels only where float64 holds every integer up to them exactly
        integral = numeric and bool(np.all(values == np.round(values)) and np.all(np.abs(values) <= 2.0 ** 53))
    if task is None:
        n_distinct = len(np.unique(values))
        task = "classification" if not numeric or (integral and n_distinct <= MAX_CLASSES) else "regression"
    if task == "regression":
        if not numeric:
            first = next(v for v in values if _not_float(v))
            raise ValueError(f"{path}: target {name!r} holds text ({first!r}), not numbers; a regression target "
                             "must be numeric (or use task classification)")
        return np.asarray(values, dtype=np.float64), None, "regression"
    if values.dtype.kind == "f" and integral:
        values = values.astype(np.int64)
    labels, y = np.unique(values, return_inverse=True)
    if len(labels) < 2:
        raise ValueError(f"{path}: target {name!r} has one class only ({labels[0]!r} in all {len(values)} rows); "
                         "classification needs at least two")
    classes = [v.item() if isinstance(v, np.generic) else v for v in labels]
    return y.reshape(-1).astype(np.int64), classes, "classification"


def _labels(path: str, name: str, raw: np.ndarray) -> np.ndarray:
    """Text cells as numbers where every one is a number: integers exactly (int64, else uint64,
    never through float), else float64; otherwise the text itself (an object array of str)."""
    cells = [str(v).strip() for v in raw]
    if all(_INT.fullmatch(c) for c in cells):
        ints = [int(c) for c in cells]
        lo, hi = min(ints), max(ints)
        if -2 ** 63 <= lo and hi < 2 ** 63:
            return np.array(ints, dtype=np.int64)
        if lo >= 0 and hi < 2 ** 64:
            return np.array(ints, dtype=np.uint64)
        return np.asarray(cells, dtype=object)  # beyond 64 bits: exact as text labels
    try:
        values = np.array([float(c) for c in cells], dtype=np.float64)
    except ValueError:
        return np.asarray(cells, dtype=object)
    if not np.isfinite(values).all():
        r = int(np.argmax(~np.isfinite(values)))
        raise ValueError(f"{path}: target {name!r}: {cells[r]!r} at data row {r + 1} is not a finite number")
    return values


def _known_classes(path: str, name: str, raw: np.ndarray, classes: list[Any]) -> np.ndarray:
    """Indices of `raw`'s labels in a trained model's `classes`; ValueError naming an unknown label's row."""
    def key(v: Any) -> str:  # one spelling per label: CSV text "3", "3.0" and the number 3 match
        if isinstance(v, str):
            s = v.strip()
            if _INT.fullmatch(s):
                return repr(int(s))  # exact: 9007199254740993 is not 9007199254740992
            try:
                f = float(s)
            except ValueError:
                return v
        elif isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
            return repr(int(v))
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
                             f"was not trained on; its classes are: {', '.join(_show(str(c)) for c in classes)}")
        y[r] = i
    return y


def _not_float(v: Any) -> bool:
    try:
        float(v)
    except ValueError:
        return True
    return False
