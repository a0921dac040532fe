"""The `deltaprop` command: train, evaluate, predict, explain, bench. It parses the arguments, calls
deltaprop.run (where the runs, files and checks live) and prints.

Exit codes: 0 success; 2 usage error (unknown dataset/option, bad value: the message lists the
valid ones); 1 a failure (a loss that became NaN/Inf, a model file that does not match its
metadata, a missing or unreadable file). User errors never print a traceback.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from typing import Any, Sequence

from deltaprop import plot as dp_plot, run

PROG = "deltaprop"
DATASETS = run.BUILTIN + ("mnist",)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors: 'deltaprop train: error: ...; see ... --help' (exit 2)."""

    commands: dict[str, argparse.ArgumentParser]  # the top-level parser's subcommand parsers

    def error(self, message: str) -> Any:  # noqa: D102 (argparse API)
        self.exit(2, f"{self.prog}: error: {message}; see '{self.prog} --help'\n")


class UsageError(Exception):
    """A bad combination of options (exit 2)."""


def _number(kind: type, ok: Any, want: str) -> Any:
    def parse(text: str) -> Any:
        try:
            v = kind(text)
        except ValueError:
            v = None
        if v is None or not ok(v):
            raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected {want}")
        return v
    return parse


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = () if text.strip() in ("", "0") else tuple(int(part) for part in text.split(","))
    except ValueError:
        sizes = (0,)
    if any(n < 1 for n in sizes):
        raise argparse.ArgumentTypeError(f"invalid hidden sizes {text!r}: use comma-separated positive integers "
                                         "like 64 or 16,16 (\"\" or 0 for no hidden layer)")
    return sizes


def _delimiter(text: str) -> str:
    """--delimiter: one character; 'tab' or a typed backslash-t is a tab."""
    if text in ("tab", "\\t"):
        return "\t"
    if len(text) != 1 or text in "\"\r\n":
        raise argparse.ArgumentTypeError(f"invalid delimiter {text!r}: expected one character such as ',' or ';' "
                                         "(tab: 'tab' or '\\t')")
    return text


#: The CSV options of train, evaluate and predict (flag, argparse keywords, help).
_CSV_OPTIONS: list[tuple[str, dict[str, Any], str]] = [
    ("--delimiter", {"type": _delimiter, "metavar": "CHAR"}, "the CSV's field delimiter, e.g. ';' or tab "
     "(default: the one of , ; tab | that splits every record alike)"),
    ("--header", {"action": argparse.BooleanOptionalAction}, "--no-header: the CSV has no header row (its "
     "columns are named col0, col1, ...); --header: its first line is the header even if it holds numbers "
     "(default: the first line is the header, refused when it looks like data)"),
]


def _fmt_hidden(h: Sequence[int]) -> str:
    return ",".join(str(n) for n in h) if h else '""'


def _per_dataset(field: str, fmt: Any = str) -> str:
    return "; ".join(f"{name} {fmt(getattr(d, field))}" for name, d in run.DEFAULTS.items())


_POSITIVE_INT = _number(int, lambda v: v >= 1, "a positive integer")
_JSON_HELP = "print one JSON object with the results as the last line of stdout (default: off)"


def build_parser() -> _Parser:
    """The argparse parser of the `deltaprop` command and its subcommands."""
    from deltaprop import __version__

    parser = _Parser(prog=PROG, description="Backpropagation you can see: train and evaluate networks on built-in "
                     "data or your own files, explain the chain rule step by step, benchmark against peers.",
                     epilog="Run 'deltaprop COMMAND --help' for a command's options. Exit codes: 0 success, "
                            "1 failure (e.g. the loss became NaN), 2 usage error.")
    parser.add_argument("--version", action="version", version=f"deltaprop {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    t = sub.add_parser("train", help="train a network (default: an MLP on the embedded digits) and save it",
                       description="Train an MLP or a CNN on a built-in dataset or your own file with a progress "
                       "bar (stderr); print the test accuracy (regression: RMSE and R2); write the model "
                       "(safetensors, with the metadata 'evaluate', 'predict' and '--resume' need) and a plot of "
                       "the curves. Options left out take the dataset's defaults, shown below.",
                       epilog="Examples: deltaprop train | deltaprop train --data cancer.csv --target diagnosis | "
                              "deltaprop train --model cnn | deltaprop train --epochs 2 --checkpoint ckpt.safetensors"
                              " && deltaprop train --resume ckpt.safetensors --epochs 4")
    batch = _per_dataset("batch_size", lambda b: "full batch" if b == 0 else str(b))
    options: list[tuple[str, dict[str, Any], str]] = [
        ("--dataset", {"choices": DATASETS}, "built-in dataset (default: digits, an 80/20 split seeded by --seed; "
         "xor and mazur are tiny and train on their test points; mnist reads --data-dir)"),
        ("--data", {"metavar": "FILE"}, "train on your own file instead: .csv (header row), .npz (arrays X, y) or "
         ".npy (X.npy with y.npy beside it) (default: none)"),
        ("--target", {"metavar": "COL"}, "the target column of --data (default: the last column)"),
        ("--task", {"choices": ("classification", "regression")}, "what to learn from --data (default: "
         "classification for text or few integer labels, else regression)"),
        *_CSV_OPTIONS,
        ("--data-dir", {"metavar": "DIR"}, "the MNIST IDX files (or .npz) of --dataset mnist (default: none)"),
        ("--model", {"choices": run.MODELS}, "mlp, or cnn (a small CNN for images: digits, MNIST) (default: mlp)"),
        ("--hidden", {"type": _sizes, "metavar": "SIZES"}, "hidden layer sizes, comma-separated ('' or 0 for none; "
         f"cnn: its one dense layer) (default: {_per_dataset('hidden', _fmt_hidden)})"),
        ("--activation", {"choices": run.ACTIVATIONS}, f"hidden activation (default: {_per_dataset('activation')})"),
        ("--optimizer", {"choices": run.OPTIMIZERS}, "optimizer, with PyTorch's defaults besides --lr (default: "
         f"{_per_dataset('optimizer')})"),
        ("--lr", {"type": _number(float, lambda v: math.isfinite(v) and v > 0, "a positive number such as 0.01")},
         f"learning rate (default: {_per_dataset('lr')})"),
        ("--momentum", {"type": _number(float, lambda v: 0 <= v < 1, "a number in [0, 1) such as 0.9")},
         f"momentum of --optimizer sgd, in [0, 1) (default: {_per_dataset('momentum')})"),
        ("--weight-decay", {"type": _number(float, lambda v: math.isfinite(v) and v >= 0, "a number >= 0 such as "
                                            "1e-4"), "metavar": "WD"},
         "L2 penalty (AdamW: decoupled) (default: the optimizer's, 0; adamw 0.01)"),
        ("--scheduler", {"choices": run.SCHEDULERS}, "learning-rate schedule: step (x0.1 every third of the "
         "epochs), cosine (to 0), plateau (x0.1 after 5 epochs without a better validation loss) (default: none; "
         "cnn: cosine)"),
        ("--early-stopping", {"type": _POSITIVE_INT, "metavar": "PATIENCE"}, "hold out 10%% of the training split "
         "and stop after PATIENCE epochs without a better validation loss, keeping the best model (default: off)"),
        ("--epochs", {"type": _POSITIVE_INT}, "total number of epochs, counting those of a --resume checkpoint "
         f"(default: {_per_dataset('epochs')})"),
        ("--batch-size", {"type": _number(int, lambda v: v >= 0, "a non-negative integer (0 = full batch)"),
                          "metavar": "N"}, f"minibatch size, 0 for full batch (default: {batch})"),
        ("--seed", {"type": _number(int, lambda v: v >= 0, "a non-negative integer")}, "seed of the data, the "
         "split, the initial weights and the shuffling; one seed makes a run bit-identical (default: 0)"),
        ("--dtype", {"choices": run.DTYPES}, "floating-point precision (default: float32)"),
        ("--out", {"default": "model.safetensors", "metavar": "PATH"}, "where to write the model (default: "
         "%(default)s)"),
        ("--plot", {"default": "training.png", "metavar": "PATH"}, "where to write the loss/accuracy plot, needs "
         "matplotlib (default: %(default)s)"),
        ("--no-plot", {"action": "store_true"}, "do not write the plot (default: off)"),
        ("--no-compile", {"action": "store_true"}, "run every training step eagerly instead of recording it once "
         "and replaying it (dp.compile; the same numbers), for debugging (default: off)"),
        ("--checkpoint", {"metavar": "PATH"}, "also write a full checkpoint (model, optimizer and schedule state, "
         "epoch) to resume from (default: none)"),
        ("--resume", {"metavar": "CKPT"}, "continue training from a checkpoint written with --checkpoint, up to "
         "--epochs in total; architecture, data and seed come from the checkpoint (default: none)"),
        ("--json", {"action": "store_true"}, _JSON_HELP),
    ]
    for flag, kw, text in options:
        t.add_argument(flag, help=text, **kw)
    e = sub.add_parser("evaluate", help="evaluate a saved model on its test split or on a file",
                       description="Rebuild the network from a model file's metadata (written by 'deltaprop "
                       "train'), re-create the same data split (or read --data) and print the accuracy and loss, "
                       "with per-class precision, recall, F1 and support and the confusion matrix (regression: "
                       "RMSE, MAE and R2). Given its own training file, --data also scores the rows that "
                       "training held out on their own, and says how many rows training saw.")
    p = sub.add_parser("predict", help="predict every row of a file with a saved model",
                       description="Apply a model file to every row of --data (preprocessed as in training) and "
                       "write the predictions (and class probabilities) as CSV.")
    for cmd in (e, p):
        cmd.add_argument("model", metavar="MODEL", help="a model file (or checkpoint) written by 'deltaprop train'")
        cmd.add_argument("--data", metavar="FILE", required=cmd is p, help="a .csv/.npz/.npy file with the model's "
                         f"feature columns (default: {'required' if cmd is p else 'the test split of its data'})")
        cmd.add_argument("--target", metavar="COL", help="the target column of --data (default: the model's)")
        for flag, kw, text in _CSV_OPTIONS:
            cmd.add_argument(flag, help=text.replace("(default: ", "(default: as the training file; else "), **kw)
        cmd.add_argument("--json", action="store_true", help=_JSON_HELP)
    p.add_argument("--out", default="predictions.csv", metavar="PATH", help="where to write the CSV (default: "
                   "%(default)s)")
    sub.add_parser("explain", add_help=False, help="see backpropagation step by step (deltaprop explain --help)")
    sub.add_parser("bench", add_help=False, help="benchmark against the installed peers (deltaprop bench --help)")
    sub.add_parser("export", add_help=False, help="write a model file as ONNX (deltaprop export --help)")
    sub.add_parser("playground", add_help=False, help="train live in the browser on the engine (deltaprop "
                   "playground --help)")
    parser.commands = {"train": t, "evaluate": e, "predict": p}
    return parser


# ----------------------------------------------------------------------------- output helpers

_WORLD = (0, 1)  # (rank, size) of a data-parallel `train` under mpiexec: only rank 0 prints


def _print(*args: Any, **kw: Any) -> None:
    if _WORLD[0] == 0:
        print(*args, **kw, flush=True)


def _failure(msg: str, code: int, command: str = "") -> int:
    """A failure that may be this rank's alone: printed by whichever rank has it; in a data-parallel
    run every rank is then ended (MPI_Abort), so that none waits for it forever."""
    rank, size = _WORLD
    where = f" (rank {rank} of {size})" if size > 1 else ""
    print(f"{PROG}{command}: error{where}: {msg}", file=sys.stderr, flush=True)
    if size > 1:
        from deltaprop import distributed

        distributed._abort(code)
    return code


def _json_line(obj: dict[str, Any]) -> None:
    if _WORLD[0] != 0:
        return

    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        return [clean(x) for x in v] if isinstance(v, (list, tuple)) else v
    sys.stdout.write(json.dumps(clean(obj)) + "\n")
    sys.stdout.flush()


def _scores(res: dict[str, Any], split: str = "") -> str:
    """'test accuracy: 0.9750' or 'test RMSE: 1.23  test R2: 0.87' (split "" for unprefixed keys)."""
    pre, name = (f"{split}_", f"{split} ") if split else ("", "")
    if f"{pre}accuracy" in res:
        return f"{name}accuracy: {res[f'{pre}accuracy']:.4f}"
    mae = f"  {name}MAE: {res[f'{pre}mae']:.6g}" if f"{pre}mae" in res else ""
    return f"{name}RMSE: {res[f'{pre}rmse']:.6g}{mae}  {name}R2: {res[f'{pre}r2']:.4f}"


class _Bar(run.Callback):
    """The tqdm progress bar on stderr (when it is a terminal and tqdm is installed)."""

    def __init__(self, total: int, start: int, epochs: int, steps: int) -> None:
        from tqdm import tqdm

        self.epochs, self.steps, self.acc, self.loss = epochs, steps, "", ""
        self.bar = tqdm(total=total, file=sys.stderr, unit="batch", leave=True, dynamic_ncols=True,
                        desc=f"epoch {start + 1}/{epochs}")

    def on_batch_end(self, epoch: int, step: int, loss: float) -> None:
        self.bar.set_description_str(f"epoch {epoch}/{self.epochs} batch {step}/{self.steps}", refresh=False)
        self.loss = f"loss={loss:.4g}"
        self.bar.set_postfix_str(f"{self.loss}{self.acc}", refresh=False)
        self.bar.update(1)

    def on_epoch_end(self, epoch: int, record: dict[str, float]) -> None:
        # The epoch's own test score, shown now (not only from the next epoch's first batch, which
        # the last epoch never has): the bar ends on the final numbers.
        key = "test_accuracy" if "test_accuracy" in record else "test_rmse"
        self.acc = f" {key}={record[key]:.4f}" if key in record else ""
        self.bar.set_postfix_str(f"{self.loss}{self.acc}", refresh=True)


# ----------------------------------------------------------------------------- commands

def _train_config(args: argparse.Namespace) -> tuple[run.RunConfig, int]:
    """The run's config (and the epoch it starts from) from the options, or from the --resume file."""
    given = {"hidden": args.hidden, "activation": args.activation, "optimizer": args.optimizer, "lr": args.lr,
             "momentum": args.momentum, "weight_decay": args.weight_decay, "scheduler": args.scheduler,
             "early_stopping": args.early_stopping, "batch_size": args.batch_size, "seed": args.seed,
             "dtype": args.dtype}
    if args.resume is not None:
        cfg, ckpt = run.resume_config(args.resume, args.epochs, dataset=args.dataset, model=args.model, **given)
        return cfg, ckpt.epoch
    if args.data and args.dataset:
        raise UsageError(f"--data and --dataset {args.dataset} exclude each other: --data trains on your file")
    if (args.dataset == "mnist") != bool(args.data_dir):
        raise UsageError("--dataset mnist needs --data-dir DIR (the MNIST files), and --data-dir needs --dataset mnist")
    if (args.target or args.task or args.delimiter or args.header is not None) and not args.data:
        raise UsageError("--target, --task, --delimiter and --header/--no-header apply to --data FILE only")
    dataset, model = "file" if args.data else args.dataset or "digits", args.model or "mlp"
    optimizer = args.optimizer or run.defaults_for(dataset, model).optimizer
    if args.momentum is not None and optimizer != "sgd":
        raise UsageError(f"--momentum applies to --optimizer sgd only (this run uses {optimizer})")
    return run.RunConfig.for_dataset(dataset, model, data=args.data or args.data_dir, target=args.target,
                                     task=args.task, delimiter=args.delimiter, header=args.header,
                                     epochs=args.epochs, **given), 0


def _check_outputs(args: argparse.Namespace) -> str | None:
    """Before any work: the paths the run writes are usable (the library checks); the plot path."""
    if not args.out:
        raise UsageError(f"--out {args.out!r} is not a file path; give one such as model.safetensors")
    plot = None if args.no_plot else args.plot
    run.check_outputs({"--out": args.out, "--checkpoint": args.checkpoint, "--plot": plot})
    try:
        if plot:
            dp_plot.check_plot_path(plot)
    except ValueError as exc:
        raise UsageError(f"--plot {exc}") from None
    return plot


def _cmd_train(args: argparse.Namespace) -> int:
    global _WORLD
    t0 = time.perf_counter()
    _WORLD = run.join_mpi_world()  # under mpiexec: data-parallel, and only rank 0 prints and writes
    cfg, start = _train_config(args)
    plot = _check_outputs(args) if _WORLD[0] == 0 else None
    callbacks: list[_Bar] = []
    data = run.load_data(cfg)
    try:
        if sys.stderr.isatty() and _WORLD[0] == 0:
            steps = -(-len(data.Xtr) // min(cfg.batch_size or len(data.Xtr), len(data.Xtr)))
            callbacks.append(_Bar((cfg.epochs - start) * steps, start, cfg.epochs, steps))
    except ImportError:  # no tqdm: no bar
        pass
    try:
        r = run.train_run(cfg, resume=args.resume, out=args.out, checkpoint=args.checkpoint, callbacks=callbacks,
                          data=data, compile=not args.no_compile)
    except run.ModelTooBigError as exc:
        raise UsageError(f"--hidden {_fmt_hidden(cfg.hidden)} is too big: {exc.why}; use smaller hidden sizes")
    except run.DivergedError as exc:
        if args.json:
            _json_line({"error": str(exc), "failed_epoch": exc.epoch, "failed_step": exc.step,
                        "epochs": exc.kept_epoch, "dataset": cfg.dataset, "model_path": args.out})
        _print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    finally:
        for cb in callbacks:
            cb.bar.close()
    for note in r.notes:
        _print(f"note: {note}", file=sys.stderr)
    cfg, meta, m = r.config, r.metadata, r.metrics
    seconds = time.perf_counter() - t0
    res = {**r.summary(), "seconds": round(seconds, 4), "model_path": args.out, "resumed_from": args.resume,
           "checkpoint_path": args.checkpoint, "plot_path": None, "world_size": _WORLD[1]}
    res["warning"] = _lr_warning(r)
    out = sys.stderr if args.json else sys.stdout
    arch = "-".join(str(s) for s in meta["sizes"])
    mom = f" momentum={cfg.momentum:g}" if cfg.momentum else ""
    kind = "" if cfg.model == "mlp" else f"{cfg.model} "
    _print(f"{run.data_label(meta)}: {kind}{arch} {cfg.activation}, {cfg.optimizer} lr={cfg.lr:g}{mom}, batch "
           f"{meta['batch_size']}, {meta['epochs']} epochs, seed {cfg.seed}, {cfg.dtype}", file=out)
    train = _scores(m, "train").replace("train accuracy:", "train accuracy")
    _print(f"train loss {m['train_loss']:.6g}  {train}  ({seconds:.2f} s)", file=out)
    held = "train = test points" if cfg.dataset in run.TINY else f"{res['n_test']} held-out samples"
    best = f", best epoch {res['best_epoch']}" if cfg.early_stopping else ""
    _print(f"{_scores(m, 'test')}  (test loss {m['test_loss']:.6g}, {held}{best})", file=out)
    _print(f"saved model to {args.out}", file=out)
    if args.checkpoint:
        _print(f"saved checkpoint to {args.checkpoint}", file=out)
    if plot:
        try:
            dp_plot.plot_history(r.history, plot, f"deltaprop train: {run.data_label(meta)} {kind}{arch} "
                                                  f"{cfg.activation}, {cfg.optimizer} lr={cfg.lr:g}")
            res["plot_path"] = plot
            _print(f"saved plot to {plot}", file=out)
        except ImportError as exc:
            _print(f"note: {exc}", file=sys.stderr)
    if res["warning"]:   # last, where it is seen: the run finished, but it did not learn
        _print(f"warning: {res['warning']}", file=sys.stderr)
    if args.json:
        _json_line(res)
    return 0


def _report_text(report: dict[str, Any] | None, title: str) -> str:
    """The per-class table and the confusion matrix of a classification report, under a title."""
    from deltaprop import metrics

    if not report or "confusion_matrix" not in report:
        return ""
    return (f"\n{title}:\n{metrics.format_classification_report(report)}\n\nconfusion matrix (rows: true "
            f"label, columns: predicted label):\n{metrics.format_confusion_matrix(report)}")


def _csv_needs_data(args: argparse.Namespace) -> None:
    if (args.delimiter or args.header is not None) and not args.data:
        raise UsageError("--delimiter and --header/--no-header apply to --data FILE only (the model's own split is "
                         "read as it was in training)")


def _lr_warning(r: Any) -> str | None:
    """A loss that rose, or ended far above a network that only guesses: the learning rate is too
    large (deltaprop.explain.lessons, the lesson the report and the trace give too); None if not."""
    from .explain.lessons import training_lesson

    ce = r.metadata["loss"] == "cross_entropy"
    lesson = training_lesson(r.history.metrics.get("train_loss") or [], lr=r.config.lr, loss="ce" if ce else None,
                             classes=r.metadata["sizes"][-1] if ce else 0, unit="epoch")
    return lesson.text if lesson is not None and lesson.kind in ("lr_too_large", "diverged") else None


def _cmd_evaluate(args: argparse.Namespace) -> int:
    _csv_needs_data(args)
    res = run.evaluate_file(args.model, data=args.data, target=args.target, delimiter=args.delimiter,
                            header=args.header)
    out = sys.stderr if args.json else sys.stdout
    _print(f"{args.model}: {res['data_name']} {'-'.join(map(str, res['sizes']))} {res['activation']}, "
           f"{res['epochs']} epochs, {res['dtype']}", file=out)
    if args.data:
        name = res["data_name"]
        seen = (f", {res['n_seen']} of them seen in training" if "n_seen" in res else "")
        _print(f"{_scores(res)}  (loss {res['loss']:.6g}, every row of {name}: {res['n']} samples{seen})", file=out)
        if "heldout" in res:
            h = res["heldout"]
            _print(f"held-out {_scores(h)}  (loss {h['loss']:.6g}, the {h['n']} rows of {name} not seen in "
                   f"training)", file=out)
            text = _report_text(h.get("report"), f"held-out rows of {name} ({h['n']})")
        else:
            text = _report_text(res.get("report"), f"every row of {name} ({res['n']})")
    else:
        held = ("train = test points" if res["dataset"] in run.TINY
                else f"{res['n_test']} held-out samples, split seed {res['seed']}")
        _print(f"{_scores(res, 'test')}  (test loss {res['test_loss']:.6g}, {held})", file=out)
        _print(f"{_scores(res, 'train')}  (train loss {res['train_loss_eval']:.6g})", file=out)
        text = _report_text(res.get("test_report"), f"test split of {res['data_name']} ({res['n_test']} rows)")
    if text:
        _print(text, file=out)
    if args.json:
        _json_line(res)
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    run.check_outputs({"--out": args.out})
    res = run.predict_file(args.model, args.data, out=args.out, target=args.target, delimiter=args.delimiter,
                           header=args.header)
    _print(f"wrote {res['n']} predictions of {args.model} for {args.data} to {args.out}",
           file=sys.stderr if args.json else sys.stdout)
    if args.json:
        _json_line({k: v for k, v in res.items() if k not in ("predictions", "probabilities")})
    return 0


def _delegate(module: str, argv: list[str]) -> int:
    import importlib

    try:
        fn = getattr(importlib.import_module(module), "main", None)
    except ModuleNotFoundError as exc:
        if not (exc.name and module.startswith(exc.name) or exc.name == module):
            raise
        fn = None
    if fn is None:
        _print(f"{PROG}: error: '{module}' is not available in this installation of deltaprop (the command is "
               "not built yet)", file=sys.stderr)
        return 1
    return int(fn(argv) or 0)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `deltaprop` command with `argv` (default: sys.argv[1:]); return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("explain", "bench", "export", "playground"):
        return _delegate({"explain": "deltaprop.explain.cli", "bench": "deltaprop.bench",
                          "export": "deltaprop.onnx", "playground": "deltaprop.playground"}[argv[0]], argv[1:])
    parser = build_parser()
    if not argv:
        parser.print_help()
        return 0
    try:
        args, extra = parser.parse_known_args(argv)
        if extra:  # name the command's options too (DESIGN: the message lists the valid ones)
            which = parser.commands.get(args.command, parser)
            opts = [o for a in which._actions for o in a.option_strings if o.startswith("--")]
            which.error(f"unrecognized argument(s): {' '.join(extra)} (the options are: {', '.join(opts)})")
    except SystemExit as exc:  # --help, --version, usage errors (argparse printed the message)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return {"train": _cmd_train, "evaluate": _cmd_evaluate, "predict": _cmd_predict}[args.command](args)
    except (UsageError, run.RunConfigError) as exc:
        msg, field = str(exc), getattr(exc, "field", None)
        if field and msg.startswith(field):  # the library names the field; the user typed the option
            msg = f"--{field.replace('_', '-')}{msg[len(field):]}".replace("leave it out", f"leave --{field} out")
        return _failure(f"{msg}; see '{PROG} {args.command} --help'", 2, f" {args.command}")
    except KeyboardInterrupt:
        if _WORLD[1] > 1:
            return _failure("interrupted", 130)
        _print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except MemoryError as exc:  # the size checks come first; this is the rest (e.g. a huge batch)
        why = f" ({exc})" if str(exc) else ""
        todo = ("use a smaller network (--hidden) or --batch-size" if args.command == "train"
                else "free some memory or use a machine with more")
        return _failure(f"out of memory{why}; {todo}", 1)
    except (ValueError, OSError, FloatingPointError) as exc:
        msg = str(exc)
        if isinstance(exc, OSError) and exc.filename and exc.strerror:
            msg = f"{exc.strerror}: {exc.filename!r}"
        return _failure(msg, 1)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
