"""`deltaprop explain`: Mazur's example, the chain rule of an expression, forward vs reverse
mode, the graph of an expression, and the interactive HTML training report.

    deltaprop explain mazur [--updates 10000]
    deltaprop explain trace --dataset xor --hidden 4 [--loss mse|bce|ce] [--steps 0] [--sample 0]
    deltaprop explain trace model.safetensors [--sample 0]     (a model written by deltaprop train)
    deltaprop explain chain "exp(sin(x**2))" --at 1.0 [--mode forward]   (or --at x=1,y=2)
    deltaprop explain graph "x * exp(x)" --at 0.5 [--svg out.svg]
    deltaprop explain modes [--sizes 1,10,100] [--repeat 3] [--json]
    deltaprop explain modes "exp(sin(x**2))" --at 1.0      (or a network: --dataset moons --hidden 8,8)
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
SUBCOMMANDS = ("mazur", "trace", "chain", "graph", "modes", "report")
LOSS_CHOICES = ("mse", "bce", "ce", "sse")
DEFAULT_ACTIVATION = "tanh"   # of the report and of trace alike (Mazur's network keeps the post's sigmoid)


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # raise instead of exiting, so main() returns 2
        raise _UsageError(f"{self.prog}: error: {message}")


def _report_parser(prog: str = PROG) -> argparse.ArgumentParser:
    from .record import ACTIVATIONS, LOSSES, REPORT_DATASETS

    p = _Parser(prog=prog, description=(
        "See backpropagation step by step. Subcommands: mazur (Mazur's worked example, every number), "
        "trace (the layer rule delta_l = f'(net_l) * (W_{l+1}^T delta_{l+1}) with every neuron's numbers, "
        "at any depth; 'deltaprop explain trace --help'), chain EXPR --at X (the chain rule written out), graph EXPR --at X (Graphviz DOT/SVG), "
        "modes (forward vs reverse mode). report, or no subcommand: train a small network and write "
        "the interactive HTML report."),
        epilog="Example: deltaprop explain --dataset xor --hidden 4,4 --steps 200 --html report.html")
    p.add_argument("--dataset", choices=REPORT_DATASETS, default="xor",
                   help="data set (default xor; mazur: the post's 2-2-2 network and weights)")
    p.add_argument("--data", default=None, help="your own 2-D points instead: a .csv/.npz/.npy file with two "
                   "feature columns (read by dp.data.load_file)")
    p.add_argument("--target", default=None, help="with --data: the label column (default: the last)")
    p.add_argument("--hidden", default="4,4", help="hidden layer sizes, comma-separated, or 0 for no hidden "
                   "layer (default 4,4)")
    p.add_argument("--loss", choices=LOSSES, default=None, help="bce (sigmoid output, two classes), ce (softmax), "
                   "mse (sigmoid outputs), sse (Mazur's 1/2 sum of squares); default: bce for two classes, ce "
                   "for more, sse for mazur")
    p.add_argument("--steps", type=int, default=200, help="training steps to record (default 200)")
    p.add_argument("--activation", choices=ACTIVATIONS, default=DEFAULT_ACTIVATION,
                   help=f"hidden activation (default {DEFAULT_ACTIVATION}; mazur: the post's sigmoid)")
    p.add_argument("--lr", type=float, default=None, help="SGD learning rate (default per data set)")
    p.add_argument("--seed", type=int, default=0, help="data and initialisation seed (default 0)")
    p.add_argument("--batch-size", type=int, default=None, help="minibatch size (default: full batch)")
    p.add_argument("--record-every", type=int, default=1, help="record every k-th step (default 1)")
    p.add_argument("--html", default="report.html", help="output file (default report.html)")
    p.add_argument("--max-mb", type=float, default=25.0, help="size budget of the file in MB (default 25): "
                   "recorded steps are thinned to stay under it, and the page and stderr say so")
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
            p.add_argument("--mode", choices=("reverse", "forward"), default="reverse",
                           help="reverse (default): the forward values, then the adjoints swept back from dy/dy = 1 "
                           "and the sum over paths; forward: the tangents carried from dx/dx = 1 through the same "
                           "expression, beside the reverse sweep, and the engine's dp.jvp")
        else:
            p.add_argument("--svg", default=None, help="also write SVG to this file (needs Graphviz's dot)")
    elif name == "trace":
        from .record import ACTIVATIONS, DATASETS

        p = _Parser(prog=f"{PROG} trace", description=(
            "The backward pass of a network, layer by layer from the output back: the rule "
            "delta_l = f'(net_l) * (W_{l+1}^T delta_{l+1}), every neuron's numbers for one sample beside "
            "the batch mean, each weight's gradient as delta x input, and mean |delta| per layer "
            "(vanishing or exploding gradients). Either a small network trained here, or MODEL, a file "
            "written by 'deltaprop train'."))
        p.add_argument("model", nargs="?", default=None, help="a model file from 'deltaprop train' (optional)")
        p.add_argument("--dataset", choices=("mazur",) + tuple(DATASETS), default="mazur",
                       help="data set (default mazur: the post's 2-2-2 network and weights)")
        p.add_argument("--hidden", default=None, help="hidden layer sizes, comma-separated; 0 for none "
                       "(default 2 for mazur, else 4)")
        p.add_argument("--activation", choices=ACTIVATIONS, default=None, help="hidden activation "
                       f"(default {DEFAULT_ACTIVATION}, as the report's; mazur: the post's sigmoid)")
        p.add_argument("--loss", choices=LOSS_CHOICES, default=None, help="mse (with sigmoid outputs), bce "
                       "(sigmoid + binary cross-entropy), ce (softmax + cross-entropy), sse (Mazur's 1/2 sum of "
                       "squares); default: sse for mazur, bce for two classes, ce for more")
        p.add_argument("--steps", type=int, default=0, help="SGD steps to train before tracing (default 0)")
        p.add_argument("--lr", type=float, default=None, help="SGD learning rate (default 0.5, circles/spirals 1)")
        p.add_argument("--sample", type=int, default=0, help="the sample whose numbers are shown (default 0)")
        p.add_argument("--weight", default=None, help="also write one weight's derivative by the delta rule, "
                       "e.g. 0.weight[0,0] (add --paths for the sum over paths)")
        p.add_argument("--paths", action="store_true", help="with --weight: the path expansion as well")
        p.add_argument("--seed", type=int, default=0, help="data and initialisation seed (default 0)")
    else:
        from .record import ACTIVATIONS, DATASETS

        p = _Parser(prog=f"{PROG} modes", description="Forward vs reverse mode for f: R^n -> R^m: JVP and VJP "
                    "pass counts for the full Jacobian, agreement, and time. Of your expression (EXPR --at x=1,y=2), "
                    "of a network (--dataset moons --hidden 8,8: its outputs as a function of one sample), or "
                    "without either, of a family of random functions of sizes --sizes.",
                    epilog='Example: deltaprop explain modes "exp(sin(x**2))" --at 1.0')
        p.add_argument("expression", nargs="?", default=None, help='an expression, e.g. "x*y + sin(x)"')
        p.add_argument("--at", default=None, help="the variables' values (x=1,y=2, or 1.0 for x); default x=1")
        p.add_argument("--dataset", choices=DATASETS, default=None, help="a network on this data set instead")
        p.add_argument("--hidden", default="8", help="with --dataset: hidden layer sizes (default 8)")
        p.add_argument("--activation", choices=ACTIVATIONS, default=DEFAULT_ACTIVATION,
                       help=f"with --dataset: hidden activation (default {DEFAULT_ACTIVATION})")
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
    import numpy as np

    from .chain import chain

    ast, env, y, used = _expression(args)
    wrt = [args.wrt] if args.wrt else (used or list(env)[:1])
    for w in wrt:
        if w not in env:
            raise _UsageError(f"{PROG} chain: error: --wrt {w!r} is not a variable given to --at ({', '.join(env)})")
    for k, w in enumerate(wrt):
        if k:
            print()
        with np.errstate(all="ignore"):
            c = chain(y, env[w], names=env, expression=args.expression.strip())
            if args.mode == "reverse":
                print(c)
                continue
            print(c.forward())
            print(f"engine (forward mode, dp.jvp with d{w}/d{w} = 1): d{c.y_name}/d{w} = {_jvp(ast, env, w)}")
    return 0


def _jvp(ast, env: dict, w: str) -> str:
    """d(expr)/dw by the engine's forward mode (dp.jvp), the other variables held at their values."""
    import numpy as np

    import deltaprop as dp
    from .expr import evaluate
    from .numbers import fmt

    held = {k: v.detach() for k, v in env.items() if k != w}

    def f(v):
        out = evaluate(ast, {**held, w: v})
        return out if isinstance(out, dp.Tensor) else dp.tensor(np.float64(out)) * 0.0 + out
    _, tangent = dp.jvp(f, (env[w].detach(),), (dp.tensor(np.float64(1.0)),))
    return fmt(np.asarray(tangent.data if hasattr(tangent, "data") else tangent))


def _cmd_graph(args) -> int:
    from .graph import graph

    ast, env, y, used = _expression(args)
    import numpy as np

    with np.errstate(all="ignore"):
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
    from .modes import expression_modes, format_modes, format_row, modes, network_modes

    if args.expression is not None and args.dataset is not None:
        raise _UsageError(f"{PROG} modes: error: give an expression or --dataset, not both")
    if args.expression is not None:
        args.at = args.at or "x=1.0"
        ast, env, y, used = _expression(args)
        at = {k: float(v.item()) for k, v in env.items()}
        row, J, names = expression_modes(ast, at, repeat=max(1, args.repeat))
        where = ", ".join(f"{k} = {v:g}" for k, v in at.items())
        print(format_row(row, f"f = {args.expression.strip()} at {where}", J, names, ["f"]))
        if args.json:
            print(json.dumps({"rows": [row.as_dict()], "gradient": J.reshape(-1).tolist(), "variables": names}))
        return 0 if row.agree else 1
    if args.at is not None:
        raise _UsageError(f"{PROG} modes: error: --at gives the values of an expression's variables; give the "
                          "expression too")
    if args.dataset is not None:
        from .names import neuron_names
        from .record import _load, build_model

        hidden = _hidden_sizes(args.hidden, allow_zero=True)
        X, y = _load(args.dataset, args.seed)
        classes = int(y.max()) + 1
        sizes = [X.shape[1], *hidden, 1 if classes == 2 else classes]
        model = build_model(sizes, args.activation, args.seed)
        row, J = network_modes(model, X[0], repeat=max(1, args.repeat))
        names = neuron_names(sizes)
        weights = sum(int(p.size) for p in model.parameters())
        print(format_row(row, f"the {'-'.join(map(str, sizes))} network's outputs ({args.activation}, seed "
                         f"{args.seed}) as a function of sample 0 of {args.dataset}", J, names[0], names[-1]))
        print(f"  training differentiates the loss (1 output) by the {weights} weights and biases: forward mode "
              f"would need {weights} passes, reverse mode 1.")
        if args.json:
            print(json.dumps({"rows": [row.as_dict()], "weights": weights}))
        return 0 if row.agree else 1

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


def _hidden_sizes(text: str, allow_zero: bool) -> list[int]:
    """'4,4' -> [4, 4]; '0' -> [] (no hidden layer) when allowed."""
    try:
        hidden = [int(h) for h in text.split(",") if h.strip()]
    except ValueError:
        raise _UsageError(f"{PROG}: error: --hidden must be comma-separated positive integers, got {text!r}") from None
    if allow_zero and hidden == [0]:
        return []
    if not hidden or any(h < 1 or h > 64 for h in hidden):
        zero = " (or 0 for no hidden layer)" if allow_zero else ""
        raise _UsageError(f"{PROG}: error: --hidden must be comma-separated integers from 1 to 64{zero}, got {text!r}")
    return hidden


def _trace_setup(args) -> tuple:
    """(model, X, target, loss name, lr, description) for `explain trace`."""
    import numpy as np

    import deltaprop as dp
    from .record import DEFAULT_LR, _load, build_model

    if args.model is not None:
        return _trace_model_file(args)
    activation = args.activation or DEFAULT_ACTIVATION
    if args.dataset == "mazur":
        if args.activation not in (None, "sigmoid"):
            raise _UsageError(f"{PROG} trace: error: --dataset mazur is the post's sigmoid network; drop "
                              "--activation or pick another data set")
        if args.hidden not in (None, "2"):
            raise _UsageError(f"{PROG} trace: error: --dataset mazur is the post's 2-2-2 network; drop --hidden "
                              "or pick another data set")
        loss = args.loss or "sse"
        if loss in ("bce", "ce"):
            raise _UsageError(f"{PROG} trace: error: Mazur's targets (0.01, 0.99) are not class labels: use "
                              "--loss sse (the post's) or mse")
        from .mazur import mazur_model

        X, T = dp.data.mazur(np.float64)
        return mazur_model(), X, T, loss, args.lr or 0.5, "Mazur's 2-2-2 example (the post's weights)"
    hidden = _hidden_sizes(args.hidden or "4", allow_zero=True)
    X, y = _load(args.dataset, args.seed)
    classes = int(y.max()) + 1
    loss = args.loss or ("bce" if classes == 2 else "ce")
    if loss == "bce" and classes != 2:
        raise _UsageError(f"{PROG} trace: error: --loss bce needs two classes; {args.dataset} has {classes}: use ce")
    sizes = [X.shape[1], *hidden]
    if loss == "ce":
        model, T, name = build_model(sizes + [classes], activation, args.seed), y, "ce"
    elif loss == "bce":
        model, T, name = build_model(sizes + [1], activation, args.seed), y.reshape(-1, 1).astype(float), "bce_logits"
    else:   # mse / sse: sigmoid outputs against 0/1 targets (one-hot for several classes)
        k = 1 if classes == 2 else classes
        T = y.reshape(-1, 1).astype(float) if k == 1 else np.eye(classes)[y]
        model, name = build_model(sizes + [k], activation, args.seed, output_activation="sigmoid"), loss
    lr = args.lr or DEFAULT_LR[args.dataset]
    return model, X, T, name, lr, f"{args.dataset}, network {'-'.join(map(str, sizes + [T.shape[1] if T.ndim > 1 else classes]))}"


def _trace_model_file(args) -> tuple:
    """A network written by `deltaprop train`, on its own training data (its metadata says which)."""
    import numpy as np

    import deltaprop as dp
    from .. import run

    state, meta, config, _ = run.read_model_file(args.model)
    before = dp.get_default_dtype()
    dp.set_default_dtype(np.dtype(meta["dtype"]))
    try:
        model = run._load_weights(args.model, meta, state)
        d = run.load_data(config, normalize=meta["normalize"], target_normalize=meta.get("target_normalize"))
    finally:
        dp.set_default_dtype(before)
    loss = run.loss_function(meta["loss"])
    n = min(len(d.Xtr), 256)   # a batch to average over; the shown sample is one of them
    X = d.Xtr[:n].reshape(n, -1)
    return model, X, d.ytr[:n], loss, args.lr, f"{args.model} ({config.dataset}, first {n} training samples)"


def _cmd_trace(args) -> int:
    import os

    import numpy as np

    import deltaprop as dp
    from .trace import _loss_kind, trace

    if args.steps < 0 or args.steps > 100000:
        raise _UsageError(f"{PROG} trace: error: --steps must be from 0 to 100000, got {args.steps}")
    if args.lr is not None and not args.lr > 0:
        raise _UsageError(f"{PROG} trace: error: --lr must be positive")
    if args.model is not None and not os.path.exists(args.model):
        print(f"{PROG} trace: error: the model file {args.model!r} does not exist (write one with "
              "'deltaprop train --out FILE')", file=sys.stderr)
        return 1
    model, X, T, loss, lr, what = _trace_setup(args)
    if not -len(X) <= args.sample < len(X):
        raise _UsageError(f"{PROG} trace: error: --sample must be from 0 to {len(X) - 1}, got {args.sample}")
    history = None
    if args.steps:
        fn = _loss_kind(loss)[1]
        opt = dp.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr or 0.5)
        Xt, Tt = dp.tensor(X), dp.tensor(T)
        history = []
        with np.errstate(all="ignore"):
            for _ in range(args.steps):
                opt.zero_grad()
                E = fn(model(Xt), Tt)
                history.append(E.item())
                if not np.isfinite(history[-1]):
                    break   # the weights are already ruined: trace them and say why
                E.backward()
                opt.step()
    with np.errstate(all="ignore"):
        tr = trace(model, X, T, loss, lr=lr, sample=args.sample, history=history,
                   dataset=None if args.model is not None else args.dataset)
    if history and not np.isfinite(history[-1]):
        print(f"{PROG} trace: the loss became {history[-1]:g} at step {len(history) - 1} of {args.steps}: "
              "the weights below are those it left", file=sys.stderr)
    print(f"{what}{f', after {args.steps} SGD steps' if args.steps else ''}")
    print(tr)
    if args.weight:
        key, _, idx = args.weight.partition("[")
        try:
            index = tuple(int(i) for i in idx.rstrip("]").split(",") if i.strip()) if idx else (0, 0)
            c = tr.chain(key.strip(), index)
        except (KeyError, IndexError, ValueError) as e:
            msg = e.args[0] if e.args else str(e)
            raise _UsageError(f"{PROG} trace: error: --weight {args.weight!r}: {msg}") from None
        print()
        print(c)
        if args.paths:
            print()
            print(c.paths())
    return 0


def _cmd_mazur(args) -> int:
    from .mazur import walkthrough

    if args.updates < 1:
        raise _UsageError(f"{PROG} mazur: error: --updates must be at least 1")
    print(walkthrough(args.updates).text)
    return 0


def _cmd_report(args) -> int:
    import os

    from pathlib import Path

    from ..io import _atomic_write
    from .record import report_data
    from .report import _fit

    hidden = _hidden_sizes(args.hidden, allow_zero=True)
    if not 1 <= args.steps <= 100000:
        raise _UsageError(f"{PROG}: error: --steps must be from 1 to 100000, got {args.steps}")
    if args.record_every < 1:
        raise _UsageError(f"{PROG}: error: --record-every must be at least 1")
    if args.batch_size is not None and args.batch_size < 1:
        raise _UsageError(f"{PROG}: error: --batch-size must be at least 1")
    if args.lr is not None and not args.lr > 0:
        raise _UsageError(f"{PROG}: error: --lr must be positive")
    if not args.max_mb > 0:
        raise _UsageError(f"{PROG}: error: --max-mb must be positive")
    if args.target is not None and args.data is None:
        raise _UsageError(f"{PROG}: error: --target names a column of --data FILE; give --data too")
    if args.data is not None:  # a file that cannot be read is a failure (exit 1), as in `deltaprop train`
        from ..data import load_file

        try:
            f = load_file(args.data, args.target, task="classification")
        except ValueError as e:
            print(f"{PROG}: error: {e}", file=sys.stderr)
            return 1
        width = f.X.shape[1] if f.X.ndim == 2 else None
        if width != 2:
            print(f"{PROG}: error: {args.data} has {width if width is not None else 'no'} feature column"
                  f"{'' if width == 1 else 's'}, and the report draws points in the plane: give a file with two "
                  "feature columns and a label column (--target COLUMN); to train on more features, use "
                  "'deltaprop train --data FILE'", file=sys.stderr)
            return 1
    t0 = time.perf_counter()
    budget = int(args.max_mb * 1e6)
    data = report_data(args.dataset, hidden, args.steps, args.activation, args.lr, args.seed, args.batch_size,
                       args.record_every, loss=args.loss, data=args.data, target=args.target, max_bytes=budget)
    data, note, text = _fit(data, budget)
    note = note or data.get("note")
    if note:
        print(f"{PROG}: {note}", file=sys.stderr)
    try:
        _atomic_write(Path(args.html), text.encode("utf-8"))
    except OSError as e:
        print(f"{PROG}: error: cannot write {args.html}: {e.strerror or e}", file=sys.stderr)
        return 1
    size = os.path.getsize(args.html)
    print(f"wrote {args.html} ({size / 1e6:.2f} MB): {data['dataset']}, network {'-'.join(map(str, data['sizes']))}, "
          f"{len(data['steps'])} recorded steps, loss {data['loss'][0]:.4g} -> {data['loss'][-1]:.4g}, "
          f"{time.perf_counter() - t0:.2f} s")
    depth = _depth_summary(data)
    if depth:
        print(depth)
    return 0


def _depth_summary(data: dict) -> str:
    """Mean |delta| per layer at the last recorded step (the engine's trace), and what the run
    teaches (a learning rate too large, data no line separates, a local minimum, or vanishing
    or exploding gradients)."""
    from .record import run_trace

    tr = run_trace(data)
    lines = tr._depth_lines()
    return "\n".join([f"at step {data['steps'][-1]}: " + lines[0]] + lines[1:])


def main(argv: Sequence[str] | None = None) -> int:
    """Run `deltaprop explain` with argv (without the 'explain'); return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if not argv:
            _report_parser().print_help()
            return 0
        if argv[0] == "report":
            return _cmd_report(_report_parser(f"{PROG} report").parse_args(argv[1:]))
        if argv[0] in SUBCOMMANDS:
            parser = _sub_parser(argv[0])
            args = parser.parse_args(argv[1:])
            return {"mazur": _cmd_mazur, "trace": _cmd_trace, "chain": _cmd_chain, "graph": _cmd_graph, "modes": _cmd_modes}[argv[0]](args)
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
