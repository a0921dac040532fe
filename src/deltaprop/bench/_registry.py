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
    "first-call": ("the mlp-sgd step's first call, compiled: from wrapping the step (dp.compile, jax.jit, "
                   "TinyJit) until it has run once as compiled code (recording and planning; tracing and "
                   "compiling)", "s"),
    "playground": ("`deltaprop playground` over its WebSocket, 2-8-8-1 tanh on 500 training points: one step + "
                   "frame, acknowledged by a headless client (bench/playground.py); extras: frames/s, knob latency",
                   "s"),
    "ddp": ("the mlp-sgd step, global batch 128, on 2 MPI ranks x 1 thread (DistributedDataParallel); extras: "
            "1 process x 2 threads, Allreduce time, overlap won (bench/ddp.py)", "s"),
}

# Library name -> (worker module inside deltaprop.bench, top-level package it needs or None).
LIBS: dict[str, tuple[str, str | None]] = {
    "deltaprop": ("lib_deltaprop", "deltaprop"),
    # the same code after the explicit opt-in dp.tune_malloc() (no page faults from freed arrays)
    "deltaprop-tuned": ("lib_deltaprop_tuned", "deltaprop"),
    # the same code with the array recycler off (DELTAPROP_RECYCLE=0 in its worker's environment)
    "deltaprop-norecycle": ("lib_deltaprop", "deltaprop"),
    # recycling off, glibc's malloc tuned (DELTAPROP_RECYCLE=malloc): what the recycler buys beyond malloc tuning
    "deltaprop-malloc": ("lib_deltaprop", "deltaprop"),
    # the same step functions through dp.compile (recorded in the warm-up, replayed after)
    "deltaprop-compiled": ("lib_deltaprop_compiled", "deltaprop"),
    "torch": ("lib_torch", "torch"),
    "autograd": ("lib_autograd", "autograd"),
    "mygrad": ("lib_mygrad", "mygrad"),
    "dezero": ("lib_dezero", "dezero"),
    "micrograd": ("lib_micrograd", "micrograd"),
    "numpy": ("lib_numpy", "numpy"),
    "numpy-buf": ("lib_numpybuf", "numpy"),
    "gemm": ("lib_gemm", "numpy"),
    "sklearn": ("lib_sklearn", "sklearn"),
    # compiling peers (the bench extra): the update under jax.jit with donated state, and TinyJit
    "jax": ("lib_jax", "jax"),
    "tinygrad": ("lib_tinygrad", "tinygrad"),
}

BASELINE = "deltaprop"

# The cases a worker runs once, timing inside the library's own function (which returns a dict
# with "value"), instead of timing blocks of steps.
ONE_RUN = ("train", "memory", "ddp", "first-call", "playground")

# Library -> variables set in its worker's environment (the runner sets them; every other
# worker runs with DELTAPROP_RECYCLE unset, so `deltaprop` is the default configuration).
LIB_ENV: dict[str, dict[str, str]] = {
    "deltaprop-norecycle": {"DELTAPROP_RECYCLE": "0"},
    "deltaprop-malloc": {"DELTAPROP_RECYCLE": "malloc"},
}

# The rows the report lists first in a case, in this order; the other libraries follow in run order.
SHOWN_FIRST = (BASELINE, "deltaprop-norecycle", "deltaprop-malloc")

_PEERS = ["deltaprop-tuned", "autograd", "mygrad", "dezero"]

# Case -> the libraries that have a version of it, in the order they run within a round (every
# other round reversed). The peers a target compares with sit right next to deltaprop, so each
# such pair runs back to back (the report still lists deltaprop first). deltaprop-norecycle runs
# one step further away, in the training-step cases (the recycler only handles large arrays).
_NR = "deltaprop-norecycle"
_NM = "deltaprop-malloc"  # recycling off, malloc tuning on
_DC = "deltaprop-compiled"  # between the peers its targets compare with (those that fit beside it)
APPLIES: dict[str, list[str]] = {
    "mlp-sgd": ["torch", "deltaprop", "numpy-buf", _DC, "jax", _NR, _NM] + _PEERS + ["numpy", "gemm", "tinygrad"],
    "mlp-adam": ["torch", "deltaprop", "numpy-buf", _DC, "jax", _NR, _NM] + _PEERS + ["numpy", "gemm", "tinygrad"],
    "mazur": ["torch", "deltaprop", "micrograd", _DC, "numpy-buf", "jax", _NR] + _PEERS + ["numpy", "gemm",
                                                                                          "tinygrad"],
    "cnn": ["torch", "deltaprop", _DC, "jax", "deltaprop-tuned", _NR, _NM] + _PEERS[1:] + ["numpy", "numpy-buf", "gemm",
                                                                                     "tinygrad"],
    "chain": ["torch", "deltaprop"] + _PEERS + ["micrograd", "numpy"],
    "micro": ["deltaprop"] + _PEERS + ["torch", "numpy"],
    "train": ["torch", "deltaprop", _DC, "sklearn"],
    "import": ["deltaprop", "numpy", "torch"],
    "memory": ["deltaprop", "torch"],
    "trace": ["deltaprop"],
    "report": ["deltaprop"],
    "playground": ["deltaprop"],
    "ddp": ["deltaprop"],
    # the compiled rows only: each worker is a fresh process, so each round is a true first call
    "first-call": [_DC, "jax", "tinygrad"],
}

# Peers as named on the command line (`--peers`): every library except the baseline.
PEERS: list[str] = [name for name in LIBS if name != BASELINE]

# Timing inside one worker process: (warm-up iterations, timed blocks), normal and --quick.
# A block is a run of consecutive iterations timed as a whole, garbage collector enabled (as in
# a training loop): its size is the first of 1, 2, 5, 10, 20, 50, ... iterations whose block
# lasts at least MIN_BLOCK_S (timeit's autorange); the worker reports block time / block size,
# the median over its blocks. Before any of it, one untimed call records the first loss; the
# calibration's trials warm up too, so the slow cases need no warm-up of their own. train,
# import, memory, ddp and first-call are one run each (their counts unused).
TIMING: dict[str, tuple[tuple[int, int], tuple[int, int]]] = {
    "mlp-sgd": ((20, 3), (3, 2)),
    "mlp-adam": ((20, 3), (3, 2)),
    "mazur": ((200, 3), (50, 2)),
    "cnn": ((5, 3), (2, 2)),
    "chain": ((0, 3), (0, 1)),
    "micro": ((5, 3), (2, 2)),
    "train": ((0, 1), (0, 1)),
    "import": ((0, 1), (0, 1)),
    "memory": ((0, 1), (0, 1)),
    "trace": ((0, 3), (0, 1)),
    "report": ((0, 3), (0, 1)),
    "ddp": ((0, 1), (0, 1)),
    "playground": ((0, 1), (0, 1)),
    "first-call": ((0, 1), (0, 1)),
}

# The shortest block, in seconds: normal and --quick.
MIN_BLOCK_S: tuple[float, float] = (0.2, 0.02)
