"""Inputs and settings shared by every library's version of a case.

Every worker builds its data and initial weights from these NumPy arrays, so all libraries
compute the same numbers (their first losses agree; the runner records them as a check).
"""
from __future__ import annotations

import os
import resource
from typing import Any

import numpy as np

# Case 1: MLP step.
MLP_SIZES = (784, 256, 256, 10)
MLP_BATCH = 128
MLP_LR = 0.01
ADAM_LR = 1e-3
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8

# Case 2: Mazur's 2-2-2 example (float64). Weight rows = receiving unit (PyTorch layout).
MAZUR_X = (0.05, 0.10)
MAZUR_T = (0.01, 0.99)
MAZUR_W1 = ((0.15, 0.20), (0.25, 0.30))
MAZUR_B1 = 0.35
MAZUR_W2 = ((0.40, 0.45), (0.50, 0.55))
MAZUR_B2 = 0.60
MAZUR_LR = 0.5
MAZUR_FIRST_LOSS = 0.298371109  # E_total of the published forward pass

# Case 3: CNN step.
CNN_BATCH = 64
CNN_CHANNELS = 16
CNN_LR = 0.01

# Case 4: scalar chain: N ops, alternating x = x * MUL and x = x + ADD.
CHAIN_OPS = 100_000
CHAIN_MUL = 1.0000001
CHAIN_ADD = 1e-7
CHAIN_X0 = 0.5

# Case 8: micro: MICRO_OPS adds of (4, 4) float32 arrays.
MICRO_OPS = 1000
MICRO_SHAPE = (4, 4)

# Case 5/7: the peers' copy of the default `deltaprop train` run (digits, ReLU, Adam; see
# DEFAULTS['digits'] in deltaprop/cli.py). Keep in step; the deltaprop row records the CLI's.
TRAIN: dict[str, Any] = {
    "hidden": (128,),
    "lr": 3e-3,
    "epochs": 20,
    "batch_size": 32,
    "seed": 0,
    "test_size": 0.2,
}
TARGET_ACCURACY = 0.97


def mlp_data() -> tuple[np.ndarray, np.ndarray]:
    """A fixed batch: (128, 784) float32 pixels in [0, 1) and (128,) int64 labels."""
    rng = np.random.default_rng(0)
    x = rng.random((MLP_BATCH, MLP_SIZES[0]), dtype=np.float32)
    y = rng.integers(0, MLP_SIZES[-1], MLP_BATCH).astype(np.int64)
    return x, y


def linear_params(sizes, seed: int = 1, dtype=np.float32) -> list[tuple[np.ndarray, np.ndarray]]:
    """[(W (out, in), b (out,)), ...] drawn like PyTorch's Linear default: U(-1/sqrt(in), 1/sqrt(in))."""
    rng = np.random.default_rng(seed)
    params = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        bound = 1.0 / np.sqrt(n_in)
        w = rng.uniform(-bound, bound, (n_out, n_in)).astype(dtype)
        b = rng.uniform(-bound, bound, n_out).astype(dtype)
        params.append((w, b))
    return params


def mlp_params() -> list[tuple[np.ndarray, np.ndarray]]:
    return linear_params(MLP_SIZES)


def mazur_params() -> list[tuple[np.ndarray, np.ndarray]]:
    """[(W1, b1), (W2, b2)] in float64; a bias is one value per receiving unit."""
    return [
        (np.array(MAZUR_W1), np.full(2, MAZUR_B1)),
        (np.array(MAZUR_W2), np.full(2, MAZUR_B2)),
    ]


def mazur_data() -> tuple[np.ndarray, np.ndarray]:
    """Input (1, 2) and target (1, 2), float64 (a batch of one)."""
    return np.array([MAZUR_X]), np.array([MAZUR_T])


def cnn_data() -> tuple[np.ndarray, np.ndarray]:
    """A batch of 64 digits-like images (64, 1, 8, 8) float32 in [0, 1], labels (64,) int64."""
    rng = np.random.default_rng(2)
    x = (rng.integers(0, 17, (CNN_BATCH, 1, 8, 8)) / 16.0).astype(np.float32)
    y = rng.integers(0, 10, CNN_BATCH).astype(np.int64)
    return x, y


def cnn_params() -> dict[str, np.ndarray]:
    """Conv weight (16, 1, 3, 3), bias (16,); Linear weight (10, 256), bias (10,); float32."""
    rng = np.random.default_rng(3)
    cb = 1.0 / np.sqrt(9)
    lb = 1.0 / np.sqrt(CNN_CHANNELS * 16)
    return {
        "conv_w": rng.uniform(-cb, cb, (CNN_CHANNELS, 1, 3, 3)).astype(np.float32),
        "conv_b": rng.uniform(-cb, cb, CNN_CHANNELS).astype(np.float32),
        "fc_w": rng.uniform(-lb, lb, (10, CNN_CHANNELS * 16)).astype(np.float32),
        "fc_b": rng.uniform(-lb, lb, 10).astype(np.float32),
    }


def micro_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(4)
    return (rng.random(MICRO_SHAPE, dtype=np.float32), rng.random(MICRO_SHAPE, dtype=np.float32))


def digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The embedded digits split by TRAIN's seed and test size, standardised like the CLI does
    (per-feature mean and std of the train inputs, std 0 -> 1), as float32.

    Read from deltaprop's data file beside this package, without importing deltaprop.
    """
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "digits.npz")
    with np.load(path) as f:
        x = f["images"].astype(np.float64)
        y = f["labels"].astype(np.int64)
    rng = np.random.default_rng(TRAIN["seed"])
    order = rng.permutation(len(x))
    n_test = int(np.ceil(len(x) * TRAIN["test_size"]))
    test, train = order[:n_test], order[n_test:]
    return standardize(x[train], x[test]) + (y[train], y[test])


def standardize(xtr: np.ndarray, xte: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both scaled by the train inputs' per-feature mean and std (std 0 -> 1), as float32."""
    mean = xtr.mean(axis=0)
    std = xtr.std(axis=0)
    std[std == 0] = 1.0
    return ((xtr - mean) / std).astype(np.float32), ((xte - mean) / std).astype(np.float32)


def rss_mb() -> float:
    """Resident set size now, in MB, from /proc/self/statm (nan where there is none)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
    except OSError:
        return float("nan")
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6


def numpy_adam(params, grads, state, t, lr=ADAM_LR):
    """One Adam update (PyTorch's rule) in place over NumPy arrays; state holds m and v lists."""
    b1, b2 = ADAM_BETAS
    if not state:
        state["m"] = [np.zeros_like(p) for p in params]
        state["v"] = [np.zeros_like(p) for p in params]
    c1 = 1 - b1**t
    c2 = 1 - b2**t
    for p, g, m, v in zip(params, grads, state["m"], state["v"]):
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * (g * g)
        p -= (lr / c1) * m / (np.sqrt(v / c2) + ADAM_EPS)
