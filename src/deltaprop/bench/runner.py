"""The benchmark runner: one process per measurement, libraries alternating, paired ratios.

For each case, round r runs every library once, in a fixed order (A B C, then C B A, ...), each
in a fresh `python -m deltaprop.bench.worker` process with the same thread count. A worker times
blocks of consecutive iterations (garbage collector on; each worker calibrates its block size,
starting from the size the library's previous round of the case used), and a library's round
value is the median over its blocks of block time / block size. Per library the report gives
the median, min and max over rounds and the median over rounds of deltaprop / library (paired
by round, so a machine that drifts between rounds moves both sides of each ratio together).

Options are checked before anything runs (`check_options`): a bad one is one line on stderr
and exit code 2.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from typing import Any

from .targets import evaluate, format_targets
from ._registry import APPLIES, BASELINE, CASES, LIB_ENV, LIBS, MIN_BLOCK_S, PEERS, SHOWN_FIRST, TIMING

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
# Set only where LIB_ENV says so: the `deltaprop` row always measures the default configuration.
CLEARED_VARS = ("DELTAPROP_RECYCLE",)
SKIP_STATUSES = ("not installed", "not applicable", "error")
SPREAD_FLAG = 1.3  # max / min over rounds above this is flagged in the notes

# The import case: a fresh interpreter times `import <module>` around nothing else.
IMPORT_SNIPPET = r"""
import json, sys, time
from importlib.util import find_spec
lib, module = sys.argv[1], sys.argv[2]
head = {"lib": lib, "case": "import"}
if find_spec(module) is None:
    print(json.dumps({**head, "status": "not installed", "reason": "no module named %r" % module}))
else:
    t0 = time.perf_counter()
    try:
        __import__(module)
    except Exception as e:
        print(json.dumps({**head, "status": "error", "reason": "%s: %s" % (type(e).__name__, e)}))
    else:
        dt = time.perf_counter() - t0
        print(json.dumps({**head, "status": "ok", "value": dt, "unit": "s", "times": [dt], "extra": {}}))
"""

Measure = Callable[[str, str, int], dict]


# --------------------------------------------------------------------------- statistics
def median(xs: Iterable[float]) -> float | None:
    """The median of the values that are not None (None when there are none)."""
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def paired_ratios(base: list[float | None], other: list[float | None]) -> list[float]:
    """base[r] / other[r] for every round r where both have a value (and other[r] != 0)."""
    return [b / o for b, o in zip(base, other) if b is not None and o is not None and o != 0]


def summarize_lib(values: list[float | None], base: list[float | None] | None) -> dict:
    """Median, min, max over rounds; median of the paired ratios and differences to base."""
    vals = [v for v in values if v is not None]
    out: dict[str, Any] = {"rounds": values, "median": median(vals),
                           "min": min(vals) if vals else None, "max": max(vals) if vals else None}
    if base is not None:
        ratios = paired_ratios(base, values)
        out["ratios"] = ratios
        out["ratio"] = median(ratios)
        diffs = [b - v for b, v in zip(base, values) if b is not None and v is not None]
        out["difference"] = median(diffs)
    else:
        out["ratios"], out["ratio"], out["difference"] = [], None, None
    return out


# --------------------------------------------------------------------------- scheduling
def plan(cases: list[str], libs: list[str], repeats: int) -> list[tuple[str, int, str]]:
    """(case, round, lib) in run order: per case, round after round, libraries alternating, every
    other round in reverse (A B C, C B A, ...): a drift that is linear in time then weighs on both
    sides of a ratio alike, and the peers listed next to deltaprop in APPLIES (those of the
    targets) run right before or after it in every round."""
    order: list[tuple[str, int, str]] = []
    for case in cases:
        case_libs = [lib for lib in APPLIES[case] if lib in libs]
        for r in range(repeats):
            order.extend((case, r, lib) for lib in (case_libs if r % 2 == 0 else case_libs[::-1]))
    return order


def run_plan(order: list[tuple[str, int, str]], repeats: int, measure: Measure,
             progress: Callable[[str], object] | None = None) -> dict[str, dict[str, dict]]:
    """Run every (case, round, lib); a library that is not installed, not applicable or
    failed is not run again for that case. Returns {case: {lib: {"status", "values", ...}}}."""
    results: dict[str, dict[str, dict]] = {}
    for case, r, lib in order:
        entry = results.setdefault(case, {}).setdefault(
            lib, {"status": "ok", "values": [None] * repeats, "runs": []})
        if entry["status"] in SKIP_STATUSES:
            continue
        res = measure(lib, case, r)
        if progress:
            progress(f"{case:9s} round {r + 1}/{repeats} {lib:10s} {_short(res)}")
        if res.get("status") != "ok":
            entry["status"] = res.get("status", "error")
            entry["reason"] = res.get("reason", "")
            continue
        entry["values"][r] = float(res["value"])
        entry["unit"] = res.get("unit", CASES[case][1])
        entry["runs"].append({k: res[k] for k in ("times", "extra") if k in res})
    return results


def _short(res: dict) -> str:
    if res.get("status") == "ok":
        return f"{res['value']:.6g} {res.get('unit', '')}"
    return f"{res.get('status')}: {res.get('reason', '')}"[:120]


# --------------------------------------------------------------------------- workers
def worker_env(threads: int, base: dict | None = None, lib: str | None = None) -> dict[str, str]:
    """The child's environment: the thread variables set, this deltaprop importable, the
    CLEARED_VARS removed, and the variables LIB_ENV lists for `lib` set."""
    env = dict(os.environ if base is None else base)
    for var in CLEARED_VARS:
        env.pop(var, None)
    for var in THREAD_VARS:
        env[var] = str(threads)
    env.update(LIB_ENV.get(lib, {}) if lib else {})
    pkg_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join([pkg_parent] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


# A peer's worker loads deltaprop.bench without running deltaprop/__init__.py: the peer's
# process holds only the peer (and NumPy), and a half-edited deltaprop cannot break it.
PEER_BOOTSTRAP = (
    "import sys, types; pkg = types.ModuleType('deltaprop'); pkg.__path__ = [sys.argv.pop(1)]; "
    "sys.modules['deltaprop'] = pkg; from deltaprop.bench.worker import main; sys.exit(main(sys.argv[1:]))"
)


def worker_command(python: str, lib: str, case: str, threads: int, quick: bool,
                   start_block: int | None = None) -> list[str]:
    """deltaprop: `python -m deltaprop.bench.worker LIB CASE ...`; a peer: the same worker via
    PEER_BOOTSTRAP; the import case: IMPORT_SNIPPET in a fresh interpreter. `start_block`: the
    block size the worker's calibration tries first (None: 1)."""
    if case == "import":
        module = LIBS[lib][1] or lib
        return [python, "-c", IMPORT_SNIPPET, lib, module]
    args = [lib, case, "--threads", str(threads)] + (["--quick"] if quick else []) \
        + (["--start-block", str(start_block)] if start_block else [])
    if lib == BASELINE or LIBS[lib][1] == "deltaprop":
        return [python, "-m", "deltaprop.bench.worker", *args]
    pkg_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return [python, "-c", PEER_BOOTSTRAP, pkg_dir, *args]


def parse_worker_output(stdout: str, lib: str, case: str) -> dict:
    """The last line of stdout that is a JSON object; an error result when there is none."""
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                break
    return {"lib": lib, "case": case, "status": "error", "reason": "the worker printed no JSON result"}


def subprocess_measure(python: str, threads: int, quick: bool, timeout: float,
                       command: Callable[..., list[str]] = worker_command) -> Measure:
    """A Measure that runs each measurement in its own worker process, with worker_env(lib).
    The largest block size a library's workers of a case have used so far is where its next
    worker's calibration starts: on a steady machine every round times the same number of
    iterations per block, and a round calibrated while the machine was slow cannot leave the
    later rounds with blocks shorter than the minimum (the calibration still goes up from there)."""
    envs: dict[str, dict[str, str]] = {}
    blocks: dict[tuple[str, str], int] = {}

    def measure(lib: str, case: str, r: int) -> dict:
        env = envs.get(lib) or envs.setdefault(lib, worker_env(threads, lib=lib))
        cmd = command(python, lib, case, threads, quick, blocks.get((lib, case)))
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"lib": lib, "case": case, "status": "error", "reason": f"timed out after {timeout:g} s"}
        wall = time.perf_counter() - t0
        res = parse_worker_output(proc.stdout, lib, case)
        if proc.returncode != 0 and res.get("status") == "error":
            tail = (proc.stderr or "").strip().splitlines()[-1:] or [""]
            res["reason"] = f"exit {proc.returncode}: {tail[0]}"[:500]
        res.setdefault("extra", {})
        if isinstance(res.get("extra"), dict):
            res["extra"]["process_wall_s"] = wall
            block = res["extra"].get("block")
            if res.get("status") == "ok" and isinstance(block, int) and block > 0:
                blocks[(lib, case)] = max(block, blocks.get((lib, case), 0))
        return res

    return measure


# --------------------------------------------------------------------------- report
def build_report(results: dict[str, dict[str, dict]], meta: dict) -> dict:
    """The JSON object: meta, and per case its unit and each library's summary."""
    cases: dict[str, Any] = {}
    for case, libs in results.items():
        base_entry = libs.get(BASELINE)
        base = base_entry["values"] if base_entry and base_entry["status"] == "ok" else None
        if base is not None and all(v is None for v in base):
            base = None
        out_libs: dict[str, Any] = {}
        for lib, entry in sorted(libs.items(), key=lambda kv: _shown_rank(kv[0])):  # deltaprop first
            item: dict[str, Any] = {"status": entry["status"]}
            if entry["status"] == "ok":
                item.update(summarize_lib(entry["values"], base if lib != BASELINE else None))
                if lib == BASELINE and base is not None:
                    item["ratio"] = 1.0
                item["extra"] = _merge_extra(entry["runs"])
            else:
                item["reason"] = entry.get("reason", "")
            out_libs[lib] = item
        cases[case] = {"description": CASES[case][0], "unit": CASES[case][1], "baseline": BASELINE,
                       "libraries": out_libs}
    return {"meta": meta, "cases": cases}


def _shown_rank(lib: str) -> int:
    """SHOWN_FIRST in its order, then every other library (a stable sort keeps the run order)."""
    return SHOWN_FIRST.index(lib) if lib in SHOWN_FIRST else len(SHOWN_FIRST)


def _merge_extra(runs: list[dict]) -> dict:
    """Per-process extras: numbers become medians over rounds, the rest is kept from the last;
    the block sizes also as [smallest, largest] in `block_range`."""
    extras = [r.get("extra") or {} for r in runs]
    merged: dict[str, Any] = {}
    for key in {k for e in extras for k in e}:
        vals = [e[key] for e in extras if key in e]
        nums = [v for v in vals if isinstance(v, (int, float)) and not isinstance(v, bool)]
        merged[key] = median(nums) if nums and len(nums) == len(vals) else vals[-1]
        if key == "block" and nums:
            merged["block_range"] = [min(nums), max(nums)]
    return merged


def fmt_value(v: float | None, unit: str) -> str:
    """A value in its unit with a readable prefix (e.g. 2.85 ms, 176 us, 310 MB); '-' for None."""
    if v is None:
        return "-"
    if unit in ("s", "s/op"):
        suffix = "/op" if unit == "s/op" else ""
        for scale, name in ((1.0, "s"), (1e-3, "ms"), (1e-6, "us"), (1e-9, "ns")):
            if abs(v) >= scale or scale == 1e-9:
                return f"{v / scale:.3g} {name}{suffix}"
    return f"{v:.4g} {unit}"


def _notes(case: str, lib: str, item: dict, ref_loss: float | None) -> str:
    if item["status"] != "ok":
        reason = item.get("reason", "")
        return item["status"] if item["status"] == "not installed" and not reason else f"{item['status']}: {reason}"[:90]
    ex = item.get("extra", {})
    notes = []
    if case == "train":
        if ex.get("test_accuracy") is not None:
            notes.append(f"test acc {ex['test_accuracy']:.3f}")
        if ex.get("seconds_to_target") is not None:
            notes.append(f"{fmt_value(ex['seconds_to_target'], 's')} to acc 0.97")
        if ex.get("peak_rss_mb") is not None:
            notes.append(f"peak RSS {ex['peak_rss_mb']:.0f} MB")
    elif case == "memory":
        if ex.get("growth_mb") is not None:
            notes.append(f"RSS epoch 2 -> last {ex['growth_mb']:+.1f} MB")
        if ex.get("test_accuracy") is not None:
            notes.append(f"test acc {ex['test_accuracy']:.3f}")
    elif case == "ddp" and ex.get("single_1x2_s") is not None:
        notes.append(f"1 process x 2 threads {fmt_value(ex['single_1x2_s'], 's')} "
                     f"(2 ranks: speed-up x{ex['speedup_vs_single']:.2f}); Allreduce of the grads "
                     f"{fmt_value(ex['allreduce_1_07MB_s'], 's')}; overlap won "
                     f"{fmt_value(ex['overlap_won_s'], 's')}")
    elif case == "playground" and ex.get("frames_per_s") is not None:
        notes.append(f"{ex['frames_per_s']:.0f} steps + frames/s"
                     + (f" ({ex['browser_frames_per_s']:.0f} drawn/s in Chromium)" if ex.get("browser_frames_per_s")
                        else "") + f"; a knob change in the next frame after {ex['knob_ms_median']:.0f} ms "
                     f"(median), {ex['knob_ms_max']:.0f} ms at most")
    elif case == "first-call" and ex.get("calls") is not None:
        notes.append(f"{ex['calls']:.0f} call{'s' if ex['calls'] != 1 else ''}; the next call "
                     f"{fmt_value(ex.get('next_call_s'), 's')}")
    elif case == "import" and lib != BASELINE and item.get("difference") is not None:
        notes.append(f"deltaprop - {lib}: {item['difference']:+.3f} s")
    loss = ex.get("first_loss")
    if ref_loss is not None and loss is not None and lib != "gemm":
        if abs(loss - ref_loss) > 1e-4 * max(1.0, abs(ref_loss)):
            notes.append(f"first loss {loss:.6g} != {ref_loss:.6g}")
    if lib in LIB_ENV:
        notes.append(" ".join(f"{k}={v}" for k, v in LIB_ENV[lib].items())
                     + {False: " (recycler off)", True: " (recycler on!)"}.get(ex.get("recycle"),
                                                                                " (recycler state unknown)"))
    if ex.get("block") is not None and ex.get("blocks") is not None:
        lo, hi = ex.get("block_range") or (ex["block"], ex["block"])
        notes.append(f"{ex['blocks']:.0f} x {lo:.0f} it" if lo == hi else
                     f"{ex['blocks']:.0f} x {lo:.0f}-{hi:.0f} it")
    lo, hi = item.get("min"), item.get("max")
    if case not in ("memory", "import") and lo and hi and hi / lo > SPREAD_FLAG:
        # rounds this far apart mean something else ran on the machine during the case
        notes.append(f"rounds spread x{hi / lo:.1f}: disturbed")
    return "; ".join(notes)


def format_table(report: dict) -> str:
    """One Markdown table: case, library, median, min, max, deltaprop / library, notes."""
    rows = [["case", "library", "median", "min", "max", "deltaprop / lib", "notes"]]
    for case, data in report["cases"].items():
        unit = data["unit"]
        libs = data["libraries"]
        ref = next((libs[r]["extra"].get("first_loss") for r in ("numpy", "torch", BASELINE, "deltaprop-compiled")
                    if r in libs and libs[r]["status"] == "ok"), None)
        for lib, item in libs.items():
            ok = item["status"] == "ok"
            ratio = item.get("ratio") if ok else None
            rows.append([
                case, lib,
                fmt_value(item.get("median"), unit) if ok else item["status"],
                fmt_value(item.get("min"), unit) if ok else "",
                fmt_value(item.get("max"), unit) if ok else "",
                f"{ratio:.2f}" if ratio is not None else "-",
                _notes(case, lib, item, ref),
            ])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- machine
MACHINE_SNIPPET = r"""
import io, json, contextlib
info = {}
import numpy as np
info["numpy"] = np.__version__
try:
    cfg = np.show_config(mode="dicts")
    blas = cfg.get("Build Dependencies", {}).get("blas", {})
    info["blas"] = " ".join(str(blas.get(k, "")) for k in ("name", "version")).strip()
except Exception:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        np.show_config()
    info["blas"] = buf.getvalue()[:300]
try:
    from threadpoolctl import threadpool_info
    info["threadpools"] = [{k: p.get(k) for k in ("internal_api", "num_threads", "version")}
                           for p in threadpool_info()]
except ImportError:
    info["threadpools"] = None
print(json.dumps(info))
"""


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (or the platform's processor string)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(python: str, threads: int) -> dict:
    """CPU, cores, and NumPy's BLAS with its thread count as a worker process sees them."""
    info: dict[str, Any] = {"cpu": cpu_model(), "logical_cpus": os.cpu_count(),
                            "platform": platform.platform(), "threads": threads}
    if hasattr(os, "sched_getaffinity"):
        info["usable_cpus"] = len(os.sched_getaffinity(0))
    try:
        proc = subprocess.run([python, "-c", MACHINE_SNIPPET], env=worker_env(threads),
                              capture_output=True, text=True, timeout=120)
        info.update(json.loads(proc.stdout.strip().splitlines()[-1]))
        proc = subprocess.run([python, "-c", "import sys; print(sys.version.split()[0])"],
                              capture_output=True, text=True, timeout=60)
        info["python"] = proc.stdout.strip()
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        pass
    return info


def source_revision() -> str | None:
    """The git commit of this deltaprop checkout (with -dirty for local changes), if it is one."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True,
                              text=True, timeout=30)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "."],
                               cwd=os.path.dirname(here), capture_output=True, text=True, timeout=30)
        return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def lib_versions(python: str, libs: Iterable[str]) -> dict[str, str | None]:
    """Installed versions, read from package metadata without importing the libraries."""
    dists = {"deltaprop": "deltaprop", "torch": "torch", "autograd": "autograd", "mygrad": "mygrad",
             "dezero": "dezero", "micrograd": "micrograd", "numpy": "numpy", "numpy-buf": "numpy",
             "gemm": "numpy", "sklearn": "scikit-learn", "jax": "jax", "tinygrad": "tinygrad"}
    names = sorted({dists[lib] for lib in libs if lib in dists})
    code = ("import json, sys\nfrom importlib.metadata import version, PackageNotFoundError\nout = {}\n"
            "for n in sys.argv[1:]:\n    try: out[n] = version(n)\n"
            "    except PackageNotFoundError: out[n] = None\nprint(json.dumps(out))")
    try:
        proc = subprocess.run([python, "-c", code, *names], capture_output=True, text=True, timeout=60)
        found = json.loads(proc.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return {}
    return {lib: found.get(dists[lib]) for lib in libs if lib in dists}


def _load_remark(meta: dict) -> str:
    load, cpus = meta.get("loadavg_1min", {}), meta.get("machine", {}).get("usable_cpus")
    worst = max((v for v in (load.get("start"), load.get("end")) if v is not None), default=None)
    if worst is None or not cpus:
        return ""
    return (" (above the usable CPUs: other work shared the cores)" if worst > cpus else
            " (no other work queued here; a case disturbed from outside says so in its notes)")


def format_markdown(report: dict) -> str:
    """RESULTS.md: the machine, the exact command, and the table."""
    m = report["meta"]
    mach = m.get("machine", {})
    pools = mach.get("threadpools")
    pool_text = ", ".join(f"{p['internal_api']} {p.get('version') or ''} x{p['num_threads']}" for p in pools) \
        if pools else "threadpoolctl not installed"
    lines = [
        "# deltaprop benchmark results",
        "",
        "Generated by the runner (`deltaprop bench --markdown benchmarks/RESULTS.md`); do not edit by hand.",
        "",
    ]
    if m.get("note"):
        lines += [f"**Note:** {m['note']}", ""]
    lines += [
        "## Machine",
        "",
        f"- CPU: {mach.get('cpu')} ({mach.get('usable_cpus', mach.get('logical_cpus'))} usable of "
        f"{mach.get('logical_cpus')} logical CPUs)",
        f"- Python {mach.get('python', '?')}, NumPy {mach.get('numpy', '?')}, BLAS: {mach.get('blas', '?')}",
        f"- BLAS / OpenMP thread pools in a worker: {pool_text}",
        f"- Threads for every library: {m['threads']} (OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, "
        "MKL_NUM_THREADS, torch.set_num_threads)",
        f"- Versions: " + ", ".join(f"{k} {v or 'not installed'}" for k, v in m.get("versions", {}).items()),
        f"- deltaprop source: {m.get('deltaprop_revision') or 'an installed copy'}",
        f"- Load average (1 min) at start / end: {m.get('loadavg_1min', {}).get('start')} / "
        f"{m.get('loadavg_1min', {}).get('end')}" + _load_remark(m),
        "",
        "## Command",
        "",
        "```",
        m["command"],
        "```",
        "",
        f"{m['repeats']} rounds per case; each round runs every library once in its own process, "
        "every other round in reverse order. A process warms up, then times blocks of consecutive "
        "iterations, each block as a whole with the garbage collector on (notes: `blocks x "
        f"iterations per block`; a block lasts at least {m.get('min_block_s', MIN_BLOCK_S[0]):g} s); "
        "a round's value is the median over its blocks of block time / block size. "
        "median/min/max are over rounds; `deltaprop / lib` is the median over rounds of the "
        "paired ratio (below 1: deltaprop is faster or smaller).",
        "",
        "## Results",
        "",
        format_table(report).rstrip("\n"),
        "",
        "## Targets (the performance issue's, checked on this run)",
        "",
        format_targets(evaluate(report)).rstrip("\n"),
        "",
        "## Cases",
        "",
    ]
    lines += [f"- `{c}`: {report['cases'][c]['description']}" for c in report["cases"]]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- command line
PROG = "deltaprop bench"


class UsageError(Exception):
    """A bad option: main prints `deltaprop bench: error: <message>` (one line) and returns 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own usage errors: one line, no usage block
        raise UsageError(message.replace("\n", " ") + f" (see {PROG} --help)")


def _csv(value: str, valid: list[str], what: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    if items in (["all"], []):
        return list(valid)
    if items == ["none"]:
        return []
    bad = [v for v in items if v not in valid]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown {what}: {', '.join(bad)}; choose from: {', '.join(valid)}")
    return items


def _positive(kind: type, wanted: str) -> Callable[[str], Any]:
    def parse(value: str):
        try:
            x = kind(value)
        except ValueError:
            x = None
        if x is None or not 0 < x < float("inf"):
            raise argparse.ArgumentTypeError(f"{value!r} is not allowed; give {wanted}")
        return x

    return parse


def default_threads() -> int:
    """The number of CPUs this process may use (its affinity mask), at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of `deltaprop bench`."""
    p = _Parser(
        prog=PROG,
        description="Benchmark deltaprop side by side with the peers that are installed; each "
                    "measurement in its own process, libraries alternating, same thread count.",
    )
    p.add_argument("--cases", default="all",
                   type=lambda v: _csv(v, list(CASES), "case"),
                   help="comma-separated cases (default all): " + ", ".join(CASES))
    p.add_argument("--peers", default="all",
                   type=lambda v: _csv(v, PEERS, "peer"),
                   help="comma-separated peers, 'all' (default) or 'none': " + ", ".join(PEERS))
    p.add_argument("--no-deltaprop", action="store_true", help="measure the peers only")
    p.add_argument("--repeats", type=_positive(int, "a whole number of 1 or more"), default=None,
                   help="rounds per case, one process per library per round (default 5; 2 with --quick)")
    p.add_argument("--threads", type=_positive(int, "a whole number of 1 or more"), default=None,
                   help=f"threads for every library (default: usable CPUs, here {default_threads()})")
    p.add_argument("--quick", action="store_true",
                   help=f"a smoke run: 2 rounds, fewer and shorter blocks ({MIN_BLOCK_S[1]:g} s, "
                        f"not {MIN_BLOCK_S[0]:g} s)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--markdown", metavar="PATH", help="also write the machine, command and table to PATH "
                   "(its directory must exist; written whole or not at all)")
    p.add_argument("--note", default=None, help="a note to put at the top of the --markdown file")
    p.add_argument("--python", default=sys.executable,
                   help="the interpreter that runs the workers (default: this one)")
    p.add_argument("--timeout", type=_positive(float, "a number of seconds above 0"), default=900.0,
                   help="seconds allowed to one worker process (default 900)")
    p.add_argument("--progress", action="store_true", help="one line per measurement on stderr")
    return p


def check_markdown(path: str) -> str | None:
    """Why `path` cannot take the Markdown report (None: it can): a directory, a missing or
    unwritable directory. Checked by creating and removing a file beside it."""
    if not path.strip():
        return "--markdown '': the path is empty; give a file path such as 'benchmarks/RESULTS.md'"
    if os.path.isdir(path):
        return f"--markdown {path!r} is a directory, not a file; give a file path such as " \
               f"{os.path.join(path, 'RESULTS.md')!r}"
    target = os.path.realpath(path)
    folder = os.path.dirname(target)
    if not os.path.isdir(folder):
        return f"--markdown {path!r}: the directory {os.path.dirname(path) or folder!r} does not exist; " \
               "create it first or give a path in an existing directory"
    if os.path.exists(target) and not os.path.isfile(target):
        return f"--markdown {path!r} exists and is not a regular file; give a file path"
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".deltaprop-bench-", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        return f"--markdown {path!r}: cannot write in {folder!r} ({e.strerror}); give a path in a writable directory"
    return None


PYTHON_CHECK = "import sys, numpy{extra}; print('deltaprop-bench-python', sys.version.split()[0])"


def check_python(python: str, modules: tuple[str, ...], threads: int, timeout: float = 120.0) -> str | None:
    """Why `python` cannot run the workers (None: it can): not found, not executable, not a
    Python, or it cannot import NumPy and `modules` (with this deltaprop on its path)."""
    needs = "NumPy" + (" and deltaprop's requirements" if modules else "")
    hint = f"give a Python interpreter that has {needs} (such as {sys.executable}, the one running this)"
    exe = python if os.sep in python or (os.altsep and os.altsep in python) else shutil.which(python)
    if exe is None or not os.path.exists(exe):
        return f"--python {python!r}: no such file; {hint}"
    if os.path.isdir(exe) or not os.access(exe, os.X_OK):
        return f"--python {python!r} is not an executable file; {hint}"
    code = PYTHON_CHECK.format(extra="".join(f", {m}" for m in modules))
    try:
        proc = subprocess.run([exe, "-c", code], env=worker_env(threads), capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return f"--python {python!r} did not finish `import numpy` within {timeout:g} s; {hint}"
    except OSError as e:
        return f"--python {python!r} cannot be run ({e.strerror}); {hint}"
    if proc.returncode == 0 and "deltaprop-bench-python" in proc.stdout:
        return None
    if proc.returncode == 0:
        return f"--python {python!r} ran but is not a Python interpreter; {hint}"
    last = ((proc.stderr or "").strip().splitlines() or [f"exit code {proc.returncode}"])[-1].strip()
    want = ", ".join(("numpy",) + modules)
    return f"--python {python!r} cannot import {want} ({last[:200]}); {hint}"


def check_options(args: argparse.Namespace, order: list) -> str | None:
    """The first reason the run cannot go ahead, or None; run before any measurement."""
    if not order:
        return "nothing to measure: the --cases and --peers chosen (and --no-deltaprop) leave no " \
               "library with a version of a case; choose other names"
    if args.markdown is not None:
        why = check_markdown(args.markdown)
        if why:
            return why
    needs_deltaprop = any(LIBS[lib][1] == "deltaprop" for _, _, lib in order)
    return check_python(args.python, ("deltaprop",) if needs_deltaprop else (), args.threads or default_threads())


def write_atomic(path: str, text: str) -> None:
    """Write `text` to `path` whole or not at all (deltaprop.io's atomic write: a temporary file
    beside it, then os.replace; a symlink's target is replaced, an existing file keeps its mode)."""
    from ..io import _atomic_write
    _atomic_write(path, text.encode("utf-8"))


def _error(message: str) -> None:
    sys.stderr.write(f"{PROG}: error: {message}\n")
    sys.stderr.flush()


def main(argv: list[str] | None = None) -> int:
    """`deltaprop bench`: check the options, run every (case, round, library) in its own worker process, print the table; the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        repeats = args.repeats or (2 if args.quick else 5)
        threads = args.threads or default_threads()
        libs = ([] if args.no_deltaprop else [BASELINE]) + args.peers
        order = plan(args.cases, libs, repeats)
        why = check_options(args, order)
        if why:
            raise UsageError(why)
    except UsageError as e:
        _error(str(e))
        return 2
    measure = subprocess_measure(args.python, threads, args.quick, args.timeout)
    progress = (lambda line: (sys.stderr.write(line + "\n"), sys.stderr.flush())) if args.progress else None
    started = time.time()
    load_before = _loadavg()
    results = run_plan(order, repeats, measure, progress)
    shown = "deltaprop bench" if argv is not None or os.path.basename(sys.argv[0]) == "deltaprop" \
        else "python -m deltaprop.bench"
    meta = {
        "command": " ".join([shown] + [shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)]),
        "threads": threads, "repeats": repeats, "quick": args.quick,
        "timing": {c: dict(zip(("warmup", "blocks"), TIMING[c][1 if args.quick else 0])) for c in args.cases},
        "min_block_s": MIN_BLOCK_S[1 if args.quick else 0],
        "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)),
        "duration_s": round(time.time() - started, 1),
        "loadavg_1min": {"start": load_before, "end": _loadavg()},
        "machine": machine_info(args.python, threads),
        "versions": lib_versions(args.python, libs),
        "deltaprop_revision": source_revision(),
    }
    if args.note:
        meta["note"] = args.note
    report = build_report(results, meta)
    report["targets"] = [{"target": w, "limit": lim, "measured": m, "met": ok} for w, lim, m, ok in evaluate(report)]
    if args.json:
        sys.stdout.write(json.dumps(report) + "\n")
    else:
        print_table(report)
    if args.markdown:
        try:
            write_atomic(args.markdown, format_markdown(report))
        except OSError as e:  # checked before the run; the directory changed since
            _error(f"--markdown {args.markdown!r}: {e.strerror or e}; the results above were not written")
            return 1
    return 0


def _loadavg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None


def print_table(report: dict) -> None:
    """The runner's only output to stdout: the table, with the thread count and rounds."""
    m = report["meta"]
    print(f"deltaprop bench: {m['repeats']} rounds, {m['threads']} threads, "
          f"{m['machine'].get('cpu', '?')}")
    print(format_table(report), end="")
