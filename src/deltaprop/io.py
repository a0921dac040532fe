"""Model files: save/load state dicts and training checkpoints as safetensors.

safetensors holds only raw tensor bytes plus a JSON header, so loading a file can never run
code (unlike pickle). Layout of what deltaprop writes:

* Tensors are stored under their state_dict keys; dtypes are preserved exactly (bool, int8 to
  uint64, float16/32/64 and complex64 are supported; anything else is refused on save).
* Files from other tools load too. Their bfloat16 tensors (PyTorch's everyday half type, which
  NumPy lacks) are widened to float32, exactly (every bfloat16 is a float32), with a
  `DtypeWidenedWarning` naming the file, the tensors and their stored dtype; float16 stays
  float16. A tensor of another dtype NumPy lacks (float8...) is refused, naming it and its dtype.
  Every error about a file names the dtypes its header lists.
* The header's ``__metadata__`` (str -> str in safetensors) holds the user's metadata with
  every value JSON-encoded (``{"arch": "mlp"}`` is stored as ``{"arch": "\\"mlp\\""}``), plus
  ``deltaprop.format`` (``"1"``: values are JSON), ``deltaprop.keys`` (the tensors' order,
  restored on load) and ``deltaprop.sha256`` (a digest of the metadata and every tensor's
  name, dtype, shape and bytes, checked on load so corrupted data is detected; files from
  other tools have none and load unchecked).
  Keys starting with ``deltaprop.`` are reserved. JSON rules apply to user metadata: tuples
  come back as lists, dict keys as strings, NumPy scalars/arrays as numbers/lists (NaN and
  Infinity are written as Python's json module does).
* A checkpoint stores the model's tensors as ``model.<key>`` and the optimizer's array-valued
  state as ``optimizer.state.<param index>.<name>`` (e.g. ``optimizer.state.0.exp_avg``); the
  rest (param_groups, scalar state such as ``step``, the epoch, the optimizer's class name and
  the model's key order) is one JSON record under ``deltaprop.checkpoint`` that refers to the
  tensors by name. Tuples, int dict keys, floats and None round-trip exactly.

Writes are atomic (temp file in the same directory, fsync, ``os.replace``); a truncated,
corrupted or foreign file raises ValueError naming it, and nothing is half-loaded.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import sys
import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import safetensors
import safetensors.numpy as st_np

__all__ = [
    "save",
    "load",
    "load_metadata",
    "save_checkpoint",
    "load_checkpoint",
    "read_checkpoint",
    "Checkpoint",
    "DtypeWidenedWarning",
]

StrPath = str | os.PathLike

RESERVED_PREFIX = "deltaprop."
_FORMAT_KEY = "deltaprop.format"
_DIGEST_KEY = "deltaprop.sha256"
_CKPT_KEY = "deltaprop.checkpoint"
_KEYS_KEY = "deltaprop.keys"
_FORMAT_VERSION = "1"
_CKPT_VERSION = 1

_SUPPORTED_DTYPES = tuple(
    np.dtype(t)
    for t in (
        np.bool_, np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32,
        np.int64, np.uint64, np.float16, np.float32, np.float64, np.complex64,
    )
)
_SUPPORTED_NAMES = frozenset(d.name for d in _SUPPORTED_DTYPES)
# safetensors' dtype codes -> the NumPy dtype read (little-endian, as the format stores them)
_CODES = {"BOOL": "|b1", "I8": "|i1", "U8": "|u1", "I16": "<i2", "U16": "<u2", "I32": "<i4", "U32": "<u4",
          "I64": "<i8", "U64": "<u8", "F16": "<f2", "F32": "<f4", "F64": "<f8", "C64": "<c8"}
# ... and the names messages use for them
_CODE_NAMES = {"BOOL": "bool", "I8": "int8", "U8": "uint8", "I16": "int16", "U16": "uint16", "I32": "int32",
               "U32": "uint32", "I64": "int64", "U64": "uint64", "F16": "float16", "BF16": "bfloat16",
               "F32": "float32", "F64": "float64", "C64": "complex64", "F8_E4M3": "float8_e4m3fn",
               "F8_E5M2": "float8_e5m2"}


class DtypeWidenedWarning(UserWarning):
    """`load` read tensors of a dtype NumPy lacks (bfloat16) as a wider one (float32), exactly."""


def _code_name(code: Any) -> str:
    return _CODE_NAMES.get(code, str(code).lower())
_CHUNK = 1 << 20
# Marker keys of the checkpoint record's JSON; plain dicts never contain them.
_TUPLE, _DICT, _TENSOR, _SCALAR = "__tuple__", "__dict__", "__tensor__", "__scalar__"
_MARKERS = frozenset((_TUPLE, _DICT, _TENSOR, _SCALAR))


# ----------------------------------------------------------------------------- helpers

def _little_endian(arr: np.ndarray) -> np.ndarray:
    """The array in C order and little-endian byte order (safetensors' layout)."""
    order = arr.dtype.byteorder
    if order == ">" or (order == "=" and sys.byteorder == "big"):
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    return arr if arr.flags.c_contiguous else arr.copy(order="C")  # (ascontiguousarray makes 0-d 1-d)


def _as_array(name: str, value: Any, where: str) -> np.ndarray:
    """Convert one state-dict value to a storable ndarray, or raise naming the key."""
    if isinstance(value, np.ndarray):
        arr = value
    elif hasattr(value, "__array__"):
        arr = np.asarray(value)
    else:
        raise TypeError(
            f"{where}: the value for key {name!r} is a {type(value).__name__}, not an array; "
            "pass an np.ndarray or a deltaprop Tensor (wrap plain numbers in np.asarray)"
        )
    if arr.dtype.fields is not None or arr.dtype.name not in _SUPPORTED_NAMES:
        kind = "non-numeric " if arr.dtype.kind in "OUSVMm" else ""
        names = ", ".join(str(d) for d in _SUPPORTED_DTYPES)
        raise TypeError(
            f"{where}: key {name!r} has {kind}dtype {arr.dtype}, which safetensors cannot "
            f"store; convert it with .astype(...) to one of: {names}"
        )
    return _little_endian(arr)


def _prepare_tensors(state_dict: Mapping[str, Any], where: str, prefix: str = "") -> dict[str, np.ndarray]:
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"{where}: expected a dict of name -> array, got {type(state_dict).__name__}")
    out: dict[str, np.ndarray] = {}
    for key, value in state_dict.items():
        if not isinstance(key, str):
            raise TypeError(f"{where}: keys must be str, got {type(key).__name__} key {key!r}; use str(key)")
        if prefix + key == "__metadata__":
            raise ValueError(f"{where}: the key '__metadata__' is reserved by safetensors; rename it")
        out[prefix + key] = _as_array(key, value, where)
    return out


def _digest(tensors: Mapping[str, np.ndarray], meta: Mapping[str, str]) -> str:
    """SHA-256 over the metadata and every tensor's name, dtype, shape and bytes, in name order."""
    h = hashlib.sha256()
    head = json.dumps(sorted((k, v) for k, v in meta.items() if k != _DIGEST_KEY)).encode()
    h.update(len(head).to_bytes(8, "little"))
    h.update(head)
    for name in sorted(tensors):
        arr = _little_endian(tensors[name])
        head = json.dumps([name, arr.dtype.str, list(arr.shape)]).encode()
        h.update(len(head).to_bytes(8, "little"))
        h.update(head)
        h.update(arr.reshape(-1).view(np.uint8))  # type: ignore[arg-type]  # (an ndarray is a buffer)
    return h.hexdigest()


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray) or hasattr(obj, "__array__"):
        return np.asarray(obj).tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")


def _encode_metadata(metadata: Mapping[str, Any] | None, where: str) -> dict[str, str]:
    """User metadata -> safetensors metadata: every value JSON-encoded."""
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise TypeError(f"{where}: metadata must be a dict, got {type(metadata).__name__}")
    out: dict[str, str] = {}
    for key, value in metadata.items():
        if not isinstance(key, str):
            raise TypeError(f"{where}: metadata keys must be str, got {type(key).__name__} key {key!r}")
        if key.startswith(RESERVED_PREFIX):
            raise ValueError(
                f"{where}: metadata key {key!r} uses the reserved prefix {RESERVED_PREFIX!r}; pick another name"
            )
        try:
            out[key] = json.dumps(value, default=_json_default)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"{where}: metadata value for {key!r} is not JSON-serialisable ({exc}); "
                "use str, int, float, bool, None, lists and dicts"
            ) from None
    return out


def _decode_metadata(raw: Mapping[str, str], path: str) -> dict[str, Any]:
    """safetensors metadata -> user metadata (reserved keys dropped)."""
    version = raw.get(_FORMAT_KEY)
    if version is not None and version != _FORMAT_VERSION:
        raise ValueError(
            f"{path!r} was written in deltaprop file format {version!r}, this version reads "
            f"{_FORMAT_VERSION!r}; upgrade deltaprop"
        )
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key.startswith(RESERVED_PREFIX):
            continue
        if version is None:  # written by another tool: plain strings
            out[key] = value
            continue
        try:
            out[key] = json.loads(value)
        except ValueError:
            raise ValueError(f"{path!r} is corrupted: metadata {key!r} is not valid JSON") from None
    return out


def _header_dtypes(data: bytes) -> str:
    """' (tensors of dtype float32, bfloat16)' from a file's header where it can be read, else ''."""
    try:
        n = int.from_bytes(data[:8], "little")
        header = json.loads(data[8:8 + n]) if 2 <= n <= len(data) - 8 else None
        codes = {v["dtype"] for k, v in header.items() if k != "__metadata__"} if isinstance(header, dict) else set()
    except Exception:  # noqa: BLE001 - a damaged header: nothing to name
        return ""
    names = sorted(_code_name(c) for c in codes if isinstance(c, str))
    return f" (tensors of dtype {', '.join(names)})" if names else ""


def _file_dtypes(path: StrPath) -> str:
    """' (tensors of dtype float32)' from the header of the file at `path`, read alone; '' if unreadable."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            n = int.from_bytes(head, "little")
            return _header_dtypes(head + f.read(n)) if 2 <= n <= 100_000_000 else ""
    except OSError:
        return ""


def _invalid(path: str, exc: BaseException, data: bytes = b"") -> ValueError:
    return ValueError(
        f"{path!r}{_header_dtypes(data)} is not a valid safetensors file ({exc}); it may be truncated, corrupted "
        "or in another format (deltaprop never reads pickles): re-create it with deltaprop.save"
    )


def _array(path: str, name: str, view: Mapping[str, Any], widened: list[str]) -> np.ndarray:
    """One deserialized tensor as a fresh writable ndarray; bfloat16 widened to float32."""
    code = view["dtype"]
    if code == "BF16":  # the high half of a float32: shift the 16 stored bits up
        bits = np.frombuffer(view["data"], dtype="<u2").astype(np.uint32) << 16
        widened.append(name)
        return bits.view(np.float32).reshape(view["shape"])
    if code not in _CODES:
        readable = ", ".join(_CODE_NAMES[c] for c in (*_CODES, "BF16"))
        raise ValueError(f"{path!r}: tensor {name!r} has dtype {_code_name(code)} ({code}), which deltaprop cannot "
                         f"read (it reads {readable}); convert it where it was made, e.g. tensor.float() in PyTorch")
    arr = np.frombuffer(view["data"], dtype=np.dtype(_CODES[code])).reshape(view["shape"])
    return arr.astype(arr.dtype.newbyteorder("="), copy=True)


def _write_all(f: Any, data: bytes) -> None:
    """Write data to the open file in chunks (a seam for the crash-safety test)."""
    view = memoryview(data)
    for start in range(0, len(view), _CHUNK):
        f.write(view[start:start + _CHUNK])


def _atomic_write(path: StrPath, data: bytes) -> None:
    """Write data to path via a temp file in the same directory, fsync, then os.replace (a
    symlink's target is replaced; an existing file keeps its permissions)."""
    path = os.path.realpath(os.fspath(path))
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot save {path!r}: directory {directory!r} does not exist; create it first")
    if os.path.isdir(path):
        raise IsADirectoryError(f"cannot save to {path!r}: it is a directory; give a file name")
    base = os.path.basename(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = os.path.join(directory, f".{base}.{secrets.token_hex(8)}.tmp")
        try:
            fd = os.open(tmp, flags, 0o666)  # mode subject to umask, like a plain open()
            break
        except FileExistsError:
            continue
    try:
        f = os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    try:
        with f:
            _write_all(f, data)
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileNotFoundError):
            os.chmod(tmp, os.stat(path).st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if hasattr(os, "O_DIRECTORY"):  # make the rename itself durable (POSIX)
        with contextlib.suppress(OSError):
            dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)


def _write_file(path: StrPath, tensors: dict[str, np.ndarray], meta: dict[str, str]) -> None:
    meta = {**meta, _FORMAT_KEY: _FORMAT_VERSION, _KEYS_KEY: json.dumps(list(tensors))}
    meta[_DIGEST_KEY] = _digest(tensors, meta)
    try:
        data = st_np.save(tensors, metadata=meta)
    except safetensors.SafetensorError as exc:
        raise ValueError(f"cannot save {os.fspath(path)!r}: {exc}") from None
    _atomic_write(path, data)


def _read_file(path: StrPath, warn: bool = True) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Read and fully validate a safetensors file: (fresh writable arrays, raw metadata); `warn`
    (DtypeWidenedWarning) when tensors were widened, for callers that hand the tensors out."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        data = f.read()
    try:
        flat = safetensors.deserialize(data)  # the format's own checks: header, offsets, sizes
        n = int.from_bytes(data[:8], "little")
        header = json.loads(data[8:8 + n])
        meta = header.get("__metadata__") or {}
        if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
            raise ValueError("__metadata__ is not a str -> str map")
    except Exception as exc:  # SafetensorError, bad JSON...
        raise _invalid(path, exc, data) from exc
    widened: list[str] = []
    tensors = {name: _array(path, name, view, widened) for name, view in flat}
    stored = meta.get(_DIGEST_KEY)
    if stored is not None and stored != _digest(tensors, meta):
        raise ValueError(
            f"{path!r}{_header_dtypes(data)} is corrupted: its tensor data does not match the checksum stored when "
            "it was saved (not a valid safetensors file as written); restore it from a backup or re-save it"
        )
    if widened and warn:
        widened.sort()
        shown = ", ".join(map(repr, widened[:5])) + (f" and {len(widened) - 5} more" if len(widened) > 5 else "")
        warnings.warn(f"{path!r}: tensor(s) {shown} stored as bfloat16 were read as float32 (exactly; NumPy has "
                      "no bfloat16)", DtypeWidenedWarning, stacklevel=3)
    with contextlib.suppress(ValueError, TypeError):  # restore the saved key order
        order = json.loads(meta.get(_KEYS_KEY, "null"))
        if isinstance(order, list) and sorted(order) == sorted(tensors):
            tensors = {k: tensors[k] for k in order}
    return tensors, meta


# ----------------------------------------------------------------------------- public: files

def save(state_dict: Mapping[str, Any], path: StrPath, metadata: Mapping[str, Any] | None = None) -> None:
    """Save {name: ndarray or Tensor} to a safetensors file, atomically.

    metadata values may be anything JSON-serialisable; they are stored JSON-encoded and
    `load_metadata` decodes them. Raises TypeError/ValueError naming a bad key.
    """
    tensors = _prepare_tensors(state_dict, "save")
    _write_file(path, tensors, _encode_metadata(metadata, "save"))


def load(path: StrPath) -> dict[str, np.ndarray]:
    """Load a safetensors file as {name: fresh writable ndarray}, dtypes preserved (bfloat16, which
    NumPy lacks, is read as float32, exactly, with a DtypeWidenedWarning naming the tensors).

    A missing file raises FileNotFoundError; a truncated, corrupted or foreign one ValueError.
    """
    tensors, _ = _read_file(path)
    return tensors


def load_metadata(path: StrPath) -> dict[str, Any]:
    """The user metadata of a file written by `save` or `save_checkpoint`, JSON-decoded.

    The whole file is validated as by `load`. Files from other tools (no ``deltaprop.format``
    key) give their raw strings.
    """
    path_s = os.fspath(path)
    _, raw = _read_file(path_s, warn=False)
    return _decode_metadata(raw, path_s)


# ----------------------------------------------------------------------------- checkpoints

@dataclass
class Checkpoint:
    """The contents of a checkpoint file, rebuilt but not applied to anything."""

    model_state: dict[str, np.ndarray]
    optimizer_state: dict[str, Any] | None
    epoch: int
    optimizer_class: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    scheduler_state: dict[str, Any] | None = None
    scheduler_class: str | None = None
    extra: dict[str, Any] | None = None


def _encode_tree(obj: Any, name: str, tensors: dict[str, np.ndarray]) -> Any:
    """Optimizer state -> JSON-able tree; arrays go to `tensors` under dotted names."""
    if isinstance(obj, (np.ndarray, np.generic)) or hasattr(obj, "__array__"):
        if name in tensors:
            raise ValueError(f"save_checkpoint: two optimizer entries map to the tensor name {name!r}")
        tensors[name] = _as_array(name, obj, "save_checkpoint")
        return {_TENSOR: name, _SCALAR: True} if isinstance(obj, np.generic) else {_TENSOR: name}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, tuple):
        return {_TUPLE: [_encode_tree(v, f"{name}.{i}", tensors) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode_tree(v, f"{name}.{i}", tensors) for i, v in enumerate(obj)]
    if isinstance(obj, Mapping):
        if all(isinstance(k, str) for k in obj) and not _MARKERS.intersection(obj):
            return {k: _encode_tree(v, f"{name}.{k}", tensors) for k, v in obj.items()}
        for k in obj:
            if not isinstance(k, (type(None), bool, int, float, str, tuple)):
                raise TypeError(f"save_checkpoint: optimizer state key {k!r} under {name!r} is a "
                                f"{type(k).__name__}; keys may be str, int, float, bool, None or tuples")
        return {_DICT: [[_encode_tree(k, f"{name}.key", {}), _encode_tree(v, f"{name}.{k}", tensors)]
                        for k, v in obj.items()]}
    raise TypeError(
        f"save_checkpoint: optimizer state entry {name!r} is a {type(obj).__name__}, which cannot "
        "be stored; optimizer.state_dict() may hold arrays, numbers, str, None, lists, tuples and dicts"
    )


def _decode_tree(obj: Any, tensors: Mapping[str, np.ndarray]) -> Any:
    """Inverse of `_encode_tree`: JSON tree + tensors -> optimizer state."""
    if isinstance(obj, list):
        return [_decode_tree(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if _TENSOR in obj:
        name = obj[_TENSOR]
        if name not in tensors:
            raise ValueError(f"the record refers to a missing tensor {name!r}")
        arr = tensors[name]
        return arr[()] if obj.get(_SCALAR) else arr
    if _TUPLE in obj:
        return tuple(_decode_tree(v, tensors) for v in obj[_TUPLE])
    if _DICT in obj:
        out = {}
        for k, v in obj[_DICT]:
            k = _decode_tree(k, tensors)
            if isinstance(k, list):
                k = tuple(k)
            out[k] = _decode_tree(v, tensors)
        return out
    return {k: _decode_tree(v, tensors) for k, v in obj.items()}


def save_checkpoint(
    path: StrPath,
    model: Any,
    optimizer: Any = None,
    epoch: int = 0,
    metadata: Mapping[str, Any] | None = None,
    scheduler: Any = None,
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Save model (and optimizer, LR scheduler) state plus the epoch to one safetensors file, atomically.

    Tensors: ``model.<key>``, ``optimizer.state.<i>.<name>`` and any arrays of the scheduler's
    state_dict or of `extra` (a tree of arrays, numbers, str, lists and dicts a training loop wants
    back, e.g. early stopping's best weights); everything else is JSON metadata (see the module
    docstring). `load_checkpoint` restores it; `read_checkpoint(path).extra` gives `extra` back.
    """
    if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)):
        raise TypeError(f"save_checkpoint: epoch must be an int, got {type(epoch).__name__}")
    model_sd = model.state_dict()
    tensors = _prepare_tensors(model_sd, "save_checkpoint", prefix="model.")
    record: dict[str, Any] = {
        "format": _CKPT_VERSION,
        "epoch": int(epoch),
        "model_keys": list(model_sd),
        "optimizer_class": None,
        "optimizer": None,
    }
    if optimizer is not None:
        record["optimizer_class"] = type(optimizer).__name__
        record["optimizer"] = _encode_tree(optimizer.state_dict(), "optimizer", tensors)
    if scheduler is not None:  # keys absent otherwise: files stay readable by older deltaprop
        record["scheduler_class"] = type(scheduler).__name__
        record["scheduler"] = _encode_tree(scheduler.state_dict(), "scheduler", tensors)
    if extra is not None:
        record["extra"] = _encode_tree(dict(extra), "extra", tensors)
    meta = _encode_metadata(metadata, "save_checkpoint")
    meta[_CKPT_KEY] = json.dumps(record)
    _write_file(path, tensors, meta)


def read_checkpoint(path: StrPath) -> Checkpoint:
    """Read and validate a checkpoint file without applying it to a model or optimizer."""
    path_s = os.fspath(path)
    tensors, raw_meta = _read_file(path_s)
    if _CKPT_KEY not in raw_meta:
        raise ValueError(
            f"{path_s!r} is a safetensors file but not a deltaprop checkpoint (no {_CKPT_KEY!r} "
            "metadata); for a plain model file use model.load_state_dict(deltaprop.load(path))"
        )
    try:
        record = json.loads(raw_meta[_CKPT_KEY])
        version = record["format"]
        keys = record["model_keys"]
        epoch = record["epoch"]
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise ValueError("model_keys is not a list of str")
        if isinstance(epoch, bool) or not isinstance(epoch, int):
            raise ValueError("epoch is not an int")
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path_s!r} is corrupted: its checkpoint record is unreadable ({exc})") from None
    if version != _CKPT_VERSION:
        raise ValueError(
            f"{path_s!r} is a checkpoint in format {version!r}; this deltaprop reads format "
            f"{_CKPT_VERSION}: upgrade deltaprop"
        )
    missing = [k for k in keys if "model." + k not in tensors]
    if missing:
        raise ValueError(f"{path_s!r} is corrupted: model tensors {missing} are missing")
    model_state = {k: tensors["model." + k] for k in keys}
    opt_state = None
    if record.get("optimizer") is not None:
        try:
            opt_state = _decode_tree(record["optimizer"], tensors)
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            raise ValueError(f"{path_s!r} is corrupted: its optimizer record is unreadable ({exc})") from None
    decoded = {}
    for part in ("scheduler", "extra"):
        if record.get(part) is not None:
            try:
                decoded[part] = _decode_tree(record[part], tensors)
            except (ValueError, TypeError, KeyError, IndexError) as exc:
                raise ValueError(f"{path_s!r} is corrupted: its {part} record is unreadable ({exc})") from None
    return Checkpoint(
        model_state=model_state,
        optimizer_state=opt_state,
        epoch=epoch,
        optimizer_class=record.get("optimizer_class"),
        metadata=_decode_metadata(raw_meta, path_s),
        scheduler_state=decoded.get("scheduler"),
        scheduler_class=record.get("scheduler_class"),
        extra=decoded.get("extra"),
    )


def _check_model_state(path: str, saved: Mapping[str, np.ndarray], current: Mapping[str, Any]) -> None:
    """Raise ValueError unless saved has exactly current's keys and shapes."""
    missing = [k for k in current if k not in saved]
    unexpected = [k for k in saved if k not in current]
    if missing or unexpected:
        raise ValueError(
            f"{path!r} does not match the model: missing keys {missing}, unexpected keys "
            f"{unexpected}; it was saved from a different architecture, so build the model it "
            "was saved from (see deltaprop.load_metadata(path))"
        )
    for key, value in current.items():
        want, got = tuple(np.shape(value)), tuple(saved[key].shape)
        if want != got:
            have = np.asarray(value).dtype
            raise ValueError(
                f"{path!r} does not match the model: {key!r} has shape {got} ({saved[key].dtype}) in the file but "
                f"{want} ({have}) in the model; it was saved from a different architecture, so build the "
                "model it was saved from (see deltaprop.load_metadata(path))"
            )


def _live_param_shapes(optimizer: Any) -> list[tuple[int, ...]] | None:
    """Shapes of the optimizer's parameters in state_dict index order, if it exposes them."""
    groups = getattr(optimizer, "param_groups", None)
    try:
        return [tuple(np.shape(p)) for g in groups for p in g["params"]]  # type: ignore[union-attr]
    except Exception:
        return None


def _check_optimizer_state(path: str, ckpt: Checkpoint, optimizer: Any) -> None:
    """Raise ValueError unless the saved optimizer state fits this optimizer's structure."""
    saved = ckpt.optimizer_state
    name = type(optimizer).__name__
    family = {cls.__name__ for cls in type(optimizer).__mro__}  # a subclass may load its base's state
    if ckpt.optimizer_class is not None and ckpt.optimizer_class not in family:
        raise ValueError(
            f"{path!r} holds {ckpt.optimizer_class} state but the optimizer is a {name}; "
            f"create a {ckpt.optimizer_class}, or pass optimizer=None to load only the model"
        )
    if not (isinstance(saved, dict) and isinstance(saved.get("state"), dict)
            and isinstance(saved.get("param_groups"), list)):
        raise ValueError(f"{path!r} is corrupted: its optimizer state lacks 'state' or 'param_groups'")
    current_groups = optimizer.state_dict()["param_groups"]
    saved_groups = saved["param_groups"]
    if len(saved_groups) != len(current_groups):
        raise ValueError(
            f"{path!r} has {len(saved_groups)} optimizer parameter groups but the optimizer has "
            f"{len(current_groups)}; build the optimizer with the same groups as when it was saved"
        )
    ids: list[Any] = []
    for i, (sg, cg) in enumerate(zip(saved_groups, current_groups)):
        sp, cp = list(sg.get("params", [])), list(cg["params"])
        if len(sp) != len(cp):
            raise ValueError(
                f"{path!r}: optimizer parameter group {i} has {len(sp)} parameters in the file but "
                f"{len(cp)} in the optimizer; build the optimizer over the same parameters"
            )
        ids.extend(sp)
    position = {pid: n for n, pid in enumerate(ids)}
    shapes = _live_param_shapes(optimizer)
    if shapes is not None and len(shapes) != len(ids):
        shapes = None
    for pid, entries in saved["state"].items():
        if pid not in position:
            raise ValueError(f"{path!r} is corrupted: optimizer state for parameter {pid!r}, which no group lists")
        if shapes is None or not isinstance(entries, dict):
            continue
        want = shapes[position[pid]]
        for key, value in entries.items():
            if isinstance(value, np.ndarray) and value.ndim >= 1 and tuple(value.shape) != want:
                raise ValueError(
                    f"{path!r} does not match the optimizer: state {key!r} of parameter {pid!r} has "
                    f"shape {tuple(value.shape)} in the file but the parameter has shape {want}"
                )


def load_checkpoint(path: StrPath, model: Any, optimizer: Any = None, scheduler: Any = None) -> int:
    """Restore model (and optimizer, LR scheduler) state from `save_checkpoint`'s file; return the epoch.

    Everything is validated first (file, model keys and shapes, optimizer structure, scheduler
    class); a failed load leaves the model, optimizer and scheduler unchanged.
    """
    path_s = os.fspath(path)
    ckpt = read_checkpoint(path_s)
    _check_model_state(path_s, ckpt.model_state, model.state_dict())
    if optimizer is not None:
        if ckpt.optimizer_state is None:
            raise ValueError(
                f"{path_s!r} holds no optimizer state (it was saved without an optimizer); call "
                "load_checkpoint(path, model) and start the optimizer fresh"
            )
        _check_optimizer_state(path_s, ckpt, optimizer)
    if scheduler is not None:
        if ckpt.scheduler_state is None:
            raise ValueError(f"{path_s!r} holds no LR scheduler state (it was saved without a scheduler); call "
                             "load_checkpoint without scheduler= and start the scheduler fresh")
        if ckpt.scheduler_class != type(scheduler).__name__:
            raise ValueError(f"{path_s!r} holds the state of a {ckpt.scheduler_class}, not of a "
                             f"{type(scheduler).__name__}; create the scheduler the checkpoint was saved with")
    before = model.state_dict()
    model.load_state_dict(ckpt.model_state)
    if optimizer is not None:
        try:
            optimizer.load_state_dict(ckpt.optimizer_state)
        except BaseException:
            model.load_state_dict(before)  # keep "a failed load changes nothing"
            raise
    if scheduler is not None:
        scheduler.load_state_dict(ckpt.scheduler_state)
    return ckpt.epoch
