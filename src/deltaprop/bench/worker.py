"""One measurement in its own process: `python -m deltaprop.bench.worker LIB CASE [options]`.

Prints exactly one JSON line on stdout:
  {"lib", "case", "status": "ok", "value", "unit", "times", "extra"}   (value: median of times)
  {"lib", "case", "status": "not installed" | "not applicable" | "error", "reason"}
Warm-up iterations run first, then the timed ones (time.perf_counter). Only the library
named is imported (besides NumPy): the deltaprop worker never imports torch.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from importlib import import_module
from importlib.util import find_spec

from ._registry import APPLIES, CASES, ITERATIONS, LIBS

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


def measure(lib: str, case: str, warmup: int, iters: int, threads: int) -> dict:
    """Run one library's version of one case; return the JSON-ready result."""
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
    try:
        if case in ("train", "memory"):
            result = make()
            value = result.pop("value")
            return {**head, "status": "ok", "value": value, "unit": unit, "times": [value], "extra": result}
        step = make()
        extra: dict = {"warmup": warmup, "iters": iters, "first_loss": _as_float(step())}
        for _ in range(warmup):
            step()
        times = []
        out = None
        for _ in range(iters):
            t0 = time.perf_counter()
            out = step()
            times.append(time.perf_counter() - t0)
        if case == "micro":
            from ._common import MICRO_OPS

            times = [t / MICRO_OPS for t in times]
        extra["last_loss"] = _as_float(out)
        return {**head, "status": "ok", "value": _median(times), "unit": unit, "times": times, "extra": extra}
    except Exception as e:
        return {**head, "status": "error", "reason": f"{type(e).__name__}: {e}"[:500]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m deltaprop.bench.worker", description=__doc__.split("\n")[0])
    p.add_argument("lib", choices=sorted(LIBS))
    p.add_argument("case", choices=sorted(CASES))
    p.add_argument("--warmup", type=int)
    p.add_argument("--iters", type=int)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--threads", type=int, default=None)
    a = p.parse_args(argv)
    (w, n), (qw, qn) = ITERATIONS[a.case]
    warmup = a.warmup if a.warmup is not None else (qw if a.quick else w)
    iters = a.iters if a.iters is not None else (qn if a.quick else n)
    threads = a.threads or int(os.environ.get("OMP_NUM_THREADS", "0") or 0) or (os.cpu_count() or 1)
    for var in THREAD_VARS:  # effective only where NumPy was not imported yet; the runner sets them
        os.environ.setdefault(var, str(threads))
    result = measure(a.lib, a.case, warmup, iters, threads)
    result["threads"] = threads
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
