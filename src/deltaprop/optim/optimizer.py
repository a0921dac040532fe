"""The Optimizer base class: parameter groups, per-parameter state, state_dict (PyTorch 2.x layout).

Updates run on raw ndarrays, in place on ``p.data``; subclasses keep their state buffers
preallocated and write through ``out=`` so a step allocates (almost) nothing. Gradients are
only read, never written (a ``.grad`` array may be shared).
"""
from __future__ import annotations

import copy
import operator
import warnings
from collections import defaultdict
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from .. import memory
from ..autograd import enable_grad
from ..modes import effect
from ..tensor import Tensor

__all__ = ["Optimizer", "required"]


class _Required:
    """Marker for an option without a default (a group must then give it)."""

    def __repr__(self) -> str:
        return "<required parameter>"


required = _Required()

ParamsT = Iterable[Tensor] | Iterable[Mapping[str, Any]] | Iterable[tuple[str, Tensor]]


class Optimizer:
    """Base class of all optimizers (PyTorch 2.x API).

    ``params``: an iterable of Tensors, of ``(name, Tensor)`` pairs, or of dicts (parameter
    groups: ``{"params": [...], "lr": ...}``, options missing from a group come from
    ``defaults``). ``param_groups`` is the list of groups, ``state`` maps a parameter to its
    state dict.
    """

    def __init__(self, params: ParamsT, defaults: dict[str, Any]) -> None:
        self.defaults: dict[str, Any] = dict(defaults)
        self._check_options(self.defaults)
        self.state: defaultdict[Tensor, dict[str, Any]] = defaultdict(dict)
        self.param_groups: list[dict[str, Any]] = []
        self._work = memory.Workspace()
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of Tensors or dicts, "
                            f"but got {type(params).__name__}")
        param_groups: list[Any] = list(params)
        if len(param_groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(param_groups[0], Mapping):
            param_groups = [{"params": param_groups}]
        for group in param_groups:
            self.add_param_group(dict(group) if isinstance(group, Mapping) else group)

    # -- options -----------------------------------------------------------------------------
    def _check_options(self, options: Mapping[str, Any]) -> None:
        """Raise ValueError for an invalid option value (subclasses extend this)."""
        lr = options.get("lr", 0.0)
        if not isinstance(lr, _Required) and not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters (with its own options) to ``param_groups``."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError("optimizer parameters need to be organized in ordered collections, but the ordering "
                            "of tensors in sets will change between runs. Please use a list instead.")
        else:
            params = list(params)
        names: list[str] = []
        if params and all(isinstance(p, tuple) and len(p) == 2 for p in params):
            names = [str(n) for n, _ in params]
            params = [p for _, p in params]
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, but one of the params is {type(p).__name__}")
            if not p.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor")
            if p.data.dtype.kind not in "fc":
                raise TypeError(f"optimizer can only optimize floating-point Tensors, got dtype {p.data.dtype}")
        param_group["params"] = params
        if names:
            param_group["param_names"] = names
        for name, default in self.defaults.items():
            if isinstance(default, _Required) and name not in param_group:
                raise ValueError(f"parameter group didn't specify a value of required optimization parameter {name}")
            param_group.setdefault(name, default)
        self._check_options(param_group)
        if len({id(p) for p in params}) != len(params):
            warnings.warn("optimizer contains a parameter group with duplicate parameters; in future, this "
                          "will cause an error", UserWarning, stacklevel=3)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(param_group)

    # -- gradients -------------------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset every parameter's gradient: ``p.grad = None`` (or a new zero Tensor)."""
        effect(self._zero_grad, set_to_none)  # (a compiled step repeats it on every replay)

    def _zero_grad(self, set_to_none: bool) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:  # a fresh array: the old one may be shared, so it is never written
                    p.grad = Tensor(np.zeros_like(_array(p.grad)))

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update of every parameter that has a gradient; returns ``closure()`` if given."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        effect(self._update)  # (a compiled step repeats it on every replay, reading lr and state afresh)
        return loss

    def _update(self) -> None:
        for group in self.param_groups:
            self._update_group(group)
            for p in group["params"]:  # the update wrote p.data in place: a graph that saved p sees it
                if p.grad is not None:
                    p._bump()

    def _update_group(self, group: dict[str, Any]) -> None:
        o = self._options(group)
        for p, w, g in _grads(group):
            a, b = self._scratch(w, 2)
            self._step_param(p, w, g, a, b, o)

    def _options(self, group: dict[str, Any]) -> tuple:
        """The group's options that _step_param reads, read once per group and step."""
        raise NotImplementedError

    def _step_param(self, p: Tensor, w: np.ndarray, g: np.ndarray, a: np.ndarray, b: np.ndarray, o: tuple) -> None:
        """Update one parameter in place: w is p's array, g its gradient (only read), a and b
        work arrays shaped like w, o the group's `_options`. The one place of each rule's
        arithmetic, for the eager step and dp.compile's replay alike."""
        raise NotImplementedError

    def _plan(self) -> Callable[[], None]:
        """`_update` for dp.compile's replay: the same `_step_param` calls on the parameters that
        have a gradient now, with their arrays and work arrays looked up once. Each call first
        checks that the groups, the parameters' arrays and which of them have a gradient are as
        planned, and runs `_update` when they are not."""
        groups = list(self.param_groups)
        plan, bare, work = [], [], {}
        for group in groups:
            items = []
            for p in group["params"]:
                if p.grad is None:
                    bare.append(p)
                    continue
                key = (p.data.shape, p.data.dtype)
                if key not in work:  # (work arrays of their own: the plan outlives any Workspace view)
                    work[key] = (np.empty_like(p.data), np.empty_like(p.data))
                items.append((p, p.data) + work[key])
            plan.append((group, items))
        everyone = [it for _g, items in plan for it in items]
        members = [p for group in groups for p in group["params"]]

        def planned() -> bool:
            now = self.param_groups
            return len(now) == len(groups) and all(map(operator.is_, now, groups)) \
                and _same_objects([p for group in now for p in group["params"]], members) \
                and all(p.grad is not None and p.data is w for p, w, _a, _b in everyone) \
                and all(p.grad is None for p in bare)

        def run() -> None:
            if not planned():
                self._update()
                return
            for group, items in plan:
                o = self._options(group)
                for p, w, a, b in items:
                    g = p.grad
                    self._step_param(p, w, g.data if type(g) is Tensor else _array(g), a, b, o)
                for p, _w, _a, _b in items:  # (as _update: a graph that saved p sees the change)
                    p._bump()
        return run

    def _scratch(self, like: np.ndarray, n: int) -> list[np.ndarray]:
        """``n`` work arrays shaped like ``like`` (memory.Workspace: reused across parameters)."""
        return self._work.get(like, n)

    # -- state_dict ------------------------------------------------------------------------
    def _validate_state(self, group: Mapping[str, Any], index: int, entry: Mapping[str, Any]) -> None:
        """Raise ValueError if a loaded state entry lacks what this optimizer's step needs."""

    def state_dict(self) -> dict[str, Any]:
        """``{"state": {index: {name: ndarray copy | number}}, "param_groups": [{...options, "params": [indices]}]}``.

        Parameters are numbered across the groups in order (PyTorch's layout); nothing returned
        aliases the optimizer's buffers.
        """
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            packed = {k: copy.deepcopy(v) for k, v in group.items() if k != "params"}
            ids = []
            for p in group["params"]:
                index.setdefault(id(p), len(index))
                ids.append(index[id(p)])
            packed["params"] = ids
            groups.append(packed)
        state = {}
        for p, entry in self.state.items():
            if id(p) in index:
                state[index[id(p)]] = {k: (v.copy() if isinstance(v, np.ndarray) else copy.deepcopy(v))
                                       for k, v in entry.items()}
        return {"state": dict(sorted(state.items())), "param_groups": groups}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore ``state_dict()``'s output: checks group count, group sizes and state shapes
        first (ValueError naming the mismatch; nothing changes then), then copies the arrays
        in, cast to each parameter's dtype."""
        if not isinstance(state_dict, Mapping) or "state" not in state_dict or "param_groups" not in state_dict:
            raise ValueError("optimizer state dict must be a dict with 'state' and 'param_groups' keys")
        saved_groups = list(state_dict["param_groups"])
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"loaded state dict has a different number of parameter groups: {len(saved_groups)} "
                             f"in the state dict, {len(self.param_groups)} in the optimizer")
        id_map: dict[Any, Tensor] = {}
        new_groups = []
        for i, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if not isinstance(saved, Mapping) or "params" not in saved:
                raise ValueError(f"loaded state dict's parameter group {i} is not a dict with a 'params' list")
            saved_ids = list(saved["params"])
            if len(saved_ids) != len(group["params"]):
                raise ValueError(f"loaded state dict contains a parameter group that doesn't match the size of "
                                 f"optimizer's group: group {i} has {len(saved_ids)} parameters in the state dict, "
                                 f"{len(group['params'])} in the optimizer")
            new = {k: copy.deepcopy(v) for k, v in saved.items() if k not in ("params", "param_names")}
            for k, v in self.defaults.items():
                new.setdefault(k, v)
            if isinstance(new.get("betas"), list):
                new["betas"] = tuple(new["betas"])
            try:
                self._check_options(new)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"loaded state dict's parameter group {i} has an invalid option: {exc}") from None
            new["params"] = group["params"]
            if "param_names" in group:
                new["param_names"] = group["param_names"]
            new_groups.append(new)
            for pid, p in zip(saved_ids, group["params"]):
                id_map[pid] = p
        group_of = {id(p): g for g in new_groups for p in g["params"]}

        new_state: defaultdict[Tensor, dict[str, Any]] = defaultdict(dict)
        saved_state = state_dict["state"]
        if not isinstance(saved_state, Mapping):
            raise ValueError("loaded state dict's 'state' must be a dict of parameter index -> state")
        for pid, entry in saved_state.items():
            if pid not in id_map and isinstance(pid, str) and pid.isdigit():
                pid = int(pid)  # indices that went through JSON as strings
            if pid not in id_map:
                raise ValueError(f"loaded state dict has state for parameter {pid!r}, which no parameter group lists")
            if not isinstance(entry, Mapping):
                raise ValueError(f"loaded state dict's state for parameter {pid!r} is not a dict")
            p = id_map[pid]
            out: dict[str, Any] = {}
            for key, value in entry.items():
                if value is None or isinstance(value, (bool, int, float, str)):
                    out[key] = value
                    continue
                arr = np.asarray(value)
                if arr.dtype.kind not in "biufc":
                    raise ValueError(f"loaded state dict: state {key!r} of parameter {pid!r} is not numeric "
                                     f"(dtype {arr.dtype})")
                if key == "step" or arr.ndim == 0 and p.data.ndim != 0:
                    out[key] = arr.item()
                    continue
                if arr.shape != p.data.shape:
                    raise ValueError(f"loaded state dict: state {key!r} of parameter {pid!r} has shape "
                                     f"{arr.shape}, but the parameter has shape {p.data.shape}")
                out[key] = np.array(arr, dtype=p.data.dtype, copy=True, order="C")
            if "step" in out and out["step"] is not None:
                out["step"] = float(out["step"])
            self._validate_state(group_of[id(p)], pid, out)
            new_state[p] = out

        for group, new in zip(self.param_groups, new_groups):
            group.clear()
            group.update(new)
        self.state = new_state

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for key in sorted(group):
                if key not in ("params", "param_names"):
                    lines.append(f"    {key}: {group[key]}")
        lines.append(")")
        return "\n".join(lines)


def _array(grad: Any) -> np.ndarray:
    """The ndarray behind a gradient (a Tensor, or an array someone assigned)."""
    return grad.data if isinstance(grad, Tensor) else np.asarray(grad)


def _same_objects(a: list, b: list) -> bool:
    return len(a) == len(b) and all(map(operator.is_, a, b))


def _grads(group: Mapping[str, Any]) -> list[tuple[Tensor, np.ndarray, np.ndarray]]:
    """(param, param array, gradient array) for each parameter of the group that has a gradient."""
    return [(p, p.data, g.data if type(g) is Tensor else _array(g))
            for p in group["params"] if (g := p.grad) is not None]


def _lerp_(avg: np.ndarray, g: np.ndarray, weight, work: np.ndarray) -> None:
    """avg.lerp_(g, weight) in place: avg += weight * (g - avg) (PyTorch's order of operations)."""
    np.subtract(g, avg, out=work)
    np.multiply(work, weight, out=work)
    np.add(avg, work, out=avg)


def _ema_sq_(avg: np.ndarray, g: np.ndarray, beta, work: np.ndarray) -> None:
    """avg = beta * avg + ((1 - beta) * g) * g, in place (Adam's v, RMSprop's square average)."""
    t = avg.dtype.type
    np.multiply(avg, t(beta), out=avg)
    np.multiply(g, t(1 - beta), out=work)
    np.multiply(work, g, out=work)
    np.add(avg, work, out=avg)
