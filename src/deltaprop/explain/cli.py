"""`deltaprop explain`: Mazur's example, the chain rule of an expression, forward vs reverse
mode, the graph of an expression, and the interactive HTML training report.

    deltaprop explain mazur [--updates 10000]
    deltaprop explain chain "exp(sin(x**2))" --at 1.0        (or --at x=1,y=2)
    deltaprop explain graph "x * exp(x)" --at 0.5 [--svg out.svg]
    deltaprop explain modes [--sizes 1,10,100] [--repeat 3] [--json]
    deltaprop explain --dataset xor --hidden 4,4 --steps 200 --html report.html

Exit codes: 0 success, 2 usage error (the message says what is valid), 1 failure.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Sequence

PROG = "deltaprop explain"
SUBCOMMANDS = ("mazur", "chain", "graph", "modes")


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # raise instead of exiting, so main() returns 2
        raise _UsageError(f"{self.prog}: error: {message}")


def _report_parser() -> argparse.ArgumentParser:
    from .record import ACTIVATIONS, DATASETS

    p = _Parser(prog=PROG, description=(
        "See backpropagation step by step. Subcommands: mazur (Mazur's worked example, every number), "
        "chain EXPR --at X (the chain rule written out), graph EXPR --at X (Graphviz DOT/SVG), "
        "modes (forward vs reverse mode). Without a subcommand: train a small network and write "
        "the interactive HTML report."),
        epilog="Example: deltaprop explain --dataset xor --hidden 4,4 --steps 200 --html report.html")
    p.add_argument("--dataset", choices=DATASETS, default="xor", help="data set (default xor)")
    p.add_argument("--hidden", default="4,4", help="hidden layer sizes, comma-separated (default 4,4)")
    p.add_argument("--steps", type=int, default=200, help="training steps to record (default 200)")
    p.add_argument("--activation", choices=ACTIVATIONS, default="tanh", help="hidden activation (default tanh)")
    p.add_argument("--lr", type=float, default=None, help="SGD learning rate (default per data set)")
    p.add_argument("--seed", type=int, default=0, help="data and initialisation seed (default 0)")
    p.add_argument("--batch-size", type=int, default=None, help="minibatch size (default: full batch)")
    p.add_argument("--record-every", type=int, default=1, help="record every k-th step (default 1)")
    p.add_argument("--html", default="report.html", help="output file (default report.html)")
    return p


def _sub_parser(name: str) -> argparse.ArgumentParser:
    if name == "mazur":
        p = _Parser(prog=f"{PROG} mazur", description="Matt Mazur's step-by-step backpropagation example, "
                    "every number computed by the engine (float64).")
        p.add_argument("--updates", type=int, default=10000, help="SGD updates for the final figures (default 10000)")
    elif name in ("chain", "graph"):
        what = "the chain rule for d(expr)/dx, node by node" if name == "chain" else "the expression's graph as DOT"
        p = _Parser(prog=f"{PROG} {name}", description=f"Show {what}. The expression uses numbers, the "
                    "variables given to --at, + - * / ** (and unary minus), parentheses and exp log sqrt sin "
                    "cos tanh sigmoid relu abs; pi and e are constants. It is parsed, never eval'ed.")
        p.add_argument("expression", help='e.g. "exp(sin(x**2))"')
        p.add_argument("--at", default="x=1.0", help="x's value (1.0) or several variables (x=1,y=2); default x=1")
        if name == "chain":
            p.add_argument("--wrt", default=None, help="the variable to differentiate by (default: each in turn)")
        else:
            p.add_argument("--svg", default=None, help="also write SVG to this file (needs Graphviz's dot)")
    else:
        p = _Parser(prog=f"{PROG} modes", description="Forward vs reverse mode for f: R^n -> R^m: JVP and VJP "
                    "pass counts for the full Jacobian, agreement, and time.")
        p.add_argument("--sizes", default="1,10,100", help="values of n and m (default 1,10,100)")
        p.add_argument("--repeat", type=int, default=3, help="timing repeats, best kept (default 3)")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--json", action="store_true", help="print the rows as JSON (last line of stdout)")
    return p


def _parse_at(text: str) -> dict[str, float]:
    """'1.0' -> {'x': 1.0}; 'x=1,y=2' -> {'x': 1.0, 'y': 2.0}."""
    out: dict[str, float] = {}
    parts = [t.strip() for t in text.split(",") if t.strip()]
    if not parts:
        raise _UsageError(f"{PROG}: error: --at needs a value, e.g. --at 1.0 or --at x=1,y=2")
    for part in parts:
        name, eq, val = part.partition("=")
        if not eq:
            name, val = "x", part
        name = name.strip()
        if not (name.isidentifier() and name.isascii()) or name in ("pi", "e") or name.startswith("_"):
            raise _UsageError(f"{PROG}: error: --at: {name!r} is not a valid variable name")
        try:
            out[name] = float(val)
        except ValueError:
            raise _UsageError(f"{PROG}: error: --at: {val.strip()!r} is not a number (in {part!r})") from None
    return out


def _expression(args) -> tuple:
    """Parse the expression; returns (ast, env of leaf tensors, names)."""
    import numpy as np

    import deltaprop as dp
    from .expr import ExprError, evaluate, parse, variables

    at = _parse_at(args.at)
    try:
        ast = parse(args.expression, tuple(at))
    except ExprError as e:
        raise _UsageError(f"{PROG}: error: {e}\n{e.pointer()}") from None
    env = {k: dp.tensor(np.float64(v), requires_grad=True) for k, v in at.items()}
    with np.errstate(all="ignore"):
        y = evaluate(ast, env)
    if not isinstance(y, dp.Tensor):
        y = dp.tensor(np.float64(y))
    return ast, env, y, variables(ast)


def _cmd_chain(args) -> int:
    from .chain import chain

    ast, env, y, used = _expression(args)
    wrt = [args.wrt] if args.wrt else (used or list(env)[:1])
    for w in wrt:
        if w not in env:
            raise _UsageError(f"{PROG} chain: error: --wrt {w!r} is not a variable given to --at ({', '.join(env)})")
    for k, w in enumerate(wrt):
        if k:
            print()
        print(chain(y, env[w], names=env))
    return 0


def _cmd_graph(args) -> int:
    from .graph import graph

    ast, env, y, used = _expression(args)
    g = graph(y, names=env)
    y.backward()
    print(g.source, end="")
    if args.svg:
        svg = g.svg()
        if svg is None:
            print(f"{PROG} graph: Graphviz's `dot` is not installed; wrote no SVG", file=sys.stderr)
            return 1
        with open(args.svg, "w", encoding="utf-8") as f:
            f.write(svg)
        print(f"wrote {args.svg}", file=sys.stderr)
    return 0


def _cmd_modes(args) -> int:
    from .modes import format_modes, modes

    try:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        raise _UsageError(f"{PROG} modes: error: --sizes must be comma-separated integers, got {args.sizes!r}") from None
    if not sizes or any(s < 1 or s > 2000 for s in sizes):
        raise _UsageError(f"{PROG} modes: error: --sizes must be integers from 1 to 2000, got {args.sizes!r}")
    rows = modes(sizes, seed=args.seed, repeat=max(1, args.repeat))
    print(format_modes(rows))
    if args.json:
        print(json.dumps({"rows": [r.as_dict() for r in rows]}))
    return 0 if all(r.agree for r in rows) else 1


def _cmd_mazur(args) -> int:
    from .mazur import walkthrough

    if args.updates < 1:
        raise _UsageError(f"{PROG} mazur: error: --updates must be at least 1")
    print(walkthrough(args.updates).text)
    return 0


def _cmd_report(args) -> int:
    from .record import report_data
    from .report import write_report

    try:
        hidden = [int(h) for h in args.hidden.split(",") if h.strip()]
    except ValueError:
        raise _UsageError(f"{PROG}: error: --hidden must be comma-separated positive integers, got {args.hidden!r}") from None
    if not hidden or any(h < 1 or h > 64 for h in hidden):
        raise _UsageError(f"{PROG}: error: --hidden must be comma-separated integers from 1 to 64, got {args.hidden!r}")
    if not 1 <= args.steps <= 100000:
        raise _UsageError(f"{PROG}: error: --steps must be from 1 to 100000, got {args.steps}")
    if args.record_every < 1:
        raise _UsageError(f"{PROG}: error: --record-every must be at least 1")
    if args.batch_size is not None and args.batch_size < 1:
        raise _UsageError(f"{PROG}: error: --batch-size must be at least 1")
    if args.lr is not None and not args.lr > 0:
        raise _UsageError(f"{PROG}: error: --lr must be positive")
    t0 = time.perf_counter()
    data = report_data(args.dataset, hidden, args.steps, args.activation, args.lr, args.seed, args.batch_size,
                       args.record_every)
    try:
        write_report(data, args.html)
    except OSError as e:
        print(f"{PROG}: error: cannot write {args.html}: {e.strerror or e}", file=sys.stderr)
        return 1
    import os

    size = os.path.getsize(args.html)
    print(f"wrote {args.html} ({size / 1e6:.2f} MB): {data['dataset']}, network {'-'.join(map(str, data['sizes']))}, "
          f"{len(data['steps'])} recorded steps, loss {data['loss'][0]:.4g} -> {data['loss'][-1]:.4g}, "
          f"{time.perf_counter() - t0:.2f} s")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run `deltaprop explain` with argv (without the 'explain'); return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if not argv:
            _report_parser().print_help()
            return 0
        if argv[0] in SUBCOMMANDS:
            parser = _sub_parser(argv[0])
            args = parser.parse_args(argv[1:])
            return {"mazur": _cmd_mazur, "chain": _cmd_chain, "graph": _cmd_graph, "modes": _cmd_modes}[argv[0]](args)
        if not argv[0].startswith("-"):
            raise _UsageError(f"{PROG}: error: unknown subcommand {argv[0]!r}; valid: {', '.join(SUBCOMMANDS)}, "
                              "or options such as --dataset xor --html report.html")
        return _cmd_report(_report_parser().parse_args(argv))
    except BrokenPipeError:   # e.g. piped into `head`: stop quietly
        import os

        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except OSError:
            pass
        return 0
    except SystemExit as e:   # --help
        return e.code if isinstance(e.code, int) else 0
    except _UsageError as e:
        print(str(e), file=sys.stderr)
        return 2
    except (ValueError, TypeError) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except (RuntimeError, FloatingPointError, OSError) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
