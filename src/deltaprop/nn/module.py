"""Module, Parameter, Sequential and ModuleList: PyTorch's container API over deltaprop Tensors.

Parameters, buffers and sub-modules are kept both as ordinary attributes (fast lookup in
forward) and in ordered registries (`_parameters`, `_buffers`, `_modules`) that give
PyTorch's dotted names and state_dict layout.
"""
from __future__ import annotations

from collections import OrderedDict, namedtuple
from typing import Any, Callable, Iterator

import numpy as np

from .._config import get_default_dtype
from ..modes import effect, recorder
from ..tensor import Tensor

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class StateDictError(ValueError, RuntimeError):
    """A state_dict that does not fit the model (missing/unexpected keys, shapes). A ValueError,
    and also a RuntimeError as PyTorch raises."""


class Parameter(Tensor):
    """A Tensor that a Module registers as a learnable parameter (requires_grad by default)."""

    __slots__ = ()

    def __init__(self, data: Any = None, requires_grad: bool = True):
        if data is None:
            data = np.zeros(0, dtype=get_default_dtype())
        elif isinstance(data, Tensor):
            data = data.data
        elif not isinstance(data, np.ndarray):
            data = _to_array(data)
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


def _to_array(data: Any) -> np.ndarray:
    """An ndarray from user data: Python floats take the default dtype, ndarrays keep theirs."""
    arr = np.array(data)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"cannot make a parameter or buffer from {type(data).__name__} (dtype {arr.dtype})")
    if not isinstance(data, (np.ndarray, np.generic)) and arr.dtype == np.float64:
        arr = arr.astype(get_default_dtype())
    return arr


def _foreign_array(v: Any) -> np.ndarray:
    """An ndarray from a state_dict value: a PyTorch tensor (detached, on the CPU, bfloat16
    widened to float32: NumPy has no bfloat16; torch is never imported here) or anything np.asarray takes."""
    if type(v).__module__.startswith("torch") and hasattr(v, "detach"):
        v = v.detach().cpu()
        if str(v.dtype) == "torch.bfloat16":
            v = v.float()
        return v.numpy()
    return np.asarray(v)


def _addindent(text: str, n: int) -> str:
    lines = text.split("\n")
    return lines[0] if len(lines) == 1 else "\n".join([lines[0]] + [" " * n + ln for ln in lines[1:]])


class Edits:
    """A new `token` object each time a module's attribute, parameter, buffer, sub-module or mode
    is set or removed through the Module API, in any module: dp.compile's guards compare the
    modules a step called with their recorded state only after the token changed."""

    token: object = object()


class Module:
    """Base class of layers and models: register Parameters/Modules by attribute assignment,
    define forward(); calling the module runs forward."""

    training: bool
    _parameters: OrderedDict[str, Parameter | None]
    _buffers: OrderedDict[str, Tensor | None]
    _modules: OrderedDict[str, Any]  # (Module or None)
    _non_persistent: set[str]

    def __init__(self) -> None:
        d = self.__dict__
        d["_parameters"] = OrderedDict()
        d["_buffers"] = OrderedDict()
        d["_modules"] = OrderedDict()
        d["_non_persistent"] = set()
        d["training"] = True

    # -- registration -----------------------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        Edits.token = object()
        d = self.__dict__
        if "_parameters" not in d:
            if isinstance(value, (Parameter, Module)):
                raise AttributeError(f"cannot assign {type(value).__name__} '{name}' before Module.__init__() call")
            object.__setattr__(self, name, value)
            return
        params, mods, bufs = d["_parameters"], d["_modules"], d["_buffers"]
        if isinstance(value, Parameter):
            mods.pop(name, None)
            bufs.pop(name, None)
            params[name] = value
        elif isinstance(value, Module):
            params.pop(name, None)
            bufs.pop(name, None)
            mods[name] = value
        elif name in params:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} as parameter '{name}' "
                                "(dp.nn.Parameter or None expected)")
            params[name] = None
        elif name in mods:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} as child module '{name}' "
                                "(dp.nn.Module or None expected)")
            mods[name] = None
        elif name in bufs:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign {type(value).__name__} as buffer '{name}' (Tensor or None expected)")
            bufs[name] = value
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        Edits.token = object()
        for reg in ("_parameters", "_buffers", "_modules"):
            self.__dict__[reg].pop(name, None)
        object.__delattr__(self, name)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Add a parameter (or None, a declared-but-absent one such as bias=False)."""
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: '{name}' must be a dp.nn.Parameter or None, "
                            f"got {type(param).__name__}")
        self._parameters[name] = param
        Edits.token = object()
        object.__setattr__(self, name, param)

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """Add a buffer: state that is saved in state_dict but not trained (e.g. running_mean)."""
        if tensor is not None and not isinstance(tensor, Tensor):
            tensor = Tensor(_to_array(tensor))
        self._buffers[name] = tensor
        if not persistent:
            self._non_persistent.add(name)
        Edits.token = object()
        object.__setattr__(self, name, tensor)

    def add_module(self, name: str, module: Module | None) -> None:
        """Add a child module under `name`."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: {type(module).__name__} is not a Module")
        self._modules[name] = module
        Edits.token = object()
        object.__setattr__(self, name, module)

    register_module = add_module

    # -- calling ------------------------------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The computation of this module: subclasses define it; calling the module runs it."""
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if (rec := recorder()) is not None:  # a dp.compile recording checks the mode on each replay
            rec.module(self)
        return self.forward(*args, **kwargs)

    # -- traversal ------------------------------------------------------------------------------
    def named_modules(self, memo: set | None = None, prefix: str = "",
                      remove_duplicate: bool = True) -> Iterator[tuple[str, Module]]:
        """(dotted name, module) for self and every descendant, depth first."""
        if memo is None:
            memo = set()
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, m in self._modules.items():
            if m is not None:
                yield from m.named_modules(memo, prefix + ("." if prefix else "") + name, remove_duplicate)

    def modules(self) -> Iterator[Module]:
        """Self and every descendant module, depth first."""
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """(name, module) for each direct child, in registration order."""
        seen = set()
        for name, m in self._modules.items():
            if m is not None and id(m) not in seen:
                seen.add(id(m))
                yield name, m

    def children(self) -> Iterator[Module]:
        """The direct child modules, in registration order."""
        for _, m in self.named_children():
            yield m

    def _named_members(self, registry: str, prefix: str, recurse: bool, remove_duplicate: bool = True):
        seen = set()
        mods = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse else [(prefix, self)]
        for mprefix, m in mods:
            for name, v in m.__dict__[registry].items():
                if v is None or (remove_duplicate and id(v) in seen):
                    continue
                seen.add(id(v))
                yield mprefix + ("." if mprefix else "") + name, v

    def named_parameters(self, prefix: str = "", recurse: bool = True,
                         remove_duplicate: bool = True) -> Iterator[tuple[str, Parameter]]:
        """(dotted name, Parameter) pairs in registration order, e.g. ('0.weight', ...)."""
        yield from self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        """Every Parameter of self and its descendants, in registration order (what an optimizer takes)."""
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True,
                      remove_duplicate: bool = True) -> Iterator[tuple[str, Tensor]]:
        """(dotted name, buffer) pairs, e.g. ('1.running_mean', ...)."""
        yield from self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        """Every buffer (saved, untrained state such as BatchNorm's running statistics)."""
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def apply(self, fn: Callable[[Module], Any]) -> Module:
        """Call fn on every descendant, then on self (as PyTorch); returns self."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    # -- modes and gradients -----------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Set training mode (Dropout active, BatchNorm uses batch statistics) on every module."""
        for m in self.modules():
            m.__dict__["training"] = bool(mode)
        Edits.token = object()
        return self

    def eval(self) -> Module:
        """Set evaluation mode: train(False)."""
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Set requires_grad on every parameter (False freezes them); returns self."""
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset every parameter's .grad to None (or to zeros with set_to_none=False)."""
        effect(self._zero_grad, set_to_none)  # (a compiled step repeats it on every replay)

    def _zero_grad(self, set_to_none: bool) -> None:
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad = Tensor(np.zeros_like(p.data))

    def to(self, dtype: Any = None, *args: Any, **kwargs: Any) -> Module:
        """Cast floating parameters, buffers and gradients to dtype in place; returns self.
        Device strings ('cpu') are accepted and ignored."""
        dtype = kwargs.get("dtype", dtype)
        if dtype is None or (isinstance(dtype, str) and dtype.split(":")[0] == "cpu"):
            return self
        dt = np.dtype(dtype)
        if dt.kind != "f":
            raise TypeError(f"Module.to: expected a floating dtype such as np.float32 or np.float64, got {dt}")
        for m in self.modules():
            for reg in (m._parameters, m._buffers):
                for t in reg.values():
                    if t is not None and t.data.dtype.kind == "f" and t.data.dtype != dt:
                        t.data = t.data.astype(dt)
                        if t.grad is not None:
                            t.grad = Tensor(t.grad.data.astype(dt))
        return self

    def float(self) -> Module:
        """Cast floating parameters and buffers to float32 in place; returns self."""
        return self.to(np.float32)

    def double(self) -> Module:
        """Cast floating parameters and buffers to float64 in place; returns self."""
        return self.to(np.float64)

    # -- state ----------------------------------------------------------------------------------
    def _state_items(self, prefix: str = "") -> Iterator[tuple[str, Tensor]]:
        """Every saved tensor with its key, PyTorch's order: a module's params, its buffers, then children."""
        for name, p in self._parameters.items():
            if p is not None:
                yield prefix + name, p
        for name, b in self._buffers.items():
            if b is not None and name not in self._non_persistent:
                yield prefix + name, b
        for name, m in self._modules.items():
            if m is not None:
                yield from m._state_items(prefix + name + ".")

    def state_dict(self, destination: dict | None = None, prefix: str = "",
                   keep_vars: bool = False) -> dict[str, Any]:
        """{"0.weight": ndarray copy, ...} with PyTorch's keys and layout (Tensors with keep_vars)."""
        out = OrderedDict() if destination is None else destination
        for k, t in self._state_items(prefix):
            out[k] = t if keep_vars else t.data.copy()
        return out

    def load_state_dict(self, state_dict: dict[str, Any], strict: bool = True) -> IncompatibleKeys:
        """Copy arrays/Tensors into the existing parameters and buffers in place, keeping their
        dtype. Every key and shape is checked first; on any problem nothing changes."""
        own = OrderedDict(self._state_items())
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        problems, values = [], {}
        for k, t in own.items():
            if k not in state_dict:
                continue
            v = state_dict[k]
            try:
                arr = v.data if isinstance(v, Tensor) else _foreign_array(v)
            except Exception as e:  # noqa: BLE001 - reported with the key below
                problems.append(f"{k}: cannot convert {type(v).__name__} to an array ({e})")
                continue
            if arr.dtype.kind not in "biuf":
                problems.append(f"{k}: value of dtype {arr.dtype} is not numeric")
            elif arr.shape != t.data.shape:
                dt = "" if arr.dtype == t.data.dtype else f" (dtype {arr.dtype} in the state_dict, {t.data.dtype} here)"
                problems.append(f"{k}: shape {tuple(arr.shape)} in the state_dict but {tuple(t.data.shape)} "
                                f"in the model{dt}")
            else:
                values[k] = arr
        if strict:
            if missing:
                problems.insert(0, "missing key(s) in state_dict: " + ", ".join(repr(k) for k in missing))
            if unexpected:
                problems.insert(int(bool(missing)), "unexpected key(s) in state_dict: "
                                + ", ".join(repr(k) for k in unexpected))
        if problems:
            raise StateDictError(f"Error(s) in loading state_dict for {type(self).__name__}: " + "; ".join(problems))
        for k, arr in values.items():
            t = own[k]
            if t.data.flags.writeable:
                np.copyto(t.data, arr, casting="unsafe")
            else:
                t.data = np.array(arr, dtype=t.data.dtype)
            t._bump()  # written in place: a graph that saved it raises instead of using new values
        return IncompatibleKeys(missing, unexpected)

    # -- printing -------------------------------------------------------------------------------
    def extra_repr(self) -> str:
        """The text inside the parentheses of this module's repr (its settings)."""
        return ""

    def __repr__(self) -> str:
        lines = [ln for ln in self.extra_repr().split("\n") if ln] if self.extra_repr() else []
        for name, m in self._modules.items():
            lines.append(f"({name}): " + _addindent(repr(m), 2))
        main = type(self).__name__ + "("
        if lines:
            if len(lines) == 1 and not self._modules:
                main += lines[0]
            else:
                main += "\n  " + "\n  ".join(lines) + "\n"
        return main + ")"

    def __dir__(self):
        return sorted(set(super().__dir__()))


class Sequential(Module):
    """Modules applied in order: forward(x) = m_n(...m_1(x)). Indexable, sliceable, iterable."""

    def __init__(self, *modules: Any) -> None:  # Modules, or one OrderedDict of them
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], (dict, OrderedDict)):
            for name, m in modules[0].items():
                self.add_module(str(name), m)
        else:
            for i, m in enumerate(modules):
                if not isinstance(m, Module):
                    raise TypeError(f"Sequential: argument {i} is a {type(m).__name__}, not a dp.nn.Module")
                self.add_module(str(i), m)

    def forward(self, x: Any) -> Any:
        """Apply the modules in order: m_n(...m_1(x))."""
        for m in self._modules.values():
            x = m(x)
        return x

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def _key(self, idx: int) -> str:
        n = len(self._modules)
        if not -n <= idx < n:
            raise IndexError(f"{type(self).__name__}: index {idx} is out of range for {n} modules")
        return list(self._modules)[idx % n]

    def __getitem__(self, idx: int | slice) -> Any:
        if isinstance(idx, slice):
            return type(self)(OrderedDict(list(self._modules.items())[idx]))
        return self._modules[self._key(int(idx))]

    def __setitem__(self, idx: int, module: Module) -> None:
        setattr(self, self._key(int(idx)), module)

    def __delitem__(self, idx: int | slice) -> None:
        keys = list(self._modules)[idx] if isinstance(idx, slice) else [self._key(int(idx))]
        for k in keys:
            delattr(self, k)

    def append(self, module: Module) -> Sequential:
        """Add a module at the end; returns self."""
        self.add_module(str(len(self._modules)), module)
        return self


class ModuleList(Module):
    """A list of modules that registers them (names '0', '1', ...); no forward of its own."""

    def __init__(self, modules: Any = None) -> None:
        super().__init__()
        for m in modules or ():
            self.append(m)

    def append(self, module: Module) -> ModuleList:
        """Add a module at the end (registered as the next index); returns self."""
        self.add_module(str(len(self._modules)), module)
        return self

    def extend(self, modules: Any) -> ModuleList:
        """Append every module of an iterable; returns self."""
        for m in modules:
            self.append(m)
        return self

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __getitem__(self, idx: int | slice) -> Any:
        mods = list(self._modules.values())
        return ModuleList(mods[idx]) if isinstance(idx, slice) else mods[idx]


class ModuleDict(Module):
    """An ordered dict of modules that registers them under their keys (state_dict keys
    'key.weight', ...); iterating gives the keys, as PyTorch's ModuleDict. No forward of its own."""

    def __init__(self, modules: Any = None) -> None:
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Module:
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        if not isinstance(module, Module):
            raise TypeError(f"ModuleDict: value for key {key!r} is a {type(module).__name__}, not a dp.nn.Module")
        if not isinstance(key, str) or hasattr(ModuleDict, key) or "." in key or not key:
            raise KeyError(f"ModuleDict: key {key!r} must be a non-empty string without '.' that is not the name "
                           "of a ModuleDict attribute")
        self.add_module(key, module)

    def __delitem__(self, key: str) -> None:
        delattr(self, key)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __contains__(self, key: object) -> bool:
        return key in self._modules

    def keys(self):
        """The keys, in insertion order."""
        return self._modules.keys()

    def values(self):
        """The modules, in insertion order."""
        return self._modules.values()

    def items(self):
        """(key, module) pairs, in insertion order."""
        return self._modules.items()

    def pop(self, key: str) -> Module:
        """Remove the module under key and return it."""
        module = self._modules[key]
        del self[key]
        return module

    def clear(self) -> None:
        """Remove every module."""
        for key in list(self._modules):
            del self[key]

    def update(self, modules: Any) -> None:
        """Add (key, module) pairs from a mapping or an iterable of pairs (a later key replaces an earlier)."""
        pairs = modules.items() if hasattr(modules, "items") else modules
        for i, pair in enumerate(pairs):
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise TypeError(f"ModuleDict.update: element {i} should be a (key, module) pair, got {pair!r}")
            self[pair[0]] = pair[1]
