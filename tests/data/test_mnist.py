"""load_mnist on tiny IDX and .npz files written here."""
import gzip
import struct

import numpy as np
import pytest

import deltaprop._config as config
from deltaprop.data import load_mnist


def idx_bytes(arr: np.ndarray) -> bytes:
    """An IDX file of unsigned bytes: 0, 0, 0x08, ndim, big-endian int32 dims, data."""
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    return struct.pack(">BBBB", 0, 0, 8, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


def make_set(n, seed):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    images[0, 0, 0], images[0, 0, 1] = 0, 255
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    return images, labels


TRAIN = make_set(5, 0)
TEST = make_set(3, 1)


def write_dir(d, gz=False, dot=False, sets=(("train", TRAIN), ("t10k", TEST))):
    for prefix, (images, labels) in sets:
        sep = "." if dot else "-"
        for name, arr in ((f"{prefix}-images{sep}idx3-ubyte", images), (f"{prefix}-labels{sep}idx1-ubyte", labels)):
            blob = idx_bytes(arr)
            if gz:
                (d / (name + ".gz")).write_bytes(gzip.compress(blob))
            else:
                (d / name).write_bytes(blob)
    return d


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("dot", [False, True])
def test_idx_directory(tmp_path, gz, dot):
    write_dir(tmp_path, gz=gz, dot=dot)
    X, y = load_mnist(tmp_path)
    assert X.shape == (5, 784) and X.dtype == np.float32
    assert y.shape == (5,) and y.dtype == np.int64
    np.testing.assert_allclose(X, TRAIN[0].reshape(5, 784) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(y, TRAIN[1])
    assert X[0, 0] == 0.0 and X[0, 1] == 1.0 and X.min() >= 0 and X.max() <= 1
    Xt, yt = load_mnist(str(tmp_path), kind="test", flatten=False)
    assert Xt.shape == (3, 28, 28)
    np.testing.assert_array_equal(yt, TEST[1])
    np.testing.assert_allclose(Xt, TEST[0] / 255.0, rtol=1e-6)


def test_dtype(tmp_path):
    write_dir(tmp_path)
    assert load_mnist(tmp_path, dtype=np.float64)[0].dtype == np.float64
    old = config.get_default_dtype()
    config.set_default_dtype(np.float64)
    try:
        X, _ = load_mnist(tmp_path)
    finally:
        config.set_default_dtype(old)
    assert X.dtype == np.float64
    np.testing.assert_array_equal(X, TRAIN[0].reshape(5, 784) / 255.0)


def test_mixed_gz_and_plain(tmp_path):
    write_dir(tmp_path, gz=True, sets=(("train", TRAIN),))
    (tmp_path / "train-labels-idx1-ubyte.gz").unlink()
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(TRAIN[1]))
    np.testing.assert_array_equal(load_mnist(tmp_path)[1], TRAIN[1])


def test_missing_file_lists_names(tmp_path):
    write_dir(tmp_path, sets=(("train", TRAIN),))
    with pytest.raises(FileNotFoundError) as e:
        load_mnist(tmp_path, kind="test")
    msg = str(e.value)
    for name in ["t10k-images-idx3-ubyte", "t10k-images-idx3-ubyte.gz", "t10k-images.idx3-ubyte"]:
        assert name in msg
    (tmp_path / "train-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match="train-labels-idx1-ubyte"):
        load_mnist(tmp_path)


def test_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_mnist(tmp_path / "nowhere")


@pytest.mark.parametrize("gz", [False, True])
def test_truncated_images(tmp_path, gz):
    write_dir(tmp_path, gz=gz)
    name = "train-images-idx3-ubyte" + (".gz" if gz else "")
    blob = idx_bytes(TRAIN[0])[:-10]
    (tmp_path / name).write_bytes(gzip.compress(blob) if gz else blob)
    with pytest.raises(ValueError, match=f"{name}.*truncated"):
        load_mnist(tmp_path)


def test_truncated_header(tmp_path):
    write_dir(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08")
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte.*truncated"):
        load_mnist(tmp_path)


def test_trailing_bytes(tmp_path):
    write_dir(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(TRAIN[1]) + b"\x00")
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte"):
        load_mnist(tmp_path)


def test_wrong_magic(tmp_path):
    write_dir(tmp_path)
    # the labels file where the images file should be: magic 0x801, not 0x803
    (tmp_path / "train-images-idx3-ubyte").write_bytes(idx_bytes(TRAIN[1]))
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte has magic number 0x00000801"):
        load_mnist(tmp_path)


def test_corrupted_gzip(tmp_path):
    write_dir(tmp_path, gz=True)
    blob = gzip.compress(idx_bytes(TRAIN[0]))
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz"):
        load_mnist(tmp_path)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz"):
        load_mnist(tmp_path)


def test_count_mismatch(tmp_path):
    write_dir(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(TRAIN[1][:4]))
    with pytest.raises(ValueError, match="5 images but 4 labels"):
        load_mnist(tmp_path)


def test_bad_kind(tmp_path):
    with pytest.raises(ValueError, match="kind='validation'"):
        load_mnist(tmp_path, kind="validation")


def write_npz(path, **extra):
    arrays = dict(x_train=TRAIN[0], y_train=TRAIN[1], x_test=TEST[0], y_test=TEST[1])
    arrays.update(extra)
    np.savez_compressed(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


def test_npz(tmp_path):
    p = write_npz(tmp_path / "mnist.npz")
    X, y = load_mnist(p)
    assert X.shape == (5, 784) and X.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_allclose(X, TRAIN[0].reshape(5, -1) / 255.0, rtol=1e-6)
    Xt, yt = load_mnist(str(p), kind="test", flatten=False, dtype=np.float64)
    assert Xt.shape == (3, 28, 28) and Xt.dtype == np.float64
    np.testing.assert_array_equal(Xt, TEST[0] / 255.0)
    np.testing.assert_array_equal(yt, TEST[1])


def test_npz_flat_images(tmp_path):
    p = write_npz(tmp_path / "flat.npz", x_train=TRAIN[0].reshape(5, 784))
    X, _ = load_mnist(p, flatten=False)
    assert X.shape == (5, 28, 28)


def test_npz_missing_key(tmp_path):
    p = write_npz(tmp_path / "partial.npz", y_test=None)
    load_mnist(p)  # the train part is complete
    with pytest.raises(ValueError, match="partial.npz lacks y_test"):
        load_mnist(p, kind="test")


def test_npz_corrupted(tmp_path):
    p = write_npz(tmp_path / "bad.npz")
    blob = p.read_bytes()
    p.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ValueError, match="bad.npz"):
        load_mnist(p)
    p.write_bytes(b"garbage" * 10)
    with pytest.raises(ValueError, match="bad.npz"):
        load_mnist(p)


def test_npz_float_pixels_refused(tmp_path):
    p = write_npz(tmp_path / "float.npz", x_train=TRAIN[0] / 255.0)
    with pytest.raises(ValueError, match="float.npz.*float64"):
        load_mnist(p)


def test_npz_length_mismatch(tmp_path):
    p = write_npz(tmp_path / "len.npz", y_train=TRAIN[1][:2])
    with pytest.raises(ValueError, match="5 images but 2 labels"):
        load_mnist(p)
