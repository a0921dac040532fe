"""Built-in datasets (generated and seeded, or embedded: no download) and train_test_split."""
from __future__ import annotations

import functools
import math
import numbers
from typing import Any

import numpy as np

from ._common import as_array, check_int, check_nonneg_float, check_seed, float_dtype, is_tensor


def xor(dtype: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """The four XOR points: X (4, 2) float in {0, 1}, y (4,) int64 = x0 xor x1."""
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float_dtype(dtype))
    y = np.array([0, 1, 1, 0], dtype=np.int64)
    return X, y


def mazur(dtype: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Matt Mazur's 2-2-2 worked example: X = [[0.05, 0.10]], targets = [[0.01, 0.99]], both (1, 2)."""
    d = float_dtype(dtype)
    return np.array([[0.05, 0.10]], dtype=d), np.array([[0.01, 0.99]], dtype=d)


def _class_sizes(n: int, classes: int) -> list[int]:
    """Balanced class sizes summing to n (the first n % classes classes get one extra)."""
    return [n // classes + (1 if k < n % classes else 0) for k in range(classes)]


def _finish(parts_x: list[np.ndarray], sizes: list[int], noise_xy: float,
            rng: np.random.Generator, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """Stack the class blocks, add Gaussian noise, shuffle with `rng`, cast."""
    X = np.concatenate(parts_x, axis=0)
    y = np.repeat(np.arange(len(sizes), dtype=np.int64), sizes)
    if noise_xy > 0:
        X = X + rng.normal(0.0, noise_xy, size=X.shape)
    order = rng.permutation(len(y))
    return X[order].astype(dtype), y[order]


def moons(n: int = 200, noise: float = 0.1, seed: int | None = 0,
          dtype: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles: X (n, 2) float, y (n,) int64 in {0, 1}, shuffled.

    Gaussian noise of std `noise` is added to the coordinates; np.random.default_rng(seed).
    """
    n = check_int("n", n, minimum=2)
    noise = check_nonneg_float("noise", noise)
    rng = np.random.default_rng(check_seed(seed))
    d = float_dtype(dtype)
    sizes = _class_sizes(n, 2)
    t0 = np.linspace(0.0, np.pi, sizes[0])
    t1 = np.linspace(0.0, np.pi, sizes[1])
    upper = np.stack([np.cos(t0), np.sin(t0)], axis=1)
    lower = np.stack([1.0 - np.cos(t1), 0.5 - np.sin(t1)], axis=1)
    return _finish([upper, lower], sizes, noise, rng, d)


def circles(n: int = 200, noise: float = 0.05, factor: float = 0.5, seed: int | None = 0,
            dtype: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Two concentric circles: outer (radius 1) is class 0, inner (radius `factor`) class 1.

    X (n, 2) float, y (n,) int64, shuffled; Gaussian noise of std `noise` on the coordinates.
    """
    n = check_int("n", n, minimum=2)
    noise = check_nonneg_float("noise", noise)
    if isinstance(factor, bool) or not isinstance(factor, numbers.Real) or not 0 <= float(factor) < 1:
        raise ValueError(f"factor must be a number with 0 <= factor < 1, got factor={factor!r}")
    rng = np.random.default_rng(check_seed(seed))
    d = float_dtype(dtype)
    sizes = _class_sizes(n, 2)
    t0 = np.linspace(0.0, 2 * np.pi, sizes[0], endpoint=False)
    t1 = np.linspace(0.0, 2 * np.pi, sizes[1], endpoint=False)
    outer = np.stack([np.cos(t0), np.sin(t0)], axis=1)
    inner = float(factor) * np.stack([np.cos(t1), np.sin(t1)], axis=1)
    return _finish([outer, inner], sizes, noise, rng, d)


def spirals(n: int = 300, classes: int = 3, noise: float = 0.2, seed: int | None = 0,
            dtype: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """`classes` interleaved spiral arms from the origin: X (n, 2) float, y (n,) int64, shuffled.

    Each arm turns 4 radians as its radius goes 0 -> 1; `noise` is the std of Gaussian jitter
    on each point's angle (radians).
    """
    classes = check_int("classes", classes, minimum=2)
    n = check_int("n", n)
    if n < classes:
        raise ValueError(f"n must be >= classes (at least one point per class), got n={n}, classes={classes}")
    noise = check_nonneg_float("noise", noise)
    rng = np.random.default_rng(check_seed(seed))
    d = float_dtype(dtype)
    sizes = _class_sizes(n, classes)
    arms = []
    for k, m in enumerate(sizes):
        r = np.linspace(0.0, 1.0, m)
        theta = 2 * np.pi * k / classes + 4.0 * r
        if noise > 0:
            theta = theta + rng.normal(0.0, noise, size=m)
        arms.append(np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1))
    return _finish(arms, sizes, 0.0, rng, d)


@functools.lru_cache(maxsize=1)
def _digits_raw() -> tuple[np.ndarray, np.ndarray]:
    import io
    from importlib import resources

    blob = resources.files("deltaprop.data").joinpath("digits.npz").read_bytes()
    with np.load(io.BytesIO(blob), allow_pickle=False) as z:
        images, labels = z["images"], z["labels"]
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels


def digits(dtype: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """The 1,797 8x8 handwritten digits (UCI optdigits, CC BY 4.0; see DIGITS_LICENSE.txt).

    X (1797, 64) float with pixel values 0..16 (not rescaled), y (1797,) int64 in 0..9.
    """
    images, labels = _digits_raw()
    return images.astype(float_dtype(dtype)), labels.astype(np.int64)


def _n_test(test_size: Any, n: int) -> int:
    if isinstance(test_size, bool) or not isinstance(test_size, numbers.Real):
        raise TypeError(f"test_size must be a fraction in (0, 1) or an int count, got {test_size!r}")
    if isinstance(test_size, numbers.Integral):
        n_test = int(test_size)
        if not 1 <= n_test <= n - 1:
            raise ValueError(f"test_size={n_test} must leave at least one sample on each side: "
                             f"use 1 <= test_size <= {n - 1} for {n} samples")
        return n_test
    f = float(test_size)
    if not 0.0 < f < 1.0:
        raise ValueError(f"test_size must be a fraction in (0, 1) or an int count, got test_size={test_size!r}")
    n_test = math.ceil(f * n)
    if n_test < 1 or n - n_test < 1:
        raise ValueError(f"test_size={test_size!r} with {n} samples gives {n_test} test and "
                         f"{n - n_test} train samples; both must be at least 1")
    return n_test


def _stratified_test_indices(labels: np.ndarray, n_test: int, rng: np.random.Generator) -> np.ndarray:
    """Pick n_test indices with each class represented in proportion (largest remainders)."""
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    n = len(labels)
    if counts.min() < 2:
        bad = classes[np.argmin(counts)].tolist()
        raise ValueError(f"stratify: class {bad!r} has only 1 member; every class needs at least 2")
    exact = n_test * counts / n
    take = np.floor(exact).astype(np.int64)
    short = n_test - int(take.sum())
    if short > 0:
        # largest remainders first; ties broken by a seeded shuffle
        tiebreak = rng.permutation(len(classes))
        order = np.lexsort((tiebreak, -(exact - take)))
        take[order[:short]] += 1
    chosen = []
    for c in range(len(classes)):
        members = np.flatnonzero(inverse == c)
        chosen.append(rng.permutation(members)[: take[c]])
    return np.concatenate(chosen)


def _take(a: Any, arr: np.ndarray, idx: np.ndarray) -> Any:
    """arr[idx], as a Tensor when `a` was one."""
    out = arr[idx]
    if is_tensor(a):
        from deltaprop.tensor import Tensor

        return Tensor(out)
    return out


def train_test_split(X: Any, y: Any, test_size: float | int = 0.2, seed: int | None = 0,
                     stratify: Any = False) -> tuple[Any, Any, Any, Any]:
    """Seeded random split -> Xtr, Xte, ytr, yte (scikit-learn's order).

    test_size: a fraction in (0, 1) (rounded up) or an int count. stratify=True keeps y's class
    proportions (an array of labels may be given instead of True).
    """
    Xa, ya = as_array(X), as_array(y)
    if Xa.ndim == 0 or ya.ndim == 0:
        raise ValueError(f"train_test_split: X and y need a first axis, got shapes {Xa.shape} and {ya.shape}")
    n = len(Xa)
    if len(ya) != n:
        raise ValueError(f"train_test_split: X has {n} samples but y has {len(ya)}; they must match")
    if n < 2:
        raise ValueError(f"train_test_split: need at least 2 samples, got {n}")
    n_test = _n_test(test_size, n)
    rng = np.random.default_rng(check_seed(seed))
    if stratify is False or stratify is None:
        perm = rng.permutation(n)
        test_idx, train_idx = perm[:n_test], perm[n_test:]
    else:
        labels = ya if stratify is True else as_array(stratify)
        if len(labels) != n:
            raise ValueError(f"train_test_split: stratify has {len(labels)} labels but X has {n} samples")
        if labels.ndim != 1:
            raise ValueError(f"train_test_split: stratify needs 1-D labels, got shape {labels.shape}")
        test_idx = _stratified_test_indices(labels, n_test, rng)
        mask = np.ones(n, dtype=bool)
        mask[test_idx] = False
        train_idx = rng.permutation(np.flatnonzero(mask))
        test_idx = rng.permutation(test_idx)
    return (_take(X, Xa, train_idx), _take(X, Xa, test_idx),
            _take(y, ya, train_idx), _take(y, ya, test_idx))
