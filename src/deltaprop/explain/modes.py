"""Forward vs reverse mode: what the full Jacobian of f: R^n -> R^m costs in each.

Forward mode pushes one tangent through f per input direction, so the Jacobian takes n JVP
passes (one column J e_i each); reverse mode pulls one cotangent back per output, so it
takes m VJP passes (one row e_j^T J each). Both must give the same J.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable, Iterable

import numpy as np

__all__ = ["ModeRow", "ModeTable", "modes", "format_modes", "make_function", "mode_row", "expression_modes",
           "network_modes", "format_row"]


@dataclass
class ModeRow:
    """One f: R^n -> R^m: passes counted while the Jacobians were built, agreement, time."""

    n: int
    m: int
    jvp_passes: int          # forward passes carrying a tangent (n of them)
    vjp_passes: int          # backward passes from a cotangent (m of them)
    max_abs_diff: float      # max |J_fwd - J_rev|
    agree: bool
    fwd_seconds: float
    rev_seconds: float

    @property
    def fewer_passes(self) -> str:
        """The mode that needs fewer passes ("fwd", "rev" or "tie")."""
        return "fwd" if self.n < self.m else "rev" if self.m < self.n else "tie"

    def as_dict(self) -> dict:
        """The row as a plain dict (JSON-ready), with fewer_passes added."""
        d = asdict(self)
        d["fewer_passes"] = self.fewer_passes
        return d


class ModeTable(list):
    """The rows of `modes()` (a list of ModeRow); str() is the aligned table with its reading,
    and a notebook shows it as an HTML table."""

    def __str__(self) -> str:
        return format_modes(list(self))

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(str(self))

    def to_markdown(self) -> str:
        """The rows as a Markdown table."""
        head = ["n", "m", "JVP passes (fwd)", "VJP passes (rev)", "fewer passes", "agree (max |diff|)",
                "fwd ms", "rev ms"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
        for r in self:
            lines.append(f"| {r.n} | {r.m} | {r.jvp_passes} | {r.vjp_passes} | {r.fewer_passes} | "
                         f"{'yes' if r.agree else 'NO'} ({'%.2g' % r.max_abs_diff}) | {r.fwd_seconds * 1e3:.2f} | "
                         f"{r.rev_seconds * 1e3:.2f} |")
        return "\n".join(lines) + "\n\n" + _READING + "\n"

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    def _repr_html_(self) -> str:
        import html

        head = ["n", "m", "JVP passes (fwd)", "VJP passes (rev)", "fewer passes", "Jacobians agree (max |diff|)",
                "fwd time", "rev time"]
        rows = "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in (
                r.n, r.m, r.jvp_passes, r.vjp_passes, r.fewer_passes,
                f"{'yes' if r.agree else 'NO'} ({'%.2g' % r.max_abs_diff})", f"{r.fwd_seconds * 1e3:.2f} ms",
                f"{r.rev_seconds * 1e3:.2f} ms")) + "</tr>" for r in self)
        return ('<div class="deltaprop-modes"><table><thead><tr>' + "".join(f"<th>{h}</th>" for h in head)
                + f"</tr></thead><tbody>{rows}</tbody></table><p>{html.escape(_READING)}</p></div>")


_READING = ("f(x) = tanh(W2 tanh(W1 x + b1)), f: R^n -> R^m. Forward mode builds the Jacobian one column per JVP "
            "(n passes); reverse mode one row per VJP (m passes). Many inputs and few outputs (a loss: m = 1) favour "
            "reverse mode, which is why training uses backpropagation; few inputs and many outputs favour forward mode.")


def make_function(n: int, m: int, hidden: int = 32, seed: int = 0) -> Callable:
    """f(x) = tanh(W2 tanh(W1 x + b1)) with seeded W1 (hidden, n), W2 (m, hidden): R^n -> R^m."""
    rng = np.random.default_rng([seed, n, m])
    W1 = rng.normal(0.0, 1.0 / np.sqrt(n), size=(hidden, n))
    b1 = rng.normal(0.0, 0.1, size=hidden)
    W2 = rng.normal(0.0, 1.0 / np.sqrt(hidden), size=(m, hidden))

    def f(x):
        import deltaprop as dp

        h = dp.tanh(dp.matmul(W1, x) + b1)
        return dp.tanh(dp.matmul(W2, h))
    return f


def _counted(f: Callable, mode: str):
    """Wrap f to count the passes dp.jacobian makes: in forward mode each call of f carries one
    tangent (one JVP pass); in reverse mode each backward pass through f's output fires its hook
    once (one VJP pass)."""
    counts = {"jvp": 0, "vjp": 0}

    def g(x):
        out = f(x)
        if mode == "fwd":
            counts["jvp"] += 1
        elif getattr(out, "requires_grad", False):
            def hook(grad):
                counts["vjp"] += 1
            out.register_hook(hook)
        return out
    return g, counts


def modes(sizes: Iterable[int] = (1, 10, 100), hidden: int = 32, seed: int = 0, repeat: int = 1,
          atol: float = 1e-10) -> ModeTable:
    """One row per (n, m) in sizes x sizes: Jacobian of make_function(n, m) by n JVPs and by m VJPs.

    Times are the best of `repeat` runs (perf_counter); passes are counted, not assumed."""
    import deltaprop as dp

    rows = ModeTable()
    sizes = list(sizes)
    for n in sizes:
        for m in sizes:
            f = make_function(n, m, hidden, seed)
            x = np.random.default_rng([seed, n, m, 1]).normal(size=n)
            rows.append(mode_row(f, x, m, repeat, atol)[0])
    return rows


def mode_row(f: Callable, x: np.ndarray, m: int, repeat: int = 1, atol: float = 1e-10) -> tuple[ModeRow, np.ndarray]:
    """(row, J) for f: R^n -> R^m at x (a 1-D array): the Jacobian J (m, n) by n JVPs and by m
    VJPs, the passes counted while it was built, agreement and the best time of `repeat` runs."""
    import deltaprop as dp

    n = int(np.size(x))
    best, J, counts = {}, {}, {}
    for mode in ("fwd", "rev"):
        t_best = np.inf
        for _ in range(max(1, repeat)):
            g, c = _counted(f, mode)
            t0 = time.perf_counter()
            Jm = dp.jacobian(g, mode=mode)(x)
            t_best = min(t_best, time.perf_counter() - t0)
        J[mode] = np.asarray(Jm.data if hasattr(Jm, "data") else Jm).reshape(m, n)
        best[mode] = t_best
        counts[mode] = c
    diff = float(np.max(np.abs(J["fwd"] - J["rev"]))) if J["fwd"].size else 0.0
    row = ModeRow(n, m, counts["fwd"]["jvp"], counts["rev"]["vjp"], diff,
                  bool(np.isfinite(diff) and diff <= atol * max(1.0, float(np.max(np.abs(J["rev"]), initial=0.0)))),
                  best["fwd"], best["rev"])
    return row, J["rev"]


def expression_modes(ast, at: dict, repeat: int = 1, atol: float = 1e-10) -> tuple[ModeRow, np.ndarray, list]:
    """Forward vs reverse mode on a parsed expression (explain.expr) of the variables in `at`
    (name -> value): f: R^n -> R with n = len(at). Returns (row, gradient (1, n), names)."""
    import deltaprop as dp
    from .expr import evaluate

    names = list(at)

    def f(v):
        out = evaluate(ast, {k: v[i] for i, k in enumerate(names)})
        return out if isinstance(out, dp.Tensor) else v.sum() * 0.0 + out
    x = np.array([float(at[k]) for k in names], dtype=np.float64)
    with np.errstate(all="ignore"):
        row, J = mode_row(f, x, 1, repeat, atol)
    return row, J, names


def network_modes(model, x: np.ndarray, repeat: int = 1, atol: float = 1e-10) -> tuple[ModeRow, np.ndarray]:
    """Forward vs reverse mode on a network's outputs as a function of one sample x (R^n -> R^m)."""
    import deltaprop as dp

    m = int(model(dp.tensor(np.asarray(x, dtype=np.float64).reshape(1, -1))).size)

    def f(v):
        return model(v.reshape(1, -1)).reshape(-1)
    return mode_row(f, np.asarray(x, dtype=np.float64).reshape(-1), m, repeat, atol)


def format_row(row: ModeRow, what: str, J: np.ndarray, inputs: list, outputs: list) -> str:
    """One function's modes as text: what f is, both Jacobians' pass counts, J, agreement, time."""
    from .numbers import fmt

    n, m = row.n, row.m
    lines = [f"{what}: f: R^{n} -> R^{m}",
             f"  forward mode: {row.jvp_passes} JVP pass{'es' if row.jvp_passes != 1 else ''} (one per input, "
             f"each carrying a tangent e_i from the inputs to the outputs: one column of J)",
             f"  reverse mode: {row.vjp_passes} VJP pass{'es' if row.vjp_passes != 1 else ''} (one per output, "
             f"each sweeping an adjoint e_j back from the outputs: one row of J)"]
    shown = [(i, j) for j in range(m) for i in range(n)][:12]
    for i, j in shown:
        lines.append(f"  d{outputs[j]}/d{inputs[i]} = {fmt(J[j, i])}")
    if n * m > len(shown):
        lines.append(f"  ... {n * m - len(shown)} more entries of J")
    lines.append(f"  the two Jacobians {'agree' if row.agree else 'DIFFER'} (max |diff| {'%.2g' % row.max_abs_diff}); "
                 f"time: forward {row.fwd_seconds * 1e3:.2f} ms, reverse {row.rev_seconds * 1e3:.2f} ms")
    fewer = ("forward mode needs fewer passes." if n < m else "reverse mode needs fewer passes." if m < n
             else "both modes need the same number of passes.")
    lines.append(f"  {n} input{'s' if n != 1 else ''} and {m} output{'s' if m != 1 else ''}: {fewer}" + (" Training differentiates a loss (1 output) by every weight, which is why it uses "
                              "reverse mode: backpropagation." if m == 1 and n > 1 else ""))
    return "\n".join(lines)


def format_modes(rows: list[ModeRow]) -> str:
    """The rows as an aligned text table, with a one-line reading of it."""
    head = ["n", "m", "JVP passes (fwd)", "VJP passes (rev)", "fewer passes", "Jacobians agree (max |diff|)",
            "fwd time", "rev time"]
    body = [[str(r.n), str(r.m), str(r.jvp_passes), str(r.vjp_passes), r.fewer_passes,
             f"{'yes' if r.agree else 'NO'} ({'%.2g' % r.max_abs_diff})",
             f"{r.fwd_seconds * 1e3:.2f} ms", f"{r.rev_seconds * 1e3:.2f} ms"] for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(head, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.rjust(w) for c, w in zip(b, widths)) for b in body]
    lines.append("")
    lines.append("f(x) = tanh(W2 tanh(W1 x + b1)), f: R^n -> R^m. Forward mode builds the Jacobian one column per "
                 "JVP (n passes);")
    lines.append("reverse mode one row per VJP (m passes). Many inputs and few outputs (a loss: m = 1) favour "
                 "reverse mode,")
    lines.append("which is why training uses backpropagation; few inputs and many outputs favour forward mode.")
    return "\n".join(lines)
