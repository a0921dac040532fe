"""What the benchmark measures: the cases, the libraries, and which library runs which case.

Standard library only: the runner reads this table without importing any peer.
"""
from __future__ import annotations

# Case name -> one line saying what one measured iteration is, and the unit reported.
CASES: dict[str, tuple[str, str]] = {
    "mlp-sgd": ("MLP 784-256-256-10 ReLU, float32, batch 128: one SGD training step", "s"),
    "mlp-adam": ("the same MLP step with Adam", "s"),
    "mazur": ("Mazur's 2-2-2 sigmoid network, float64: one SGD step (lr 0.5)", "s"),
    "cnn": ("Conv2d 1->16 3x3 pad 1, ReLU, MaxPool 2, Linear 256->10; batch 64 of 8x8: one SGD step", "s"),
    "chain": ("100,000 scalar ops (alternating x*c, x+d): forward + backward", "s"),
    "micro": ("1,000 adds of 4x4 float32 arrays, forward + backward: time per add", "s/op"),
    "train": ("`deltaprop train` defaults end to end (digits MLP): seconds, test accuracy", "s"),
    "import": ("`import <lib>` in a fresh process", "s"),
    "memory": ("training loop of the train case: peak RSS, RSS after each epoch", "MB"),
    "trace": ("dp.explain.trace of one sample through a 784-256-10 sigmoid network (target < 1 s)", "s"),
    "report": ("`deltaprop explain --dataset moons --hidden 4,4 --steps 200 --html` (target < 5 s)", "s"),
}

# Library name -> (worker module inside deltaprop.bench, top-level package it needs or None).
LIBS: dict[str, tuple[str, str | None]] = {
    "deltaprop": ("lib_deltaprop", "deltaprop"),
    # the same code after the explicit opt-in dp.tune_malloc() (no page faults from freed arrays)
    "deltaprop-tuned": ("lib_deltaprop_tuned", "deltaprop"),
    "torch": ("lib_torch", "torch"),
    "autograd": ("lib_autograd", "autograd"),
    "mygrad": ("lib_mygrad", "mygrad"),
    "dezero": ("lib_dezero", "dezero"),
    "micrograd": ("lib_micrograd", "micrograd"),
    "numpy": ("lib_numpy", "numpy"),
    "numpy-buf": ("lib_numpybuf", "numpy"),
    "gemm": ("lib_gemm", "numpy"),
    "sklearn": ("lib_sklearn", "sklearn"),
}

BASELINE = "deltaprop"

_PEERS = ["deltaprop-tuned", "autograd", "mygrad", "dezero"]

# Case -> the libraries that have a version of it, in the order they run within a round (every
# other round reversed). The peers a target compares with sit right next to deltaprop, so each
# such pair runs back to back (the report still lists deltaprop first).
APPLIES: dict[str, list[str]] = {
    "mlp-sgd": ["torch", "deltaprop", "numpy-buf"] + _PEERS + ["numpy", "gemm"],
    "mlp-adam": ["torch", "deltaprop", "numpy-buf"] + _PEERS + ["numpy", "gemm"],
    "mazur": ["torch", "deltaprop", "micrograd"] + _PEERS + ["numpy", "numpy-buf", "gemm"],
    "cnn": ["torch", "deltaprop", "deltaprop-tuned"] + _PEERS[1:] + ["numpy", "numpy-buf", "gemm"],
    "chain": ["torch", "deltaprop"] + _PEERS + ["micrograd", "numpy"],
    "micro": ["deltaprop"] + _PEERS + ["torch", "numpy"],
    "train": ["torch", "deltaprop", "sklearn"],
    "import": ["deltaprop", "numpy", "torch"],
    "memory": ["deltaprop", "torch"],
    "trace": ["deltaprop"],
    "report": ["deltaprop"],
}

# Peers as named on the command line (`--peers`): every library except the baseline.
PEERS: list[str] = [name for name in LIBS if name != BASELINE]

# Iterations inside one worker process: (warm-up, timed), normal and --quick.
ITERATIONS: dict[str, tuple[tuple[int, int], tuple[int, int]]] = {
    "mlp-sgd": ((20, 200), (3, 10)),
    "mlp-adam": ((20, 200), (3, 10)),
    "mazur": ((200, 1000), (50, 200)),
    "cnn": ((5, 30), (2, 8)),
    "chain": ((1, 3), (1, 1)),
    "micro": ((5, 30), (2, 5)),
    "train": ((0, 1), (0, 1)),
    "import": ((0, 1), (0, 1)),
    "memory": ((0, 1), (0, 1)),
    "trace": ((1, 5), (1, 2)),
    "report": ((0, 3), (0, 1)),
}
