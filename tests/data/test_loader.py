"""TensorDataset and DataLoader."""
import numpy as np
import pytest

import deltaprop._config as config
from deltaprop.data import DataLoader, TensorDataset


def tensor_cls():
    from deltaprop.tensor import Tensor

    return Tensor


def make_ds(n=10):
    X = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
    y = np.arange(n, dtype=np.int64)
    return TensorDataset(X, y)


def seen(loader):
    """The y values of one epoch, batch by batch (y[i] == i in make_ds)."""
    return [np.asarray(yb).tolist() for _, yb in loader]


# ---------------------------------------------------------------- order logic (ndarray level)

def test_order_is_a_function_of_seed_and_epoch():
    a = DataLoader(make_ds(50), batch_size=7, shuffle=True, seed=3)
    b = DataLoader(make_ds(50), batch_size=4, shuffle=True, seed=3)
    c = DataLoader(make_ds(50), batch_size=7, shuffle=True, seed=4)
    for e in range(3):
        np.testing.assert_array_equal(a.order(e), b.order(e))
        np.testing.assert_array_equal(a.order(e), np.random.default_rng([3, e]).permutation(50))
        assert sorted(a.order(e).tolist()) == list(range(50))
    assert not np.array_equal(a.order(0), a.order(1))
    assert not np.array_equal(a.order(0), c.order(0))


def test_no_shuffle_order():
    loader = DataLoader(make_ds(5), batch_size=2)
    np.testing.assert_array_equal(loader.order(0), np.arange(5))
    np.testing.assert_array_equal(loader.order(7), np.arange(5))


def test_len():
    ds = make_ds(10)
    assert len(ds) == 10
    assert len(DataLoader(ds, batch_size=3)) == 4
    assert len(DataLoader(ds, batch_size=3, drop_last=True)) == 3
    assert len(DataLoader(ds, batch_size=5, drop_last=True)) == 2
    assert len(DataLoader(ds, batch_size=20)) == 1
    assert len(DataLoader(ds, batch_size=20, drop_last=True)) == 0
    assert len(DataLoader(ds)) == 10


def test_dataset_validation():
    with pytest.raises(ValueError, match=r"\[10, 9\]"):
        TensorDataset(np.zeros((10, 2)), np.zeros(9))
    with pytest.raises(ValueError, match="at least one"):
        TensorDataset()
    with pytest.raises(ValueError, match="scalar"):
        TensorDataset(np.float32(1.0))


def test_loader_validation():
    ds = make_ds()
    with pytest.raises(ValueError, match="batch_size=0"):
        DataLoader(ds, batch_size=0)
    with pytest.raises(TypeError, match="batch_size"):
        DataLoader(ds, batch_size=2.5)
    with pytest.raises(ValueError, match="seed=-1"):
        DataLoader(ds, shuffle=True, seed=-1)
    with pytest.raises(ValueError, match="epoch=-2"):
        DataLoader(ds).set_epoch(-2)


def test_seed_drawn_from_default_generator_once():
    config.manual_seed(123)
    a = DataLoader(make_ds(), shuffle=True)
    config.manual_seed(123)
    b = DataLoader(make_ds(), shuffle=True)
    assert isinstance(a.seed, int) and a.seed == b.seed
    c = DataLoader(make_ds(), shuffle=True)
    assert c.seed != a.seed
    assert DataLoader(make_ds()).seed is None  # no shuffle: nothing drawn


# ---------------------------------------------------------------- batches of Tensors

def test_getitem_returns_tensors():
    Tensor = tensor_cls()
    ds = make_ds()
    x, y = ds[3]
    assert isinstance(x, Tensor) and isinstance(y, Tensor)
    assert x.shape == (3,) and x.dtype == np.float32
    assert y.shape == () and y.dtype == np.int64 and y.item() == 3
    xs, ys = ds[2:4]
    assert xs.shape == (2, 3)


def test_dataset_accepts_tensors():
    Tensor = tensor_cls()
    X = Tensor(np.ones((4, 2), dtype=np.float64))
    ds = TensorDataset(X, np.arange(4))
    assert len(ds) == 4
    xb, yb = next(iter(DataLoader(ds, batch_size=3)))
    assert xb.dtype == np.float64 and xb.shape == (3, 2)
    with pytest.raises(ValueError, match=r"\[4, 3\]"):
        TensorDataset(X, Tensor(np.zeros(3)))


def test_batches_are_tensors_and_keep_dtypes():
    Tensor = tensor_cls()
    ds = TensorDataset(np.zeros((5, 2), dtype=np.float64), np.zeros(5, dtype=np.int64),
                       np.zeros((5, 1, 2), dtype=np.float32))
    batches = list(DataLoader(ds, batch_size=2))
    assert [len(b) for b in batches] == [3, 3, 3]
    assert [b[0].shape for b in batches] == [(2, 2), (2, 2), (1, 2)]
    for xb, yb, zb in batches:
        assert isinstance(xb, Tensor) and isinstance(yb, Tensor) and isinstance(zb, Tensor)
        assert xb.dtype == np.float64 and yb.dtype == np.int64 and zb.dtype == np.float32
        assert zb.shape[1:] == (1, 2)
        assert not xb.requires_grad


def test_batch_rows_stay_aligned():
    for xb, yb in DataLoader(make_ds(23), batch_size=5, shuffle=True, seed=1):
        x, y = np.asarray(xb), np.asarray(yb)
        np.testing.assert_array_equal(x[:, 0], 3 * y)


def test_batches_are_fresh_copies():
    X = np.zeros((4, 2), dtype=np.float32)
    ds = TensorDataset(X, np.arange(4))
    xb, _ = next(iter(DataLoader(ds, batch_size=4)))
    np.asarray(xb)[:] = 5
    assert X.max() == 0


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("n, bs", [(10, 3), (10, 5), (7, 1), (4, 10)])
def test_every_index_once_per_epoch(shuffle, n, bs):
    loader = DataLoader(make_ds(n), batch_size=bs, shuffle=shuffle, seed=0)
    for _ in range(3):
        batches = seen(loader)
        assert len(batches) == len(loader)
        assert all(len(b) == bs for b in batches[:-1]) and 1 <= len(batches[-1]) <= bs
        flat = [i for b in batches for i in b]
        assert sorted(flat) == list(range(n))
        if not shuffle:
            assert flat == list(range(n))


def test_drop_last():
    loader = DataLoader(make_ds(10), batch_size=3, shuffle=True, seed=2, drop_last=True)
    for e in range(3):
        batches = seen(loader)
        assert [len(b) for b in batches] == [3, 3, 3]
        flat = [i for b in batches for i in b]
        assert len(set(flat)) == 9
        assert flat == loader.order(e)[:9].tolist()
    assert seen(DataLoader(make_ds(10), batch_size=11, drop_last=True)) == []


def test_epochs_differ_and_replay():
    a = DataLoader(make_ds(30), batch_size=8, shuffle=True, seed=7)
    b = DataLoader(make_ds(30), batch_size=8, shuffle=True, seed=7)
    epochs_a = [seen(a) for _ in range(4)]
    epochs_b = [seen(b) for _ in range(4)]
    assert epochs_a == epochs_b
    assert epochs_a[0] != epochs_a[1]
    assert a.epoch == 4
    # resuming: a fresh loader set to epoch 2 replays epochs 2 and 3
    c = DataLoader(make_ds(30), batch_size=8, shuffle=True, seed=7)
    c.set_epoch(2)
    assert [seen(c), seen(c)] == epochs_a[2:]
    # another seed gives another order
    d = DataLoader(make_ds(30), batch_size=8, shuffle=True, seed=8)
    assert seen(d) != epochs_a[0]


def test_iter_advances_epoch_even_if_not_consumed():
    a = DataLoader(make_ds(12), batch_size=4, shuffle=True, seed=0)
    it = iter(a)
    assert a.epoch == 1
    first = [np.asarray(yb).tolist() for _, yb in it]
    assert [i for b in first for i in b] == a.order(0).tolist()
    iter(a)
    assert a.epoch == 2
    assert [i for b in seen(a) for i in b] == a.order(2).tolist()


def test_generic_dataset_is_collated():
    Tensor = tensor_cls()

    class Squares:
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return np.full(2, i, dtype=np.float64), i * i

    batches = list(DataLoader(Squares(), batch_size=2))
    assert len(batches) == 3
    xb, yb = batches[0]
    assert isinstance(xb, Tensor) and xb.dtype == np.float64 and xb.shape == (2, 2)
    assert np.asarray(yb).tolist() == [0, 1] and yb.dtype == np.int64
    assert np.asarray(batches[2][1]).tolist() == [16]


def test_generic_dataset_python_floats_use_default_dtype():
    class Floats:
        def __len__(self):
            return 3

        def __getitem__(self, i):
            return (float(i), np.int64(i))

    (xb, yb), _ = list(DataLoader(Floats(), batch_size=2))
    assert xb.dtype == config.get_default_dtype()
    assert yb.dtype == np.int64


def test_loader_with_tensor_dataset_subclass_uses_getitem():
    class Doubled(TensorDataset):
        def __getitem__(self, i):
            x, y = self.arrays[0][i], self.arrays[1][i]
            return 2 * x, y

    ds = Doubled(np.ones((4, 2), dtype=np.float32), np.arange(4))
    xb, _ = next(iter(DataLoader(ds, batch_size=4)))
    assert np.asarray(xb).max() == 2
