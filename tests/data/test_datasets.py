"""Built-in datasets and train_test_split."""
from importlib import resources

import numpy as np
import pytest

import deltaprop._config as config
import deltaprop.data as data


@pytest.fixture
def float64_default():
    old = config.get_default_dtype()
    config.set_default_dtype(np.float64)
    yield
    config.set_default_dtype(old)


def test_public_names():
    for name in ["xor", "mazur", "moons", "circles", "spirals", "digits", "load_mnist",
                 "train_test_split", "TensorDataset", "DataLoader"]:
        assert hasattr(data, name), name
    assert set(data.__all__) >= {"xor", "digits", "DataLoader"}


def test_xor():
    X, y = data.xor()
    assert X.shape == (4, 2) and X.dtype == np.float32
    assert y.shape == (4,) and y.dtype == np.int64
    np.testing.assert_array_equal(X, [[0, 0], [0, 1], [1, 0], [1, 1]])
    np.testing.assert_array_equal(y, X[:, 0].astype(int) ^ X[:, 1].astype(int))


def test_mazur():
    X, t = data.mazur()
    assert X.shape == t.shape == (1, 2)
    assert X.dtype == t.dtype == np.float32
    X, t = data.mazur(dtype=np.float64)
    assert X.dtype == np.float64
    np.testing.assert_array_equal(X, [[0.05, 0.10]])
    np.testing.assert_array_equal(t, [[0.01, 0.99]])


def test_default_dtype_is_read_at_call_time(float64_default):
    for fn in (data.xor, data.mazur, data.moons, data.circles, data.spirals, data.digits):
        assert fn()[0].dtype == np.float64, fn.__name__
        assert fn(dtype=np.float32)[0].dtype == np.float32, fn.__name__


def test_non_float_dtype_is_refused():
    with pytest.raises(TypeError, match="int64"):
        data.xor(dtype=np.int64)


GENERATED = [data.moons, data.circles, data.spirals]


@pytest.mark.parametrize("fn", GENERATED)
def test_generated_shapes_and_balance(fn):
    X, y = fn()
    n = 300 if fn is data.spirals else 200
    k = 3 if fn is data.spirals else 2
    assert X.shape == (n, 2) and X.dtype == np.float32
    assert y.shape == (n,) and y.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(y), [n // k] * k)
    assert np.all(np.isfinite(X))


@pytest.mark.parametrize("fn", GENERATED)
def test_odd_sizes_stay_balanced(fn):
    X, y = fn(n=101)
    assert X.shape == (101, 2)
    counts = np.bincount(y)
    assert counts.sum() == 101 and counts.max() - counts.min() <= 1


def test_spirals_classes():
    X, y = data.spirals(n=23, classes=5)
    np.testing.assert_array_equal(np.bincount(y), [5, 5, 5, 4, 4])
    X, y = data.spirals(n=2, classes=2, noise=0.0)
    assert sorted(y.tolist()) == [0, 1]


@pytest.mark.parametrize("fn", GENERATED)
def test_seeded(fn):
    a, b = fn(seed=3), fn(seed=3)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    c = fn(seed=4)
    assert not np.array_equal(a[0], c[0])
    np.testing.assert_array_equal(fn()[0], fn(seed=0)[0])  # default seed 0


@pytest.mark.parametrize("fn", GENERATED)
def test_points_are_shuffled(fn):
    _, y = fn()
    assert not np.all(np.diff(y) >= 0)


def test_circles_geometry_without_noise():
    X, y = data.circles(n=50, noise=0.0, factor=0.3, dtype=np.float64)
    r = np.hypot(X[:, 0], X[:, 1])
    np.testing.assert_allclose(r[y == 0], 1.0)
    np.testing.assert_allclose(r[y == 1], 0.3)


def test_moons_geometry_without_noise():
    X, y = data.moons(n=40, noise=0.0, dtype=np.float64)
    up, lo = X[y == 0], X[y == 1]
    np.testing.assert_allclose(np.hypot(up[:, 0], up[:, 1]), 1.0)
    assert np.all(up[:, 1] >= -1e-12)
    np.testing.assert_allclose(np.hypot(lo[:, 0] - 1.0, lo[:, 1] - 0.5), 1.0)
    assert np.all(lo[:, 1] <= 0.5 + 1e-12)


def test_spirals_radius_without_noise():
    X, y = data.spirals(n=30, classes=3, noise=0.0, dtype=np.float64)
    r = np.hypot(X[:, 0], X[:, 1])
    for k in range(3):
        np.testing.assert_allclose(np.sort(r[y == k]), np.linspace(0, 1, 10), atol=1e-12)


@pytest.mark.parametrize("call, match", [
    (lambda: data.moons(n=1), "n=1"),
    (lambda: data.moons(noise=-0.1), "noise=-0.1"),
    (lambda: data.moons(noise=float("nan")), "noise=nan"),
    (lambda: data.circles(n=0), "n=0"),
    (lambda: data.circles(factor=1.5), "factor=1.5"),
    (lambda: data.circles(factor=-0.1), "factor=-0.1"),
    (lambda: data.spirals(classes=1), "classes=1"),
    (lambda: data.spirals(n=2, classes=3), "n=2, classes=3"),
    (lambda: data.spirals(noise=-1), "noise=-1"),
    (lambda: data.moons(seed=-1), "seed=-1"),
])
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_bad_argument_types():
    with pytest.raises(TypeError, match="n must be an integer"):
        data.moons(n=10.5)
    with pytest.raises(TypeError, match="n must be an integer"):
        data.moons(n=True)


# ---------------------------------------------------------------- digits

def test_digits_shape_and_dtype():
    X, y = data.digits()
    assert X.shape == (1797, 64) and X.dtype == np.float32
    assert y.shape == (1797,) and y.dtype == np.int64
    assert data.digits(dtype=np.float64)[0].dtype == np.float64


def test_digits_content_matches_scikit_learn_copy():
    # figures verified against sklearn.datasets.load_digits() (scikit-learn 1.9.1)
    X, y = data.digits()
    np.testing.assert_array_equal(np.bincount(y), [178, 182, 177, 183, 181, 182, 181, 179, 174, 180])
    assert X.min() == 0 and X.max() == 16
    np.testing.assert_array_equal(X, np.round(X))  # integer pixels, not rescaled
    np.testing.assert_array_equal(y[:10], np.arange(10))
    assert X[0].sum() == 294
    np.testing.assert_array_equal(X[0, :8], [0, 0, 5, 13, 9, 1, 0, 0])
    np.testing.assert_array_equal(X[0].reshape(8, 8)[:, 0], 0)
    assert X[:5].sum(axis=1).tolist() == [294, 313, 344, 267, 258]
    assert X[-1].sum() == 392
    assert X.astype(np.float64).sum() == 561718


def test_digits_returns_fresh_arrays():
    X, y = data.digits()
    X[:] = -1
    y[:] = -1
    X2, y2 = data.digits()
    assert X2.min() == 0 and y2.min() == 0


def test_digits_file_and_licence_ship_in_package():
    root = resources.files("deltaprop.data")
    blob = root.joinpath("digits.npz").read_bytes()
    assert len(blob) < 100_000
    text = root.joinpath("DIGITS_LICENSE.txt").read_text(encoding="utf-8")
    assert "CC BY 4.0" in text and "Optical Recognition of Handwritten Digits" in text
    assert "Alpaydin" in text


def test_import_is_lazy():
    import subprocess
    import sys

    code = ("import sys, deltaprop.data; "
            "assert 'deltaprop.data.datasets' in sys.modules; "
            "from deltaprop.data.datasets import _digits_raw; "
            "assert _digits_raw.cache_info().currsize == 0")
    subprocess.run([sys.executable, "-c", code], check=True, env=None)


# ---------------------------------------------------------------- train_test_split

def _xy(n=10):
    X = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
    y = np.arange(n, dtype=np.int64)
    return X, y


def test_split_sizes_order_and_alignment():
    X, y = _xy(10)
    Xtr, Xte, ytr, yte = data.train_test_split(X, y)
    assert Xtr.shape == (8, 2) and Xte.shape == (2, 2)
    assert ytr.shape == (8,) and yte.shape == (2,)
    assert Xtr.dtype == np.float32 and ytr.dtype == np.int64
    np.testing.assert_array_equal(Xtr[:, 0], 2 * ytr)  # rows stay with their labels
    np.testing.assert_array_equal(Xte[:, 0], 2 * yte)
    assert sorted(np.concatenate([ytr, yte]).tolist()) == list(range(10))


def test_split_fraction_rounds_test_up_and_int_count():
    X, y = _xy(11)
    assert len(data.train_test_split(X, y, test_size=0.25)[3]) == 3  # ceil(2.75)
    assert len(data.train_test_split(X, y, test_size=4)[3]) == 4
    assert len(data.train_test_split(X, y, test_size=np.int64(1))[3]) == 1


def test_split_is_seeded():
    X, y = _xy(50)
    a = data.train_test_split(X, y, seed=1)
    b = data.train_test_split(X, y, seed=1)
    c = data.train_test_split(X, y, seed=2)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a[3], c[3])
    assert not np.array_equal(a[2], np.sort(a[2]))  # shuffled


def test_split_stratified():
    X = np.zeros((100, 3))
    y = np.array([0] * 70 + [1] * 20 + [2] * 10)
    Xtr, Xte, ytr, yte = data.train_test_split(X, y, test_size=0.2, stratify=True, seed=5)
    np.testing.assert_array_equal(np.bincount(yte), [14, 4, 2])
    np.testing.assert_array_equal(np.bincount(ytr), [56, 16, 8])
    # uneven: 0.25 * 10 = 2.5 per class -> 3 test in total, never more than a class's share + 1
    y2 = np.array([0] * 5 + [1] * 5)
    _, _, _, yte2 = data.train_test_split(np.zeros((10, 1)), y2, test_size=0.25, stratify=True)
    assert len(yte2) == 3 and sorted(np.bincount(yte2, minlength=2).tolist()) == [1, 2]


def test_split_stratify_needs_two_per_class():
    with pytest.raises(ValueError, match="class 2"):
        data.train_test_split(np.zeros((5, 1)), np.array([0, 0, 1, 1, 2]), stratify=True)


@pytest.mark.parametrize("size", [0, 10, 11, -1, 0.0, 1.0, 1.5, -0.2])
def test_split_bad_sizes(size):
    X, y = _xy(10)
    with pytest.raises(ValueError, match="test_size"):
        data.train_test_split(X, y, test_size=size)


def test_split_test_size_type():
    X, y = _xy(10)
    with pytest.raises(TypeError, match="test_size"):
        data.train_test_split(X, y, test_size=True)
    with pytest.raises(TypeError, match="test_size"):
        data.train_test_split(X, y, test_size="0.2")


def test_split_tiny_fraction_with_too_few_samples():
    X, y = _xy(2)
    with pytest.raises(ValueError, match="both must be at least 1"):
        data.train_test_split(X, y, test_size=0.9)


def test_split_mismatched_lengths():
    with pytest.raises(ValueError, match=r"X has 10 samples but y has 9"):
        data.train_test_split(np.zeros((10, 2)), np.zeros(9))


def test_split_lists_are_accepted():
    Xtr, Xte, ytr, yte = data.train_test_split([[1], [2], [3], [4], [5]], [1, 2, 3, 4, 5], test_size=2)
    assert isinstance(Xtr, np.ndarray) and Xte.shape == (2, 1)
    np.testing.assert_array_equal(Xte[:, 0], yte)


def test_split_keeps_tensors():
    from deltaprop.tensor import Tensor

    X, y = _xy(10)
    Xtr, Xte, ytr, yte = data.train_test_split(Tensor(X), y)
    assert isinstance(Xtr, Tensor) and isinstance(Xte, Tensor)
    assert isinstance(ytr, np.ndarray)
    np.testing.assert_array_equal(np.asarray(Xte)[:, 0], 2 * yte)
