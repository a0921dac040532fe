"""Read the real MNIST files the user already has: IDX (optionally .gz) or a Keras-style .npz."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np

from ._common import float_dtype

if TYPE_CHECKING:
    from pathlib import Path

_IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
_LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension


def _candidates(prefix: str, what: str, idx: str) -> list[str]:
    names = [f"{prefix}-{what}-{idx}-ubyte", f"{prefix}-{what}.{idx}-ubyte"]
    return names + [name + ".gz" for name in names]


def _find(directory: Path, names: list[str]) -> Path:
    for name in names:
        p = directory / name
        if p.is_file():
            return p
    raise FileNotFoundError(f"load_mnist: none of {', '.join(names)} found in {directory}")


def _read_bytes(path: Path) -> bytes:
    if path.name.endswith(".gz"):
        import gzip
        import zlib

        try:
            with gzip.open(path, "rb") as f:
                return f.read()
        except (OSError, EOFError, zlib.error) as e:
            raise ValueError(f"load_mnist: {path} is not a valid gzip file ({e})") from None
    return path.read_bytes()


def _read_idx(path: Path, magic: int, ndim: int) -> np.ndarray:
    """Parse an IDX file of unsigned bytes with `ndim` dimensions, checking header and length."""
    raw = _read_bytes(path)
    found = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
    if found is not None and found != magic:
        raise ValueError(f"load_mnist: {path} has magic number 0x{found:08x}, expected 0x{magic:08x} "
                         f"(an IDX file of unsigned bytes with {ndim} dimension{'s' if ndim > 1 else ''})")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"load_mnist: {path} is truncated: {len(raw)} bytes, shorter than its "
                         f"{header}-byte IDX header")
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(dims, dtype=np.int64))
    body = len(raw) - header
    if body != expected:
        kind = "truncated" if body < expected else "longer than its header says"
        raise ValueError(f"load_mnist: {path} is {kind}: dimensions {dims} need {expected} bytes of "
                         f"data, found {body}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _check_pair(source: str, images: np.ndarray, labels: np.ndarray) -> None:
    if images.ndim != 3 or 0 in images.shape[1:]:
        raise ValueError(f"load_mnist: {source}: images must have shape (N, rows, cols), got {images.shape}")
    if labels.ndim != 1:
        raise ValueError(f"load_mnist: {source}: labels must have shape (N,), got {labels.shape}")
    if len(images) != len(labels):
        raise ValueError(f"load_mnist: {source}: {len(images)} images but {len(labels)} labels")


def _load_npz(path: Path, kind: str) -> tuple[np.ndarray, np.ndarray]:
    import zipfile

    xk, yk = ("x_train", "y_train") if kind == "train" else ("x_test", "y_test")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"load_mnist: {path} is not an .npz archive (nor a directory of IDX files)")
    try:
        with np.load(path, allow_pickle=False) as z:
            files = list(z.files)
            missing = [k for k in (xk, yk) if k not in files]
            if not missing:
                images, labels = z[xk], z[yk]
    except Exception as e:  # a corrupted archive: BadZipFile, zlib.error, ValueError, OSError...
        raise ValueError(f"load_mnist: {path} is not a readable .npz file ({type(e).__name__}: {e})") from None
    if missing:
        raise ValueError(f"load_mnist: {path} lacks {', '.join(missing)} (it has "
                         f"{', '.join(files) or 'no arrays'}); expected the Keras layout "
                         f"x_train, y_train, x_test, y_test")
    if images.ndim == 2 and images.shape[1] == 784:
        images = images.reshape(-1, 28, 28)
    _check_pair(f"{path} ({xk}, {yk})", images, labels)
    if images.dtype.kind not in "ui" or labels.dtype.kind not in "ui":
        raise ValueError(f"load_mnist: {path}: expected integer pixels 0..255 and integer labels, "
                         f"got {xk} {images.dtype} and {yk} {labels.dtype}")
    if images.size and (images.min() < 0 or images.max() > 255):
        raise ValueError(f"load_mnist: {path}: {xk} has values outside 0..255")
    return images, labels


def load_mnist(path: str | os.PathLike, kind: str = "train", flatten: bool = True,
               dtype: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Read MNIST from a directory of IDX files (.gz or not) or a Keras-style .npz file.

    Returns X (N, 784) float in [0, 1] ((N, 28, 28) with flatten=False) and y (N,) int64.
    """
    if kind in ("test", "t10k"):
        kind = "test"
    elif kind != "train":
        raise ValueError(f"load_mnist: kind must be 'train' or 'test', got kind={kind!r}")
    from pathlib import Path

    d = float_dtype(dtype)
    p = Path(os.fspath(path)).expanduser()
    if p.is_dir():
        prefix = "train" if kind == "train" else "t10k"
        img_path = _find(p, _candidates(prefix, "images", "idx3"))
        lab_path = _find(p, _candidates(prefix, "labels", "idx1"))
        images = _read_idx(img_path, _IMAGES_MAGIC, 3)
        labels = _read_idx(lab_path, _LABELS_MAGIC, 1)
        _check_pair(f"{img_path.name} and {lab_path.name}", images, labels)
    elif p.is_file():
        images, labels = _load_npz(p, kind)
    else:
        raise FileNotFoundError(f"load_mnist: {p} does not exist; give a directory holding "
                                f"train-images-idx3-ubyte(.gz) etc., or an .npz file with "
                                f"x_train, y_train, x_test, y_test")
    X = images.astype(d)
    X /= d.type(255)
    if flatten:
        X = X.reshape(len(X), -1)
    return X, labels.astype(np.int64)
