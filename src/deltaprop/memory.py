"""Array recycling: the one module that decides when a large array is reused.

Arrays of a few hundred KB come from mmap, or from a heap that glibc trims when they are freed,
so a training step that allocates the same activations and gradients every time pays about one
page fault per 4 KB, every step. Ops ask `take` for large work and output arrays; `give` takes
back an array for a later `take` of the same shape and dtype.

Ownership rests on what the caller knows by construction, never on reference counts (CPython
3.14 counts borrowed references differently): only the engine's backward pass and an op's own
scratch arrays are ever given back, and only arrays created there and never handed out
(`.data`, `.numpy()`, `.grad`, hook arguments and forward outputs are never given back). Free
lists are per thread, so a thread never receives an array another thread still uses.

An op's output leaves the engine (it becomes a Tensor's `.data`), so it is never given back;
`lease` lends one instead: the array's memory returns to the free lists when the array and
every view of it are gone, which a weak reference's callback tells (a language guarantee, not
a count). Without it, each output taken from the free lists would be replaced by a fresh,
page-faulting array on every step.

Every reuse of memory is decided here, and one switch turns all of it off:
`DELTAPROP_RECYCLE=0` in the environment (or `set_enabled(False)`) makes `take` allocate and
`give` drop, `lease` a plain allocation, the backward pass's ownership ledger (`Owned`) a no-op,
`Workspace` (optimizer work arrays) and `zeros` (cached read-only operands) allocate afresh,
`product` never writes into its operand, and `tune_malloc` refuse to change malloc.
`DELTAPROP_RECYCLE=malloc` is recycling off with glibc's malloc tuned (a benchmark row: what the
recycler buys beyond malloc tuning). `DELTAPROP_RECYCLE=check` poisons every array given back
with NaN (or a sentinel), so a wrong give shows up as a wrong number in the tests.
"""
from __future__ import annotations

import os
import threading
import weakref

import numpy as np

MIN_BYTES = 64 << 10  # smaller arrays are cheap: NumPy and malloc cache them already
_MAX_BYTES = 32 << 20  # the most one thread's free lists ever hold
_PER_KEY = 24  # (a scratch scope may hold a dozen work arrays of one shape)

_mode = os.environ.get("DELTAPROP_RECYCLE", "1").strip().lower()
_enabled = _mode not in ("0", "off", "false", "no", "malloc")
_poison = _mode == "check"
_malloc_allowed = _mode not in ("0", "off", "false", "no")  # ("malloc": recycling off, malloc tuning on)


class _FreeLists(threading.local):
    def __init__(self) -> None:
        self.free: dict[tuple, list[np.ndarray]] = {}
        self.held = 0


_local = _FreeLists()


def enabled() -> bool:
    """Whether recycling is on (DELTAPROP_RECYCLE=0 turns it off)."""
    return _enabled


def set_enabled(flag: bool) -> None:
    """Turn recycling on or off for the whole process (off also drops what is cached)."""
    global _enabled
    _enabled = bool(flag)
    if not _enabled:
        clear()


def take(shape: tuple, dtype) -> np.ndarray:
    """An uninitialised array of this shape and dtype: a recycled one when there is one."""
    if _enabled:
        stack = _local.free.get((shape, np.dtype(dtype)))
        if stack:
            a = stack.pop()
            _local.held -= a.nbytes
            return a
    return np.empty(shape, dtype)


def give(a: np.ndarray) -> None:
    """Keep `a` for a later `take`. The caller guarantees that it created `a` (or took it from
    here), never handed it out, and that nothing refers to it or to a view of it any more."""
    if (_enabled and type(a) is np.ndarray and a.nbytes >= MIN_BYTES and a.base is None
            and a.flags.writeable and a.flags.c_contiguous and _local.held + a.nbytes <= _MAX_BYTES):
        stack = _local.free.setdefault((a.shape, a.dtype), [])
        if len(stack) < _PER_KEY and not any(s is a for s in stack):
            if _poison:
                a.fill(np.nan if a.dtype.kind in "fc" else 123)
            stack.append(a)
            _local.held += a.nbytes


class _Storage(np.ndarray):
    """A leased array's memory, seen through a type of its own: NumPy shortens a view's chain of
    bases only through arrays of the view's own type, so a leased array and all its views keep
    their _Lease alive (tests/engine/test_memory.py checks this)."""


class _Lease(np.ndarray):
    """The owner of one leased array's memory: its death means no view of the array is left."""


_leases: dict[int, tuple] = {}  # id(weak reference to a _Lease) -> (that reference, the memory)


def _returned(ref) -> None:
    entry = _leases.pop(id(ref), None)
    if entry is not None:
        give(entry[1])  # (into the free lists of the thread that dropped the last view: it is unused)


def lease(shape: tuple, dtype) -> np.ndarray:
    """An uninitialised array, as `take`, for an array that leaves the op (a forward's output):
    its memory goes back to the free lists by itself once nothing refers to the array or to a
    view of it. Never `give` it."""
    a = take(shape, dtype)
    if not _enabled or a.nbytes < MIN_BYTES:
        return a
    owner = a.view(_Storage).view(_Lease)
    ref = weakref.ref(owner, _returned)
    _leases[id(ref)] = (ref, a)
    return owner.view(np.ndarray)


class Scratch:
    """Work arrays for one computation: `take` them here (or `adopt` one the computation owns
    outright, e.g. what its forward kept for it); all go back to the free lists when the `with`
    block ends. Ops ask for buffers this way and never give arrays back themselves; a scratch
    array must not outlive its block (DELTAPROP_RECYCLE=check poisons it at the end)."""

    __slots__ = ("_arrays",)

    def __init__(self) -> None:
        self._arrays: list[np.ndarray] = []

    def take(self, shape: tuple, dtype) -> np.ndarray:
        """An uninitialised work array (recycled when possible), given back when the block ends."""
        a = take(shape, dtype)
        self._arrays.append(a)
        return a

    def adopt(self, a) -> None:
        """Give back this array too when the block ends (one the computation owns outright)."""
        if type(a) is np.ndarray:
            self._arrays.append(a)

    def __enter__(self) -> "Scratch":
        return self

    def __exit__(self, *exc) -> None:
        for a in self._arrays:
            give(a)
        self._arrays.clear()


def scratch() -> Scratch:
    """A scope for work arrays: `with memory.scratch() as s: t = s.take(shape, dtype)`."""
    return Scratch()


def clear() -> None:
    """Release every cached array of this thread."""
    _local.free.clear()
    _local.held = 0


def own(g: np.ndarray, handed: dict) -> np.ndarray:
    """g, or a copy of it, as memory of its own for a .grad: add's VJP passes one array to both
    inputs, and a broadcast view is read-only. `handed`: what this pass gave out already (kept
    alive for the pass: an id is unique only while its object lives)."""
    key = id(g if g.base is None else g.base)
    if not g.flags.writeable or key in handed:
        g = g.copy()
        key = id(g)
    handed[key] = g
    return g


class _NoLedger:
    """The ledger with recycling off: it records nothing and gives nothing back."""

    __slots__ = ()

    def add(self, g, node, gin) -> None:
        pass

    def new(self, a) -> None:
        pass

    def drop(self, g) -> None:
        pass

    def hand_out(self, g) -> None:
        pass


class Owned:
    """Gradient arrays this backward pass created and never handed out: how many pending slots
    hold each (by its base array). One whose count drops to 0 is given back (`give`). With
    recycling off, `Owned()` is a ledger that records nothing."""

    __slots__ = ("count", "arrays")

    def __new__(cls):
        return super().__new__(cls) if _enabled else _NO_LEDGER

    def __init__(self):
        self.count: dict[int, int] = {}
        self.arrays: dict[int, np.ndarray] = {}

    def add(self, g, node, gin) -> None:
        """Register a VJP output g of node (incoming gradient gin): an alias of gin (counted
        if gin is ours), a view of an array the node saved (never ours), or new (ours)."""
        if type(g) is not np.ndarray or not node.op.primitive:
            return
        root = g if g.base is None else g.base
        if type(root) is not np.ndarray or root.nbytes < MIN_BYTES:  # (small: not worth the bookkeeping;
            return  # a leased array's memory goes back by itself)
        key = id(root)
        if key in self.count:
            self.count[key] += 1
            return
        if root is gin or root is getattr(gin, "base", None) or not root.flags.writeable:
            return  # gin was not ours (or handed out): neither is its view
        for d in node.datas:
            if root is d or (type(d) is np.ndarray and root is d.base):
                return
        if root is node.out or root is getattr(node.out, "base", None):
            return
        self.count[key] = 1
        self.arrays[key] = root

    def new(self, a) -> None:
        """a is an array the engine just made (a sum of two gradients): ours, in one slot."""
        if type(a) is np.ndarray and a.nbytes >= MIN_BYTES:
            self.count[id(a)] = 1
            self.arrays[id(a)] = a

    def drop(self, g) -> None:
        """A pending slot holding g is gone; recycle g's array if that was the last one."""
        if type(g) is not np.ndarray:
            return
        root = g if g.base is None else g.base
        if root.nbytes < MIN_BYTES:
            return
        key = id(root)
        n = self.count.get(key)
        if n is not None:
            if n > 1:
                self.count[key] = n - 1
            else:
                del self.count[key]
                give(self.arrays.pop(key))

    def hand_out(self, g) -> None:
        """g leaves the engine (a hook, .grad, a retained grad): never recycled."""
        if type(g) is np.ndarray:
            key = id(g if g.base is None else g.base)
            self.count.pop(key, None)
            self.arrays.pop(key, None)


class Workspace:
    """Work arrays owned by one object (an optimizer): `n` arrays shaped like `like`, as views
    into a few flat buffers that grow to the largest size asked for. Views are cached per shape
    (making them costs more than a small parameter's update). Not shared between threads."""

    def __init__(self) -> None:
        self._buffers: dict[np.dtype, list[np.ndarray]] = {}
        self._views: dict[tuple, list[np.ndarray]] = {}

    def get(self, like: np.ndarray, n: int) -> list[np.ndarray]:
        """n arrays shaped and typed like `like`, views into this workspace's flat buffers (reused across calls;
        new arrays every call with recycling off)."""
        if not _enabled:
            return [np.empty_like(like) for _ in range(n)]
        key = (like.shape, like.dtype, n)
        views = self._views.get(key)
        if views is None:
            bufs = self._buffers.get(like.dtype)
            size = like.size
            if bufs is None or len(bufs) < n or bufs[0].size < size:
                have = bufs[0].size if bufs else 0
                bufs = [np.empty(max(size, have), like.dtype) for _ in range(max(n, len(bufs or ())))]
                self._buffers[like.dtype] = bufs
                self._views.clear()  # views of the old, smaller buffers
            views = self._views[key] = [b[:size].reshape(like.shape) for b in bufs[:n]]
        return views


_NO_LEDGER = _NoLedger()
_ZEROS: dict = {}  # (shape, dtype) -> a read-only array of zeros


def zeros(shape: tuple, dtype) -> np.ndarray:
    """Read-only zeros of this shape and dtype, cached (at most 32 shapes; new each call with
    recycling off). relu's np.maximum(x, zeros) runs NumPy's vectorised loop, which the scalar 0
    does not (3-4x faster on a batch of activations, the same bits, NaN and -0.0 included)."""
    key = (shape, dtype)
    z = _ZEROS.get(key) if _enabled else None
    if z is None:
        z = np.zeros(shape, dtype)  # (calloc: untouched pages cost nothing)
        z.flags.writeable = False
        if _enabled:
            if len(_ZEROS) >= 32:
                _ZEROS.clear()
            _ZEROS[key] = z
    return z


def product(g, d, fresh: bool):
    """g * d for a VJP: on Tensors (create_graph) the differentiable product; on arrays, into d
    when `fresh` (d was made for this product alone), else into a recycled array when large."""
    if type(g) is not np.ndarray and not isinstance(g, np.generic) or type(d) not in (np.ndarray, float, int):
        return g * d
    if np.shape(d) not in ((), g.shape):
        return g * d
    dtype = np.result_type(g, d)
    if _enabled and fresh and type(d) is np.ndarray and d.dtype == dtype and d.flags.writeable:
        return np.multiply(g, d, out=d)
    return np.multiply(g, d, out=take(g.shape, dtype)) if g.nbytes >= MIN_BYTES else g * d


def tune_malloc(enable: bool = True) -> bool:
    """Opt in to keeping freed memory in the process (glibc only): raise malloc's mmap and trim
    thresholds so that large arrays freed and re-allocated every training step stop costing
    page faults (measured: about 250 faults and 0.5 ms per step of the CNN benchmark).

    This changes a process-wide setting, so deltaprop never does it on its own: call it, or set
    DELTAPROP_TUNE_MALLOC=1 (or DELTAPROP_RECYCLE=malloc) before importing deltaprop. The cost is
    that memory freed by large arrays stays with the process. Returns True if the setting was
    applied (False on other C libraries, and with DELTAPROP_RECYCLE=0). enable=False restores
    glibc's defaults (dynamic thresholds are not restored)."""
    if enable and not _malloc_allowed:
        return False
    import ctypes
    import ctypes.util
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
    mmap, trim = (64 << 20, 128 << 20) if enable else (128 << 10, 128 << 10)
    return bool(mallopt(m_mmap_threshold, mmap)) and bool(mallopt(m_trim_threshold, trim))
