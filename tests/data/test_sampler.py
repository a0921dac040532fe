"""DistributedSampler (PyTorch's index semantics) and DataLoader(sampler=...)."""
from __future__ import annotations

import numpy as np
import pytest

import deltaprop as dp
from deltaprop.data import DataLoader, DistributedSampler, TensorDataset


def ranks(n, replicas, **kw):
    return [DistributedSampler(range(n), num_replicas=replicas, rank=r, **kw) for r in range(replicas)]


@pytest.mark.parametrize("n,replicas", [(10, 3), (10, 2), (7, 4), (2, 5), (12, 4)])
@pytest.mark.parametrize("drop_last", [False, True])
def test_unshuffled_indices_equal_pytorch(torch, n, replicas, drop_last):
    from torch.utils.data import DistributedSampler as TorchSampler

    for r, s in enumerate(ranks(n, replicas, shuffle=False, drop_last=drop_last)):
        t = TorchSampler(range(n), num_replicas=replicas, rank=r, shuffle=False, drop_last=drop_last)
        assert list(s) == list(t) and len(s) == len(t)


@pytest.mark.parametrize("n,replicas", [(10, 3), (101, 4), (3, 8), (64, 2)])
def test_coverage_equal_counts_and_padding_by_repetition(n, replicas):
    samplers = ranks(n, replicas, seed=7)
    parts = [s.indices() for s in samplers]
    per_rank = -(-n // replicas)
    assert all(len(p) == per_rank == len(s) for p, s in zip(parts, samplers))
    allidx = np.concatenate(parts)
    assert set(allidx.tolist()) == set(range(n))  # together they cover the data set
    # the interleaved order is the epoch's permutation padded by its own start
    order = np.empty(per_rank * replicas, np.int64)
    for r, p in enumerate(parts):
        order[r::replicas] = p
    perm = order[:n]
    assert sorted(perm.tolist()) == list(range(n))
    repeated = np.concatenate([perm] * (per_rank * replicas // n + 1))  # (PyTorch: indices += indices[:pad])
    np.testing.assert_array_equal(order, repeated[:per_rank * replicas])


def test_drop_last_drops_the_tail_and_nothing_repeats():
    parts = [s.indices() for s in ranks(10, 3, drop_last=True, seed=1)]
    assert [len(p) for p in parts] == [3, 3, 3]
    allidx = np.concatenate(parts)
    assert len(set(allidx.tolist())) == 9


def test_reshuffled_each_epoch_identically_on_every_rank():
    a, b = ranks(50, 2, seed=3), ranks(50, 2, seed=3)  # two "processes" building the same samplers
    first = [s.indices() for s in a]
    for s in a + b:
        s.set_epoch(1)
    second = [s.indices() for s in a]
    assert not np.array_equal(first[0], second[0])
    for x, y in zip(second, [s.indices() for s in b]):
        np.testing.assert_array_equal(x, y)  # the same epoch gives the same split everywhere
    assert set(np.concatenate(second).tolist()) == set(range(50))
    unshuffled = ranks(50, 2, shuffle=False)[1]
    unshuffled.set_epoch(5)
    np.testing.assert_array_equal(unshuffled.indices(), np.arange(1, 50, 2))


def test_defaults_follow_the_process_group_and_bad_arguments():
    s = DistributedSampler(range(5))  # not initialized: one replica, rank 0
    assert (s.num_replicas, s.rank, len(s)) == (1, 0, 5)
    with pytest.raises(ValueError, match="rank 3 is out of range for num_replicas=3"):
        DistributedSampler(range(5), num_replicas=3, rank=3)
    with pytest.raises(ValueError, match="num_replicas must be >= 1"):
        DistributedSampler(range(5), num_replicas=0, rank=0)


def test_dataloader_with_a_sampler():
    X = np.arange(20, dtype=np.float64).reshape(10, 2)
    ds = TensorDataset(X, np.arange(10))
    sampler = DistributedSampler(ds, num_replicas=3, rank=1, seed=0)
    loader = DataLoader(ds, batch_size=2, sampler=sampler)
    assert len(loader) == 2  # 4 samples on this rank
    got = np.concatenate([t.numpy() for _, t in loader])
    np.testing.assert_array_equal(got, sampler.indices())
    sampler.set_epoch(1)
    again = np.concatenate([t.numpy() for _, t in loader])
    np.testing.assert_array_equal(again, sampler.indices())
    assert not np.array_equal(got, again)
    with pytest.raises(ValueError, match="sampler option is mutually exclusive with shuffle=True"):
        DataLoader(ds, batch_size=2, shuffle=True, sampler=sampler)
    assert isinstance(next(iter(DataLoader(ds, batch_size=4, sampler=sampler)))[0], dp.Tensor)
