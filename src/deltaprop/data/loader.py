"""TensorDataset and DataLoader, PyTorch-style; an epoch's shuffle depends only on (seed, epoch)."""
from __future__ import annotations

import math
from typing import Any, Iterator

import numpy as np

from ._common import as_array, check_int, check_seed
from .dataset import Dataset


class TensorDataset(Dataset):
    """Samples made of rows of several arrays (ndarrays or Tensors) of the same first length."""

    def __init__(self, *arrays: Any) -> None:
        if not arrays:
            raise ValueError("TensorDataset needs at least one array")
        arrs = tuple(as_array(a) for a in arrays)
        for i, a in enumerate(arrs):
            if a.ndim == 0:
                raise ValueError(f"TensorDataset: array {i} is a scalar (shape ()); every array needs a first axis")
        lengths = [len(a) for a in arrs]
        if len(set(lengths)) != 1:
            raise ValueError(f"TensorDataset: all arrays must have the same first length, got lengths {lengths}")
        self.arrays: tuple[np.ndarray, ...] = arrs

    @property
    def tensors(self) -> tuple[Any, ...]:
        """The arrays as deltaprop Tensors (sharing memory)."""
        from deltaprop.tensor import Tensor

        return tuple(Tensor(a) for a in self.arrays)

    def __len__(self) -> int:
        return len(self.arrays[0])

    def __getitem__(self, index: Any) -> tuple[Any, ...]:
        from deltaprop.tensor import Tensor

        return tuple(Tensor(np.asarray(a[index])) for a in self.arrays)

    def take(self, indices: np.ndarray) -> tuple[np.ndarray, ...]:
        """The batch at `indices` as fresh ndarrays: one fancy index per array."""
        return tuple(a[indices] for a in self.arrays)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{a.shape} {a.dtype}" for a in self.arrays)
        return f"TensorDataset({shapes})"


def _collate(samples: list[Any]) -> tuple[np.ndarray, ...]:
    """Stack a list of samples (each a tuple of fields, or one field) into one array per field."""
    from deltaprop._config import get_default_dtype

    first = samples[0]
    fields = list(zip(*samples)) if isinstance(first, (tuple, list)) else [samples]
    out = []
    for values in fields:
        arr = np.stack([as_array(v) for v in values])
        if isinstance(values[0], float) and arr.dtype == np.float64:
            arr = arr.astype(get_default_dtype())  # Python floats -> the default dtype
        out.append(arr)
    return tuple(out)


class DataLoader:
    """Iterate over a dataset in batches of Tensors, like torch.utils.data.DataLoader.

    Each iter() shuffles with np.random.default_rng([seed, epoch]) then advances the epoch;
    set_epoch(e) picks the epoch of the next iter() (for resuming). With sampler= (e.g. a
    DistributedSampler) the batches follow the sampler's indices instead; as in PyTorch it
    excludes shuffle=True, and the sampler's own set_epoch reshuffles it.
    """

    def __init__(self, dataset: Any, batch_size: int = 1, shuffle: bool = False,
                 seed: int | None = None, drop_last: bool = False, sampler: Any = None) -> None:
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler option is mutually exclusive with shuffle=True (the sampler "
                             "decides the order; DistributedSampler shuffles itself)")
        self.dataset, self.sampler = dataset, sampler
        self.batch_size = check_int("batch_size", batch_size, minimum=1)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        seed = check_seed(seed)
        if seed is None and self.shuffle:
            from deltaprop._config import default_generator

            seed = int(default_generator().integers(0, 2**63 - 1))
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Make the next iter() run epoch `epoch` (its shuffle order is fixed by (seed, epoch))."""
        self.epoch = check_int("epoch", epoch, minimum=0)

    def __len__(self) -> int:
        n = len(self.dataset) if self.sampler is None else len(self.sampler)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def order(self, epoch: int) -> np.ndarray:
        """The sample order of epoch `epoch`: a permutation fixed by (seed, epoch), or 0..n-1
        (with a sampler: the indices it gives now, whatever `epoch`)."""
        if self.sampler is not None:
            return np.fromiter(iter(self.sampler), dtype=np.int64)
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng([self.seed, epoch]).permutation(n)  # type: ignore[arg-type]  # (seed is set)

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        order = self.order(self.epoch)
        self.epoch += 1
        return self._batches(order)

    def _batches(self, order: np.ndarray) -> Iterator[tuple[Any, ...]]:
        from deltaprop.tensor import Tensor

        bs = self.batch_size
        stop = len(order) - len(order) % bs if self.drop_last else len(order)
        fast = isinstance(self.dataset, TensorDataset) and type(self.dataset).__getitem__ is TensorDataset.__getitem__
        for start in range(0, stop, bs):
            idx = order[start:start + bs]
            if fast:
                arrays = self.dataset.take(idx)
            else:
                arrays = _collate([self.dataset[int(i)] for i in idx])
            yield tuple(Tensor(a) for a in arrays)

    def __repr__(self) -> str:
        sampler = "" if self.sampler is None else f"sampler={self.sampler!r}, "
        return (f"DataLoader({sampler}batch_size={self.batch_size}, shuffle={self.shuffle}, seed={self.seed}, "
                f"drop_last={self.drop_last}, epoch={self.epoch}, batches={len(self)})")
