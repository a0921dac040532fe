"""DistributedDataParallel: one model replica per MPI rank, gradients averaged over the ranks.

As PyTorch's: every rank runs forward and backward on its own part of the batch; backward
averages the gradients over the ranks, so each rank's optimizer takes the same step and the
replicas stay identical (MPI's Allreduce gives every rank the same bits). Parameters are
grouped, in reverse order of `parameters()` (roughly the order backward finishes them), into
buckets of about `bucket_cap_mb`; a bucket's non-blocking Allreduce starts as soon as all its
gradients are final (a post-accumulate-grad hook), so communication overlaps the rest of
backward, and the pass waits for all of them at its end (a backward-pass callback).
"""
from __future__ import annotations

import contextlib
import functools
from typing import Any, Iterator

import numpy as np

from .. import distributed as dist
from ..hooks import queue_callback
from ..tensor import Tensor
from .module import Module

__all__ = ["DistributedDataParallel"]


class _Bucket:
    """Parameters whose gradients are reduced together, in one flat buffer of their dtype."""

    def __init__(self, params: list, dtype):
        self.params = params
        self.offsets = np.cumsum([0] + [p.data.size for p in params])
        self.buf = np.zeros(int(self.offsets[-1]), dtype)
        self.ready: set[int] = set()
        self.work: Any = None  # the all-reduce in flight (dist.Work)

    def put(self, j: int, grad) -> None:
        """Copy parameter j's gradient (None: this rank gave it none, a zero contribution) into the buffer."""
        part = self.buf[self.offsets[j]:self.offsets[j + 1]]
        if grad is None:
            part[...] = 0
        else:
            part[...] = grad.data.ravel()
        self.ready.add(j)


class DistributedDataParallel(Module):
    """Wrap `module` for data-parallel training over the ranks of deltaprop.distributed.

    At construction every rank must hold the same parameter and buffer names, shapes and dtypes
    (else RuntimeError on every rank); rank 0's values are broadcast to all. Each backward
    averages the gradients over the ranks (a parameter that got no gradient on a rank counts
    as zeros there). With broadcast_buffers=True, buffers (BatchNorm's running statistics)
    follow rank 0: they are broadcast before each forward. `state_dict()` has the plain model's
    keys; the model itself is `.module`.
    """

    def __init__(self, module: Module, bucket_cap_mb: float = 25.0, broadcast_buffers: bool = True) -> None:
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel: expected a dp.nn.Module, got {type(module).__name__}")
        if not dist.is_initialized():
            raise RuntimeError("DistributedDataParallel: the process group is not initialized; call "
                               "deltaprop.distributed.init_process_group() first")
        if not bucket_cap_mb > 0:
            raise ValueError(f"DistributedDataParallel: bucket_cap_mb must be > 0, got {bucket_cap_mb}")
        self.module = module
        self.broadcast_buffers = bool(broadcast_buffers)
        self.require_backward_grad_sync = True
        self.world_size = dist.get_world_size()
        self._check_same_model()
        for t in self._state_tensors():
            dist.broadcast(t, src=0)
        self._buckets: list[_Bucket] = []
        self._next = 0  # the next bucket to launch: every rank launches them in the same order
        self._armed = False  # whether this pass has queued its final callback
        if self.world_size > 1:  # (a world of one has nothing to average: backward stays as without DDP)
            self._build_buckets(bucket_cap_mb * 2 ** 20)

    # -- construction ------------------------------------------------------------------------
    def _state_tensors(self) -> list[Tensor]:
        return [t for _, t in self.module.named_parameters()] + [t for _, t in self.module.named_buffers()]

    def _check_same_model(self) -> None:
        def describe(kind, items):
            return [(kind, name, tuple(t.shape), str(t.dtype)) for name, t in items]
        mine = describe("parameter", self.module.named_parameters()) + describe("buffer", self.module.named_buffers())
        everyone = dist._allgather_object(mine, "DistributedDataParallel")
        ref = everyone[0]
        for rank, theirs in enumerate(everyone[1:], start=1):
            if theirs == ref:
                continue
            names0, names = [e[:2] for e in ref], [e[:2] for e in theirs]
            if names0 != names:
                only0 = [f"{k} '{n}'" for k, n in names0 if (k, n) not in names]
                only = [f"{k} '{n}'" for k, n in names if (k, n) not in names0]
                detail = (f"rank 0 has {', '.join(only0) or 'nothing'} that rank {rank} lacks, rank {rank} has "
                          f"{', '.join(only) or 'nothing'} that rank 0 lacks"
                          if only0 or only else "the same names in a different order")
            else:
                a, b = next((a, b) for a, b in zip(ref, theirs) if a != b)
                detail = (f"{a[0]} '{a[1]}' has shape {a[2]} and dtype {a[3]} on rank 0 but shape {b[2]} and "
                          f"dtype {b[3]} on rank {rank}")
            raise RuntimeError(f"DistributedDataParallel: the ranks do not hold the same model: {detail}. Build "
                               "the same architecture on every rank (same sizes, same dtype) before wrapping it")

    def _build_buckets(self, cap_bytes: float) -> None:
        params = [p for p in self.module.parameters() if p.requires_grad]
        group: list = []
        size = 0
        for p in reversed(params):  # (backward finishes the last layers first)
            if group and (p.dtype != group[0].dtype or size >= cap_bytes):
                self._buckets.append(_Bucket(group, group[0].dtype))
                group, size = [], 0
            group.append(p)
            size += p.data.nbytes
        if group:
            self._buckets.append(_Bucket(group, group[0].dtype))
        for b, bucket in enumerate(self._buckets):
            for j, p in enumerate(bucket.params):
                p.register_post_accumulate_grad_hook(functools.partial(self._grad_ready, b, j))

    # -- backward --------------------------------------------------------------------------------
    def _grad_ready(self, b: int, j: int, p: Tensor) -> None:
        """p's gradient is final for this pass: put it in its bucket; launch the buckets that are full."""
        if not self.require_backward_grad_sync:
            return
        if not self._armed:
            self._armed = True
            queue_callback(self._finish_pass)
        self._buckets[b].put(j, p.grad)
        self._launch(full_only=True)

    def _launch(self, full_only: bool) -> None:
        buckets = self._buckets
        while self._next < len(buckets):
            bucket = buckets[self._next]
            if len(bucket.ready) < len(bucket.params):
                if full_only:
                    break
                for j, p in enumerate(bucket.params):  # not reached in this pass on this rank
                    if j not in bucket.ready:
                        bucket.put(j, p.grad)
            bucket.work = dist.all_reduce(bucket.buf, dist.ReduceOp.SUM, async_op=True)
            self._next += 1
        for bucket in buckets[:self._next]:  # lets MPI progress what is in flight (MPICH has no progress thread)
            if bucket.work is not None:
                bucket.work.is_completed()

    def _finish_pass(self) -> None:
        """End of backward: launch what is left, wait for every bucket, write the averaged grads."""
        self._launch(full_only=False)
        n = self.world_size
        for bucket in self._buckets:
            bucket.work.wait()
            for j, p in enumerate(bucket.params):
                o0, o1 = bucket.offsets[j], bucket.offsets[j + 1]
                p.grad = Tensor((bucket.buf[o0:o1] / n).reshape(p.shape))  # a new array: .grad is the user's
            bucket.work = None
            bucket.ready.clear()
        self._next, self._armed = 0, False

    @contextlib.contextmanager
    def no_sync(self) -> Iterator[None]:
        """Backward inside accumulates gradients locally, without communication; the first
        backward after it averages the accumulated gradients (gradient accumulation)."""
        old, self.require_backward_grad_sync = self.require_backward_grad_sync, False
        try:
            yield
        finally:
            self.require_backward_grad_sync = old

    # -- forward and state -------------------------------------------------------------------------
    def _sync_buffers(self) -> None:
        """Copy rank 0's buffers (e.g. BatchNorm's running statistics) to every rank."""
        if self.world_size > 1:
            for _, b in self.module.named_buffers():
                dist.broadcast(b, src=0)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The wrapped module's forward (after taking rank 0's buffers when broadcast_buffers)."""
        if self.broadcast_buffers:
            self._sync_buffers()
        return self.module(*args, **kwargs)

    def state_dict(self, destination: dict | None = None, prefix: str = "", keep_vars: bool = False) -> dict:
        """The wrapped module's state_dict: the plain model's keys (no 'module.' prefix)."""
        return self.module.state_dict(destination, prefix, keep_vars)

    def load_state_dict(self, state_dict: dict[str, Any], strict: bool = True):
        """Load into the wrapped module (the plain model's keys)."""
        return self.module.load_state_dict(state_dict, strict)
