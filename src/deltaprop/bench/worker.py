"""One measurement in its own process: `python -m deltaprop.bench.worker LIB CASE [options]`.

Prints exactly one JSON line on stdout:
  {"lib", "case", "status": "ok", "value", "unit", "times", "extra"}   (value: median of times)
  {"lib", "case", "status": "not installed" | "not applicable" | "error", "reason"}
Warm-up iterations run first; then, unless --block gives the block size, `autorange` picks it
(the first of 1, 2, 5, 10, 20, ... iterations lasting at least --min-block-time, trying
--start-block first: the runner passes the size of the library's previous round); then
`time_blocks` times --blocks blocks of that many consecutive iterations, each as a whole
(time.perf_counter around the block, the garbage collector left enabled as in a training
loop, so the collections a few iterations trigger are in the time). `times` holds each block's
time / block size; `value` is their median. Only the library named is imported (besides
NumPy): the deltaprop worker never imports torch.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from importlib import import_module
from importlib.util import find_spec

from ._registry import APPLIES, CASES, LIB_ENV, LIBS, MIN_BLOCK_S, ONE_RUN, TIMING

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _median(xs: list[float]) -> float:
    s = sorted(xs)
    m = len(s) // 2
    return s[m] if len(s) % 2 else (s[m - 1] + s[m]) / 2


def _as_float(x) -> float | None:
    """A loss-like result of any library as a Python float (None when it has no number)."""
    for attr in ("item", "data"):
        if hasattr(x, attr) and not isinstance(x, (int, float)):
            v = getattr(x, attr)
            x = v() if callable(v) else v
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def autorange(step: Callable[[], object], min_time: float, timer: Callable[[], float] = time.perf_counter,
              max_block: int = 10_000_000, start: int = 1) -> int:
    """The block size: the first of `start`, then 1, 2, 5, 10, 20, 50, ... above it, whose calls of
    `step` in a row take at least `min_time` seconds (timeit's autorange rule; the trials also
    warm up). `start` above 1 skips the trials below it."""
    n = max(1, start)
    scale = 1
    while True:
        t0 = timer()
        for _ in range(n):
            step()
        if timer() - t0 >= min_time or n >= max_block:
            return n
        while scale * 5 <= n:
            scale *= 10
        n = next(scale * mult for mult in (1, 2, 5, 10) if scale * mult > n)


def time_blocks(step: Callable[[], object], block: int, blocks: int,
                timer: Callable[[], float] = time.perf_counter) -> tuple[list[float], object]:
    """Time `blocks` blocks of `block` consecutive calls of `step`, each block as a whole; return
    (per-iteration seconds of each block: block time / block, the last call's result). Nothing is
    done to the garbage collector: a collection that lands in a block counts in its time."""
    times = []
    out = None
    for _ in range(blocks):
        t0 = timer()
        for _ in range(block):
            out = step()
        times.append((timer() - t0) / block)
    return times, out


def _recycling(lib: str) -> bool | None:
    """For a deltaprop library: whether its array recycler is on (None: no switch to ask)."""
    if LIBS[lib][1] != "deltaprop":
        return None
    try:
        memory = import_module("deltaprop.memory")
        return bool(memory.enabled())
    except Exception:
        return None


def measure(lib: str, case: str, warmup: int, blocks: int, threads: int, block: int | None = None,
            min_block_time: float = MIN_BLOCK_S[0], start_block: int = 1) -> dict:
    """Run one library's version of one case; return the JSON-ready result. `block` iterations
    per timed block (None: chosen by `autorange` with `min_block_time`, from `start_block` up)."""
    head = {"lib": lib, "case": case}
    if lib not in LIBS or case not in CASES:
        return {**head, "status": "error", "reason": f"unknown library or case: {lib} {case}"}
    if lib not in APPLIES[case]:
        return {**head, "status": "not applicable", "reason": f"{lib} has no {case} case"}
    module_name, package = LIBS[lib]
    if package is not None and find_spec(package) is None:
        return {**head, "status": "not installed", "reason": f"no module named {package!r}"}
    try:
        mod = import_module(f"{__package__}.{module_name}")
        if hasattr(mod, "set_threads"):
            mod.set_threads(threads)
        make = getattr(mod, case.replace("-", "_"))
    except ModuleNotFoundError as e:
        return {**head, "status": "not installed", "reason": str(e)}
    except Exception as e:  # a broken install of a peer is reported, not raised
        return {**head, "status": "error", "reason": f"import: {type(e).__name__}: {e}"[:500]}
    unit = CASES[case][1]
    recycle = _recycling(lib)
    want = LIB_ENV.get(lib, {}).get("DELTAPROP_RECYCLE")
    if want in ("0", "malloc") and recycle:
        return {**head, "status": "error",
                "reason": "the array recycler is on: run this worker with DELTAPROP_RECYCLE=0 in its "
                          "environment (the runner does)"}
    try:
        if case in ONE_RUN:  # one run each, timing inside
            result = make()
            value = result.pop("value")
            if recycle is not None:
                result["recycle"] = recycle
            return {**head, "status": "ok", "value": value, "unit": unit, "times": [value], "extra": result}
        step = make()
        extra: dict = {"warmup": warmup, "first_loss": _as_float(step())}
        for _ in range(warmup):
            step()
        if block is None:
            block = autorange(step, min_block_time, start=start_block)
            extra["calibrated"] = True
        times, out = time_blocks(step, block, blocks)
        extra.update(block=block, blocks=blocks, block_s=_median(times) * block)
        if case == "micro":
            from ._common import MICRO_OPS

            times = [t / MICRO_OPS for t in times]
        extra["last_loss"] = _as_float(out)
        if recycle is not None:
            extra["recycle"] = recycle
        return {**head, "status": "ok", "value": _median(times), "unit": unit, "times": times, "extra": extra}
    except Exception as e:
        return {**head, "status": "error", "reason": f"{type(e).__name__}: {e}"[:500]}


def _positive(kind):
    def parse(v: str):
        x = kind(v)
        if x <= 0:
            raise argparse.ArgumentTypeError(f"{v!r} is not positive")
        return x

    return parse


def main(argv: list[str] | None = None) -> int:
    """Run one (library, case) measurement and print its JSON line on stdout; the exit code."""
    p = argparse.ArgumentParser(prog="python -m deltaprop.bench.worker", description=__doc__.split("\n")[0])
    p.add_argument("lib", choices=sorted(LIBS))
    p.add_argument("case", choices=sorted(CASES))
    p.add_argument("--warmup", type=int, help="warm-up iterations (default: the case's, _registry.TIMING)")
    p.add_argument("--blocks", type=_positive(int), help="timed blocks (default: the case's)")
    p.add_argument("--block", type=_positive(int), help="iterations per block (default: autorange)")
    p.add_argument("--start-block", type=_positive(int), default=1,
                   help="the block size autorange tries first (default 1; the runner passes the size "
                        "the library's previous round used)")
    p.add_argument("--min-block-time", type=_positive(float),
                   help=f"seconds a block lasts at least, when autorange picks its size "
                        f"(default {MIN_BLOCK_S[0]:g}; {MIN_BLOCK_S[1]:g} with --quick)")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--threads", type=int, default=None)
    a = p.parse_args(argv)
    (w, n), (qw, qn) = TIMING[a.case]
    warmup = a.warmup if a.warmup is not None else (qw if a.quick else w)
    blocks = a.blocks if a.blocks is not None else (qn if a.quick else n)
    min_block_time = a.min_block_time or MIN_BLOCK_S[1 if a.quick else 0]
    threads = a.threads or int(os.environ.get("OMP_NUM_THREADS", "0") or 0) or (os.cpu_count() or 1)
    for var in THREAD_VARS:  # effective only where NumPy was not imported yet; the runner sets them
        os.environ.setdefault(var, str(threads))
    result = measure(a.lib, a.case, warmup, blocks, threads, block=a.block, min_block_time=min_block_time,
                     start_block=a.start_block)
    result["threads"] = threads
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
