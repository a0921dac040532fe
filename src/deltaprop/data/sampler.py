"""DistributedSampler: each rank's share of a data set, with PyTorch's index semantics."""
from __future__ import annotations

import math
from typing import Any, Iterator

import numpy as np

from ._common import check_int, check_seed


class DistributedSampler:
    """The indices of one rank's part of `dataset` (torch.utils.data.DistributedSampler).

    Every rank gets len(self) indices. Without drop_last the (shuffled) order is padded by
    repeating its start until it divides evenly; with drop_last its tail is dropped instead.
    Rank r takes positions r, r + num_replicas, ... of that order, so the ranks together cover
    the data set. The shuffle is a permutation fixed by (seed, epoch), the same on every rank:
    call set_epoch(epoch) before each epoch to reshuffle. num_replicas and rank default to
    deltaprop.distributed's world (1 and 0 when it is not initialized).
    """

    def __init__(self, dataset: Any, num_replicas: int | None = None, rank: int | None = None,
                 shuffle: bool = True, seed: int = 0, drop_last: bool = False) -> None:
        from .. import distributed as dist

        if num_replicas is None:
            num_replicas = dist.get_world_size() if dist.is_initialized() else 1
        if rank is None:
            rank = dist.get_rank() if dist.is_initialized() else 0
        self.num_replicas = check_int("num_replicas", num_replicas, minimum=1)
        self.rank = check_int("rank", rank, minimum=0)
        if self.rank >= self.num_replicas:
            raise ValueError(f"DistributedSampler: rank {rank} is out of range for num_replicas={num_replicas} "
                             f"(ranks are 0..{self.num_replicas - 1})")
        self.dataset, self.shuffle, self.drop_last = dataset, bool(shuffle), bool(drop_last)
        self.seed = check_seed(seed) or 0
        self.epoch = 0
        n = len(dataset)
        if self.drop_last and n % self.num_replicas:
            self.num_samples = math.ceil((n - self.num_replicas) / self.num_replicas)  # (PyTorch's formula)
        else:
            self.num_samples = math.ceil(n / self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas

    def set_epoch(self, epoch: int) -> None:
        """Use epoch `epoch`'s shuffle in the next iteration (call it before each epoch)."""
        self.epoch = check_int("epoch", epoch, minimum=0)

    def indices(self) -> np.ndarray:
        """This rank's indices for the current epoch, as an int64 array."""
        n = len(self.dataset)
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(n)
        else:
            order = np.arange(n)
        if self.drop_last:
            order = order[:self.total_size]
        elif self.total_size > n and n:
            order = np.resize(order, self.total_size)  # pads by repeating the order from its start
        return order[self.rank:self.total_size:self.num_replicas].astype(np.int64)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        return self.num_samples

    def __repr__(self) -> str:
        return (f"DistributedSampler(num_replicas={self.num_replicas}, rank={self.rank}, shuffle={self.shuffle}, "
                f"seed={self.seed}, drop_last={self.drop_last}, epoch={self.epoch}, num_samples={self.num_samples})")
