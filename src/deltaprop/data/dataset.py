"""Dataset (the base class, PyTorch's), Subset, ConcatDataset and random_split."""
from __future__ import annotations

import bisect
import itertools
import math
import warnings
from typing import Any, Sequence

import numpy as np

from ._common import check_int, check_seed

__all__ = ["Dataset", "Subset", "ConcatDataset", "random_split"]


class Dataset:
    """A map-style dataset: subclasses define __getitem__(index) and __len__(), as in PyTorch.
    `a + b` concatenates two datasets."""

    def __getitem__(self, index: int) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must define __len__")

    def __add__(self, other: Dataset) -> ConcatDataset:
        return ConcatDataset([self, other])


class Subset(Dataset):
    """The samples of `dataset` at `indices`, in that order."""

    def __init__(self, dataset: Any, indices: Sequence[int]) -> None:
        self.dataset, self.indices = dataset, list(indices)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, (list, tuple, np.ndarray)):
            return [self.dataset[self.indices[int(i)]] for i in index]
        return self.dataset[self.indices[index]]

    def __len__(self) -> int:
        return len(self.indices)

    def __repr__(self) -> str:
        return f"Subset({len(self.indices)} of {len(self.dataset)} samples)"


class ConcatDataset(Dataset):
    """Several datasets one after the other."""

    def __init__(self, datasets: Sequence[Any]) -> None:
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("ConcatDataset: datasets should not be an empty iterable")
        self.cumulative_sizes = list(itertools.accumulate(len(d) for d in self.datasets))

    def __len__(self) -> int:
        return self.cumulative_sizes[-1]

    def __getitem__(self, index: int) -> Any:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"ConcatDataset: index {index} is out of range for {n} samples")
        index %= n
        i = bisect.bisect_right(self.cumulative_sizes, index)
        return self.datasets[i][index - (self.cumulative_sizes[i - 1] if i else 0)]


def random_split(dataset: Any, lengths: Sequence[int | float], generator: Any = None, *,
                 seed: int | None = None) -> list[Subset]:
    """Split a dataset into non-overlapping random Subsets of the given lengths, or of fractions
    summing to 1 (floor(n * f) each, the remainder spread one by one from the first, as PyTorch).
    The permutation comes from `generator` (an np.random.Generator or an int seed), `seed=`, or
    the library's default generator (dp.manual_seed)."""
    n = len(dataset)
    lengths = list(lengths)
    if not lengths:
        raise ValueError("random_split: lengths must not be empty")
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        sizes = []
        for i, frac in enumerate(lengths):
            if not 0 <= frac <= 1:
                raise ValueError(f"random_split: fraction at index {i} is not between 0 and 1, got {frac}")
            sizes.append(int(math.floor(n * frac)))
        for i in range(n - sum(sizes)):
            sizes[i % len(sizes)] += 1
        for i, size in enumerate(sizes):
            if size == 0:
                warnings.warn(f"random_split: length of split at index {i} is 0; this might result in an "
                              "empty dataset.", UserWarning, stacklevel=2)
        lengths = sizes
    else:
        lengths = [check_int(f"random_split: lengths[{i}]", v, minimum=0) for i, v in enumerate(lengths)]
    if sum(lengths) != n:
        raise ValueError(f"random_split: sum of input lengths ({sum(lengths)}) does not equal the length of the "
                         f"input dataset ({n}); pass lengths summing to {n} or fractions summing to 1")
    if generator is not None and seed is not None:
        raise ValueError("random_split: pass either generator or seed, not both")
    if isinstance(generator, np.random.Generator):
        rng = generator
    elif generator is not None or seed is not None:
        rng = np.random.default_rng(check_seed(seed if generator is None else generator, "generator/seed"))
    else:
        from deltaprop._config import default_generator

        rng = default_generator()
    order = rng.permutation(n).tolist()
    bounds = list(itertools.accumulate(lengths))
    return [Subset(dataset, order[end - size:end]) for end, size in zip(bounds, lengths)]
