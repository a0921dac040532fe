"""What a run teaches: the one sentence that names why training went the way it did.

Every view that comments on a run (`trace(...).diagnosis`, the HTML report, `deltaprop
explain`, `deltaprop train`'s end-of-run warning and the playground) asks this module, so
they never disagree and never give advice that does not fit the network:

- `training_lesson(losses, ...)`: from the loss curve. A loss that rises, explodes or turns
  NaN names a learning rate too large; a loss that settles high with no hidden layer names a
  problem that is not linearly separable (the fix: a hidden layer); one that settles high
  with hidden layers while points are still misclassified names a local minimum (the fix:
  another seed or more units).
- `depth_lesson(...)`: from the size of the error signal per layer (mean |delta|): vanishing
  or exploding gradients, with the cause that fits the activation (sigmoid's f' is at most
  0.25, tanh's 1; a saturated unit has f' near 0 whatever its kind) and advice that fits it
  (ReLU is never suggested to a network that already uses ReLU). When the loss curve shows a
  learning rate too large, that is the lesson, and the depth numbers are its symptom.

Each returns a `Lesson` (kind, text) or None when there is nothing to say.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = ["Lesson", "training_lesson", "depth_lesson", "FPRIME_MAX", "fprime_bound", "KINDS", "chance_loss"]

# the kinds of lesson, in the order they are looked for
KINDS = ("diverged", "lr_too_large", "not_separable", "local_minimum", "vanishing", "exploding", "no_signal")

# the largest value f'(net) takes, per activation (what one layer can multiply the error signal by)
FPRIME_MAX = {"sigmoid": 0.25, "tanh": 1.0, "relu": 1.0, "leaky_relu": 1.0, "gelu": 1.129, "softplus": 1.0,
              "elu": 1.0, "silu": 1.1, "identity": 1.0, "": 1.0}
SATURATING = ("sigmoid", "tanh")
RELU_LIKE = ("relu", "leaky_relu", "gelu", "elu", "silu")
# the data sets no straight line separates (the library's own generators)
NOT_SEPARABLE = {"xor": "XOR is not linearly separable: no straight line puts (0,0) and (1,1) on one side and "
                        "(0,1) and (1,0) on the other",
                 "circles": "circles is not linearly separable: one class rings the other",
                 "spirals": "spirals is not linearly separable: the arms wind around each other",
                 "moons": "moons is not linearly separable: the two half-moons interlock"}

RISE = 1.25        # the loss at the end above this times the first: it rose
FLAT = 0.01        # relative change over the last quarter below this: it stopped falling
FELL = 0.05        # or a change over the last quarter below this share of all it fell: it stopped falling


@dataclass(frozen=True)
class Lesson:
    """One diagnosis: `kind` (one of KINDS) and `text`, the sentences a learner reads."""

    kind: str
    text: str

    def __str__(self) -> str:
        return self.text


def fprime_bound(activation: str) -> str:
    """'sigmoid's f'(net) is at most 0.25' for the activation's name (tanh: 1, relu: 1...)."""
    name = activation.split("+")[0]
    if name in FPRIME_MAX:
        return f"{name}'s f'(net) is at most {FPRIME_MAX[name]:g}"
    return f"{name}'s f'(net) has its own bound"


def chance_loss(loss: str, classes: int) -> float | None:
    """The loss of a network that only guesses (every class equally likely): ln 2 for binary
    cross-entropy, ln C for cross-entropy over C classes; None for other losses."""
    if loss in ("bce", "bce_logits", "sigmoid"):
        return math.log(2)
    if loss in ("ce", "softmax") and classes >= 2:
        return math.log(classes)
    return None


def _g(v: float) -> str:
    return "%.4g" % v


def _lower(lr: float | None) -> str:
    if lr is None or not np.isfinite(lr) or lr <= 0:
        return "Lower the learning rate, 10 times at a time, until the loss falls."
    return f"Lower it, 10 times at a time (lr {lr / 10:g}, then {lr / 100:g}, ...), until the loss falls."


def _lr_text(lr: float | None) -> str:
    return f" ({lr:g})" if lr is not None and np.isfinite(lr) else ""


def training_lesson(losses: Sequence[float], *, lr: float | None = None, hidden: Sequence[int] | None = None,
                    activation: str | None = None, dataset: str | None = None, loss: str | None = None,
                    classes: int | None = None, errors: int | None = None, samples: int | None = None,
                    unit: str = "step") -> Lesson | None:
    """The lesson of a loss curve (`losses`, one per step or epoch, in order), or None.

    lr: the learning rate used; hidden: the hidden layer sizes (empty: no hidden layer);
    dataset: its name (xor, moons, circles, spirals are known not to be linearly separable);
    loss ("bce", "ce", ...) and classes give the loss of a network that only guesses;
    errors / samples: how many training points the final network gets wrong, of how many;
    unit: what one entry of losses is ("step" or "epoch"), for the text.
    """
    ls = [float(v) for v in losses]
    if not ls:
        return None
    bad = next((k for k, v in enumerate(ls) if not math.isfinite(v)), None)
    if bad is not None:
        return Lesson("diverged", f"The loss became {ls[bad]:g} at {unit} {bad}: the learning rate{_lr_text(lr)} is "
                      "too large, and each update overshot by more than the last until the numbers overflowed. "
                      + _lower(lr))
    start, n = ls[0], len(ls)
    k = max(1, n // 10)
    end = float(np.mean(ls[n - k:]))   # the last tenth's mean: one noisy minibatch decides nothing
    final = _g(ls[-1]) + (f" (averaging {_g(end)} over the last {k} {unit}s)" if k > 1 else "")
    chance = chance_loss(loss, classes or 2) if loss else None
    if n >= 2 and end > RISE * start and end - start > 1e-6:
        return Lesson("lr_too_large", f"The loss rose from {_g(start)} to {final} instead of falling: the learning "
                      f"rate{_lr_text(lr)} is too large, so each step overshoots the minimum and lands higher up "
                      "the other side. " + _lower(lr))
    if chance is not None and end > 2 * chance:
        return Lesson("lr_too_large", f"The loss ended at {final}, far above the {_g(chance)} of a network that only "
                      f"guesses: the learning rate{_lr_text(lr)} is too large, so the steps jump across the minimum "
                      "instead of settling into it. " + _lower(lr))
    if n < 8:
        return None
    q = max(2, n // 4)
    tail = ls[n - q:]
    hi, lo = max(tail), min(tail)
    # settled: over the last quarter it moved by under 1% of itself, or by under 5% of all it has fallen
    flat = hi - lo <= FLAT * abs(hi) or hi - lo <= FELL * (start - lo)
    if not flat or lo < 0.1 * abs(start) or (errors is not None and errors == 0):
        return None
    half = ""
    if chance is not None and abs(end - chance) < 0.01 * chance and (classes or 2) == 2:
        half = " (ln 2 = 0.6931: the network answers 0.5 for every point)"
    wrong = (f", and {errors} of {samples} training points are still misclassified"
             if errors is not None and samples is not None and not half else "")
    moved = 100 * (hi - lo) / abs(hi) if hi else 0.0
    how = f"it moved by only {moved:.2g}%" if moved >= 0.01 else "it no longer moves"
    settled = f"The loss settled at {_g(end)}{half}: {how} over the last {q} {unit}s{wrong}"
    if hidden is not None and len(hidden) == 0:
        why = NOT_SEPARABLE.get((dataset or "").lower(), "a straight line does not separate these classes")
        return Lesson("not_separable", f"{settled}. With no hidden layer the network can only draw one straight "
                      f"line through the input space, and {why}. A larger learning rate or more steps cannot fix "
                      "that; a hidden layer can (--hidden 2 or more).")
    if hidden is not None and errors is not None and errors > 0:
        more = ",".join(str(2 * h) for h in hidden)
        return Lesson("local_minimum", f"{settled}. Training is stuck in a local minimum of the loss: near these "
                      "weights every small change makes the loss no lower, so gradient descent stays put, short of "
                      "the best fit. The cause is where it started, not the learning rate: another seed (try a few: "
                      f"--seed 2, --seed 3) or more hidden units (--hidden {more}) start elsewhere and escape it.")
    return None


def depth_lesson(mean_abs_delta: Sequence[float], *, activation: str = "", fprime: Sequence[float] | None = None,
                 net: Sequence[float] | None = None, weight_scale: Sequence[float] | None = None,
                 history: Lesson | None = None, finite: bool = True) -> Lesson | None:
    """The lesson of the error signal's size per layer, or None.

    mean_abs_delta: mean |delta| per Linear layer, FIRST layer first, output layer last;
    activation: the hidden layers' activation name; fprime / net: mean f'(net) and mean
    |net| per hidden layer; weight_scale: per layer after the first, mean |w| x sqrt(fan-in)
    (about 0.58 for PyTorch's default initialisation); history: the training lesson, when the
    loss curve is known (a learning rate too large is then the lesson, and these numbers its
    symptom); finite: False when a weight or delta is NaN or infinite.
    """
    if history is not None and history.kind in ("diverged", "lr_too_large"):
        symptom = _symptom(mean_abs_delta, activation, fprime, net)
        return Lesson(history.kind, history.text + (f" {symptom}" if symptom else ""))
    if not finite:
        return Lesson("diverged", "Some weights or deltas are no longer finite (NaN or infinity): training has "
                      "diverged, which a learning rate too large does. " + _lower(None))
    d = [float(v) for v in mean_abs_delta]
    if len(d) < 2:
        return None
    first, last = d[0], d[-1]
    act = activation.split("+")[0]
    depth = len(d)
    dead = [k for k, v in enumerate(d[:-1]) if v == 0]
    if last > 0 and dead:
        k = dead[-1]
        why = (f"every {act} unit there has net < 0 (a dead ReLU passes no gradient)" if act == "relu" else
               f"the {act} units there are saturated (f'(net) is 0 to the last digit)" if act in SATURATING else
               "f'(net) is 0 for every neuron there")
        return Lesson("no_signal", f"No error signal reaches hidden layer {k + 1} and the layers before it: {why}, "
                      "so those weights no longer learn. Large weights cause this, most often a learning rate too "
                      "large: " + _lower(None))
    if last == 0 or first == 0:
        return None
    change = first / last
    if change < 1 / 100:
        fp = float(np.mean(fprime)) if fprime is not None and len(fprime) else None
        nets = float(np.mean(net)) if net is not None and len(net) else None
        ws = float(np.mean(weight_scale)) if weight_scale is not None and len(weight_scale) else None
        if act in SATURATING and nets is not None and nets > 2.5:
            mean_fp = f" (it averages {_g(fp)} here)" if fp is not None else ""
            cause = (f"saturated {act} units: |net| averages {_g(nets)}, where f'(net) is near 0{mean_fp}, so each "
                     "layer passes back only a sliver of the error. Large weights saturate "
                     "units, most often from a learning rate too large or a too-large initialisation")
            advice = "lower the learning rate, initialise with Xavier (Glorot) scaling, or use fewer layers."
        elif act in SATURATING and fp is not None:
            cause = (f"the {act} activation: {fprime_bound(act)}, and f'(net) averages {_g(fp)} here; it multiplies "
                     f"the error signal once per hidden layer, {depth - 1} times")
            advice = ("try ReLU (or leaky ReLU) hidden units with He (kaiming) initialisation, fewer layers, or "
                      "batch normalisation.")
        elif ws is not None and ws < 0.5:
            cause = "small initial weights: each W^T delta product shrinks the signal"
            advice = ("initialise with He (kaiming) scaling for " + (act or "these") + " units, or use fewer layers."
                      if act in RELU_LIKE else "initialise with Xavier or He scaling, or use fewer layers.")
        else:
            cause = f"the depth: {depth} layers of products, each below 1 on average"
            advice = ("the network already uses " + act + ": try He (kaiming) initialisation, fewer layers, residual "
                      "connections or batch normalisation." if act in RELU_LIKE else
                      "try ReLU (or leaky ReLU) hidden units with He (kaiming) initialisation, fewer layers, or "
                      "batch normalisation.")
        return Lesson("vanishing", f"Vanishing gradients: mean |delta| falls {'%.3g' % (1 / change)}x from the "
                      f"output layer to the first layer, most likely from {cause}; {advice}")
    if change > 100:
        return Lesson("exploding", f"Exploding gradients: mean |delta| grows {'%.3g' % change}x from the output layer "
                      f"to the first layer, most likely from large weights (each W^T delta product amplifies the "
                      f"signal, {depth - 1} times); try smaller initial weights (Xavier/He scaling), a lower "
                      "learning rate, or gradient clipping (dp.nn.utils.clip_grad_norm_).")
    return None


def _symptom(mean_abs_delta: Sequence[float], activation: str, fprime: Sequence[float] | None,
             net: Sequence[float] | None) -> str:
    """What the too-large steps did to the error signal, in one sentence ('' when nothing shows)."""
    d = [float(v) for v in mean_abs_delta]
    if len(d) < 2 or not all(math.isfinite(v) for v in d):
        return ""
    act = activation.split("+")[0]
    nets = float(np.mean(net)) if net is not None and len(net) else None
    if d[-1] > 0 and d[0] / d[-1] < 1 / 100 or any(v == 0 for v in d[:-1]):
        if act in SATURATING and nets is not None and nets > 2.5:
            return (f"The weights it left behind are large, so the {act} units sit where f'(net) is near 0 "
                    f"(|net| averages {_g(nets)}) and mean |delta| shrinks on its way back to the first layer: "
                    "that follows from the learning rate, not from the choice of activation.")
        return ("The weights it left behind pass little error signal back to the first layers: that follows "
                "from the learning rate.")
    return ""
