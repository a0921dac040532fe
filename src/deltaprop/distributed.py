"""The MPI process group, with torch.distributed's names (mpi4py, optional: `pip install deltaprop[mpi]`).

Launched by `mpiexec -n N python ...` (or any MPI launcher), `init_process_group()` joins the MPI
world: N processes, ranks 0..N-1. Started any other way it makes a world of one process, where
every collective is the identity, and mpi4py is never imported. `import deltaprop` never imports
mpi4py either. Collectives work in place on Tensors (or ndarrays) and follow torch.distributed:
`all_reduce(t, op=ReduceOp.SUM)`, `broadcast(t, src)`, `all_gather(list, t)`, `barrier()`.

Failures do not hang the job: `init_process_group` installs a `sys.excepthook` that prints the
uncaught exception with its rank and calls MPI_Abort, so the launcher stops every rank.
"""
from __future__ import annotations

import enum
import os
import sys
import traceback
from typing import Any

import numpy as np

__all__ = ["ReduceOp", "Work", "init_process_group", "destroy_process_group", "is_initialized", "is_available",
           "get_rank", "get_world_size", "barrier", "all_reduce", "broadcast", "all_gather"]

# Environment variables that MPI launchers set in the processes they start: (size variable, launcher).
_LAUNCHERS = (("PMI_SIZE", "MPICH/Intel MPI (hydra) or Slurm PMI"), ("OMPI_COMM_WORLD_SIZE", "Open MPI"),
              ("MV2_COMM_WORLD_SIZE", "MVAPICH"))


class ReduceOp(enum.Enum):
    """How all_reduce combines the ranks' values (torch.distributed.ReduceOp). AVG = SUM / world size."""
    SUM = "SUM"
    PRODUCT = "PROD"
    MIN = "MIN"
    MAX = "MAX"
    AVG = "AVG"


class _Group:
    """The initialized world: an mpi4py communicator (None for a world of one), rank and size."""

    def __init__(self, comm, rank: int, size: int):
        self.comm, self.rank, self.size = comm, rank, size
        self.saved_hook: Any = None


_group: _Group | None = None


class Work:
    """What an all_reduce(..., async_op=True) returns: wait() completes it (torch's Work)."""

    def __init__(self, request=None, finish=None):
        self._request, self._finish = request, finish

    def wait(self) -> bool:
        """Block until the operation has completed and its result is in the tensor."""
        if self._request is not None:
            self._request.Wait()
            self._request = None
        if self._finish is not None:
            finish, self._finish = self._finish, None
            finish()
        return True

    def is_completed(self) -> bool:
        """Whether wait() would return at once (and lets MPI progress the operation)."""
        return self._request is None or bool(self._request.Test())


def is_available() -> bool:
    """Whether mpi4py can be imported (multi-process runs need it; a world of one does not)."""
    import importlib.util

    return importlib.util.find_spec("mpi4py") is not None


def _launched_size() -> tuple[int, str] | None:
    """(world size, launcher) announced by the launcher's environment, or None when not launched by MPI."""
    for var, who in _LAUNCHERS:
        value = os.environ.get(var)
        if value:
            try:
                return int(value), f"{who} ({var}={value})"
            except ValueError:
                raise RuntimeError(f"init_process_group: the environment variable {var}={value!r} is not a "
                                   "process count; was this process started by a broken MPI launcher?") from None
    return None


def init_process_group(backend: str | None = "mpi", *, world_size: int | None = None, rank: int | None = None) -> None:
    """Join the MPI world when launched by mpiexec (else a world of one process, no MPI needed).
    world_size/rank, when given, must match what MPI reports (a clear error otherwise)."""
    global _group
    if backend not in (None, "mpi"):
        raise ValueError(f"init_process_group: backend {backend!r} is not available; deltaprop runs on MPI "
                         "(backend='mpi', launched by mpiexec)")
    if _group is not None:
        raise RuntimeError("init_process_group: the process group is already initialized; call "
                           "destroy_process_group() first")
    launched = _launched_size()
    if launched is None:
        group = _Group(None, 0, 1)
    else:
        try:
            from mpi4py import MPI
        except ImportError as e:
            raise RuntimeError(f"init_process_group: this process was started by an MPI launcher ({launched[1]}) "
                               f"but mpi4py cannot be imported ({e}); install it with pip install "
                               "'deltaprop[mpi]'") from None
        comm = MPI.COMM_WORLD
        group = _Group(comm, comm.Get_rank(), comm.Get_size())
        if group.size != launched[0]:
            raise RuntimeError(
                f"init_process_group: the launcher started {launched[0]} processes ({launched[1]}) but MPI reports "
                f"a world of {group.size}: mpiexec and mpi4py use different MPI libraries. Run the mpiexec of the "
                f"MPI that mpi4py was built for ({' '.join(MPI.Get_library_version().split()[:3])}), e.g. the one "
                "installed next to this Python by the `mpich` wheel")
    for name, want, got in (("world_size", world_size, group.size), ("rank", rank, group.rank)):
        if want is not None and want != got:
            raise RuntimeError(f"init_process_group: {name}={want} was asked for but the MPI world gives "
                               f"{name} {got} (launched with {launched[1] if launched else 'no MPI launcher'}); "
                               f"start it with mpiexec -n {world_size if world_size else group.size} or drop "
                               f"the {name}= argument")
    if group.comm is not None:
        group.saved_hook = sys.excepthook
        sys.excepthook = _abort_on_exception
    _group = group


def _abort_on_exception(exc_type, exc, tb) -> None:
    """An uncaught exception on one rank: print it with the rank, then MPI_Abort so no rank waits forever."""
    g: Any = _group  # (set: this hook is installed by init_process_group)
    try:
        lines = traceback.format_exception(exc_type, exc, tb)
        sys.stderr.write(f"deltaprop.distributed: rank {g.rank} of {g.size} failed; aborting the MPI job\n"
                         + "".join(lines))
        sys.stderr.flush()
    finally:
        g.comm.Abort(1)


def _abort(code: int) -> None:
    """End every rank of the job now (MPI_Abort) with exit code `code`, after flushing this rank's output."""
    sys.stdout.flush()
    sys.stderr.flush()
    _world("abort").comm.Abort(code)


def destroy_process_group() -> None:
    """Leave the process group (the excepthook is restored; MPI itself is finalized at exit)."""
    global _group
    g = _group
    if g is None:
        return
    if g.comm is not None and sys.excepthook is _abort_on_exception:
        sys.excepthook = g.saved_hook
    _group = None


def is_initialized() -> bool:
    """Whether init_process_group() has been called (and not destroyed since)."""
    return _group is not None


def _world(what: str) -> _Group:
    if _group is None:
        raise RuntimeError(f"{what}: the process group is not initialized; call "
                           "deltaprop.distributed.init_process_group() first")
    return _group


def get_rank() -> int:
    """This process's rank, 0..world size - 1."""
    return _world("get_rank").rank


def get_world_size() -> int:
    """How many processes the job has."""
    return _world("get_world_size").size


def barrier() -> None:
    """Wait until every rank has reached this call."""
    g = _world("barrier")
    if g.comm is not None:
        g.comm.Barrier()


def _array(what: str, tensor: Any) -> np.ndarray:
    """The ndarray behind a Tensor (or the ndarray itself); TypeError for anything else."""
    from .tensor import Tensor

    if isinstance(tensor, Tensor):
        return tensor.data
    if isinstance(tensor, np.ndarray):
        return tensor
    raise TypeError(f"{what}: expected a deltaprop Tensor or a NumPy array, got {type(tensor).__name__}")


def _buffer(what: str, tensor: Any) -> tuple[np.ndarray, Any]:
    """The ndarray a collective works on in place: the tensor's own memory, or a contiguous copy
    written back by the returned function."""
    from .tensor import Tensor

    arr = _array(what, tensor)
    if not arr.flags.writeable:
        raise ValueError(f"{what}: the array (shape {arr.shape}) is read-only; the collective writes in place")

    def done(buf=None):
        if buf is not None and buf is not arr:
            arr[...] = buf
        if isinstance(tensor, Tensor):
            tensor._bump()  # an in-place change: backward through a node that saved the old value raises
    if arr.flags.c_contiguous:
        return arr, done
    buf = np.ascontiguousarray(arr)
    return buf, lambda: done(buf)


def all_reduce(tensor: Any, op: ReduceOp = ReduceOp.SUM, group: None = None, async_op: bool = False) -> Work | None:
    """Combine `tensor` over all ranks with `op`, in place: every rank ends with the same values
    (MPI_Allreduce; MPICH gives every rank the same bits). async_op=True returns a Work to wait() on."""
    g = _world("all_reduce")
    if not isinstance(op, ReduceOp):
        raise TypeError(f"all_reduce: op must be a deltaprop.distributed.ReduceOp, got {op!r}")
    buf, done = _buffer("all_reduce", tensor)
    if op is ReduceOp.AVG and buf.dtype.kind != "f":
        raise TypeError(f"all_reduce: ReduceOp.AVG needs a floating-point tensor, got dtype {buf.dtype}")

    def finish():
        if op is ReduceOp.AVG and g.size > 1:
            np.divide(buf, g.size, out=buf)
        done()
    if g.comm is None:
        req = None
    else:
        from mpi4py import MPI

        mpi_op = MPI.SUM if op is ReduceOp.AVG else getattr(MPI, op.value)
        if async_op:
            req = g.comm.Iallreduce(MPI.IN_PLACE, buf, op=mpi_op)
        else:
            g.comm.Allreduce(MPI.IN_PLACE, buf, op=mpi_op)
            req = None
    work = Work(req, finish)
    if async_op:
        return work
    work.wait()
    return None


def broadcast(tensor: Any, src: int = 0, group: None = None, async_op: bool = False) -> Work | None:
    """Copy rank `src`'s values of `tensor` into every rank's `tensor`, in place (MPI_Bcast)."""
    g = _world("broadcast")
    if not 0 <= src < g.size:
        raise ValueError(f"broadcast: src={src} is not a rank of this world of {g.size} processes")
    buf, done = _buffer("broadcast", tensor)
    if g.comm is not None:
        g.comm.Bcast(buf, root=src)
    done()
    return Work() if async_op else None


def all_gather(tensor_list: list, tensor: Any, group: None = None, async_op: bool = False) -> Work | None:
    """tensor_list[r] receives rank r's `tensor` (every rank's tensor must have the same shape and dtype)."""
    g = _world("all_gather")
    if len(tensor_list) != g.size:
        raise ValueError(f"all_gather: tensor_list has {len(tensor_list)} entries; it needs one per rank "
                         f"({g.size})")
    src = np.ascontiguousarray(_array("all_gather", tensor))  # (only read: it may be read-only)
    outs = [_buffer("all_gather", t) for t in tensor_list]
    for i, (o, _) in enumerate(outs):
        if o.shape != src.shape or o.dtype != src.dtype:
            raise ValueError(f"all_gather: tensor_list[{i}] has shape {o.shape} and dtype {o.dtype}; it must "
                             f"match the tensor's shape {src.shape} and dtype {src.dtype}")
    gathered = np.empty((g.size,) + src.shape, src.dtype)
    if g.comm is None:
        gathered[0] = src
    else:
        g.comm.Allgather(src, gathered)
    for (o, done), part in zip(outs, gathered):
        o[...] = part
        done()
    return Work() if async_op else None


def _allgather_object(obj: Any, what: str) -> list:
    """Every rank's `obj` (small, plain data such as names and shapes), in rank order."""
    g = _world(what)
    return [obj] if g.comm is None else g.comm.allgather(obj)
